//! `cairn plan`: refresh the hosts (read-only), then show every change an
//! apply would make with its reason; `--diff` adds each changed file's
//! diff against what its host has now; `-o FILE` saves it for `apply FILE`,
//! with the Clusterfile, the values given from outside and the targets it
//! was made with, so that file alone is enough to apply it.

use std::path::Path;

use crate::cli::PlanArgs;
use crate::error::{CairnError, Success};
use crate::pipeline::{Loaded, Planned, Probe, Targets, runtime};
use crate::plan::saved::{self, SAVED_PLAN_VERSION, SavedClusterfile, SavedPlan};
use crate::report::{self, Output};

pub(super) fn run(file: &Path, args: &PlanArgs, out: Output) -> Result<Success, CairnError> {
    let out = out.expanded(args.display.expand);
    if let Some(path) = &args.out {
        // Before anything is contacted: a typo in the folder is not worth a refresh.
        saved::check_folder(path)?;
    }
    let rt = runtime();
    let loaded = Loaded::read_with_args(file, &args.vars)?;
    if args.out.is_some() {
        // A saved plan's keys must match the apply's: keep the secret salt from now on.
        loaded.store.ensure()?;
    }
    let probe = if args.offline {
        Probe::Offline
    } else {
        Probe::Read
    };
    let mut planned = loaded
        .compile()?
        .refresh(
            &Targets::new(&args.selection.limit, &args.selection.replace)
                .connecting(args.parallelism),
            probe,
            &rt,
        )?
        .plan();
    out.warnings(&planned.notes());
    if args.display.diff {
        read_file_diffs(&mut planned, out, &rt);
    }
    let result = show(args, out, &planned);
    planned.finish(&rt);
    result
}

fn show(args: &PlanArgs, out: Output, planned: &Planned) -> Result<Success, CairnError> {
    let plan = &planned.plan;
    match planned.file_diffs() {
        Some(diffs) => out.plan_with_diffs(plan, diffs),
        None => out.plan(plan),
    }
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

/// `--diff` (plan and apply): reads the changed files back from their hosts
/// and diffs them; a host that could not answer is a warning, its diffs left out.
pub(super) fn read_file_diffs(planned: &mut Planned, out: Output, rt: &tokio::runtime::Runtime) {
    planned.read_file_diffs(rt, report::unified_diff);
    if let Some(diffs) = planned.file_diffs() {
        let failed: Vec<String> = diffs
            .failed_hosts
            .values()
            .map(|why| format!("{why} (reading files for --diff; their diffs are left out)"))
            .collect();
        out.warnings(&failed);
    }
}
