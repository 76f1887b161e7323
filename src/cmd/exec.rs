//! `cairn exec --on SELECTOR -- CMD`: a command on every selected host at
//! once, each host's output shown whole as it finishes; exit 1 if any host
//! failed. The Clusterfile is read and checked first (a bad one, or a
//! selector that names no host, is refused before anything connects); no
//! lock is taken and nothing is recorded.

use std::path::Path;

use crate::adhoc::{self, Hosts};
use crate::cli::ExecArgs;
use crate::error::{CairnError, Success};
use crate::model::selector::select;
use crate::pipeline::{Loaded, runtime};
use crate::report::{AdhocReport, Output};

pub(super) fn run(file: &Path, args: &ExecArgs, out: Output) -> Result<Success, CairnError> {
    let loaded = Loaded::read(file)?;
    let model = &loaded.model;
    let selected = select(model, &args.on)
        .map_err(|e| CairnError::usage(format!("--on: {e}"), e.help(model)))?;
    // As ssh does: the words are one command line for the host's shell.
    let command = args.command.join(" ");
    let scrubber = model.scrubber();
    let mut shown = out.adhoc("ran on", None);
    let (mut failed, mut unreachable) = (0, 0);
    let ended = runtime().block_on(async {
        let hosts = Hosts::new(model, selected.clone(), &loaded.dir.dir, args.parallelism);
        let ended = adhoc::exec(
            &hosts,
            &command,
            args.timeout,
            args.parallelism,
            &scrubber,
            |result| {
                failed += usize::from(!result.succeeded());
                unreachable += usize::from(result.unreachable);
                shown.exec(&result);
            },
        )
        .await;
        hosts.close().await;
        ended
    });
    finish("exec", &ended, shown, failed, selected.len(), unreachable)
}

/// How an ad hoc run (`exec`, `cp`) ends: interrupted, failed on some
/// hosts, or done; the summary is shown unless it was interrupted.
pub(super) fn finish(
    command: &'static str,
    ended: &adhoc::Ended,
    shown: AdhocReport,
    failed: usize,
    hosts: usize,
    unreachable: usize,
) -> Result<Success, CairnError> {
    if ended.interrupted {
        return Err(CairnError::AdhocInterrupted {
            command,
            not_finished: ended.not_finished,
        });
    }
    shown.finish();
    if failed == 0 {
        Ok(Success::Ok)
    } else {
        Err(CairnError::AdhocFailed {
            command,
            failed,
            hosts,
            unreachable,
        })
    }
}
