//! `cairn plan`: what it lists and why, its exit codes, `--limit`,
//! `--offline`, and saved plans (`plan -o FILE`, then `apply FILE`).

use crate::support::sandbox::Sandbox;
use crate::support::{lines, pairs, stderr, stdout};

#[test]
fn first_plan_lists_every_task_with_its_reason() {
    let s = Sandbox::new();
    let out = s.run(&["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
    assert!(
        !s.path(".cairn").exists() || !s.path(".cairn/fixture/state.json").exists(),
        "plan records nothing"
    );
    assert!(!s.path("out").exists(), "plan runs nothing");
}

#[test]
fn exit_codes_follow_the_contract() {
    let s = Sandbox::new();
    assert_eq!(s.run(&["validate"]).status.code(), Some(0));
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(2),
        "changes → 2"
    );
    s.apply();
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0),
        "no changes → 0"
    );
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode", "--offline"])
            .status
            .code(),
        Some(0)
    );
    s.write("Clusterfile", "version = 1\n");
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(1),
        "error → 1"
    );
    assert_eq!(
        s.run(&["validate", "-f", "nope.toml"]).status.code(),
        Some(1)
    );
}

#[test]
fn one_bundle_file_change_reruns_exactly_its_dependents() {
    let s = Sandbox::new();
    s.apply();
    s.write("web/index.html", "hello again\n");
    let plan = s.run(&["plan"]);
    let text = stdout(&plan);
    assert!(
        text.contains("bundle web: 1 file changed (index.html)"),
        "{text}"
    );
    assert!(
        text.contains("upstream task changed (bundle.web@local)"),
        "{text}"
    );
    assert!(
        text.contains("Changes ignored because the step has `once = true`"),
        "{text}"
    );
    assert_eq!(
        s.planned_actions(),
        pairs(&[
            ("bundle.web@local", "update"),
            ("step.install@local", "update"),
            ("step.announce@local", "update")
        ])
    );
    let out = s.apply();
    assert!(
        stdout(&out).contains("bundle.web@local: updated (1 file shipped (index.html))"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        s.read("out/install.log"),
        "installed hello from cairn\ninstalled hello again\n"
    );
    assert_eq!(lines(&s.read("out/init.log")), 1, "once step not rerun");
    assert_eq!(
        lines(&s.read("out/independent.log")),
        1,
        "unrelated step not rerun"
    );
}

#[test]
fn a_var_change_names_the_var_and_reruns_its_readers() {
    let s = Sandbox::new();
    s.apply();
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    let text = stdout(&s.run(&["plan"]));
    assert!(
        text.contains("var greeting changed (\"hello\" -> \"howdy\")"),
        "{text}"
    );
    assert!(
        text.contains("bundle web: 1 template rendered differently (etc/web.conf)"),
        "{text}"
    );
    s.apply();
    assert_eq!(s.read("out/announce"), "howdy v1\n");
    assert_eq!(s.read("out/motd"), "howdy from fixture\n");
}

#[test]
fn a_saved_plan_applies_only_while_nothing_changed() {
    let s = Sandbox::new();
    let out = s.run(&["plan", "-o", "tonight.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"changed\"",
    );
    let stale = s.run(&["apply", "tonight.plan"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        stderr(&stale).contains("the Clusterfile changed since the plan tonight.plan was made"),
        "{}",
        stderr(&stale)
    );
    assert!(!s.path("out").exists(), "nothing ran");
    s.edit(
        "Clusterfile",
        "greeting = \"changed\"",
        "greeting = \"hello\"",
    );
    let ok = s.run(&["apply", "tonight.plan"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(s.read("out/announce"), "hello v1\n");
}

#[test]
fn limit_leaves_hosts_out() {
    let s = Sandbox::new();
    // Leaving out the only host is a mistake, not "no changes".
    let out = s.run(&["plan", "--limit", "!local"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("--limit !local: leaves no host at all"),
        "{}",
        stderr(&out)
    );
    let bad = s.run(&["plan", "--limit", "nowhere"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--limit nowhere: no host"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn ssh_hosts_plan_offline_and_fail_clearly_when_unreachable() {
    let s = Sandbox::new();
    // Port 1 on loopback: nothing listens there.
    s.write(
        "Clusterfile",
        "version = 1\nname = \"remote\"\n\n[[hosts]]\naddress = \"127.0.0.1:1\"\nroles = [\"node\"]\n\n[[steps]]\nname = \"hello\"\nrun = \"echo hi\"\n",
    );
    let offline = s.run(&["plan", "--offline"]);
    assert_eq!(offline.status.code(), Some(0), "{}", stderr(&offline));
    assert!(
        stdout(&offline).contains("+ step.hello@127.0.0.1:1"),
        "{}",
        stdout(&offline)
    );
    let online = s.run(&["apply", "--auto-approve"]);
    assert_eq!(online.status.code(), Some(1));
    let text = stdout(&online) + &stderr(&online);
    assert!(
        text.contains("127.0.0.1:1: root@127.0.0.1:1: connection refused; is sshd running there"),
        "{text}"
    );
    assert!(text.contains("1 host unreachable"), "{text}");
    assert!(text.contains("The reachable hosts match"), "{text}");

    let list = s.run(&["state", "list"]);
    assert!(
        stdout(&list).contains("No tasks recorded"),
        "{}",
        stdout(&list)
    );
}

/// Two local hosts with the role `master`; `init` runs once on `master[0]`.
fn two_masters(first: &str, second: &str) -> String {
    format!(
        "version = 1\nname = \"masters\"\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"{first}\"\ntransport = \"local\"\nroles = [\"master\"]\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"{second}\"\ntransport = \"local\"\nroles = [\"master\"]\n\n\
         [[steps]]\nname = \"init\"\non = \"master[0]\"\nonce = true\nrun = \"mkdir -p out && echo init >> out/init-${{host.name}}\"\n"
    )
}

#[test]
fn a_once_step_never_moves_to_another_host_silently() {
    let s = Sandbox::new();
    s.write("Clusterfile", &two_masters("a", "b"));
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(s.path("out/init-a").exists());

    // Reordered: `master[0]` is now b. The plan warns; apply refuses.
    s.write("Clusterfile", &two_masters("b", "a"));
    let plan = s.run(&["plan"]);
    let warnings = stderr(&plan);
    assert!(
        warnings.contains("`master[0]` now points at host b; at the last apply it was a"),
        "{warnings}"
    );
    assert!(
        warnings.contains("step init (once = true) would move from a to b"),
        "{warnings}"
    );
    let refused = s.run(&["apply", "--auto-approve"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("--replace step.NAME"),
        "{}",
        stderr(&refused)
    );
    assert!(!s.path("out/init-b").exists(), "nothing ran");

    // Moved on purpose.
    let moved = s.run(&["apply", "--auto-approve", "--replace", "step.init"]);
    assert_eq!(moved.status.code(), Some(0), "{}", stderr(&moved));
    assert!(s.path("out/init-b").exists());
    let again = s.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    assert!(stderr(&again).is_empty(), "{}", stderr(&again));
}
