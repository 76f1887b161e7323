//! Progress bars per host (indicatif), on a terminal: the only code that
//! touches indicatif. Finished tasks print above the bars; the bars clear
//! before the summary.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use super::Style;
use super::lines::{failure_tail, failures_text, line_for};
use crate::exec::Event;

pub(super) fn progress_loop(receiver: mpsc::Receiver<Event>, style: Style) {
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
                if let Some(line) = line_for(&event, style) {
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
                if let Some(line) = line_for(&event, style) {
                    let _ = multi.println(line);
                }
                if let Some(tail) = failure_tail(&event, style) {
                    let _ = multi.println(tail);
                }
                if matches!(event, Event::TaskFailed { .. }) {
                    failures.push(event.clone());
                }
            }
            Event::Interrupted { .. } | Event::Note { .. } => {
                if let Some(line) = line_for(&event, style) {
                    let _ = multi.println(line);
                }
            }
            Event::RunFinished { .. } => {
                for bar in bars.values() {
                    bar.finish_and_clear();
                }
                let _ = multi.clear();
                print!("{}", failures_text(&failures, style));
                if let Some(line) = line_for(&event, style) {
                    println!("{line}");
                }
            }
        }
    }
}
