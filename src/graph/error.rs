//! Why a valid model cannot be compiled into a task graph.
//!
//! Validation (`model`) checks everything that can be checked from the
//! Clusterfile alone; compiling finds what needs the files and the hosts'
//! values: a bundle that cannot be read, a template that fails for one host,
//! a relative destination on an SSH host, an `after = ["x@HOST"]` where x
//! does not run. Each error keeps the span of the element it is about, and
//! becomes a user-facing [`Problem`] at the edge, like every other
//! Clusterfile error, so the whole report comes out at once.

use std::ops::Range;
use std::path::PathBuf;

use crate::bundle::BundleError;
use crate::diagnostic::Problem;
use crate::ids::TaskId;

/// One reason the graph cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{error}")]
    Bundle {
        span: Range<usize>,
        error: BundleError,
    },
    #[error("{error} (host {host})")]
    BundleForHost {
        span: Range<usize>,
        host: String,
        error: BundleError,
    },
    #[error("dest `{dest}` is relative, but host {host} is reached over SSH")]
    RelativeDest {
        span: Range<usize>,
        dest: String,
        host: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    UnreadableFile {
        span: Range<usize>,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template `{name}`: {message}{}", host.as_ref().map(|h| format!(" (host {h})")).unwrap_or_default())]
    FileTemplate {
        span: Range<usize>,
        name: String,
        /// The host it failed for; `None` when it cannot even be read as a template.
        host: Option<String>,
        message: String,
    },
    #[error("`${{{var}}}` in `content` has no value on host {host}")]
    ContentValueMissing {
        span: Range<usize>,
        var: String,
        host: String,
    },
    #[error("`{element}` does not run on host {host}")]
    NotOnHost {
        span: Range<usize>,
        element: String,
        host: String,
    },
    #[error("circular dependency through task {task}")]
    TaskCycle { task: TaskId },
}

impl CompileError {
    /// The error as the user sees it: where, a label under the span, and how to fix it.
    pub fn to_problem(&self) -> Problem {
        let message = self.to_string();
        match self {
            CompileError::Bundle { span, .. } | CompileError::BundleForHost { span, .. } => {
                Problem::at(span.clone(), message).label("in this bundle")
            }
            CompileError::RelativeDest { span, .. } => Problem::at(span.clone(), message)
                .label("relative path")
                .help("use an absolute path; relative dests are for `transport = \"local\"` hosts"),
            CompileError::UnreadableFile { span, .. }
            | CompileError::FileTemplate { span, .. }
            | CompileError::ContentValueMissing { span, .. } => {
                Problem::at(span.clone(), message).label("in this file")
            }
            CompileError::NotOnHost { span, .. } => Problem::at(span.clone(), message)
                .label("nothing to wait for there")
                .help("name a host it runs on, or write `@*` for all of them"),
            CompileError::TaskCycle { .. } => Problem::new(None, message).help(
                "the tasks of this element wait for each other across hosts; check `@HOST` references in `after`",
            ),
        }
    }
}
