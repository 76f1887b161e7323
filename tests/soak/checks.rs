//! What must hold right after a kill and after the next apply, and the
//! tally of what the soak saw.
//!
//! A violation is a broken promise (a half-written file in place, a task
//! lost, recorded twice or run twice, a `once` step run twice, a plan that
//! is not clean after a successful apply); the soak fails on any. Three
//! reruns are expected and only counted: a step in flight on this machine
//! when cairn died (its receipt is written by cairn after it, so the
//! documented "loses at most the task in flight" applies); a step in flight
//! on a host that lost power; and a step that ran while a powered-off host
//! was left out (as `--limit` leaves hosts out) and again once that host's
//! part upstream of it had run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use cairn::state::{JournalEntry, StateDir, journal};

use crate::cluster::{STEPS, SoakCluster, describe, staging_left};
use crate::support::{cairn, stderr, stdout};

/// What a killed apply had done when it died.
pub(crate) struct KilledRun {
    /// `cairn`, or `host hostN`.
    pub what: String,
    pub after: Duration,
    /// Tasks it recorded (its journal, and its finished events), with their keys.
    pub recorded: BTreeMap<String, String>,
    /// Tasks its journal recorded more than once.
    pub journaled_twice: Vec<String>,
    /// Tasks started and not recorded: in flight when it died.
    pub in_flight: BTreeSet<String>,
    /// Whether it had shown its plan (a streamed apply shows it once
    /// every host is probed, and may have done work before).
    pub planned: bool,
}

impl KilledRun {
    pub(crate) fn new(
        what: String,
        after: Duration,
        events: &[serde_json::Value],
        state_dir: &StateDir,
    ) -> KilledRun {
        let mut recorded = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut journaled_twice = Vec::new();
        for entry in journal::replay(&state_dir.journal_file()).expect("the journal reads") {
            if let JournalEntry::Done { id, record } = entry {
                if !seen.insert(id.to_string()) {
                    journaled_twice.push(id.to_string());
                }
                recorded.insert(id.to_string(), record.key.to_string());
            }
        }
        let plan_keys: BTreeMap<String, String> = events
            .iter()
            .find(|e| e["event"] == "plan")
            .and_then(|e| e["plan"]["changes"].as_array())
            .map(|changes| {
                changes
                    .iter()
                    .filter_map(|c| {
                        Some((
                            c["task"].as_str()?.to_string(),
                            c["key"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for e in events.iter().filter(|e| e["event"] == "task_finished") {
            let task = e["task"].as_str().unwrap_or_default().to_string();
            if let Some(key) = plan_keys.get(&task) {
                recorded.entry(task).or_insert_with(|| key.clone());
            }
        }
        let in_flight = events
            .iter()
            .filter(|e| e["event"] == "task_started")
            .filter_map(|e| e["task"].as_str())
            .filter(|t| !recorded.contains_key(*t))
            .map(str::to_string)
            .collect();
        KilledRun {
            what,
            after,
            recorded,
            journaled_twice,
            in_flight,
            planned: !plan_keys.is_empty(),
        }
    }

    /// The host that was powered off, if this was a host kill.
    pub(crate) fn victim(&self) -> Option<&str> {
        let rest = self.what.strip_prefix("host ")?;
        Some(rest.split(' ').next().unwrap_or(rest))
    }

    pub(crate) fn summary(&self) -> String {
        let stage = if self.planned {
            format!(
                "{} task(s) recorded, in flight: {}",
                self.recorded.len(),
                if self.in_flight.is_empty() {
                    "nothing".to_string()
                } else {
                    self.in_flight
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        } else if self.recorded.is_empty() {
            "before its plan was whole (connecting, locking, refreshing)".to_string()
        } else {
            // A streamed apply works on the hosts already probed while it
            // holds its lines for the whole plan: the journal says what it did.
            format!(
                "before its plan was whole, {} task(s) recorded (its lines held)",
                self.recorded.len()
            )
        };
        format!(
            "killed {} after {}: {stage}",
            self.what,
            humantime::format_duration(Duration::from_millis(
                u64::try_from(self.after.as_millis()).unwrap_or(u64::MAX)
            ))
        )
    }
}

/// What the soak saw.
#[derive(Default)]
pub(crate) struct Findings {
    pub violations: Vec<String>,
    pub retries_ok: usize,
    /// Next applies that waited for a task a dead apply left running.
    pub waited: usize,
    /// Steps run again because they were in flight when cairn died and
    /// their receipt is left by cairn after them, by why.
    pub reruns: BTreeMap<String, Vec<String>>,
    /// Kills by what was in flight: `refresh` (before the plan), or the kinds of task.
    pub kills_by_stage: BTreeMap<String, usize>,
}

impl Findings {
    fn violation(&mut self, label: &str, what: impl std::fmt::Display) {
        eprintln!("  VIOLATION: {what}");
        self.violations.push(format!("{label}: {what}"));
    }

    pub(crate) fn report(&self) -> String {
        let mut text = format!(
            "next applies that waited for a task the killed apply left running: {}\nkills by what was in flight:",
            self.waited
        );
        for (stage, n) in &self.kills_by_stage {
            let _ = write!(text, " {stage} {n};");
        }
        let total: usize = self.reruns.values().map(Vec::len).sum();
        let _ = write!(text, "\nexpected second runs of a step in a round: {total}");
        for (why, tasks) in &self.reruns {
            let _ = write!(text, "\n  {why}: {}", tasks.join(", "));
        }
        let _ = write!(text, "\nviolations: {}", self.violations.len());
        text
    }
}

/// Right after a kill (a powered-off host booted again): every file in
/// place on every host is whole, the old version or the new one.
pub(crate) fn whole_files_after_kill(cluster: &SoakCluster, findings: &mut Findings, label: &str) {
    for host in &cluster.hosts.hosts {
        let old =
            SoakCluster::expected(&cluster.previous_bundle, cluster.previous_generation, host);
        let new = SoakCluster::expected(&cluster.bundle, cluster.generation, host);
        for (rel, want_new) in &new {
            let path = format!("/opt/soak/app/{rel}");
            let found = std::fs::read(host.path(&path)).ok();
            let ok = found.as_deref() == Some(want_new.as_slice())
                || found.as_deref() == old.get(rel).map(Vec::as_slice);
            if !ok {
                findings.violation(
                    label,
                    format!(
                        "{path} on {} is neither the old nor the new version right after the kill: {} (old {}, new {})",
                        host.name,
                        describe(found.as_deref()),
                        describe(old.get(rel).map(Vec::as_slice)),
                        describe(Some(want_new))
                    ),
                );
            }
        }
        let motd = host.read("/opt/soak/motd");
        let old_motd = format!("{} round {}\n", host.name, cluster.previous_round);
        let new_motd = format!("{} round {}\n", host.name, cluster.round);
        if motd.as_deref() != Some(&old_motd) && motd.as_deref() != Some(&new_motd) {
            findings.violation(
                label,
                format!(
                    "/opt/soak/motd on {} is neither version right after the kill: {motd:?}",
                    host.name
                ),
            );
        }
    }
}

/// After an apply that succeeded: the hosts match the plan, files are
/// whole and current, the state holds each task once, and (after a kill)
/// nothing the killed apply recorded ran again.
pub(crate) fn converged(
    cluster: &mut SoakCluster,
    findings: &mut Findings,
    after_kill: Option<(&KilledRun, &[serde_json::Value])>,
    label: &str,
) {
    let plan = cairn(cluster.dir.path(), &["plan", "--detailed-exitcode"])
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("cairn runs");
    if plan.status.code() != Some(0) {
        findings.violation(
            label,
            format!(
                "`plan --detailed-exitcode` after a successful apply exits {:?}:\n{}{}",
                plan.status.code(),
                stdout(&plan),
                stderr(&plan)
            ),
        );
    }
    for host in &cluster.hosts.hosts {
        let want = SoakCluster::expected(&cluster.bundle, cluster.generation, host);
        for (rel, bytes) in &want {
            let path = format!("/opt/soak/app/{rel}");
            let found = std::fs::read(host.path(&path)).ok();
            if found.as_deref() != Some(bytes.as_slice()) {
                findings.violation(
                    label,
                    format!(
                        "{path} on {} does not hold the source's bytes: {} (want {})",
                        host.name,
                        describe(found.as_deref()),
                        describe(Some(bytes))
                    ),
                );
            }
        }
        let motd = format!("{} round {}\n", host.name, cluster.round);
        if host.read("/opt/soak/motd").as_deref() != Some(&motd) {
            findings.violation(label, format!("/opt/soak/motd on {} is stale", host.name));
        }
        let left = staging_left(host, "/opt/soak");
        if !left.is_empty() {
            findings.violation(
                label,
                format!("staging left behind on {}: {}", host.name, left.join(", ")),
            );
        }
    }
    state_holds_each_task_once(cluster, findings, label);
    runs_this_round(cluster, findings, after_kill, label);
    if let Some((killed, retry)) = after_kill {
        nothing_done_twice(cluster, findings, killed, retry, label);
    }
}

/// After a kill: the killed apply journaled no task twice, the next one
/// ran nothing the killed one had recorded, and an apply that succeeded
/// although its host was powered off had nothing in flight there.
fn nothing_done_twice(
    cluster: &SoakCluster,
    findings: &mut Findings,
    killed: &KilledRun,
    retry: &[serde_json::Value],
    label: &str,
) {
    if killed.what.ends_with("(the apply still succeeded)")
        && let Some(victim) = killed.victim()
    {
        let suffix = format!("@{victim}");
        for task in killed.in_flight.iter().filter(|t| t.ends_with(&suffix)) {
            findings.violation(
                label,
                format!(
                    "the apply succeeded although {task} was in flight on the host powered off"
                ),
            );
        }
    }
    for id in &killed.journaled_twice {
        findings.violation(label, format!("the killed apply journaled {id} twice"));
    }
    let state = cluster.state_dir().load().expect("the state loads");
    for e in retry.iter().filter(|e| e["event"] == "task_finished") {
        let task = e["task"].as_str().unwrap_or_default();
        if e["outcome"] == "adopted" {
            continue;
        }
        let Some(recorded_key) = killed.recorded.get(task) else {
            continue;
        };
        let final_key = state
            .tasks
            .iter()
            .find(|(id, _)| id.as_str() == task)
            .map(|(_, r)| r.key.to_string());
        if final_key.as_deref() == Some(recorded_key.as_str()) {
            findings.violation(
                label,
                format!(
                    "{task} was recorded by the killed apply and run again by the next one, at the same key"
                ),
            );
        }
    }
    let killed_during = if killed.planned {
        let mut kinds: Vec<&str> = killed
            .in_flight
            .iter()
            .filter_map(|t| t.split('.').next())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        if kinds.is_empty() {
            "between tasks".to_string()
        } else {
            kinds.join("+")
        }
    } else {
        "before the plan was whole".to_string()
    };
    *findings.kills_by_stage.entry(killed_during).or_default() += 1;
}

/// The state after a successful apply: each task of the plan, once, at the
/// plan's key; nothing else.
fn state_holds_each_task_once(cluster: &SoakCluster, findings: &mut Findings, label: &str) {
    let plan = cairn(cluster.dir.path(), &["plan", "--json"])
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("cairn runs");
    let doc: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap_or_default();
    let planned: BTreeMap<String, String> = doc["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .filter_map(|c| {
                    Some((
                        c["task"].as_str()?.to_string(),
                        c["key"].as_str().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let state = cluster.state_dir().load().expect("the state loads");
    let recorded: BTreeMap<String, String> = state
        .tasks
        .iter()
        .map(|(id, r)| (id.to_string(), r.key.to_string()))
        .collect();
    // 4 bundles, 4 files, 4 prepares, init, bootstrap, 3 joins, verify, collect.
    if planned.len() != 19 {
        findings.violation(
            label,
            format!(
                "the plan lists {} tasks, not 19: {planned:?}",
                planned.len()
            ),
        );
    }
    for (task, key) in &planned {
        match recorded.get(task) {
            None => findings.violation(label, format!("{task} is lost: not in the state")),
            Some(k) if k != key => findings.violation(
                label,
                format!("{task} is recorded at key {k}, the plan wants {key}"),
            ),
            Some(_) => {}
        }
    }
    for task in recorded.keys().filter(|t| !planned.contains_key(*t)) {
        findings.violation(label, format!("{task} is in the state but not in the plan"));
    }
}

/// On each host, each step ran exactly once this round; the `once` step
/// exactly once ever. A rerun of a step in flight at a kill, whose receipt
/// cairn leaves after it, is tallied instead.
fn runs_this_round(
    cluster: &SoakCluster,
    findings: &mut Findings,
    after_kill: Option<(&KilledRun, &[serde_json::Value])>,
    label: &str,
) {
    let round = cluster.round.to_string();
    for (i, host) in cluster.hosts.hosts.iter().enumerate() {
        let runs = SoakCluster::runs(host);
        let bootstraps = runs.iter().filter(|(s, _)| s == "bootstrap").count();
        if i == 0 && bootstraps != 1 {
            findings.violation(
                label,
                format!(
                    "the `once` step bootstrap ran {bootstraps} times on {}",
                    host.name
                ),
            );
        }
        for (step, role) in STEPS {
            let runs_here = match *role {
                "master" => i == 0,
                "worker" => i > 0,
                _ => true,
            };
            if !runs_here {
                continue;
            }
            let count = runs
                .iter()
                .filter(|(s, r)| s == step && *r == round)
                .count();
            let task = format!("step.{step}@{}", host.name);
            tally(findings, after_kill, label, &task, count);
        }
    }
    let count = cluster
        .local_runs()
        .iter()
        .filter(|l| **l == format!("collect {round}"))
        .count();
    tally(findings, after_kill, label, "step.collect@here", count);
}

fn tally(
    findings: &mut Findings,
    after_kill: Option<(&KilledRun, &[serde_json::Value])>,
    label: &str,
    task: &str,
    count: usize,
) {
    if count == 1 {
        return;
    }
    if count == 0 {
        findings.violation(label, format!("{task} did not run this round (lost)"));
        return;
    }
    // Why the next apply ran it again, as its plan said.
    let planned = after_kill
        .and_then(|(_, retry)| retry.iter().find(|e| e["event"] == "plan"))
        .and_then(|p| p["plan"]["changes"].as_array())
        .and_then(|c| c.iter().find(|c| c["task"] == task))
        .cloned()
        .unwrap_or_default();
    let reasons: Vec<&str> = planned["reasons"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r.as_str()).collect())
        .unwrap_or_default();
    let killed = after_kill.map(|(k, _)| k);
    let in_flight = killed.is_some_and(|k| k.in_flight.contains(task));
    let victim = killed.and_then(KilledRun::victim).map(|h| format!("@{h}"));
    let why = match &victim {
        Some(v) if in_flight && task.ends_with(v.as_str()) => {
            Some("in flight on a host that was powered off")
        }
        Some(_)
            if !reasons.is_empty()
                && reasons.iter().all(|r| {
                    r.starts_with("upstream task changed") || r.starts_with("now waits for")
                }) =>
        {
            Some(
                "ran while the powered-off host was left out (as with --limit), again once its part had run",
            )
        }
        None if in_flight && task.ends_with("@here") => {
            Some("in flight on this machine, whose receipts cairn writes after the step")
        }
        _ => None,
    };
    if let Some(why) = why {
        findings
            .reruns
            .entry(why.to_string())
            .or_default()
            .push(format!("{task} ({count} runs)"));
    } else {
        findings.violation(
            label,
            format!(
                "{task} ran {count} times this round{}; the next apply's plan: {} {reasons:?}",
                if in_flight {
                    " (in flight at the kill)"
                } else {
                    ", and was not in flight at a kill"
                },
                planned["action"]
            ),
        );
    }
}
