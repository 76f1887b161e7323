//! `cairn reset`: undo everything cairn did, as sealos' `reset` does, but in
//! reverse dependency order and resumable.
//!
//! It walks the same pipeline as `apply` (cluster lock, every targeted host
//! locked as it is refreshed) and plans the destroy of every record on the
//! reachable targeted hosts; shown and confirmed like an apply, it runs
//! those destroys (see `exec::destroy`), then removes cairn's folder on each
//! host whose undos all succeeded and forgets it. A failed undo keeps its
//! host in the state, so running `reset` again picks up where it stopped.

use std::path::Path;

use crate::cli::ResetArgs;
use crate::error::{CairnError, Success};
use crate::exec::FailurePolicy;
use crate::pipeline::{ApplySettings, Loaded, Probe, Targets, runtime};
use crate::report::Output;

pub(super) fn run(file: &Path, args: &ResetArgs, out: Output) -> Result<Success, CairnError> {
    let rt = runtime();
    let loaded = Loaded::read_with_args(file, &args.vars)?;
    let policy = super::apply::lock_policy(&args.lock, out);
    let _cluster_lock = loaded.lock_cluster(&policy)?;
    let planned = loaded
        .compile()?
        .refresh(
            &Targets::new(&args.limit, &[]).connecting(args.parallelism),
            Probe::Lock(&policy),
            &rt,
        )?
        .plan_reset();
    out.warnings(&planned.notes());
    let settings = ApplySettings {
        parallelism: args.parallelism,
        operator: policy.holder.operator(),
        on_failure: FailurePolicy::SkipDependents,
    };
    let result = super::apply::converge(None, args.auto_approve, out, &planned, &settings, &rt);
    planned.finish(&rt);
    result
}
