//! [`StateDir`]: `.cairn/<cluster>/` beside the Clusterfile, and reading
//! and writing the state in it.
//!
//! Loading reads `state.json` (refusing one written by a newer cairn) and
//! replays the journal over it; compacting writes the state whole (atomic
//! and durable, see `atomic_file`) and empties the journal.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{STATE_VERSION, State, journal};

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
    /// The state backend (PostgreSQL) failed; the message says what and why.
    #[error("{0}")]
    Backend(String),
    /// The local state was moved to another backend and must not be used.
    #[error(
        "the local state of cluster `{cluster}` was migrated to {to} ({marker}); set `[state] backend = \"postgres\"` (or pass --state-url) to use it there, or `cairn state pull` to bring it back here"
    )]
    Migrated {
        cluster: String,
        to: String,
        marker: PathBuf,
    },
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
    /// Present once the state was migrated to another backend: it names
    /// where, and makes every use of the local state fail, saying so.
    pub fn migrated_marker(&self) -> PathBuf {
        self.dir.join("MIGRATED")
    }

    /// Fails when the local state was migrated away ([`StateDir::migrated_marker`]).
    pub fn check_not_migrated(&self) -> Result<(), StateError> {
        let marker = self.migrated_marker();
        match std::fs::read_to_string(&marker) {
            Ok(text) => Err(StateError::Migrated {
                cluster: self.cluster.clone(),
                to: text
                    .lines()
                    .next()
                    .unwrap_or("another backend")
                    .trim()
                    .to_string(),
                marker,
            }),
            Err(_) => Ok(()),
        }
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
        self.check_not_migrated()?;
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
        // Written in today's format, so it says so: an older cairn then
        // refuses it by name instead of failing on a missing field.
        state.version = STATE_VERSION;
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

    /// Writes an empty state if there is none, so the salt that keys
    /// secrets is the same from this run on (a saved plan and its apply
    /// must agree).
    pub fn ensure(&self) -> Result<(), StateError> {
        if !self.state_file().exists() {
            self.create()?;
            let mut fresh = self.load()?;
            self.compact(&mut fresh)?;
        }
        Ok(())
    }

    /// A new folder name for this run's task logs, under `runs/`: the
    /// [`run_id`], which the run's `--json` lines carry too. A second run
    /// in the same process (tests do that) gets a folder of its own.
    pub fn new_run_log_dir(&self) -> PathBuf {
        let dir = self.runs_dir().join(run_id());
        if dir.exists() {
            return self.runs_dir().join(run_id_now());
        }
        dir
    }

    /// Keeps the newest `keep` run logs. Only logs: failing to prune costs disk, nothing else.
    pub fn prune_runs(&self, keep: usize) {
        let Ok(entries) = std::fs::read_dir(self.runs_dir()) else {
            return;
        };
        let mut runs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        runs.sort();
        let excess = runs.len().saturating_sub(keep);
        for old in runs.into_iter().take(excess) {
            let _ = std::fs::remove_dir_all(old);
        }
    }
}

/// This process's run id: the UTC time it was first asked for, to the
/// millisecond (`20261201T174002.123Z`). An apply keeps its task logs in
/// `runs/<run id>`, and every JSON line or document cairn prints carries it.
pub fn run_id() -> &'static str {
    static RUN_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUN_ID.get_or_init(run_id_now)
}

fn run_id_now() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use crate::state::StateDir;

    /// A version-1 state kept each record's host twice (`host` beside
    /// `inputs.host`); it reads as is, the copy ignored.
    #[test]
    fn a_version_1_state_reads() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path(), "c");
        std::fs::create_dir_all(&state_dir.dir).unwrap();
        let key = "ab".repeat(32);
        let v1 = format!(
            r#"{{"version":1,"cluster":"c","salt":"00","serial":3,"next_seq":1,
            "tasks":{{"step.a@h":{{"key":"{key}",
              "inputs":{{"format":1,"action":{{"action":"step","name":"a","run":"true","cwd":null,"check":null,"undo":null,"capture":null,"timeout_ms":null,"retries":0,"once":false}},
                "host":{{"name":"h","address":"10.0.0.1","port":22,"user":"root","transport":"ssh"}},"vars":{{}},"deps":{{}}}},
              "host":{{"name":"h","address":"10.0.0.1","port":22,"user":"root","transport":"ssh"}},
              "detail":{{"kind":"step","captured":null,"undo":null,"undo_vars":{{}},"cwd":null}},
              "finished_at":"2026-01-01T00:00:00Z","seq":0}}}},
            "manifests":{{}}}}"#
        );
        std::fs::write(state_dir.state_file(), v1).unwrap();
        let mut state = state_dir.load().unwrap();
        let record = &state.tasks[&crate::ids::TaskId::parse("step.a@h").unwrap()];
        assert_eq!(record.host().address, "10.0.0.1");
        assert_eq!(state.serial, 3);
        // Written back, it is a version-2 state: the copy is gone and the version says so.
        state_dir.compact(&mut state).unwrap();
        let text = std::fs::read_to_string(state_dir.state_file()).unwrap();
        let written: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(written["version"], crate::state::STATE_VERSION);
        assert!(written["tasks"]["step.a@h"].get("host").is_none(), "{text}");
    }

    #[test]
    fn a_state_from_a_newer_cairn_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path(), "c");
        std::fs::create_dir_all(&state_dir.dir).unwrap();
        std::fs::write(state_dir.state_file(), r#"{"version":99}"#).unwrap();
        let err = state_dir.load().unwrap_err().to_string();
        assert!(err.contains("newer cairn (format 99"), "{err}");
    }
}
