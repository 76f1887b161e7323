//! Local state: `.cairn/<cluster>/` beside the Clusterfile.
//!
//! `state.json` holds every task cairn has completed: its key and the
//! inputs it was made from, what it left on the host (files shipped with
//! their stat, values captured), and when. During an apply each completed
//! task is appended to `journal.jsonl` and fsynced before the run goes on
//! (a writer thread groups the fsyncs of tasks that finish together), so
//! killing cairn at any instant loses at most the tasks in flight; the next
//! load replays the journal over `state.json`, and a clean end compacts both
//! into a new `state.json` (written to a temp file, fsynced, renamed). A
//! torn last line of the journal, from a kill mid-write, is ignored.
//!
//! `lock` is held with `flock` for the whole apply: the kernel frees it when
//! the process dies, so a killed cairn never leaves a stale lock behind, and
//! the file says who holds it so a refused second apply can name the holder.

pub mod journal;
pub mod lock;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bundle::manifest::Manifest;
use crate::hash::{HostIdentity, KeyInputs};
use crate::ids::{TaskId, TaskKey};
pub use journal::Journal;
pub use lock::{LockError, LockHolder, StateLock};

/// Version of the state file format. 2: a record's host is kept once, in its
/// key inputs (`inputs.host`); a version-1 state (which also had a `host`
/// beside them, always equal) reads as is, the extra field ignored.
pub const STATE_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "state file {path} was written by a newer cairn (format {found}, this cairn reads {STATE_VERSION})"
    )]
    TooNew { path: PathBuf, found: u32 },
}

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
}

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JournalEntry {
    Done { id: TaskId, record: Box<TaskRecord> },
    Forget { id: TaskId },
    Manifest { root: String, manifest: Manifest },
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
        }
    }

    pub fn apply(&mut self, entry: JournalEntry) {
        match entry {
            JournalEntry::Done { id, record } => {
                self.next_seq = self.next_seq.max(record.seq + 1);
                self.tasks.insert(id, *record);
            }
            JournalEntry::Forget { id } => {
                self.tasks.remove(&id);
            }
            JournalEntry::Manifest { root, manifest } => {
                self.manifests.insert(root, manifest);
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

/// The folder of one cluster's state and the files in it.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
    pub cluster: String,
}

impl StateDir {
    /// `.cairn/<cluster>/` beside the Clusterfile.
    pub fn new(base_dir: &Path, cluster: &str) -> StateDir {
        StateDir {
            dir: base_dir.join(".cairn").join(cluster),
            cluster: cluster.to_string(),
        }
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn journal_file(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }
    /// Shared by the clusters of one folder: hashes and unpacked archives.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir
            .parent()
            .expect("state dir has a parent")
            .join("cache")
    }

    pub fn create(&self) -> Result<(), StateError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| StateError::Io {
            action: "create",
            path: self.dir.clone(),
            source,
        })?;
        let gitignore = self.dir.parent().expect("has parent").join(".gitignore");
        if !gitignore.exists() {
            // State holds captured values; keep it out of version control by default.
            let _ = std::fs::write(&gitignore, "*\n");
        }
        Ok(())
    }

    /// Loads `state.json` and replays the journal over it; a fresh state when there is none.
    pub fn load(&self) -> Result<State, StateError> {
        let path = self.state_file();
        let mut state = match std::fs::read(&path) {
            Ok(bytes) => {
                #[derive(Deserialize)]
                struct Version {
                    version: u32,
                }
                let v: Version =
                    serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                if v.version > STATE_VERSION {
                    return Err(StateError::TooNew {
                        path,
                        found: v.version,
                    });
                }
                serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::new(&self.cluster),
            Err(source) => {
                return Err(StateError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        for entry in journal::replay(&self.journal_file())? {
            state.apply(entry);
        }
        Ok(state)
    }

    /// Writes `state` as the new `state.json` and empties the journal.
    pub fn compact(&self, state: &mut State) -> Result<(), StateError> {
        state.prune_manifests();
        let path = self.state_file();
        let bytes = serde_json::to_vec_pretty(state).expect("state serializes");
        crate::atomic_file::write_atomic(&path, &bytes, true).map_err(|source| StateError::Io {
            action: "write",
            path: path.clone(),
            source,
        })?;
        let journal = self.journal_file();
        match std::fs::remove_file(&journal) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io {
                action: "remove",
                path: journal,
                source,
            }),
        }
    }
}

/// Now, RFC 3339, seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
