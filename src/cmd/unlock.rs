//! `cairn unlock [HOST...]`: force the cluster lock and host locks open.
//!
//! First every lock asked about is read without taking it (the cluster lock
//! on this machine when no host is named, and the lock of each host, or of
//! the named ones) and shown with its holder; then, once the operator says
//! yes (or `--auto-approve`/`--force`), each held one is broken: the cluster
//! lock file is replaced by a new one, and on a host the holder's processes
//! are killed (unless the lock changed hands since it was shown). A lock
//! that is not held is said to be free; a host that cannot be reached is
//! reported and makes the command fail, so nothing is left unsaid.

use std::path::Path;

use crate::cli::UnlockArgs;
use crate::error::{CairnError, Success};
use crate::model::{HostId, Model};
use crate::pipeline::{Loaded, runtime};
use crate::report::{Confirmation, LockSurvey, Output, Unlocked};
use crate::state::StateLock;
use crate::transport::{Fleet, HostLockStatus};

pub(super) fn run(file: &Path, args: &UnlockArgs, out: Output) -> Result<Success, CairnError> {
    let loaded = Loaded::read(file)?;
    let model = loaded.model.clone();
    let hosts = chosen_hosts(&model, &args.hosts)?;
    let cluster_included = args.hosts.is_empty();
    let lock_file = loaded.dir.lock_file();
    let cluster_holder = if cluster_included {
        StateLock::holder(&lock_file)?
    } else {
        None
    };
    let rt = runtime();
    let (fleet, statuses) = rt.block_on(async {
        let fleet = Fleet::connect(&model, &hosts, &loaded.dir.dir).await;
        let mut jobs = tokio::task::JoinSet::new();
        for (i, &id) in hosts.iter().enumerate() {
            let name = model.host(id).name.clone();
            if let Some(t) = fleet.transport(id).cloned() {
                jobs.spawn(
                    async move { (i, name, t.lock_status().await.map_err(|e| e.to_string())) },
                );
            } else {
                let why = fleet
                    .unreachable(&name)
                    .unwrap_or("not connected")
                    .to_string();
                jobs.spawn(async move { (i, name, Err(why)) });
            }
        }
        let mut statuses = Vec::new();
        while let Some(joined) = jobs.join_next().await {
            statuses.push(joined.expect("reading a lock does not panic"));
        }
        statuses.sort_by_key(|(i, _, _)| *i);
        (fleet, statuses)
    });
    let survey = LockSurvey {
        cluster: model.name.clone(),
        cluster_holder,
        cluster_included,
        hosts: statuses
            .into_iter()
            .map(|(_, name, status)| (name, status))
            .collect(),
    };
    out.unlock_survey(&survey);
    let unreadable = survey.hosts.iter().filter(|(_, s)| s.is_err()).count();
    if !survey.anything_held() {
        out.unlocked(&survey, &[]);
        rt.block_on(fleet.close());
        return finish(unreadable);
    }
    if !args.auto_approve {
        match out.confirm_unlock() {
            Confirmation::Yes => {}
            Confirmation::No => {
                rt.block_on(fleet.close());
                return Err(CairnError::Aborted);
            }
            Confirmation::NoTerminal => {
                rt.block_on(fleet.close());
                return Err(CairnError::usage(
                    "no terminal to ask for confirmation; no lock was broken",
                    "pass --auto-approve (or --force) to break the locks shown without asking",
                ));
            }
        }
    }
    let mut done = Vec::new();
    if let (true, Some(holder)) = (cluster_included, &survey.cluster_holder) {
        StateLock::break_open(&lock_file)?;
        done.push(Unlocked::Cluster {
            holder: holder.clone(),
        });
    }
    rt.block_on(async {
        for (&id, (name, status)) in hosts.iter().zip(&survey.hosts) {
            let (Ok(HostLockStatus::Held(held)), Some(t)) = (status, fleet.transport(id)) else {
                continue;
            };
            done.push(Unlocked::Host {
                host: name.clone(),
                holder: held.holder.clone(),
                result: t.break_lock(held).await.map_err(|e| e.to_string()),
            });
        }
    });
    out.unlocked(&survey, &done);
    rt.block_on(fleet.close());
    let failed = done
        .iter()
        .filter(|d| matches!(d, Unlocked::Host { result: Err(_), .. }))
        .count();
    finish(unreadable + failed)
}

fn finish(failed: usize) -> Result<Success, CairnError> {
    if failed == 0 {
        Ok(Success::Ok)
    } else {
        Err(CairnError::UnlockIncomplete { failed })
    }
}

/// Every host, or those named (by name, address, or `address:port`).
fn chosen_hosts(model: &Model, names: &[String]) -> Result<Vec<HostId>, CairnError> {
    if names.is_empty() {
        return Ok(model.hosts.iter().map(|h| h.id).collect());
    }
    let mut chosen = Vec::new();
    for name in names {
        let found = model.hosts.iter().find(|h| {
            h.name == *name || h.address == *name || format!("{}:{}", h.address, h.port) == *name
        });
        match found {
            Some(h) if !chosen.contains(&h.id) => chosen.push(h.id),
            Some(_) => {}
            None => {
                let known: Vec<&str> = model.hosts.iter().map(|h| h.name.as_str()).collect();
                return Err(CairnError::usage(
                    format!("no host `{name}` in the Clusterfile"),
                    format!("name a host by its name or address: {}", known.join(", ")),
                ));
            }
        }
    }
    Ok(chosen)
}
