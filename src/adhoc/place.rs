//! Moving a fetched file or folder from its staging folder into place, on
//! this machine, so no half-written file is ever where the user looks.
//!
//! Everything has arrived whole in a staging folder beside the destination
//! (same filesystem) before anything moves; each file is flushed to disk,
//! then renamed into place. A destination that does not exist yet gets the
//! whole staged file or folder in one rename; an existing folder gets each
//! file renamed over its old version, and keeps the files the copy does not
//! have, as `cp -r` does.

use std::path::Path;

/// Moves `payload` (a file, link or folder) to `target`; returns the
/// number of files and their bytes.
pub(super) fn place(payload: &Path, target: &Path) -> Result<(usize, u64), String> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        format!("failed to {what} {}: {e}", path.display())
    };
    // (path under payload, is a folder), parents before what they hold.
    let mut entries: Vec<(std::path::PathBuf, bool)> = Vec::new();
    let (mut files, mut bytes) = (0, 0);
    for entry in walkdir::WalkDir::new(payload).sort_by_file_name() {
        let entry = entry.map_err(|e| format!("failed to read {}: {e}", payload.display()))?;
        let rel = entry
            .path()
            .strip_prefix(payload)
            .expect("under its root")
            .to_path_buf();
        let kind = entry.file_type();
        if kind.is_file() {
            files += 1;
            bytes += entry.metadata().map_or(0, |m| m.len());
            std::fs::File::open(entry.path())
                .and_then(|f| f.sync_all())
                .map_err(|e| io("write", entry.path(), e))?;
        }
        entries.push((rel, kind.is_dir()));
    }
    let target_exists = std::fs::symlink_metadata(target).is_ok();
    if !target_exists || !payload.is_dir() || payload.is_symlink() {
        std::fs::rename(payload, target).map_err(|e| io("move into place", target, e))?;
        sync_parent(target);
        return Ok((files, bytes));
    }
    // Into an existing folder: folders made as needed, each file renamed over its old version.
    for (rel, is_dir) in entries {
        let from = payload.join(&rel);
        let to = target.join(&rel);
        if is_dir {
            if !to.is_dir() {
                std::fs::create_dir(&to).map_err(|e| io("create", &to, e))?;
                if let Ok(meta) = std::fs::metadata(&from) {
                    let _ = std::fs::set_permissions(&to, meta.permissions());
                }
            }
        } else {
            if to.is_dir() && !to.is_symlink() {
                return Err(format!(
                    "{} is a folder; a file cannot replace it",
                    to.display()
                ));
            }
            std::fs::rename(&from, &to).map_err(|e| io("move into place", &to, e))?;
        }
    }
    sync_parent(&target.join("."));
    Ok((files, bytes))
}

/// Makes a rename in `path`'s folder durable; best effort (only durability is at stake).
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        })
    {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_destination_gets_the_whole_folder_and_an_existing_one_is_merged() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        std::fs::create_dir_all(staged.join("sub")).unwrap();
        std::fs::write(staged.join("a"), "new a").unwrap();
        std::fs::write(staged.join("sub/b"), "b").unwrap();
        let target = dir.path().join("target");
        assert_eq!(place(&staged, &target).unwrap(), (2, 6));
        assert_eq!(std::fs::read_to_string(target.join("sub/b")).unwrap(), "b");
        assert!(!staged.exists(), "moved whole");

        std::fs::create_dir_all(staged.join("sub")).unwrap();
        std::fs::write(staged.join("sub/b"), "b2").unwrap();
        std::fs::write(target.join("mine"), "kept").unwrap();
        assert_eq!(place(&staged, &target).unwrap(), (1, 2));
        assert_eq!(std::fs::read_to_string(target.join("sub/b")).unwrap(), "b2");
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "new a");
        assert_eq!(
            std::fs::read_to_string(target.join("mine")).unwrap(),
            "kept"
        );
    }

    #[test]
    fn a_file_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        std::fs::write(&staged, "new").unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "old").unwrap();
        assert_eq!(place(&staged, &target).unwrap(), (1, 3));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
    }
}
