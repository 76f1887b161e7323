//! The repository itself stays clean: no tracked file over 1 MB (generated
//! data belongs in a temp folder, not in git), and no tracked path with a
//! component starting with `-` (such names are read as options by shell
//! commands; a `--help/` folder of benchmark output was once committed).
//!
//! Needs git and a git checkout: without them this test fails, it does not
//! pass silently.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// Largest tracked file allowed, in bytes (1 MB).
const MAX_FILE_BYTES: u64 = 1_000_000;

/// Every tracked path, relative to the repository root, as git spells it.
fn tracked_files(root: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs git to list the tracked files, and `git` did not run: {e}")
        });
    assert!(
        out.status.success(),
        "`git ls-files -z` failed in {} (this test needs a git checkout): {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let files: Vec<Vec<u8>> = out
        .stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert!(
        !files.is_empty(),
        "`git ls-files -z` listed no tracked files in {}: is it a git checkout?",
        root.display()
    );
    files
}

#[test]
fn tracked_files_are_small_and_not_named_like_options() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = tracked_files(root);

    let mut too_big = Vec::new();
    let mut dashed = Vec::new();
    for path in &files {
        let shown = String::from_utf8_lossy(path);
        if path.split(|&b| b == b'/').any(|c| c.starts_with(b"-")) {
            dashed.push(shown.to_string());
        }
        // A tracked file deleted from the work tree has no size to check.
        if let Ok(meta) = std::fs::symlink_metadata(root.join(OsStr::from_bytes(path)))
            && meta.is_file()
            && meta.len() > MAX_FILE_BYTES
        {
            too_big.push(format!("{shown} ({} bytes)", meta.len()));
        }
    }

    let mut problems = Vec::new();
    if !too_big.is_empty() {
        problems.push(format!(
            "tracked files over {MAX_FILE_BYTES} bytes (generate such data into a temp folder instead):\n  {}",
            too_big.join("\n  ")
        ));
    }
    if !dashed.is_empty() {
        problems.push(format!(
            "tracked paths with a component starting with '-' (read as options by commands):\n  {}",
            dashed.join("\n  ")
        ));
    }
    assert!(
        problems.is_empty(),
        "{} tracked files checked:\n{}",
        files.len(),
        problems.join("\n")
    );
}
