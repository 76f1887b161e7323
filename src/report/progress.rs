//! Progress bars per host (indicatif), on a terminal: the only code that
//! touches indicatif. Finished tasks print above the bars; the bars clear
//! before the summary. Also the one-line [`StatusLine`] a streamed apply
//! shows while it holds its run's lines (`holding`).
//!
//! Each host's bar shows how long the host has been working and every task
//! running there now (a host runs several at once). The bars are owned by
//! a [`Bars`] whose drop clears them, so no path out of the loop leaves
//! one behind: the run's end, a run that stopped at a second Ctrl-C, or an
//! error that ended the run before it could say it finished (the channel
//! closes without a `RunFinished`).
//!
//! indicatif fills each line to the terminal's last column, which leaves
//! the cursor at the edge: the `^C` a terminal echoes for Ctrl-C then
//! wraps to a new line, indicatif's count of its lines is one short, and
//! its redraws and final clear miss a bar, which stays on screen. So the
//! bars are drawn on [`NarrowedStderr`], two columns narrower than the
//! terminal: the echo lands on the bar's own line, which the next redraw
//! or the clear wipes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

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
    /// The running tasks by element (`step.install`): the bar names the host.
    fn show_running(&self) {
        let names: Vec<&str> = self.running.iter().map(TaskId::element_part).collect();
        self.bar.set_message(names.join(", "));
    }
}

/// Every host's bar; dropping it clears them all from the screen.
struct Bars {
    multi: MultiProgress,
    hosts: HashMap<String, HostBar>,
}

/// Columns left free at the right of every line, for the terminal's `^C`.
const ECHO_ROOM: u16 = 2;

/// stderr as the bars see it: [`ECHO_ROOM`] columns narrower than it is.
#[derive(Debug)]
struct NarrowedStderr(console::Term);

impl TermLike for NarrowedStderr {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(ECHO_ROOM).max(1)
    }

    fn height(&self) -> u16 {
        self.0.size().0
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.write_str(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::Write::flush(&mut &self.0)
    }
}

impl Bars {
    fn new() -> Bars {
        // The reporter draws bars only when stderr is a terminal too.
        let target =
            ProgressDrawTarget::term_like(Box::new(NarrowedStderr(console::Term::stderr())));
        Bars {
            multi: MultiProgress::with_draw_target(target),
            hosts: HashMap::new(),
        }
    }

    /// A line above the bars. With no bar yet (a streamed apply stopped
    /// before its plan was whole shows the lines of its run without one),
    /// indicatif pads each line to the terminal's width and leaves the
    /// cursor there, so the next runs on from it: such a line is written
    /// as is.
    fn println(&self, line: &str) {
        if self.hosts.is_empty() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
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

/// One line of status on stderr, redrawn in place, with a spinner that
/// moves while nothing else does; dropping it clears it. While it is on
/// screen, [`eprintln_above_status`] prints above it.
pub(super) struct StatusLine(ProgressBar);

/// The status line on screen, if any.
static STATUS_SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

impl StatusLine {
    pub(super) fn new() -> StatusLine {
        let target =
            ProgressDrawTarget::term_like(Box::new(NarrowedStderr(console::Term::stderr())));
        let line = ProgressBar::with_draw_target(None, target);
        line.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg}").expect("valid template"),
        );
        line.enable_steady_tick(Duration::from_millis(120));
        *shown_status() = Some(line.clone());
        StatusLine(line)
    }

    pub(super) fn show(&self, text: String) {
        self.0.set_message(text);
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        shown_status().take();
        self.0.finish_and_clear();
    }
}

fn shown_status() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    STATUS_SHOWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `eprintln!`, above the status line if one is on screen: written on its
/// own, the text would run on from the line's end and stay there, mixed
/// with the status.
pub(super) fn eprintln_above_status(text: &str) {
    match shown_status().as_ref() {
        Some(line) => line.suspend(|| eprintln!("{text}")),
        None => eprintln!("{text}"),
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.clear();
    }
}

pub(super) fn progress_loop(receiver: impl IntoIterator<Item = Event>, style: Style) {
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
                out!("{}", failures_text(&failures, style));
                if let Some(line) = line_for(&event, style) {
                    outln!("{line}");
                }
            }
        }
    }
}
