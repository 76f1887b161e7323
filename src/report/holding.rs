//! A sign of life while a streamed apply holds its run's lines until its
//! plan is whole ([`HoldStatus`]). On a large fleet the last host's probe
//! can come back near the end of the run, and until then the operator
//! would see nothing.
//!
//! The pipeline tells how far it is ([`Holding`]: hosts probed, tasks done
//! and running) at each change. On a terminal that is one status line on
//! stderr (`progress::StatusLine`), redrawn as the counts change and
//! cleared before the plan is printed. In plain output (a CI log) a line
//! costs a line of the log, so the same text is printed only when the hold
//! is long: first after [`FIRST_AFTER`], then every [`THEN_EVERY`]; a
//! short apply prints nothing new. With `--json`, nothing: the plan stays
//! the first event.
//!
//! When Ctrl-C stops the run before every host is in, no plan is shown:
//! one last line says how many hosts were probed and that nothing ran on
//! the others (the summary that follows counts the tasks done).

use std::fmt::Write as _;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::progress::StatusLine;
use super::{Mode, Style};
use crate::pipeline::Holding;
use crate::words::count;

/// In plain output, how long a hold lasts before it is told.
const FIRST_AFTER: Duration = Duration::from_secs(10);
/// In plain output, how long between two lines of a hold that goes on.
const THEN_EVERY: Duration = Duration::from_secs(30);

/// Shows how far a streamed apply is while its lines are held; see the
/// module's documentation. Dropping it clears what it shows.
pub struct HoldStatus {
    /// Where [`HoldStatus::watcher`] sends the counts; `None` with `--json`.
    news: Option<mpsc::Sender<News>>,
    /// The thread that shows them; it returns the last counts it had.
    shower: Option<JoinHandle<Option<Holding>>>,
    style: Style,
}

enum News {
    Counts(Holding),
    /// The plan is whole or the run stopped: clear, and show no more.
    Released,
}

impl HoldStatus {
    pub(super) fn start(mode: Mode, style: Style) -> HoldStatus {
        let show: fn(mpsc::Receiver<News>) -> Option<Holding> = match mode {
            Mode::Json => {
                return HoldStatus {
                    news: None,
                    shower: None,
                    style,
                };
            }
            Mode::Progress => on_terminal,
            Mode::Plain => |news| in_plain_lines(&news),
        };
        let (news, received) = mpsc::channel();
        let shower = std::thread::Builder::new()
            .name("cairn-hold-status".into())
            .spawn(move || show(received))
            .expect("can start the hold status thread");
        HoldStatus {
            news: Some(news),
            shower: Some(shower),
            style,
        }
    }

    /// What the pipeline calls with the counts at each change.
    pub fn watcher(&self) -> impl Fn(&Holding) + Send + Sync + 'static {
        let news = self.news.clone();
        move |counts: &Holding| {
            if let Some(news) = &news {
                let _ = news.send(News::Counts(*counts));
            }
        }
    }

    /// The hold is over: the status is cleared. `plan_whole`: the plan
    /// follows; if not (Ctrl-C stopped the run first), how far planning got
    /// is said instead.
    pub fn release(mut self, plan_whole: bool) {
        let last = self.stop();
        if let Some(counts) = last.filter(|_| !plan_whole) {
            outln!("{}", stopped_text(&counts, self.style));
        }
    }

    /// Stops the thread (its status cleared); the last counts it had.
    fn stop(&mut self) -> Option<Holding> {
        if let Some(news) = self.news.take() {
            let _ = news.send(News::Released);
        }
        self.shower.take().and_then(|t| t.join().ok()).flatten()
    }
}

impl Drop for HoldStatus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// On a terminal: the status line, redrawn at each change.
fn on_terminal(news: mpsc::Receiver<News>) -> Option<Holding> {
    let line = StatusLine::new();
    let mut last = None;
    for news in news {
        match news {
            News::Counts(counts) => {
                line.show(status_text(&counts));
                last = Some(counts);
            }
            News::Released => break,
        }
    }
    last
}

/// In plain output: the status as a line, only when the hold is long.
fn in_plain_lines(news: &mpsc::Receiver<News>) -> Option<Holding> {
    let mut schedule = PlainSchedule::starting(Instant::now());
    let mut last = None;
    loop {
        match news.recv_timeout(schedule.until_due(Instant::now())) {
            Ok(News::Counts(counts)) => last = Some(counts),
            Ok(News::Released) | Err(RecvTimeoutError::Disconnected) => return last,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if schedule.due(Instant::now())
            && let Some(counts) = &last
        {
            outln!("{}", status_text(counts));
        }
    }
}

/// When plain output tells a hold: [`FIRST_AFTER`] it began, then
/// [`THEN_EVERY`] after each line. The clock is the caller's, so the rule
/// is tested without waiting.
#[derive(Debug)]
struct PlainSchedule {
    next: Instant,
}

impl PlainSchedule {
    fn starting(now: Instant) -> PlainSchedule {
        PlainSchedule {
            next: now + FIRST_AFTER,
        }
    }

    /// How long until a line is due.
    fn until_due(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }

    /// Whether a line is due at `now`; if so, the next one is [`THEN_EVERY`] later.
    fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + THEN_EVERY;
        true
    }
}

/// The status: `planning: 132 of 200 hosts probed (2 unreachable) · 57
/// tasks done, 12 running (…)`.
fn status_text(counts: &Holding) -> String {
    let Holding {
        hosts,
        probed,
        unreachable,
        done,
        failed,
        running,
        interrupted,
    } = *counts;
    let mut text = if interrupted {
        "interrupted while planning: ".to_string()
    } else {
        "planning: ".to_string()
    };
    let _ = write!(text, "{probed} of {} probed", count(hosts, "host"));
    if unreachable > 0 {
        let _ = write!(text, " ({unreachable} unreachable)");
    }
    let _ = write!(text, " · {} done", count(done, "task"));
    if failed > 0 {
        let _ = write!(text, ", {failed} failed");
    }
    let _ = write!(text, ", {running} running");
    text.push_str(if interrupted {
        " (waiting for them; Ctrl-C again stops them now)"
    } else {
        " (the plan shows once every host is in)"
    });
    text
}

/// Ctrl-C stopped the run before every host was in: how far planning got.
fn stopped_text(counts: &Holding, style: Style) -> String {
    let Holding {
        hosts,
        probed,
        unreachable,
        ..
    } = *counts;
    let mut text = format!(
        "{} stopped while planning: {probed} of {} probed",
        style.yellow("!"),
        count(hosts, "host")
    );
    if unreachable > 0 {
        let _ = write!(text, " ({unreachable} unreachable)");
    }
    text.push_str(", so no plan is shown");
    if probed < hosts {
        let others = count(hosts - probed, "host");
        let _ = write!(text, "; nothing ran on the {others} not probed");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding() -> Holding {
        Holding {
            hosts: 200,
            probed: 132,
            unreachable: 0,
            done: 57,
            failed: 0,
            running: 12,
            interrupted: false,
        }
    }

    #[test]
    fn the_status_counts_hosts_probed_and_tasks_done_and_running() {
        assert_eq!(
            status_text(&holding()),
            "planning: 132 of 200 hosts probed · 57 tasks done, 12 running \
             (the plan shows once every host is in)"
        );
    }

    #[test]
    fn the_status_names_unreachable_hosts_and_failures_only_when_there_are_some() {
        let counts = Holding {
            unreachable: 2,
            failed: 1,
            ..holding()
        };
        assert_eq!(
            status_text(&counts),
            "planning: 132 of 200 hosts probed (2 unreachable) · 57 tasks done, 1 failed, \
             12 running (the plan shows once every host is in)"
        );
        let first = Holding {
            hosts: 1,
            probed: 0,
            done: 1,
            running: 0,
            ..holding()
        };
        assert!(
            status_text(&first)
                .starts_with("planning: 0 of 1 host probed · 1 task done, 0 running"),
            "{}",
            status_text(&first)
        );
    }

    #[test]
    fn after_ctrl_c_the_status_says_the_running_tasks_are_waited_for() {
        let counts = Holding {
            interrupted: true,
            ..holding()
        };
        assert_eq!(
            status_text(&counts),
            "interrupted while planning: 132 of 200 hosts probed · 57 tasks done, 12 running \
             (waiting for them; Ctrl-C again stops them now)"
        );
    }

    #[test]
    fn a_run_stopped_while_planning_says_how_many_hosts_were_in() {
        let counts = Holding {
            unreachable: 2,
            ..holding()
        };
        assert_eq!(
            stopped_text(&counts, Style::plain()),
            "! stopped while planning: 132 of 200 hosts probed (2 unreachable), \
             so no plan is shown; nothing ran on the 68 hosts not probed"
        );
        let all_in = Holding {
            probed: 200,
            ..holding()
        };
        assert_eq!(
            stopped_text(&all_in, Style::plain()),
            "! stopped while planning: 200 of 200 hosts probed, so no plan is shown"
        );
    }

    #[test]
    fn plain_output_tells_a_hold_after_ten_seconds_then_every_thirty() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut schedule = PlainSchedule::starting(start);
        assert_eq!(schedule.until_due(start), FIRST_AFTER);
        assert!(!schedule.due(at(0)));
        assert!(!schedule.due(at(9)));
        assert!(schedule.due(at(10)));
        // Once told, not again for 30 s.
        assert!(!schedule.due(at(10)));
        assert!(!schedule.due(at(39)));
        assert_eq!(schedule.until_due(at(39)), Duration::from_secs(1));
        assert!(schedule.due(at(40)));
        // A line told late moves the next one with it.
        assert!(schedule.due(at(75)));
        assert!(!schedule.due(at(104)));
        assert!(schedule.due(at(105)));
    }
}
