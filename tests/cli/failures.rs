//! `cairn apply` when things go wrong: a failing step, timeouts and
//! retries, a full disk, `--fail-fast`, a second apply while the first holds
//! the lock, a killed apply, Ctrl-C. Each loses nothing, and the next apply
//! picks up where it stopped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::sandbox::Sandbox;
use crate::support::{lines, pairs, stderr, stdout, wait_until};

#[test]
fn a_failing_step_skips_its_dependents_and_nothing_else() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"sh bin/install.sh\"",
        "run = \"echo about to fail; echo 'disk on fire' >&2; exit 3\"",
    );
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("step.install@local: exited with code 3"),
        "{text}"
    );
    assert!(
        text.contains("disk on fire"),
        "the tail of the output is shown: {text}"
    );
    assert!(
        text.contains("step.announce@local: skipped, upstream failed"),
        "{text}"
    );
    assert!(
        text.contains("step.init@local: skipped, upstream failed"),
        "{text}"
    );
    assert!(text.contains("1 failed, 2 skipped"), "{text}");
    assert!(
        stderr(&out).contains("apply failed: 1 task failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        lines(&s.read("out/independent.log")),
        1,
        "independent work went on"
    );
    assert!(!s.path("out/announce").exists());
    // Fixed, the next apply runs only what did not succeed.
    s.edit(
        "Clusterfile",
        "run = \"echo about to fail; echo 'disk on fire' >&2; exit 3\"",
        "run = \"sh bin/install.sh\"",
    );
    assert_eq!(
        s.planned_actions(),
        pairs(&[
            ("step.install@local", "create"),
            ("step.announce@local", "create"),
            ("step.init@local", "create")
        ])
    );
    s.apply();
    assert_eq!(lines(&s.read("out/independent.log")), 1);
}

#[test]
fn a_second_apply_is_refused_while_the_first_holds_the_lock() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"sleep 4; echo v1\"",
    );
    let mut first = s
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lock = s.path(".cairn/fixture/lock");
    wait_until("the first apply takes the lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("pid"))
    });
    let second = s.run(&["apply", "--auto-approve"]);
    assert_eq!(second.status.code(), Some(1));
    let err = stderr(&second);
    assert!(
        err.contains("cluster `fixture` is locked by ")
            && err.contains(&format!("(pid {}, ", first.id())),
        "{err}"
    );
    assert!(err.contains("started"), "{err}");
    assert!(first.wait().unwrap().success());
    s.apply();
}

/// Makes `announce` slow on its first run (30 s, under a 3 s timeout),
/// starts an apply, and kills it while that step runs as the only task in
/// flight: the step's process lives on, and the next apply finds it.
pub(crate) fn kill_an_apply_during_a_slow_step(s: &Sandbox) {
    s.edit(
        "Clusterfile",
        "run = \"echo ${greeting} ${version} > out/announce\"",
        "run = \"if [ -f out/slow-started ]; then echo resumed > out/announce; else touch out/slow-started; sleep 30; fi\"\ntimeout = \"3s\"",
    );
    let mut child = s
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the slow step starts", || {
        s.path("out/slow-started").exists()
    });
    // init runs beside the slow step (both wait only on install): let it be
    // recorded first, so that the slow step is the only task in flight.
    wait_until("init is recorded", || {
        std::fs::read_to_string(s.path(".cairn/fixture/journal.jsonl"))
            .is_ok_and(|j| j.contains("step.init@local"))
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_killed_apply_resumes_where_it_stopped() {
    let s = Sandbox::new();
    kill_an_apply_during_a_slow_step(&s);
    let actions = s.planned_actions();
    assert_eq!(
        actions,
        pairs(&[("step.announce@local", "create")]),
        "only the task in flight is left"
    );
    // The killed apply's step still runs here: waited for, killed at its timeout.
    let out = s.apply();
    let err = stderr(&out);
    assert!(
        err.contains("host local is held by a dead apply")
            && err.contains("step.announce@local (pid ")
            && err.contains("killed what the dead apply"),
        "{err}"
    );
    assert_eq!(s.read("out/announce"), "resumed\n");
    assert_eq!(
        lines(&s.read("out/install.log")),
        1,
        "finished work was not repeated"
    );
}

#[test]
fn timeouts_and_retries_are_honoured() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"sleep 20\"\ntimeout = \"1s\"",
    );
    s.edit(
        "Clusterfile",
        "run = \"mkdir -p out && echo ran >> out/independent.log\"",
        "run = \"mkdir -p out; if [ -f out/tried ]; then echo second; else touch out/tried; exit 1; fi\"\nretries = 2",
    );
    let started = Instant::now();
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("step.version@local: timed out after 1s"),
        "{text}"
    );
    assert!(
        text.contains("step.independent@local: created (succeeded on attempt 2)"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the sleep was killed"
    );
}

#[test]
fn ctrl_c_lets_running_tasks_finish_and_starts_nothing_new() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"sh bin/install.sh\"",
        "run = \"touch ../slow-started && sleep 1 && sh bin/install.sh\"",
    );
    let child = s
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the slow step starts", || {
        s.path("out/slow-started").exists()
    });
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("interrupted: no new task starts"), "{text}");
    assert!(
        text.contains("step.install@local: created"),
        "the running task finished: {text}"
    );
    assert!(text.contains("Apply interrupted."), "{text}");
    assert_eq!(lines(&s.read("out/install.log")), 1);
    let left: Vec<String> = s.planned_actions().into_iter().map(|(t, _)| t).collect();
    assert!(
        left.contains(&"step.announce@local".to_string())
            && !left.contains(&"step.install@local".to_string()),
        "{left:?}"
    );
    s.apply();
    assert_eq!(
        lines(&s.read("out/install.log")),
        1,
        "not repeated after the interrupt"
    );
}

#[test]
#[ignore = "needs root for a private tmpfs; scripts/test runs it"]
fn a_full_disk_fails_the_task_and_leaves_nothing_half_written() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "this test needs root to mount a small tmpfs in a private mount namespace; \
         run it as root, as scripts/test does"
    );
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("big")).unwrap();
    let noise: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(s.path("big/one.bin"), &noise).unwrap();
    std::fs::write(
        s.path("big/two.bin"),
        noise.iter().rev().copied().collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::create_dir_all(s.path("small")).unwrap();
    s.write(
        "Clusterfile",
        "version = 1\nname = \"full\"\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[bundles]]\nname = \"big\"\nsource = \"big\"\ndest = \"small\"\n\n\
         [[steps]]\nname = \"after\"\nafter = [\"big\"]\nrun = \"touch ran\"\n\n\
         [[steps]]\nname = \"other\"\nrun = \"touch other-ran\"\n",
    );
    // The mount lives only in the namespace of this one command.
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs small && echo keep > small/existing && '{}' apply --auto-approve; echo \"exit=$?\"; ls -A small",
        env!("CARGO_BIN_EXE_cairn")
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .current_dir(s.root())
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare runs");
    let text = stdout(&out);
    assert!(
        text.contains("No space left on device"),
        "{text}\n{}",
        stderr(&out)
    );
    assert!(text.contains("exit=1"), "{text}");
    assert!(
        text.trim_end().ends_with("existing"),
        "only the file that was there is left, no staging, no partial file:\n{text}"
    );
    assert!(!s.path("ran").exists(), "the dependent step was skipped");
    assert!(s.path("other-ran").exists(), "independent work went on");
    assert!(
        s.planned_actions()
            .iter()
            .any(|(t, a)| t == "bundle.big@local" && a == "create"),
        "the next apply retries it"
    );
}

#[test]
fn fail_fast_skips_what_had_not_started_and_runs_nothing_after_the_failure() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("out")).unwrap();
    // `slow` runs beside `bad` and goes on only once the failure is printed:
    // it is running when the failure stops the run, and what waits for it
    // has not started.
    let release = "i=0; while [ ! -f out/release ]; do i=$((i+1)); [ $i -gt 400 ] && exit 7; sleep 0.05; done";
    s.write(
        "Clusterfile",
        &format!(
            "version = 1\nname = \"ff\"\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
             [[steps]]\nname = \"bad\"\nrun = \"echo 'disk on fire' >&2; exit 3\"\n\n\
             [[steps]]\nname = \"slow\"\nrun = \"{release}; touch out/slow-done\"\n\n\
             [[steps]]\nname = \"later\"\nafter = [\"slow\"]\nrun = \"touch out/later-ran\"\n\n\
             [[steps]]\nname = \"last\"\nafter = [\"later\"]\nrun = \"touch out/last-ran\"\n"
        ),
    );
    let mut child = s
        .command(&["apply", "--auto-approve", "--fail-fast"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("step.bad@local: exited with code 3") {
            s.write("out/release", "");
        }
        text.push_str(&line);
        text.push('\n');
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1), "{text}\n{err}");
    assert!(
        text.contains("step.bad@local: exited with code 3"),
        "{text}"
    );
    assert!(text.contains("disk on fire"), "{text}");
    assert!(
        text.contains("step.slow@local: created"),
        "the running task finished: {text}"
    );
    assert!(
        text.contains(
            "step.later@local: skipped, not started: step.bad@local failed and --fail-fast stops the run"
        ),
        "not started, naming the failed task: {text}"
    );
    assert!(text.contains("step.last@local: skipped"), "{text}");
    assert!(text.contains("1 done, 1 failed, 2 skipped"), "{text}");
    assert!(s.path("out/slow-done").exists());
    assert!(
        !s.path("out/later-ran").exists(),
        "nothing started after the failure"
    );
    assert!(
        !s.path("out/last-ran").exists(),
        "nothing started after the failure"
    );
    assert_eq!(
        s.planned_actions(),
        pairs(&[
            ("step.bad@local", "create"),
            ("step.later@local", "create"),
            ("step.last@local", "create")
        ]),
        "the finished task was recorded"
    );
}

#[test]
fn a_failed_step_shows_stdout_and_stderr_in_the_order_written_and_captures_stdout_only() {
    let s = Sandbox::new();
    // The pauses let each line reach cairn before the next is written.
    s.edit(
        "Clusterfile",
        "run = \"sh bin/install.sh\"",
        "run = \"echo out1; sleep 0.3; echo err1 >&2; sleep 0.3; echo out2; sleep 0.3; echo err2 >&2; exit 3\"",
    );
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"echo v1; echo noise >&2\"",
    );
    let out = s.run(&["--json", "apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let events = crate::support::events(&out);
    let failed = crate::support::failed(&events, "step.install@local").expect("install failed");
    assert_eq!(
        failed["tail"],
        serde_json::json!(["out1", "err1", "out2", "err2"]),
        "{failed}"
    );
    assert!(
        s.state_text().contains("\"captured\": \"v1\""),
        "the captured value is stdout alone"
    );
}

#[test]
fn a_step_killed_by_its_timeout_keeps_what_it_printed() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"echo started the hang; sleep 0.3; echo on stderr too >&2; sleep 20\"\ntimeout = \"2s\"",
    );
    let out = s.run(&["apply", "--auto-approve", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed: serde_json::Value = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "task_failed" && e["task"] == "step.version@local")
        .expect("a task_failed event for the step");
    let tail: Vec<&str> = failed["tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(tail, ["started the hang", "on stderr too"], "{failed}");
    let log = walkdir::WalkDir::new(s.path(".cairn"))
        .into_iter()
        .map(Result::unwrap)
        .find(|e| e.file_name() == "step.version@local.log")
        .expect("the step's run log");
    let log = std::fs::read_to_string(log.path()).unwrap();
    assert!(log.contains("started the hang"), "{log}");
}
