//! `cairn plan`: refresh the hosts (read-only), then show every change an
//! apply would make with its reason; `-o FILE` saves it for `apply FILE`,
//! with the Clusterfile, the values given from outside and the targets it
//! was made with, so that file alone is enough to apply it.

use std::path::Path;

use crate::cli::PlanArgs;
use crate::error::{CairnError, Success};
use crate::pipeline::{Loaded, Planned, Probe, Targets, runtime};
use crate::plan::saved::{self, SAVED_PLAN_VERSION, SavedClusterfile, SavedPlan};
use crate::report::Output;

pub(super) fn run(file: &Path, args: &PlanArgs, out: Output) -> Result<Success, CairnError> {
    if let Some(path) = &args.out {
        // Before anything is contacted: a typo in the folder is not worth a refresh.
        saved::check_folder(path)?;
    }
    let rt = runtime();
    let loaded = Loaded::read_with_args(file, &args.vars)?;
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
        let loaded = &planned.refreshed.compiled.loaded;
        let saved = SavedPlan {
            saved_plan_version: SAVED_PLAN_VERSION,
            clusterfile: SavedClusterfile::new(&loaded.source.path, &loaded.source.text),
            vars: loaded.outer.clone(),
            limit: args.selection.limit.clone(),
            replace: args.selection.replace.clone(),
            plan: plan.to_json(),
        };
        saved::write(&saved, path)?;
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
