//! End to end over SSH: the real `cairn` binary against real OpenSSH
//! servers, each an isolated test host (see `support/hosts.rs`).
//!
//! Covered: a cold apply on 8 hosts with cross-host dependencies and a
//! captured value; a no-op re-apply that runs nothing; one bundle file
//! changed (exactly that file shipped per host, its dependents rerun,
//! nothing else); a frozen host (its tasks time out, the others finish); a
//! host killed mid-apply (the next apply converges); a wrong key and a
//! changed host key (clear errors, nothing touched); non-root users with
//! sudo (NOPASSWD and a password); a secret that must appear nowhere;
//! receipts and host locks; drift; a full disk; a cairn killed mid-apply;
//! strict host keys.
//!
//! These tests need root, util-linux and openssh-server, so each is
//! `#[ignore]`d with that reason and `scripts/test` (which installs what is
//! missing) runs them with `--include-ignored`. Run without what they need,
//! they fail saying what is missing; none of them passes without running.

#[expect(dead_code, reason = "the Sandbox and its helpers are for tests/cli/")]
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::hosts::{self, TestHost, TestHosts};
use support::{cairn, events, failed, finished, ran, stderr, stdout, wait_until_within};

/// A folder holding a Clusterfile for some test hosts, and the bundle it ships.
struct Cluster {
    dir: tempfile::TempDir,
    hosts: TestHosts,
}

const BUNDLE: &[(&str, &str)] = &[
    (
        "bin/install.sh",
        "#!/bin/sh\nset -e\ncat /opt/app/current/conf/a.conf /opt/app/current/conf/b.conf | sha256sum | cut -c1-16 > /opt/app/installed\n",
    ),
    ("conf/a.conf", "alpha = 1\n"),
    ("conf/b.conf", "beta = 2\n"),
    ("docs/readme.txt", "the app\n"),
    (
        "app.conf.tmpl",
        "name = {{ cluster }}\nlisten = {{ host.address }}:8080\n",
    ),
];

/// Steps: preflight check, the bundle, a rendered config, install after the
/// bundle, init on the master (captures a token), join on every worker.
fn clusterfile(hosts: &TestHosts, ssh_extra: &str, extra: &str) -> String {
    format!(
        r#"version = 1
name = "e2e"

{hosts}
[vars]
greeting = "hello"

[[bundles]]
name = "app"
source = "app"
dest = "/opt/app/current"

[[files]]
name = "app-conf"
source = "app/app.conf.tmpl"
template = true
dest = "/opt/app/app.conf"

[[steps]]
name = "preflight"
run = "test -w /opt"
check = "test -w /opt"

[[steps]]
name = "install"
after = ["preflight", "app"]
run = "sh /opt/app/current/bin/install.sh && echo installed"

[[steps]]
name = "init"
on = ["master"]
after = ["install"]
run = "mkdir -p /opt/app && echo token-$(hostname) | tee /opt/app/token"
capture = "token"
once = true

[[steps]]
name = "join"
on = ["worker"]
after = ["install", "init@*"]
run = "echo joined ${{token}} > /opt/app/joined"
{extra}"#,
        hosts = hosts.clusterfile_hosts(ssh_extra)
    )
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        Cluster::with(n, "", "")
    }

    /// Panics, saying why, where test hosts cannot run.
    fn with(n: usize, ssh_extra: &str, extra: &str) -> Cluster {
        if let Some(why) = hosts::unavailable() {
            panic!(
                "cannot start the isolated sshd test hosts this test needs: {why}; \
                 run it as root with openssh-server installed, as scripts/test does"
            );
        }
        let hosts = TestHosts::start(n);
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in BUNDLE {
            let path = dir.path().join("app").join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::write(
            dir.path().join("Clusterfile"),
            clusterfile(&hosts, ssh_extra, extra),
        )
        .unwrap();
        Cluster { dir, hosts }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn host(&self, i: usize) -> &TestHost {
        &self.hosts.hosts[i]
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = cairn(self.dir.path(), args);
        c.env_remove("SSH_AUTH_SOCK");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("cairn runs")
    }

    /// `apply --json`: the events, and the exit code.
    fn apply_events(&self, extra: &[&str]) -> (Vec<serde_json::Value>, Option<i32>, Output) {
        let mut args = vec!["--json", "apply", "--auto-approve"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        (events(&out), out.status.code(), out)
    }

    fn apply_ok(&self) -> Vec<serde_json::Value> {
        let (events, code, out) = self.apply_events(&[]);
        assert_eq!(
            code,
            Some(0),
            "apply failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        events
    }

    fn edit(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }
}

fn assert_converged(c: &Cluster, hosts: impl IntoIterator<Item = usize>) {
    for i in hosts {
        let h = c.host(i);
        for (rel, text) in BUNDLE {
            assert_eq!(
                h.read(&format!("/opt/app/current/{rel}")).as_deref(),
                Some(*text),
                "{rel} on {}",
                h.name
            );
        }
        assert_eq!(
            h.read("/opt/app/app.conf").unwrap(),
            format!("name = e2e\nlisten = {}:8080\n", h.address)
        );
        assert!(
            h.read("/opt/app/installed").is_some(),
            "installed on {}",
            h.name
        );
        if i == 0 {
            assert_eq!(h.read("/opt/app/token").unwrap(), "token-host0\n");
        } else {
            assert_eq!(
                h.read("/opt/app/joined").unwrap(),
                "joined token-host0\n",
                "join on {} read the master's captured token",
                h.name
            );
        }
    }
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn cold_apply_noop_and_one_file_changed_on_8_hosts() {
    let c = Cluster::new(8);
    let events = c.apply_ok();
    assert_converged(&c, 0..8);
    // 8 hosts x (preflight, app, app-conf, install) + init + 7 joins.
    assert_eq!(ran(&events).len(), 8 * 4 + 1 + 7, "{:?}", ran(&events));
    assert!(
        finished(&events, "bundle.app@host3").unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("5 files shipped")
    );
    // Facts and receipts are on the hosts.
    assert!(
        c.host(2)
            .path("/var/lib/cairn/e2e/receipts/step.install@host2.json")
            .exists()
    );

    // No-op: a real refresh of every host, and nothing runs.
    let events = c.apply_ok();
    assert!(ran(&events).is_empty(), "{:?}", ran(&events));
    let plan = c.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));

    // One bundle file changed: exactly it is shipped to each host; install and
    // what waits on it (join) rerun; init is `once`; nothing else runs.
    c.edit("app/conf/b.conf", "beta = 3\n");
    let plan = c.run(&["plan"]);
    assert!(
        stdout(&plan).contains("1 file changed (conf/b.conf)"),
        "{}",
        stdout(&plan)
    );
    let events = c.apply_ok();
    let mut expected: Vec<String> = (0..8)
        .flat_map(|i| {
            [
                format!("bundle.app@host{i}"),
                format!("step.install@host{i}"),
            ]
        })
        .chain((1..8).map(|i| format!("step.join@host{i}")))
        .collect();

    expected.sort();
    assert_eq!(ran(&events), expected);
    for i in 0..8 {
        let detail = finished(&events, &format!("bundle.app@host{i}")).unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(detail, "1 file shipped (conf/b.conf)");
        assert_eq!(
            c.host(i).read("/opt/app/current/conf/b.conf").unwrap(),
            "beta = 3\n"
        );
    }
    // Files cairn did not ship are never deleted; a hand edit is seen and repaired.
    c.host(5)
        .write("/opt/app/current/mine.txt", "not cairn's\n");
    c.host(5)
        .write("/opt/app/current/conf/a.conf", "edited by hand\n");
    let plan = c.run(&["plan"]);
    assert!(
        stdout(&plan).contains("changed on the host"),
        "{}",
        stdout(&plan)
    );
    let events = c.apply_ok();
    assert_eq!(
        finished(&events, "bundle.app@host5").unwrap()["detail"],
        "1 file shipped (conf/a.conf)"
    );
    assert_eq!(
        c.host(5).read("/opt/app/current/mine.txt").as_deref(),
        Some("not cairn's\n")
    );
}

/// Waits (up to 30 s) until `path` exists on `host`.
fn wait_for(host: &TestHost, path: &str) {
    wait_until_within(
        &format!("{path} appears on {}", host.name),
        Duration::from_secs(30),
        || host.path(path).exists(),
    );
}

/// A step that marks that it started, then takes 2 s (timeout 4 s), and one after it.
const SLOW: &str = r#"
[[steps]]
name = "slow"
after = ["install"]
run = "touch /tmp/slow-started && sleep 2 && echo slow done"
timeout = "4s"

[[steps]]
name = "after-slow"
after = ["slow"]
run = "echo after > /opt/app/after-slow"
"#;

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_host_frozen_mid_step_times_out_alone_and_the_others_finish() {
    let c = Cluster::with(4, "", SLOW);
    let (events, code, out) = std::thread::scope(|s| {
        s.spawn(|| {
            wait_for(c.host(2), "/tmp/slow-started");
            c.host(2).freeze();
        });
        c.apply_events(&[])
    });
    assert_eq!(code, Some(1), "{}", stderr(&out));
    let failure = failed(&events, "step.slow@host2").expect("slow failed on the frozen host");
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 4s"),
        "{failure}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "task_skipped" && e["task"] == "step.after-slow@host2"),
        "its dependent is skipped"
    );
    for i in [0, 1, 3] {
        assert!(finished(&events, &format!("step.after-slow@host{i}")).is_some());
    }
    assert_converged(&c, [0, 1, 3]);

    // Thawed, the next apply finishes exactly what is left.
    c.host(2).thaw();
    // (join@host2 may have started on the frozen host too, and failed with it.)
    let events = c.apply_ok();
    let ran = ran(&events);
    assert!(ran.contains(&"step.slow@host2".to_string()), "{ran:?}");
    assert!(
        ran.iter().all(|t| t.ends_with("@host2")),
        "only what did not finish: {ran:?}"
    );
    assert_converged(&c, 0..4);
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_frozen_host_fails_its_connect_timeout_alone() {
    let c = Cluster::new(3);
    c.apply_ok();
    c.edit("app/conf/a.conf", "alpha = 2\n");
    c.host(1).freeze();
    let (events, code, out) = c.apply_events(&[]);
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("host1"), "{text}");
    assert!(finished(&events, "bundle.app@host0").is_some(), "{text}");
    assert!(finished(&events, "bundle.app@host2").is_some(), "{text}");
    assert_eq!(
        c.host(0).read("/opt/app/current/conf/a.conf").unwrap(),
        "alpha = 2\n"
    );
    let summary = events
        .iter()
        .find(|e| e["event"] == "run_finished")
        .expect("a summary");
    assert_eq!(
        summary["summary"]["unreachable"].as_array().unwrap().len(),
        1
    );

    // Drift says which hosts it could not check (exit 4), and the rest are in sync.
    let drift = c.run(&["drift", "--json"]);
    assert_eq!(drift.status.code(), Some(4), "{}", stdout(&drift));
    c.host(1).thaw();
    let drift = c.run(&["drift"]);
    assert_eq!(drift.status.code(), Some(2), "{}", stdout(&drift));
    assert!(stdout(&drift).contains("host1"), "{}", stdout(&drift));
    c.apply_ok();
    for h in &c.hosts.hosts {
        assert_eq!(
            h.read("/opt/app/current/conf/a.conf").unwrap(),
            "alpha = 2\n"
        );
    }
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_host_killed_mid_apply_converges_on_the_next_apply() {
    let mut c = Cluster::with(3, "", SLOW);
    let (events, code, _) = std::thread::scope(|s| {
        let victim = &c.hosts.hosts[1];
        let killer = s.spawn(move || {
            wait_for(victim, "/tmp/slow-started");
            victim.power_off();
        });
        let result = c.apply_events(&[]);
        killer.join().unwrap();
        result
    });
    assert_eq!(code, Some(1));
    assert!(failed(&events, "step.slow@host1").is_some(), "{events:?}");
    assert!(finished(&events, "step.after-slow@host0").is_some());
    assert!(finished(&events, "step.after-slow@host2").is_some());

    // The host boots again with its disk; the next apply converges it.
    c.hosts.hosts[1].restart();
    let events = c.apply_ok();
    assert!(ran(&events).contains(&"step.slow@host1".to_string()));
    assert_converged(&c, 0..3);
    assert!(ran(&c.apply_ok()).is_empty());
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_wrong_key_or_a_changed_host_key_is_refused_clearly_and_touches_nothing() {
    let c = Cluster::new(3);
    // A key no host knows.
    let other = c.path("other_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let good = std::fs::read_to_string(c.path("Clusterfile")).unwrap();
    c.edit(
        "Clusterfile",
        &good.replace(
            &c.hosts.key.display().to_string(),
            &other.display().to_string(),
        ),
    );
    let out = c.run(&["apply", "--auto-approve"]);
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("refused the login"), "{text}");
    assert!(text.contains("identity"), "{text}");
    for h in &c.hosts.hosts {
        assert!(
            !h.path("/opt/app").exists(),
            "nothing touched on {}",
            h.name
        );
        assert!(!h.path("/var/lib/cairn").exists());
    }

    // The right key; then host1 gets a new host key (a reinstall, or an attacker).
    c.edit("Clusterfile", &good);
    c.apply_ok();
    assert!(
        c.path(".cairn/known_hosts").exists(),
        "cairn keeps its own known_hosts"
    );
    c.host(1).rotate_host_key();
    c.edit("app/conf/a.conf", "alpha = 2\n");
    let out = c.run(&["apply", "--auto-approve"]);
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("host1"), "{text}");
    assert!(text.contains("host key CHANGED"), "{text}");
    assert!(text.contains("ssh-keygen -R"), "{text}");
    assert_eq!(
        c.host(1).read("/opt/app/current/conf/a.conf").unwrap(),
        "alpha = 1\n",
        "nothing touched on the host with the changed key"
    );
    assert_eq!(
        c.host(0).read("/opt/app/current/conf/a.conf").unwrap(),
        "alpha = 2\n"
    );
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_non_root_user_with_passwordless_sudo_converges_as_root() {
    let extra = r#"
[[steps]]
name = "whoami"
after = ["install"]
run = "id -u > /opt/app/uid"
"#;
    let c = Cluster::with(2, "user = \"deploy\"\nsudo = true", extra);
    c.apply_ok();
    assert_converged(&c, 0..2);
    for h in &c.hosts.hosts {
        assert_eq!(h.read("/opt/app/uid").unwrap(), "0\n");
        let meta = std::fs::metadata(h.path("/opt/app/current/conf/a.conf")).unwrap();
        assert_eq!(meta.uid(), 0, "shipped as root through sudo");
        assert!(h.path("/var/lib/cairn/e2e/receipts").is_dir());
    }
    assert!(ran(&c.apply_ok()).is_empty());
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn sudo_with_a_password_secret_works_and_the_secret_appears_nowhere() {
    const PASSWORD: &str = "ops-secret-pw";
    const TOKEN: &str = "tok-3f9a-never-shown";
    let extra = r#"
[[steps]]
name = "use-secret"
after = ["install"]
run = "echo ${api_token} > /opt/app/token-file && echo printed ${api_token} && sleep 1"
"#;
    let c = Cluster::with(
        2,
        "user = \"ops\"\nsudo = true\nsudo_password = \"env:E2E_SUDO_PW\"",
        extra,
    );
    let file = std::fs::read_to_string(c.path("Clusterfile")).unwrap();
    c.edit(
        "Clusterfile",
        &file.replace(
            "greeting = \"hello\"",
            "greeting = \"hello\"\napi_token = { secret = \"env:E2E_TOKEN\" }",
        ),
    );
    let mut apply = c.command(&["apply", "--auto-approve"]);
    apply
        .env("E2E_SUDO_PW", PASSWORD)
        .env("E2E_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = apply.spawn().unwrap();
    // While the step runs: not in any command line, here or on the host.
    wait_for(c.host(0), "/opt/app/token-file");
    let local_ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let remote_ps = c.host(0).exec("ps -eo args");
    for (what, text) in [
        ("local ps", stdout(&local_ps)),
        ("host ps", stdout(&remote_ps)),
    ] {
        assert!(!text.contains(TOKEN), "{what} shows the secret");
        assert!(!text.contains(PASSWORD), "{what} shows the password");
    }
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        c.host(1).read("/opt/app/token-file").unwrap(),
        format!("{TOKEN}\n")
    );
    assert!(!text.contains(TOKEN) && !text.contains(PASSWORD), "{text}");
    // Nor in the local state, the run logs, or the receipts on the hosts.
    let grep = |root: &std::path::Path| -> Vec<String> {
        walkdir::WalkDir::new(root)
            .into_iter()
            .filter_map(std::result::Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter(|e| {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes);
                text.contains(TOKEN) || text.contains(PASSWORD)
            })
            .map(|e| e.path().display().to_string())
            .collect()
    };
    assert!(
        grep(&c.path(".cairn")).is_empty(),
        "{:?}",
        grep(&c.path(".cairn"))
    );
    for h in &c.hosts.hosts {
        let receipts = h.path("/var/lib/cairn/e2e");
        assert!(receipts.is_dir());
        assert!(grep(&receipts).is_empty());
    }
    let logs: String = walkdir::WalkDir::new(c.path(".cairn"))
        .into_iter()
        .filter_map(std::result::Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(logs.contains("printed ***"), "output is kept, scrubbed");

    // A wrong password: a clear error, nothing run.
    let out = c
        .command(&["apply", "--auto-approve", "--replace", "step.use-secret"])
        .env("E2E_SUDO_PW", "wrong-password")
        .env("E2E_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("sudo"), "{text}");
    assert!(!text.contains("wrong-password"), "{text}");
}

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
        stderr(&out).contains("stale lock left by pid 4242 on laptop (user alice"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_full_disk_fails_the_shipping_with_nothing_half_written() {
    let c = Cluster::new(2);
    c.apply_ok();
    c.edit("app/conf/b.conf", &"x".repeat(4096));
    c.host(1).fill_disk();
    let (events, code, out) = c.apply_events(&[]);
    assert_eq!(code, Some(1), "{}", stderr(&out));
    let failure = failed(&events, "bundle.app@host1").expect("shipping fails");
    assert!(
        failure["error"].as_str().unwrap().contains("No space left"),
        "{failure}"
    );
    assert_eq!(
        c.host(1).read("/opt/app/current/conf/b.conf").unwrap(),
        "beta = 2\n",
        "the old file is intact"
    );
    let leftovers: Vec<_> = std::fs::read_dir(c.host(1).path("/opt/app/current"))
        .unwrap()
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cairn"))
        .collect();
    assert!(leftovers.is_empty(), "staging cleaned up");
    assert!(finished(&events, "bundle.app@host0").is_some());
    c.host(1).exec("rm -f /fill");
    let events = c.apply_ok();
    assert_eq!(
        finished(&events, "bundle.app@host1").unwrap()["detail"],
        "1 file shipped (conf/b.conf)"
    );
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn drift_names_the_host_and_the_file_edited_by_hand() {
    let c = Cluster::new(3);
    c.apply_ok();
    let drift = c.run(&["drift"]);
    assert_eq!(drift.status.code(), Some(0), "{}", stdout(&drift));
    // The refresh read each host's facts.
    let plan: serde_json::Value =
        serde_json::from_slice(&c.run(&["plan", "--json"]).stdout).unwrap();
    assert_eq!(plan["hosts"]["host1"]["hostname"], "host1");
    assert_eq!(plan["hosts"]["host1"]["zstd"], true);
    assert_eq!(plan["hosts"]["host1"]["arch"], std::env::consts::ARCH);
    let conf = c.host(2).read("/opt/app/app.conf").unwrap();

    c.host(2).write(
        "/opt/app/app.conf",
        &format!("{conf}# manual edit on the host (drift)\n"),
    );
    let drift = c.run(&["drift", "--json"]);
    assert_eq!(drift.status.code(), Some(2), "{}", stderr(&drift));
    let report: serde_json::Value = serde_json::from_slice(&drift.stdout).unwrap();
    let hosts = report["hosts"].as_array().unwrap();
    let drifted: Vec<&serde_json::Value> = hosts.iter().filter(|h| h["in_sync"] == false).collect();
    assert_eq!(drifted.len(), 1);
    assert_eq!(drifted[0]["host"], "host2");
    let reasons = drifted[0]["drifted"][0]["reasons"].to_string();
    assert!(reasons.contains("/opt/app/app.conf"), "{reasons}");
    // Read-only: nothing repaired.
    assert!(
        c.host(2)
            .read("/opt/app/app.conf")
            .unwrap()
            .contains("manual edit")
    );
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_killed_cairn_frees_the_host_locks_and_the_next_apply_picks_up() {
    let c = Cluster::with(3, "", SLOW);
    let mut first = c
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(c.host(0), "/tmp/slow-started");
    first.kill().unwrap();
    first.wait().unwrap();
    // The killed apply's last command may still be running on a host, which
    // keeps that host locked until it ends (its timeout bounds it): retry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let events = loop {
        let (events, code, out) = c.apply_events(&[]);
        if code == Some(0) {
            break events;
        }
        let text = stdout(&out) + &stderr(&out);
        assert!(text.contains("locked by another apply"), "{text}");
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(
        !ran(&events).contains(&"step.preflight@host0".to_string()),
        "what the killed apply finished is not repeated: {:?}",
        ran(&events)
    );
    assert_converged(&c, 0..3);
    for h in &c.hosts.hosts {
        assert_eq!(
            h.read("/var/lib/cairn/e2e/lock.owner").as_deref(),
            Some(""),
            "released on {}",
            h.name
        );
    }
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn strict_host_keys_refuse_an_unknown_host() {
    let c = Cluster::with(2, "host_keys = \"strict\"", "");
    let out = c.run(&["apply", "--auto-approve"]);
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("host key is not known"), "{text}");
    assert!(text.contains("accept-new"), "{text}");
    assert!(!c.host(0).path("/opt/app").exists());
}
