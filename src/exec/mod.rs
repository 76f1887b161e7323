//! The executor: runs what the plan says, in parallel, and records each
//! task as it finishes.
//!
//! `scheduler` walks the task graph: a task starts as soon as everything it
//! waits for is done, with no barrier between steps or hosts. Each task
//! runs on its host's transport (`task`: a bundle or file ships its files,
//! `files`; a step runs, `steps`) and appends its own record to the state
//! journal, waiting until it is on disk, before it reports back, so a killed
//! cairn loses at most what was in flight. Tasks that left the Clusterfile
//! are undone first (`destroy`). What a run shares is in `context`; why a
//! task failed is a typed error in `failure`. The executor never prints: it
//! sends typed [`Event`]s (`events`) to the reporter.

mod context;
mod destroy;
pub mod events;
mod failure;
mod files;
mod scheduler;
mod steps;
mod task;

pub use context::Seen;
pub use events::{Event, HostTotal, Outcome, RunSummary};
pub use failure::{Exit, TaskError};
pub use scheduler::{
    DEFAULT_PER_HOST, ExecOptions, FailurePolicy, Feed, PlanFeed, Run, execute, run_started,
};
