//! File manifests: what a folder holds, as (path, mode, size, sha256) per
//! file, and the Merkle root that stands for all of it in a task's key.
//!
//! Scanning walks the folder with walkdir, then hashes the files in
//! parallel on rayon. Hashes are cached by (path, size, mtime, inode) in
//! [`HashCache`], stored beside the state, so rescanning an unchanged 1 GB
//! bundle costs one `stat` per file. A file modified within the same second
//! it was hashed could keep its old stat, so entries younger than
//! [`RACY_WINDOW`] are not cached (git's "racy clean" rule).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub mode: u32,
    pub size: u64,
    /// sha256, lowercase hex.
    pub hash: String,
}

/// Files by path relative to the root, `/`-separated, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    /// Merkle root: sha256 over `path NUL mode NUL sha256 LF` of each file, in path order.
    pub fn root(&self) -> String {
        let mut hasher = Sha256::new();
        for (path, entry) in &self.files {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update(format!("{:o}", entry.mode).as_bytes());
            hasher.update([0]);
            hasher.update(entry.hash.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }

    /// Paths added, changed and removed going from `old` to `self`.
    pub fn diff(&self, old: &Manifest) -> ManifestDiff {
        let mut diff = ManifestDiff::default();
        for (path, entry) in &self.files {
            match old.files.get(path) {
                None => diff.added.push(path.clone()),
                Some(o) if o != entry => diff.changed.push(path.clone()),
                Some(_) => {}
            }
        }
        diff.removed = old
            .files
            .keys()
            .filter(|p| !self.files.contains_key(*p))
            .cloned()
            .collect();
        diff
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ManifestDiff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl ManifestDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// "2 files changed (etc/a.conf, etc/b.conf), 1 added (x)".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (list, verb) in [
            (&self.changed, "changed"),
            (&self.added, "added"),
            (&self.removed, "removed"),
        ] {
            if list.is_empty() {
                continue;
            }
            let shown: Vec<&str> = list.iter().take(3).map(String::as_str).collect();
            let more = if list.len() > 3 {
                format!(", +{} more", list.len() - 3)
            } else {
                String::new()
            };
            // "2 files changed, 1 added": the noun once, on the first part.
            let counted = if parts.is_empty() {
                crate::words::count(list.len(), "file")
            } else {
                list.len().to_string()
            };
            parts.push(format!("{counted} {verb} ({}{more})", shown.join(", ")));
        }
        parts.join(", ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to walk {path}: {message}")]
    Walk { path: PathBuf, message: String },
    #[error("file name {path:?} is not UTF-8; cairn ships only UTF-8 paths")]
    NotUtf8 { path: PathBuf },
}

/// Stat key under which a hash is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StatKey {
    size: u64,
    mtime_ns: i64,
    inode: u64,
}

impl StatKey {
    fn of(meta: &std::fs::Metadata) -> StatKey {
        StatKey {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            inode: meta.ino(),
        }
    }
}

/// Files modified this recently are hashed but not cached.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// sha256 of files, remembered by stat.
#[derive(Debug, Default)]
pub struct HashCache {
    entries: Mutex<HashMap<PathBuf, (StatKey, String)>>,
    dirty: Mutex<bool>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: Vec<(PathBuf, StatKey, String)>,
}

impl HashCache {
    /// Loads a cache file; a missing or unreadable one is an empty cache (it is only a cache).
    pub fn load(path: &Path) -> HashCache {
        let entries = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
            .filter(|f| f.version == 1)
            .map(|f| f.entries.into_iter().map(|(p, k, h)| (p, (k, h))).collect())
            .unwrap_or_default();
        HashCache {
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
        }
    }

    /// Writes the cache if it changed (atomically: a torn cache would only be discarded, but why have one).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if !*self.dirty.lock().expect("cache lock") {
            return Ok(());
        }
        let entries = self.entries.lock().expect("cache lock");
        let file = CacheFile {
            version: 1,
            entries: entries
                .iter()
                .map(|(p, (k, h))| (p.clone(), *k, h.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        crate::atomic_file::write_atomic(path, &bytes, false)
    }

    /// The sha256 of a file, from the cache when its stat is unchanged.
    pub fn hash_file(&self, path: &Path, meta: &std::fs::Metadata) -> Result<String, ScanError> {
        let key = StatKey::of(meta);
        if let Some((k, h)) = self.entries.lock().expect("cache lock").get(path)
            && *k == key
        {
            return Ok(h.clone());
        }
        let hash = hash_path(path)?;
        let racy = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_none_or(|age| age < RACY_WINDOW);
        if !racy {
            self.entries
                .lock()
                .expect("cache lock")
                .insert(path.to_path_buf(), (key, hash.clone()));
            *self.dirty.lock().expect("cache lock") = true;
        }
        Ok(hash)
    }
}

/// sha256 of a file's content, streamed.
pub fn hash_path(path: &Path) -> Result<String, ScanError> {
    let io = |source| ScanError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

pub fn hash_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Walks `root` and hashes every regular file (symlinks are followed; loops are errors).
pub fn scan(root: &Path, cache: &HashCache) -> Result<Manifest, ScanError> {
    let mut found: Vec<(String, PathBuf, std::fs::Metadata)> = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| ScanError::Walk {
            path: root.to_path_buf(),
            message: e.to_string(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("walkdir stays under its root");
        let rel = rel.to_str().ok_or_else(|| ScanError::NotUtf8 {
            path: entry.path().to_path_buf(),
        })?;
        let meta = entry.metadata().map_err(|e| ScanError::Walk {
            path: entry.path().to_path_buf(),
            message: e.to_string(),
        })?;
        found.push((
            rel.replace(std::path::MAIN_SEPARATOR, "/"),
            entry.path().to_path_buf(),
            meta,
        ));
    }
    let files = found
        .into_par_iter()
        .map(|(rel, path, meta)| {
            let hash = cache.hash_file(&path, &meta)?;
            Ok((
                rel,
                FileEntry {
                    mode: meta.mode() & 0o7777,
                    size: meta.len(),
                    hash,
                },
            ))
        })
        .collect::<Result<BTreeMap<_, _>, ScanError>>()?;
    Ok(Manifest { files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_hashes_and_caches() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/a.conf"), "a").unwrap();
        std::fs::write(dir.path().join("b"), "b").unwrap();
        let cache = HashCache::default();
        let m = scan(dir.path(), &cache).unwrap();
        assert_eq!(m.files.keys().collect::<Vec<_>>(), ["b", "etc/a.conf"]);
        assert_eq!(m.files["b"].hash, hash_bytes(b"b"));
        let root = m.root();
        std::fs::write(dir.path().join("b"), "B").unwrap();
        let m2 = scan(dir.path(), &cache).unwrap();
        assert_ne!(m2.root(), root, "a changed file changes the root");
        let diff = m2.diff(&m);
        assert_eq!(diff.changed, ["b"]);
        assert_eq!(diff.describe(), "1 file changed (b)");
    }

    #[test]
    fn cache_is_used_when_stat_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let cache = HashCache::default();
        cache
            .entries
            .lock()
            .unwrap()
            .insert(path.clone(), (StatKey::of(&meta), "cached".into()));
        assert_eq!(cache.hash_file(&path, &meta).unwrap(), "cached");
    }

    #[test]
    fn describe_lists_changes() {
        let d = ManifestDiff {
            added: vec!["n".into()],
            changed: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            removed: vec![],
        };
        assert_eq!(
            d.describe(),
            "4 files changed (a, b, c, +1 more), 1 added (n)"
        );
    }
}
