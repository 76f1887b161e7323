//! Files on this machine: staged and renamed into place, looked at by stat,
//! removed only while they still hold what cairn shipped.
//!
//! Files are written to a staging folder inside the destination (same
//! filesystem, so `rename` is atomic), fsynced, then renamed into place one
//! by one: a reader never sees a half-written file, and a full disk fails
//! while staging, before anything is replaced.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::bundle::ShipFile;
use crate::bundle::manifest::hash_path;
use crate::state::ShippedFile;
use crate::transport::{Observed, target_path};

fn shipped_record(path: &Path, hash: &str) -> Result<ShippedFile, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("failed to stat {}: {e}", path.display()))?;
    Ok(ShippedFile {
        hash: hash.to_string(),
        mode: meta.mode() & 0o7777,
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        inode: meta.ino(),
    })
}

pub(super) fn ship(
    dest: &str,
    files: &BTreeMap<String, ShipFile>,
) -> Result<BTreeMap<String, ShippedFile>, String> {
    let single = files.len() == 1 && files.contains_key("");
    let root = if single {
        Path::new(dest)
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf()
    } else {
        PathBuf::from(dest)
    };
    std::fs::create_dir_all(&root)
        .map_err(|e| format!("failed to create {}: {e}", root.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".cairn-staging-")
        .tempdir_in(&root)
        .map_err(|e| {
            format!(
                "failed to create a staging folder in {}: {e}",
                root.display()
            )
        })?;
    // Stage everything first: a full disk or unreadable source fails here, before any file is replaced.
    let mut staged = Vec::new();
    for (i, (rel, file)) in files.iter().enumerate() {
        let tmp = staging.path().join(i.to_string());
        let bytes = file
            .data
            .read()
            .map_err(|e| format!("failed to read the source of {rel}: {e}"))?;
        let mut out = std::fs::File::create(&tmp)
            .map_err(|e| format!("failed to write {}: {e}", tmp.display()))?;
        out.write_all(&bytes)
            .map_err(|e| format!("failed to write {}: {e}", target_path(dest, rel).display()))?;
        out.set_permissions(std::fs::Permissions::from_mode(file.entry.mode))
            .map_err(|e| format!("failed to set the mode of {}: {e}", tmp.display()))?;
        out.sync_all()
            .map_err(|e| format!("failed to write {}: {e}", target_path(dest, rel).display()))?;
        staged.push((rel, tmp, file));
    }
    let mut records = BTreeMap::new();
    for (rel, tmp, file) in staged {
        let target = target_path(dest, rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("failed to create {}: {e}", parent.display()))?;
        }
        std::fs::rename(&tmp, &target)
            .map_err(|e| format!("failed to move {} into place: {e}", target.display()))?;
        records.insert(rel.clone(), shipped_record(&target, &file.entry.hash)?);
    }
    if let Ok(dir) = std::fs::File::open(&root) {
        let _ = dir.sync_all();
    }
    Ok(records)
}

pub(super) fn observe(
    dest: &str,
    shipped: &BTreeMap<String, ShippedFile>,
) -> Result<BTreeMap<String, Observed>, String> {
    let mut out = BTreeMap::new();
    for (rel, record) in shipped {
        let path = target_path(dest, rel);
        let observed = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Observed::Missing,
            Err(e) => return Err(format!("failed to stat {}: {e}", path.display())),
            Ok(meta) if !meta.is_file() => Observed::Hashed(String::from("not-a-file")),
            Ok(meta) => {
                let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
                let mode_same = meta.mode() & 0o7777 == record.mode;
                if meta.len() == record.size
                    && mtime_ns == record.mtime_ns
                    && meta.ino() == record.inode
                    && mode_same
                {
                    Observed::Unchanged
                } else if !mode_same {
                    Observed::Hashed(format!("mode:{:o}", meta.mode() & 0o7777))
                } else {
                    Observed::Hashed(hash_path(&path).map_err(|e| e.to_string())?)
                }
            }
        };
        out.insert(rel.clone(), observed);
    }
    Ok(out)
}

/// Removes each shipped file that still holds what was shipped; returns
/// the paths kept because someone changed them.
pub(super) fn remove(
    dest: &str,
    shipped: &BTreeMap<String, ShippedFile>,
    observed: &BTreeMap<String, Observed>,
) -> Result<Vec<String>, String> {
    let mut kept = Vec::new();
    for (rel, record) in shipped {
        let same = match &observed[rel] {
            Observed::Missing => continue,
            Observed::Unchanged => true,
            Observed::Hashed(h) => *h == record.hash,
        };
        let path = target_path(dest, rel);
        if !same {
            kept.push(rel.clone());
            continue;
        }
        std::fs::remove_file(&path)
            .map_err(|e| format!("failed to remove {}: {e}", path.display()))?;
        // Remove folders left empty, up to dest; stop at the first that is not empty.
        let mut parent = path.parent();
        while let Some(dir) = parent {
            if dir.as_os_str().len() < dest.len() || std::fs::remove_dir(dir).is_err() {
                break;
            }
            parent = dir.parent();
        }
    }
    Ok(kept)
}
