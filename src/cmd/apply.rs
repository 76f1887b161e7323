//! `cairn apply [PLAN]`: converge the hosts.
//!
//! The cluster lock first, so the state planned from is the one this apply
//! builds on; then the plan, with each host locked as it is refreshed; a
//! saved plan is refused if a fresh one differs; the operator is asked
//! unless `--auto-approve` or a saved plan says yes; then the run, reported
//! as it goes. The exit code says whether everything converged.

use std::path::Path;
use std::sync::Arc;

use crate::cli::{ApplyArgs, LockArgs};
use crate::error::{CairnError, Success};
use crate::exec::FailurePolicy;
use crate::pipeline::{ApplySettings, Loaded, Planned, Probe, Targets, runtime};
use crate::plan::saved;
use crate::report::{Confirmation, Output};
use crate::state::{LockHolder, LockNotice, LockPolicy};

pub(super) fn run(file: &Path, args: &ApplyArgs, out: Output) -> Result<Success, CairnError> {
    apply_loaded(Loaded::read(file)?, args, out)
}

/// Applies a Clusterfile already read and validated: `run`'s whole work
/// after reading, which `add` and `delete` share once they have written
/// their edit.
pub(super) fn apply_loaded(
    loaded: Loaded,
    args: &ApplyArgs,
    out: Output,
) -> Result<Success, CairnError> {
    let out = out.expanded(args.expand);
    let rt = runtime();
    let policy = lock_policy(&args.lock, out);
    let _cluster_lock = loaded.lock_cluster(&policy)?;
    let planned = loaded
        .compile()?
        .refresh(
            &Targets::new(&args.selection.limit, &args.selection.replace),
            Probe::Lock(&policy),
            &rt,
        )?
        .plan();
    out.warnings(&planned.notes());
    let settings = ApplySettings {
        parallelism: args.parallelism,
        operator: policy.holder.operator(),
        on_failure: if args.fail_fast {
            FailurePolicy::FailFast
        } else {
            FailurePolicy::SkipDependents
        },
    };
    let result = converge(
        args.plan.as_deref(),
        args.auto_approve,
        out,
        &planned,
        &settings,
        &rt,
    );
    planned.finish(&rt);
    result
}

/// How this command takes locks: one holder (this process) for the
/// cluster lock and every host lock, waiting for a live holder up to
/// `--lock-timeout`, each wait told as it happens. Every command that takes
/// the lock uses it.
pub(super) fn lock_policy(args: &LockArgs, out: Output) -> LockPolicy {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    LockPolicy::new(
        LockHolder::current(&command),
        args.lock_timeout,
        Arc::new(move |notice: &LockNotice| out.lock_notice(notice)),
    )
}

/// After planning: check a saved plan, show, ask (unless `auto_approve`
/// or a saved plan said yes), run, and say how it went. `reset` shares it.
pub(super) fn converge(
    saved_plan: Option<&Path>,
    auto_approve: bool,
    out: Output,
    planned: &Planned,
    settings: &ApplySettings,
    rt: &tokio::runtime::Runtime,
) -> Result<Success, CairnError> {
    let plan = &planned.plan;
    if let Some(path) = saved_plan {
        saved::check_unchanged(path, &saved::read(path)?, &plan.to_json())?;
    }
    if let Some(first) = plan.once_moves.first() {
        return Err(CairnError::usage(
            first.clone(),
            "pin the step to the host it ran on with `on = \"HOST\"`, or move it on purpose with `--replace step.NAME`",
        ));
    }
    out.apply_plan(plan);
    // A host that cannot be reached (or locked) fails alone: the others converge.
    let unreachable = plan.unreachable.len();
    if !plan.has_changes() && !plan.adopts() {
        planned.record_reached_hosts()?;
        return if unreachable == 0 {
            Ok(Success::Ok)
        } else {
            Err(CairnError::ApplyFailed {
                count: 0,
                unreachable,
            })
        };
    }
    if plan.has_changes() && !auto_approve && saved_plan.is_none() {
        match out.confirm() {
            Confirmation::Yes => {}
            Confirmation::No => return Err(CairnError::Aborted),
            Confirmation::NoTerminal => return Err(CairnError::NoTerminal),
        }
    }
    let reporter = out.reporter();
    let summary = planned.execute(settings, &reporter.sender(), rt);
    reporter.finish();
    let summary = summary?;
    if summary.interrupted {
        Err(CairnError::Interrupted {
            not_finished: summary.not_finished,
        })
    } else if summary.failed.is_empty() && summary.unreachable.is_empty() {
        Ok(Success::Ok)
    } else {
        Err(CairnError::ApplyFailed {
            count: summary.failed.len(),
            unreachable: summary.unreachable.len(),
        })
    }
}
