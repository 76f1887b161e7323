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
//!
//! A stream is packed into an unnamed temporary file (in `$TMPDIR`, gone
//! with cairn however it ends), not into memory, and each host's channel
//! takes it from there a chunk at a time (spliced from the page cache into
//! the channel's pipe where the kernel allows): cairn's memory does not grow
//! with the size of a bundle (a cluster image is gigabytes) nor with the
//! number of hosts shipping it, and what is shipped is held once, on disk
//! or in the page cache, where the kernel may let it go.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::{FileData, ShipFile};

/// A file set packed for shipping, held in an unnamed temporary file.
#[derive(Debug)]
pub struct Stream {
    file: File,
    len: u64,
    /// Compressed with zstd (else a plain tar).
    pub zstd: bool,
    /// A plain tar padded to whole records of [`TAR_RECORD`] bytes: GNU tar
    /// reading it in such records (`-B -b 20`) reads exactly it, no byte
    /// past its end, so a host's shell can hand it its own input (see
    /// `transport::ssh::shells`).
    pub whole_records: bool,
}

/// The record size GNU tar reads with `-b 20`, in bytes.
pub const TAR_RECORD: u64 = 20 * 512;

impl Stream {
    /// A stream of `bytes` as they are (a test's input to a host's shell).
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: &[u8]) -> std::io::Result<Stream> {
        let mut file = spill_file()?;
        file.write_all(bytes)?;
        Ok(Stream {
            file,
            len: bytes.len() as u64,
            zstd: false,
            whole_records: false,
        })
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file the stream is packed in, for a channel that moves its
    /// pages itself (`splice`), holding `len` bytes from offset 0.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The error of a reader that found the stream's file ending before
    /// `len`, however it reads it.
    pub(crate) fn shorter_than_written() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the packed stream's file is shorter than it was written",
        )
    }

    /// Fills `buf` from `offset` on, as far as the stream goes: how many
    /// bytes were read (0 at its end). Each host reads at its own offset
    /// from the one file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(offset);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let mut read = 0;
        while read < want {
            match self
                .file
                .read_at(&mut buf[read..want], offset + read as u64)?
            {
                0 => return Err(Stream::shorter_than_written()),
                n => read += n,
            }
        }
        Ok(read)
    }

    /// The whole stream, in memory (tests look into it).
    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut bytes = vec![0; usize::try_from(self.len).unwrap_or(usize::MAX)];
        self.read_at(&mut bytes, 0)?;
        Ok(bytes)
    }
}

/// An unnamed file in `$TMPDIR` (`/tmp`), removed by the kernel when its
/// last handle closes: nothing is left behind by a killed cairn.
fn spill_file() -> std::io::Result<File> {
    tempfile::tempfile()
}

type StreamKey = [u8; 32];

/// A stream being built (or built) once, for every host that waits on it.
type StreamCell = Arc<OnceLock<Result<Arc<Stream>, String>>>;

/// How many file sets stay packed once no host is shipping them: a later
/// host needing the same set (the usual case: every host gets the same
/// bundle) takes it without packing it again.
const KEEP: usize = 16;

/// A cached stream, and when it was last asked for.
#[derive(Debug)]
struct Cached {
    cell: StreamCell,
    last_asked: u64,
}

impl Cached {
    /// A stream is in use while anyone but the cache holds it (a host
    /// shipping it, or waiting for it to be packed): dropping it from the
    /// cache then frees nothing, and the next host would pack a second
    /// copy beside it.
    fn in_use(&self) -> bool {
        Arc::strong_count(&self.cell) > 1
            || self
                .cell
                .get()
                .and_then(|packed| packed.as_ref().ok())
                .is_some_and(|stream| Arc::strong_count(stream) > 1)
    }
}

/// Packed streams by file set, for one run.
///
/// Memory is bounded by what is being shipped at once, never by the
/// number of hosts: each file set is packed once and held in one copy
/// however many hosts ship it; beyond [`KEEP`] sets, those no host is
/// shipping are forgotten, least recently asked for first. (Hosts that
/// each get a file set of their own, such as a rendered template, would
/// otherwise push the shared bundle out while it is still being shipped,
/// and every later host would pack a copy of its own.)
#[derive(Debug, Default)]
pub struct StreamCache {
    streams: Mutex<Streams>,
}

#[derive(Debug, Default)]
struct Streams {
    by_key: HashMap<StreamKey, Cached>,
    asked: u64,
}

impl Streams {
    /// The cell of `key`, made empty if new, and the cache trimmed.
    fn cell(&mut self, key: StreamKey) -> StreamCell {
        self.asked += 1;
        let asked = self.asked;
        let cached = self.by_key.entry(key).or_insert_with(|| Cached {
            cell: StreamCell::default(),
            last_asked: asked,
        });
        cached.last_asked = asked;
        let cell = cached.cell.clone();
        self.trim();
        cell
    }

    /// Forgets the least recently asked-for streams no host is using
    /// until at most [`KEEP`] are left (or only ones in use).
    fn trim(&mut self) {
        let excess = self.by_key.len().saturating_sub(KEEP);
        if excess == 0 {
            return;
        }
        let mut idle: Vec<(u64, StreamKey)> = self
            .by_key
            .iter()
            .filter(|(_, c)| !c.in_use())
            .map(|(k, c)| (c.last_asked, *k))
            .collect();
        idle.sort_unstable();
        for (_, key) in idle.into_iter().take(excess) {
            self.by_key.remove(&key);
        }
    }
}

impl StreamCache {
    /// The tar stream (zstd-compressed if `zstd` and it pays) of `files`,
    /// entries named by [`entry_name`]; packed once per distinct file set.
    pub fn get(&self, files: &[(String, ShipFile)], zstd: bool) -> Result<Arc<Stream>, String> {
        let key = stream_key(files, zstd);
        let cell = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .cell(key);
        cell.get_or_init(|| pack(files, zstd).map(Arc::new)).clone()
    }

    /// How many file sets are held packed (or being packed).
    pub fn len(&self) -> usize {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_key
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Names a file set: its paths, contents and modes, and whether it may be compressed.
fn stream_key(files: &[(String, ShipFile)], zstd: bool) -> StreamKey {
    let mut h = Sha256::new();
    h.update([u8::from(zstd)]);
    h.update(file_set_digest(
        files.iter().map(|(rel, f)| (rel.as_str(), f)),
    ));
    h.finalize().into()
}

/// A digest of a file set: each file's path, content hash and mode, in
/// the order given.
pub fn file_set_digest<'a>(files: impl IntoIterator<Item = (&'a str, &'a ShipFile)>) -> [u8; 32] {
    let mut h = Sha256::new();
    for (rel, f) in files {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(f.entry.hash.as_bytes());
        h.update(f.entry.mode.to_le_bytes());
    }
    h.finalize().into()
}

/// A file's name in the stream: its path under the destination (`file` for
/// a destination that is itself the file).
pub fn entry_name(rel: &str) -> &str {
    if rel.is_empty() { "file" } else { rel }
}

/// A tar of `files`, compressed with zstd when asked and when it pays.
///
/// The tar is written to a file, each source copied into it as it is read
/// (a file on this machine a buffer at a time, so a large one in a
/// cluster image is never in memory whole); compressing it reads that file
/// back and writes a second one, abandoned as soon as it is no longer 5%
/// smaller. Memory stays at a few buffers, whatever the stream's size.
fn pack(files: &[(String, ShipFile)], zstd: bool) -> Result<Stream, String> {
    let spill = |e: std::io::Error| {
        format!(
            "failed to pack the files into a temporary file in {}: {e} (cairn packs each \
             file set there once for every host; free space there, or set TMPDIR to a \
             folder with room for the largest bundle)",
            std::env::temp_dir().display()
        )
    };
    let mut tar = tar::Builder::new(BufWriter::with_capacity(
        SPILL_BUFFER,
        spill_file().map_err(spill)?,
    ));
    for (rel, file) in files {
        let unreadable = |e: std::io::Error| format!("failed to read the source of {rel}: {e}");
        let mut header = tar::Header::new_gnu();
        header.set_mode(file.entry.mode);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(0);
        let appended = match &file.data {
            FileData::Path(path) => {
                let source = File::open(path).map_err(unreadable)?;
                let size = source.metadata().map_err(unreadable)?.len();
                header.set_size(size);
                let mut reading = Source {
                    file: source,
                    left: size,
                    failed: None,
                };
                let appended = tar.append_data(&mut header, entry_name(rel), &mut reading);
                if let Some(e) = reading.failed {
                    return Err(unreadable(e));
                }
                appended
            }
            FileData::Bytes(bytes) => {
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, entry_name(rel), bytes.as_slice())
            }
        };
        appended.map_err(spill)?;
    }
    let raw = tar
        .into_inner()
        .map_err(spill)?
        .into_inner()
        .map_err(|e| spill(e.into_error()))?;
    // Padded with zeros (after tar's own end blocks) to whole records.
    let len = raw
        .metadata()
        .map_err(spill)?
        .len()
        .next_multiple_of(TAR_RECORD);
    raw.set_len(len).map_err(spill)?;
    if zstd
        && len >= COMPRESS_FROM
        && let Some((file, packed)) = compress_if_it_pays(&raw, len).map_err(spill)?
    {
        return Ok(Stream {
            file,
            len: packed,
            zstd: true,
            whole_records: false,
        });
    }
    Ok(Stream {
        file: raw,
        len,
        zstd: false,
        whole_records: true,
    })
}

/// A source file copied into the tar: exactly the `left` bytes its header
/// gives (a file that shrank while being read is an error, not a short
/// entry that would shift every one after it), and a read error kept
/// apart from the temporary file's write errors.
struct Source {
    file: File,
    left: u64,
    failed: Option<std::io::Error>,
}

impl std::io::Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = match self.file.read(&mut buf[..want]) {
            Ok(0) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "it got shorter while it was being packed",
            )),
            other => other,
        };
        match read {
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let again = std::io::Error::new(e.kind(), e.to_string());
                self.failed = Some(e);
                Err(again)
            }
        }
    }
}

/// The smallest stream worth compressing, bytes. Below it, what zstd
/// saves (under 64 KB) crosses a 100 Mbit/s link in under 5 ms, about
/// what starting `zstd` costs the host; a rendered config file or a
/// one-file change goes as a plain tar, one process fewer on every host.
const COMPRESS_FROM: u64 = 64 * 1024;

/// How much packing buffers before each write to its file.
const SPILL_BUFFER: usize = 256 * 1024;

/// The `len` bytes of `raw` compressed with zstd into a file of their own,
/// with its size, if that makes them at least 5% smaller; compression
/// stops as soon as its output reaches that size.
fn compress_if_it_pays(raw: &File, len: u64) -> std::io::Result<Option<(File, u64)>> {
    if !samples_shrink(raw, len)? {
        return Ok(None);
    }
    let out = CappedWriter {
        file: BufWriter::with_capacity(SPILL_BUFFER, spill_file()?),
        written: 0,
        limit: len / 100 * 95,
    };
    let mut encoder = zstd::stream::Encoder::new(out, 3)?;
    let mut reader = raw;
    reader.seek(SeekFrom::Start(0))?;
    let written = std::io::copy(&mut reader, &mut encoder).and_then(|_| encoder.finish());
    match written {
        Ok(out) => {
            let size = out.written;
            let file = out
                .file
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?;
            Ok(Some((file, size)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => Ok(None),
        Err(e) => Err(e),
    }
}

/// How many pieces of a large stream [`samples_shrink`] compresses, and
/// how long each is: 2 MiB in all.
const SAMPLES: u64 = 16;
const SAMPLE_LEN: u64 = 128 * 1024;

/// Where [`samples_shrink`]'s pieces of a `len`-byte stream start: the
/// middle of each of `SAMPLES` equal parts, so the first and last files
/// (a bundle's small text, around its large blobs) weigh no more than
/// their share.
fn sample_offsets(len: u64) -> impl Iterator<Item = u64> {
    let part = len / SAMPLES;
    (0..SAMPLES).map(move |i| i * part + (part - SAMPLE_LEN) / 2)
}

/// Whether `SAMPLES` pieces of `raw`, one from the middle of each equal
/// part of its `len` bytes and each compressed alone, come out at least 5%
/// smaller together.
///
/// Compressing the whole stream stops only once its output reaches 95% of
/// the input, so on incompressible data (an image's layers, media) it runs
/// to nearly the end before giving up: tens of milliseconds for the
/// benchmark's 31 MB here, before any host gets a byte. The samples are a
/// fifteenth of that. A stream whose samples do not shrink goes plain; one
/// whose samples do is still compressed whole, and still abandoned if the
/// whole does not pay. What the samples cannot see is a repeat farther
/// apart than a piece (the same large file twice): such a stream may go
/// plain where the whole would have shrunk. A stream under four times
/// the samples' length is not sampled: trying it whole costs little.
fn samples_shrink(raw: &File, len: u64) -> std::io::Result<bool> {
    if len < 4 * SAMPLES * SAMPLE_LEN {
        return Ok(true);
    }
    let mut piece = vec![0; usize::try_from(SAMPLE_LEN).expect("a sample fits in memory")];
    let mut compressor = zstd::bulk::Compressor::new(3)?;
    let mut packed = 0;
    for at in sample_offsets(len) {
        raw.read_exact_at(&mut piece, at)?;
        packed += compressor.compress(&piece)?.len() as u64;
    }
    Ok(packed < SAMPLES * SAMPLE_LEN / 100 * 95)
}

/// A file writer that refuses to go past `limit` bytes.
struct CappedWriter {
    file: BufWriter<File>,
    written: u64,
    limit: u64,
}

impl Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 >= self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "compression does not pay",
            ));
        }
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::FileData;
    use crate::bundle::manifest::FileEntry;

    fn file(bytes: Vec<u8>) -> ShipFile {
        ShipFile::from_bytes(Arc::new(bytes), 0o644)
    }

    #[test]
    fn one_stream_per_file_set_compressed_only_when_it_pays() {
        let cache = StreamCache::default();
        let text = vec![(String::from("a.txt"), file(b"hello ".repeat(20_000)))];
        let first = cache.get(&text, true).unwrap();
        assert!(first.zstd, "text shrinks");
        let small = vec![(String::from("b.txt"), file(b"hello ".repeat(1000)))];
        let small = cache.get(&small, true).unwrap();
        assert!(
            !small.zstd && small.len() < COMPRESS_FROM,
            "a small stream goes plain: the host starts no zstd for it"
        );
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
        let bytes = stream.to_vec().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["file"], "a lone file is named `file`");
    }

    /// A file set of its own per host (a rendered template) between
    /// hosts shipping the shared bundle.
    fn per_host_set(i: usize) -> Vec<(String, ShipFile)> {
        vec![(
            String::from("app.conf"),
            file(format!("host {i}\n").into_bytes()),
        )]
    }

    #[test]
    fn a_stream_being_shipped_is_never_packed_twice() {
        let cache = StreamCache::default();
        let bundle: Vec<(String, ShipFile)> = (0..10)
            .map(|i| (format!("f{i}"), file(vec![b'x'; 1000 + i])))
            .collect();
        let shipping = cache.get(&bundle, false).unwrap();
        for i in 0..4 * KEEP {
            drop(cache.get(&per_host_set(i), false).unwrap());
        }
        assert!(
            Arc::ptr_eq(&shipping, &cache.get(&bundle, false).unwrap()),
            "the bundle still being shipped is the one copy every host gets"
        );
        assert!(cache.len() <= KEEP + 1, "{} sets held", cache.len());
    }

    #[test]
    fn streams_no_host_is_shipping_are_forgotten_least_recent_first() {
        let cache = StreamCache::default();
        let bundle = vec![(String::from("a"), file(b"shared".to_vec()))];
        let first = Arc::as_ptr(&cache.get(&bundle, false).unwrap());
        for i in 0..4 * KEEP {
            drop(cache.get(&per_host_set(i), false).unwrap());
            // Every host asks for the bundle too: it stays the most recent.
            assert_eq!(Arc::as_ptr(&cache.get(&bundle, false).unwrap()), first);
        }
        assert_eq!(cache.len(), KEEP, "idle sets beyond KEEP are dropped");
    }

    /// Each host reads the one file at its own offset, in pieces of any
    /// size, and gets the tar whole.
    #[test]
    fn a_stream_is_read_back_from_its_file_in_pieces() {
        let sizes = [0, 1, 511, 512, 513, 100_000];
        let files: Vec<(String, ShipFile)> = sizes
            .iter()
            .map(|n| (format!("dir/f{n}"), file(vec![7; *n])))
            .collect();
        let stream = pack(&files, false).unwrap();
        let whole = stream.to_vec().unwrap();
        assert_eq!(whole.len() as u64, stream.len());
        let mut pieces = Vec::new();
        let mut buf = [0; 1000];
        loop {
            let n = stream.read_at(&mut buf, pieces.len() as u64).unwrap();
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pieces, whole);
        let mut archive = tar::Archive::new(whole.as_slice());
        let unpacked: Vec<(String, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.size())
            })
            .collect();
        let expected: Vec<(String, u64)> = sizes
            .iter()
            .map(|n| (format!("dir/f{n}"), *n as u64))
            .collect();
        assert_eq!(unpacked, expected);
    }

    /// A file on this machine is copied into the stream as it is read;
    /// one that cannot be read says which, not that the temporary folder
    /// failed.
    #[test]
    fn files_on_disk_are_packed_as_read_and_an_unreadable_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("big"), &big).unwrap();
        let on_disk = |name: &str, size: usize| ShipFile {
            entry: FileEntry {
                mode: 0o600,
                size: size as u64,
                hash: String::new(),
            },
            data: FileData::Path(dir.path().join(name)),
        };
        let files = vec![
            (String::from("a/big"), on_disk("big", big.len())),
            (String::from("b"), file(b"made by cairn".to_vec())),
        ];
        let whole = pack(&files, false).unwrap().to_vec().unwrap();
        let mut archive = tar::Archive::new(whole.as_slice());
        let mut unpacked = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            let name = entry.path().unwrap().display().to_string();
            unpacked.push((name, entry.header().mode().unwrap(), bytes));
        }
        assert_eq!(
            unpacked,
            [
                (String::from("a/big"), 0o600, big),
                (String::from("b"), 0o644, b"made by cairn".to_vec()),
            ]
        );
        let missing = vec![(String::from("gone"), on_disk("gone", 1))];
        let error = pack(&missing, false).unwrap_err();
        assert!(
            error.starts_with("failed to read the source of gone: "),
            "{error}"
        );
    }

    fn spilled(bytes: &[u8]) -> File {
        Stream::from_bytes(bytes).unwrap().file
    }

    /// Pieces of a large stream decide whether it is compressed at all:
    /// noise with text only between the samples is not tried; text with
    /// noise only between them is compressed, and comes back whole.
    #[test]
    fn a_large_stream_is_compressed_only_if_its_samples_shrink() {
        let len = 4 * SAMPLES * SAMPLE_LEN;
        let part = len / SAMPLES;
        let first = sample_offsets(len).next().unwrap();
        let in_sample = |at: u64| (first..first + SAMPLE_LEN).contains(&(at % part));
        // splitmix64's mix of the offset: noise, and cheap for 8 MiB.
        let noise = |at: u64| {
            let mut z = at.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)).to_le_bytes()[0]
        };
        let mostly_noise: Vec<u8> = (0..len)
            .map(|at| if in_sample(at) { noise(at) } else { b'a' })
            .collect();
        assert!(!samples_shrink(&spilled(&mostly_noise), len).unwrap());
        assert!(
            compress_if_it_pays(&spilled(&mostly_noise), len)
                .unwrap()
                .is_none(),
            "its samples are noise: not tried, though the whole would shrink"
        );
        let mostly_text: Vec<u8> = (0..len)
            .map(|at| {
                if in_sample(at) {
                    b"text "[(at % 5) as usize]
                } else {
                    noise(at)
                }
            })
            .collect();
        let (packed, size) = compress_if_it_pays(&spilled(&mostly_text), len)
            .unwrap()
            .expect("its samples shrink, and so does the whole");
        let packed = Stream {
            file: packed,
            len: size,
            zstd: true,
            whole_records: false,
        };
        let bytes = packed.to_vec().unwrap();
        assert_eq!(
            zstd::stream::decode_all(bytes.as_slice()).unwrap(),
            mostly_text
        );
    }

    #[test]
    fn compression_stops_once_it_no_longer_pays() {
        let noise: Vec<u8> = (0..6000u32)
            .flat_map(|i| Sha256::digest(i.to_le_bytes()))
            .collect();
        let len = noise.len() as u64;
        assert!(
            compress_if_it_pays(&spilled(&noise), len)
                .unwrap()
                .is_none()
        );
        let text = b"hello ".repeat(10_000);
        let (packed, size) = compress_if_it_pays(&spilled(&text), text.len() as u64)
            .unwrap()
            .expect("text shrinks");
        let packed = Stream {
            file: packed,
            len: size,
            zstd: true,
            whole_records: false,
        };
        assert!(size < text.len() as u64 / 100 * 95);
        let bytes = packed.to_vec().unwrap();
        assert_eq!(zstd::stream::decode_all(bytes.as_slice()).unwrap(), text);
    }
}
