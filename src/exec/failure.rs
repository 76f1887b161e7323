//! Why a task failed, ready to show: a typed [`TaskError`], the tail of
//! the command's output, and where the whole output is.

use crate::model::Scrubber;
use crate::state::StateError;
use crate::transport::{CommandOutput, TransportError};

/// Lines of output kept in a failure message.
pub(super) const TAIL_LINES: usize = 12;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal,
    /// Stopped by its time limit; the text says after how long (and why, if the host stopped answering).
    TimedOut(String),
}

impl Exit {
    pub fn of(out: &CommandOutput) -> Exit {
        if out.timed_out {
            Exit::TimedOut(String::from_utf8_lossy(&out.stderr).into_owned())
        } else {
            out.code.map_or(Exit::Signal, Exit::Code)
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(0) => f.write_str("succeeded"),
            Exit::Code(c) => write!(f, "exited with code {c}"),
            Exit::Signal => f.write_str("killed by a signal"),
            Exit::TimedOut(text) => f.write_str(text),
        }
    }
}

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(
        "host {host} could not be reached to undo this ({why}); it is undone when the host is reachable again, or `cairn state rm {host}` forgets the host without touching it"
    )]
    NotConnectedToUndo { host: String, why: String },
    #[error("not run: undoing it on the host's old machine failed first")]
    OldMachineNotCleaned,
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{exit}{}", if *attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() })]
    Step { exit: Exit, attempts: u32 },
    #[error("undo {exit}")]
    Undo { exit: Exit },
    #[error("failed to chown {dest} to {owner}")]
    Chown { dest: String, owner: String },
    #[error(
        "`${{{var}}}` has no value: the step that captures it did not run, and no value is recorded (a value holding a secret is not stored: rerun that step with --replace)"
    )]
    ValueMissing { var: String },
    #[error("recorded undo cannot be read: {message}")]
    UndoUnreadable { message: String },
    #[error(
        "the undo command reads `${{{var}}}`, which is no longer defined; define it again (in [vars]) to undo"
    )]
    UndoValueMissing { var: String },
    #[error("the task ran, but recording it failed: {0}")]
    NotRecorded(StateError),
    #[error("the undo ran, but removing its receipt failed: {0}")]
    ReceiptNotRemoved(TransportError),
    #[error("the undo ran, but recording it failed: {0}")]
    UndoNotRecorded(StateError),
}

/// A failed task: the error, the tail of its output, and its run log.
#[derive(Debug)]
pub(super) struct Failure {
    /// Boxed: a failure travels back through every runner's `Result`.
    pub error: Box<TaskError>,
    pub tail: Vec<String>,
    pub log: Option<String>,
}

impl Failure {
    /// A failure with `out`'s last lines, secrets masked: stdout and
    /// stderr as the command wrote them where the transport saw that order,
    /// else stdout, then stderr.
    pub(super) fn with_output(
        error: TaskError,
        out: &CommandOutput,
        scrubber: &Scrubber,
        log: Option<String>,
    ) -> Failure {
        let text = match &out.combined {
            Some(combined) => combined.clone(),
            // A timeout's stderr is cairn's own message, already the error.
            None if out.timed_out => out.stdout.clone(),
            None => {
                let mut both = out.stdout.clone();
                if !both.is_empty() && !both.ends_with(b"\n") {
                    both.push(b'\n');
                }
                both.extend_from_slice(&out.stderr);
                both
            }
        };
        let text = scrubber.scrub(&String::from_utf8_lossy(&text));
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec();
        Failure {
            error: Box::new(error),
            tail,
            log,
        }
    }
}

impl From<TaskError> for Failure {
    fn from(error: TaskError) -> Failure {
        Failure {
            error: Box::new(error),
            tail: Vec::new(),
            log: None,
        }
    }
}

impl From<TransportError> for Failure {
    fn from(error: TransportError) -> Failure {
        TaskError::Transport(error).into()
    }
}
