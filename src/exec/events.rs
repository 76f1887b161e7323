//! What happens during an apply, as the executor tells it: typed events.
//!
//! The executor never prints. It sends each [`Event`] over a channel; the
//! reporter (`report`) renders them as progress bars, plain lines or one
//! JSON object per line (`apply --json`, documented in docs/clusterfile.md).
//! The serde names here are that JSON's contract.

use serde::Serialize;

use crate::ids::TaskId;

/// What happened, as the executor tells it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        cluster: String,
        tasks: usize,
        hosts: Vec<HostTotal>,
    },
    TaskStarted {
        task: TaskId,
        host: String,
        action: String,
    },
    TaskFinished {
        task: TaskId,
        host: String,
        outcome: Outcome,
        duration_ms: u64,
        detail: Option<String>,
    },
    TaskFailed {
        task: TaskId,
        host: String,
        error: String,
        tail: Vec<String>,
        log: Option<String>,
        duration_ms: u64,
    },
    TaskSkipped {
        task: TaskId,
        host: String,
        reason: String,
    },
    /// Something the operator should know that is not a task's outcome.
    Note {
        message: String,
    },
    /// Ctrl-C: no new task starts; the running ones finish and are recorded.
    Interrupted {
        running: usize,
    },
    /// A second Ctrl-C: the `running` tasks are stopped now (killed on this
    /// machine; over SSH ended by their own timeout once the channel
    /// closes) and not recorded, so the next plan shows them again. Their
    /// output so far is in `log_dir`.
    Stopping {
        running: usize,
        log_dir: String,
    },
    RunFinished {
        summary: RunSummary,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct HostTotal {
    pub host: String,
    pub tasks: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Replaced,
    Destroyed,
    Adopted,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub succeeded: usize,
    pub failed: Vec<TaskId>,
    pub skipped: usize,
    pub unchanged: usize,
    pub duration_ms: u64,
    pub log_dir: Option<String>,
    /// Stopped by Ctrl-C before everything ran.
    pub interrupted: bool,
    /// Tasks that did not start, or were stopped, because of the interrupt.
    pub not_finished: usize,
    /// Hosts that could not be reached or locked (nothing ran there), with why.
    pub unreachable: Vec<String>,
}

/// Milliseconds of `elapsed`, as events give durations.
pub(super) fn millis(elapsed: std::time::Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}
