//! The JSON cairn prints, as a script or a log shipper reads it: every
//! event line and document carries the format's version, the time it was
//! printed (RFC 3339 UTC with milliseconds) and the run id, the same on
//! every line of one run and the name of that apply's task log folder.

use crate::support::sandbox::Sandbox;
use crate::support::{events, stderr, stdout};

/// `2026-12-01T17:40:02.123Z`: a UTC time to the millisecond.
fn is_rfc3339_millis(time: &str) -> bool {
    let b = time.as_bytes();
    time.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..23]
            .into_iter()
            .all(|r| b[r].iter().all(u8::is_ascii_digit))
}

/// Checks the stamp of one line or document; its run id.
fn stamp(value: &serde_json::Value) -> String {
    assert_eq!(value["version"], 1, "{value}");
    let time = value["time"].as_str().unwrap_or_default();
    assert!(is_rfc3339_millis(time), "{value}");
    value["run"].as_str().expect("a run id").to_string()
}

#[test]
fn every_apply_event_carries_version_time_and_the_run_of_its_log_folder() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"echo v1; exit 3\"",
    );
    let out = s.run(&["--json", "apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = events(&out);
    assert_eq!(
        lines.len(),
        stdout(&out).lines().count(),
        "{}",
        stdout(&out)
    );
    assert!(lines.len() > 3, "{}", stdout(&out));
    let runs: Vec<String> = lines.iter().map(stamp).collect();
    assert!(runs.iter().all(|r| *r == runs[0]), "{runs:?}");
    let folders: Vec<String> = std::fs::read_dir(s.path(".cairn/fixture/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders, vec![runs[0].clone()]);
    let times: Vec<&str> = lines.iter().map(|l| l["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn plan_drift_and_exec_documents_carry_version_time_and_run() {
    let s = Sandbox::new();
    stamp(&s.plan_json());
    s.apply();
    let drift = s.run(&["--json", "drift"]);
    stamp(&serde_json::from_slice(&drift.stdout).expect("drift --json is JSON"));
    let exec = s.run(&["--json", "exec", "--on", "local", "--", "echo hi"]);
    assert_eq!(exec.status.code(), Some(0), "{}", stderr(&exec));
    let lines = events(&exec);
    assert_eq!(lines.len(), 1, "{}", stdout(&exec));
    stamp(&lines[0]);
}
