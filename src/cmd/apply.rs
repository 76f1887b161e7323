//! `cairn apply [PLAN]`: converge the hosts.
//!
//! The cluster lock first, so the state planned from is the one this apply
//! builds on; then the plan, with each host locked as it is refreshed; a
//! saved plan brings its own Clusterfile (refused if its text changed),
//! values and targets, and is refused if a fresh one differs; the plan is
//! shown (with `--diff`, each changed file's diff too) and the operator is
//! asked unless `--auto-approve` or a saved plan says yes; then the run, reported
//! as it goes. The exit code says whether everything converged.
//!
//! When nobody is asked (`--auto-approve`, a saved plan) and no diff is
//! read first, the apply streams (`pipeline::streamed`): each host's tasks
//! start as soon as its own probe is back, the plan is shown once whole,
//! and a saved plan is checked host by host.

use std::path::Path;
use std::sync::Arc;

use crate::cli::{ApplyArgs, LockArgs};
use crate::error::{CairnError, Success};
use crate::exec::{FailurePolicy, RunSummary};
use crate::model::VarOrigin;
use crate::pipeline::{ApplySettings, Compiled, Loaded, Planned, Probe, Targets, runtime};
use crate::plan::saved::{self, SavedPlan};
use crate::plan::{PlanError, PlanJson};
use crate::report::{Confirmation, Output, shell_word};
use crate::state::{LockHolder, LockNotice, LockPolicy};

/// `file` is `-f`'s value, if given: a saved plan reads the Clusterfile it
/// records unless one is given, and then it must be that one.
pub(super) fn run(
    file: Option<&Path>,
    args: &ApplyArgs,
    out: Output,
) -> Result<Success, CairnError> {
    let Some(plan_path) = &args.plan else {
        let file = file.unwrap_or(Path::new("Clusterfile"));
        return apply_loaded(Loaded::read_with_args(file, &args.vars)?, args, out);
    };
    let saved = saved::read(plan_path)?;
    refuse_other_arguments(plan_path, &saved, args)?;
    if let Some(file) = file {
        saved::check_same_clusterfile(plan_path, &saved, file)?;
    }
    // From here on, hints speak of the plan's Clusterfile and values.
    let (vars, var_files) = recorded_var_args(&saved);
    crate::report::remember_invocation(Some(&saved.clusterfile.path), &vars, &var_files);
    let source = crate::clusterfile::read(&saved.clusterfile.path).map_err(|error| {
        CairnError::usage(
            format!("the plan {} cannot be applied: {error}", plan_path.display()),
            format!(
                "a saved plan applies the Clusterfile it was made from, at that path; if it moved, make a new plan there: `cairn plan -f NEW/PATH -o {}`",
                shell_word(plan_path)
            ),
        )
    })?;
    saved::check_clusterfile(plan_path, &saved, &source.text).map_err(|e| {
        CairnError::usage(
            e.to_string(),
            format!(
                "run `{}` again, review it, and apply the new plan",
                replan_command(plan_path, &saved)
            ),
        )
    })?;
    let loaded = Loaded::from_source_with(source, &saved.vars)?;
    let targets = Targets::new(&saved.limit, &saved.replace).connecting(args.parallelism);
    match apply_targets(loaded, args, &targets, Some((plan_path, &saved.plan)), out) {
        Err(CairnError::StalePlan {
            path, differences, ..
        }) => Err(CairnError::StalePlan {
            path,
            differences,
            replan: replan_command(plan_path, &saved),
        }),
        other => other,
    }
}

/// The `--var NAME=VALUE` values and `--var-file` files a saved plan was made with.
fn recorded_var_args(saved: &SavedPlan) -> (Vec<String>, Vec<std::path::PathBuf>) {
    let mut vars = Vec::new();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for (name, var) in &saved.vars.0 {
        match &var.origin {
            VarOrigin::VarFile { path } => {
                if !files.contains(path) {
                    files.push(path.clone());
                }
            }
            VarOrigin::Var => {
                let value = match &var.value {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                vars.push(format!("{name}={value}"));
            }
        }
    }
    (vars, files)
}

/// The `cairn plan` command that makes the plan at `path` again, as it was
/// made: its Clusterfile, values and targets; runnable from any folder.
fn replan_command(path: &Path, saved: &SavedPlan) -> String {
    let mut words = vec![
        "cairn plan -f".to_string(),
        shell_word(&saved.clusterfile.path),
    ];
    let (vars, files) = recorded_var_args(saved);
    for var in vars {
        words.push(format!("--var {}", shell_word(Path::new(&var))));
    }
    for file in files {
        words.push(format!("--var-file {}", shell_word(&file)));
    }
    for limit in &saved.limit {
        words.push(format!("--limit {}", shell_word(Path::new(limit))));
    }
    for replace in &saved.replace {
        words.push(format!("--replace {}", shell_word(Path::new(replace))));
    }
    words.push(format!("-o {}", shell_word(path)));
    words.join(" ")
}

/// A saved plan applies what it was made with: values from outside are not
/// given again, and targets, if given, must be the recorded ones.
fn refuse_other_arguments(
    path: &Path,
    saved: &SavedPlan,
    args: &ApplyArgs,
) -> Result<(), PlanError> {
    let refuse = |what: &str, recorded: String| {
        Err(PlanError::SavedPlanArgs {
            path: path.to_path_buf(),
            what: what.into(),
            recorded,
        })
    };
    if !args.vars.vars.is_empty() || !args.vars.var_files.is_empty() {
        let recorded = if saved.vars.is_empty() {
            String::new()
        } else {
            format!(
                "it records {}",
                saved
                    .vars
                    .0
                    .iter()
                    .map(|(name, v)| format!("{name} from {}", v.origin))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return refuse("--var and --var-file", recorded);
    }
    let selection = &args.selection;
    if !selection.limit.is_empty() && selection.limit != saved.limit {
        let recorded = if saved.limit.is_empty() {
            "it was made for every host".to_string()
        } else {
            format!("--limit {}", saved.limit.join(","))
        };
        return refuse("another --limit", recorded);
    }
    if !selection.replace.is_empty() && selection.replace != saved.replace {
        let recorded = if saved.replace.is_empty() {
            "it was made without --replace".to_string()
        } else {
            format!("--replace {}", saved.replace.join(" "))
        };
        return refuse("another --replace", recorded);
    }
    Ok(())
}

/// Applies a Clusterfile already read and validated: `run`'s whole work
/// after reading, which `add` and `delete` share once they have written
/// their edit.
pub(super) fn apply_loaded(
    loaded: Loaded,
    args: &ApplyArgs,
    out: Output,
) -> Result<Success, CairnError> {
    let targets =
        Targets::new(&args.selection.limit, &args.selection.replace).connecting(args.parallelism);
    apply_targets(loaded, args, &targets, None, out)
}

/// [`apply_loaded`] for `targets`, checked against a saved plan when there is one.
fn apply_targets(
    loaded: Loaded,
    args: &ApplyArgs,
    targets: &Targets,
    saved_plan: Option<(&Path, &PlanJson)>,
    out: Output,
) -> Result<Success, CairnError> {
    let out = out.expanded(args.display.expand);
    let rt = runtime();
    let policy = lock_policy(&args.lock, out);
    let _cluster_lock = loaded.lock_cluster(&policy)?;
    let settings = ApplySettings {
        parallelism: args.parallelism,
        operator: policy.holder.operator(),
        on_failure: if args.fail_fast {
            FailurePolicy::FailFast
        } else {
            FailurePolicy::SkipDependents
        },
    };
    let compiled = loaded.compile()?;
    // Nobody is asked and no diff is read first: each host's work can start
    // as soon as its own probe is back.
    let unattended = args.auto_approve || saved_plan.is_some();
    if unattended && !args.display.diff && compiled.can_stream(targets) {
        return apply_streamed(compiled, targets, &policy, &settings, saved_plan, out, &rt);
    }
    let mut planned = compiled.refresh(targets, Probe::Lock(&policy), &rt)?.plan();
    out.warnings(&planned.notes());
    if args.display.diff {
        super::plan::read_file_diffs(&mut planned, out, &rt);
    }
    let result = converge(saved_plan, args.auto_approve, out, &planned, &settings, &rt);
    planned.finish(&rt);
    result
}

/// [`apply_targets`] with no barrier between a host's probe and its work
/// (`pipeline::streamed`): the plan is shown once whole, then the run's
/// events, held until then, as they come; until then, how far it is.
fn apply_streamed(
    compiled: Compiled,
    targets: &Targets,
    policy: &LockPolicy,
    settings: &ApplySettings,
    saved_plan: Option<(&Path, &PlanJson)>,
    out: Output,
    rt: &tokio::runtime::Runtime,
) -> Result<Success, CairnError> {
    if let Some((path, saved)) = saved_plan {
        let cluster = saved::cluster_difference(saved, &compiled.loaded.model.name);
        saved::refuse_differences(path, &Vec::from_iter(cluster))?;
    }
    let saved = saved_plan.map(|(_, saved)| saved);
    // How far the apply is, shown until the plan is whole.
    let hold = out.hold_status();
    let watch = hold.watcher();
    let streamed =
        compiled.apply_streamed(targets, policy, settings, saved, rt, watch, |whole| {
            hold.release(whole.plan.is_some());
            out.warnings(&whole.notes);
            if let Some(plan) = whole.plan {
                out.apply_plan(plan);
            }
            whole
                .runs
                .then(|| out.reporter_after(whole.run_started, whole.events))
        })?;
    if let Some(reporter) = streamed.shown {
        reporter.finish();
    }
    if let Some((path, _)) = saved_plan {
        saved::refuse_differences(path, &streamed.stale)?;
    }
    match streamed.summary {
        Some(summary) => run_outcome(&summary),
        None => match streamed.plan.map_or(0, |plan| plan.unreachable.len()) {
            0 => Ok(Success::Ok),
            unreachable => Err(CairnError::ApplyFailed {
                count: 0,
                unreachable,
            }),
        },
    }
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
    saved_plan: Option<(&Path, &PlanJson)>,
    auto_approve: bool,
    out: Output,
    planned: &Planned,
    settings: &ApplySettings,
    rt: &tokio::runtime::Runtime,
) -> Result<Success, CairnError> {
    let plan = &planned.plan;
    if let Some((path, saved)) = saved_plan {
        saved::check_unchanged(path, saved, &plan.to_json())?;
    }
    if let Some(first) = plan.once_moves.first() {
        return Err(CairnError::usage(
            first.clone(),
            "pin the step to the host it ran on with `on = \"HOST\"`, or move it on purpose with `--replace step.NAME`",
        ));
    }
    match planned.file_diffs() {
        Some(diffs) => out.apply_plan_with_diffs(plan, diffs),
        None => out.apply_plan(plan),
    }
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
            Confirmation::NoAnswer => return Err(CairnError::NoAnswer),
        }
    }
    let reporter = out.reporter();
    let summary = planned.execute(settings, &reporter.sender(), rt);
    reporter.finish();
    run_outcome(&summary?)
}

/// The exit of a run that went as `summary` says.
fn run_outcome(summary: &RunSummary) -> Result<Success, CairnError> {
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
