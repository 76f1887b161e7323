//! Converging a fleet: a cold apply, a no-op, one file changed, a hand
//! edit repaired; a value captured again by `--replace` reaching every host
//! that reads it, a failed host included.

use super::*;

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

/// A value captured on the master and read on every worker, by a step that
/// fails once on a host holding `/tmp/fail-once`.
const STAMP: &str = r#"
[[steps]]
name = "stamp"
on = ["master"]
run = "cat /tmp/stamp-source"
capture = "stamp"

[[steps]]
name = "use-stamp"
on = ["worker"]
after = ["stamp@*", "app"]   # /opt/app is the bundle's
run = "if [ -f /tmp/fail-once ]; then rm /tmp/fail-once; exit 3; fi; echo ${stamp} > /opt/app/stamp"
"#;

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_replaced_capture_reaches_every_host_that_reads_it_even_after_a_failure() {
    let c = Cluster::with(3, "", STAMP);
    c.host(0).write("/tmp/stamp-source", "s1\n");
    c.apply_ok();
    for i in 1..3 {
        assert_eq!(c.host(i).read("/opt/app/stamp").unwrap(), "s1\n");
    }

    // The new value reaches host1; host2's step fails this time.
    c.host(0).write("/tmp/stamp-source", "s2\n");
    c.host(2).write("/tmp/fail-once", "");
    let (events, code, out) = c.apply_events(&["--replace", "step.stamp"]);
    assert_eq!(code, Some(1), "{}", stdout(&out));
    assert_eq!(
        ran(&events),
        [
            "step.stamp@host0",
            "step.use-stamp@host1",
            "step.use-stamp@host2"
        ],
        "tasks started"
    );
    assert_eq!(c.host(1).read("/opt/app/stamp").unwrap(), "s2\n");
    assert_eq!(c.host(2).read("/opt/app/stamp").unwrap(), "s1\n");

    // The next plan has not forgotten host2; the next apply finishes it.
    let plan = stdout(&c.run(&["plan"]));
    assert!(
        plan.contains("~ step.use-stamp@host2  rerun required by an earlier apply (not finished)")
            && plan.contains("0 to add, 1 to change, 0 to destroy"),
        "{plan}"
    );
    let events = c.apply_ok();
    assert_eq!(ran(&events), ["step.use-stamp@host2"]);
    assert_eq!(c.host(2).read("/opt/app/stamp").unwrap(), "s2\n");
    let plan = c.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));
}
