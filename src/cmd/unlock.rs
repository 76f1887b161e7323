//! `cairn unlock [HOST...]`: force the cluster lock and host locks open.
//!
//! First every lock asked about is read without taking it (the cluster lock
//! on this machine when no host is named, and the lock of each host, those
//! only the state still knows included, or of the named ones) and shown
//! with its holder; then, once the operator says yes (or
//! `--auto-approve`/`--force`), each held one is broken: the cluster lock
//! file is replaced by a new one, and on a host the holder's processes are
//! killed (unless the lock changed hands since it was shown). A lock that
//! is not held is said to be free; a host that cannot be reached is
//! reported and makes the command fail, so nothing is left unsaid.
//!
//! With the state in PostgreSQL the cluster lock is an advisory lock,
//! which only its own session can release: breaking it ends that database
//! session (`pg_terminate_backend`, if it still holds the lock), which the
//! survey says beforehand, with who may do it.

use std::path::Path;

use crate::cli::UnlockArgs;
use crate::error::{CairnError, Success};
use crate::model::{HostId, Model};
use crate::pipeline::{Loaded, runtime};
use crate::plan::former::FormerHost;
use crate::report::{ClusterSession, Confirmation, LockSurvey, Output, Unlocked};
use crate::state::{ClusterHolder, HostRecord, StateLock, Store};
use crate::transport::{Fleet, HostLockStatus, Transport};

/// The hosts an unlock is about: of the Clusterfile, and known only to the state.
struct Chosen {
    hosts: Vec<HostId>,
    former: Vec<(String, HostRecord)>,
}

/// A host asked about, by the name shown: its transport, or why there is none.
type Target = (String, Result<Transport, String>);

pub(super) fn run(file: &Path, args: &UnlockArgs, out: Output) -> Result<Success, CairnError> {
    let compiled = Loaded::read(file)?.compile()?;
    let model = compiled.loaded.model.clone();
    let chosen = chosen_hosts(&model, &compiled.former, &args.hosts)?;
    let cluster_included = args.hosts.is_empty();
    let lock_file = compiled.loaded.dir.lock_file();
    let store = compiled.loaded.store.clone();
    let cluster_holder = if cluster_included {
        store.holder()?
    } else {
        None
    };
    let cluster_session = match (&store, &cluster_holder) {
        (Store::Postgres(_), Some(ClusterHolder::Postgres(holder))) => Some(ClusterSession {
            place: store.place(),
            backend_pid: holder.backend_pid,
        }),
        (Store::Postgres(_), _) => Some(ClusterSession {
            place: store.place(),
            backend_pid: 0,
        }),
        (Store::Local(_), _) => None,
    };
    let rt = runtime();
    let fleet = rt.block_on(Fleet::connect(
        &model,
        &chosen.hosts,
        &chosen.former,
        &compiled.loaded.dir.dir,
    ));
    let targets = targets(&model, &chosen, &fleet);
    let survey = LockSurvey {
        cluster: model.name.clone(),
        cluster_holder: cluster_holder.as_ref().map(|h| h.description().to_string()),
        cluster_included,
        cluster_session,
        hosts: rt.block_on(read_locks(&targets)),
    };
    out.unlock_survey(&survey);
    let unreadable = survey.hosts.iter().filter(|(_, s)| s.is_err()).count();
    let result = if survey.anything_held() {
        confirm(args, out).and_then(|()| {
            let mut done = Vec::new();
            match (cluster_included, &cluster_holder, &store) {
                (true, Some(ClusterHolder::Local(holder)), _) => {
                    StateLock::break_open(&lock_file)?;
                    done.push(Unlocked::Cluster {
                        holder: holder.clone(),
                    });
                }
                (true, Some(ClusterHolder::Postgres(holder)), Store::Postgres(backend)) => {
                    done.push(Unlocked::ClusterSession {
                        holder: holder.description.clone(),
                        backend_pid: holder.backend_pid,
                        result: backend
                            .terminate(holder.backend_pid)
                            .map_err(|e| e.to_string()),
                    });
                }
                _ => {}
            }
            done.extend(rt.block_on(break_locks(&targets, &survey)));
            out.unlocked(&survey, &done);
            let failed = done
                .iter()
                .filter(|d| {
                    matches!(
                        d,
                        Unlocked::Host { result: Err(_), .. }
                            | Unlocked::ClusterSession { result: Err(_), .. }
                    )
                })
                .count();
            finish(unreadable + failed)
        })
    } else {
        out.unlocked(&survey, &[]);
        finish(unreadable)
    };
    rt.block_on(fleet.close());
    result
}

/// Asks, unless `--auto-approve`.
fn confirm(args: &UnlockArgs, out: Output) -> Result<(), CairnError> {
    if args.auto_approve {
        return Ok(());
    }
    match out.confirm_unlock() {
        Confirmation::Yes => Ok(()),
        Confirmation::No => Err(CairnError::Aborted),
        Confirmation::NoAnswer => Err(CairnError::usage(
            "no answer to the confirmation: stdin is not a terminal and gave none; no lock was broken",
            "pass --auto-approve (or --force) to break the locks shown without asking",
        )),
    }
}

/// Each chosen host, with its open transport or why it has none. A former
/// host that shares its name with a host of the Clusterfile (its old
/// machine) is shown with its old address.
fn targets(model: &Model, chosen: &Chosen, fleet: &Fleet) -> Vec<Target> {
    let mut targets = Vec::new();
    for &id in &chosen.hosts {
        let name = model.host(id).name.clone();
        let reached = fleet.open_now(id).ok_or_else(|| {
            fleet
                .unreachable(&name)
                .unwrap_or_else(|| "not connected".into())
        });
        targets.push((name, reached));
    }
    for (name, record) in &chosen.former {
        let reached = fleet.former_open_now(name).ok_or_else(|| {
            fleet
                .former_unreachable()
                .get(name)
                .cloned()
                .unwrap_or_else(|| "not connected".into())
        });
        let shown = if chosen.hosts.iter().any(|&id| model.host(id).name == *name) {
            format!(
                "{name} (its former address {}:{})",
                record.address, record.port
            )
        } else {
            name.clone()
        };
        targets.push((shown, reached));
    }
    targets
}

/// Every target's lock, read at once, in the targets' order.
async fn read_locks(targets: &[Target]) -> Vec<(String, Result<HostLockStatus, String>)> {
    let mut jobs = tokio::task::JoinSet::new();
    for (i, (name, reached)) in targets.iter().enumerate() {
        let (name, reached) = (name.clone(), reached.clone());
        jobs.spawn(async move {
            let status = match reached {
                Ok(t) => t.lock_status().await.map_err(|e| e.to_string()),
                Err(why) => Err(why),
            };
            (i, name, status)
        });
    }
    let mut statuses = Vec::new();
    while let Some(joined) = jobs.join_next().await {
        statuses.push(joined.expect("reading a lock does not panic"));
    }
    statuses.sort_by_key(|(i, _, _)| *i);
    statuses.into_iter().map(|(_, n, s)| (n, s)).collect()
}

/// Breaks every host lock the survey found held.
async fn break_locks(targets: &[Target], survey: &LockSurvey) -> Vec<Unlocked> {
    let mut done = Vec::new();
    for ((_, reached), (name, status)) in targets.iter().zip(&survey.hosts) {
        let (Ok(HostLockStatus::Held(held)), Ok(t)) = (status, reached) else {
            continue;
        };
        done.push(Unlocked::Host {
            host: name.clone(),
            holder: held.holder.clone(),
            result: t.break_lock(held).await.map_err(|e| e.to_string()),
        });
    }
    done
}

fn finish(failed: usize) -> Result<Success, CairnError> {
    if failed == 0 {
        Ok(Success::Ok)
    } else {
        Err(CairnError::UnlockIncomplete { failed })
    }
}

/// Every host, and every host only the state still knows (one that left,
/// or the old machine of one that moved), or those named (by name,
/// address, or `address:port`).
fn chosen_hosts(
    model: &Model,
    former: &[FormerHost],
    names: &[String],
) -> Result<Chosen, CairnError> {
    let record = |f: &FormerHost| (f.name.clone(), f.record.clone());
    if names.is_empty() {
        return Ok(Chosen {
            hosts: model.hosts.iter().map(|h| h.id).collect(),
            former: former.iter().map(record).collect(),
        });
    }
    let (mut hosts, mut formers) = (Vec::new(), Vec::new());
    for name in names {
        let host = model.hosts.iter().find(|h| {
            h.name == *name || h.address == *name || format!("{}:{}", h.address, h.port) == *name
        });
        let gone = former
            .iter()
            .find(|f| f.name == *name || f.record.address == *name || f.address() == *name);
        if host.is_none() && gone.is_none() {
            let known: Vec<&str> = model
                .hosts
                .iter()
                .map(|h| h.name.as_str())
                .chain(former.iter().map(|f| f.name.as_str()))
                .collect();
            return Err(CairnError::usage(
                format!("no host `{name}` in the Clusterfile or the state"),
                format!("name a host by its name or address: {}", known.join(", ")),
            ));
        }
        if let Some(h) = host
            && !hosts.contains(&h.id)
        {
            hosts.push(h.id);
        }
        if let Some(f) = gone
            && !formers.iter().any(|(n, _)| *n == f.name)
        {
            formers.push(record(f));
        }
    }
    Ok(Chosen {
        hosts,
        former: formers,
    })
}
