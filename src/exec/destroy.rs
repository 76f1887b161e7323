//! Destroys: undoing tasks that left the Clusterfile, then forgetting them.
//!
//! A step is undone by the command recorded when it ran; a bundle or file
//! by removing what it shipped, where it still holds what cairn shipped
//! (a file changed by hand is kept, and said so). The host is reached
//! through the fleet, which knows how to reach a host even after it left
//! the Clusterfile when that is possible. Destroys run before anything else,
//! newest first, one at a time: undo order matters more than speed here.

use std::sync::mpsc::Sender;
use std::time::Instant;

use super::context::RunContext;
use super::events::millis;
use super::failure::{Failure, TaskError};
use super::steps::run_undo;
use super::{Event, Outcome, RunSummary};
use crate::ids::TaskId;
use crate::plan::{ChangeKind, Plan};
use crate::state::JournalEntry;

/// Runs every destroy of `plan`, reporting each.
pub(super) async fn run_destroys(
    run: &RunContext,
    plan: &Plan,
    events: &Sender<Event>,
    summary: &mut RunSummary,
) {
    for c in plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Destroy)
    {
        let t0 = Instant::now();
        let _ = events.send(Event::TaskStarted {
            task: c.id.clone(),
            host: c.host.clone(),
            action: "destroy".into(),
        });
        match destroy(run, &c.id).await {
            Ok(detail) => {
                summary.succeeded += 1;
                let _ = events.send(Event::TaskFinished {
                    task: c.id.clone(),
                    host: c.host.clone(),
                    outcome: Outcome::Destroyed,
                    duration_ms: millis(t0.elapsed()),
                    detail: Some(detail),
                });
            }
            Err(f) => {
                summary.failed.push(c.id.clone());
                let _ = events.send(Event::TaskFailed {
                    task: c.id.clone(),
                    host: c.host.clone(),
                    error: run.scrubber.scrub(&f.error.to_string()),
                    tail: f.tail,
                    log: f.log,
                    duration_ms: millis(t0.elapsed()),
                });
            }
        }
    }
}

/// Undoes one recorded task, removes its receipt, then forgets it.
async fn destroy(run: &RunContext, id: &TaskId) -> Result<String, Failure> {
    let record = run
        .state
        .tasks
        .get(id)
        .expect("the plan destroys recorded tasks only");
    let transport = run
        .fleet
        .transport_for_record(&run.model, record.host())
        .ok_or_else(|| TaskError::NotConnectedToUndo {
            host: record.host().name.clone(),
        })?
        .for_task(id);
    let detail = match record.detail.shipped_files() {
        Some((dest, shipped)) => {
            let kept = transport.remove(dest, &shipped).await?;
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
        format!("{total} file{} removed", if total == 1 { "" } else { "s" })
    } else {
        format!(
            "{} removed, {} kept because they were changed by hand ({})",
            total - kept.len(),
            kept.len(),
            kept.join(", ")
        )
    }
}
