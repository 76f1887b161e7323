//! `cairn graph`: the task graph as Graphviz DOT, or JSON with `--json`.

use std::path::Path;

use crate::error::{CairnError, Success};
use crate::pipeline::Loaded;
use crate::report::Output;

pub(super) fn run(file: &Path, out: Output) -> Result<Success, CairnError> {
    let compiled = Loaded::read(file)?.compile()?;
    out.graph(&compiled.graph, &compiled.loaded.model);
    Ok(Success::Ok)
}
