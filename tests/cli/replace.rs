//! `--replace`: the replaced task and everything downstream of it rerun, a
//! value captured again reaches the steps that read it, and a replace that
//! did not finish is kept in the state and planned again until it has run.

use std::process::Stdio;

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout, wait_until};

/// A step that captures the version in `version.txt`, one that deploys it
/// (slowly, once, while the marker file `slow-once` exists), and one after
/// that fails once while the marker file `fail-once` exists.
const CLUSTERFILE: &str = r#"version = 1
name = "replace"

[[hosts]]
address = "localhost"
name = "local"
transport = "local"

[[steps]]
name = "version"
run = "cat version.txt"
capture = "app_version"

[[steps]]
name = "deploy"
after = ["version"]
run = "mkdir -p out && echo ${app_version} > out/deployed; if [ -f slow-once ]; then rm slow-once; touch out/deploy-started; sleep 2; fi"

[[steps]]
name = "smoke"
after = ["deploy"]
run = "if [ -f fail-once ]; then rm fail-once; exit 3; fi; mkdir -p out && echo ran >> out/smoke.log"
"#;

fn sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.write("Clusterfile", CLUSTERFILE);
    s.write("version.txt", "v1\n");
    s.apply();
    assert_eq!(s.read("out/deployed"), "v1\n");
    s
}

#[test]
fn a_replaced_capture_reaches_the_step_that_reads_it() {
    let s = sandbox();
    s.write("version.txt", "v2\n");
    let plan = stdout(&s.run(&["plan", "--replace", "step.version"]));
    assert!(
        plan.contains("-/+ step.version@local  forced by --replace")
            && plan.contains("~ step.deploy@local   upstream task replaced (step.version@local)")
            && plan.contains("~ step.smoke@local    upstream task reruns (step.deploy@local)"),
        "{plan}"
    );
    let out = s.run(&["apply", "--auto-approve", "--replace", "step.version"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(s.read("out/deployed"), "v2\n", "the new value was deployed");
    assert_eq!(s.read("out/smoke.log"), "ran\nran\n");
    let after = stdout(&s.run(&["plan"]));
    assert!(after.contains("No changes."), "{after}");
    assert!(
        !s.state_text().contains("\"reruns\""),
        "nothing left to rerun"
    );
}

#[test]
fn a_replace_that_failed_downstream_is_planned_again_until_it_has_run() {
    let s = sandbox();
    s.write("version.txt", "v2\n");
    s.write("fail-once", "");
    let failed = s.run(&["apply", "--auto-approve", "--replace", "step.version"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
    assert_eq!(s.read("out/deployed"), "v2\n");
    assert_eq!(s.read("out/smoke.log"), "ran\n", "smoke failed this time");

    let plan = s.run(&["plan", "--detailed-exitcode"]);
    let text = stdout(&plan);
    assert_eq!(plan.status.code(), Some(2), "{text}");
    assert!(
        text.contains("~ step.smoke@local  rerun required by an earlier apply (not finished)")
            && !text.contains("step.deploy@local")
            && !text.contains("step.version@local"),
        "only what did not run: {text}"
    );
    s.apply();
    assert_eq!(s.read("out/smoke.log"), "ran\nran\n");
    let done = stdout(&s.run(&["plan"]));
    assert!(done.contains("No changes."), "{done}");
}

#[test]
fn a_replaced_task_that_failed_is_replaced_by_the_next_apply() {
    let s = sandbox();
    s.write("fail-once", "");
    let failed = s.run(&["apply", "--auto-approve", "--replace", "step.smoke@local"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
    let plan = stdout(&s.run(&["plan"]));
    assert!(
        plan.contains("-/+ step.smoke@local  replace requested by an earlier apply (not finished)"),
        "{plan}"
    );
    let out = s.apply();
    assert!(
        stdout(&out).contains("-/+ step.smoke@local"),
        "{}",
        stdout(&out)
    );
    assert_eq!(s.read("out/smoke.log"), "ran\nran\n");
    let done = stdout(&s.run(&["plan"]));
    assert!(done.contains("No changes."), "{done}");
}

#[test]
fn a_replace_interrupted_is_finished_by_the_next_apply() {
    let s = sandbox();
    s.write("version.txt", "v2\n");
    s.write("slow-once", "");
    let child = s
        .command(&["apply", "--auto-approve", "--replace", "step.version"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the deploy starts", || {
        s.path("out/deploy-started").exists()
    });
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Apply interrupted."),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        s.read("out/deployed"),
        "v2\n",
        "the running deploy finished"
    );
    assert_eq!(s.read("out/smoke.log"), "ran\n", "smoke did not start");

    let plan = stdout(&s.run(&["plan"]));
    assert!(
        plan.contains("~ step.smoke@local  rerun required by an earlier apply (not finished)")
            && plan.contains("Plan: 0 to add, 1 to change, 0 to destroy"),
        "{plan}"
    );
    s.apply();
    assert_eq!(s.read("out/smoke.log"), "ran\nran\n");
    let done = stdout(&s.run(&["plan"]));
    assert!(done.contains("No changes."), "{done}");
}
