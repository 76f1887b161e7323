//! `cairn bundle inspect`: what any bundle source holds, as a bundle.
//!
//! The source is made into the folder a plan would ship (a `.tar.zst` or an
//! image unpacked into a temporary folder, a folder read in place), then
//! scanned like any bundle: the files it ships (not `bundle.toml`), their
//! total size, and its `bundle.toml` (kind, hooks, vars, cmd, configs). Its digest is the manifest digest for
//! an image (what `skopeo inspect` and registries show), the Merkle root of
//! its files otherwise (what cairn's plan keys use).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Image, ImageError, ImageMetadata, detect};
use crate::bundle::manifest::{self, HashCache};
use crate::model::SourceKind;

/// What a bundle source holds.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub source: PathBuf,
    pub source_kind: SourceKind,
    /// `sha256:...`: the manifest digest of an image, the files' Merkle root otherwise.
    pub digest: String,
    pub kind: Option<String>,
    pub hooks: BTreeMap<String, String>,
    pub vars: BTreeMap<String, String>,
    pub cmd: Option<String>,
    pub configs: usize,
    pub files: usize,
    /// Bytes, all files together.
    pub size: u64,
}

/// Inspects the bundle source at `path`.
pub fn inspect(path: &Path) -> Result<Inspection, ImageError> {
    let err = |message: String| ImageError {
        path: path.to_path_buf(),
        message,
    };
    let source_kind = detect(path).map_err(err)?;
    let scratch = tempfile::tempdir().map_err(|e| err(format!("cannot be unpacked: {e}")))?;
    let mut digest = None;
    let root = match source_kind {
        SourceKind::Directory => path.to_path_buf(),
        SourceKind::TarZst => {
            let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
            let decoder = zstd::stream::read::Decoder::new(file).map_err(|e| err(e.to_string()))?;
            let mut archive = tar::Archive::new(decoder);
            archive.set_preserve_permissions(true);
            archive
                .unpack(scratch.path())
                .map_err(|e| err(format!("is not a valid .tar.zst: {e}")))?;
            scratch.path().to_path_buf()
        }
        SourceKind::OciArchive | SourceKind::DockerArchive | SourceKind::OciLayout => {
            let image = Image::open(path, source_kind).map_err(err)?;
            image.unpack_into(scratch.path()).map_err(err)?;
            digest = Some(image.digest);
            scratch.path().to_path_buf()
        }
    };
    let mut scanned =
        manifest::scan(&root, &HashCache::default()).map_err(|e| err(e.to_string()))?;
    // Metadata, never shipped: the files and the root are what hosts get.
    scanned.files.remove(crate::model::bundle_toml::FILE_NAME);
    let metadata = ImageMetadata::read(&root).map_err(err)?.unwrap_or_default();
    Ok(Inspection {
        source: path.to_path_buf(),
        source_kind,
        digest: digest.unwrap_or_else(|| format!("sha256:{}", scanned.root())),
        configs: metadata.configs(),
        kind: metadata.kind,
        hooks: metadata.hooks,
        vars: metadata.vars,
        cmd: metadata.cmd,
        files: scanned.files.len(),
        size: scanned.files.values().map(|f| f.size).sum(),
    })
}
