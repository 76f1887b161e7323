//! Everything cairn prints about a run: the only module that knows about terminals.
//!
//! The executor sends [`Event`]s over a channel; a reporter thread owns the
//! output and renders them one of three ways: progress bars per host
//! (indicatif) on a terminal, one plain line per event otherwise, or one
//! JSON object per line with `--json`. Task output never goes to the screen
//! while running: it is kept in the run log, and a failure prints its tail.

pub mod style;

use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;
pub use style::Style;

use crate::ids::TaskId;

/// What happened, as the executor tells it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        cluster: String,
        tasks: usize,
        hosts: Vec<HostTotal>,
    },
    TaskStarted {
        task: TaskId,
        host: String,
        action: String,
    },
    TaskFinished {
        task: TaskId,
        host: String,
        outcome: Outcome,
        duration_ms: u64,
        detail: Option<String>,
    },
    TaskFailed {
        task: TaskId,
        host: String,
        error: String,
        tail: Vec<String>,
        log: Option<String>,
        duration_ms: u64,
    },
    TaskSkipped {
        task: TaskId,
        host: String,
        reason: String,
    },
    /// Ctrl-C: no new task starts; the running ones finish and are recorded.
    Interrupted {
        running: usize,
    },
    RunFinished {
        summary: RunSummary,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct HostTotal {
    pub host: String,
    pub tasks: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Replaced,
    Destroyed,
    Adopted,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub succeeded: usize,
    pub failed: Vec<TaskId>,
    pub skipped: usize,
    pub unchanged: usize,
    pub duration_ms: u64,
    pub log_dir: Option<String>,
    /// Stopped by Ctrl-C before everything ran.
    pub interrupted: bool,
    /// Tasks that did not start, or were stopped, because of the interrupt.
    pub not_finished: usize,
    /// Hosts that could not be reached or locked (nothing ran there), with why.
    pub unreachable: Vec<String>,
}

/// How events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Progress,
    Plain,
    Json,
}

/// Owns the output; send events with [`Reporter::sender`].
pub struct Reporter {
    sender: Option<mpsc::Sender<Event>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    pub fn start(mode: Mode, style: Style) -> Reporter {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cairn-report".into())
            .spawn(move || match mode {
                Mode::Json => json_loop(receiver),
                Mode::Plain => plain_loop(receiver, style),
                Mode::Progress => progress_loop(receiver, style),
            })
            .expect("can start the reporter thread");
        Reporter {
            sender: Some(sender),
            thread: Some(thread),
        }
    }

    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.sender.clone().expect("reporter is running")
    }

    /// Waits until every event sent so far is printed.
    pub fn finish(mut self) {
        self.sender.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn json_loop(receiver: mpsc::Receiver<Event>) {
    let stdout = std::io::stdout();
    for event in receiver {
        let mut out = stdout.lock();
        let _ = serde_json::to_writer(&mut out, &event);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
}

fn ms(d: u64) -> String {
    if d >= 1000 {
        format!("{:.1}s", d as f64 / 1000.0)
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
fn line_for(event: &Event, style: &Style) -> Option<String> {
    Some(match event {
        Event::RunStarted { tasks, hosts, .. } => {
            format!(
                "Applying {tasks} task{} on {} host{}",
                if *tasks == 1 { "" } else { "s" },
                hosts.len(),
                if hosts.len() == 1 { "" } else { "s" }
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
        Event::Interrupted { running } => format!(
            "{} interrupted: no new task starts; waiting for {running} running task{} to finish (Ctrl-C again stops them now)",
            style.yellow("!"),
            if *running == 1 { "" } else { "s" }
        ),
        Event::RunFinished { summary } => return Some(summary_text(summary, style)),
    })
}

/// The closing summary: counts, then each failure with the tail of its output.
pub fn summary_text(s: &RunSummary, style: &Style) -> String {
    let mut out = String::new();
    if s.interrupted {
        out.push_str(&format!(
            "\n{} {} done, {} failed, {} not finished, {} unchanged in {}. Run apply again to continue.",
            style.yellow(&style.bold("Apply interrupted.")),
            s.succeeded,
            s.failed.len(),
            s.not_finished,
            s.unchanged,
            ms(s.duration_ms)
        ));
    } else if s.failed.is_empty() && s.unreachable.is_empty() {
        out.push_str(&format!(
            "\n{} {} done, {} unchanged in {}.",
            style.bold("Apply complete!"),
            s.succeeded,
            s.unchanged,
            ms(s.duration_ms)
        ));
    } else {
        out.push_str(&format!(
            "\n{} {} done, {} failed, {} skipped, {} unchanged in {}.",
            style.red(&style.bold("Apply failed.")),
            s.succeeded,
            s.failed.len(),
            s.skipped,
            s.unchanged,
            ms(s.duration_ms)
        ));
    }
    if !s.unreachable.is_empty() {
        out.push_str(&format!(
            "\n{} host{} could not be reached; nothing ran there:",
            s.unreachable.len(),
            if s.unreachable.len() == 1 { "" } else { "s" }
        ));
        for why in &s.unreachable {
            out.push_str(&format!("\n  {} {why}", style.red("✗")));
        }
    }
    if let Some(dir) = &s.log_dir {
        out.push_str(&format!("\nTask output is in {dir}"));
    }
    out
}

/// A failure's tail, indented under it.
fn failure_tail(event: &Event, style: &Style) -> Option<String> {
    if let Event::TaskFailed { tail, log, .. } = event {
        let mut out = String::new();
        for line in tail {
            out.push_str(&format!("    {}\n", style.dim(line)));
        }
        if let Some(log) = log {
            out.push_str(&format!(
                "    {}\n",
                style.dim(&format!("full output: {log}"))
            ));
        }
        return Some(out.trim_end().to_string()).filter(|s| !s.is_empty());
    }
    None
}

fn plain_loop(receiver: mpsc::Receiver<Event>, style: Style) {
    let mut failures = Vec::new();
    for event in receiver {
        if let Event::RunFinished { .. } = &event {
            print_failures(&failures, &style);
        }
        if let Some(line) = line_for(&event, &style) {
            println!("{line}");
        }
        if let Some(tail) = failure_tail(&event, &style) {
            println!("{tail}");
        }
        if matches!(event, Event::TaskFailed { .. }) {
            failures.push(event.clone());
        }
    }
}

fn print_failures(failures: &[Event], style: &Style) {
    if failures.is_empty() {
        return;
    }
    println!("\n{}", style.bold("Failures:"));
    for f in failures {
        if let Event::TaskFailed { task, error, .. } = f {
            println!("  {} {task}: {error}", style.red("✗"));
            if let Some(tail) = failure_tail(f, style) {
                println!("{tail}");
            }
        }
    }
}

fn progress_loop(receiver: mpsc::Receiver<Event>, style: Style) {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let multi = MultiProgress::new();
    let bar_style =
        ProgressStyle::with_template("{prefix:>14.bold} [{bar:24}] {pos}/{len} {wide_msg}")
            .expect("valid template")
            .progress_chars("=> ");
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut failures = Vec::new();
    for event in receiver {
        match &event {
            Event::RunStarted { hosts, .. } => {
                if let Some(line) = line_for(&event, &style) {
                    let _ = multi.println(line);
                }
                for h in hosts {
                    let bar = multi.add(ProgressBar::new(h.tasks as u64));
                    bar.set_style(bar_style.clone());
                    bar.set_prefix(h.host.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bars.insert(h.host.clone(), bar);
                }
            }
            Event::TaskStarted { task, host, .. } => {
                if let Some(bar) = bars.get(host) {
                    bar.set_message(task.to_string());
                }
            }
            Event::TaskFinished { host, .. }
            | Event::TaskFailed { host, .. }
            | Event::TaskSkipped { host, .. } => {
                if let Some(bar) = bars.get(host) {
                    bar.inc(1);
                }
                if let Some(line) = line_for(&event, &style) {
                    let _ = multi.println(line);
                }
                if let Some(tail) = failure_tail(&event, &style) {
                    let _ = multi.println(tail);
                }
                if matches!(event, Event::TaskFailed { .. }) {
                    failures.push(event.clone());
                }
            }
            Event::Interrupted { .. } => {
                if let Some(line) = line_for(&event, &style) {
                    let _ = multi.println(line);
                }
            }
            Event::RunFinished { .. } => {
                for bar in bars.values() {
                    bar.finish_and_clear();
                }
                let _ = multi.clear();
                print_failures(&failures, &style);
                if let Some(line) = line_for(&event, &style) {
                    println!("{line}");
                }
            }
        }
    }
}
