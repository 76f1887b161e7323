//! Reaching hosts as fleets really are: behind jump hosts (one and two
//! hops, the identity and host-key policy given only in the Clusterfile),
//! through an ssh config alias, with a password, an encrypted key or a
//! certificate; and, when a hop fails, an error that names it.

use super::*;

/// `address = "A"` of the host at `addr` gets `ssh = { jump = JUMP }`.
fn with_jump(clusterfile: &str, addr: &str, jump: &str) -> String {
    with_ssh(clusterfile, addr, &format!("jump = {jump}"))
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
    // (The first hop spelled with its port: the same machine, the same shared connection.)
    let text = with_jump(&text, &a2, &format!("[\"root@{a0}:22\", \"{a1}\"]"));
    c.edit("Clusterfile", &text);
    let logins = |h: &TestHost| h.log().matches("Accepted publickey").count();
    let before = logins(c.host(0));
    c.apply_ok();
    assert_converged(&c, 0..3);
    assert_eq!(
        logins(c.host(0)) - before,
        2,
        "the bastion sees its own connection and one shared by both hosts behind it:\n{}",
        c.host(0).log()
    );
    let known = std::fs::read_to_string(c.path(".cairn/known_hosts")).unwrap();
    // By key: two connections learning one hop's key at once may each
    // write it (ssh appends without a lock; the names are hashed).
    let keys: std::collections::BTreeSet<Vec<&str>> = known
        .lines()
        .map(|line| line.split_whitespace().skip(1).take(2).collect())
        .collect();
    assert_eq!(
        keys.len(),
        3,
        "every host's key, the hops' included, is learned into cairn's own file:\n{known}"
    );

    // Strict now that every key is known: still converged, through the hops.
    c.edit(
        "Clusterfile",
        &text.replace(
            "connect_timeout = \"3s\"",
            "connect_timeout = \"3s\"\nhost_keys = \"strict\"",
        ),
    );
    c.edit("app/conf/a.conf", "alpha = 2\n");
    c.apply_ok();
    assert_eq!(
        c.host(2).read("/opt/app/current/conf/a.conf").unwrap(),
        "alpha = 2\n"
    );

    // Strict with a bastion whose key cairn does not know: refused, naming the hop.
    // (Debian hashes known_hosts entries: forget it the way an operator would.)
    let forgot = Command::new("ssh-keygen")
        .args(["-q", "-R", &a0, "-f"])
        .arg(c.path(".cairn/known_hosts"))
        .output()
        .unwrap();
    assert!(forgot.status.success());
    let out = c.run(&["plan"]);
    let said = stdout(&out) + &stderr(&out);
    assert!(
        said.contains(&format!("jump host root@{a0} (hop 1 of 1 to {a1})"))
            && said.contains("host key is not known"),
        "{said}"
    );
    std::fs::write(c.path(".cairn/known_hosts"), &known).unwrap();

    // The bastion freezes: the hosts behind it time out, naming the hop.
    c.edit("Clusterfile", &text);
    c.host(0).freeze();
    let out = c.run(&["plan"]);
    c.host(0).thaw();
    let said = stdout(&out) + &stderr(&out);
    assert!(
        said.contains(&format!(
            "jump host root@{a0} (hop 1 of 1 to {a1}): did not answer within connect_timeout"
        )),
        "{said}"
    );

    // The bastion's host key changes: refused at the hop, naming it.
    c.host(0).rotate_host_key();
    let out = c.run(&["plan"]);
    let said = stdout(&out) + &stderr(&out);
    assert!(
        said.contains(&format!(
            "jump host root@{a0} (hop 1 of 1 to {a1}): its host key CHANGED"
        )),
        "{said}"
    );

    // The bastion goes down: the hosts behind it fail, each naming the hop.
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

/// `address = "A"` of the host at `addr` gets the inline `ssh` table `table`.
fn with_ssh(clusterfile: &str, addr: &str, table: &str) -> String {
    clusterfile.replace(
        &format!("address = \"{addr}\"\n"),
        &format!("address = \"{addr}\"\nssh = {{ {table} }}\n"),
    )
}

/// host0: root with an encrypted key; host1: a user with a password and
/// no key at all (the cluster's key is tried first and refused); host2:
/// that user too, behind host1 as its jump host: both logins take the
/// password. Returns host1's and host2's addresses.
fn login_secrets(c: &Cluster) -> (String, String) {
    use support::hosts::PWUSER;
    let (a0, a1, a2) = (
        c.host(0).address.clone(),
        c.host(1).address.clone(),
        c.host(2).address.clone(),
    );
    let text = std::fs::read_to_string(c.path("Clusterfile")).unwrap();
    let text = with_ssh(
        &text,
        &a0,
        &format!(
            "identity = \"{}\", identity_passphrase = {{ secret = \"env:E2E_KEY_PASS\" }}",
            c.hosts.encrypted_key.display()
        ),
    );
    let text = with_ssh(
        &text,
        &a1,
        &format!(
            "user = \"{PWUSER}\", sudo = true, password = {{ secret = \"env:E2E_LOGIN_PW\" }}"
        ),
    );
    let text = with_ssh(
        &text,
        &a2,
        &format!(
            "user = \"{PWUSER}\", sudo = true, password = {{ secret = \"env:E2E_LOGIN_PW\" }}, jump = \"{PWUSER}@{a1}\""
        ),
    );
    c.edit("Clusterfile", &text);
    (a1, a2)
}

/// `apply` with the key passphrase and login password given: exit code and output.
fn apply_with_secrets(c: &Cluster, key_pass: &str, login_pw: &str) -> (Option<i32>, String) {
    let out = c
        .command(&["apply", "--auto-approve"])
        .env("E2E_KEY_PASS", key_pass)
        .env("E2E_LOGIN_PW", login_pw)
        .output()
        .unwrap();
    (out.status.code(), stdout(&out) + &stderr(&out))
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_password_login_and_an_encrypted_key_work_with_the_secrets_nowhere_and_a_wrong_password_fails_its_host_alone()
 {
    use support::hosts::{KEY_PASSPHRASE, PWUSER, PWUSER_PASSWORD};
    let slow = r#"
[[steps]]
name = "linger"
after = ["install"]
run = "touch /opt/app/lingering && sleep 1"
"#;
    let c = Cluster::with(3, "", slow);
    let (a1, a2) = login_secrets(&c);
    let mut apply = c.command(&["apply", "--auto-approve"]);
    apply
        .env("E2E_KEY_PASS", KEY_PASSPHRASE)
        .env("E2E_LOGIN_PW", PWUSER_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = apply.spawn().unwrap();
    // While the apply runs: in no command line, here or on either host.
    wait_for(c.host(1), "/opt/app/lingering");
    let secrets = [PWUSER_PASSWORD, KEY_PASSPHRASE];
    assert_in_no_command_line(&c, &secrets);
    let out = child.wait_with_output().unwrap();
    let said = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert_converged(&c, 0..3);
    assert!(
        !said.contains(PWUSER_PASSWORD) && !said.contains(KEY_PASSPHRASE),
        "{said}"
    );
    assert_eq!(
        files_holding(&c.path(".cairn"), &secrets),
        Vec::<String>::new()
    );
    for h in &c.hosts.hosts {
        assert_eq!(
            files_holding(&h.path("/var/lib/cairn"), &secrets),
            Vec::<String>::new()
        );
    }
    assert!(
        !files_holding(&c.path(".cairn"), &["env:E2E_LOGIN_PW"]).is_empty(),
        "the state keeps where the password comes from, to reach the host after it leaves"
    );

    // A wrong password: host1 fails alone, saying so; the others go on.
    c.edit("app/conf/a.conf", "alpha = 2\n");
    let (code, said) = apply_with_secrets(&c, KEY_PASSPHRASE, "not-the-password");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("host1") && said.contains("refused the password"),
        "{said}"
    );
    assert!(!said.contains("not-the-password"), "{said}");
    assert!(
        said.contains(&format!(
            "jump host {PWUSER}@{a1} (hop 1 of 1 to {a2}): it refused the password"
        )),
        "{said}"
    );
    for (i, alpha) in [(0, "alpha = 2\n"), (1, "alpha = 1\n"), (2, "alpha = 1\n")] {
        assert_eq!(
            c.host(i).read("/opt/app/current/conf/a.conf").unwrap(),
            alpha
        );
    }

    // A wrong passphrase: host0 fails alone, naming the passphrase.
    c.edit("app/conf/a.conf", "alpha = 3\n");
    let (code, said) = apply_with_secrets(&c, "not-the-passphrase", PWUSER_PASSWORD);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("host0") && said.contains("identity_passphrase"),
        "{said}"
    );
    assert_eq!(
        c.host(1).read("/opt/app/current/conf/a.conf").unwrap(),
        "alpha = 3\n"
    );

    // host1 leaves the Clusterfile: it is reached with the password its
    // record names, and what cairn did there is undone.
    let text = std::fs::read_to_string(c.path("Clusterfile")).unwrap();
    let start = text.find("[[hosts]]\nname = \"host1\"").unwrap();
    let end = start + text[start..].find("\n\n").unwrap() + 2;
    c.edit(
        "Clusterfile",
        &format!("{}{}", &text[..start], &text[end..]),
    );
    let (code, said) = apply_with_secrets(&c, KEY_PASSPHRASE, PWUSER_PASSWORD);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        !c.host(1).path("/opt/app/current/conf/a.conf").exists(),
        "undone on the host that left: {said}"
    );
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_user_certificate_a_host_ca_under_strict_and_an_ssh_config_alias() {
    use support::hosts::CERTUSER;
    let hosts = TestHosts::start(2);
    let dir = tempfile::tempdir().unwrap();
    let (a0, a1) = (&hosts.hosts[0].address, &hosts.hosts[1].address);
    // web1 is only a name in this ssh config, reached through host0; no key
    // of either host is known.
    std::fs::write(
        dir.path().join("ssh_config"),
        format!(
            "Host web1\n    HostName {a1}\n    User root\n    ProxyJump root@{a0}\nHost *\n    IdentityFile {}\n",
            hosts.key.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Clusterfile"),
        format!(
            r#"version = 1
name = "reach"

[ssh]
host_keys = "strict"
host_ca = "{host_ca}"
config = "ssh_config"
connect_timeout = "3s"

[[hosts]]
name = "certified"
address = "{a0}"
ssh = {{ user = "{CERTUSER}", identity = "{cert_key}", certificate = "{certificate}" }}

[[hosts]]
name = "web"
address = "web1"
"#,
            host_ca = hosts.host_ca.display(),
            cert_key = hosts.cert_key.display(),
            certificate = hosts.certificate.display(),
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = cairn(dir.path(), args)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap();
        (out.status.code(), stdout(&out) + &stderr(&out))
    };
    let (code, said) = run(&["exec", "--on", "*", "--", "whoami; hostname"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains(&format!("{CERTUSER}\nhost0")), "{said}");
    assert!(said.contains("root\nhost1"), "{said}");
    assert!(
        said.contains(&format!("web ({a1})")),
        "exec names where the alias went: {said}"
    );
    let (code, said) = run(&["plan"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains(&format!("web: web1 → {a1}")), "{said}");
    assert_eq!(
        hosts.hosts[0]
            .log()
            .matches("Accepted publickey for root")
            .count(),
        2,
        "web was reached through host0, as the ssh config says (exec, then plan)"
    );
    let known = dir.path().join(".cairn/known_hosts");
    assert!(
        std::fs::read_to_string(&known)
            .unwrap_or_default()
            .trim()
            .is_empty(),
        "strict with a host CA learns no key"
    );

    // Without the CA, strict refuses both; without the certificate, the login is refused.
    let text = std::fs::read_to_string(dir.path().join("Clusterfile")).unwrap();
    let no_ca = text.replace(&format!("host_ca = \"{}\"\n", hosts.host_ca.display()), "");
    std::fs::write(dir.path().join("Clusterfile"), &no_ca).unwrap();
    let (code, said) = run(&["exec", "--on", "*", "--", "true"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("certified") && said.contains("host key is not known"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "jump host root@{a0} (hop 1 of 1 to {a1}): its host key is not known"
        )),
        "the config's jump host is named: {said}"
    );
    let no_cert = text.replace(
        &format!(", certificate = \"{}\"", hosts.certificate.display()),
        "",
    );
    std::fs::write(dir.path().join("Clusterfile"), no_cert).unwrap();
    let (code, said) = run(&["exec", "--on", "certified", "--", "true"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("refused the login"), "{said}");
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn no_ssh_process_outlives_cairn_however_it_ends() {
    let c = Cluster::with(2, "", SLOW);
    let (a0, a1) = (c.host(0).address.clone(), c.host(1).address.clone());
    let text = std::fs::read_to_string(c.path("Clusterfile")).unwrap();
    c.edit(
        "Clusterfile",
        &with_jump(&text, &a1, &format!("\"root@{a0}\"")),
    );
    // cairn's sockets, logs and hop configs go here: every ssh it starts names it.
    let run = c.path("run");
    std::fs::create_dir(&run).unwrap();
    let run = run.display().to_string();
    let ours = || -> Vec<String> {
        let ps = Command::new("ps")
            .args(["-eo", "pid,args"])
            .output()
            .unwrap();
        stdout(&ps)
            .lines()
            .filter(|l| l.contains(&run) && !l.contains(" ps "))
            .map(str::to_string)
            .collect()
    };
    let gone = |why: &str| {
        wait_until_within(why, Duration::from_secs(10), || ours().is_empty());
    };
    let apply = || {
        let mut apply = c.command(&["apply", "--auto-approve"]);
        apply.env("XDG_RUNTIME_DIR", &run);
        apply
    };

    let out = apply().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    gone("no ssh process is left after an apply that ended well");

    // Killed mid-step: its masters (the shared bastion's too) end with it.
    c.edit("app/conf/a.conf", "alpha = 2\n");
    c.host(1).exec("rm -f /tmp/slow-started");
    let mut killed = apply()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(c.host(1), "/tmp/slow-started");
    assert!(
        ours().len() >= 3,
        "the check sees cairn's ssh processes while it runs: {:?}",
        ours()
    );
    killed.kill().unwrap();
    killed.wait().unwrap();
    gone("no ssh process is left after cairn was killed");
}

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn a_ctrl_c_at_the_terminal_reaches_cairn_not_its_ssh_connections() {
    use std::os::unix::process::CommandExt as _;
    let c = Cluster::with(2, "", SLOW);
    // As a terminal sends it: SIGINT to cairn's whole process group.
    let child = c
        .command(&["apply", "--auto-approve"])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(c.host(0), "/tmp/slow-started");
    let group = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the process group of our own child.
    unsafe { libc::kill(-group, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let said = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("interrupted: no new task starts"), "{said}");
    assert!(
        said.contains("step.slow@host0: created"),
        "the step running over SSH finished and was recorded: {said}"
    );
}
