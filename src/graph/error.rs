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

/// Hosts named in a merged problem before "+N more".
const HOSTS_NAMED: usize = 5;

/// The errors as the user sees them, one mistake once: the same error of
/// the same element on many hosts (a template typo renders wrong on every
/// host) is one problem naming its hosts.
pub fn problems(errors: &[CompileError]) -> Vec<Problem> {
    // Each (span, message without the host), its hosts, its first error;
    // and where in `out` it goes, so problems keep the errors' order.
    let mut merged: Vec<(Range<usize>, String, Vec<&str>, &CompileError)> = Vec::new();
    let mut out: Vec<Option<Problem>> = Vec::new();
    let mut slot_of_merged: Vec<usize> = Vec::new();
    for error in errors {
        match error.for_host() {
            Some((span, host, general)) => {
                if let Some(i) = merged
                    .iter()
                    .position(|(s, g, ..)| *s == span && *g == general)
                {
                    merged[i].2.push(host);
                } else {
                    merged.push((span, general, vec![host], error));
                    slot_of_merged.push(out.len());
                    out.push(None);
                }
            }
            None => out.push(Some(error.to_problem())),
        }
    }
    for ((_, general, hosts, error), slot) in merged.into_iter().zip(slot_of_merged) {
        let mut problem = error.to_problem();
        if hosts.len() > 1 {
            let named: Vec<&str> = hosts.iter().take(HOSTS_NAMED).copied().collect();
            let more = match hosts.len().saturating_sub(HOSTS_NAMED) {
                0 => String::new(),
                n => format!(", +{n} more"),
            };
            problem.message = format!("{general} (hosts {}{more})", named.join(", "));
        }
        out[slot] = Some(problem);
    }
    out.into_iter().flatten().collect()
}

impl CompileError {
    /// For an error that is about one host: its span, the host, and the
    /// message without the host, to merge with the same on other hosts.
    fn for_host(&self) -> Option<(Range<usize>, &str, String)> {
        match self {
            CompileError::BundleForHost { span, host, error } => {
                Some((span.clone(), host, error.to_string()))
            }
            CompileError::FileTemplate {
                span,
                name,
                host: Some(host),
                message,
            } => Some((span.clone(), host, format!("template `{name}`: {message}"))),
            _ => None,
        }
    }

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
