//! `cairn cp --on SELECTOR SRC DEST` copies a local file or folder to every
//! selected host at once; `cairn cp --from HOST SRC DEST` fetches one from a
//! host. Each host's result is shown as it finishes; exit 1 if any failed.
//! The Clusterfile is read and checked first, and the source read, before
//! anything connects; no lock is taken and nothing is recorded.

use std::path::Path;
use std::sync::Arc;

use crate::adhoc::{self, Hosts, LocalSource};
use crate::cli::CpArgs;
use crate::error::{CairnError, Success};
use crate::model::selector::select;
use crate::pipeline::{Loaded, runtime};
use crate::report::Output;

pub(super) fn run(file: &Path, args: &CpArgs, out: Output) -> Result<Success, CairnError> {
    let loaded = Loaded::read(file)?;
    if args.src.is_empty() || args.dest.is_empty() {
        return Err(CairnError::usage(
            "cp: SRC and DEST must not be empty",
            "name a file or folder; `.` is the current folder",
        ));
    }
    match &args.from {
        Some(host) => fetch(&loaded, host, args, out),
        None => copy_to(&loaded, args, out),
    }
}

fn copy_to(loaded: &Loaded, args: &CpArgs, out: Output) -> Result<Success, CairnError> {
    let model = &loaded.model;
    let selected = select(model, &args.on)
        .map_err(|e| CairnError::usage(format!("--on: {e}"), e.help(model)))?;
    let source = LocalSource::read(Path::new(&args.src)).map_err(|e| {
        CairnError::usage(
            format!("cannot copy {}: {e}", args.src),
            "SRC is a file or folder on this machine; `FOLDER/.` copies what it holds",
        )
    })?;
    let source = Arc::new(source);
    let scrubber = model.scrubber();
    let mut shown = out.adhoc("copied to", None);
    let (mut failed, mut unreachable) = (0, 0);
    let ended = runtime().block_on(async {
        let hosts = Hosts::new(model, selected.clone(), &loaded.dir.dir, args.parallelism);
        let ended = adhoc::copy_to(
            &hosts,
            source,
            &args.dest,
            args.parallelism,
            &scrubber,
            |result| {
                failed += usize::from(!result.succeeded());
                unreachable += usize::from(result.unreachable);
                shown.copy(&result);
            },
        )
        .await;
        hosts.close().await;
        ended
    });
    super::exec::finish("cp", &ended, shown, failed, selected.len(), unreachable)
}

fn fetch(loaded: &Loaded, host: &str, args: &CpArgs, out: Output) -> Result<Success, CairnError> {
    let model = &loaded.model;
    let selected = select(model, &[host.to_string()])
        .map_err(|e| CairnError::usage(format!("--from: {e}"), e.help(model)))?;
    if selected.len() != 1 {
        let names: Vec<&str> = selected
            .iter()
            .map(|id| model.host(*id).name.as_str())
            .collect();
        return Err(CairnError::usage(
            format!(
                "--from {host} selects {} hosts ({}); a fetch comes from one",
                selected.len(),
                names.join(", ")
            ),
            format!("name one host: `{}`, or `{host}[0]`", names[0]),
        ));
    }
    let scrubber = model.scrubber();
    let mut shown = out.adhoc("fetched from", Some(args.src.clone()));
    let result = runtime().block_on(async {
        let hosts = Hosts::new(model, selected.clone(), &loaded.dir.dir, args.parallelism);
        let result = adhoc::fetch(&hosts, &args.src, Path::new(&args.dest), &scrubber).await;
        hosts.close().await;
        result
    });
    shown.copy(&result);
    shown.finish();
    if result.succeeded() {
        Ok(Success::Ok)
    } else {
        Err(CairnError::AdhocFailed {
            command: "cp",
            failed: 1,
            hosts: 1,
            unreachable: usize::from(result.unreachable),
        })
    }
}
