//! Drift: changes made on the host by hand, as `plan` finds them and
//! `apply` repairs them; and `cairn drift`, whose text, JSON and exit code
//! are pinned whole by snapshots in each state a host can be in (in sync,
//! drifted, pending), so that a rewrite of drift reproduces them.

use std::process::Output;

use crate::support::sandbox::Sandbox;
use crate::support::stdout;

/// Runs `cairn drift` and `cairn drift --json`, checks that both exit
/// `code` and that the JSON parses, and snapshots both transcripts as
/// `NAME` and `NAME_json`.
fn drift_snapshots(s: &Sandbox, name: &str, code: i32) {
    let check = |args: &[&str]| -> Output {
        let out = s.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}:\n{}",
            s.transcript(&out)
        );
        out
    };
    let text = check(&["drift"]);
    let json = check(&["drift", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&json.stdout).expect("drift --json is JSON");
    insta::assert_snapshot!(name.to_string(), s.transcript(&text));
    insta::assert_snapshot!(format!("{name}_json"), s.transcript(&json));
}

#[test]
fn changes_made_on_the_host_are_found_and_repaired() {
    let s = Sandbox::new();
    s.apply();
    s.write("out/web/index.html", "defaced\n");
    std::fs::write(s.path("out/web/extra.txt"), "mine\n").unwrap();
    let plan = stdout(&s.run(&["plan"]));
    assert!(
        plan.contains("~ bundle.web@local") && plan.contains("changed on the host: index.html"),
        "{plan}"
    );
    let offline = stdout(&s.run(&["plan", "--offline"]));
    assert!(
        offline.contains("No changes") && offline.contains("offline"),
        "offline plans do not look: {offline}"
    );
    s.apply();
    assert_eq!(s.read("out/web/index.html"), "hello from cairn\n");
    assert_eq!(
        s.read("out/web/extra.txt"),
        "mine\n",
        "files cairn did not ship are kept"
    );
}

#[test]
fn drift_right_after_an_apply_is_in_sync_and_exits_0() {
    let s = Sandbox::new();
    s.apply();
    drift_snapshots(&s, "in_sync", 0);
}

#[test]
fn drift_names_files_edited_by_hand_exits_2_and_repairs_nothing() {
    let s = Sandbox::new();
    s.apply();
    // One file shipped by a bundle, one by a [[files]] entry (whose reason
    // names its dest, the sandbox's path: redacted).
    s.write("out/web/index.html", "defaced\n");
    s.write("out/motd", "edited by hand\n");
    drift_snapshots(&s, "edited_by_hand", 2);
    assert_eq!(s.read("out/web/index.html"), "defaced\n", "read-only");
    assert_eq!(s.read("out/motd"), "edited by hand\n", "read-only");
}

#[test]
fn drift_lists_a_change_not_applied_yet_as_pending_and_exits_2() {
    let s = Sandbox::new();
    s.apply();
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    drift_snapshots(&s, "pending", 2);
    assert_eq!(s.read("out/motd"), "hello from fixture\n", "read-only");
}
