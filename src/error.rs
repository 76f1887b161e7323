//! The top-level error: every way a command can fail, and its exit code.
//!
//! Modules have their own `thiserror` enums; what ends a command becomes
//! this one at the edge, where `main` renders it with miette. Exit codes are
//! part of the contract (docs/clusterfile.md, "Exit codes"): 0 success, 1
//! error (usage errors too), 2 changes present (plan with
//! `--detailed-exitcode`) or drift, 4 hosts not checked by drift, 6 both.

use miette::Diagnostic;

use crate::diagnostic::InvalidClusterfile;
use crate::words::count as count_words;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum CairnError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<InvalidClusterfile>),

    /// `validate --json`: the problems are on stdout, as JSON.
    #[error("{path} is not valid: {}", count_words(*count, "error"))]
    #[diagnostic(
        code(cairn::clusterfile),
        help("the diagnostics are in the JSON printed on stdout")
    )]
    InvalidReported { path: String, count: usize },

    #[error(transparent)]
    #[diagnostic(
        code(cairn::read),
        help("check the path, or pass another with -f PATH")
    )]
    Load(#[from] crate::clusterfile::LoadError),

    #[error(transparent)]
    #[diagnostic(code(cairn::state))]
    State(#[from] crate::state::StateError),

    /// A host could not be worked on outside any task (moving the receipts
    /// of a host renamed by a state migration).
    #[error(transparent)]
    #[diagnostic(
        code(cairn::host),
        help("nothing ran; fix what the message names and run the command again")
    )]
    Host(#[from] crate::transport::TransportError),

    #[error(transparent)]
    #[diagnostic(
        code(cairn::locked),
        help("wait for that apply to finish; the lock frees itself when its process ends")
    )]
    Locked(#[from] crate::state::LockError),

    #[error("{message}")]
    #[diagnostic(code(cairn::usage))]
    Usage {
        message: String,
        #[help]
        help: Option<String>,
    },

    #[error("the saved plan {path} no longer matches: {differences}")]
    #[diagnostic(
        code(cairn::stale_plan),
        help("run `{replan}` again, review it, and apply the new plan")
    )]
    StalePlan {
        path: String,
        differences: String,
        /// The `cairn plan` command that makes the plan again.
        replan: String,
    },

    #[error("apply failed: {} failed{}", count_words(*count, "task"), match unreachable { 0 => String::new(), n => format!(", {} unreachable", count_words(*n, "host")) })]
    #[diagnostic(
        code(cairn::apply_failed),
        help(
            "see the failures above; fix them and run `cairn apply` again: finished tasks are not repeated"
        )
    )]
    ApplyFailed { count: usize, unreachable: usize },

    #[error("apply interrupted: {} not finished", count_words(*not_finished, "task"))]
    #[diagnostic(
        code(cairn::interrupted),
        help("finished tasks are recorded; run `cairn apply` again to continue")
    )]
    Interrupted { not_finished: usize },

    #[error("{} could not be refreshed", count_words(*count, "host"))]
    #[diagnostic(
        code(cairn::usage),
        help(
            "see the hosts listed above; fix them, leave them out with --limit '!NAME', or plan with --offline"
        )
    )]
    NotRefreshed { count: usize },

    #[error("failed to write the metrics file {path}: {message}")]
    #[diagnostic(
        code(cairn::metrics),
        help(
            "check that cairn may write in that folder (node_exporter's textfile folder, e.g. /var/lib/node_exporter/textfile)"
        )
    )]
    Metrics { path: String, message: String },

    #[error(
        "no answer to the confirmation: stdin is not a terminal and gave none; nothing was changed"
    )]
    #[diagnostic(
        code(cairn::usage),
        help(
            "pass --auto-approve to apply without asking, pipe the answer (`echo yes | cairn apply`), or review a saved plan and apply it: `cairn plan -o FILE`, then `cairn apply FILE`"
        )
    )]
    NoAnswer,

    #[error("unlock incomplete: {} could not be read or broken", count_words(*failed, "host lock"))]
    #[diagnostic(
        code(cairn::unlock),
        help(
            "see the hosts listed above; when they can be reached, run `cairn unlock HOST` for each"
        )
    )]
    UnlockIncomplete { failed: usize },

    #[error("aborted: nothing was changed")]
    #[diagnostic(code(cairn::aborted))]
    Aborted,

    /// `add` / `delete`: the edit would leave an invalid Clusterfile.
    #[error("refused: with this edit {path} would not be valid; it was not changed")]
    #[diagnostic(
        code(cairn::edit_refused),
        help("the problems below are in the edited text, which was not written")
    )]
    EditRefused {
        path: String,
        #[related]
        problems: Vec<crate::diagnostic::ProblemReport>,
    },

    /// `add` / `delete`: the Clusterfile is edited but was not applied.
    #[error("Clusterfile updated; not applied; run `{apply}` to apply it")]
    #[diagnostic(code(cairn::not_applied))]
    NotApplied {
        apply: String,
        #[help]
        why: String,
    },

    #[error("failed to write {path}: {source}")]
    #[diagnostic(
        code(cairn::write),
        help("nothing was changed; check the file's folder can be written to")
    )]
    WriteClusterfile {
        path: String,
        source: std::io::Error,
    },

    #[error("{command} failed on {failed} of {}{}", count_words(*hosts, "host"), match unreachable { 0 => String::new(), n => format!(" ({n} unreachable)") })]
    #[diagnostic(
        code(cairn::adhoc_failed),
        help(
            "see each host's result above; nothing was recorded, so run it again on the hosts that failed"
        )
    )]
    AdhocFailed {
        command: &'static str,
        failed: usize,
        hosts: usize,
        unreachable: usize,
    },

    /// `cairn bundle pack` / `inspect`: the source could not be read or packed.
    #[error("{message}")]
    #[diagnostic(code(cairn::bundle))]
    Bundle {
        message: String,
        #[help]
        help: String,
    },

    #[error("{command} interrupted: {} had not finished", count_words(*not_finished, "host"))]
    #[diagnostic(
        code(cairn::interrupted),
        help(
            "commands already running on SSH hosts run to their end there (give --timeout to bound them)"
        )
    )]
    AdhocInterrupted {
        command: &'static str,
        not_finished: usize,
    },
}

/// Plan errors keep the codes and help their messages always had: the
/// usage ones are usage errors, a stale saved plan is its own.
impl From<crate::plan::PlanError> for CairnError {
    fn from(e: crate::plan::PlanError) -> Self {
        match e {
            crate::plan::PlanError::Stale {
                ref path,
                ref differences,
            } => CairnError::StalePlan {
                path: path.display().to_string(),
                differences: differences.clone(),
                replan: format!("cairn plan -o {}", path.display()),
            },
            other => CairnError::usage(other.to_string(), other.help()),
        }
    }
}

impl From<InvalidClusterfile> for CairnError {
    fn from(e: InvalidClusterfile) -> Self {
        CairnError::Invalid(Box::new(e))
    }
}

impl CairnError {
    pub fn exit_code(&self) -> u8 {
        1
    }

    pub fn usage(message: impl Into<String>, help: impl Into<String>) -> CairnError {
        CairnError::Usage {
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

/// What a successful command tells the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Success {
    Ok,
    /// Changes present (plan with `--detailed-exitcode`), or drift.
    Changes,
    /// `cairn drift`: some hosts could not be checked (4), and some drifted too (6).
    Unchecked {
        drift: bool,
    },
}

impl Success {
    pub fn exit_code(self) -> u8 {
        match self {
            Success::Ok => 0,
            Success::Changes => 2,
            Success::Unchecked { drift: false } => 4,
            Success::Unchecked { drift: true } => 6,
        }
    }
}

/// A store's lock failure is the lock's error or the state's, as if each came alone.
impl From<crate::state::StoreError> for CairnError {
    fn from(error: crate::state::StoreError) -> CairnError {
        match error {
            crate::state::StoreError::Lock(e) => e.into(),
            crate::state::StoreError::State(e) => e.into(),
        }
    }
}
