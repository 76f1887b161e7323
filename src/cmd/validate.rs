//! `cairn validate`: the Clusterfile and the graph compiled from it are
//! sound; nothing is touched or written.

use std::path::Path;

use crate::error::{CairnError, Success};
use crate::pipeline::Loaded;
use crate::report::Output;

pub(super) fn run(file: &Path, out: Output) -> Result<Success, CairnError> {
    let loaded = Loaded::read(file)?;
    let graph = loaded.check()?;
    out.validated(
        file,
        &loaded.model.name,
        loaded.model.hosts.len(),
        graph.len(),
    );
    Ok(Success::Ok)
}
