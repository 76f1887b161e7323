//! `cairn validate` on the fixture: its text and its JSON, valid and not,
//! pinned whole by snapshots with their exit codes, so that a rewrite of
//! validation reproduces them. (What each kind of mistake reads like is in
//! tests/diagnostics.rs.)

use crate::support::sandbox::Sandbox;

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
fn an_invalid_clusterfile_exits_1_with_every_error_on_stderr_even_with_json() {
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
