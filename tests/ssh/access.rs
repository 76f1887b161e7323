//! Who gets in and as whom: a wrong key, a changed or unknown host key,
//! non-root users through sudo, and a secret that must appear nowhere.

use super::*;

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
    assert_in_no_command_line(&c, &[TOKEN, PASSWORD]);
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        c.host(1).read("/opt/app/token-file").unwrap(),
        format!("{TOKEN}\n")
    );
    assert!(!text.contains(TOKEN) && !text.contains(PASSWORD), "{text}");
    // Nor in the local state, the run logs, or the receipts on the hosts.
    let secrets = [TOKEN, PASSWORD];
    assert_eq!(
        files_holding(&c.path(".cairn"), &secrets),
        Vec::<String>::new()
    );
    for h in &c.hosts.hosts {
        let receipts = h.path("/var/lib/cairn/e2e");
        assert!(receipts.is_dir());
        assert_eq!(files_holding(&receipts, &secrets), Vec::<String>::new());
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
fn strict_host_keys_refuse_an_unknown_host() {
    let c = Cluster::with(2, "host_keys = \"strict\"", "");
    let out = c.run(&["apply", "--auto-approve"]);
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("host key is not known"), "{text}");
    assert!(text.contains("accept-new"), "{text}");
    assert!(!c.host(0).path("/opt/app").exists());
}
