//! `cairn drift`: refresh every host read-only and say which no longer
//! match; for cron, with an exit code per outcome. Nothing is locked,
//! written or repaired.

use std::path::Path;

use crate::cli::DriftArgs;
use crate::error::{CairnError, Success};
use crate::pipeline::{self, Probe, Targets, runtime};
use crate::plan::DriftReport;
use crate::report::Output;

pub(super) fn run(file: &Path, args: &DriftArgs, out: Output) -> Result<Success, CairnError> {
    let rt = runtime();
    let targets = Targets::new(&args.limit, &[]);
    let planned = pipeline::plan(file, &targets, Probe::Read, &rt)?;
    out.warnings(&planned.notes());
    let report = DriftReport::from_plan(&planned.plan, planned.model());
    out.drift(&report);
    planned.finish(&rt);
    Ok(
        match (report.out_of_sync() > 0, !report.unchecked.is_empty()) {
            (false, false) => Success::Ok,
            (true, false) => Success::Changes,
            (drift, true) => Success::Unchecked { drift },
        },
    )
}
