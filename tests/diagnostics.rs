//! What a user sees for each broken Clusterfile in fixtures/broken: the full
//! miette report, snapshotted (insta), with the only machine-specific part,
//! the checkout's absolute path, redacted.

use std::path::{Path, PathBuf};

fn broken_fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("fixtures/broken")
        .expect("tests run from the package root")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_broken_fixture_is_reported_with_spans_and_help() {
    let root = std::fs::canonicalize(".")
        .expect("cwd")
        .display()
        .to_string();
    let fixtures = broken_fixtures();
    assert!(fixtures.len() >= 15, "the broken fixtures are there");
    for path in fixtures {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let Err(error) = cairn::pipeline::Loaded::read(&path).and_then(|loaded| loaded.check())
        else {
            panic!("{} should not validate", path.display())
        };
        let text = cairn::diagnostic::render_plain(&error).replace(&root, "[ROOT]");
        // Every problem points into the file, except those about the whole file.
        assert!(
            text.contains(&format!("[{}:", path.display())),
            "{name}: no span in\n{text}"
        );
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn binary_exits_1_and_prints_file_line_and_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["validate", "--no-color", "-f", "fixtures/broken/cycle.toml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("circular dependency a -> c -> b -> a"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fixtures/broken/cycle.toml:20:10"),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: remove one of these `after` entries"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn invalid_clusterfile_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Clusterfile");
    std::fs::write(&file, "version = 1\nname = \"x\"\n[[hosts]]\naddress = \"localhost\"\ntransport = \"local\"\n[[steps]]\nname = \"a\"\nrun = \"touch ran\"\nafter = [\"nope\"]\n").unwrap();
    for args in [vec!["plan"], vec!["apply", "--auto-approve"], vec!["graph"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("Clusterfile")],
        "no state, no output, nothing run"
    );
    assert!(!Path::new(&dir.path().join("ran")).exists());
}
