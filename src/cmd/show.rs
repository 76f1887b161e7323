//! `cairn show [PLAN]`: a saved plan as `cairn plan` printed it (or its
//! plan document with `--json`), read from the file alone; without PLAN, the
//! recorded state as a summary per host.

use std::path::Path;

use crate::cli::ShowArgs;
use crate::error::{CairnError, Success};
use crate::plan::saved;
use crate::report::Output;

pub(super) fn run(file: &Path, args: &ShowArgs, out: Output) -> Result<Success, CairnError> {
    if let Some(path) = &args.plan {
        out.expanded(args.expand)
            .saved_plan(path, &saved::read(path)?);
        return Ok(Success::Ok);
    }
    let recorded = super::recorded::read(file, out, "the state read alone")?;
    out.state_summary(
        &recorded.state,
        recorded.model.as_deref(),
        &recorded.scrubber,
        &recorded.dir,
        &super::edited::apply_command(file),
    );
    Ok(Success::Ok)
}
