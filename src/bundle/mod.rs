//! Bundles: from a source folder (or `.tar.zst`, or a container image) to
//! the exact bytes each host gets.
//!
//! A bundle is prepared once (`prepare`: unpacked, scanned into a
//! `manifest` of hashes, its config patches applied by `config`), then its
//! templates are rendered per host (`template`). What a host gets is a set
//! of [`ShipFile`]s (`ship_file`), which a transport ships, packed into one
//! tar stream per file set, shared by every host that needs it, when it ships
//! over a byte stream (`stream`). A bundle may describe itself in a
//! `bundle.toml` (read by the model, `model::bundle_toml`, through
//! [`Sources`]: where a source's files are, whatever its kind).
//! An image source (a sealos cluster image saved as an OCI or docker
//! archive, or an OCI layout folder) is unpacked once per manifest digest,
//! its labels written as `bundle.toml` (`image`); `pack` writes a folder
//! as a reproducible `.tar.zst`.

pub mod config;
pub mod image;
pub mod manifest;
pub mod pack;
mod prepare;
mod ship_file;
pub mod stream;
pub mod template;

pub use image::detect as detect_source;

use std::path::{Path, PathBuf};

use crate::model::SourceKind;
use crate::model::bundle_toml::SourceReader;

/// Bundle sources as validation reads them: any kind this room reads
/// (folders, `.tar.zst`, image archives and layouts), an image unpacked
/// once into the cache to find its `bundle.toml`.
pub struct Sources;

impl SourceReader for Sources {
    fn kind(&self, path: &Path) -> Result<SourceKind, String> {
        image::detect(path)
    }

    fn metadata_root(
        &self,
        path: &Path,
        kind: SourceKind,
        base_dir: &Path,
    ) -> Result<Option<PathBuf>, String> {
        image::metadata_root(path, kind, base_dir).map_err(|e| e.to_string())
    }
}
pub use prepare::{BundleError, PreparedBundle, prepare, root_of};
pub use ship_file::{FileData, ShipFile};
