//! What running one task means, by kind.
//!
//! - bundle / file: ship the files whose content on the host differs from
//!   what it should be (known from refresh and the record), remove files the
//!   bundle no longer has (only if they still hold what cairn shipped), and
//!   set the owner of single files;
//! - step: render the script with this host's values (captures included),
//!   run it with its timeout, retry as told, keep the output in the run log;
//! - undo (destroy or replace of a step): run the recorded undo command.
//!
//! A runner returns the record detail to keep, or a [`Failure`] with the tail
//! of the output. Runners never print.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::graph::{Task, Work};
use crate::ids::TaskId;
use crate::model::interp::{Interp, Resolved};
use crate::model::{HostId, Model, Scrubber, VarValue};
use crate::plan::Observation;
use crate::state::{RecordDetail, ShippedFile, TaskRecord};
pub use crate::transport::shell_quote;
use crate::transport::{CommandOutput, Observed, Receipt, Transport};

/// Why a task failed, ready to show.
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: String,
    pub tail: Vec<String>,
    pub log: Option<String>,
}

impl Failure {
    pub fn new(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            tail: Vec::new(),
            log: None,
        }
    }
}

/// Lines of output kept in a failure message.
pub const TAIL_LINES: usize = 12;

/// Everything a runner may need that is not the task itself.
pub struct RunnerContext<'a> {
    pub model: &'a Model,
    pub transport: &'a Transport,
    pub scrubber: &'a Scrubber,
    pub log_dir: &'a PathBuf,
    /// Left on the host by the command that finishes the task (over SSH).
    pub receipt: Option<&'a Receipt>,
}

/// Ships a bundle's or a file's content; returns the new record detail and a short description.
pub async fn sync_files(
    ctx: &RunnerContext<'_>,
    task: &Task,
    record: Option<&TaskRecord>,
    observation: Option<&Observation>,
    replace: bool,
) -> Result<(RecordDetail, String), Failure> {
    let (dest, desired) = match &task.work {
        Work::Bundle { dest, .. } | Work::File { dest, .. } => (dest.clone(), task.work.files()),
        Work::Step { .. } => unreachable!("sync_files is for bundles and files"),
    };
    let recorded = record.and_then(|r| r.detail.shipped_files());
    let old_dest = recorded.as_ref().map(|(d, _)| d.to_string());
    let old_shipped: BTreeMap<String, ShippedFile> = recorded.map(|(_, s)| s).unwrap_or_default();
    let mut removed = 0;
    let mut kept = Vec::new();
    // Replacing (or the destination moved): take away what was shipped to the old place first.
    let moved = old_dest.as_deref().is_some_and(|d| d != dest);
    if (replace || moved)
        && let Some(old) = &old_dest
    {
        kept = ctx
            .transport
            .remove(old, &old_shipped)
            .await
            .map_err(|e| Failure::new(e.to_string()))?;
        removed = old_shipped.len() - kept.len();
    }
    let fresh = replace || moved;
    // What the host has now, per path, as far as we know.
    let host_hash = |rel: &str| -> Option<String> {
        if fresh {
            return None;
        }
        let recorded = old_shipped.get(rel)?;
        match observation {
            Some(Observation::Files(found)) => match found.get(rel) {
                Some(Observed::Unchanged) => Some(recorded.hash.clone()),
                Some(Observed::Hashed(h)) => Some(h.clone()),
                Some(Observed::Missing) | None => None,
            },
            // Not refreshed (offline plan): trust the record.
            _ => Some(recorded.hash.clone()),
        }
    };
    let to_ship: BTreeMap<String, crate::bundle::ShipFile> = desired
        .iter()
        .filter(|(rel, file)| {
            host_hash(rel).as_deref() != Some(file.entry.hash.as_str())
                || old_shipped
                    .get(*rel)
                    .is_some_and(|r| r.mode != file.entry.mode)
        })
        .map(|(rel, file)| (rel.clone(), file.clone()))
        .collect();
    let dropped: BTreeMap<String, ShippedFile> = if fresh {
        BTreeMap::new()
    } else {
        old_shipped
            .iter()
            .filter(|(rel, _)| !desired.contains_key(*rel))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let chown = match &task.work {
        Work::File { file, .. } => ctx.model.files[*file].owner.clone(),
        _ => None,
    };
    // The receipt rides on the task's last command: the shipping, unless a removal or chown follows.
    let mut receipt = ctx.receipt;
    let shipped_now = if to_ship.is_empty() {
        BTreeMap::new()
    } else {
        let with = if dropped.is_empty() && chown.is_none() {
            receipt.take()
        } else {
            None
        };
        ctx.transport
            .ship(&dest, &to_ship, with)
            .await
            .map_err(|e| Failure::new(e.to_string()))?
    };
    // Files the bundle no longer has: remove them if they are still as shipped.
    if !dropped.is_empty() {
        let k = ctx
            .transport
            .remove(&dest, &dropped)
            .await
            .map_err(|e| Failure::new(e.to_string()))?;
        removed += dropped.len() - k.len();
        kept.extend(k);
    }

    let mut shipped = BTreeMap::new();
    for rel in desired.keys() {
        let entry = match shipped_now.get(rel) {
            Some(s) => s.clone(),
            None => old_shipped
                .get(rel)
                .cloned()
                .expect("a file not shipped now was shipped before with the same content"),
        };
        shipped.insert(rel.clone(), entry);
    }
    let mut detail = match to_ship.len() {
        0 => "nothing to ship".to_string(),
        1 => format!(
            "1 file shipped ({})",
            if to_ship.contains_key("") {
                dest.clone()
            } else {
                to_ship.keys().next().cloned().unwrap_or_default()
            }
        ),
        n => format!("{n} files shipped"),
    };
    if removed > 0 {
        detail.push_str(&format!(", {removed} removed"));
    }
    if !kept.is_empty() {
        detail.push_str(&format!(", {} kept (changed by hand)", kept.len()));
    }
    let record = match &task.work {
        Work::Bundle { .. } => RecordDetail::Bundle { dest, shipped },
        Work::File { dest, .. } => {
            if let Some(owner) = &chown {
                let script = format!("chown {} {}", shell_quote(owner), shell_quote(dest));
                let out = ctx
                    .transport
                    .run(&script, None, Some(Duration::from_secs(60)), receipt.take())
                    .await
                    .map_err(|e| Failure::new(e.to_string()))?;
                if !out.success() {
                    return Err(failure_from(
                        &out,
                        &format!("failed to chown {dest} to {owner}"),
                        ctx.scrubber,
                        None,
                    ));
                }
            }
            RecordDetail::File {
                dest: dest.clone(),
                shipped: shipped.remove("").expect("a file task ships one file"),
            }
        }
        Work::Step { .. } => unreachable!(),
    };
    if let Some(r) = receipt {
        ctx.transport
            .write_receipt(r)
            .await
            .map_err(|e| Failure::new(e.to_string()))?;
    }
    Ok((record, detail))
}

/// Values of a step's captured variables, given by the scheduler.
pub type Captures = BTreeMap<String, String>;

/// Runs a step; returns its record detail and a short description.
pub async fn run_step(
    ctx: &RunnerContext<'_>,
    task: &Task,
    step_index: usize,
    captures: &Captures,
    task_id: &TaskId,
) -> Result<(RecordDetail, String), Failure> {
    let model = ctx.model;
    let step = &model.steps[step_index];
    let host = task.host;
    let render = |text: &Interp| render_for_host(model, host, text, captures);
    let script = render(&step.run)?;
    let cwd = step.cwd.as_ref().map(render).transpose()?;
    let attempts = step.retries + 1;
    let mut last = None;
    let mut log = String::new();
    for attempt in 1..=attempts {
        let out = ctx
            .transport
            .run(
                &script,
                cwd.as_deref(),
                step.timeout,
                // A capturing step's receipt carries the value: it is written after.
                if step.capture.is_some() {
                    None
                } else {
                    ctx.receipt
                },
            )
            .await
            .map_err(|e| Failure::new(ctx.scrubber.scrub(&e.to_string())))?;
        log.push_str(&format!(
            "# attempt {attempt} of {attempts}: {}\n",
            describe_exit(&out)
        ));
        log.push_str("## stdout\n");
        log.push_str(&String::from_utf8_lossy(&out.stdout));
        log.push_str("\n## stderr\n");
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        log.push('\n');
        if out.success() {
            write_log(ctx, task_id, &log);
            let captured = step
                .capture
                .as_ref()
                .map(|_| String::from_utf8_lossy(&out.stdout).trim_end().to_string());
            if let (Some(value), Some(base)) = (&captured, ctx.receipt) {
                let mut info = base.info.clone();
                // A value holding a secret stays off the host's receipts too.
                info.captured = (ctx.scrubber.scrub(value) == *value).then(|| value.clone());
                ctx.transport
                    .write_receipt(&Receipt::new(info))
                    .await
                    .map_err(|e| Failure::new(ctx.scrubber.scrub(&e.to_string())))?;
            }

            let detail = match attempt {
                1 => None,
                n => Some(format!("succeeded on attempt {n}")),
            };
            let undo_vars = undo_values(model, host, step.undo.as_ref(), captures);
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
    let log_path = write_log(ctx, task_id, &log);
    let what = if attempts > 1 {
        format!("{} (after {attempts} attempts)", describe_exit(&out))
    } else {
        describe_exit(&out)
    };
    Err(failure_from(&out, &what, ctx.scrubber, log_path))
}

/// Renders a step's string on a host, with the values captured so far.
pub fn render_for_host(
    model: &Model,
    host: HostId,
    text: &Interp,
    captures: &Captures,
) -> Result<String, Failure> {
    let lookup = |name: &str| captures.get(name).cloned();
    text.render(|n| model.resolve(host, n, &lookup)).map_err(|missing| {
        Failure::new(format!(
            "`${{{missing}}}` has no value: the step that captures it did not run, and no value is recorded (a value holding a secret is not stored: rerun that step with --replace)"
        ))
    })
}

/// The non-secret values an undo command reads, so it can run after the step is gone.
pub fn undo_values(
    model: &Model,
    host: HostId,
    undo: Option<&Interp>,
    captures: &Captures,
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
        } else if let Some(v) = captures.get(name) {
            values.insert(name.to_string(), v.clone());
        }
    }
    values
}

/// Runs the recorded undo of a step. Secrets it reads come from the current Clusterfile.
/// It runs in the folder the step ran in.
pub async fn run_undo(
    ctx: &RunnerContext<'_>,
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
    let interp = Interp::parse(undo)
        .map_err(|e| Failure::new(format!("recorded undo cannot be read: {}", e.message)))?;
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
        .map_err(|missing| Failure::new(format!("the undo command reads `${{{missing}}}`, which is no longer defined; define it again (in [vars]) to undo")))?;
    let out = ctx
        .transport
        .run(
            &script,
            cwd.as_deref(),
            Some(Duration::from_secs(600)),
            None,
        )
        .await
        .map_err(|e| Failure::new(e.to_string()))?;
    let mut log = String::from("# undo\n## stdout\n");
    log.push_str(&String::from_utf8_lossy(&out.stdout));
    log.push_str("\n## stderr\n");
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    let log_path = write_log(ctx, task_id, &log);
    if out.success() {
        Ok("undo ran".into())
    } else {
        Err(failure_from(
            &out,
            &format!("undo {}", describe_exit(&out)),
            ctx.scrubber,
            log_path,
        ))
    }
}

fn describe_exit(out: &CommandOutput) -> String {
    if out.timed_out {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        match out.code {
            Some(0) => "succeeded".into(),
            Some(c) => format!("exited with code {c}"),
            None => "killed by a signal".into(),
        }
    }
}

fn failure_from(
    out: &CommandOutput,
    error: &str,
    scrubber: &Scrubber,
    log: Option<String>,
) -> Failure {
    let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) && !out.timed_out {
        &out.stderr
    } else {
        &out.stdout
    };
    let text = scrubber.scrub(&String::from_utf8_lossy(text));
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec();
    Failure {
        error: scrubber.scrub(error),
        tail,
        log,
    }
}

/// Writes a task's output to the run log (secrets scrubbed); returns its path.
fn write_log(ctx: &RunnerContext<'_>, task_id: &TaskId, text: &str) -> Option<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(ctx.log_dir).ok()?;
    let name = task_id.file_safe();
    let path = ctx.log_dir.join(format!("{name}.log"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .ok()?;
    file.write_all(ctx.scrubber.scrub(text).as_bytes()).ok()?;
    Some(path.display().to_string())
}
