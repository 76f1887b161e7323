//! A fleet's life on real test hosts: hosts named by address, inserted and
//! removed without touching the others; a host that leaves is undone in
//! reverse dependency order and forgotten; one that cannot be reached
//! fails alone until `state rm`; `reset` leaves no file of cairn's; a named
//! host whose address changes is replaced on its new machine and cleaned on
//! its old one. The hosts of each test are shared by all its stages.

use std::fmt::Write as _;
use std::process::Output;

use super::{TestHosts, assert_ok, hosts, planned_changes, stderr, stdout};
use crate::support::cairn;

/// Unnamed hosts (one entry each, in the order given), a bundle whose
/// script an undo runs, and steps whose undos log their order.
fn clusterfile(hosts: &TestHosts, order: &[usize]) -> String {
    let mut text = format!(
        "version = 1\nname = \"life\"\n\n[ssh]\nidentity = \"{}\"\nconnect_timeout = \"3s\"\n\n",
        hosts.key.display()
    );
    for &i in order {
        let role = if i == 0 { "master" } else { "worker" };
        let _ = write!(
            text,
            "[[hosts]]\naddress = \"{}\"\nroles = [\"{role}\"]\n\n",
            hosts.hosts[i].address
        );
    }
    text.push_str(STEPS);
    text
}

const STEPS: &str = r#"[[bundles]]
name = "app"
source = "app"
dest = "/opt/life/app"

[[steps]]
name = "install"
after = ["app"]
run = "echo install >> /opt/life/log"
undo = "echo undo-install >> /opt/life/log"

[[steps]]
name = "clean"
after = ["app"]
cwd = "/opt/life/app"
run = "true"
undo = "sh scripts/clean.sh"

[[steps]]
name = "init"
on = "master"
after = ["install"]
run = "echo token-$(hostname)"
capture = "token"
once = true
undo = "echo undo-init >> /opt/life/log"

[[steps]]
name = "join"
on = "worker"
after = ["install", "init@*"]
run = "echo joined ${token} > /opt/life/joined"
undo = "rm -f /opt/life/joined && echo undo-join >> /opt/life/log"
"#;

struct Life {
    dir: tempfile::TempDir,
    hosts: TestHosts,
}

impl Life {
    fn start(n: usize) -> Life {
        if let Some(why) = hosts::unavailable() {
            panic!(
                "cannot start the isolated sshd test hosts this test needs: {why}; \
                 run it as root with openssh-server installed, as scripts/test does"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("app/scripts/clean.sh");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, "echo clean >> /opt/life/log\n").unwrap();
        Life {
            dir,
            hosts: TestHosts::start(n),
        }
    }

    fn hosts_in_file(&self, order: &[usize]) {
        std::fs::write(
            self.dir.path().join("Clusterfile"),
            clusterfile(&self.hosts, order),
        )
        .unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = cairn(self.dir.path(), args);
        c.env_remove("SSH_AUTH_SOCK");
        c.output().expect("cairn runs")
    }

    fn apply(&self, args: &[&str]) -> Output {
        let mut all = vec!["apply", "--auto-approve"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    fn address(&self, i: usize) -> &str {
        &self.hosts.hosts[i].address
    }

    /// The tasks a JSON plan would change, as `action task`.
    fn planned_changes(&self) -> Vec<String> {
        planned_changes(&self.run(&["plan", "--json"]))
    }

    /// Files of cairn's, or shipped or left by these steps, on host `i`.
    fn leftovers(&self, i: usize) -> Vec<String> {
        self.hosts.hosts[i]
            .written_paths()
            .into_iter()
            .filter(|p| {
                p.starts_with("/var/lib/cairn")
                    || p.starts_with("/opt/life/app")
                    || p == "/opt/life/joined"
            })
            .collect()
    }

    fn log(&self, i: usize) -> Vec<String> {
        self.hosts.hosts[i]
            .read("/opt/life/log")
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

/// Position in `log` of `line`, which must be there.
fn at(log: &[String], line: &str) -> usize {
    log.iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("`{line}` is not in the log: {log:?}"))
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn hosts_come_and_go_without_touching_the_others() {
    let mut life = Life::start(4);
    life.hosts_in_file(&[0, 1, 2]);
    assert_ok(&life.apply(&[]));

    // Insert a new host above the others and remove the middle one: only
    // those two hosts change.
    life.hosts_in_file(&[3, 0, 2]);
    let changes = life.planned_changes();
    for c in &changes {
        assert!(
            c.ends_with(&format!("@{}", life.address(1)))
                || c.ends_with(&format!("@{}", life.address(3))),
            "only the removed and the added host change: {changes:?}"
        );
    }
    assert!(
        changes.contains(&format!("create step.join@{}", life.address(3))),
        "{changes:?}"
    );
    assert!(
        changes.contains(&format!("destroy bundle.app@{}", life.address(1))),
        "{changes:?}"
    );
    let out = life.apply(&[]);
    assert_ok(&out);

    // The host that left was undone in reverse dependency order (the undo
    // that runs the bundle's script ran before the bundle was removed) and
    // nothing of cairn's is left on it.
    let log = life.log(1);
    assert!(at(&log, "undo-join") < at(&log, "undo-install"), "{log:?}");
    at(&log, "clean");
    assert_eq!(life.leftovers(1), Vec::<String>::new());
    let list = stdout(&life.run(&["--json", "state", "list"]));
    assert!(
        !list.contains(life.address(1)),
        "the host left the state: {list}"
    );
    let again = life.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));

    // A host that leaves while it cannot be reached fails alone, naming the
    // way out; `state rm` takes it.
    life.hosts_in_file(&[3, 0]);
    life.hosts.hosts[2].kill();
    let out = life.apply(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains(&format!("cairn state rm {}", life.address(2))),
        "{text}"
    );
    assert_ok(&life.run(&["state", "rm", life.address(2)]));
    assert_ok(&life.apply(&[]));
    let again = life.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));

    // Reset: everything undone, in order, on every host, and nothing of
    // cairn's left; the state is empty.
    let out = life.run(&["reset", "--auto-approve"]);
    assert_ok(&out);
    for i in [0, 3] {
        assert_eq!(life.leftovers(i), Vec::<String>::new(), "host {i}");
    }
    let master_log = life.log(0);
    assert!(
        at(&master_log, "undo-init") < at(&master_log, "undo-install"),
        "{master_log:?}"
    );
    let worker_log = life.log(3);
    assert!(
        at(&worker_log, "undo-join") < at(&worker_log, "undo-install"),
        "{worker_log:?}"
    );
    let list = stdout(&life.run(&["state", "list"]));
    assert!(list.contains("No tasks recorded"), "{list}");
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_named_host_that_changes_address_is_replaced_and_its_old_machine_cleaned() {
    let life = Life::start(3);
    let named = |address: &str| {
        format!(
            "version = 1\nname = \"life\"\n\n[ssh]\nidentity = \"{}\"\nconnect_timeout = \"3s\"\n\n\
             [[hosts]]\naddress = \"{}\"\nroles = [\"master\"]\n\n\
             [[hosts]]\nname = \"w\"\naddress = \"{address}\"\nroles = [\"worker\"]\n\n{STEPS}",
            life.hosts.key.display(),
            life.address(0),
        )
    };
    std::fs::write(life.dir.path().join("Clusterfile"), named(life.address(1))).unwrap();
    assert_ok(&life.apply(&[]));
    assert!(life.hosts.hosts[1].read("/opt/life/joined").is_some());

    std::fs::write(life.dir.path().join("Clusterfile"), named(life.address(2))).unwrap();
    let changes = life.planned_changes();
    assert!(
        changes.contains(&"replace step.join@w".to_string()),
        "{changes:?}"
    );
    assert!(
        changes.iter().all(|c| c.ends_with("@w")),
        "nothing changes on the master: {changes:?}"
    );
    assert_ok(&life.apply(&[]));
    assert!(life.hosts.hosts[2].read("/opt/life/joined").is_some());
    assert_eq!(
        life.leftovers(1),
        Vec::<String>::new(),
        "the old machine is cleaned"
    );
    let again = life.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}
