//! Destroys: undoing tasks that left the Clusterfile (or whose host moved
//! to another machine), then forgetting them, and cleaning up after hosts
//! that left.
//!
//! A step is undone by the command recorded when it ran; a bundle or file
//! by removing what it shipped, where it still holds what cairn shipped
//! (a file changed by hand is kept, and said so). The host is reached
//! through the fleet, which reaches a host that left the Clusterfile (or
//! the old machine of a host that moved) with the settings recorded at its
//! last apply. Destroys run before anything else, in reverse dependency
//! order (`plan::undo_order`): a destroy starts once every destroy that must
//! come before it has succeeded, one at a time per host, hosts in parallel.
//! A destroy whose predecessor failed is not attempted (removing a bundle
//! whose undo script failed would make the undo impossible to retry).
//!
//! A host that left, once everything cairn did there is undone, loses its
//! cairn folder (receipts, lock files) and leaves the state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

use super::context::RunContext;
use super::events::millis;
use super::failure::{Failure, TaskError};
use super::steps::run_undo;
use super::{Event, Outcome, RunSummary};
use crate::ids::TaskId;
use crate::plan::undo_order::undo_before;
use crate::plan::{ChangeKind, Plan};
use crate::state::{JournalEntry, TaskRecord};
use crate::transport::TransportError;

/// Runs every destroy of `plan` (and the undo half of each replace whose
/// host moved), reporting each; then forgets the `forget` hosts whose
/// records are all undone. Returns the ids whose undo failed or did not run.
pub(super) async fn run_destroys(
    run: &Arc<RunContext>,
    plan: &Plan,
    forget: &BTreeSet<String>,
    parallelism: usize,
    events: &Sender<Event>,
    summary: &mut RunSummary,
) -> BTreeSet<TaskId> {
    let undo: Vec<(&TaskId, &TaskRecord)> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Destroy || c.moved_from.is_some())
        .filter_map(|c| run.state.tasks.get(&c.id).map(|r| (&c.id, r)))
        .collect();
    // Destroys are reported as such; a moved task's undo is the first half
    // of its replace, reported when the replace finishes.
    let reported: BTreeSet<&TaskId> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Destroy)
        .map(|c| &c.id)
        .collect();
    let before = undo_before(&undo);
    let mut waiting: Vec<usize> = before.iter().map(BTreeSet::len).collect();
    let mut unlocks: Vec<Vec<usize>> = vec![Vec::new(); undo.len()];
    for (b, firsts) in before.iter().enumerate() {
        for &a in firsts {
            unlocks[a].push(b);
        }
    }
    let mut failed: BTreeSet<TaskId> = BTreeSet::new();
    let mut blocked = vec![false; undo.len()];
    let mut started = vec![false; undo.len()];
    let mut busy_hosts: BTreeSet<String> = BTreeSet::new();
    let mut jobs = tokio::task::JoinSet::new();
    let mut finished = 0;
    while finished < undo.len() {
        // Start every ready destroy whose host is free, within the limit.
        for i in 0..undo.len() {
            if started[i] || waiting[i] > 0 || jobs.len() >= parallelism.max(1) {
                continue;
            }
            let (id, record) = undo[i];
            if blocked[i] {
                started[i] = true;
                finished += 1;
                failed.insert(id.clone());
                summary.skipped += 1;
                let _ = events.send(Event::TaskSkipped {
                    task: id.clone(),
                    host: record.host().name.clone(),
                    reason: "not undone: something that must be undone before it failed".into(),
                });
                release(i, &unlocks, &mut waiting, &mut blocked, true);
                continue;
            }
            if busy_hosts.contains(&record.host().name) {
                continue;
            }
            started[i] = true;
            busy_hosts.insert(record.host().name.clone());
            if reported.contains(id) {
                let _ = events.send(Event::TaskStarted {
                    task: id.clone(),
                    host: record.host().name.clone(),
                    action: "destroy".into(),
                });
            }
            let run = run.clone();
            let id = id.clone();
            jobs.spawn(async move {
                let t0 = Instant::now();
                let result = destroy(&run, &id).await;
                (i, id, result, t0.elapsed())
            });
        }
        if jobs.is_empty() {
            // Everything left is blocked and was skipped above, or nothing is left.
            if (0..undo.len()).all(|i| started[i]) {
                break;
            }
            continue;
        }
        let (i, id, result, elapsed) = jobs
            .join_next()
            .await
            .expect("a destroy is running")
            .expect("destroys do not panic");
        finished += 1;
        let host = undo[i].1.host().name.clone();
        busy_hosts.remove(&host);
        let ok = result.is_ok();
        if !ok {
            failed.insert(id.clone());
        }
        if reported.contains(&id) {
            report(run, &id, &host, result, elapsed, events, summary);
        } else if let Err(f) = result {
            // The undo half of a moved task: its replace fails for it.
            let _ = events.send(Event::Note {
                message: run.scrubber.scrub(&format!(
                    "{id}: undoing it on the host's old machine failed: {}{}",
                    f.error,
                    f.log.map(|l| format!(" (log: {l})")).unwrap_or_default()
                )),
            });
        }
        release(i, &unlocks, &mut waiting, &mut blocked, !ok);
    }
    forget_hosts(run, &undo, &failed, forget, events).await;
    failed
}

/// One destroy finished: lets what waited for it go, or blocks it.
fn release(
    i: usize,
    unlocks: &[Vec<usize>],
    waiting: &mut [usize],
    blocked: &mut [bool],
    failed: bool,
) {
    for &b in &unlocks[i] {
        waiting[b] = waiting[b].saturating_sub(1);
        if failed {
            blocked[b] = true;
        }
    }
}

fn report(
    run: &RunContext,
    id: &TaskId,
    host: &str,
    result: Result<String, Failure>,
    elapsed: std::time::Duration,
    events: &Sender<Event>,
    summary: &mut RunSummary,
) {
    match result {
        Ok(detail) => {
            summary.succeeded += 1;
            let _ = events.send(Event::TaskFinished {
                task: id.clone(),
                host: host.to_string(),
                outcome: Outcome::Destroyed,
                duration_ms: millis(elapsed),
                detail: Some(detail),
            });
        }
        Err(f) => {
            summary.failed.push(id.clone());
            let _ = events.send(Event::TaskFailed {
                task: id.clone(),
                host: host.to_string(),
                error: run.scrubber.scrub(&f.error.to_string()),
                tail: f.tail,
                log: f.log,
                duration_ms: millis(elapsed),
            });
        }
    }
}

/// A host that left (or is reset), whose records were all undone here,
/// loses cairn's folder and leaves the state. One with a failed undo keeps
/// both, so the next run retries. Then the former hosts are let go: nothing
/// but undoing is ever done there.
async fn forget_hosts(
    run: &RunContext,
    undone: &[(&TaskId, &TaskRecord)],
    failed: &BTreeSet<TaskId>,
    forget: &BTreeSet<String>,
    events: &Sender<Event>,
) {
    let mut per_host: BTreeMap<&str, bool> = BTreeMap::new();
    for (id, record) in undone {
        let ok = per_host.entry(&record.host().name).or_insert(true);
        *ok &= !failed.contains(*id);
    }
    let all_undone = |name: &str| per_host.get(name).copied().unwrap_or(true);
    let in_model = |name: &str| run.model.hosts.iter().find(|h| h.name == name);
    // The old machine of a host that moved is cleaned the same way; the
    // name stays in the state, for its new machine.
    for name in run.fleet.former_names() {
        if in_model(&name).is_none() || !all_undone(&name) || !run.fleet.former_reachable(&name) {
            continue;
        }
        let forgotten = match run.fleet.lease_former(&name).await {
            Ok(transport) => transport.forget_host().await,
            Err(error) => Err(error),
        };
        if let Err(error) = forgotten {
            note_not_forgotten(run, events, &name, &error.to_string());
        }
    }
    for name in forget {
        if !all_undone(name) {
            continue;
        }
        // Only a host reached this run: one that failed is not tried again.
        let leased = match in_model(name) {
            Some(h) if !run.refresh().unreachable.contains_key(&h.name) => {
                run.fleet.lease(h.id).await
            }
            None if run.fleet.former_reachable(name) => run.fleet.lease_former(name).await,
            _ => continue,
        };
        let Ok(transport) = leased else {
            continue;
        };
        let result = match transport.forget_host().await {
            Ok(()) => run
                .record(JournalEntry::ForgetHost { name: name.clone() })
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = result {
            note_not_forgotten(run, events, name, &error);
        }
    }
    run.fleet.done_with_former().await;
}

fn note_not_forgotten(run: &RunContext, events: &Sender<Event>, name: &str, error: &str) {
    let _ = events.send(Event::Note {
        message: run.scrubber.scrub(&format!(
            "host {name}: everything cairn did there is undone, but removing cairn's folder or forgetting the host failed: {error}; the next run tries again"
        )),
    });
}

/// Undoes one recorded task, removes its receipt, then forgets it.
async fn destroy(run: &RunContext, id: &TaskId) -> Result<String, Failure> {
    let record = run
        .state
        .tasks
        .get(id)
        .expect("the plan destroys recorded tasks only");
    let name = &record.host().name;
    let not_connected = || TaskError::NotConnectedToUndo {
        host: name.clone(),
        why: {
            let refresh = run.refresh();
            refresh
                .former_unreachable
                .get(name)
                .or_else(|| refresh.unreachable.get(name))
                .cloned()
        }
        .unwrap_or_else(|| "not connected (unreachable, or left out by --limit)".into()),
    };
    // Held until the undo ends: the fleet does not close a host in use.
    let lease = match run.fleet.lease_for_record(&run.model, record.host()).await {
        Some(Ok(lease)) => lease,
        Some(Err(TransportError::ChangedSinceProbe { .. } | TransportError::Again(_))) | None => {
            return Err(not_connected().into());
        }
        Some(Err(error)) => return Err(TaskError::Transport(error).into()),
    };
    let transport = lease.for_task(id);
    let detail = match record.detail.shipped_files() {
        Some((dest, shipped)) => {
            let kept = transport.remove(dest, &shipped, None).await?;
            removal_detail(shipped.len(), &kept)
        }
        None => run_undo(&run.task(&transport, None), record, id).await?,
    };
    transport
        .forget_receipt(id)
        .await
        .map_err(TaskError::ReceiptNotRemoved)?;
    run.record(JournalEntry::Forget { id: id.clone() })
        .await
        .map_err(TaskError::UndoNotRecorded)?;
    Ok(detail)
}

fn removal_detail(total: usize, kept: &[String]) -> String {
    if kept.is_empty() {
        format!("{} removed", crate::words::count(total, "file"))
    } else {
        format!(
            "{} removed, {} kept because they were changed by hand ({})",
            total - kept.len(),
            kept.len(),
            kept.join(", ")
        )
    }
}
