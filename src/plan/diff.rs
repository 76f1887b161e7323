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
//! - key changed, or the host no longer matches the record: update (`~`);
//! - `--replace`, or a bundle/file whose destination moved: replace (`-/+`);
//! - a record with no task any more: destroy (`-`);
//! - otherwise unchanged.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::graph::NodeIndex;

use super::reasons::{drift_reasons, explain};
use super::{Change, ChangeKind, Observation, Plan, Refresh, Replacements};
use crate::graph::{TaskGraph, Work};
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
}

/// Compares desired keys, records and observations.
pub fn diff(
    model: &Model,
    graph: &TaskGraph,
    state: &State,
    refresh: &Refresh,
    options: &DiffOptions,
) -> Plan {
    // Hosts something ran on, to tell a new host from a new task on a known one.
    let recorded_hosts: BTreeSet<&str> = state
        .tasks
        .values()
        .map(|r| r.host().name.as_str())
        .collect();
    let mut changes = Vec::with_capacity(graph.len());
    let mut effective: HashMap<NodeIndex, TaskKey> = HashMap::with_capacity(graph.len());
    for &node in graph.topological() {
        let task = graph.task(node);
        let host_name = &model.host(task.host).name;
        let mut inputs = task.inputs.clone();
        inputs.deps = graph
            .upstream(node)
            .filter_map(|up| {
                effective
                    .get(&up)
                    .map(|k| (graph.task(up).id.clone(), k.clone()))
            })
            .collect::<BTreeMap<_, _>>();
        let key = inputs.key();
        if options.excluded_hosts.contains(host_name) || refresh.unreachable.contains_key(host_name)
        {
            // Not touched this run: downstream tasks see the recorded key.
            if let Some(record) = state.tasks.get(&task.id) {
                effective.insert(node, record.key.clone());
            }
            continue;
        }
        let record = state.tasks.get(&task.id);
        let observation = refresh.observations.get(&task.id);
        let mut change = Change {
            id: task.id.clone(),
            host: host_name.clone(),
            kind: ChangeKind::Noop,
            reasons: Vec::new(),
            ignored: Vec::new(),
            node: Some(node),
            key: Some(key.clone()),
            inputs: Some(inputs.clone()),
            adopt: false,
            drifted: false,
        };
        let replace = options.replace.forces(&task.id);
        let drift = drift_reasons(observation, record);
        change.drifted = record.is_some() && !drift.is_empty();

        match record {
            None => {
                let adopt = match (&task.work, observation) {
                    (Work::Step { step }, Some(Observation::Check { passed: true, .. })) => {
                        model.steps[*step].capture.is_none()
                    }
                    _ => false,
                };
                // Not in this state, but the host has a receipt: another operator
                // (or a lost state) did it. A `once` step is never run twice.
                let receipt = match &task.work {
                    Work::Step { step } => refresh.receipts.get(&task.id).filter(|r| {
                        (r.key == key || task.once)
                            && (model.steps[*step].capture.is_none()
                                || r.captured.is_some()
                                || task.once)
                    }),
                    _ => None,
                };

                if replace {
                    change.kind = ChangeKind::Create;
                    change.reasons.push("forced by --replace".into());
                } else if let Some(r) = receipt {
                    change.adopt = true;
                    change.reasons.push(format!(
                        "done on the host by {} at {} (its receipt): recorded without running",
                        r.by, r.finished_at
                    ));
                } else if adopt {
                    change.adopt = true;
                    change
                        .reasons
                        .push("check passes: already converged, recorded without running".into());
                } else {
                    change.kind = ChangeKind::Create;
                    change
                        .reasons
                        .push(if recorded_hosts.contains(host_name.as_str()) {
                            "new task".into()
                        } else {
                            "new host".into()
                        });
                }
            }
            Some(record) => {
                let mut reasons = if record.key == key {
                    Vec::new()
                } else {
                    explain(graph, state, record, &inputs, task)
                };
                if record.key != key && reasons.is_empty() {
                    reasons.push("inputs changed".into());
                }
                let moved = dest_moved(&record.detail, &task.work);
                if replace {
                    change.kind = ChangeKind::Replace;
                    change.reasons.push("forced by --replace".into());
                    change.reasons.extend(reasons);
                    change.reasons.extend(drift);
                } else if task.once {
                    if !drift.is_empty() {
                        change.kind = ChangeKind::Update;
                        change.reasons.extend(drift);
                        change.reasons.extend(reasons);
                    } else {
                        // Keep the recorded key so nothing downstream reruns because of this step.
                        change.key = Some(record.key.clone());
                        change.inputs = Some(record.inputs.clone());
                        change.ignored = reasons;
                    }
                } else if moved {
                    change.kind = ChangeKind::Replace;
                    change.reasons.extend(reasons);
                } else if !reasons.is_empty() || !drift.is_empty() {
                    change.kind = ChangeKind::Update;
                    change.reasons.extend(drift);
                    change.reasons.extend(reasons);
                }
            }
        }
        effective.insert(node, change.key.clone().expect("graph tasks have keys"));
        changes.push(change);
    }
    // Records with no task: destroy, newest first.
    let mut gone: Vec<(&TaskId, &TaskRecord)> = state
        .tasks
        .iter()
        .filter(|(id, r)| {
            graph.find(id).is_none() && !options.excluded_hosts.contains(&r.host().name)
        })
        .collect();
    gone.sort_by_key(|(_, r)| std::cmp::Reverse(r.seq));
    for (id, record) in gone {
        let host_gone = !model.hosts.iter().any(|h| h.name == record.host().name);
        let what = match &record.detail {
            RecordDetail::Step { undo: Some(_), .. } => "runs its undo",
            RecordDetail::Step { .. } => "no undo: only forgotten",
            RecordDetail::Bundle { .. } | RecordDetail::File { .. } => {
                "removes the files it shipped"
            }
        };
        let why = if host_gone {
            "host left the Clusterfile"
        } else {
            "no longer in the Clusterfile"
        };
        changes.push(Change {
            id: id.clone(),
            host: record.host().name.clone(),
            kind: ChangeKind::Destroy,
            reasons: vec![format!("{why}; {what}")],
            ignored: Vec::new(),
            node: None,
            key: None,
            inputs: None,
            adopt: false,
            drifted: false,
        });
    }
    Plan {
        facts: refresh.facts.clone(),
        cluster: model.name.clone(),
        offline: options.offline,

        changes,
        unreachable: refresh.unreachable.clone(),
        excluded_hosts: options.excluded_hosts.clone(),
    }
}

fn dest_moved(detail: &RecordDetail, work: &Work) -> bool {
    match (detail, work) {
        (RecordDetail::Bundle { dest: old, .. }, Work::Bundle { dest: new, .. }) => old != new,
        (RecordDetail::File { dest: old, .. }, Work::File { dest: new, .. }) => old != new,
        _ => false,
    }
}
