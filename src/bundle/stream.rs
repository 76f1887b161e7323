//! Packing files for shipping: one tar stream per file set, zstd-compressed
//! when that pays, built once and shared by every host that needs it.
//!
//! A transport that ships over a byte stream (SSH) asks the run's
//! [`StreamCache`] for the stream of the files a host lacks. When 48 hosts
//! need the same bundle, the stream is packed (and compressed) once, by the
//! first host to ask, while the others wait on the same cell; the next
//! distinct file set gets its own. The cache belongs to the run (the
//! transport's `Fleet` owns it), so nothing outlives the run. Compression is
//! skipped when it would shrink the stream by less than 5% (already
//! compressed images, archives, random data): the host is then spared a
//! decompression pass over every byte for nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::ShipFile;

/// A file set packed for shipping.
#[derive(Debug)]
pub struct Stream {
    pub bytes: Vec<u8>,
    /// Compressed with zstd (else a plain tar).
    pub zstd: bool,
}

type StreamKey = [u8; 32];

/// A stream being built (or built) once, for every host that waits on it.
type StreamCell = Arc<OnceLock<Result<Arc<Stream>, String>>>;

/// Only the latest few file sets are worth keeping in memory.
const KEEP: usize = 16;

/// Packed streams by file set, for one run.
#[derive(Debug, Default)]
pub struct StreamCache {
    streams: Mutex<HashMap<StreamKey, StreamCell>>,
}

impl StreamCache {
    /// The tar stream (zstd-compressed if `zstd` and it pays) of `files`,
    /// entries named by [`entry_name`]; packed once per distinct file set.
    pub fn get(&self, files: &[(String, ShipFile)], zstd: bool) -> Result<Arc<Stream>, String> {
        let mut h = Sha256::new();
        h.update([u8::from(zstd)]);
        for (rel, f) in files {
            h.update(rel.as_bytes());
            h.update([0]);
            h.update(f.entry.hash.as_bytes());
            h.update(f.entry.mode.to_le_bytes());
        }
        let key: StreamKey = h.finalize().into();
        let cell = {
            let mut map = self
                .streams
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.len() > KEEP {
                map.clear();
            }
            map.entry(key).or_default().clone()
        };
        cell.get_or_init(|| pack(files, zstd).map(Arc::new)).clone()
    }
}

/// A file's name in the stream: its path under the destination (`file` for
/// a destination that is itself the file).
pub fn entry_name(rel: &str) -> &str {
    if rel.is_empty() { "file" } else { rel }
}

/// A tar of `files`, compressed with zstd when asked and when it pays.
fn pack(files: &[(String, ShipFile)], zstd: bool) -> Result<Stream, String> {
    let mut tar = tar::Builder::new(Vec::new());
    for (rel, file) in files {
        let bytes = file
            .data
            .read()
            .map_err(|e| format!("failed to read the source of {rel}: {e}"))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(file.entry.mode);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(0);
        tar.append_data(&mut header, entry_name(rel), bytes.as_slice())
            .map_err(|e| format!("failed to pack {rel}: {e}"))?;
    }
    let raw = tar
        .into_inner()
        .map_err(|e| format!("failed to pack files: {e}"))?;
    if zstd {
        let packed = zstd::stream::encode_all(raw.as_slice(), 3)
            .map_err(|e| format!("failed to compress: {e}"))?;
        if packed.len() < raw.len() / 100 * 95 {
            return Ok(Stream {
                bytes: packed,
                zstd: true,
            });
        }
    }
    Ok(Stream {
        bytes: raw,
        zstd: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::FileData;
    use crate::bundle::manifest::{FileEntry, hash_bytes};

    fn file(bytes: Vec<u8>) -> ShipFile {
        ShipFile {
            entry: FileEntry {
                mode: 0o644,
                size: bytes.len() as u64,
                hash: hash_bytes(&bytes),
            },
            data: FileData::Bytes(Arc::new(bytes)),
        }
    }

    #[test]
    fn one_stream_per_file_set_compressed_only_when_it_pays() {
        let cache = StreamCache::default();
        let text = vec![(String::from("a.txt"), file(b"hello ".repeat(1000)))];
        let first = cache.get(&text, true).unwrap();
        assert!(first.zstd, "text shrinks");
        assert!(
            Arc::ptr_eq(&first, &cache.get(&text, true).unwrap()),
            "packed once, shared"
        );
        // sha256 of a counter: as incompressible as it gets.
        let noise: Vec<u8> = (0..6000u32)
            .flat_map(|i| Sha256::digest(i.to_le_bytes()))
            .collect();
        let random = vec![(String::new(), file(noise))];
        let stream = cache.get(&random, true).unwrap();
        assert!(!stream.zstd, "incompressible data goes as plain tar");
        let mut archive = tar::Archive::new(stream.bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["file"], "a lone file is named `file`");
    }
}
