//! Two operators at once: host locks keep them apart, and receipts tell
//! the second what the first did.

use super::*;

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn host_locks_keep_two_operators_apart_and_receipts_tell_the_second_what_was_done() {
    let c = Cluster::with(2, "", SLOW);
    // A second operator: the same Clusterfile and bundle, their own local state.
    let second = tempfile::tempdir().unwrap();
    std::fs::copy(c.path("Clusterfile"), second.path().join("Clusterfile")).unwrap();

    for (rel, text) in BUNDLE {
        let path = second.path().join("app").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let as_second = |args: &[&str]| cairn(second.path(), args).output().unwrap();
    let first = c
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(c.host(0), "/tmp/slow-started");
    let refused = as_second(&["apply", "--auto-approve"]);
    let text = stdout(&refused) + &stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("locked by another apply"), "{text}");
    assert!(
        text.contains("cairn apply"),
        "names the owner's command: {text}"
    );
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The second operator's plan: the steps were done, says each host's receipts.
    let plan = as_second(&["plan"]);
    assert!(
        stdout(&plan).contains("done on the host by"),
        "{}",
        stdout(&plan)
    );
    let second_apply = as_second(&["--json", "apply", "--auto-approve"]);
    assert_eq!(second_apply.status.code(), Some(0));
    let events = events(&second_apply);
    assert!(
        events
            .iter()
            .any(|e| e["task"] == "step.init@host0" && e["outcome"] == "adopted"),
        "init (once) is never run twice: {events:?}"
    );
    assert_eq!(c.host(0).read("/opt/app/token").unwrap(), "token-host0\n");

    // A lock left behind by a holder that died is reported with its owner, and taken over.
    c.host(1).write(
        "/var/lib/cairn/e2e/lock.owner",
        "{\"pid\":4242,\"host\":\"laptop\",\"user\":\"alice\",\"command\":\"cairn apply\",\"started_at\":\"2026-01-01T00:00:00Z\"}\n",
    );
    let out = c.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains(
            "stale lock left by alice@laptop (pid 4242, `cairn apply`, started 2026-01-01T00:00:00Z)"
        ),
        "{}",
        stderr(&out)
    );
}

/// A step on the master that holds its host until the test writes `/tmp/release` there.
const HOLD: &str = r#"
[[steps]]
name = "hold"
on = ["master"]
after = ["install"]
run = "touch /tmp/hold-started; while [ ! -e /tmp/release ]; do sleep 0.1; done"
timeout = "2m"
"#;

/// A running `cairn apply`, its stderr collected as it comes.
struct Running {
    child: std::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(mut command: Command) -> Running {
        use std::io::BufRead;
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Running {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to 60 s) until its stderr holds `text`.
    fn wait_to_say(&self, text: &str) {
        wait_until_within(
            &format!("apply says `{text}`: {}", self.stderr()),
            Duration::from_secs(60),
            || self.stderr().contains(text),
        );
    }

    /// Its exit code, once it ends, and everything it said on stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status.code(), self.stderr())
    }
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_killed_applys_task_in_flight_is_waited_for_and_the_next_apply_succeeds_at_once() {
    let c = Cluster::with(2, "", SLOW);
    let mut first = c
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(c.host(0), "/tmp/slow-started");
    first.kill().unwrap();
    first.wait().unwrap();
    // At once. The killed apply's `slow` (2 s, timeout 4 s) may still run
    // on the host, or (on a loaded machine, where this apply takes longer
    // to reach the host) have finished: the next apply must succeed at its
    // first try either way, and when it found the task in flight it says
    // what it waited for and how long it may.
    let (events, code, out) = c.apply_events(&[]);
    let text = stderr(&out);
    assert_eq!(code, Some(0), "the first try succeeds:\n{text}");
    if text.contains("is held by a dead apply, ") {
        assert!(
            text.contains(
                "waiting for the task it left in flight to finish there: step.slow@host0 (pid "
            ),
            "says what it waits for:\n{text}"
        );
        assert!(text.contains("timeout 4s"), "and its bound:\n{text}");
        assert!(
            text.contains("host host0: lock taken after waiting"),
            "{text}"
        );
    }
    // The killed apply's step finished on the host and left its receipt: not run twice.
    let slow = finished(&events, "step.slow@host0").expect("slow is recorded");
    assert_eq!(slow["outcome"], "adopted", "{slow}");
    assert_converged(&c, 0..2);
    assert!(ran(&c.apply_ok()).is_empty(), "converged");
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_live_holder_is_named_and_waited_for_with_lock_timeout_then_unlock_breaks_it() {
    let c = Cluster::with(2, "", HOLD);
    // An apply run without $USER: its owner's name comes from the system.
    let mut command = c.command(&["apply", "--auto-approve"]);
    command.env_remove("USER").env_remove("LOGNAME");
    let first = Running::start(command);
    wait_for(c.host(0), "/tmp/hold-started");

    // A second apply is refused at once, naming the holder in full.
    let refused = c.run(&["apply", "--auto-approve"]);
    let text = unwrapped(&stderr(&refused));
    assert_eq!(refused.status.code(), Some(1), "{text}");
    let machine = gethostname();
    assert!(
        text.contains(&format!(
            "cluster `e2e` is locked by root@{machine} (pid {}",
            first.child.id()
        )),
        "names user@machine and pid: {text}"
    );
    assert!(
        text.contains("cairn apply --auto-approve`, started 20"),
        "{text}"
    );

    // From another folder (its own cluster lock), the host lock refuses it with the heartbeat's age.
    let second = tempfile::tempdir().unwrap();
    std::fs::copy(c.path("Clusterfile"), second.path().join("Clusterfile")).unwrap();
    copy_bundle(second.path());
    let as_second = |args: &[&str]| cairn(second.path(), args);
    let refused = as_second(&["apply", "--auto-approve"]).output().unwrap();
    let text = unwrapped(&(stdout(&refused) + &stderr(&refused)));
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "host host0 is locked by another apply: root@{machine} (pid {}",
            first.child.id()
        )) && text.contains(", last heartbeat ")
            && text.contains("--lock-timeout"),
        "{text}"
    );

    // With --lock-timeout it waits, says so, and goes on when the holder is done.
    let waiting = Running::start(as_second(&[
        "apply",
        "--auto-approve",
        "--lock-timeout",
        "2m",
    ]));
    waiting.wait_to_say("waiting up to 2m for it (--lock-timeout)");
    c.host(0).write("/tmp/release", "");
    let (code, text) = first.finish();
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = waiting.finish();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("host host0: lock taken after waiting"),
        "{text}"
    );

    // `cairn unlock` with nothing held says so.
    let none = c.run(&["unlock"]);
    assert_eq!(none.status.code(), Some(0), "{}", stderr(&none));
    assert!(
        stdout(&none).contains("No lock is held: nothing to unlock."),
        "{}",
        stdout(&none)
    );

    // A stuck holder: `unlock` refuses without a terminal, then breaks it when told.
    c.host(0).exec("rm -f /tmp/release /tmp/hold-started");
    let stuck = Running::start(c.command(&["apply", "--auto-approve", "--replace", "step.hold"]));
    wait_for(c.host(0), "/tmp/hold-started");
    let asked = c.run(&["unlock", "host0"]);
    assert_eq!(asked.status.code(), Some(1));
    assert!(
        stdout(&asked).contains("locked host host0: held by "),
        "{}",
        stdout(&asked)
    );
    assert!(
        stderr(&asked).contains("no lock was broken"),
        "{}",
        stderr(&asked)
    );
    let broke = c.run(&["unlock", "host0", "--force"]);
    let text = stdout(&broke);
    assert_eq!(broke.status.code(), Some(0), "{text}{}", stderr(&broke));
    assert!(
        text.contains(&format!(
            "broke host host0's lock held by {}@{machine} (pid {}",
            user(),
            stuck.child.id()
        )),
        "names the owner it broke: {text}"
    );
    let (code, text) = stuck.finish();
    assert_eq!(code, Some(1), "the broken apply fails on that host: {text}");
    assert!(
        c.host(0)
            .exec("pgrep -f 'hold-[s]tarted'")
            .stdout
            .is_empty(),
        "the held step was killed"
    );
    c.host(0).write("/tmp/release", "");
    c.apply_ok();
}

/// An error as miette printed it, its wrapped lines joined again.
fn unwrapped(text: &str) -> String {
    text.replace("-\n  │ ", "-").replace("\n  │ ", " ")
}

fn gethostname() -> String {
    String::from_utf8(
        std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string()
}

/// Who the tests run as, as cairn names it ($USER, else the system's name).
fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

fn copy_bundle(dir: &std::path::Path) {
    for (rel, text) in BUNDLE {
        let path = dir.join("app").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A `once` step that captures a value, slow enough to be killed in.
const SEED: &str = r#"
[[steps]]
name = "seed"
on = ["master"]
after = ["install"]
once = true
run = "echo run >> /opt/app/seed.runs; touch /tmp/seed-started; sleep 2; echo seed-value-42"
capture = "seed"
timeout = "30s"

[[steps]]
name = "use-seed"
on = ["worker"]
after = ["seed@*"]
run = "echo ${seed} > /opt/app/seed"
"#;

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_capturing_once_step_killed_mid_run_is_not_run_again_and_its_value_is_kept() {
    let c = Cluster::with(2, "", SEED);
    let mut first = c
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(c.host(0), "/tmp/seed-started");
    first.kill().unwrap();
    first.wait().unwrap();
    // The step finishes on the host with cairn gone: its output is kept there.
    let (events, code, out) = c.apply_events(&[]);
    assert_eq!(code, Some(0), "{}", stderr(&out));
    let seed = finished(&events, "step.seed@host0").expect("seed is recorded");
    assert_eq!(seed["outcome"], "adopted", "{seed}");
    assert_eq!(
        c.host(0).read("/opt/app/seed.runs").as_deref(),
        Some("run\n"),
        "a once step never runs twice"
    );
    assert_eq!(
        c.host(1).read("/opt/app/seed").as_deref(),
        Some("seed-value-42\n"),
        "the value captured by the killed apply's step reaches the step that reads it"
    );
    // The receipt now carries the value; the kept output is gone.
    let receipts = "/var/lib/cairn/e2e/receipts";
    assert!(
        c.host(0)
            .read(&format!("{receipts}/step.seed@host0.json"))
            .unwrap()
            .contains("\"captured\":\"seed-value-42\""),
    );
    assert!(
        !c.host(0)
            .path(&format!("{receipts}/step.seed@host0.out"))
            .exists()
    );
    let plan = c.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));
}
