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
            return Err(
                reported(file, &unreadable(file, &error), out).unwrap_or(CairnError::Load(error))
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

/// A Clusterfile that cannot be read, as one problem about the whole file,
/// so that `--json` reports it like any other.
fn unreadable(file: &Path, error: &crate::clusterfile::LoadError) -> InvalidClusterfile {
    let source = SourceFile {
        path: file.to_path_buf(),
        text: std::sync::Arc::new(String::new()),
    };
    let problem = Problem::new(None, error.to_string())
        .label("cannot be read")
        .help("check the path, or pass another with -f PATH");
    InvalidClusterfile::new(source, vec![problem])
}
