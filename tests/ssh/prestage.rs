//! A fresh host's first bundle travels with its lock and probe: staged
//! there, and moved into place by its task once the plan has it. A
//! staging no task took is gone when the host's shell ends.

use super::*;

/// `task`'s detail in `events`, as it finished.
fn detail_of(events: &[serde_json::Value], task: &str) -> String {
    finished(events, task).unwrap_or_else(|| panic!("{task} finished: {events:?}"))["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Staging folders left beside or inside the bundle's destination.
fn staging_left(host: &TestHost) -> Vec<String> {
    let out =
        host.exec("ls -a /opt /opt/app /opt/app/current 2>/dev/null | grep cairn-staging || true");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_fresh_hosts_bundle_goes_with_its_probe_and_a_staging_no_task_took_is_removed() {
    let preflight_marker = r#"
[[steps]]
name = "marked"
run = "touch /opt/marked"
check = "test -e /opt/marked"
"#;
    let c = Cluster::with(2, "", preflight_marker);

    // A saved plan made while both hosts are fresh; then host1 is marked
    // by hand, so its part no longer holds (`marked` would be adopted).
    let saved = c.run(&["plan", "-o", "first.plan"]);
    assert_ok(&saved);
    c.host(1).write("/opt/marked", "");
    let out = c.run(&["--json", "apply", "first.plan"]);
    let events = support::events(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        detail_of(&events, "bundle.app@host0").contains("(sent with the probe)"),
        "host0's bundle was staged with its probe and placed by its task: {events:?}"
    );
    assert_converged(&c, 0..1);
    // host1's bundle was staged with its probe too, but its task never ran.
    assert!(
        !ran(&events).iter().any(|t| t.ends_with("@host1")),
        "{events:?}"
    );
    assert_eq!(
        c.host(1).exec("test -e /opt/app").status.code(),
        Some(1),
        "nothing of the bundle on host1, not even its folder"
    );
    assert!(
        staging_left(c.host(1)).is_empty() && staging_left(c.host(0)).is_empty(),
        "no staging left: {:?} {:?}",
        staging_left(c.host(1)),
        staging_left(c.host(0))
    );

    // A new apply: host1 is still fresh to the state, so its bundle goes
    // with its probe; host0's is recorded, and nothing of it ships.
    let events = c.apply_ok();
    assert!(
        detail_of(&events, "bundle.app@host1").contains("(sent with the probe)"),
        "{events:?}"
    );
    assert!(
        finished(&events, "bundle.app@host0").is_none(),
        "{events:?}"
    );
    assert_converged(&c, 0..2);

    // One file changed: the recorded task ships it after the probe, as before.
    c.edit("app/conf/a.conf", "alpha = 2\n");
    let events = c.apply_ok();
    for (i, host) in ["host0", "host1"].into_iter().enumerate() {
        let detail = detail_of(&events, &format!("bundle.app@{host}"));
        assert_eq!(detail, "1 file shipped (conf/a.conf)", "{events:?}");
        assert_eq!(
            c.host(i).read("/opt/app/current/conf/a.conf").as_deref(),
            Some("alpha = 2\n")
        );
    }
    assert!(staging_left(c.host(0)).is_empty() && staging_left(c.host(1)).is_empty());

    // A file dropped from the bundle: removed (the command that removes it
    // also leaves the task's receipt), and the receipt is at the new key.
    let receipt_key = |i: usize| -> String {
        let out = c
            .host(i)
            .exec("cat /var/lib/cairn/e2e/receipts/*bundle.app*.json");
        let receipt: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("the bundle's receipt");
        receipt["key"].as_str().unwrap().to_string()
    };
    let before = receipt_key(0);
    std::fs::remove_file(c.path("app/docs/readme.txt")).unwrap();
    let events = c.apply_ok();
    assert_eq!(
        detail_of(&events, "bundle.app@host0"),
        "nothing to ship, 1 removed",
        "{events:?}"
    );
    assert_eq!(c.host(0).read("/opt/app/current/docs/readme.txt"), None);
    assert_ne!(receipt_key(0), before, "the receipt is at the new key");
    let again = c.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

/// A step that writes the size of the pipe its host's shell reads from
/// (sshd's end of the channel) to `/opt/pipe-size`, after the bundle, in
/// every apply.
const PIPE_SIZE_STEP: &str = r#"
[[steps]]
name = "pipe-size"
after = ["app"]
run = "perl -MFcntl -e 'sysopen my $f, qq{/proc/$ENV{CAIRN_SHELL_PID}/fd/0}, O_RDONLY|O_NONBLOCK or die $!; print fcntl($f, 1032, 0)' > /opt/pipe-size"
check = "false"
"#;

/// Bytes no compressor shrinks, the same every run.
fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_hosts_shell_widens_its_input_before_a_bundle_streams_and_only_then() {
    let c = Cluster::with(2, "", PIPE_SIZE_STEP);
    let pipe_size = || -> u64 {
        let text = c.host(0).read("/opt/pipe-size").expect("the step ran");
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("a size: {text:?}"))
    };
    // Fresh: the bundle goes with the probe, so the lock's shell widens
    // its input first (to 4 MiB, or to pipe-max-size, 1 MiB here, where
    // root lacks CAP_SYS_RESOURCE).
    let events = c.apply_ok();
    assert!(
        detail_of(&events, "bundle.app@host0").contains("(sent with the probe)"),
        "{events:?}"
    );
    assert!(pipe_size() >= 1 << 20, "widened: {}", pipe_size());
    assert_converged(&c, 0..2);

    // Nothing to ship: nothing is widened, no `perl` is started for it.
    c.apply_ok();
    assert_eq!(
        pipe_size(),
        65536,
        "a run that streams nothing keeps the pipe"
    );

    // A recorded host gets a file of 1.5 MB: its stream widens the shell's
    // input just before it, and arrives whole.
    let blob = incompressible(1_500_000);
    std::fs::write(c.path("app/blob.bin"), &blob).unwrap();
    let events = c.apply_ok();
    assert_eq!(
        detail_of(&events, "bundle.app@host0"),
        "1 file shipped (blob.bin)",
        "{events:?}"
    );
    assert!(pipe_size() >= 1 << 20, "widened: {}", pipe_size());
    let on_host = c.host(0).exec("sha256sum < /opt/app/current/blob.bin");
    assert_eq!(
        String::from_utf8_lossy(&on_host.stdout)
            .split_whitespace()
            .next(),
        Some(format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&blob)).as_str())
    );
}
