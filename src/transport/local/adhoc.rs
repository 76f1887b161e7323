//! Ad hoc copies on this machine (`cairn cp` to or from a host with
//! `transport = "local"`): the same rules as over SSH (`transport::copy`),
//! with relative host paths taken from the Clusterfile's folder, where this
//! machine's steps run.
//!
//! A copy here ships its files as a bundle does (`files`: staged, then
//! renamed into place); a fetch copies SRC into the caller's staging folder,
//! from which the caller moves it into place.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::LocalTransport;
use crate::bundle::ShipFile;
use crate::transport::TransportError;
use crate::transport::copy::{CopySource, PathKind, copy_target, join};

impl LocalTransport {
    /// Copies `files` (one `""` entry for a lone file) to `dest` as
    /// `cp -r` would (see `transport::copy`); returns where they landed.
    pub(crate) async fn copy_in(
        &self,
        dest: &str,
        source: CopySource<'_>,
        files: &BTreeMap<String, ShipFile>,
    ) -> Result<String, TransportError> {
        let full = self.host_path(dest);
        let full = full.to_string_lossy();
        // Keep DEST's trailing `/`: it means "into".
        let full = if dest.ends_with('/') && !full.ends_with('/') {
            format!("{full}/")
        } else {
            full.into_owned()
        };
        let inner = source
            .name()
            .map_or_else(|| full.clone(), |n| join(&full, n));
        let target =
            copy_target(&full, source, kind(&full), kind(&inner)).map_err(|e| self.error(e))?;
        self.ship(&target, files).await?;
        Ok(target)
    }

    /// Copies `src` into the empty folder `staging`; returns the path of
    /// what arrived there (see `Transport::fetch`).
    pub(crate) async fn fetch(
        &self,
        src: &str,
        contents: bool,
        staging: &Path,
    ) -> Result<PathBuf, TransportError> {
        let from = self.host_path(src);
        let to = staging.join("payload");
        self.blocking(move || {
            let meta = std::fs::metadata(&from)
                .map_err(|e| format!("could not fetch {}: {e}", from.display()))?;
            if contents && !meta.is_dir() {
                return Err(format!("could not fetch {}: not a folder", from.display()));
            }
            let name = from.file_name().unwrap_or(from.as_os_str());
            let target = if contents {
                to.clone()
            } else {
                std::fs::create_dir(&to).map_err(|e| e.to_string())?;
                to.join(name)
            };
            copy_tree(&from, &target)?;
            Ok(target)
        })
        .await
    }

    /// A path on this host: relative ones are the Clusterfile folder's.
    fn host_path(&self, path: &str) -> PathBuf {
        self.base_dir().join(path)
    }
}

fn kind(path: &str) -> PathKind {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => PathKind::Folder,
        Ok(_) => PathKind::File,
        Err(_) if std::fs::symlink_metadata(path).is_ok() => PathKind::File,
        Err(_) => PathKind::Missing,
    }
}

/// Copies a file or folder (following a link given as `from`; keeping
/// links inside a folder as links, as a fetch over SSH does), with modes.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let io = |path: &Path, e: std::io::Error| format!("failed to copy {}: {e}", path.display());
    let meta = std::fs::metadata(from).map_err(|e| io(from, e))?;
    if !meta.is_dir() {
        std::fs::copy(from, to).map_err(|e| io(from, e))?;
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.map_err(|e| format!("failed to copy {}: {e}", from.display()))?;
        let rel = entry.path().strip_prefix(from).expect("under its root");
        let target = to.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| io(&target, e))?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(|e| io(entry.path(), e))?;
            std::os::unix::fs::symlink(link, &target).map_err(|e| io(&target, e))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(|e| io(entry.path(), e))?;
        }
    }
    // Folder modes last, so a read-only folder does not stop its own copy.
    for entry in walkdir::WalkDir::new(from)
        .into_iter()
        .filter_map(Result::ok)
    {
        if entry.file_type().is_dir() {
            let rel = entry.path().strip_prefix(from).expect("under its root");
            if let Ok(m) = entry.metadata() {
                let mode = m.permissions().mode() & 0o7777;
                let _ =
                    std::fs::set_permissions(to.join(rel), std::fs::Permissions::from_mode(mode));
            }
        }
    }
    Ok(())
}
