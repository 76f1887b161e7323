//! A plan for many hosts: the same change on three hosts or more is one
//! line with the host count and a compact host list; a host whose change
//! differs keeps its own lines; `--expand` and `--json` keep one entry per
//! task.

use std::fmt::Write as _;

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

/// Three more local hosts, `w1`..`w3`, after the fixture's `local`.
fn add_three_hosts(s: &Sandbox) {
    let mut hosts = String::new();
    for i in 1..=3 {
        let _ = write!(
            hosts,
            "[[hosts]]\naddress = \"localhost\"\nname = \"w{i}\"\ntransport = \"local\"\nroles = [\"web\"]\n\n"
        );
    }
    s.edit("Clusterfile", "[[bundles]]", &format!("{hosts}[[bundles]]"));
}

/// Each line with its runs of spaces made one, trimmed.
fn squeezed(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn plan(s: &Sandbox, args: &[&str]) -> String {
    let out = s.run(&[&["plan", "--offline"], args].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn a_change_shared_by_three_hosts_is_one_line_and_a_different_one_keeps_its_own() {
    let s = Sandbox::new();
    s.apply();
    add_three_hosts(&s);
    s.edit("Clusterfile", "greeting = \"hello\"", "greeting = \"hi\"");
    let text = plan(&s, &[]);
    let lines = squeezed(&text);
    assert!(
        lines.contains(&"+ step.install 3 hosts (w1..w3): new host".to_string()),
        "{text}"
    );
    assert!(
        lines
            .contains(&"~ step.install@local upstream task changed (bundle.web@local)".to_string()),
        "{text}"
    );
    assert!(!text.contains("@w1"), "{text}");
    assert!(
        text.contains("Plan: 21 to add, 4 to change, 0 to destroy, 3 unchanged."),
        "{text}"
    );

    let expanded = plan(&s, &["--expand"]);
    for host in ["w1", "w2", "w3"] {
        assert!(
            expanded.contains(&format!("+ step.install@{host} ")),
            "{expanded}"
        );
    }
    assert!(!expanded.contains("3 hosts"), "{expanded}");

    let json = s.plan_json();
    let installs = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["task"].as_str().unwrap().starts_with("step.install@"))
        .count();
    assert_eq!(installs, 4, "one entry per task in the JSON");
}

#[test]
fn two_hosts_sharing_a_change_stay_one_line_each() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "[[bundles]]",
        "[[hosts]]\naddress = \"localhost\"\nname = \"w1\"\ntransport = \"local\"\n\n[[bundles]]",
    );
    let text = plan(&s, &[]);
    assert!(text.contains("+ step.version@local "), "{text}");
    assert!(text.contains("+ step.version@w1 "), "{text}");
    assert!(!text.contains("hosts ("), "{text}");
}
