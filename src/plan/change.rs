//! The plan's vocabulary: what happens to each task ([`Change`]), in a
//! [`Plan`] with its [`Summary`].

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::NodeIndex;
use serde::{Deserialize, Serialize};

use crate::hash::KeyInputs;
use crate::ids::{TaskId, TaskKey};
use crate::state::PendingRerun;
use crate::transport::Facts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Create,
    Update,
    Replace,
    Destroy,
    Noop,
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
    /// The task's host kept its name but moved to another machine: the
    /// record is undone on the old one (`address:port`), which is where
    /// this says, before the task is created on the new one.
    pub moved_from: Option<String>,
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
    /// Hosts whose address is an ssh config alias: `alias → machine`.
    pub aliases: BTreeMap<String, String>,
    /// What refresh read off each host.
    pub facts: BTreeMap<String, Facts>,
    /// What the operator should know before applying (a positional
    /// selector that now points at another host).
    pub warnings: Vec<String>,
    /// `once` steps this plan would move to another host without being
    /// told to (`--replace`): an apply refuses the plan.
    pub once_moves: Vec<String>,
    /// Recorded tasks this plan reruns because of a replace (asked now, or
    /// by an earlier apply that did not finish): an apply keeps them in the
    /// state until each has run.
    pub reruns: BTreeMap<TaskId, PendingRerun>,
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

    /// Whether an apply would record any task as converged without running it.
    pub fn adopts(&self) -> bool {
        self.changes.iter().any(|c| c.adopt)
    }

    /// Each host that could not be refreshed, as one line that names it.
    pub fn unreachable_messages(&self) -> Vec<String> {
        self.unreachable
            .iter()
            .map(|(host, why)| {
                if why.starts_with(&format!("host {host}")) {
                    why.clone()
                } else {
                    format!("host {host}: {why}")
                }
            })
            .collect()
    }
}
