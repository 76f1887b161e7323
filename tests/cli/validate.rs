//! `cairn validate` on the fixture: its text and its JSON, valid and not,
//! pinned whole by snapshots with their exit codes, so that a rewrite of
//! validation reproduces them; and the JSON diagnostics' fields (1-based
//! line and column, message, label, help). (What each kind of mistake reads like is in
//! tests/diagnostics.rs.)

use crate::support::sandbox::Sandbox;
use crate::support::stderr;

#[test]
fn validate_says_what_it_checked_in_text_and_json() {
    let s = Sandbox::new();
    let text = s.run(&["validate"]);
    assert_eq!(text.status.code(), Some(0), "{}", s.transcript(&text));
    insta::assert_snapshot!("valid", s.transcript(&text));

    let json = s.run(&["validate", "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", s.transcript(&json));
    serde_json::from_slice::<serde_json::Value>(&json.stdout).expect("validate --json is JSON");
    insta::assert_snapshot!("valid_json", s.transcript(&json));
}

#[test]
fn an_invalid_clusterfile_exits_1_with_every_error_on_stderr_or_as_json() {
    let s = Sandbox::new();
    // Two unrelated mistakes: both are reported.
    s.edit(
        "Clusterfile",
        "content = \"${greeting} from ${cluster}\\n\"",
        "content = \"${greting} from ${cluster}\\n\"",
    );
    s.edit(
        "Clusterfile",
        "name = \"init\"\nafter = [\"install\"]",
        "name = \"init\"\nafter = [\"instal\"]",
    );
    let text = s.run(&["validate"]);
    assert_eq!(text.status.code(), Some(1), "{}", s.transcript(&text));
    insta::assert_snapshot!("invalid", s.transcript(&text));

    let json = s.run(&["validate", "--json"]);
    assert_eq!(json.status.code(), Some(1), "{}", s.transcript(&json));
    insta::assert_snapshot!("invalid_json", s.transcript(&json));
}

#[test]
fn validate_json_of_an_invalid_clusterfile_is_diagnostics_with_line_and_column() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "name = \"init\"\nafter = [\"install\"]",
        "name = \"init\"\nafter = [\"instal\"]\ntimout = \"5s\"",
    );
    let out = s.run(&["validate", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", s.transcript(&out));
    let document: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("validate --json is JSON even when invalid");
    assert_eq!(document["version"], 1);
    assert_eq!(document["valid"], false);
    let diagnostics = document["diagnostics"].as_array().expect("a list");
    // The unknown key loses its step, so its `after` is not also reported.
    assert_eq!(diagnostics.len(), 1, "{document:#}");
    let d = &diagnostics[0];
    let text = s.read("Clusterfile");
    let line = text
        .lines()
        .position(|l| l.starts_with("timout"))
        .expect("edited")
        + 1;
    assert_eq!(d["file"], "Clusterfile");
    assert_eq!(d["line"], line);
    assert_eq!(d["column"], 1);
    assert_eq!(d["end_line"], line);
    assert_eq!(d["end_column"], 7);
    assert_eq!(d["severity"], "error");
    assert_eq!(d["message"], "unknown key `timout`");
    assert_eq!(d["label"], "not allowed here");
    assert!(
        d["help"]
            .as_str()
            .is_some_and(|h| h.starts_with("did you mean `timeout`?")),
        "{d}"
    );
}

#[test]
fn validate_json_of_a_missing_clusterfile_is_one_diagnostic_without_a_place() {
    let s = Sandbox::new();
    let out = s.run(&["validate", "--json", "-f", "nowhere.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", s.transcript(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(document["valid"], false);
    assert_eq!(document["diagnostics"][0]["line"], serde_json::Value::Null);
    assert!(
        document["diagnostics"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nowhere.toml")),
        "{document}"
    );
}

#[test]
fn a_bundle_lost_to_its_own_error_is_not_reported_again_where_its_dest_is_read() {
    let s = Sandbox::new();
    s.write(
        "Clusterfile",
        "version = 1\nname = \"one\"\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[bundles]]\nname = \"web\"\nsource = \"web\"\nsorce = \"typo\"\n\n\
         [[steps]]\nname = \"use\"\nrun = \"ls ${bundle.web.dest}\"\n",
    );
    let out = s.command(&["validate"]).output().unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("unknown key `sorce`"), "{text}");
    assert!(!text.contains("names no bundle"), "{text}");
    assert!(text.contains("has 1 error"), "{text}");
}
