//! `cairn state list` and `cairn state show`: what an apply recorded, read
//! back, after the JSON forms of the plan and the apply that recorded it.

use crate::support::sandbox::Sandbox;
use crate::support::stdout;

#[test]
fn json_outputs_are_parseable() {
    let s = Sandbox::new();
    let plan = s.plan_json();
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["summary"]["add"], 7);
    let out = s.run(&["apply", "--auto-approve", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(events.first().unwrap()["event"], "plan");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "task_finished")
            .count(),
        7
    );
    let list: serde_json::Value =
        serde_json::from_slice(&s.run(&["state", "list", "--json"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 7);
    let show = stdout(&s.run(&["state", "show", "step.version@local", "--json"]));
    assert!(show.contains("\"captured\": \"v1\""), "{show}");
    let missing = s.run(&["state", "show", "step.nope@local"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn state_rm_forgets_without_touching_the_host() {
    let s = Sandbox::new();
    assert_eq!(s.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    let unknown = s.run(&["state", "rm", "nowhere"]);
    assert_eq!(unknown.status.code(), Some(1));
    let text = crate::support::stderr(&unknown);
    assert!(text.contains("neither a host nor a task"), "{text}");
    assert!(text.contains("hosts the state knows: local"), "{text}");

    let out = s.run(&["state", "rm", "step.init@local"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::stderr(&out)
    );
    assert!(
        stdout(&out).contains("Forgot task step.init@local"),
        "{}",
        stdout(&out)
    );
    // Nothing was undone on the host, and its receipt there shows the
    // `once` step done: the next plan records it again without running it.
    assert_eq!(s.read("out/init.log"), "init\n");
    let plan = stdout(&s.run(&["plan"]));
    assert!(
        plan.contains("= step.init@local  done on the host"),
        "{plan}"
    );

    let out = s.run(&["state", "rm", "local"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("Forgot host local and its 6 tasks"),
        "{}",
        stdout(&out)
    );
    let list = stdout(&s.run(&["state", "list"]));
    assert!(list.contains("No tasks recorded"), "{list}");
}

#[test]
fn reset_undoes_everything_and_empties_the_state() {
    let s = Sandbox::new();
    assert_eq!(s.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    assert!(s.path("out/init.log").exists());
    let out = s.run(&["reset", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        crate::support::stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("7 to destroy"), "{text}");
    assert!(!s.path("out/init.log").exists(), "the undo ran");
    assert!(!s.path("out/motd").exists(), "shipped files are removed");
    assert!(
        !s.path("out/web/bin/install.sh").exists(),
        "the bundle is removed"
    );
    assert!(
        !s.path(".cairn/fixture/receipts/local").exists(),
        "receipts are removed"
    );
    let list = stdout(&s.run(&["state", "list"]));
    assert!(list.contains("No tasks recorded"), "{list}");
    // Nothing left to reset; a second reset changes nothing.
    let again = s.run(&["reset", "--auto-approve"]);
    assert_eq!(again.status.code(), Some(0));
}

/// A state written when unnamed hosts were named by position (version 2,
/// `web0`) is migrated on load: the host is matched by address and takes
/// its name by address; nothing reruns, and the next apply stores it so.
#[test]
fn a_version_2_state_is_migrated_to_names_by_address() {
    let s = Sandbox::new();
    s.edit("Clusterfile", "name = \"local\"", "name = \"web0\"");
    assert_eq!(s.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    // Make it what cairn 2 wrote: version 2, no host records, and the host
    // named by its role and position, which the Clusterfile does not say.
    let path = s.path(".cairn/fixture/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    state["version"] = 2.into();
    state.as_object_mut().unwrap().remove("hosts");
    state.as_object_mut().unwrap().remove("positions");
    std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    s.edit("Clusterfile", "name = \"web0\"\n", "");

    let plan = s.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "nothing reruns: {}",
        stdout(&plan)
    );
    let list = stdout(&s.run(&["state", "list"]));
    assert!(list.contains("step.init@localhost"), "{list}");
    assert!(!list.contains("web0"), "{list}");

    // An apply stores the migrated state.
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::stderr(&out)
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["version"], 3);
    assert!(
        written["tasks"]["step.init@localhost"].is_object(),
        "{written}"
    );
}
