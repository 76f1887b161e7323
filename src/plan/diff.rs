//! The diff: desired keys against records and observations, task by task.
//!
//! [`diff`] walks the sealed graph in dependency order. For each task it
//! fills in the keys of what it waits for (the *effective* keys: a `once`
//! step that will not rerun passes its recorded key on, so nothing
//! downstream reruns because of it), hashes the inputs, and compares with
//! the record and with what refresh saw on the host:
//!
//! - no record: create (`+`), unless a step's `check` already passes and it
//!   captures nothing, or the host holds its receipt, in which case it is
//!   adopted as converged;
//! - key changed, or the host no longer matches the record: update (`~`),
//!   unless a step's host holds its receipt at the new key: an apply that
//!   died before recording it did it, so it is adopted;
//! - `--replace`, or a bundle/file whose destination moved: replace (`-/+`);
//! - downstream of a task rerun because of a replace, or reading a value a
//!   task that runs captures again: update (`~`), as a changed input would,
//!   though no key changed (a `once` step stops this and says so);
//! - a rerun an earlier apply was asked for and did not finish (kept in the
//!   state): as that apply planned it;
//! - a record with no task any more: destroy (`-`);
//! - otherwise unchanged.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use petgraph::graph::NodeIndex;

use std::fmt::Write as _;

use super::former::{Departure, FormerHost};
use super::reasons::{drift_reasons, explain};
use super::undo_order::undo_order;
use super::{Change, ChangeKind, Observation, Plan, Refresh, Replacements};
use crate::graph::{Task, TaskGraph, Work, task_id};
use crate::hash::KeyInputs;
use crate::ids::{TaskId, TaskKey};
use crate::model::{ElementRef, Model};
use crate::state::{PendingRerun, RecordDetail, State, TaskRecord};

/// What the diff needs besides graph and state.
#[derive(Debug, Default)]
pub struct DiffOptions {
    /// The tasks `--replace` forces.
    pub replace: Replacements,
    /// Hosts to leave out (by `--limit`).
    pub excluded_hosts: BTreeSet<String>,
    pub offline: bool,
    /// Hosts the state knows that left the Clusterfile or moved, by name.
    pub former: BTreeMap<String, FormerHost>,
    /// `cairn reset`: every record is destroyed, nothing is created.
    pub reset: bool,
    /// Hosts renamed by the migration of an older state: their receipts
    /// may still be kept under the old name, so they are not taken for wiped.
    pub renamed: BTreeSet<String>,
}

/// Compares desired keys, records and observations.
pub fn diff(
    model: &Model,
    graph: &TaskGraph,
    state: &State,
    refresh: &Refresh,
    options: &DiffOptions,
) -> Plan {
    let differ = Differ::new(model, graph, state, refresh, options);
    if options.reset {
        let mut unreachable = refresh.unreachable.clone();
        unreachable.extend(refresh.former_unreachable.clone());
        return Plan {
            facts: refresh.facts.clone(),
            cluster: model.name.clone(),
            offline: options.offline,
            changes: differ.resets(&unreachable),
            unreachable,
            excluded_hosts: options.excluded_hosts.clone(),
            aliases: ssh_aliases(model),
            warnings: Vec::new(),
            once_moves: Vec::new(),
            reruns: BTreeMap::new(),
        };
    }
    let mut walk = DiffWalk::new(graph.len());
    for &node in graph.topological() {
        walk.visit(&differ, node);
    }
    walk.into_plan(&differ)
}

/// The task-by-task part of a diff: each task is visited once, after
/// everything it waits for, in dependency order or in any order that keeps
/// it (a streamed plan visits a host's tasks as its probe comes back).
/// What a task's change depends on beyond its own host is only what it
/// waits for, which this walk keeps.
pub(super) struct DiffWalk {
    /// The changes so far, in the order visited.
    changes: Vec<Change>,
    /// Each visited task's key as what waits for it sees it.
    effective: HashMap<NodeIndex, TaskKey>,
    /// Tasks that run, and those of them that rerun because of a replace
    /// (true: replaced themselves), which their downstream tasks follow.
    runs: HashSet<NodeIndex>,
    forced: HashMap<NodeIndex, bool>,
    reruns: BTreeMap<TaskId, PendingRerun>,
    visited: HashSet<NodeIndex>,
}

impl DiffWalk {
    pub(super) fn new(tasks: usize) -> DiffWalk {
        DiffWalk {
            changes: Vec::with_capacity(tasks),
            effective: HashMap::with_capacity(tasks),
            runs: HashSet::new(),
            forced: HashMap::new(),
            reruns: BTreeMap::new(),
            visited: HashSet::with_capacity(tasks),
        }
    }

    /// Whether `node` was visited.
    pub(super) fn visited(&self, node: NodeIndex) -> bool {
        self.visited.contains(&node)
    }

    /// Visits `node`, whose upstream tasks were all visited: its change,
    /// or `None` for a task on a host left out or unreachable (not touched
    /// this run: downstream tasks see its recorded key).
    pub(super) fn visit(&mut self, differ: &Differ<'_>, node: NodeIndex) -> Option<&Change> {
        let (graph, state, options) = (differ.graph, differ.state, differ.options);
        self.visited.insert(node);
        let task = graph.task(node);
        let mut inputs = task.inputs.clone();
        inputs.deps = graph
            .upstream(node)
            .filter_map(|up| {
                self.effective
                    .get(&up)
                    .map(|k| (graph.task(up).id.clone(), k.clone()))
            })
            .collect::<BTreeMap<_, _>>();
        let host = &differ.model.host(task.host).name;
        if options.excluded_hosts.contains(host) || differ.refresh.unreachable.contains_key(host) {
            if let Some(record) = state.tasks.get(&task.id) {
                self.effective.insert(node, record.key.clone());
                // A replace asked for on a host that cannot be reached now
                // is done by a later apply (one left out by --limit is not asked).
                if !options.excluded_hosts.contains(host) && options.replace.forces(&task.id) {
                    self.reruns.insert(task.id.clone(), PendingRerun::Replace);
                }
            }
            return None;
        }
        let forcing = Forcing {
            replaced: upstream_forced(graph, node, &self.forced, true),
            rerun: upstream_forced(graph, node, &self.forced, false),
            captures: differ.captured_again(task, &self.runs),
        };
        let change = differ.task(node, inputs, &forcing);
        self.effective
            .insert(node, change.key.clone().expect("graph tasks have keys"));
        if change.kind != ChangeKind::Noop && !change.adopt {
            self.runs.insert(node);
            let replaced = options.replace.forces(&task.id)
                || (state.reruns.get(&task.id) == Some(&PendingRerun::Replace));
            if replaced || state.reruns.contains_key(&task.id) || !forcing.is_empty() {
                self.forced.insert(node, replaced);
                if let Some(why) = rerun_to_remember(state, &change, replaced) {
                    self.reruns.insert(task.id.clone(), why);
                }
            }
        }
        self.changes.push(change);
        self.changes.last()
    }

    /// The plan, once every task was visited: the changes in dependency
    /// order, a secret's producer rerun for the tasks that read it, the
    /// records with no task destroyed, and what the operator should read.
    pub(super) fn into_plan(self, differ: &Differ<'_>) -> Plan {
        let (model, graph, refresh, options) =
            (differ.model, differ.graph, differ.refresh, differ.options);
        let position: HashMap<NodeIndex, usize> = graph
            .topological()
            .iter()
            .enumerate()
            .map(|(i, &node)| (node, i))
            .collect();
        let mut changes = self.changes;
        changes.sort_by_key(|c| c.node.map(|n| position[&n]));
        let secret_warnings = recapture_secrets(differ, &mut changes);
        changes.extend(differ.destroys());
        let mut warnings = position_warnings(model, differ.state);
        warnings.extend(secret_warnings);
        warnings.extend(wiped_warnings(differ, &changes));
        let once_moves = once_moves(model, &changes, options);
        Plan {
            warnings,
            once_moves,
            facts: refresh.facts.clone(),
            cluster: model.name.clone(),
            offline: options.offline,
            changes,
            unreachable: refresh.unreachable.clone(),
            excluded_hosts: options.excluded_hosts.clone(),
            aliases: ssh_aliases(model),
            reruns: self.reruns,
        }
    }
}

/// A step that runs and reads a secret capture needs its value, which no
/// state keeps: the step that captures it runs again first (its own
/// dependents do not follow; see `Forcing`). A `once` step, or one on a
/// host this apply does not reach, cannot: a warning says so before the
/// reading step fails.
fn recapture_secrets(differ: &Differ<'_>, changes: &mut [Change]) -> Vec<String> {
    let at: HashMap<NodeIndex, usize> = changes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.node.map(|n| (n, i)))
        .collect();
    let mut needed: BTreeMap<NodeIndex, Vec<(String, TaskId)>> = BTreeMap::new();
    for change in changes.iter() {
        let Some(node) = change.node else { continue };
        if change.kind == ChangeKind::Noop || change.adopt {
            continue;
        }
        for (name, producer) in differ.captures_read(differ.graph.task(node)) {
            if differ.model.is_secret_capture(&name) {
                needed
                    .entry(producer)
                    .or_default()
                    .push((name, change.id.clone()));
            }
        }
    }
    let mut warnings = Vec::new();
    for (producer, readers) in needed {
        let task = differ.graph.task(producer);
        let (name, first) = &readers[0];
        let readers_text = match readers.len() {
            1 => first.to_string(),
            n => format!("{first} and {} more", n - 1),
        };
        let Some(change) = at.get(&producer).map(|&i| &mut changes[i]) else {
            warnings.push(format!(
                "{readers_text} reads ${{{name}}}, a secret captured by {} on a host this apply does not reach: it will fail until that host is reachable",
                task.id
            ));
            continue;
        };
        if change.kind != ChangeKind::Noop && !change.adopt {
            continue;
        }
        if task.once {
            warnings.push(format!(
                "{readers_text} reads ${{{name}}}, a secret that {} captured once and that no state keeps: it will fail; capture the secret in a step that may run again (one printing a new token)",
                task.id
            ));
            continue;
        }
        change.kind = ChangeKind::Update;
        change.adopt = false;
        change.reasons = vec![format!(
            "captures ${{{name}}} again for {readers_text} (a secret capture is never stored)"
        )];
    }
    warnings
}

/// Hosts whose address is an ssh config alias, and the machine it names.
fn ssh_aliases(model: &Model) -> BTreeMap<String, String> {
    model
        .hosts
        .iter()
        .filter_map(|h| {
            let alias = h.ssh.alias.as_ref()?;
            let mut shown = if alias.hostname == h.address {
                h.address.clone()
            } else {
                format!("{} → {}", h.address, alias.hostname)
            };
            if !alias.proxy_jump.is_empty() {
                shown = format!("{shown} (through {})", alias.proxy_jump.join(", "));
            }
            Some((h.name.clone(), shown))
        })
        .collect()
}

/// Whether a task this plan forces to rerun is kept in the state until it
/// has run, and as what. Only when its key alone would not make the next
/// plan run it: a task whose key changed is rerun by that, or adopted from
/// the receipt a killed apply's run left with that key, and must not run
/// twice.
fn rerun_to_remember(state: &State, change: &Change, replaced: bool) -> Option<PendingRerun> {
    let record = state.tasks.get(&change.id)?;
    (change.key.as_ref() == Some(&record.key)).then_some(if replaced {
        PendingRerun::Replace
    } else {
        PendingRerun::Downstream
    })
}

/// The tasks `node` waits for that rerun because of a replace: those
/// replaced themselves (`replaced`), or the others.
fn upstream_forced(
    graph: &TaskGraph,
    node: NodeIndex,
    forced: &HashMap<NodeIndex, bool>,
    replaced: bool,
) -> Vec<TaskId> {
    let mut ids: Vec<TaskId> = graph
        .upstream(node)
        .filter(|up| forced.get(up) == Some(&replaced))
        .map(|up| graph.task(up).id.clone())
        .collect();
    ids.sort();
    ids
}

/// Why a task whose key may not have changed must run again: what it waits
/// for or reads reruns in this apply.
#[derive(Debug, Default)]
struct Forcing {
    /// Tasks it waits for that `--replace` (now or earlier) replaces.
    replaced: Vec<TaskId>,
    /// Tasks it waits for that rerun because something before them was replaced.
    rerun: Vec<TaskId>,
    /// Captured values it reads, with the task that captures each again.
    captures: Vec<(String, TaskId)>,
}

impl Forcing {
    fn is_empty(&self) -> bool {
        self.replaced.is_empty() && self.rerun.is_empty() && self.captures.is_empty()
    }

    /// The reasons, in words, leaving out what the key's own reasons say
    /// already: an upstream task whose key changed (or that is newly waited
    /// for), a capture when the key changed anyway.
    fn reasons(&self, old: &KeyInputs, new: &KeyInputs, key_changed: bool) -> Vec<String> {
        if self.is_empty() {
            return Vec::new();
        }
        let unexplained = |ids: &[TaskId]| -> Vec<String> {
            ids.iter()
                .filter(|id| old.deps.get(*id) == new.deps.get(*id))
                .map(ToString::to_string)
                .collect()
        };
        let mut reasons = Vec::new();
        let replaced = unexplained(&self.replaced);
        if !replaced.is_empty() {
            reasons.push(format!("upstream task replaced ({})", replaced.join(", ")));
        }
        let rerun = unexplained(&self.rerun);
        if !rerun.is_empty() {
            reasons.push(format!("upstream task reruns ({})", rerun.join(", ")));
        }
        if !key_changed {
            let waited: Vec<&TaskId> = self.replaced.iter().chain(&self.rerun).collect();
            for (name, producer) in &self.captures {
                if !waited.contains(&producer) {
                    reasons.push(format!(
                        "reads ${{{name}}}, which {producer} captures again"
                    ));
                }
            }
        }
        reasons
    }
}

/// What every task's comparison reads.
pub(super) struct Differ<'a> {
    model: &'a Model,
    graph: &'a TaskGraph,
    state: &'a State,
    refresh: &'a Refresh,
    options: &'a DiffOptions,
    /// Hosts the state knows (something ran there, or an apply reached
    /// it), to tell a new host from a new task on a known one.
    known_hosts: BTreeSet<&'a str>,
    /// Probed hosts that hold none of the receipts of what cairn recorded
    /// there (reinstalled, or cairn's folder wiped).
    wiped: BTreeSet<String>,
}

impl<'a> Differ<'a> {
    pub(super) fn new(
        model: &'a Model,
        graph: &'a TaskGraph,
        state: &'a State,
        refresh: &'a Refresh,
        options: &'a DiffOptions,
    ) -> Differ<'a> {
        Differ {
            model,
            graph,
            state,
            refresh,
            options,
            known_hosts: state
                .tasks
                .values()
                .map(|r| r.host().name.as_str())
                .chain(state.hosts.keys().map(String::as_str))
                .collect(),
            wiped: wiped_hosts(model, state, refresh, &options.renamed),
        }
    }

    /// Whether `node` captures a secret: a change of its that does not run
    /// may still turn into a run once every task reading it is known.
    pub(super) fn captures_secret(&self, node: NodeIndex) -> bool {
        match self.graph.task(node).work {
            Work::Step { step } => self.model.steps[step].capture_secret,
            _ => false,
        }
    }

    /// The captured values a step reads, with the task that captures each
    /// (which it waits for, validation made sure).
    fn captures_read(&self, task: &Task) -> Vec<(String, NodeIndex)> {
        let Work::Step { step } = task.work else {
            return Vec::new();
        };
        let mut read = Vec::new();
        for interp in self.model.steps[step].strings() {
            for name in interp.vars() {
                if self.model.var(task.host, name).is_some() {
                    continue;
                }
                let producer = self
                    .model
                    .capture_source(task.host, name)
                    .map(|(producer, host)| task_id(self.model, ElementRef::Step(producer), host))
                    .and_then(|id| self.graph.find(&id));
                if let Some(producer) = producer
                    && !read.iter().any(|(n, _)| n == name)
                {
                    read.push((name.to_string(), producer));
                }
            }
        }
        read
    }

    /// The captured values a step reads that a task running in this apply
    /// captures again. Not a secret capture: it is a credential, and a new
    /// one does not redo what the old one did (a joined node stays joined).
    fn captured_again(&self, task: &Task, runs: &HashSet<NodeIndex>) -> Vec<(String, TaskId)> {
        self.captures_read(task)
            .into_iter()
            .filter(|(name, producer)| {
                runs.contains(producer) && !self.model.is_secret_capture(name)
            })
            .map(|(name, producer)| (name, self.graph.task(producer).id.clone()))
            .collect()
    }

    /// The change of one task whose dependency keys are filled in `inputs`.
    fn task(&self, node: NodeIndex, inputs: KeyInputs, forcing: &Forcing) -> Change {
        let task = self.graph.task(node);
        let key = inputs.key();
        let record = self.state.tasks.get(&task.id);
        let drift = drift_reasons(self.refresh.observations.get(&task.id), record);
        let mut change = Change {
            id: task.id.clone(),
            host: self.model.host(task.host).name.clone(),
            kind: ChangeKind::Noop,
            reasons: Vec::new(),
            ignored: Vec::new(),
            node: Some(node),
            key: Some(key),
            inputs: Some(inputs),
            adopt: false,
            drifted: record.is_some() && !drift.is_empty(),
            moved_from: None,
        };
        match record {
            None => self.unrecorded(task, forcing, &mut change),
            Some(_) if self.wiped.contains(&change.host) && !task.once => {
                // What the record says was done there is gone with the
                // receipts: done again, from scratch.
                change.kind = ChangeKind::Create;
                change.drifted = true;
                change.reasons.push(
                    "the host holds none of cairn's receipts (reinstalled, or cairn's folder wiped): done again".into(),
                );
            }
            Some(record) if self.moved_away(record) => {
                let from = format!("{}:{}", record.host().address, record.host().port);
                change.kind = ChangeKind::Replace;
                change.reasons.push(format!(
                    "host address changed ({from} -> {}:{}): undone on the old machine, created on the new",
                    self.model.host(task.host).address,
                    self.model.host(task.host).port
                ));
                change.drifted = false;
                change.moved_from = Some(from);
            }
            Some(record) => self.recorded(task, record, drift, forcing, &mut change),
        }
        change
    }

    /// The record ran on the old machine of a host whose name moved.
    fn moved_away(&self, record: &TaskRecord) -> bool {
        matches!(
            self.options.former.get(&record.host().name),
            Some(f) if matches!(f.departure, Departure::Moved { .. })
                && f.record.address == record.host().address
                && f.record.port == record.host().port
        )
    }

    /// A task that never ran here: created, or adopted when its check
    /// passes or the host holds its receipt.
    fn unrecorded(&self, task: &Task, forcing: &Forcing, change: &mut Change) {
        let key = change.key.as_ref().expect("graph tasks have keys");
        let observation = self.refresh.observations.get(&task.id);
        let check_passes = match (&task.work, observation) {
            (Work::Step { step }, Some(Observation::Check { passed: true, .. })) => {
                self.model.steps[*step].capture.is_none()
            }
            _ => false,
        };
        // Not in this state, but the host has a receipt: another operator
        // (or a lost state) did it. A `once` step is never run twice.
        let receipt = match &task.work {
            Work::Step { step } => self.refresh.receipts.get(&task.id).filter(|r| {
                (r.key == *key || task.once)
                    && (self.model.steps[*step].capture.is_none()
                        || r.captured.is_some()
                        || task.once)
            }),
            _ => None,
        };
        // What it waits for reruns: what the check or a receipt says of
        // the host may be about to change.
        let adoptable = forcing.is_empty();
        if self.options.replace.forces(&task.id) {
            change.kind = ChangeKind::Create;
            change.reasons.push("forced by --replace".into());
        } else if let Some(r) = receipt.filter(|_| adoptable) {
            change.adopt = true;
            change.reasons.push(format!(
                "done on the host by {} at {} (its receipt): recorded without running",
                r.by, r.finished_at
            ));
        } else if check_passes && adoptable {
            change.adopt = true;
            change
                .reasons
                .push("check passes: already converged, recorded without running".into());
        } else {
            change.kind = ChangeKind::Create;
            let host = change.host.as_str();
            change.reasons.push(if self.known_hosts.contains(host) {
                "new task".into()
            } else {
                "new host".into()
            });
        }
    }

    /// A task that ran before: unchanged, updated (its inputs changed, the
    /// host drifted, or what it waits for reruns), or replaced (forced now
    /// or by an earlier apply that did not finish, or its destination
    /// moved). A `once` step ignores changed inputs and reruns upstream,
    /// and keeps its recorded key, so nothing downstream reruns because of it.
    fn recorded(
        &self,
        task: &Task,
        record: &TaskRecord,
        drift: Vec<String>,
        forcing: &Forcing,
        change: &mut Change,
    ) {
        let inputs = change.inputs.as_ref().expect("graph tasks have inputs");
        let key_changed = change.key.as_ref() != Some(&record.key);
        let mut reasons = if key_changed {
            explain(self.model, self.graph, self.state, record, inputs, task)
        } else {
            Vec::new()
        };
        if key_changed && reasons.is_empty() {
            reasons.push("inputs changed".into());
        }
        reasons.extend(forcing.reasons(&record.inputs, inputs, key_changed));
        if self.options.replace.forces(&task.id) {
            change.kind = ChangeKind::Replace;
            change.reasons.push("forced by --replace".into());
            change.reasons.extend(reasons);
            change.reasons.extend(drift);
        } else if let Some(pending) = self.state.reruns.get(&task.id) {
            change.kind = match pending {
                PendingRerun::Replace => ChangeKind::Replace,
                PendingRerun::Downstream => ChangeKind::Update,
            };
            change.reasons.push(
                match pending {
                    PendingRerun::Replace => "replace requested by an earlier apply (not finished)",
                    PendingRerun::Downstream => "rerun required by an earlier apply (not finished)",
                }
                .into(),
            );
            change.reasons.extend(reasons);
            change.reasons.extend(drift);
        } else if task.once {
            if drift.is_empty() {
                change.key = Some(record.key.clone());
                change.inputs = Some(record.inputs.clone());
                change.ignored = reasons;
            } else {
                change.kind = ChangeKind::Update;
                change.reasons.extend(drift);
                change.reasons.extend(reasons);
            }
        } else if dest_moved(&record.detail, &task.work) {
            change.kind = ChangeKind::Replace;
            change.reasons.extend(reasons);
        } else if let Some(r) = self
            .done_unrecorded(task, change, key_changed, &drift)
            .filter(|_| forcing.is_empty())
        {
            change.adopt = true;
            change.reasons.push(format!(
                "done on the host by {} at {} (its receipt) by an apply that did not record it: recorded without running",
                r.by, r.finished_at
            ));
        } else if !reasons.is_empty() || !drift.is_empty() {
            change.kind = ChangeKind::Update;
            change.reasons.extend(drift);
            change.reasons.extend(reasons);
        }
    }

    /// `cairn reset`: every record on a host that is neither left out nor
    /// unreachable, destroyed in reverse dependency order.
    fn resets(&self, unreachable: &BTreeMap<String, String>) -> Vec<Change> {
        let all: Vec<(&TaskId, &TaskRecord)> = self
            .state
            .tasks
            .iter()
            .filter(|(_, r)| {
                !self.options.excluded_hosts.contains(&r.host().name)
                    && !unreachable.contains_key(&r.host().name)
            })
            .collect();
        undo_order(&all)
            .into_iter()
            .map(|(id, record)| Change {
                id: id.clone(),
                host: record.host().name.clone(),
                kind: ChangeKind::Destroy,
                reasons: vec![format!("reset; {}", undo_action(&record.detail))],
                ignored: Vec::new(),
                node: None,
                key: None,
                inputs: None,
                adopt: false,
                drifted: false,
                moved_from: None,
            })
            .collect()
    }

    /// The receipt of a step whose inputs changed since its record, when
    /// the host holds it at the new key (with the value, for a capturing
    /// step): an apply killed after the step ended on the host, before it
    /// was recorded. Running it again would run it twice.
    fn done_unrecorded(
        &self,
        task: &Task,
        change: &Change,
        key_changed: bool,
        drift: &[String],
    ) -> Option<&crate::transport::ReceiptInfo> {
        let Work::Step { step } = &task.work else {
            return None;
        };
        if !key_changed || !drift.is_empty() {
            return None;
        }
        self.refresh.receipts.get(&task.id).filter(|r| {
            Some(&r.key) == change.key.as_ref()
                && (self.model.steps[*step].capture.is_none() || r.captured.is_some())
        })
    }

    /// Records with no task any more: destroyed in reverse dependency
    /// order (see `undo_order`).
    fn destroys(&self) -> Vec<Change> {
        let gone: Vec<(&TaskId, &TaskRecord)> = self
            .state
            .tasks
            .iter()
            .filter(|(id, r)| {
                self.graph.find(id).is_none()
                    && !self.options.excluded_hosts.contains(&r.host().name)
            })
            .collect();
        undo_order(&gone)
            .into_iter()
            .map(|(id, record)| {
                let name = &record.host().name;
                let what = undo_action(&record.detail);
                let left = !self.model.hosts.iter().any(|h| &h.name == name);
                let mut reason = if left {
                    format!("host left the Clusterfile; {what}")
                } else if self.moved_away(record) {
                    format!(
                        "no longer in the Clusterfile; {what} on the host's old machine ({}:{})",
                        record.host().address,
                        record.host().port
                    )
                } else {
                    format!("no longer in the Clusterfile; {what}")
                };
                if let Some(why) = self.refresh.former_unreachable.get(name) {
                    let _ = write!(
                        reason,
                        " (unreachable: {why}; `cairn state rm {name}` forgets it without touching it)"
                    );
                }
                Change {
                    id: id.clone(),
                    host: name.clone(),
                    kind: ChangeKind::Destroy,
                    reasons: vec![reason],
                    ignored: Vec::new(),
                    node: None,
                    key: None,
                    inputs: None,
                    adopt: false,
                    drifted: false,
                    moved_from: None,
                }
            })
            .collect()
    }
}

/// Hosts refresh probed that hold none of the receipts of the tasks
/// recorded there, while at least one of those surely left one (a bundle or
/// a file always does).
fn wiped_hosts(
    model: &Model,
    state: &State,
    refresh: &Refresh,
    renamed: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut by_host: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    // Records made on the machine the Clusterfile lists now: those of a
    // host whose name moved to another machine are not this machine's.
    let listed: HashSet<(&str, &str, u16)> = model
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.address.as_str(), h.port))
        .collect();
    let here = |record: &TaskRecord| {
        let host = record.host();
        listed.contains(&(host.name.as_str(), host.address.as_str(), host.port))
    };
    for (id, record) in state.tasks.iter().filter(|(_, r)| here(r)) {
        let entry = by_host.entry(&record.host().name).or_default();
        entry.0 |= refresh.receipts.contains_key(id);
        entry.1 |= record.detail.ships_files();
    }
    by_host
        .into_iter()
        .filter(|(host, (any_receipt, ships))| {
            refresh.facts.contains_key(*host) && !any_receipt && *ships && !renamed.contains(*host)
        })
        .map(|(host, _)| host.to_string())
        .collect()
}

/// Once steps on wiped hosts: not run again on their own.
fn wiped_warnings(differ: &Differ<'_>, changes: &[Change]) -> Vec<String> {
    differ
        .wiped
        .iter()
        .map(|host| {
            let once: Vec<&str> = changes
                .iter()
                .filter(|c| &c.host == host && c.kind == ChangeKind::Noop)
                .filter(|c| c.node.is_some_and(|n| differ.graph.task(n).once))
                .map(|c| c.id.as_str())
                .collect();
            let mut text = format!(
                "host {host} holds none of cairn's receipts (reinstalled, or cairn's folder wiped): its tasks are done again"
            );
            if !once.is_empty() {
                let _ = write!(
                    text,
                    "; once steps are not run again unless `--replace` names them ({})",
                    once.join(", ")
                );
            }
            text
        })
        .collect()
}

/// Positional selectors that point at another host than at the last apply.
fn position_warnings(model: &Model, state: &State) -> Vec<String> {
    model
        .positions
        .iter()
        .filter_map(|(selector, &id)| {
            let now = &model.host(id).name;
            let before = state.positions.get(selector)?;
            (before != now).then(|| {
                format!(
                    "`{selector}` now points at host {now}; at the last apply it was {before} (hosts were added, removed or reordered)"
                )
            })
        })
        .collect()
}

/// A `once` step created on a host while its record on another host is
/// destroyed: the step would move (a cluster's init run on a second
/// machine). Allowed only when `--replace` names it.
fn once_moves(model: &Model, changes: &[Change], options: &DiffOptions) -> Vec<String> {
    let mut moves = Vec::new();
    // A once step on several hosts (a join on every node) meets hosts that
    // come and go: only one on a single host (`master[0]`'s init) moves.
    for step in model.steps.iter().filter(|s| s.once && s.hosts.len() <= 1) {
        let element = format!("step.{}", step.name);
        let destroyed: Vec<&str> = changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Destroy && c.id.element_part() == element)
            .map(|c| c.host.as_str())
            .collect();
        for created in changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Create && !c.adopt && c.id.element_part() == element)
        {
            if destroyed.is_empty() || options.replace.forces(&created.id) {
                continue;
            }
            moves.push(format!(
                "step {} (once = true) would move from {} to {}: it ran there and would run again here",
                step.name,
                destroyed.join(", "),
                created.host
            ));
        }
    }
    moves
}

/// What undoing a record does, in words.
fn undo_action(detail: &RecordDetail) -> &'static str {
    match detail {
        RecordDetail::Step { undo: Some(_), .. } => "runs its undo",
        RecordDetail::Step { .. } => "no undo: only forgotten",
        RecordDetail::Bundle { .. } | RecordDetail::File { .. } => "removes the files it shipped",
    }
}

fn dest_moved(detail: &RecordDetail, work: &Work) -> bool {
    match (detail, work) {
        (RecordDetail::Bundle { dest: old, .. }, Work::Bundle { dest: new, .. })
        | (RecordDetail::File { dest: old, .. }, Work::File { dest: new, .. }) => old != new,
        _ => false,
    }
}

#[cfg(test)]
#[path = "tests/diff.rs"]
mod tests;
