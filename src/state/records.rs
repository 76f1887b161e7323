//! What one completed task left behind: its key and inputs, and by kind the
//! files it shipped (with their stat) or the value it captured and how to
//! undo it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::{HostIdentity, KeyInputs};
use crate::ids::TaskKey;

/// A file as cairn left it on a host: its content and the stat that lets
/// refresh skip rehashing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippedFile {
    pub hash: String,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
}

/// What a completed task left behind, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordDetail {
    Bundle {
        dest: String,
        shipped: BTreeMap<String, ShippedFile>,
    },
    File {
        dest: String,
        shipped: ShippedFile,
    },
    Step {
        /// The captured stdout, if the step captures.
        captured: Option<String>,
        /// The captured value held a secret: it is stored masked, and a
        /// later run that needs it must rerun the step.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        captured_masked: bool,

        /// The undo command as written, and the non-secret values it needs, so
        /// it can still run after the step left the Clusterfile.
        undo: Option<String>,
        undo_vars: BTreeMap<String, String>,
        /// The folder the step ran in (rendered), where its undo runs too.
        cwd: Option<String>,
    },
}

impl RecordDetail {
    /// Whether the task shipped files (a bundle or a file), without copying
    /// them as [`RecordDetail::shipped_files`] does.
    pub fn ships_files(&self) -> bool {
        self.shipped_dest().is_some()
    }

    /// Where a bundle or file task shipped to.
    pub fn shipped_dest(&self) -> Option<&str> {
        match self {
            RecordDetail::Bundle { dest, .. } | RecordDetail::File { dest, .. } => Some(dest),
            RecordDetail::Step { .. } => None,
        }
    }

    /// What a bundle or file task shipped: its destination and the files by
    /// path (a single file is the path `""`, meaning the destination itself).
    pub fn shipped_files(&self) -> Option<(&str, BTreeMap<String, ShippedFile>)> {
        match self {
            RecordDetail::Bundle { dest, shipped } => Some((dest, shipped.clone())),
            RecordDetail::File { dest, shipped } => {
                Some((dest, BTreeMap::from([(String::new(), shipped.clone())])))
            }
            RecordDetail::Step { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub key: TaskKey,
    /// What the key was made from; its `host` is the host the task ran on,
    /// kept so the task can be undone after its host left the Clusterfile.
    pub inputs: KeyInputs,
    pub detail: RecordDetail,
    /// RFC 3339 time the task finished.
    pub finished_at: String,
    /// Completion order, for undoing newest first.
    pub seq: u64,
}

impl TaskRecord {
    /// The host the task ran on.
    pub fn host(&self) -> &HostIdentity {
        &self.inputs.host
    }
}

/// Now, RFC 3339, seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
