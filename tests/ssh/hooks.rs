//! Bundle hooks over SSH: the fixture bundles `hooked` (a rootfs with
//! check, init-cri, init-registry, init, cmd and their cleans) and
//! `hooked-app` (an app with a cmd) on three test hosts, a master and two
//! workers. Their scripts append what they see to `/opt/hk/hooks.log`.
//! Checked: which hosts run which hook (init-registry on the registry host,
//! which is the first master here; the app's cmd once, on the first
//! master), the order on each host, the bundle's vars exported, a second
//! apply running nothing, `delete` of a worker running its cleans there
//! alone, and `reset` running the cleans in reverse and leaving no file of
//! the bundles.

use std::path::Path;

use super::{TestHosts, hosts, stderr, stdout};
use crate::support::cairn;

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn lines(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn position(lines: &[String], prefix: &str, host: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("`{prefix}` ran on {host}: {lines:?}"))
}

/// A folder with both fixture bundles and a Clusterfile shipping them to `hosts`.
fn cluster(hosts: &TestHosts) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        Path::new("fixtures/local/hooked"),
        &dir.path().join("hooked"),
    );
    copy_dir(
        Path::new("fixtures/local/hooked-app"),
        &dir.path().join("hooked-app"),
    );
    let clusterfile = format!(
        "version = 1\nname = \"hooks\"\n\n{}\n[[bundles]]\nname = \"hooked\"\nsource = \"hooked\"\ndest = \"/opt/hk/rootfs\"\n\n[[bundles]]\nname = \"app\"\nsource = \"hooked-app\"\ndest = \"/opt/hk/app\"\n",
        hosts.clusterfile_hosts("")
    );
    std::fs::write(dir.path().join("Clusterfile"), clusterfile).unwrap();
    dir
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn hooks_run_on_their_hosts_in_order_and_reset_cleans_in_reverse() {
    if let Some(why) = hosts::unavailable() {
        panic!("cannot start the isolated sshd test hosts this test needs: {why}");
    }
    let hosts = TestHosts::start(3);
    let dir = cluster(&hosts);
    let run = |args: &[&str]| {
        let mut c = cairn(dir.path(), args);
        c.env_remove("SSH_AUTH_SOCK");
        c.output().expect("cairn runs")
    };
    let out = run(&["apply", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    for (i, h) in hosts.hosts.iter().enumerate() {
        let log = lines(h.read("/opt/hk/hooks.log"));
        let check = position(&log, "check sealos.hub fast", &h.name);
        let cri = position(&log, "init-cri sealos.hub", &h.name);
        let init = position(&log, "init sealos.hub fast", &h.name);
        let cmd = position(&log, "cmd sealos.hub", &h.name);
        assert!(
            check < cri && cri < init && init < cmd,
            "{}: {log:?}",
            h.name
        );
        let registry = log.iter().any(|l| l.starts_with("init-registry"));
        let app = log.iter().any(|l| l.starts_with("app "));
        assert_eq!(
            registry,
            i == 0,
            "init-registry on the master only: {log:?}"
        );
        assert_eq!(
            app,
            i == 0,
            "the app's cmd on the first master only: {log:?}"
        );
        assert!(
            h.read("/opt/hk/rootfs/bundle.toml").is_none(),
            "bundle.toml is not shipped"
        );
    }
    let plan = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));

    // A host deleted runs its cleans; the others are not touched.
    let gone = &hosts.hosts[2];
    let out = run(&["delete", &gone.name, "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let log = lines(gone.read("/opt/hk/hooks.log"));
    assert!(
        position(&log, "clean sealos.hub fast", &gone.name)
            < position(&log, "clean-cri", &gone.name),
        "{log:?}"
    );
    for h in &hosts.hosts[..2] {
        let log = lines(h.read("/opt/hk/hooks.log"));
        assert!(
            !log.iter().any(|l| l.starts_with("clean")),
            "{}: {log:?}",
            h.name
        );
    }

    let out = run(&["reset", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    for (i, h) in hosts.hosts[..2].iter().enumerate() {
        let log = lines(h.read("/opt/hk/hooks.log"));
        let clean = position(&log, "clean sealos.hub fast", &h.name);
        assert!(clean < position(&log, "clean-cri", &h.name), "{log:?}");
        if i == 0 {
            assert!(clean < position(&log, "clean-registry", &h.name), "{log:?}");
        }
        assert!(
            h.read("/opt/hk/rootfs/scripts/init.sh").is_none(),
            "the bundle's files are gone from {}",
            h.name
        );
    }
}
