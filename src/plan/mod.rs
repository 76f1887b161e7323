//! The plan: what an apply would do to each task, and why.
//!
//! [`diff`] walks the sealed graph in dependency order. For each task it
//! fills in the keys of what it waits for (the *effective* keys: a `once`
//! step that will not rerun passes its recorded key on, so nothing
//! downstream reruns because of it), hashes the inputs, and compares with
//! the record and with what refresh saw on the host:
//!
//! - no record: create (`+`), unless a step's `check` already passes and it
//!   captures nothing, in which case it is adopted as converged;
//! - key changed, or the host no longer matches the record: update (`~`);
//! - `--replace`, or a bundle/file whose destination moved: replace (`-/+`);
//! - a record with no task any more: destroy (`-`);
//! - otherwise unchanged.
//!
//! Every change carries its reasons in words, built from the stored inputs
//! (`hash::explain`), the bundle manifests, and the observations.

pub mod refresh;
pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::graph::NodeIndex;
use serde::{Deserialize, Serialize};

use crate::graph::{TaskGraph, Work};
use crate::hash::{self, ActionSpec, KeyInputs};
use crate::ids::TaskId;
use crate::ids::TaskKey;
use crate::model::{ElementRef, Model};
use crate::state::{RecordDetail, State, TaskRecord};
use crate::transport::Observed;
pub use refresh::{Observation, Refresh};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Create,
    Update,
    Replace,
    Destroy,
    Noop,
}

impl ChangeKind {
    pub fn symbol(self) -> &'static str {
        match self {
            ChangeKind::Create => "+",
            ChangeKind::Update => "~",
            ChangeKind::Replace => "-/+",
            ChangeKind::Destroy => "-",
            ChangeKind::Noop => " ",
        }
    }
}

/// One task's fate.
#[derive(Debug, Clone)]
pub struct Change {
    pub id: TaskId,
    pub host: String,
    pub kind: ChangeKind,
    pub reasons: Vec<String>,
    /// Changes seen but not acted on (`once = true`).
    pub ignored: Vec<String>,
    /// The task in the graph (None for destroys).
    pub node: Option<NodeIndex>,
    /// The key the task will have after this apply.
    pub key: Option<TaskKey>,
    /// The inputs of that key, deps included.
    pub inputs: Option<KeyInputs>,
    /// Never ran, but its `check` passes: recorded as converged without running.
    pub adopt: bool,
    /// What refresh found on the host differs from the record (hand edits,
    /// missing files, failing checks), as opposed to a changed Clusterfile.
    pub drifted: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub unchanged: usize,
}

#[derive(Debug)]
pub struct Plan {
    pub cluster: String,
    pub offline: bool,
    /// Every task of the graph in dependency order, then the destroys (newest first).
    pub changes: Vec<Change>,
    /// Hosts that could not be refreshed, with why; their tasks are left out.
    pub unreachable: BTreeMap<String, String>,
    /// Hosts left out by `--limit`.
    pub excluded_hosts: BTreeSet<String>,
    /// What refresh read off each host.
    pub facts: BTreeMap<String, crate::transport::Facts>,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.kind {
                ChangeKind::Create => s.add += 1,
                ChangeKind::Update => s.change += 1,
                ChangeKind::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
                ChangeKind::Destroy => s.destroy += 1,
                ChangeKind::Noop => s.unchanged += 1,
            }
        }
        s
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.kind != ChangeKind::Noop)
    }
}

/// What the diff needs besides graph and state.
#[derive(Debug, Default)]
pub struct DiffOptions {
    /// `--replace` patterns: a task id, or its element part (`step.init`) for all hosts.
    pub replace: Vec<String>,
    /// Hosts to leave out (by `--limit`).
    pub excluded_hosts: BTreeSet<String>,
    pub offline: bool,
}

pub fn matches_replace(patterns: &[String], id: &TaskId) -> bool {
    patterns
        .iter()
        .any(|p| p == id.as_str() || p == id.element_part())
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
        let replace = matches_replace(&options.replace, &task.id);
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

/// What refresh found different from the record.
fn drift_reasons(observation: Option<&Observation>, record: Option<&TaskRecord>) -> Vec<String> {
    let recorded_hash = |rel: &str| -> Option<&str> {
        match &record?.detail {
            RecordDetail::Bundle { shipped, .. } => shipped.get(rel).map(|f| f.hash.as_str()),
            RecordDetail::File { shipped, .. } => Some(shipped.hash.as_str()),
            RecordDetail::Step { .. } => None,
        }
    };
    match observation {
        Some(Observation::Check {
            passed: false,
            code,
        }) => vec![match code {
            Some(c) => format!("check failed on the host (exit {c})"),
            None => "check did not pass on the host".into(),
        }],
        Some(Observation::Files(found)) => {
            let mut modified = Vec::new();
            let mut missing = Vec::new();
            for (rel, o) in found {
                let name = match (rel.is_empty(), record.map(|r| &r.detail)) {
                    (true, Some(RecordDetail::File { dest, .. })) => dest.clone(),
                    (true, _) => "the file".to_string(),
                    (false, _) => rel.clone(),
                };
                match o {
                    Observed::Missing => missing.push(name),
                    Observed::Hashed(h) if Some(h.as_str()) != recorded_hash(rel) => {
                        modified.push(name)
                    }
                    Observed::Hashed(_) | Observed::Unchanged => {}
                }
            }
            let mut out = Vec::new();
            if !modified.is_empty() {
                out.push(format!("changed on the host: {}", short_list(&modified)));
            }
            if !missing.is_empty() {
                out.push(format!("missing on the host: {}", short_list(&missing)));
            }
            out
        }
        _ => Vec::new(),
    }
}

fn short_list(items: &[String]) -> String {
    if items.len() <= 3 {
        items.join(", ")
    } else {
        format!("{}, +{} more", items[..3].join(", "), items.len() - 3)
    }
}

/// Reasons for a key change, with bundle content explained file by file.
fn explain(
    graph: &TaskGraph,
    state: &State,
    record: &TaskRecord,
    new: &KeyInputs,
    task: &crate::graph::Task,
) -> Vec<String> {
    let mut reasons = hash::explain(&record.inputs, new);
    if let (
        ActionSpec::Bundle {
            name,
            base_root: old_root,
            rendered: old_rendered,
            ..
        },
        ActionSpec::Bundle {
            base_root: new_root,
            rendered: new_rendered,
            ..
        },
    ) = (&record.inputs.action, &new.action)
    {
        let mut parts = Vec::new();
        if old_root != new_root {
            let bundle_index = match task.element {
                ElementRef::Bundle(i) => i,
                _ => unreachable!("bundle action on a bundle element"),
            };
            let new_manifest = &graph.bundles[bundle_index].base_manifest;
            match state.manifests.get(old_root) {
                Some(old) => {
                    let d = new_manifest.diff(old);
                    if !d.is_empty() {
                        parts.push(d.describe());
                    }
                }
                None => parts.push("content changed".into()),
            }
        }
        let rendered: Vec<String> = new_rendered
            .iter()
            .filter(|(p, h)| old_rendered.get(*p) != Some(*h))
            .map(|(p, _)| p.clone())
            .chain(
                old_rendered
                    .keys()
                    .filter(|p| !new_rendered.contains_key(*p))
                    .cloned(),
            )
            .collect();
        if !rendered.is_empty() {
            parts.push(format!(
                "{} rendered differently ({})",
                if rendered.len() == 1 {
                    "1 template"
                } else {
                    "templates"
                },
                short_list(&rendered)
            ));
        }
        if !parts.is_empty() {
            reasons.insert(0, format!("bundle {name}: {}", parts.join(", ")));
        }
    }
    reasons
}
