//! Running one task, from its planned change to its record.
//!
//! A task runs on its host's transport (a bundle or file ships, a step runs,
//! a replaced step is undone first), or, adopted, is recorded as converged
//! without running. Either way it ends by appending its record to the
//! journal and waiting until that is on disk: a task reported done is a task
//! recorded. A value a step captured goes on to later steps in clear, but
//! is stored masked if it holds a secret.

use std::collections::HashMap;

use super::Outcome;
use super::context::RunContext;
use super::failure::{Failure, TaskError};
use super::files::sync_files;
use super::steps::{Captures, render_for_host, run_step, run_undo, undo_values};
use crate::graph::{Task, Work, task_id};
use crate::ids::TaskId;
use crate::model::{ElementRef, Model};
use crate::plan::{Change, ChangeKind};
use crate::state::{JournalEntry, RecordDetail, TaskRecord, now_rfc3339};
use crate::transport::{Receipt, ReceiptInfo};

/// A task that finished.
#[derive(Debug)]
pub(super) struct TaskDone {
    pub(super) outcome: Outcome,
    /// The value the step captured, in clear, for the steps that read it.
    pub(super) captured: Option<String>,
    /// A short note for the operator ("1 file shipped (etc/a.conf)").
    pub(super) detail: Option<String>,
}

/// Runs `task` as `change` says, then records it.
pub(super) async fn run_task(
    run: &RunContext,
    task: &Task,
    change: &Change,
    upstream_values: &Captures,
) -> Result<TaskDone, Failure> {
    // Held until the task ends: the fleet does not close a host in use.
    let lease = run
        .fleet
        .lease(task.host)
        .await
        .map_err(TaskError::Transport)?;
    let transport = lease.for_task(&task.id);
    let receipt = Receipt::new(ReceiptInfo {
        task: task.id.clone(),
        key: change.key.clone().expect("graph changes have keys"),
        finished_at: now_rfc3339(),
        by: run.operator.clone(),
        captured: None,
    });
    let ctx = run.task(&transport, Some(&receipt));
    // A task whose host moved starts afresh on the new machine, once the
    // old one is cleaned (the destroys ran before anything else).
    let record = if change.moved_from.is_some() {
        if run
            .failed_undos
            .get()
            .is_some_and(|failed| failed.contains(&task.id))
        {
            return Err(TaskError::OldMachineNotCleaned.into());
        }
        None
    } else {
        run.state.tasks.get(&task.id)
    };
    let replace = change.kind == ChangeKind::Replace;
    let (mut detail, description, outcome) = if change.kind == ChangeKind::Noop {
        let (detail, description) = adopted(run, task, change, upstream_values)?;
        // A capturing step adopted from its receipt (an apply that died before
        // recording it): its receipt now carries the value, unless it holds a
        // secret, and the output kept on the host beside it goes.
        if let RecordDetail::Step {
            captured: Some(value),
            ..
        } = &detail
        {
            let mut info = receipt.info.clone();
            info.captured = (run.scrubber.scrub(value) == *value).then(|| value.clone());
            transport.write_receipt(&Receipt::new(info)).await?;
        }
        (detail, description, Outcome::Adopted)
    } else {
        let outcome = match change.kind {
            ChangeKind::Create => Outcome::Created,
            ChangeKind::Replace => Outcome::Replaced,
            _ => Outcome::Updated,
        };
        let (detail, description) = match &task.work {
            Work::Bundle { .. } | Work::File { .. } => {
                let observation = run.refresh().observations.get(&task.id).cloned();
                sync_files(&ctx, task, record, observation.as_ref(), replace).await?
            }
            Work::Step { step } => {
                if replace && let Some(r) = record {
                    run_undo(&ctx, r, &task.id).await?;
                }
                run_step(&ctx, task, *step, upstream_values).await?
            }
        };
        (detail, description, outcome)
    };
    // The run goes on with the real value; the state keeps it only without secrets.
    let captured = match &mut detail {
        RecordDetail::Step {
            captured,
            captured_masked,
            ..
        } => {
            let real = captured.clone();
            if let Some(value) = captured.as_mut() {
                let scrubbed = run.scrubber.scrub(value);
                if scrubbed != *value {
                    *value = scrubbed;
                    *captured_masked = true;
                }
            }
            real
        }
        _ => None,
    };
    let record = TaskRecord {
        key: change.key.clone().expect("graph changes have keys"),
        inputs: change.inputs.clone().expect("graph changes have inputs"),
        detail,
        finished_at: now_rfc3339(),
        seq: run.next_seq(),
    };
    run.record(JournalEntry::Done {
        id: task.id.clone(),
        record: Box::new(record),
    })
    .await
    .map_err(TaskError::NotRecorded)?;
    Ok(TaskDone {
        outcome,
        captured,
        detail: (!description.is_empty()).then_some(description),
    })
}

/// The record of a step adopted as converged (its check passes, or the host
/// holds its receipt): what its undo will need, and a value its receipt
/// captured, which goes on.
fn adopted(
    run: &RunContext,
    task: &Task,
    change: &Change,
    upstream_values: &Captures,
) -> Result<(RecordDetail, String), Failure> {
    let Work::Step { step } = task.work else {
        unreachable!("only steps are adopted")
    };
    let s = &run.model.steps[step];
    let cwd = s
        .cwd
        .as_ref()
        .map(|c| render_for_host(&run.model, task.host, c, upstream_values))
        .transpose()?;
    let captured = run
        .refresh()
        .receipts
        .get(&task.id)
        .and_then(|r| r.captured.clone());
    if let (Some(value), true) = (&captured, s.capture_secret) {
        run.scrubber.add(value);
    }
    let detail = RecordDetail::Step {
        captured,
        captured_masked: false,
        undo: s.undo.as_ref().map(|u| u.source.clone()),
        undo_vars: undo_values(&run.model, task.host, s.undo.as_ref(), upstream_values),
        cwd,
    };
    let why = change
        .reasons
        .first()
        .cloned()
        .unwrap_or_else(|| "already converged".into());
    Ok((detail, why))
}

/// The captured values a step reads, from the tasks that captured them.
pub(super) fn capture_values(
    model: &Model,
    task: &Task,
    captured: &HashMap<TaskId, String>,
) -> Captures {
    let mut values = Captures::new();
    let Work::Step { step } = task.work else {
        return values;
    };
    for interp in model.steps[step].strings() {
        for name in interp.vars() {
            if model.var(task.host, name).is_some() {
                continue;
            }
            if let Some((producer, host)) = model.capture_source(task.host, name) {
                let id = task_id(model, ElementRef::Step(producer), host);
                if let Some(v) = captured.get(&id) {
                    values.insert(name.to_string(), v.clone());
                }
            }
        }
    }
    values
}
