//! Two operators at once: host locks keep them apart, and receipts tell
//! the second what the first did.

use super::*;

#[test]
#[ignore = "needs root and openssh-server for isolated sshd test hosts; scripts/test runs it"]
fn host_locks_keep_two_operators_apart_and_receipts_tell_the_second_what_was_done() {
    let c = Cluster::with(2, "", SLOW);
    // A second operator: the same Clusterfile and bundle, their own local state.
    let second = tempfile::tempdir().unwrap();
    std::fs::copy(c.path("Clusterfile"), second.path().join("Clusterfile")).unwrap();

    for (rel, text) in BUNDLE {
        let path = second.path().join("app").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let as_second = |args: &[&str]| cairn(second.path(), args).output().unwrap();
    let first = c
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(c.host(0), "/tmp/slow-started");
    let refused = as_second(&["apply", "--auto-approve"]);
    let text = stdout(&refused) + &stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("locked by another apply"), "{text}");
    assert!(
        text.contains("cairn apply"),
        "names the owner's command: {text}"
    );
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The second operator's plan: the steps were done, says each host's receipts.
    let plan = as_second(&["plan"]);
    assert!(
        stdout(&plan).contains("done on the host by"),
        "{}",
        stdout(&plan)
    );
    let second_apply = as_second(&["--json", "apply", "--auto-approve"]);
    assert_eq!(second_apply.status.code(), Some(0));
    let events = events(&second_apply);
    assert!(
        events
            .iter()
            .any(|e| e["task"] == "step.init@host0" && e["outcome"] == "adopted"),
        "init (once) is never run twice: {events:?}"
    );
    assert_eq!(c.host(0).read("/opt/app/token").unwrap(), "token-host0\n");

    // A lock left behind by a holder that died is reported with its owner, and taken over.
    c.host(1).write(
        "/var/lib/cairn/e2e/lock.owner",
        "{\"pid\":4242,\"host\":\"laptop\",\"user\":\"alice\",\"command\":\"cairn apply\",\"started_at\":\"2026-01-01T00:00:00Z\"}\n",
    );
    let out = c.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains(
            "stale lock left by alice@laptop (pid 4242, `cairn apply`, started 2026-01-01T00:00:00Z)"
        ),
        "{}",
        stderr(&out)
    );
}
