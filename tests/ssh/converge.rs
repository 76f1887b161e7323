//! Converging a fleet: a cold apply, a no-op, one file changed, a hand
//! edit repaired.

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
