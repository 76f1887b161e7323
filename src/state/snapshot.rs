//! [`State`]: everything recorded for one cluster, in memory.
//!
//! A state is `state.json` with the journal replayed over it: each
//! [`JournalEntry`] is applied in order ([`State::apply`]), which is how a
//! killed apply's finished tasks survive it. Bundle manifests are kept once
//! per Merkle root, shared by every host that got them, and dropped when no
//! record refers to them any more. Reruns an apply was asked for (`--replace`
//! and what it forced downstream) are kept until each task has run, so an
//! interrupted or failed replace is not forgotten by the next plan.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{HostRecord, STATE_VERSION, TaskRecord};
use crate::bundle::manifest::Manifest;
use crate::ids::TaskId;

/// Everything recorded for one cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub cluster: String,
    /// Salt of secret fingerprints in keys; random, made on first use.
    pub salt: String,
    /// Incremented by each apply that changed something.
    pub serial: u64,
    pub next_seq: u64,
    pub tasks: BTreeMap<TaskId, TaskRecord>,
    /// Bundle manifests by root, shared by all hosts that got them.
    pub manifests: BTreeMap<String, Manifest>,
    /// How each host was reached at its last apply, by name.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostRecord>,
    /// Positional selectors (`master[0]`) → the host each pointed at, at
    /// the last apply.
    #[serde(default)]
    pub positions: BTreeMap<String, String>,
    /// Tasks an apply was to rerun because of a replace, and has not run
    /// yet (interrupted, failed, or blocked); each leaves once it is done.
    /// Absent from older states, which read as having none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reruns: BTreeMap<TaskId, PendingRerun>,
}

/// Why an apply was to rerun a task whose inputs had not changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingRerun {
    /// `--replace` named it: undone (a step's undo) and done again.
    Replace,
    /// It comes after a task rerun because of a replace, or reads a value
    /// captured again in the same apply.
    Downstream,
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JournalEntry {
    Done {
        id: TaskId,
        record: Box<TaskRecord>,
    },
    Forget {
        id: TaskId,
    },
    Manifest {
        root: String,
        manifest: Manifest,
    },
    /// How a host is reached, recorded when an apply reaches it.
    Host {
        name: String,
        record: Box<HostRecord>,
    },
    /// A host cairn no longer knows: its records and how to reach it are
    /// forgotten (it left and was cleaned, or `cairn state rm`).
    ForgetHost {
        name: String,
    },
    /// Where each positional selector points, recorded at an apply.
    Positions {
        positions: BTreeMap<String, String>,
    },
    /// Tasks this apply reruns because of a replace, written before any of
    /// them runs; each task's `Done` clears it.
    Reruns {
        tasks: BTreeMap<TaskId, PendingRerun>,
    },
}

impl State {
    pub fn new(cluster: &str) -> State {
        use rand::Rng;
        let salt: [u8; 16] = rand::rng().random();
        State {
            version: STATE_VERSION,
            cluster: cluster.to_string(),
            salt: hex::encode(salt),
            serial: 0,
            next_seq: 0,
            tasks: BTreeMap::new(),
            manifests: BTreeMap::new(),
            hosts: BTreeMap::new(),
            positions: BTreeMap::new(),
            reruns: BTreeMap::new(),
        }
    }

    pub fn apply(&mut self, entry: JournalEntry) {
        match entry {
            JournalEntry::Done { id, record } => {
                // Saturating: a damaged journal may say any seq, even u64::MAX.
                self.next_seq = self.next_seq.max(record.seq.saturating_add(1));
                self.reruns.remove(&id);
                self.tasks.insert(id, *record);
            }
            JournalEntry::Forget { id } => {
                self.reruns.remove(&id);
                self.tasks.remove(&id);
            }
            JournalEntry::Manifest { root, manifest } => {
                self.manifests.insert(root, manifest);
            }
            JournalEntry::Host { name, record } => {
                self.hosts.insert(name, *record);
            }
            JournalEntry::Positions { positions } => {
                self.positions = positions;
            }
            JournalEntry::Reruns { tasks } => {
                self.reruns.extend(tasks);
            }
            JournalEntry::ForgetHost { name } => {
                self.reruns
                    .retain(|id, _| id.as_str().rsplit_once('@').map(|(_, h)| h) != Some(&name));
                self.tasks.retain(|_, r| r.host().name != name);
                self.hosts.remove(&name);
            }
        }
    }

    /// Drops manifests no task refers to any more.
    pub fn prune_manifests(&mut self) {
        let used: std::collections::BTreeSet<&str> = self
            .tasks
            .values()
            .filter_map(|r| match &r.inputs.action {
                crate::hash::ActionSpec::Bundle { base_root, .. } => Some(base_root.as_str()),
                _ => None,
            })
            .collect();
        self.manifests
            .retain(|root, _| used.contains(root.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> TaskId {
        TaskId::parse(text).unwrap()
    }

    #[test]
    fn a_state_without_reruns_reads_and_reruns_leave_as_their_tasks_are_done_or_forgotten() {
        let mut older = serde_json::to_value(State::new("c")).unwrap();
        older.as_object_mut().unwrap().remove("reruns");
        let mut state: State = serde_json::from_value(older).expect("an older state reads");
        assert!(state.reruns.is_empty());
        assert!(
            !serde_json::to_string(&state).unwrap().contains("reruns"),
            "none is not written"
        );

        let line = r#"{"op":"reruns","tasks":{"step.a@h1":"replace","step.b@h1":"downstream","step.c@h2":"downstream"}}"#;
        state.apply(serde_json::from_str(line).expect("a journal line"));
        assert_eq!(state.reruns.len(), 3);
        state.apply(JournalEntry::Forget {
            id: id("step.b@h1"),
        });
        state.apply(JournalEntry::ForgetHost { name: "h2".into() });
        assert_eq!(
            state.reruns.into_iter().collect::<Vec<_>>(),
            [(id("step.a@h1"), PendingRerun::Replace)]
        );
    }
}
