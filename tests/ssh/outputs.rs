//! Saved plans, `--var`, `cairn output` and `cairn show` over SSH: a plan
//! made with a value from outside, applied from another folder; captured
//! values read back, one alone or one line per host.

use super::*;

/// A step on every host that captures its hostname, and one that reads a var.
const CAPTURES: &str = r#"
[[steps]]
name = "whoami"
after = ["install"]
run = "hostname"
capture = "host_name"

[[steps]]
name = "greet"
after = ["install"]
run = "echo ${greeting} > /opt/app/greeting"
"#;

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_saved_plan_with_vars_applies_from_anywhere_and_output_reads_captures() {
    let c = Cluster::with(3, "", CAPTURES);
    std::fs::create_dir(c.path("plans")).unwrap();
    let planned = c.run(&["plan", "--var", "greeting=bonjour", "-o", "plans/x.plan"]);
    assert_eq!(planned.status.code(), Some(0), "{}", stderr(&planned));
    assert!(
        stdout(&planned).contains("To apply exactly this plan: cairn apply plans/x.plan"),
        "{}",
        stdout(&planned)
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let plan = c.path("plans/x.plan");
    let mut apply = cairn(elsewhere.path(), &["apply", plan.to_str().unwrap()]);
    apply.env_remove("SSH_AUTH_SOCK");
    let applied = apply.output().unwrap();
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&applied),
        stderr(&applied)
    );
    for i in 0..3 {
        assert_eq!(
            c.host(i).read("/opt/app/greeting").as_deref(),
            Some("bonjour\n")
        );
    }

    // One value on its one host: the value alone, for $(cairn output token).
    let token = c.run(&["output", "token"]);
    assert_eq!(token.status.code(), Some(0), "{}", stderr(&token));
    assert_eq!(stdout(&token), "token-host0\n");
    // A value per host: one line each.
    let names = c.run(&["output", "host_name"]);
    assert_eq!(names.status.code(), Some(0), "{}", stderr(&names));
    assert_eq!(stdout(&names), "host0\thost0\nhost1\thost1\nhost2\thost2\n");
    let shown = stdout(&c.run(&["show"]));
    assert!(shown.contains("3 hosts"), "{shown}");
    assert!(shown.contains("host_name = host1"), "{shown}");

    // A --var changed since is named as the reason's source.
    let plan = c.run(&["plan", "--var", "greeting=hola"]);
    assert!(
        stdout(&plan).contains("var greeting changed (\"bonjour\" -> \"hola\", from --var)"),
        "{}",
        stdout(&plan)
    );
}
