//! The reporter: a thread that owns the output of a run and renders its
//! events one of three ways ([`Mode`]).
//!
//! The executor sends [`Event`]s over a channel; [`Reporter::finish`] waits
//! until every event sent so far is printed. Task output never goes to the
//! screen while running: it is kept in the run log, and a failure prints
//! its tail.

use std::io::{IsTerminal, Write};
use std::sync::mpsc;

use super::Style;
use super::lines::{failure_tail, failures_text, line_for};
use super::progress::progress_loop;
use super::stamp::stamped;
use crate::exec::Event;

/// How events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Progress bars per host (indicatif), when stdout and stderr are a
    /// terminal (the bars are drawn on stderr, the lines they print above
    /// themselves go with them).
    Progress,
    /// One line per event, when output is not a terminal.
    Plain,
    /// One JSON object per line (`--json`).
    Json,
}

impl Mode {
    /// JSON when asked for, progress bars on a terminal, plain lines otherwise.
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            Mode::Progress
        } else {
            Mode::Plain
        }
    }
}

/// Owns the output; send events with [`Reporter::sender`].
pub struct Reporter {
    sender: Option<mpsc::Sender<Event>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    pub fn start(mode: Mode, style: Style) -> Reporter {
        let (sender, receiver) = mpsc::channel();
        Reporter {
            sender: Some(sender),
            thread: Some(render(mode, style, receiver)),
        }
    }

    /// A reporter of events sent elsewhere, held until now (a streamed
    /// apply's, while its plan was made): `first`, then each of `events`
    /// until its senders are gone. [`Reporter::sender`] is not for it.
    pub fn start_after(
        mode: Mode,
        style: Style,
        first: Option<Event>,
        events: mpsc::Receiver<Event>,
    ) -> Reporter {
        Reporter {
            sender: None,
            thread: Some(render(mode, style, first.into_iter().chain(events))),
        }
    }

    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.sender
            .clone()
            .expect("a reporter started with `start` is running")
    }

    /// Waits until every event sent so far is printed.
    pub fn finish(mut self) {
        self.sender.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread that renders `events` as `mode` says.
fn render(
    mode: Mode,
    style: Style,
    events: impl IntoIterator<Item = Event> + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("cairn-report".into())
        .spawn(move || match mode {
            Mode::Json => json_loop(events),
            Mode::Plain => plain_loop(events, style),
            Mode::Progress => progress_loop(events, style),
        })
        .expect("can start the reporter thread")
}

fn json_loop(receiver: impl IntoIterator<Item = Event>) {
    let stdout = std::io::stdout();
    for event in receiver {
        let mut out = stdout.lock();
        let _ = serde_json::to_writer(&mut out, &stamped(&event));
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
}

fn plain_loop(receiver: impl IntoIterator<Item = Event>, style: Style) {
    let mut failures = Vec::new();
    for event in receiver {
        if let Event::RunFinished { .. } = &event {
            out!("{}", failures_text(&failures, style));
        }
        if let Some(line) = line_for(&event, style) {
            outln!("{line}");
        }
        if let Some(tail) = failure_tail(&event, style) {
            outln!("{tail}");
        }
        if matches!(event, Event::TaskFailed { .. }) {
            failures.push(event.clone());
        }
    }
}
