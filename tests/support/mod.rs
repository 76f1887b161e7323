//! The harness every test binary shares: the real `cairn` binary as a
//! command, its output as text, bounded waits for other processes, and the
//! events of `apply --json`.
//!
//! Two submodules give cairn somewhere to work: [`sandbox`], fixtures/local
//! copied into a temp dir (local transport only), for `tests/cli/`; and
//! [`hosts`], isolated sshd test hosts, for `tests/ssh/`. `hosts.rs` stays
//! at this path because `benches/workload.rs` includes it too.
//!
//! Each test binary uses its own part of this harness, so the binaries
//! declare it with `#[expect(dead_code)]`.

pub(crate) mod hosts;
pub(crate) mod sandbox;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `cairn` binary under test.
pub(crate) const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// `cairn ARGS` run in `dir`: no colour, nothing on stdin.
pub(crate) fn cairn(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(CAIRN);
    c.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn lines(text: &str) -> usize {
    text.lines().count()
}

pub(crate) fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A run as its user sees it, for a snapshot: the exit code, then stdout
/// and stderr, each under its own heading.
pub(crate) fn transcript(o: &Output) -> String {
    let code = o
        .status
        .code()
        .map_or_else(|| "none (killed)".to_string(), |c| c.to_string());
    format!(
        "exit code: {code}\n----- stdout -----\n{}----- stderr -----\n{}",
        stdout(o),
        stderr(o)
    )
}

/// Polls until `done`, for up to 20 s (a bounded wait for another process,
/// not a timing assertion).
pub(crate) fn wait_until(what: &str, done: impl Fn() -> bool) {
    wait_until_within(what, Duration::from_secs(20), done);
}

/// [`wait_until`] with a deadline of `within`.
pub(crate) fn wait_until_within(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The events `--json apply` printed, one JSON object a line (lines that are
/// not JSON are left out).
pub(crate) fn events(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Tasks that ran (finished or failed), by id, sorted.
pub(crate) fn ran(events: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "task_finished" || e["event"] == "task_failed")
        .map(|e| e["task"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The `task_finished` event of `task`, if it finished.
pub(crate) fn finished<'a>(
    events: &'a [serde_json::Value],
    task: &str,
) -> Option<&'a serde_json::Value> {
    events
        .iter()
        .find(|e| e["event"] == "task_finished" && e["task"] == task)
}

/// The `task_failed` event of `task`, if it failed.
pub(crate) fn failed<'a>(
    events: &'a [serde_json::Value],
    task: &str,
) -> Option<&'a serde_json::Value> {
    events
        .iter()
        .find(|e| e["event"] == "task_failed" && e["task"] == task)
}
