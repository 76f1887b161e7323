//! A file to ship: its manifest entry and where its bytes come from.
//!
//! Most bytes stay where they are (a file of a bundle's folder, read only
//! when a host needs it); what cairn makes itself (a rendered template, a
//! patched config, inline content) is held in memory, shared by reference.

use std::path::PathBuf;
use std::sync::Arc;

use super::manifest::{FileEntry, hash_bytes};

/// Where a shipped file's bytes come from.
#[derive(Debug, Clone)]
pub enum FileData {
    /// A file on this machine.
    Path(PathBuf),
    /// Bytes made by cairn (a rendered template, a patched file, inline content).
    Bytes(Arc<Vec<u8>>),
}

impl FileData {
    pub fn read(&self) -> std::io::Result<Arc<Vec<u8>>> {
        match self {
            FileData::Path(p) => std::fs::read(p).map(Arc::new),
            FileData::Bytes(b) => Ok(b.clone()),
        }
    }
}

/// One file to ship: its manifest entry and where its bytes are.
#[derive(Debug, Clone)]
pub struct ShipFile {
    pub entry: FileEntry,
    pub data: FileData,
}

impl ShipFile {
    /// A file of `bytes` cairn made (a rendered template, a patched file,
    /// inline content), with `mode`: its entry is hashed from them.
    pub fn from_bytes(bytes: Arc<Vec<u8>>, mode: u32) -> ShipFile {
        ShipFile {
            entry: FileEntry {
                mode,
                size: bytes.len() as u64,
                hash: hash_bytes(&bytes),
            },
            data: FileData::Bytes(bytes),
        }
    }
}
