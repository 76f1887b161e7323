//! Writing a file so that a reader sees the old content or the new, never a mix.
//!
//! The state, the hash cache and saved plans are all replaced whole: the
//! bytes go to a temp file in the same folder (same filesystem, so the
//! rename is atomic), are fsynced when the caller needs durability, and the
//! temp file is renamed over the target; the folder is then fsynced so the
//! rename itself survives a power cut. A small module of its own because
//! several rooms (state, bundle caches, saved plans) need it and none of
//! them should depend on another for it. `cairn add` and `delete` replace
//! the Clusterfile the same way, keeping its permissions.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating its folder. With `durable`,
/// the data and the rename are on disk when this returns. The file is
/// private (0600): state and plans may hold captured values.
/// The folder `path` would be written into, when it is not one (missing,
/// or a file): cairn writes a user's file (a saved plan, metrics) only into
/// a folder that exists, and says so before any work rather than make one.
pub fn missing_folder(path: &Path) -> Option<&Path> {
    path.parent()
        .filter(|folder| !folder.as_os_str().is_empty() && !folder.is_dir())
}

pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    write_as(path, bytes, durable, 0o600, None)
}

/// Replaces the file at `path` (following a symlink to it) atomically and
/// durably, keeping its permissions and, where allowed, its owner: a
/// file the operator owns, like the Clusterfile `cairn add` edits, stays
/// as it was in all but its content.
pub fn replace_keeping_permissions(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&path)?;
    write_as(
        &path,
        bytes,
        true,
        meta.mode() & 0o7777,
        Some((meta.uid(), meta.gid())),
    )
}

/// [`write_atomic`] for a file others must read (metrics for a collector
/// running as another user): given `mode` exactly.
pub fn write_atomic_with_mode(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    mode: u32,
) -> std::io::Result<()> {
    write_as(path, bytes, durable, mode, None)
}

fn write_as(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        if mode != 0o600 {
            // Set outright: the mode given at creation is masked by the umask.
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        if let Some((uid, gid)) = owner {
            // Only root may give a file away; anyone else keeps it as theirs.
            let _ = std::os::unix::fs::fchown(&file, Some(uid), Some(gid));
        }
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/f.json");
        write_atomic(&path, b"one", true).unwrap();
        write_atomic(&path, b"two", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f.json"], "no temp file left behind");
    }

    #[test]
    fn replacing_keeps_the_mode_and_follows_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("Clusterfile.real");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o664)).unwrap();
        let link = dir.path().join("Clusterfile");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        replace_keeping_permissions(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o664);
    }
}
