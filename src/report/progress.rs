//! Progress bars per host (indicatif), on a terminal: the only code that
//! touches indicatif. Finished tasks print above the bars; the bars clear
//! before the summary.
//!
//! Each host's bar shows how long the host has been working and every task
//! running there now (a host runs several at once). The bars are owned by
//! a [`Bars`] whose drop clears them, so no path out of the loop leaves
//! one behind: the run's end, a run that stopped at a second Ctrl-C, or an
//! error that ended the run before it could say it finished (the channel
//! closes without a `RunFinished`).

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Style;
use super::lines::{failure_tail, failures_text, line_for};
use crate::exec::{Event, HostTotal};
use crate::ids::TaskId;

/// One host's bar and the tasks running there now, in the order they started.
struct HostBar {
    bar: ProgressBar,
    running: Vec<TaskId>,
}

impl HostBar {
    fn show_running(&self) {
        let names: Vec<&str> = self.running.iter().map(TaskId::as_str).collect();
        self.bar.set_message(names.join(", "));
    }
}

/// Every host's bar; dropping it clears them all from the screen.
struct Bars {
    multi: MultiProgress,
    hosts: HashMap<String, HostBar>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::new(),
            hosts: HashMap::new(),
        }
    }

    fn println(&self, line: &str) {
        let _ = self.multi.println(line);
    }

    fn add_hosts(&mut self, hosts: &[HostTotal]) {
        let bar_style = ProgressStyle::with_template(
            "{prefix:>14.bold} [{bar:24}] {pos}/{len} {elapsed:>4} {wide_msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        for h in hosts {
            let bar = self.multi.add(ProgressBar::new(h.tasks as u64));
            bar.set_style(bar_style.clone());
            bar.set_prefix(h.host.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            self.hosts.insert(
                h.host.clone(),
                HostBar {
                    bar,
                    running: Vec::new(),
                },
            );
        }
    }

    fn started(&mut self, host: &str, task: &TaskId) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.running.push(task.clone());
            h.show_running();
        }
    }

    /// A task of `host` ended (done, failed or skipped); a host with
    /// nothing left stops its clock.
    fn ended(&mut self, host: &str, task: &TaskId) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.running.retain(|t| t != task);
            h.bar.inc(1);
            h.show_running();
            if h.bar.length().is_some_and(|len| h.bar.position() >= len) {
                h.bar.finish();
            }
        }
    }

    /// Takes every bar off the screen.
    fn clear(&mut self) {
        for (_, h) in self.hosts.drain() {
            h.bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.clear();
    }
}

pub(super) fn progress_loop(receiver: mpsc::Receiver<Event>, style: Style) {
    let mut bars = Bars::new();
    let mut failures = Vec::new();
    for event in receiver {
        match &event {
            Event::RunStarted { hosts, .. } => {
                if let Some(line) = line_for(&event, style) {
                    bars.println(&line);
                }
                bars.add_hosts(hosts);
            }
            Event::TaskStarted { task, host, .. } => bars.started(host, task),
            Event::TaskFinished { task, host, .. }
            | Event::TaskFailed { task, host, .. }
            | Event::TaskSkipped { task, host, .. } => {
                bars.ended(host, task);
                if let Some(line) = line_for(&event, style) {
                    bars.println(&line);
                }
                if let Some(tail) = failure_tail(&event, style) {
                    bars.println(&tail);
                }
                if matches!(event, Event::TaskFailed { .. }) {
                    failures.push(event.clone());
                }
            }
            Event::Interrupted { .. } | Event::Stopping { .. } | Event::Note { .. } => {
                if let Some(line) = line_for(&event, style) {
                    bars.println(&line);
                }
            }
            Event::RunFinished { .. } => {
                bars.clear();
                print!("{}", failures_text(&failures, style));
                if let Some(line) = line_for(&event, style) {
                    println!("{line}");
                }
            }
        }
    }
}
