//! Local state: `.cairn/<cluster>/` beside the Clusterfile.
//!
//! `state.json` holds every task cairn has completed: its key and the
//! inputs it was made from, what it left on the host (files shipped with
//! their stat, values captured), and when; and the tasks a `--replace` is
//! to rerun that have not run yet (`reruns`, absent from older states,
//! which read as having none). During an apply each completed
//! task is appended to `journal.jsonl` and fsynced before the run goes on
//! (a writer thread groups the fsyncs of tasks that finish together), so
//! killing cairn at any instant loses at most the tasks in flight; the next
//! load replays the journal over `state.json`, and a clean end compacts both
//! into a new `state.json` (written to a temp file, fsynced, renamed). A
//! torn last line of the journal, from a kill mid-write, is ignored.
//!
//! `lock` is held with `flock` for the whole apply: the kernel frees it when
//! the process dies, so a killed cairn never leaves a stale lock behind, and
//! the file says who holds it so a refused second apply can name the holder
//! (or, with `--lock-timeout`, wait for it). `lock.rs` also holds what every
//! lock shares: the holder, whether it still lives, and what a wait tells.

pub mod backend;
mod folder;
mod hosts;
pub mod journal;
pub mod lock;
pub mod postgres;
mod records;

mod snapshot;

pub use backend::{ClusterHolder, ClusterLock, Store, StoreError};
pub use folder::{StateDir, StateError, run_id};
pub use hosts::HostRecord;
pub use journal::Journal;
pub use lock::{
    InFlight, Liveness, LockError, LockHolder, LockNotice, LockNotices, LockPolicy, LockScope,
    ProcessStamp, StateLock,
};
pub use records::{RecordDetail, ShippedFile, TaskRecord, now_rfc3339};
pub use snapshot::{JournalEntry, PendingRerun, State};

/// Version of the state file format. 2: a record's host is kept once, in its
/// key inputs (`inputs.host`); a version-1 state (which also had a `host`
/// beside them, always equal) reads as is, the extra field ignored.
/// 3: hosts without a `name` are named by their address, not their position,
/// and each host has a [`HostRecord`]; an older state reads, and is migrated
/// against the Clusterfile (`pipeline`: hosts matched by address and port).
pub const STATE_VERSION: u32 = 3;

/// The last version that named unnamed hosts by their position.
pub const POSITIONAL_NAMES_VERSION: u32 = 2;
