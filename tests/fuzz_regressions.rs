//! Every input that once crashed a fuzz target, kept in
//! `fuzz/regressions/<target>/`, runs again through the target's own code
//! (`fuzz/src/targets.rs`, shared with the fuzzer) and must not panic. A new
//! crash found by `scripts/fuzz` is fixed in `src/` and its input (from
//! `fuzz/artifacts/<target>/`) added there; see docs/fuzzing.md.

use std::path::{Path, PathBuf};

#[path = "../fuzz/src/targets.rs"]
#[expect(
    unreachable_pub,
    reason = "shared with the fuzz crate, where these items are its public API"
)]
mod targets;

use targets::{ClusterfileTarget, StateTarget};

fn inputs(target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(Path::new("fuzz/regressions").join(target)) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("readable").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
}

#[test]
fn inputs_that_once_crashed_the_fuzz_targets_run_cleanly() {
    let repository = std::fs::canonicalize(".").expect("tests run from the package root");
    let sandbox = tempfile::tempdir().expect("temp dir");
    let clusterfile = ClusterfileTarget::new(&repository, &sandbox.path().join("clusterfile"));
    let state = StateTarget::new(&repository, &sandbox.path().join("state"));
    let mut ran = 0;
    for path in inputs("clusterfile") {
        let data = std::fs::read(&path).expect("readable");
        assert!(clusterfile.run(&data), "{} was skipped", path.display());
        ran += 1;
    }
    for path in inputs("state") {
        state.run(&std::fs::read(&path).expect("readable"));
        ran += 1;
    }
    assert!(ran > 0, "no inputs in fuzz/regressions/");
}
