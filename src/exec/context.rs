//! What the tasks of one run share, and what one task's runner sees.
//!
//! [`RunContext`] is built once per run and shared (behind an `Arc`) by
//! every task: the model, the state planned from, what refresh saw, the
//! open fleet, the journal, the run log folder. A task's runner gets a
//! narrower [`TaskContext`]: only what running needs, the host's transport
//! and the receipt to leave.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use crate::ids::TaskId;
use crate::model::{Model, Scrubber};
use crate::plan::Refresh;
use crate::state::journal::Appender;
use crate::state::{JournalEntry, State, StateError};
use crate::transport::{Fleet, Receipt, Transport};

/// What refresh saw, as a run reads it.
#[derive(Debug, Clone)]
pub enum Seen {
    /// Every host's, known before the run (a whole plan).
    Whole(Arc<Refresh>),
    /// Growing while the run goes (a streamed plan): a task only reads its
    /// own host's, which is in before it starts.
    Growing(Arc<RwLock<Refresh>>),
}

/// [`Seen`], borrowed for reading.
pub(super) enum SeenNow<'a> {
    Whole(&'a Refresh),
    Growing(RwLockReadGuard<'a, Refresh>),
}

impl std::ops::Deref for SeenNow<'_> {
    type Target = Refresh;
    fn deref(&self) -> &Refresh {
        match self {
            SeenNow::Whole(refresh) => refresh,
            SeenNow::Growing(guard) => guard,
        }
    }
}

/// Everything the tasks of one run share.
pub(super) struct RunContext {
    pub(super) model: Arc<Model>,
    /// The state the plan was made from.
    pub(super) state: Arc<State>,
    refresh: Seen,
    pub(super) scrubber: Scrubber,
    journal: Appender,
    pub(super) log_dir: PathBuf,
    /// Completion order of records, continued from the state's.
    seq: AtomicU64,
    pub(super) fleet: Fleet,
    /// `user@machine`, as receipts name who did a task.
    pub(super) operator: String,
    /// Set once the destroys have run: the records whose undo failed or
    /// did not run. A moved task whose old machine was not cleaned does
    /// not run on the new one.
    pub(super) failed_undos: std::sync::OnceLock<std::collections::BTreeSet<TaskId>>,
}

impl RunContext {
    pub(super) fn new(
        model: Arc<Model>,
        state: Arc<State>,
        refresh: Seen,
        journal: Appender,
        log_dir: PathBuf,
        fleet: Fleet,
        operator: String,
    ) -> RunContext {
        RunContext {
            scrubber: model.scrubber(),
            seq: AtomicU64::new(state.next_seq),
            model,
            state,
            refresh,
            journal,
            log_dir,
            fleet,
            operator,
            failed_undos: std::sync::OnceLock::new(),
        }
    }

    /// What refresh saw (so far, in a streamed apply).
    pub(super) fn refresh(&self) -> SeenNow<'_> {
        match &self.refresh {
            Seen::Whole(refresh) => SeenNow::Whole(refresh),
            Seen::Growing(refresh) => {
                SeenNow::Growing(refresh.read().unwrap_or_else(PoisonError::into_inner))
            }
        }
    }

    /// The next record's place in completion order.
    pub(super) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Appends to the journal on the blocking pool and waits until it is on
    /// disk: a task counts as done only once it is recorded.
    pub(super) async fn record(&self, entry: JournalEntry) -> Result<(), StateError> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || journal.append(entry))
            .await
            .expect("appending to the journal does not panic")
    }

    /// What a runner on `transport` sees; with `receipt`, it leaves that receipt when done.
    pub(super) fn task<'a>(
        &'a self,
        transport: &'a Transport,
        receipt: Option<&'a Receipt>,
    ) -> TaskContext<'a> {
        TaskContext {
            model: &self.model,
            transport,
            scrubber: &self.scrubber,
            log_dir: &self.log_dir,
            receipt,
        }
    }
}

/// What one task's runner may need that is not the task itself.
pub(super) struct TaskContext<'a> {
    pub(super) model: &'a Model,
    pub(super) transport: &'a Transport,
    pub(super) scrubber: &'a Scrubber,
    pub(super) log_dir: &'a PathBuf,
    /// Left on the host by the command that finishes the task.
    pub(super) receipt: Option<&'a Receipt>,
}

impl TaskContext<'_> {
    /// Appends `text` (secrets scrubbed) to `task`'s run log; returns its path.
    /// Only a log: failing to write it loses the log, not the task.
    pub(super) fn log(&self, task: &TaskId, text: &str) -> Option<String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(self.log_dir).ok()?;
        let path = self.log_dir.join(format!("{}.log", task.file_safe()));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .ok()?;
        file.write_all(self.scrubber.scrub(text).as_bytes()).ok()?;
        Some(path.display().to_string())
    }
}
