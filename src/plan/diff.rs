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
//! - a record with no task any more: destroy (`-`);
//! - otherwise unchanged.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::graph::NodeIndex;

use std::fmt::Write as _;

use super::former::{Departure, FormerHost};
use super::reasons::{drift_reasons, explain};
use super::undo_order::undo_order;
use super::{Change, ChangeKind, Observation, Plan, Refresh, Replacements};
use crate::graph::{Task, TaskGraph, Work};
use crate::hash::KeyInputs;
use crate::ids::{TaskId, TaskKey};
use crate::model::Model;
use crate::state::{RecordDetail, State, TaskRecord};

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
    let differ = Differ {
        model,
        graph,
        state,
        refresh,
        options,
        recorded_hosts: state
            .tasks
            .values()
            .map(|r| r.host().name.as_str())
            .collect(),
        wiped: wiped_hosts(model, state, refresh, &options.renamed),
    };
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
            warnings: Vec::new(),
            once_moves: Vec::new(),
        };
    }
    let mut changes = Vec::with_capacity(graph.len());
    let mut effective: HashMap<NodeIndex, TaskKey> = HashMap::with_capacity(graph.len());
    for &node in graph.topological() {
        let task = graph.task(node);
        let mut inputs = task.inputs.clone();
        inputs.deps = graph
            .upstream(node)
            .filter_map(|up| {
                effective
                    .get(&up)
                    .map(|k| (graph.task(up).id.clone(), k.clone()))
            })
            .collect::<BTreeMap<_, _>>();
        let host = &model.host(task.host).name;
        if options.excluded_hosts.contains(host) || refresh.unreachable.contains_key(host) {
            // Not touched this run: downstream tasks see the recorded key.
            if let Some(record) = state.tasks.get(&task.id) {
                effective.insert(node, record.key.clone());
            }
            continue;
        }
        let change = differ.task(node, inputs);
        effective.insert(node, change.key.clone().expect("graph tasks have keys"));
        changes.push(change);
    }
    changes.extend(differ.destroys());
    let mut warnings = position_warnings(model, state);
    warnings.extend(wiped_warnings(&differ, &changes));
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
    }
}

/// What every task's comparison reads.
struct Differ<'a> {
    model: &'a Model,
    graph: &'a TaskGraph,
    state: &'a State,
    refresh: &'a Refresh,
    options: &'a DiffOptions,
    /// Hosts something ran on, to tell a new host from a new task on a known one.
    recorded_hosts: BTreeSet<&'a str>,
    /// Probed hosts that hold none of the receipts of what cairn recorded
    /// there (reinstalled, or cairn's folder wiped).
    wiped: BTreeSet<String>,
}

impl Differ<'_> {
    /// The change of one task whose dependency keys are filled in `inputs`.
    fn task(&self, node: NodeIndex, inputs: KeyInputs) -> Change {
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
            None => self.unrecorded(task, &mut change),
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
            Some(record) => self.recorded(task, record, drift, &mut change),
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
    fn unrecorded(&self, task: &Task, change: &mut Change) {
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
        if self.options.replace.forces(&task.id) {
            change.kind = ChangeKind::Create;
            change.reasons.push("forced by --replace".into());
        } else if let Some(r) = receipt {
            change.adopt = true;
            change.reasons.push(format!(
                "done on the host by {} at {} (its receipt): recorded without running",
                r.by, r.finished_at
            ));
        } else if check_passes {
            change.adopt = true;
            change
                .reasons
                .push("check passes: already converged, recorded without running".into());
        } else {
            change.kind = ChangeKind::Create;
            let host = change.host.as_str();
            change.reasons.push(if self.recorded_hosts.contains(host) {
                "new task".into()
            } else {
                "new host".into()
            });
        }
    }

    /// A task that ran before: unchanged, updated (its inputs changed, or
    /// the host drifted), or replaced (forced, or its destination moved). A
    /// `once` step ignores changed inputs and keeps its recorded key, so
    /// nothing downstream reruns because of it.
    fn recorded(&self, task: &Task, record: &TaskRecord, drift: Vec<String>, change: &mut Change) {
        let inputs = change.inputs.as_ref().expect("graph tasks have inputs");
        let key_changed = change.key.as_ref() != Some(&record.key);
        let mut reasons = if key_changed {
            explain(self.graph, self.state, record, inputs, task)
        } else {
            Vec::new()
        };
        if key_changed && reasons.is_empty() {
            reasons.push("inputs changed".into());
        }
        if self.options.replace.forces(&task.id) {
            change.kind = ChangeKind::Replace;
            change.reasons.push("forced by --replace".into());
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
        } else if let Some(r) = self.done_unrecorded(task, change, key_changed, &drift) {
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
    let here = |record: &TaskRecord| {
        model.hosts.iter().any(|h| {
            h.name == record.host().name
                && h.address == record.host().address
                && h.port == record.host().port
        })
    };
    for (id, record) in state.tasks.iter().filter(|(_, r)| here(r)) {
        let entry = by_host.entry(&record.host().name).or_default();
        entry.0 |= refresh.receipts.contains_key(id);
        entry.1 |= record.detail.shipped_files().is_some();
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
    for step in model.steps.iter().filter(|s| s.once) {
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
