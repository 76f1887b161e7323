//! Reaching hosts as fleets really are: behind jump hosts (one and two
//! hops, the identity and host-key policy given only in the Clusterfile),
//! through an ssh config alias, with a password, an encrypted key or a
//! certificate; and, when a hop fails, an error that names it.

use super::*;

/// `address = "A"` of the host at `addr` gets `ssh = { jump = JUMP }`.
fn with_jump(clusterfile: &str, addr: &str, jump: &str) -> String {
    clusterfile.replace(
        &format!("address = \"{addr}\"\n"),
        &format!("address = \"{addr}\"\nssh = {{ jump = {jump} }}\n"),
    )
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn hosts_behind_one_and_two_jump_hosts_converge_and_a_dead_hop_is_named() {
    let c = Cluster::new(3);
    let (a0, a1, a2) = (
        c.host(0).address.clone(),
        c.host(1).address.clone(),
        c.host(2).address.clone(),
    );
    // host1 behind host0; host2 behind host0 then host1. Nothing in ~/.ssh
    // or an agent: the identity and the host-key policy are the Clusterfile's.
    let text = std::fs::read_to_string(c.path("Clusterfile")).unwrap();
    let text = with_jump(&text, &a1, &format!("\"root@{a0}\""));
    let text = with_jump(&text, &a2, &format!("[\"root@{a0}\", \"{a1}\"]"));
    c.edit("Clusterfile", &text);
    c.apply_ok();
    assert_converged(&c, 0..3);
    let known = std::fs::read_to_string(c.path(".cairn/known_hosts")).unwrap();
    assert_eq!(
        known.lines().count(),
        3,
        "every host's key, the hops' included, is learned into cairn's own file:\n{known}"
    );

    // Strict now that every key is known: still converged, through the hops.
    c.edit(
        "Clusterfile",
        &text.replace("connect_timeout = \"3s\"", "connect_timeout = \"3s\"\nhost_keys = \"strict\""),
    );
    c.edit("app/conf/a.conf", "alpha = 2\n");
    c.apply_ok();
    assert_eq!(c.host(2).read("/opt/app/current/conf/a.conf").unwrap(), "alpha = 2\n");

    // Strict with a bastion whose key cairn does not know: refused, naming the hop.
    // (Debian hashes known_hosts entries: forget it the way an operator would.)
    let status = Command::new("ssh-keygen")
        .args(["-q", "-R", &a0, "-f"])
        .arg(c.path(".cairn/known_hosts"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = c.run(&["plan"]);
    let said = stdout(&out) + &stderr(&out);
    assert!(
        said.contains(&format!("jump host root@{a0} (hop 1 of 1 to {a1})"))
            && said.contains("host key is not known"),
        "{said}"
    );
    std::fs::write(c.path(".cairn/known_hosts"), &known).unwrap();

    // The bastion goes down: the hosts behind it fail, each naming the hop.
    c.edit("Clusterfile", &text);
    c.edit("app/conf/a.conf", "alpha = 3\n");
    let mut c = c;
    c.hosts.hosts[0].kill();
    let out = c.run(&["apply", "--auto-approve"]);
    let said = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("jump host root@{a0} (hop 1 of 1 to {a1})")),
        "{said}"
    );
    assert!(said.contains("connection refused"), "{said}");
}
