//! `cairn plan`: refresh the hosts (read-only), then show every change an
//! apply would make with its reason; `-o FILE` saves it for `apply FILE`.

use std::path::Path;

use crate::cli::PlanArgs;
use crate::error::{CairnError, Success};
use crate::pipeline::{Loaded, Planned, Probe, Targets, runtime};
use crate::plan::saved;
use crate::report::Output;

pub(super) fn run(file: &Path, args: &PlanArgs, out: Output) -> Result<Success, CairnError> {
    let out = out.expanded(args.expand);
    let rt = runtime();
    let loaded = Loaded::read(file)?;
    if args.out.is_some() {
        // A saved plan's keys must match the apply's: keep the secret salt from now on.
        loaded.dir.ensure()?;
    }
    let probe = if args.offline {
        Probe::Offline
    } else {
        Probe::Read
    };
    let planned = loaded
        .compile()?
        .refresh(
            &Targets::new(&args.selection.limit, &args.selection.replace),
            probe,
            &rt,
        )?
        .plan();
    out.warnings(&planned.notes());
    let result = show(args, out, &planned);
    planned.finish(&rt);
    result
}

fn show(args: &PlanArgs, out: Output, planned: &Planned) -> Result<Success, CairnError> {
    let plan = &planned.plan;
    out.plan(plan);
    if let Some(path) = &args.out {
        saved::write(&plan.to_json(), path)?;
        out.plan_saved(path);
    }
    if !plan.unreachable.is_empty() {
        return Err(CairnError::NotRefreshed {
            count: plan.unreachable.len(),
        });
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        Success::Changes
    } else {
        Success::Ok
    })
}
