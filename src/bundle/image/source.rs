//! What a bundle source is, told by its content rather than its name, and
//! the files of an image read wherever they live.
//!
//! A source is a folder of files, a `.tar.zst` of one, or a container
//! image in one of the three forms image tools write: an OCI layout folder
//! (`oci-layout`, `index.json`, `blobs/`), an OCI archive (the same in a
//! tar: `sealos save`, `skopeo copy ... oci-archive:`) or a docker archive
//! (a tar with `manifest.json`: `docker save`, `skopeo copy ...
//! docker-archive:`). [`detect`] tells them apart by the bytes: a zstd frame,
//! a tar whose entries name an image's files, a folder with an
//! `oci-layout`. An image tar is read in place ([`Store`]): its headers are
//! walked once, seeking over the data, and each file is then read at its
//! offset, so a 2 GB archive is never copied or read whole to find its
//! 1 KB index.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use crate::model::SourceKind;

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The kind of the bundle source at `path`, or why it is none.
pub fn detect(path: &Path) -> Result<SourceKind, String> {
    if path.is_dir() {
        let layout = path.join("oci-layout").is_file() && path.join("index.json").is_file();
        return Ok(if layout {
            SourceKind::OciLayout
        } else {
            SourceKind::Directory
        });
    }
    let mut head = [0u8; 512];
    let read = read_head(path, &mut head).map_err(|e| format!("cannot be read: {e}"))?;
    if read >= 4 && head[..4] == ZSTD_MAGIC {
        return Ok(SourceKind::TarZst);
    }
    if read == 512 && &head[257..262] == b"ustar" {
        let store = Store::tar(path)?;
        if store.contains("oci-layout") && store.contains("index.json") {
            return Ok(SourceKind::OciArchive);
        }
        if store.contains("manifest.json") {
            return Ok(SourceKind::DockerArchive);
        }
        return Err(
            "is a tar, but neither an OCI archive (no `oci-layout` and `index.json`) nor a docker archive (no `manifest.json`)"
                .into(),
        );
    }
    if read >= 2 && head[..2] == [0x1f, 0x8b] {
        return Err(
            "is gzip-compressed; cairn reads image archives as plain tars (as `sealos save`, `docker save` and skopeo write them) and bundle archives as .tar.zst"
                .into(),
        );
    }
    Err("is neither a folder, a .tar.zst, an OCI image (archive or layout folder) nor a docker archive".into())
}

/// Up to `head.len()` first bytes of a file.
fn read_head(path: &Path, head: &mut [u8]) -> std::io::Result<usize> {
    let mut file = File::open(path)?;
    let mut filled = 0;
    while filled < head.len() {
        let n = file.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Where an image's files are: a folder, or entries of a tar read in place.
#[derive(Debug)]
pub(super) enum Store {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        /// Offset and size of each regular file's data, by normalized name.
        files: HashMap<String, (u64, u64)>,
        /// Symbolic and hard links, by normalized name: the name they point at
        /// (docker writes `<id>/layer.tar` as a link to `blobs/sha256/<hex>`).
        links: HashMap<String, String>,
    },
}

impl Store {
    /// A tar's entries, walked once (seeking over the data).
    pub(super) fn tar(path: &Path) -> Result<Store, String> {
        let file = File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
        let mut archive = tar::Archive::new(file);
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let bad = |e: std::io::Error| format!("is not a readable tar: {e}");
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = normalize(&entry.path().map_err(bad)?);
            let kind = entry.header().entry_type();
            if kind.is_file() {
                files.insert(name, (entry.raw_file_position(), entry.size()));
            } else if (kind.is_symlink() || kind.is_hard_link())
                && let Some(target) = entry.link_name().map_err(bad)?
            {
                let target = if kind.is_symlink() {
                    // A symbolic link is relative to its own folder.
                    let parent = Path::new(&name).parent().unwrap_or(Path::new(""));
                    normalize(&parent.join(target))
                } else {
                    normalize(&target)
                };
                links.insert(name, target);
            }
        }
        Ok(Store::Tar {
            path: path.to_path_buf(),
            files,
            links,
        })
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        match self {
            Store::Dir(root) => root.join(name).is_file(),
            Store::Tar { files, links, .. } => files.contains_key(name) || links.contains_key(name),
        }
    }

    /// A reader of the file `name` (`/`-separated, relative to the image's top).
    pub(super) fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, String> {
        match self {
            Store::Dir(root) => {
                let path = root.join(name);
                let file =
                    File::open(&path).map_err(|e| format!("`{name}` cannot be read: {e}"))?;
                Ok(Box::new(file))
            }
            Store::Tar { path, files, links } => {
                let mut name = name.to_string();
                // Links of links, but not forever.
                for _ in 0..8 {
                    match links.get(&name) {
                        Some(target) => name.clone_from(target),
                        None => break,
                    }
                }
                let Some(&(offset, size)) = files.get(&name) else {
                    return Err(format!("`{name}` is missing from the archive"));
                };
                let mut file =
                    File::open(path).map_err(|e| format!("the archive cannot be read: {e}"))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| format!("the archive cannot be read: {e}"))?;
                Ok(Box::new(file.take(size)))
            }
        }
    }

    /// The whole of a small file (an index, a manifest, a config).
    pub(super) fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        self.open(name)?
            .take(MAX_JSON)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("`{name}` cannot be read: {e}"))?;
        Ok(bytes)
    }
}

/// An index, manifest or config larger than this is not one.
const MAX_JSON: u64 = 16 * 1024 * 1024;

/// `./a/b/../c` as `a/c`: the name an image's JSON uses for the file.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(names: &[&str]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(file.reopen().unwrap());
        for name in names {
            let mut header = tar::Header::new_ustar();
            header.set_size(2);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, &b"{}"[..]).unwrap();
        }
        builder.finish().unwrap();
        file
    }

    #[test]
    fn sources_are_told_apart_by_content() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect(dir.path()), Ok(SourceKind::Directory));
        std::fs::write(dir.path().join("oci-layout"), "{}").unwrap();
        std::fs::write(dir.path().join("index.json"), "{}").unwrap();
        assert_eq!(detect(dir.path()), Ok(SourceKind::OciLayout));
        let oci = tar_with(&["./oci-layout", "index.json", "blobs/sha256/ab"]);
        assert_eq!(detect(oci.path()), Ok(SourceKind::OciArchive));
        let docker = tar_with(&["manifest.json", "abc.tar"]);
        assert_eq!(detect(docker.path()), Ok(SourceKind::DockerArchive));
        let plain = tar_with(&["etc/a.conf"]);
        assert!(detect(plain.path()).unwrap_err().contains("neither an OCI"));
        let zst = dir.path().join("b.tar.zst");
        std::fs::write(&zst, zstd::encode_all(&b"x"[..], 3).unwrap()).unwrap();
        assert_eq!(detect(&zst), Ok(SourceKind::TarZst));
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        assert!(detect(&text).unwrap_err().contains("neither a folder"));
    }

    #[test]
    fn a_tar_store_reads_files_in_place_and_follows_links() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(file.reopen().unwrap());
        let mut header = tar::Header::new_ustar();
        header.set_size(5);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "blobs/sha256/aa", &b"hello"[..])
            .unwrap();
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "id/layer.tar", "../blobs/sha256/aa")
            .unwrap();
        builder.finish().unwrap();
        let store = Store::tar(file.path()).unwrap();
        assert_eq!(store.read("blobs/sha256/aa").unwrap(), b"hello");
        assert_eq!(store.read("id/layer.tar").unwrap(), b"hello");
        assert!(store.read("nope").unwrap_err().contains("missing"));
    }
}
