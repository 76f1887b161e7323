//! The lines a run prints, shared by the plain and progress displays: one
//! per finished, failed or skipped task, the tail of a failure's output,
//! and the closing summary.

use std::fmt::Write as _;

use super::Style;
use crate::exec::{Event, Outcome, RunSummary};

fn ms(d: u64) -> String {
    if d >= 1000 {
        format!("{:.1}s", std::time::Duration::from_millis(d).as_secs_f64())
    } else {
        format!("{d}ms")
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Replaced => "replaced",
        Outcome::Destroyed => "destroyed",
        Outcome::Adopted => "recorded",
    }
}

/// Lines shared by the plain and progress modes.
pub(super) fn line_for(event: &Event, style: Style) -> Option<String> {
    Some(match event {
        Event::RunStarted { tasks, hosts, .. } => {
            format!(
                "Applying {tasks} task{} on {} host{}",
                plural(*tasks),
                hosts.len(),
                plural(hosts.len())
            )
        }
        Event::TaskStarted { .. } => return None,
        Event::TaskFinished {
            task,
            outcome,
            duration_ms,
            detail,
            ..
        } => {
            let detail = detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            format!(
                "{} {task}: {}{detail} [{}]",
                style.green("✓"),
                outcome_word(*outcome),
                ms(*duration_ms)
            )
        }
        Event::TaskFailed { task, error, .. } => format!("{} {task}: {error}", style.red("✗")),
        Event::TaskSkipped { task, reason, .. } => {
            format!("{} {task}: skipped, {reason}", style.yellow("-"))
        }
        Event::Note { message } => format!("{} {message}", style.yellow("!")),
        Event::Interrupted { running } => format!(
            "{} interrupted: no new task starts; waiting for {running} running task{} to finish (Ctrl-C again stops them now)",
            style.yellow("!"),
            plural(*running)
        ),
        Event::Stopping { running, log_dir } => format!(
            "{} stopping now: {running} running task{} not waited for and not recorded, so the next apply runs {} again (killed on this machine; over SSH each ends on its host, by its timeout at the latest). Task logs of this run: {log_dir}",
            style.yellow("!"),
            plural(*running),
            if *running == 1 { "it" } else { "them" }
        ),
        Event::RunFinished { summary } => return Some(summary_text(summary, style)),
    })
}

/// The closing summary: counts, then each failure with the tail of its output.
pub(super) fn summary_text(s: &RunSummary, style: Style) -> String {
    let mut out = String::new();
    if s.interrupted {
        let _ = write!(
            out,
            "\n{} {} done, {} failed, {} not finished, {} unchanged in {}. Run `cairn apply` again to continue.",
            style.yellow(&style.bold("Apply interrupted.")),
            s.succeeded,
            s.failed.len(),
            s.not_finished,
            s.unchanged,
            ms(s.duration_ms)
        );
    } else if s.failed.is_empty() && s.unreachable.is_empty() {
        let _ = write!(
            out,
            "\n{} {} done, {} unchanged in {}.",
            style.bold("Apply complete!"),
            s.succeeded,
            s.unchanged,
            ms(s.duration_ms)
        );
    } else {
        let _ = write!(
            out,
            "\n{} {} done, {} failed, {} skipped, {} unchanged in {}.",
            style.red(&style.bold("Apply failed.")),
            s.succeeded,
            s.failed.len(),
            s.skipped,
            s.unchanged,
            ms(s.duration_ms)
        );
    }
    if !s.unreachable.is_empty() {
        let _ = write!(
            out,
            "\n{} host{} could not be reached; nothing ran there:",
            s.unreachable.len(),
            plural(s.unreachable.len())
        );
        for why in &s.unreachable {
            let _ = write!(out, "\n  {} {why}", style.red("✗"));
        }
    }
    if let Some(dir) = &s.log_dir {
        let _ = write!(out, "\nTask output is in {dir}");
    }
    out
}

/// A failure's tail, indented under it.
pub(super) fn failure_tail(event: &Event, style: Style) -> Option<String> {
    if let Event::TaskFailed { tail, log, .. } = event {
        let mut out = String::new();
        for line in tail {
            let _ = writeln!(out, "    {}", style.dim(line));
        }
        if let Some(log) = log {
            let _ = writeln!(out, "    {}", style.dim(&format!("full output: {log}")));
        }
        return Some(out.trim_end().to_string()).filter(|s| !s.is_empty());
    }
    None
}

/// Every failure again, at the end of the run, each with its tail; nothing
/// when there was none.
pub(super) fn failures_text(failures: &[Event], style: Style) -> String {
    if failures.is_empty() {
        return String::new();
    }
    let mut out = format!("\n{}\n", style.bold("Failures:"));
    for f in failures {
        if let Event::TaskFailed { task, error, .. } = f {
            let _ = writeln!(out, "  {} {task}: {error}", style.red("✗"));
            if let Some(tail) = failure_tail(f, style) {
                out.push_str(&tail);
                out.push('\n');
            }
        }
    }
    out
}

pub(super) use crate::words::plural;
