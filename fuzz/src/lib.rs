//! What cairn's fuzz targets share: their bodies ([`targets`], also run by
//! the main test suite on past crashes) and a private sandbox folder per
//! fuzzing process, under `fuzz/target/sandbox/`.

use std::path::{Path, PathBuf};

pub mod targets;

/// The repository root, whose `fixtures/` and `plans/` fill the sandboxes.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ is inside the repository")
        .to_path_buf()
}

/// A fresh folder for this process, `fuzz/target/sandbox/<name>-<pid>/`.
/// Sandboxes of processes that have ended are removed first, so runs do
/// not pile them up. The pid is zero-padded so that paths, which appear in
/// diagnostics, have the same length in every process.
pub fn sandbox(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sandbox");
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let pid = file_name
                .to_str()
                .and_then(|n| n.rsplit_once('-'))
                .and_then(|(_, pid)| pid.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(format!("{name}-{:010}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("can create the fuzz sandbox");
    std::fs::canonicalize(&dir).expect("the sandbox exists")
}

#[cfg(test)]
mod tests {
    use super::targets::leaves_sandbox;

    #[test]
    fn paths_that_leave_are_caught_and_others_are_not() {
        assert!(leaves_sandbox("[[bundles]]\nsource = \"/\""));
        assert!(leaves_sandbox("[[files]]\nsource = \"a/../../b\""));
        assert!(leaves_sandbox("[[files]]\n\"sour\\u0063e\" = \"~/x\""));
        assert!(leaves_sandbox(
            "[vars]\nx = { secret = \"file:/dev/zero\" }"
        ));
        assert!(leaves_sandbox("x = [{ secret = 'file:../s' }]"));
        assert!(!leaves_sandbox(
            "[[bundles]]\nsource = \"web\"\ndest = \"/srv\""
        ));
        assert!(!leaves_sandbox(
            "[[steps]]\nrun = \"sh bin/build.sh ../releases\""
        ));
        assert!(!leaves_sandbox(
            "[vars]\nx = { secret = \"file:secret.txt\" }"
        ));
        assert!(!leaves_sandbox("source = \"/\" ="));
    }
}
