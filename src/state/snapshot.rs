//! [`State`]: everything recorded for one cluster, in memory.
//!
//! A state is `state.json` with the journal replayed over it: each
//! [`JournalEntry`] is applied in order ([`State::apply`]), which is how a
//! killed apply's finished tasks survive it. Bundle manifests are kept once
//! per Merkle root, shared by every host that got them, and dropped when no
//! record refers to them any more.

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
        record: HostRecord,
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
        }
    }

    pub fn apply(&mut self, entry: JournalEntry) {
        match entry {
            JournalEntry::Done { id, record } => {
                // Saturating: a damaged journal may say any seq, even u64::MAX.
                self.next_seq = self.next_seq.max(record.seq.saturating_add(1));
                self.tasks.insert(id, *record);
            }
            JournalEntry::Forget { id } => {
                self.tasks.remove(&id);
            }
            JournalEntry::Manifest { root, manifest } => {
                self.manifests.insert(root, manifest);
            }
            JournalEntry::Host { name, record } => {
                self.hosts.insert(name, record);
            }
            JournalEntry::Positions { positions } => {
                self.positions = positions;
            }
            JournalEntry::ForgetHost { name } => {
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
