//! `cairn validate`: the Clusterfile and the graph compiled from it are
//! sound; nothing is touched or written. With `--json` an invalid (or
//! unreadable) Clusterfile is reported as JSON diagnostics on stdout, and
//! the command still fails (exit 1).

use std::path::Path;

use crate::cli::ValidateArgs;
use crate::diagnostic::{InvalidClusterfile, Problem, SourceFile};
use crate::error::{CairnError, Success};
use crate::pipeline::Loaded;
use crate::report::Output;

pub(super) fn run(file: &Path, args: &ValidateArgs, out: Output) -> Result<Success, CairnError> {
    let checked = Loaded::read_with_args(file, &args.vars).and_then(|loaded| {
        let graph = loaded.check()?;
        Ok((loaded, graph))
    });
    let invalid = match checked {
        Ok((loaded, graph)) => {
            out.validated(
                file,
                &loaded.model.name,
                loaded.model.hosts.len(),
                graph.len(),
            );
            return Ok(Success::Ok);
        }
        Err(CairnError::Invalid(invalid)) => *invalid,
        Err(CairnError::Load(error)) => {
            // Without --json the read error speaks for itself.
            let problem = about_the_whole_file(
                file,
                error.to_string(),
                "cannot be read",
                "check the path, or pass another with -f PATH",
            );
            return Err(reported(file, &problem, out).unwrap_or(CairnError::Load(error)));
        }
        Err(CairnError::Usage { message, help }) => {
            // A bad --var or --var-file: for an editor or CI, JSON like the rest.
            let problem = about_the_whole_file(
                file,
                message.clone(),
                "not applied",
                help.clone().unwrap_or_default(),
            );
            return Err(
                reported(file, &problem, out).unwrap_or(CairnError::Usage { message, help })
            );
        }
        Err(other) => return Err(other),
    };
    Err(reported(file, &invalid, out).unwrap_or_else(|| CairnError::from(invalid)))
}

/// With `--json`: the problems printed, and the error that says so.
fn reported(file: &Path, invalid: &InvalidClusterfile, out: Output) -> Option<CairnError> {
    out.invalid_clusterfile(invalid)
        .then(|| CairnError::InvalidReported {
            path: file.display().to_string(),
            count: invalid.problems.len(),
        })
}

/// A problem with no place in the file (it cannot be read, a `--var` is
/// bad), as one problem about the whole file, so that `--json` reports it
/// like any other.
fn about_the_whole_file(
    file: &Path,
    message: String,
    label: &str,
    help: impl Into<String>,
) -> InvalidClusterfile {
    let source = SourceFile {
        path: file.to_path_buf(),
        text: std::sync::Arc::new(String::new()),
    };
    let problem = Problem::new(None, message).label(label).help(help);
    InvalidClusterfile::new(source, vec![problem])
}
