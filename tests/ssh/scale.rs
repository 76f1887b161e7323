//! A fleet that grows and shrinks through `cairn add` and `cairn delete`:
//! the Clusterfile edited, then applied, on real test hosts.

use super::*;

/// A step on the workers with an undo that leaves a mark where it ran.
const MARK: &str = r#"
[[steps]]
name = "mark"
on = ["worker"]
after = ["join"]
run = "echo here > /opt/app/mark"
undo = "rm -f /opt/app/mark && echo undone > /tmp/mark-undone"
"#;

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn add_then_delete_a_host_converges_then_undoes_it() {
    let c = Cluster::with(3, "", MARK);
    // Start with two of the three hosts: host2 is the one `cairn add` brings.
    let third = format!(
        "[[hosts]]\nname = \"host2\"\naddress = \"{}\"\nroles = [\"worker\"]\n\n",
        c.host(2).address
    );
    let full = std::fs::read_to_string(c.path("Clusterfile")).unwrap();
    assert!(full.contains(&third), "{full}");
    let two = full.replace(&third, "");
    let second = format!(
        "[[hosts]]\nname = \"host1\"\naddress = \"{}\"\nroles = [\"worker\"]\n",
        c.host(1).address
    );
    c.edit("Clusterfile", &two);
    c.apply_ok();
    assert_converged(&c, [0, 1]);
    assert!(c.host(2).read("/opt/app/installed").is_none());

    let added = c.run(&[
        "add",
        &c.host(2).address,
        "--role",
        "worker",
        "--name",
        "host2",
        "--auto-approve",
    ]);
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&added),
        stderr(&added)
    );
    assert!(
        stdout(&added).contains("1 host added"),
        "{}",
        stdout(&added)
    );
    assert!(
        stdout(&added).contains("Apply complete!"),
        "{}",
        stdout(&added)
    );
    assert_converged(&c, [0, 1, 2]);
    assert_eq!(c.host(2).read("/opt/app/mark").as_deref(), Some("here\n"));
    let plan = c.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "converged: {}", stdout(&plan));
    assert_eq!(
        std::fs::read_to_string(c.path("Clusterfile")).unwrap(),
        two.replace(
            &second,
            &format!(
                "{second}\n[[hosts]]\naddress = \"{}\"\nname = \"host2\"\nroles = [\"worker\"]\n",
                c.host(2).address
            )
        ),
        "one entry after the last host, the rest as it was"
    );

    let deleted = c.run(&["delete", "host1", "--auto-approve"]);
    let said = format!("{}\n{}", stdout(&deleted), stderr(&deleted));
    assert!(said.contains("1 host removed"), "{said}");
    assert!(
        !std::fs::read_to_string(c.path("Clusterfile"))
            .unwrap()
            .contains("name = \"host1\""),
        "the edit is written whatever the apply does"
    );
    // The host that left is reached as recorded and has its tasks undone.
    assert_eq!(deleted.status.code(), Some(0), "{said}");
    assert_eq!(
        c.host(1).read("/tmp/mark-undone").as_deref(),
        Some("undone\n"),
        "the undo ran on the host that left: {said}"
    );
    assert!(c.host(1).read("/opt/app/mark").is_none(), "{said}");
    assert_converged(&c, [0, 2]);
    assert!(
        c.host(2).read("/tmp/mark-undone").is_none(),
        "the hosts that stay are not touched"
    );
    let plan = c.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "converged: {}", stdout(&plan));
}
