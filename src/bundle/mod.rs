//! Bundles: from a source folder (or `.tar.zst`) to the exact bytes each host gets.
//!
//! A bundle is prepared once (`prepare`: unpacked, scanned into a
//! `manifest` of hashes, its config patches applied by `config`), then its
//! templates are rendered per host (`template`). What a host gets is a set
//! of [`ShipFile`]s (`ship_file`), which a transport ships, packed into one
//! tar stream per file set, shared by every host that needs it, when it ships
//! over a byte stream (`stream`). A bundle may describe itself in a
//! `bundle.toml` (`metadata`: kind, default vars, hooks, default configs).

pub mod config;
pub mod manifest;
pub mod metadata;
mod prepare;
mod ship_file;
pub mod stream;
pub mod template;

pub use prepare::{BundleError, PreparedBundle, prepare};
pub use ship_file::{FileData, ShipFile};
