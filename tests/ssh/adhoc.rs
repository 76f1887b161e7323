//! Ad hoc commands over SSH: `exec` on several hosts with one failing
//! (grouped output, exit 1, `--json`), `cp` of a folder to hosts and back
//! with `--from`, a host that cannot be reached failing alone, and a
//! non-root user reaching root through sudo with a password, with the
//! secrets masked in what is shown.

use super::*;

/// The blocks of `exec`'s text output, by host: the header line and the
/// lines under it, up to the next header or the closing summary.
fn blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("── ") {
            blocks.push((line.to_string(), Vec::new()));
        } else if line.is_empty() || line.starts_with('✓') || line.starts_with('✗') {
            // The blank line and the summary close the last block.
            if let Some(last) = blocks.last_mut()
                && !line.is_empty()
            {
                last.1.push(format!("SUMMARY {line}"));
            }
        } else if let Some(last) = blocks.last_mut() {
            last.1.push(line.to_string());
        }
    }
    blocks
}

/// A folder of files to copy: nested, one executable, one larger than a pipe's buffer.
fn payload(c: &Cluster) -> Vec<(&'static str, String)> {
    let files = vec![
        ("top.txt", "top\n".to_string()),
        ("bin/run.sh", "#!/bin/sh\necho run\n".to_string()),
        ("deep/er/data.txt", "line\n".repeat(40_000)),
    ];
    for (rel, text) in &files {
        let path = c.path("payload").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    std::fs::set_permissions(
        c.path("payload/bin/run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    files
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn exec_and_cp_on_three_hosts_one_failing_then_one_unreachable() {
    let mut c = Cluster::new(3);
    exec_groups_each_hosts_output_and_fails_for_one_host(&c);
    cp_a_folder_to_hosts_and_back(&c);
    // host2 goes down: it fails alone, with why.
    c.hosts.hosts[2].kill();
    an_unreachable_host_fails_alone(&c);
    // Nothing recorded: no state, no receipts, no locks.
    assert!(!c.path(".cairn/e2e").exists(), "no state folder");
    assert!(!c.host(1).path("/var/lib/cairn").exists(), "no receipts");
}

/// On every host; host1's command fails. Text, then `--json`.
fn exec_groups_each_hosts_output_and_fails_for_one_host(c: &Cluster) {
    let script = "echo out-$(hostname); echo err-$(hostname) >&2; echo more-$(hostname); [ $(hostname) != host1 ]";
    let out = c.run(&["exec", "--on", "master,worker", "--", script]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        stderr(&out).contains("exec failed on 1 of 3 hosts"),
        "{}",
        stderr(&out)
    );
    let blocks = blocks(&text);
    assert_eq!(blocks.len(), 3, "one block per host:\n{text}");
    for (i, h) in c.hosts.hosts.iter().enumerate() {
        let (header, lines) = blocks
            .iter()
            .find(|(header, _)| header.starts_with(&format!("── {} ({})", h.name, h.address)))
            .unwrap_or_else(|| panic!("no block for {}:\n{text}", h.name));
        let code = i32::from(i == 1);
        assert!(header.contains(&format!(" exit {code} ")), "{header}");
        // Its own output, whole and together: stdout, then stderr.
        let own: Vec<&String> = lines.iter().filter(|l| !l.starts_with("SUMMARY")).collect();
        assert_eq!(
            own,
            [
                &format!("out-{}", h.name),
                &format!("more-{}", h.name),
                &format!("err-{}", h.name)
            ],
            "{text}"
        );
    }
    assert!(
        text.contains("✗ 1 of 3 hosts failed: host1 (exit 1)"),
        "{text}"
    );

    // --json: one object per host and line.
    let out = c.run(&[
        "--json", "exec", "--on", "worker", "--on", "host0", "--", script,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let mut results: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    results.sort_by_key(|r| r["host"].as_str().unwrap().to_string());
    assert_eq!(results.len(), 3, "{}", stdout(&out));
    for (i, r) in results.iter().enumerate() {
        let h = c.host(i);
        assert_eq!(r["host"], h.name.as_str());
        assert_eq!(r["address"], h.address.as_str());
        assert_eq!(r["exit_code"], i32::from(i == 1));
        assert_eq!(r["stdout"], format!("out-{0}\nmore-{0}\n", h.name));
        assert_eq!(r["stderr"], format!("err-{}\n", h.name));
        assert!(r["duration_ms"].is_u64());
        assert!(r["error"].is_null());
    }
}

/// A folder to the workers, then fetched back from one.
fn cp_a_folder_to_hosts_and_back(c: &Cluster) {
    let files = payload(c);
    let out = c.run(&["cp", "--on", "worker", "payload", "/opt/dropped"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    for h in &c.hosts.hosts[1..] {
        for (rel, text) in &files {
            assert_eq!(
                h.read(&format!("/opt/dropped/{rel}")).as_deref(),
                Some(text.as_str()),
                "{rel} on {}",
                h.name
            );
        }
        assert_eq!(mode(&h.path("/opt/dropped/bin/run.sh")), 0o750);
        let leftovers = h.exec("ls -a /opt | grep cairn; ls -a /opt/dropped | grep cairn");
        assert!(stdout(&leftovers).is_empty(), "{}", stdout(&leftovers));
    }
    assert!(!c.host(0).path("/opt/dropped").exists(), "only the workers");
    // Again, into the folder now there (as `cp -r` does), and a file into it.
    let out = c.run(&["cp", "--on", "host1", "payload", "/opt/dropped"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(c.host(1).path("/opt/dropped/payload/top.txt").is_file());
    // A relative DEST is the home's, where steps start.
    let out = c.run(&["cp", "--on", "host1", "payload/top.txt", "rel/top.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        c.host(1).read("/root/rel/top.txt").as_deref(),
        Some("top\n")
    );
    let out = c.run(&["cp", "--on", "host1", "payload/top.txt", "/opt/dropped/"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("/opt/dropped/top.txt: 1 file"),
        "{}",
        stdout(&out)
    );

    let out = c.run(&["cp", "--from", "host2", "/opt/dropped", "back"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    for (rel, text) in &files {
        assert_eq!(
            std::fs::read_to_string(c.path("back").join(rel)).unwrap(),
            *text,
            "{rel} fetched"
        );
    }
    assert_eq!(mode(&c.path("back/bin/run.sh")), 0o750);
    let out = c.run(&["cp", "--from", "worker", "/opt/dropped", "back"]);
    assert_eq!(out.status.code(), Some(1), "two workers: refused");
    assert!(
        stderr(&out).contains("a fetch comes from one"),
        "{}",
        stderr(&out)
    );
    let out = c.run(&["cp", "--from", "host2", "/opt/none", "back"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("no such file or folder"),
        "{}",
        stdout(&out)
    );
}

/// host2 is down: host1 still runs and copies.
fn an_unreachable_host_fails_alone(c: &Cluster) {
    let out = c.run(&["exec", "--on", "worker", "--", "echo alive"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("── host1"), "{text}");
    assert!(text.contains("alive"), "{text}");
    assert!(
        text.contains("host2") && text.contains("unreachable"),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        stderr(&out).contains("exec failed on 1 of 2 hosts (1 unreachable)"),
        "{}",
        stderr(&out)
    );
    let out = c.run(&["cp", "--on", "worker", "payload/top.txt", "/opt/alone.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(c.host(1).read("/opt/alone.txt").as_deref(), Some("top\n"));
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn exec_and_cp_reach_root_through_sudo_with_a_password_and_mask_secrets() {
    const PASSWORD: &str = "ops-secret-pw";
    const TOKEN: &str = "tok-adhoc-never-shown";
    let c = Cluster::with(
        2,
        "user = \"ops\"\nsudo = true\nsudo_password = \"env:E2E_SUDO_PW\"",
        "",
    );
    let file = std::fs::read_to_string(c.path("Clusterfile")).unwrap();
    c.edit(
        "Clusterfile",
        &file.replace(
            "greeting = \"hello\"",
            "greeting = \"hello\"\napi_token = { secret = \"env:E2E_TOKEN\" }",
        ),
    );
    for h in &c.hosts.hosts {
        h.write("/root/token", &format!("token={TOKEN}\n"));
        h.exec("chmod 600 /root/token");
    }
    let run = |args: &[&str]| {
        c.command(args)
            .env("E2E_SUDO_PW", PASSWORD)
            .env("E2E_TOKEN", TOKEN)
            .output()
            .unwrap()
    };

    let out = run(&[
        "exec",
        "--on",
        "master,worker",
        "--",
        "id -u; cat /root/token",
    ]);
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(blocks(&stdout(&out)).len(), 2, "{text}");
    assert!(
        text.contains("0\ntoken=***\n"),
        "root, and the secret masked: {text}"
    );
    assert!(!text.contains(TOKEN) && !text.contains(PASSWORD), "{text}");
    let out = run(&["--json", "exec", "--on", "host1", "--", "cat /root/token"]);
    let text = stdout(&out) + &stderr(&out);
    assert!(text.contains("\"stdout\":\"token=***\\n\""), "{text}");
    assert!(!text.contains(TOKEN) && !text.contains(PASSWORD), "{text}");

    // Copies land as root, where the user could not write.
    std::fs::create_dir_all(c.path("conf")).unwrap();
    std::fs::write(c.path("conf/app.conf"), "a = 1\n").unwrap();
    let out = run(&[
        "cp",
        "--on",
        "worker",
        "conf/app.conf",
        "/etc/adhoc/app.conf",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let meta = std::fs::metadata(c.host(1).path("/etc/adhoc/app.conf")).unwrap();
    assert_eq!(meta.uid(), 0, "shipped as root through sudo");
    let out = run(&["cp", "--from", "host0", "/root/token", "fetched/"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(c.path("fetched/token")).unwrap(),
        format!("token={TOKEN}\n"),
        "a root-only file, fetched through sudo"
    );

    // A wrong password: refused clearly, the password nowhere.
    let out = c
        .command(&["exec", "--on", "host0", "--", "true"])
        .env("E2E_SUDO_PW", "wrong-password")
        .env("E2E_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("sudo"), "{text}");
    assert!(!text.contains("wrong-password"), "{text}");
    let out = c
        .command(&["cp", "--from", "host0", "/root/token", "again"])
        .env("E2E_SUDO_PW", "wrong-password")
        .env("E2E_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("sudo refused"), "{text}");
    assert!(!c.path("again").exists());
}
