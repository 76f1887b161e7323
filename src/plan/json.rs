//! The plan as programs read it: a stable, versioned JSON document
//! (`plan --json`), described in docs/clusterfile.md ("Plan JSON"). Saved
//! plans (`plan -o FILE`) are this document too. Fields are only ever added.

use serde::{Deserialize, Serialize};

use super::{Change, ChangeKind, FileDiff, FileDiffs, Plan, Summary};
use crate::ids::{TaskId, TaskKey};

/// Version of the plan JSON document.
pub const PLAN_JSON_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanJson {
    pub format_version: u32,
    pub cluster: String,
    pub offline: bool,
    pub changes: Vec<ChangeJson>,
    pub unreachable: Vec<UnreachableJson>,
    pub summary: Summary,
    /// Facts each refreshed host reported (hostname, OS, arch, zstd).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub hosts: std::collections::BTreeMap<String, crate::transport::Facts>,
    /// Hosts whose address is an ssh config alias: `alias → machine`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aliases: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeJson {
    pub task: TaskId,
    pub host: String,
    pub action: ChangeKind,
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// The task's key after the apply (absent for destroys).
    pub key: Option<TaskKey>,
    /// The host already has what this task would do (its receipt, or its
    /// `check` passed): the apply records it without running it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
    /// With `--diff`: each file this change writes or removes, against what
    /// the host has now (absent without `--diff`, or when no file changes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<FileDiff>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachableJson {
    pub host: String,
    pub error: String,
}

impl Plan {
    pub fn to_json(&self) -> PlanJson {
        PlanJson {
            format_version: PLAN_JSON_VERSION,
            cluster: self.cluster.clone(),
            offline: self.offline,
            changes: self.changes.iter().map(Change::to_json).collect(),
            unreachable: self
                .unreachable
                .iter()
                .map(|(h, e)| UnreachableJson {
                    host: h.clone(),
                    error: e.clone(),
                })
                .collect(),
            summary: self.summary(),
            hosts: self.facts.clone(),
            aliases: self.aliases.clone(),
        }
    }
}

impl Change {
    /// This change as the plan document lists it.
    pub fn to_json(&self) -> ChangeJson {
        ChangeJson {
            task: self.id.clone(),
            host: self.host.clone(),
            action: self.kind,
            reasons: self.reasons.clone(),
            ignored: self.ignored.clone(),
            key: self.key.clone(),
            adopt: self.adopt,
            diffs: Vec::new(),
        }
    }
}

impl PlanJson {
    /// The document with each change's file diffs (`plan --diff --json`).
    #[must_use]
    pub fn with_diffs(mut self, diffs: &FileDiffs) -> PlanJson {
        for change in &mut self.changes {
            change.diffs = diffs.of(&change.task).to_vec();
        }
        self
    }
}
