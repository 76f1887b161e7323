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

mod folder;
pub mod journal;
pub mod lock;
mod records;
mod snapshot;

pub use folder::{StateDir, StateError};
pub use journal::Journal;
pub use lock::{LockError, LockHolder, StateLock};
pub use records::{RecordDetail, ShippedFile, TaskRecord, now_rfc3339};
pub use snapshot::{JournalEntry, State};

/// Version of the state file format. 2: a record's host is kept once, in its
/// key inputs (`inputs.host`); a version-1 state (which also had a `host`
/// beside them, always equal) reads as is, the extra field ignored.
pub const STATE_VERSION: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

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
        let state = state_dir.load().unwrap();
        let record = &state.tasks[&crate::ids::TaskId::parse("step.a@h").unwrap()];
        assert_eq!(record.host().address, "10.0.0.1");
        assert_eq!(state.serial, 3);
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
