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
//! strict host keys; a host added with `cairn add` and one taken out with
//! `cairn delete`; ad hoc `exec` and `cp`; a fleet's life (`lifecycle`); a
//! saved plan with `--var` applied from another folder, and captured values
//! read back with `cairn output` (`outputs`); a bundle's hooks on their
//! hosts, in order, and cleaned on reset (`hooks`); a sealos Clusterfile
//! imported and applied over password logins (`import`); plans/kubernetes.toml
//! on 3 masters and 5 nodes, through a failed join, a Config edit, a node
//! added and one deleted, and a reset (`kubernetes`); a fleet larger than
//! `--parallelism`, worked on a window of connections at a time, and a host
//! refused when it changed between its probe and its turn (`connections`).
//! This file holds the shared cluster (hosts, a bundle, a Clusterfile);
//! the tests are grouped by subject: `converge`, `drift`, `faults`,
//! `access`, `operators`, `scale`, `adhoc`, `lifecycle`, `outputs`.
//!
//! These tests need root, util-linux and openssh-server, so each is
//! `#[ignore]`d with that reason and `scripts/test` (which installs what is
//! missing) runs them with `--include-ignored`. Run without what they need,
//! they fail saying what is missing; none of them passes without running.

#[path = "../support/mod.rs"]
#[expect(dead_code, reason = "the Sandbox and its helpers are for tests/cli/")]
mod support;

mod access;
mod adhoc;
mod connections;
mod converge;
mod drift;
mod faults;
mod harness_reach;
mod hooks;
mod import;
mod kubernetes;
mod lifecycle;
mod operators;
mod outputs;
mod prestage;
mod reach;
mod scale;
mod streamed;

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

/// The run exited 0, or the test fails showing what it printed.
fn assert_ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(out),
        stderr(out)
    );
}

/// The tasks a `plan --json` run would change, as `action task`, in plan order.
fn planned_changes(plan: &Output) -> Vec<String> {
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(plan));
    let plan: serde_json::Value = serde_json::from_str(&stdout(plan)).unwrap();
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "noop")
        .map(|c| {
            format!(
                "{} {}",
                c["action"].as_str().unwrap(),
                c["task"].as_str().unwrap()
            )
        })
        .collect()
}

/// Every file under `root` whose bytes contain one of `secrets`.
fn files_holding(root: &std::path::Path, secrets: &[&str]) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let text =
                String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).to_string();
            secrets.iter().any(|s| text.contains(s))
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

/// None of `secrets` is in a command line here or on any of `c`'s hosts.
fn assert_in_no_command_line(c: &Cluster, secrets: &[&str]) {
    let local_ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let mut seen = vec![("here".to_string(), stdout(&local_ps))];
    for h in &c.hosts.hosts {
        seen.push((h.name.clone(), stdout(&h.exec("ps -eo args"))));
    }
    for (where_, text) in seen {
        for secret in secrets {
            assert!(!text.contains(secret), "ps {where_} shows a secret");
        }
    }
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
