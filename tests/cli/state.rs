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
    let show = stdout(&s.run(&["state", "show", "step.version@local"]));
    assert!(show.contains("\"captured\": \"v1\""), "{show}");
    let missing = s.run(&["state", "show", "step.nope@local"]);
    assert_eq!(missing.status.code(), Some(1));
}
