//! `cairn drift`: refresh every host read-only and say which no longer
//! match, and how; for cron and monitoring, with an exit code per outcome
//! and, with `--prometheus FILE`, metrics for `node_exporter`'s textfile
//! collector. Nothing is locked (neither the cluster's state lock nor any
//! host lock, so it runs beside an apply), nothing on a host is written or
//! repaired. With `--diff`, the files found modified are read back, one
//! request per host that has any, and diffed against what cairn shipped.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::DriftArgs;
use crate::error::{CairnError, Success};
use crate::model::OuterVars;
use crate::pipeline::{self, Probe, Targets, runtime};
use crate::plan::DriftReport;
use crate::plan::drift::{DriftSources, read_back};
use crate::report::{self, Output};

pub(super) fn run(file: &Path, args: &DriftArgs, out: Output) -> Result<Success, CairnError> {
    // Before any host is contacted; and a folder is never made up for it.
    if let Some(path) = &args.prometheus
        && let Some(folder) = crate::atomic_file::missing_folder(path)
    {
        return Err(CairnError::Metrics {
            path: path.display().to_string(),
            message: format!("the folder {} does not exist", folder.display()),
        });
    }
    let rt = runtime();
    let targets = Targets::new(&args.limit, &[]).connecting(args.parallelism);
    let outer = OuterVars::read(&args.vars.var_files, &args.vars.vars)
        .map_err(|e| CairnError::usage(e.message, e.help))?;
    let planned = pipeline::plan_with(file, &outer, &targets, Probe::Read, &rt)?;
    let checked_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    out.warnings(&planned.notes());
    let compiled = &planned.refreshed.compiled;
    let sources = DriftSources {
        plan: &planned.plan,
        model: &compiled.loaded.model,
        graph: &compiled.graph,
        state: &compiled.state,
        refresh: &planned.refreshed.refresh,
    };
    let mut report = DriftReport::new(sources);
    if args.diff && report.has_files_to_diff() {
        let found = rt.block_on(read_back(&report, &planned.refreshed.fleet));
        let failed: Vec<String> = found
            .values()
            .filter_map(|r| r.as_ref().err())
            .map(|why| format!("{why} (reading files back for --diff; their diffs are left out)"))
            .collect();
        out.warnings(&failed);
        report.attach_diffs(sources, &found, report::unified_diff);
    }
    out.drift(&report);
    let metrics = args.prometheus.as_deref().map(|path| {
        let previous = std::fs::read_to_string(path).ok();
        let text = report::drift_metrics(&report, checked_at, previous.as_deref());
        // Readable by the collector, which runs as its own user.
        crate::atomic_file::write_atomic_with_mode(path, text.as_bytes(), true, 0o644).map_err(
            |e| CairnError::Metrics {
                path: path.display().to_string(),
                message: e.to_string(),
            },
        )
    });
    planned.finish(&rt);
    metrics.transpose()?;
    Ok(
        match (report.out_of_sync() > 0, !report.unchecked.is_empty()) {
            (false, false) => Success::Ok,
            (true, false) => Success::Changes,
            (drift, true) => Success::Unchecked { drift },
        },
    )
}
