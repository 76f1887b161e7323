//! The progress display under a real terminal: `cairn apply` runs on a
//! pseudo-terminal (nix's `openpty`), and what it drew is read back as a
//! screen (vt100), as its user would see it: each host's bar with its
//! elapsed time and every task running there, and nothing left of the bars
//! after Ctrl-C, with a second Ctrl-C saying it stops and where the logs are.
//! While a streamed apply waits for a host's probe, one status line says
//! how far it is; it is gone once the plan shows, and Ctrl-C then says how
//! many hosts were in.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::os::fd::OwnedFd;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{Winsize, openpty};
use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{self, LocalFlags, OutputFlags, SetArg};
use nix::unistd::Pid;

use crate::support::sandbox::Sandbox;
use crate::support::wait_until;

const ROWS: u16 = 40;
const COLS: u16 = 400;

/// `cairn ARGS` in `sandbox`, its stdout and stderr on a pseudo-terminal,
/// and everything it writes there, kept as it comes.
struct OnTerminal {
    child: Child,
    /// The terminal's input side, where a user types.
    keyboard: std::fs::File,
    written: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl OnTerminal {
    fn start(sandbox: &Sandbox, args: &[&str]) -> OnTerminal {
        let size = Winsize {
            ws_row: ROWS,
            ws_col: COLS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).expect("a pseudo-terminal");
        // As a terminal does by default: a newline also returns the cursor.
        let mut modes = termios::tcgetattr(&pty.slave).unwrap();
        modes.output_flags |= OutputFlags::OPOST | OutputFlags::ONLCR;
        // And echoes a typed Ctrl-C as `^C` where the cursor is.
        modes.local_flags |= LocalFlags::ECHO | LocalFlags::ECHOCTL | LocalFlags::ISIG;
        termios::tcsetattr(&pty.slave, SetArg::TCSANOW, &modes).unwrap();
        let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        let child = sandbox
            .command(args)
            .env("TERM", "xterm-256color")
            .stdout(slave(&pty.slave))
            .stderr(slave(&pty.slave))
            .spawn()
            .expect("cairn starts");
        // Only the child holds the terminal now: reading ends when it exits.
        drop(pty.slave);
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        let mut master = std::fs::File::from(pty.master);
        let keyboard = master.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child (the last holder of the terminal) has exited.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        OnTerminal {
            child,
            keyboard,
            written,
            reader: Some(reader),
        }
    }

    /// The screen as it stands now.
    fn screen(&self) -> String {
        let mut parser = vt100::Parser::new(
            NonZeroU16::new(ROWS).unwrap(),
            NonZeroU16::new(COLS).unwrap(),
            0,
        );
        parser.process(&self.written.lock().unwrap());
        // Row by row: a row filled to the last column would otherwise run
        // into the next one.
        let rows: Vec<String> = parser
            .screen()
            .rows(0, COLS)
            .map(|row| row.trim_end().to_string())
            .collect();
        rows.join("\n").trim_end().to_string()
    }

    /// Waits (20 s at most) until the screen shows `what`; the screen is
    /// in the panic if it never does.
    /// Waits until `done` holds for the screen, and returns that screen: a
    /// second look could catch a status line mid-redraw.
    fn wait_for_screen(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C as a user types it: the terminal echoes `^C` and cairn gets
    /// SIGINT (sent here: cairn does not own this terminal's session). The
    /// signal follows the echo, as on a terminal: the terminal drops the
    /// output it holds when it reads the key, which must not be cairn's
    /// answer to the signal.
    fn interrupt(&mut self) {
        let echoes = || {
            self.written
                .lock()
                .unwrap()
                .windows(2)
                .filter(|w| w == b"^C")
                .count()
        };
        let before = echoes();
        self.keyboard.write_all(b"\x03").unwrap();
        wait_until("the terminal echoes ^C", || echoes() > before);
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        kill(pid, Signal::SIGINT).expect("SIGINT is sent");
    }

    /// Waits for cairn to exit; its exit code, and the final screen.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status.code(), self.screen())
    }
}

/// The bar of `host` on `screen`: its prefix is the host name, then the bar.
fn bar_line<'a>(screen: &'a str, host: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{host} [")))
}

/// The elapsed time a bar shows: the word after `done/total`, like `3s`.
fn elapsed(bar: &str) -> Option<&str> {
    let mut words = bar.split_whitespace();
    words.find(|w| {
        w.split_once('/')
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
    })?;
    words.next().filter(|w| {
        w.strip_suffix('s')
            .is_some_and(|n| n.parse::<u32>().is_ok())
    })
}

/// Two steps that run at once on the one host, for as long as the test
/// needs, once the fixture's other tasks are done.
fn add_two_slow_steps(s: &Sandbox) {
    let text = s.read("Clusterfile");
    s.write(
        "Clusterfile",
        &format!("{text}{}{}", slow_step("slowa"), slow_step("slowb")),
    );
}

fn slow_step(name: &str) -> String {
    format!(
        "\n[[steps]]\nname = \"{name}\"\nafter = [\"announce\", \"init\", \"independent\"]\nrun = \"sleep 120\"\n"
    )
}

#[test]
fn bars_show_elapsed_time_and_every_running_task_and_leave_nothing_after_ctrl_c() {
    let s = Sandbox::new();
    add_two_slow_steps(&s);
    let mut run = OnTerminal::start(&s, &["apply", "--auto-approve"]);
    let screen = run.wait_for_screen("both slow steps show on the host's bar", |screen| {
        bar_line(screen, "local")
            .is_some_and(|bar| bar.contains(" step.slowa") && bar.contains(" step.slowb"))
    });
    let bar = bar_line(&screen, "local").unwrap();
    assert!(elapsed(bar).is_some(), "no elapsed time on the bar: {bar}");

    run.interrupt();
    run.wait_for_screen("the first Ctrl-C is told", |screen| {
        screen.contains("interrupted: no new task starts")
    });
    run.interrupt();
    let (code, screen) = run.finish();
    assert_eq!(code, Some(1), "{screen}");
    assert!(
        screen.contains("stopping now: 2 running tasks not waited for"),
        "{screen}"
    );
    let run_logs = format!("{}/.cairn/fixture/runs/", s.root().display());
    assert!(
        screen
            .lines()
            .any(|l| l.contains("Task logs of this run: ") && l.contains(&run_logs)),
        "no run log folder under {run_logs}:\n{screen}"
    );
    assert!(screen.contains("Apply interrupted."), "{screen}");
    assert!(
        bar_line(&screen, "local").is_none(),
        "a bar is left on screen:\n{screen}"
    );
    assert!(!screen.contains("step.slowa, "), "{screen}");
}

#[test]
fn a_finished_run_leaves_its_lines_and_summary_and_no_bar() {
    let s = Sandbox::new();
    let run = OnTerminal::start(&s, &["apply", "--auto-approve"]);
    let (code, screen) = run.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("✓ step.install@local: created"), "{screen}");
    assert!(screen.contains("Apply complete!"), "{screen}");
    assert!(
        bar_line(&screen, "local").is_none(),
        "a bar is left on screen:\n{screen}"
    );
}

/// A second local host, `late`, whose probe waits (20 s at most) until the
/// sandbox holds `probe-go`: until then a streamed apply holds its plan and
/// its lines while `local` works. Returns the file that lets the probe end.
fn add_late_host(s: &Sandbox) -> std::path::PathBuf {
    s.edit(
        "Clusterfile",
        "roles = [\"web\"]\n",
        "roles = [\"web\"]\n\n[[hosts]]\naddress = \"localhost\"\nname = \"late\"\ntransport = \"local\"\n",
    );
    let go = s.path("probe-go");
    let text = s.read("Clusterfile");
    s.write(
        "Clusterfile",
        &format!(
            "{text}\n[[steps]]\nname = \"waits\"\nrun = \"true\"\ncheck = \"if [ ${{host.name}} = late ]; then for i in $(seq 200); do [ -e {go} ] && break; sleep 0.1; done; fi; exit 1\"\n",
            go = go.display()
        ),
    );
    go
}

/// The status line of a streamed apply still waiting for a probe.
fn status_line(screen: &str) -> Option<&str> {
    screen
        .lines()
        .find(|l| l.contains("planning: ") && l.contains(" probed · "))
}

#[test]
fn a_streamed_apply_says_how_far_it_is_until_its_plan_shows() {
    let s = Sandbox::new();
    let go = add_late_host(&s);
    let run = OnTerminal::start(&s, &["apply", "--auto-approve"]);
    let screen = run.wait_for_screen("local's tasks are counted while late is probed", |screen| {
        status_line(screen).is_some_and(|l| {
            l.contains("planning: 1 of 2 hosts probed · ") && !l.contains("· 0 tasks done")
        })
    });
    assert!(
        !screen.contains("will perform these actions"),
        "no plan before every host is in:\n{screen}"
    );
    assert!(
        status_line(&screen)
            .unwrap()
            .contains("(the plan shows once every host is in)"),
        "{screen}"
    );
    std::fs::write(&go, "").unwrap();
    let (code, screen) = run.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("Plan: 16 to add"), "{screen}");
    assert!(screen.contains("Apply complete! 16 done"), "{screen}");
    assert!(
        status_line(&screen).is_none(),
        "the status line is left on screen:\n{screen}"
    );
}

#[test]
fn ctrl_c_before_every_host_is_in_says_how_many_were() {
    let s = Sandbox::new();
    let go = add_late_host(&s);
    let mut run = OnTerminal::start(&s, &["apply", "--auto-approve"]);
    run.wait_for_screen("a task of local is done, late is not probed", |screen| {
        status_line(screen).is_some_and(|l| {
            l.contains("planning: 1 of 2 hosts probed") && !l.contains("· 0 tasks done")
        })
    });
    run.interrupt();
    let (code, screen) = run.finish();
    // Ends late's probe, which cairn no longer waits for.
    std::fs::write(&go, "").unwrap();
    assert_eq!(code, Some(1), "{screen}");
    assert!(
        screen.contains(
            "stopped while planning: 1 of 2 hosts probed, so no plan is shown; \
             nothing ran on the 1 host not probed"
        ),
        "{screen}"
    );
    assert!(screen.contains("Apply interrupted."), "{screen}");
    assert!(!screen.contains("will perform these actions"), "{screen}");
    // The lines of local's tasks, held until now, each on its own line.
    let done: Vec<&str> = screen.lines().filter(|l| l.contains("✓")).collect();
    assert!(
        !done.is_empty()
            && done
                .iter()
                .all(|l| l.starts_with("✓ ") && l.contains("@local: created")),
        "{screen}"
    );
    assert!(
        status_line(&screen).is_none(),
        "the status line is left on screen:\n{screen}"
    );
}

/// A lock warning printed while the status line is on screen goes above
/// it, on a line of its own, and stays there: a killed apply's step still
/// runs on this machine, so the next apply waits for it, and says so,
/// while it holds its plan for `late`'s probe.
#[test]
fn a_lock_warning_goes_above_the_status_line_and_stays() {
    let s = Sandbox::new();
    crate::failures::kill_an_apply_during_a_slow_step(&s);
    let go = add_late_host(&s);
    let run = OnTerminal::start(&s, &["apply", "--auto-approve"]);
    let screen = run.wait_for_screen(
        "the dead apply's step is killed and local's tasks counted",
        |screen| {
            screen.contains("killed what the dead apply")
                && status_line(screen).is_some_and(|l| !l.contains("· 0 tasks done"))
        },
    );
    let warnings: Vec<&str> = screen.lines().filter(|l| l.contains("warning")).collect();
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("is held by a dead apply"))
            && warnings.iter().all(|l| l.starts_with("warning: ")),
        "each warning on a line of its own:\n{screen}"
    );
    assert!(
        !status_line(&screen).unwrap().contains("warning"),
        "{screen}"
    );
    std::fs::write(&go, "").unwrap();
    let (code, screen) = run.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains("is held by a dead apply")),
        "the warning stays once the plan shows:\n{screen}"
    );
    assert!(status_line(&screen).is_none(), "{screen}");
}
