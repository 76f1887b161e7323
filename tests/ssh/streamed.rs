//! An apply that asks nobody streams: a host's tasks start as soon as its
//! own probe is back, not when the slowest host's is; the plan is still
//! shown whole before the run's events; a saved plan is checked host by
//! host, and a host whose part no longer holds does not run. While the
//! plan waits for a slow probe, plain output says how far the apply is
//! once the wait is long, and `--json` prints nothing but its events.

use super::*;

/// When `path` on `host` was written, as `date +%s.%N` wrote it there.
fn time_in(host: &TestHost, path: &str) -> f64 {
    let text = host
        .read(path)
        .unwrap_or_else(|| panic!("{path} on {}", host.name));
    text.trim().parse().expect("a time in seconds")
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_host_works_while_another_is_still_probed_and_a_saved_plan_is_checked_host_by_host() {
    // host1's probe takes 4 s (its check sleeps); host0's work does not wait for it.
    let slow_probe = r#"
[[steps]]
name = "slowprobe"
run = "true"
check = "if [ ${host.name} = host1 ]; then sleep 4; date +%s.%N > /opt/probe-end; fi; exit 1"

[[steps]]
name = "mark"
on = ["master"]
after = ["install"]
run = "date +%s.%N > /opt/mark"
"#;
    let c = Cluster::with(2, "", slow_probe);
    let (events, code, out) = c.apply_events(&[]);
    assert_eq!(code, Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_converged(&c, 0..2);
    let marked = time_in(c.host(0), "/opt/mark");
    let probed = time_in(c.host(1), "/opt/probe-end");
    assert!(
        marked < probed,
        "host0 shipped, installed and ran `mark` ({marked}) before host1's probe ended ({probed})"
    );
    // The whole plan first, then the run, as an apply that waits shows them.
    assert_eq!(events[0]["event"], "plan", "{events:?}");
    let planned: Vec<&str> = events[0]["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["task"].as_str().unwrap())
        .collect();
    for task in ["step.mark@host0", "step.join@host1", "bundle.app@host1"] {
        assert!(planned.contains(&task), "{task} in the plan: {planned:?}");
    }
    assert_eq!(events[1]["event"], "run_started", "{events:?}");
    let to_run = events[0]["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "noop" || c["adopt"] == true)
        .count();
    assert_eq!(events[1]["tasks"], to_run, "{events:?}");

    a_saved_plan_is_checked_host_by_host(&c);
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_long_wait_for_the_plan_is_told_in_plain_output_and_json_is_unchanged() {
    // host1's probe takes 11 s, longer than plain output waits (10 s)
    // before it tells how far the apply is, and shorter than its next line (40 s).
    let slow_probe = r#"
[[steps]]
name = "slowprobe"
run = "true"
check = "if [ ${host.name} = host1 ]; then sleep 11; fi; exit 1"
"#;
    let c = Cluster::with(2, "", slow_probe);
    let out = c.run(&["apply", "--auto-approve"]);
    assert_ok(&out);
    let text = stdout(&out);
    let told: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("planning: "))
        .collect();
    assert_eq!(told.len(), 1, "one line of a long wait:\n{text}");
    assert!(
        told[0].starts_with("planning: 1 of 2 hosts probed · ")
            && told[0].contains(" running (the plan shows once every host is in)"),
        "{text}"
    );
    let plan = text.find("will perform these actions").expect("the plan");
    assert!(text.find("planning: ").unwrap() < plan, "{text}");
    assert_converged(&c, 0..2);

    // The same wait with --json: every line an event, the plan first.
    let out = c.run(&["--json", "apply", "--auto-approve"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{text}"
    );
    let events = support::events(&out);
    assert_eq!(events[0]["event"], "plan", "{events:?}");
    assert_eq!(events[1]["event"], "run_started", "{events:?}");
    assert!(!stderr(&out).contains("planning"), "{}", stderr(&out));
}

/// A saved plan on `c`'s two hosts: host1 changed after it was made, host0
/// did not; host0 runs, host1 does not, and the apply ends refused.
fn a_saved_plan_is_checked_host_by_host(c: &Cluster) {
    c.edit("Clusterfile", &clusterfile(&c.hosts, "", ""));
    assert_ok(&c.run(&["apply", "--auto-approve"]));
    std::fs::write(c.path("app/docs/readme.txt"), "the app, version 2\n").unwrap();
    let saved = c.run(&["plan", "-o", "tonight.plan"]);
    assert_ok(&saved);
    c.host(1)
        .write("/opt/app/current/conf/b.conf", "beta = 3\n");
    let out = c.run(&["--json", "apply", "tonight.plan"]);
    let events = support::events(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the saved plan tonight.plan no longer matches")
            && stderr(&out).contains("bundle.app@host1"),
        "{}",
        stderr(&out)
    );
    assert!(
        finished(&events, "bundle.app@host0").is_some(),
        "host0's part held: it ran\n{}",
        stdout(&out)
    );
    assert_eq!(
        c.host(0)
            .read("/opt/app/current/docs/readme.txt")
            .as_deref(),
        Some("the app, version 2\n")
    );
    let refused: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "task_skipped" && e["host"] == "host1")
        .collect();
    assert!(
        refused.iter().any(|e| e["task"] == "bundle.app@host1"
            && e["reason"]
                .as_str()
                .unwrap()
                .contains("the saved plan no longer holds for host host1")),
        "host1's tasks are refused, saying why: {events:?}"
    );
    assert!(
        ran(&events).iter().all(|task| !task.ends_with("@host1")),
        "nothing ran on host1: {events:?}"
    );
    assert_eq!(
        c.host(1)
            .read("/opt/app/current/docs/readme.txt")
            .as_deref(),
        Some("the app\n"),
        "host1 untouched"
    );

    // A new plan repairs host1 and finishes the change there.
    assert_ok(&c.run(&["apply", "--auto-approve"]));
    assert_eq!(
        c.host(1).read("/opt/app/current/conf/b.conf").as_deref(),
        Some("beta = 2\n")
    );
    assert_eq!(
        c.host(1)
            .read("/opt/app/current/docs/readme.txt")
            .as_deref(),
        Some("the app, version 2\n")
    );
    let again = c.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}
