//! [`Store`]: where a cluster's state and its lock live — the local folder
//! or PostgreSQL — behind one set of calls the pipeline makes: load,
//! make sure a state exists, lock, journal, compact.
//!
//! The local folder `.cairn/<cluster>/` is there with either backend: it
//! keeps what belongs to this machine (run logs, the hash cache, the local
//! transport's receipts). With PostgreSQL, only the state and the cluster
//! lock move. A local state that was migrated away refuses to be used.

use std::sync::Arc;

/// Journal rows after the newest snapshot beyond which taking the lock
/// compacts them first (runs killed before their end leave them), so
/// that reading a cluster's state stays one snapshot and a short tail
/// even when no apply has finished for a while.
const COMPACT_TAIL_OVER: i64 = 1000;

use super::journal::{Journal, Sink};
use super::postgres::{PgHolder, PgLock, PgStore};
use super::{JournalEntry, LockError, LockPolicy, State, StateDir, StateError, StateLock};
use crate::model::state_settings::StateSettings;

/// A cluster's state, wherever it is kept.
#[derive(Debug, Clone)]
pub enum Store {
    Local(StateDir),
    Postgres(Arc<PgStore>),
}

/// The held cluster lock, of either backend; dropping it releases it.
#[derive(Debug)]
pub enum ClusterLock {
    Local(StateLock),
    Postgres(PgLock),
}

/// Who holds a cluster lock, as `cairn unlock` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterHolder {
    /// The lock file on this machine.
    Local(String),
    /// A database session.
    Postgres(PgHolder),
}

impl ClusterHolder {
    pub fn description(&self) -> &str {
        match self {
            ClusterHolder::Local(text) => text,
            ClusterHolder::Postgres(holder) => &holder.description,
        }
    }
}

impl Store {
    /// The store `[state]` names for the cluster whose folder is `dir`.
    pub fn new(settings: &StateSettings, dir: &StateDir) -> Store {
        match settings {
            StateSettings::Local => Store::Local(dir.clone()),
            StateSettings::Postgres(pg) => {
                Store::Postgres(Arc::new(PgStore::new(pg.clone(), &dir.cluster)))
            }
        }
    }

    /// Where the state is, for the operator: "this machine" or the schema.
    pub fn place(&self) -> String {
        match self {
            Store::Local(dir) => dir.dir.display().to_string(),
            Store::Postgres(pg) => format!("PostgreSQL, schema `{}`", pg.schema()),
        }
    }

    pub fn load(&self) -> Result<State, StateError> {
        match self {
            Store::Local(dir) => dir.load(),
            Store::Postgres(pg) => pg.load(),
        }
    }

    /// Makes sure a state exists, so the salt that keys secrets is fixed from now on.
    pub fn ensure(&self) -> Result<(), StateError> {
        match self {
            Store::Local(dir) => {
                dir.check_not_migrated()?;
                dir.ensure()
            }
            Store::Postgres(pg) => pg.ensure(),
        }
    }

    /// Writes `state` whole as the new base and drops the journal it covers.
    pub fn compact(&self, state: &mut State) -> Result<(), StateError> {
        match self {
            Store::Local(dir) => dir.compact(state),
            Store::Postgres(pg) => {
                state.prune_manifests();
                state.version = super::STATE_VERSION;
                pg.compact(state)
            }
        }
    }

    /// A journal to append completed tasks to (under the lock).
    pub fn journal(&self) -> Result<Journal, StateError> {
        match self {
            Store::Local(dir) => Journal::open(&dir.journal_file()),
            Store::Postgres(pg) => Journal::start(Box::new(PgSink(pg.clone())), None),
        }
    }

    /// Takes the cluster lock (waiting as the policy says) and makes sure
    /// a state exists.
    pub fn lock(&self, policy: &LockPolicy) -> Result<ClusterLock, StoreError> {
        match self {
            Store::Local(dir) => {
                dir.check_not_migrated()?;
                dir.create()?;
                let lock = StateLock::acquire(&dir.lock_file(), &dir.cluster, policy)?;
                dir.ensure()?;
                Ok(ClusterLock::Local(lock))
            }
            Store::Postgres(pg) => {
                // A failure to reach the backend is a state error, not a held lock.
                let lock = pg.lock(policy).map_err(|e| match e {
                    LockError::Backend(message) => StoreError::State(StateError::Backend(message)),
                    held => StoreError::Lock(held),
                })?;
                pg.ensure()?;
                if pg.tail_len()? > COMPACT_TAIL_OVER {
                    self.compact(&mut pg.load()?)?;
                }
                Ok(ClusterLock::Postgres(lock))
            }
        }
    }

    /// Who holds the cluster lock now: `None` when it is free.
    pub fn holder(&self) -> Result<Option<ClusterHolder>, StoreError> {
        Ok(match self {
            Store::Local(dir) => StateLock::holder(&dir.lock_file())?.map(ClusterHolder::Local),
            Store::Postgres(pg) => pg.holder()?.map(ClusterHolder::Postgres),
        })
    }
}

/// Why the store could not lock or tell who holds the lock: the lock (held
/// by another, a wait that ended), or the state behind it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Journal entries as rows, on the lock's session.
struct PgSink(Arc<PgStore>);

impl Sink for PgSink {
    fn write(&mut self, entries: &[JournalEntry]) -> Result<(), String> {
        self.0.append(entries)
    }
}

/// For errors that can come from either the lock or the state.
impl From<LockError> for StateError {
    fn from(error: LockError) -> StateError {
        StateError::Backend(error.to_string())
    }
}
