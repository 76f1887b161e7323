//! `cairn output [NAME]`, `cairn show` (the state per host) and `cairn
//! state show TASK` (readable, `--json` for the record): what an apply
//! recorded, read back, secrets masked.

use crate::support::sandbox::Sandbox;
use crate::support::{stderr, stdout};

#[test]
fn output_prints_one_value_for_scripts_and_all_of_them() {
    let s = Sandbox::new();
    let none = s.run(&["output"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("no captured values recorded for cluster `fixture` yet"),
        "{}",
        stderr(&none)
    );
    assert!(
        stderr(&none).contains("run `cairn apply`"),
        "{}",
        stderr(&none)
    );
    s.apply();
    let one = s.run(&["output", "version"]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert_eq!(stdout(&one), "v1\n");
    let all = s.run(&["output"]);
    assert_eq!(stdout(&all), "version = v1\n");
    let json: serde_json::Value =
        serde_json::from_slice(&s.run(&["output", "--json"]).stdout).unwrap();
    assert_eq!(json["version"], 1, "stamped: {json}");
    assert!(
        json["time"].is_string() && json["run"].is_string(),
        "{json}"
    );
    assert_eq!(json["outputs"]["version"]["value"], "v1");
    assert_eq!(json["outputs"]["version"]["hosts"]["local"], "v1");
    let typo = s.run(&["output", "versoin"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        stderr(&typo).contains("did you mean `version`?"),
        "{}",
        stderr(&typo)
    );
}

#[test]
fn output_differing_per_host_gives_a_line_per_host() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "[[bundles]]",
        "[[hosts]]\naddress = \"127.0.0.1\"\nname = \"other\"\ntransport = \"local\"\nroles = [\"web\"]\n\n[[bundles]]",
    );
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"echo v-${host.name}\"",
    );
    s.apply();
    let one = s.run(&["output", "version"]);
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert_eq!(stdout(&one), "local\tv-local\nother\tv-other\n");
    let all = stdout(&s.run(&["output"]));
    assert!(all.contains("version (differs per host)"), "{all}");
    assert!(all.contains("  other  v-other"), "{all}");
}

#[test]
fn a_captured_secret_stays_masked() {
    let s = Sandbox::new();
    s.add_token_secret();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"echo v1-${token}\"",
    );
    let secret = "hunter22secret";
    let apply = s
        .command(&["apply", "--auto-approve"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    for args in [
        &["output"][..],
        &["output", "version", "--json"],
        &["output", "--json"],
        &["show"],
        &["show", "--json"],
        &["state", "show", "step.version@local"],
        &["state", "show", "step.version@local", "--json"],
    ] {
        let out = s
            .command(args)
            .env("CAIRN_TEST_TOKEN", secret)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains(secret), "{args:?} leaks the secret: {text}");
        assert!(text.contains("v1-***"), "{args:?} masks it: {text}");
    }
    // A script asking for the value alone gets an error, never `***`
    // (with or without the secret's source set).
    for env in [Some(secret), None] {
        let mut command = s.command(&["output", "version"]);
        if let Some(secret) = env {
            command.env("CAIRN_TEST_TOKEN", secret);
        }
        let alone = command.output().unwrap();
        assert_eq!(alone.status.code(), Some(1), "{}", stdout(&alone));
        assert!(stdout(&alone).is_empty(), "{}", stdout(&alone));
        assert!(
            stderr(&alone).contains("`version` holds a secret, which cairn output does not print"),
            "{}",
            stderr(&alone)
        );
    }
    // Without the secret's source, the state alone is read, and says so.
    for args in [
        &["show"][..],
        &["state", "list"],
        &["state", "show", "step.version@local"],
    ] {
        let bare = s.run(args);
        assert_eq!(bare.status.code(), Some(0), "{args:?}: {}", stderr(&bare));
        assert!(
            stderr(&bare).contains("the state read alone"),
            "{args:?}: {}",
            stderr(&bare)
        );
    }
    let bare = s.run(&["output"]);
    assert_eq!(bare.status.code(), Some(0), "{}", stderr(&bare));
    assert!(stdout(&bare).contains("v1-***"), "{}", stdout(&bare));
    assert!(
        stderr(&bare).contains("values read from the state alone"),
        "{}",
        stderr(&bare)
    );
}

#[test]
fn show_alone_summarises_the_state_per_host() {
    let s = Sandbox::new();
    let empty = s.run(&["show"]);
    assert_eq!(empty.status.code(), Some(0));
    assert!(
        stdout(&empty).contains("Nothing recorded for cluster `fixture` yet"),
        "{}",
        stdout(&empty)
    );
    s.apply();
    let shown = s.run(&["show"]);
    let text = stdout(&shown);
    assert!(
        text.starts_with("Cluster `fixture`: 1 host, 7 tasks recorded"),
        "{text}"
    );
    assert!(text.contains("\nlocal  localhost (local)\n"), "{text}");
    let version = text
        .lines()
        .find(|l| l.trim_start().starts_with("step.version "))
        .unwrap_or_else(|| panic!("no step.version line: {text}"));
    assert!(version.contains("done"), "{version}");
    assert!(version.ends_with("version = v1"), "{version}");
    let json: serde_json::Value =
        serde_json::from_slice(&s.run(&["show", "--json"]).stdout).unwrap();
    assert_eq!(json["cluster"], "fixture");
    assert_eq!(json["hosts"][0]["name"], "local");
    assert_eq!(json["hosts"][0]["tasks"].as_array().unwrap().len(), 7);
}

#[test]
fn state_show_is_readable_and_json_on_request() {
    let s = Sandbox::new();
    s.apply();
    let text = stdout(&s.run(&["state", "show", "step.announce@local"]));
    assert!(text.starts_with("step.announce@local\n  key "), "{text}");
    assert!(
        text.contains("\n  run       echo ${greeting} ${version} > out/announce\n"),
        "{text}"
    );
    assert!(text.contains("\n    greeting = hello\n"), "{text}");
    assert!(text.contains("\n    step.version@local  "), "{text}");
    let captured = stdout(&s.run(&["state", "show", "step.version@local"]));
    assert!(
        captured.contains("\n  captured  version = v1\n"),
        "{captured}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &s.run(&["state", "show", "step.version@local", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(json["record"]["detail"]["captured"], "v1");
    let files = stdout(&s.run(&["state", "show", "bundle.web@local"]));
    assert!(files.contains("  shipped   "), "{files}");
}
