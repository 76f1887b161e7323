//! `cairn validate`: the Clusterfile and the graph compiled from it are
//! sound; nothing is touched or written.

use std::path::Path;

use crate::cli::ValidateArgs;
use crate::error::{CairnError, Success};
use crate::pipeline::Loaded;
use crate::report::Output;

pub(super) fn run(file: &Path, args: &ValidateArgs, out: Output) -> Result<Success, CairnError> {
    let loaded = Loaded::read_with_args(file, &args.vars)?;
    let graph = loaded.check()?;
    out.validated(
        file,
        &loaded.model.name,
        loaded.model.hosts.len(),
        graph.len(),
    );
    Ok(Success::Ok)
}
