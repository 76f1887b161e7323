//! Running a step, and undoing one.
//!
//! A step's script is rendered with this host's values (captured values
//! included), run in its working directory with its timeout, and retried as
//! told; its output goes to the run log. An undo (the step left the
//! Clusterfile, or `--replace` reruns it) runs the command recorded when the
//! step ran, with the values recorded then, in the folder the step ran in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::context::TaskContext;
use super::failure::{Exit, Failure, TaskError};
use crate::graph::Task;
use crate::ids::TaskId;
use crate::model::interp::{Interp, Resolved};
use crate::model::{HostId, Model, VarValue};
use crate::state::{RecordDetail, TaskRecord};
use crate::transport::Receipt;

/// Values of a step's captured variables, given by the scheduler.
pub(super) type Captures = BTreeMap<String, String>;

/// Runs a step; returns its record detail and a short description.
pub(super) async fn run_step(
    ctx: &TaskContext<'_>,
    task: &Task,
    step_index: usize,
    upstream_values: &Captures,
) -> Result<(RecordDetail, String), Failure> {
    let model = ctx.model;
    let step = &model.steps[step_index];
    let host = task.host;
    let render = |text: &Interp| render_for_host(model, host, text, upstream_values);
    let script = render(&step.run)?;
    let cwd = step.cwd.as_ref().map(render).transpose()?;
    let attempts = step.retries + 1;
    let mut last = None;
    let mut log = String::new();
    // A capturing step's receipt carries the value, known only once it has
    // run: its command leaves the receipt with its output kept beside it,
    // and the receipt with the value is written after.
    let receipt = match ctx.receipt {
        Some(r) if step.capture.is_some() => Some(r.keeping_output()),
        other => other.cloned(),
    };
    for attempt in 1..=attempts {
        let out = ctx
            .transport
            .run(&script, cwd.as_deref(), step.timeout, receipt.as_ref())
            .await?;
        let _ = writeln!(log, "# attempt {attempt} of {attempts}: {}", Exit::of(&out));
        log.push_str("## stdout\n");
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str("\n## stderr\n");
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        log.push('\n');
        if out.success() {
            let captured = step
                .capture
                .as_ref()
                .map(|_| String::from_utf8_lossy(&out.stdout).trim_end().to_string());
            // A secret capture is masked from here on: in this log, in the
            // state, in the scripts of the steps that read it.
            if let (Some(value), true) = (&captured, step.capture_secret) {
                ctx.scrubber.add(value);
            }
            ctx.log(&task.id, &log);
            if let (Some(value), Some(base)) = (&captured, ctx.receipt) {
                let mut info = base.info.clone();
                // A value holding a secret stays off the host's receipts too.
                info.captured = (ctx.scrubber.scrub(value) == *value).then(|| value.clone());
                ctx.transport.write_receipt(&Receipt::new(info)).await?;
            }

            let detail = match attempt {
                1 => None,
                n => Some(format!("succeeded on attempt {n}")),
            };
            let undo_vars = undo_values(model, host, step.undo.as_ref(), upstream_values);
            return Ok((
                RecordDetail::Step {
                    captured,
                    captured_masked: false,
                    undo: step.undo.as_ref().map(|u| u.source.clone()),
                    undo_vars,
                    cwd,
                },
                detail.unwrap_or_default(),
            ));
        }
        last = Some(out);
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
    let out = last.expect("at least one attempt");
    let log_path = ctx.log(&task.id, &log);
    let error = TaskError::Step {
        exit: Exit::of(&out),
        attempts,
    };
    Err(Failure::with_output(error, &out, ctx.scrubber, log_path))
}

/// Renders a step's string on a host, with the values captured so far.
pub(super) fn render_for_host(
    model: &Model,
    host: HostId,
    text: &Interp,
    upstream_values: &Captures,
) -> Result<String, Failure> {
    let lookup = |name: &str| upstream_values.get(name).cloned();
    text.render(|n| model.resolve(host, n, &lookup))
        .map_err(|var| TaskError::ValueMissing { var }.into())
}

/// The non-secret values an undo command reads, so it can run after the step is gone.
pub(super) fn undo_values(
    model: &Model,
    host: HostId,
    undo: Option<&Interp>,
    upstream_values: &Captures,
) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let Some(undo) = undo else { return values };
    for name in undo.vars() {
        if let Some(v) = model.builtin(host, name) {
            values.insert(name.to_string(), v);
        } else if let Some(var) = model.var(host, name) {
            if !matches!(var, VarValue::Secret { .. })
                && let Some(text) = var.as_text()
            {
                values.insert(name.to_string(), text.into_owned());
            }
        } else if let Some(v) = upstream_values.get(name)
            && !model.is_secret_capture(name)
        {
            // A secret capture is not recorded: its undo reads it as empty.
            values.insert(name.to_string(), v.clone());
        }
    }
    values
}

/// Runs the recorded undo of a step. Secrets it reads come from the current Clusterfile.
/// It runs in the folder the step ran in.
pub(super) async fn run_undo(
    ctx: &TaskContext<'_>,
    record: &TaskRecord,
    task_id: &TaskId,
) -> Result<String, Failure> {
    let RecordDetail::Step {
        undo: Some(undo),
        undo_vars,
        cwd,
        ..
    } = &record.detail
    else {
        return Ok("nothing to undo".into());
    };
    let interp =
        Interp::parse(undo).map_err(|e| TaskError::UndoUnreadable { message: e.message })?;
    let script = interp
        .render(|name| {
            if let Some(v) = undo_vars.get(name) {
                return Resolved::Text(v.as_str().into());
            }
            match ctx.model.vars.get(name) {
                Some(VarValue::Secret { value, .. }) => Resolved::Secret(value.expose()),
                _ => Resolved::Unknown,
            }
        })
        .map_err(|var| TaskError::UndoValueMissing { var })?;
    let out = ctx
        .transport
        .run(
            &script,
            cwd.as_deref(),
            Some(Duration::from_secs(600)),
            None,
        )
        .await?;
    let mut log = String::from("# undo\n## stdout\n");
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    log.push_str("\n## stderr\n");
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    let log_path = ctx.log(task_id, &log);
    if out.success() {
        Ok("undo ran".into())
    } else {
        let error = TaskError::Undo {
            exit: Exit::of(&out),
        };
        Err(Failure::with_output(error, &out, ctx.scrubber, log_path))
    }
}
