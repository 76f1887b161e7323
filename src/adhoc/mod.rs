//! Ad hoc work on hosts, outside any plan: `cairn exec` (a command on each
//! selected host) and `cairn cp` (a file or folder to each selected host, or
//! from one).
//!
//! Each works through a [`Fleet`] (host keys checked, sudo as the host's
//! settings say), runs on every host at once up to a bound (each host
//! connected when its turn comes and let go when it is done, so no more
//! than the bound are connected at once), and hands each host's result to
//! the caller as soon as that host is done, so the caller can show it whole, never interleaved with another's.
//! What comes back from a host passes through the model's [`Scrubber`], so
//! a secret a command prints is masked before anything shows it. Nothing is
//! recorded: no state, no receipt, no lock; a host that cannot be reached
//! gets a result of its own that says why, and the others go on.
//!
//! Copies reuse the transports' shipping (one stream per file set, packed
//! once for every host; each file staged and renamed into place); a fetch
//! lands in a staging folder beside its destination and is renamed into
//! place from there (`place`).

mod place;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::bundle::manifest::{FileEntry, HashCache, hash_path, scan};
use crate::bundle::{FileData, ShipFile};
use crate::model::{HostId, Model, Scrubber};
use crate::transport::{CopySource, Fleet, PathKind, Transport, replace_conflict};

/// What a command did on one host.
#[derive(Debug, Clone)]
pub struct ExecResult {
    pub host: String,
    pub address: String,
    /// `None` when the command did not exit by itself (timeout, signal) or never ran.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
    /// Why the command did not run or finish: the host could not be
    /// reached, the connection failed, the time limit passed.
    pub error: Option<String>,
    /// The host could not be reached at all.
    pub unreachable: bool,
}

impl ExecResult {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.exit_code == Some(0)
    }
}

/// What a copy did on one host (`cp --on`), or brought back (`cp --from`).
#[derive(Debug, Clone)]
pub struct CopyResult {
    pub host: String,
    pub address: String,
    /// Where the copy landed: on the host (`--on`), or here (`--from`).
    pub dest: Option<String>,
    pub files: usize,
    pub bytes: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub unreachable: bool,
}

impl CopyResult {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// How an ad hoc run ended, beside the results it handed out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ended {
    /// Ctrl-C stopped it before every host answered.
    pub interrupted: bool,
    /// Hosts that had not answered when it stopped.
    pub not_finished: usize,
}

/// The hosts of an ad hoc run, as the model names them, and the fleet
/// that reaches them.
pub struct Hosts<'a> {
    model: &'a Model,
    fleet: Fleet,
    selected: Vec<HostId>,
}

impl<'a> Hosts<'a> {
    /// The fleet of `selected`, each host connected when its turn comes
    /// (host keys checked per the Clusterfile), at most `parallelism` at
    /// once, and let go as soon as it is done; `state_dir` is the cluster's
    /// state folder, which nothing here writes to.
    pub fn new(
        model: &'a Model,
        selected: Vec<HostId>,
        state_dir: &Path,
        parallelism: usize,
    ) -> Hosts<'a> {
        let fleet = Fleet::new(model, &selected, &[], state_dir, parallelism);
        Hosts {
            model,
            fleet,
            selected,
        }
    }

    /// Closes every connection.
    pub async fn close(self) {
        self.fleet.close().await;
    }
}

impl Hosts<'_> {
    /// The selected hosts: name, address as reached, id.
    fn each(&self) -> Vec<(String, String, HostId)> {
        self.selected
            .iter()
            .map(|&id| {
                let host = self.model.host(id);
                (host.name.clone(), host.reached_at().to_string(), id)
            })
            .collect()
    }
}

/// Runs `work` on `host`'s transport, connected for it, and lets the host
/// go when it is done; `Err` with why when it could not be reached.
async fn on_host<T>(
    fleet: &Fleet,
    host: HostId,
    work: impl AsyncFnOnce(&Transport) -> T,
) -> Result<T, String> {
    let lease = fleet.lease(host).await.map_err(|e| e.to_string())?;
    let done = work(&lease).await;
    drop(lease);
    fleet.done_with(host).await;
    Ok(done)
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Runs `command` on every selected host, at most `parallelism` at once,
/// and hands each host's result to `done` as it finishes (an unreachable
/// host's as soon as its connection failed). Ctrl-C stops waiting and kills
/// what runs on this machine.
pub async fn exec(
    hosts: &Hosts<'_>,
    command: &str,
    timeout: Option<Duration>,
    parallelism: usize,
    scrubber: &Scrubber,
    mut done: impl FnMut(ExecResult),
) -> Ended {
    let limit = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut jobs = JoinSet::new();
    for (host, address, id) in hosts.each() {
        let limit = limit.clone();
        let command = command.to_string();
        let scrubber = scrubber.clone();
        let fleet = hosts.fleet.clone();
        jobs.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("never closed");
            let start = Instant::now();
            let ran = on_host(&fleet, id, async |transport| {
                transport.run(&command, None, timeout, None).await
            })
            .await;
            let duration_ms = elapsed_ms(start);
            let text = |bytes: &[u8]| scrubber.scrub(&String::from_utf8_lossy(bytes));
            let failed = |error: String, unreachable: bool| ExecResult {
                host: host.clone(),
                address: address.clone(),
                exit_code: None,
                stdout: String::new(),
                stderr: String::new(),
                duration_ms,
                error: Some(scrubber.scrub(&error)),
                unreachable,
            };
            match ran {
                Err(why) => failed(why, true),
                Ok(Err(e)) => failed(e.to_string(), false),
                Ok(Ok(out)) => ExecResult {
                    host: host.clone(),
                    address: address.clone(),
                    exit_code: out.code,
                    stdout: text(&out.stdout),
                    stderr: if out.timed_out {
                        String::new()
                    } else {
                        text(&out.stderr)
                    },
                    duration_ms,
                    error: if out.timed_out {
                        Some(text(&out.stderr))
                    } else if out.code.is_none() {
                        Some("killed by a signal".to_string())
                    } else {
                        None
                    },
                    unreachable: false,
                },
            }
        });
    }
    let ended = collect(&mut jobs, &hosts.fleet, &mut done).await;
    jobs.shutdown().await;
    ended
}

/// Hands each finished job's result to `done`; on Ctrl-C, stops.
async fn collect<T: 'static>(
    jobs: &mut JoinSet<T>,
    fleet: &Fleet,
    done: &mut impl FnMut(T),
) -> Ended {
    let mut interrupts =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    loop {
        let interrupt = async {
            match interrupts.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            joined = jobs.join_next() => match joined {
                Some(result) => done(result.expect("an ad hoc job does not panic")),
                None => return Ended::default(),
            },
            _ = interrupt => {
                fleet.abort_running();
                return Ended {
                    interrupted: true,
                    not_finished: jobs.len(),
                };
            }
        }
    }
}

/// A local file or folder ready to copy: what it is, and its files.
#[derive(Debug)]
pub struct LocalSource {
    kind: SourceKind,
    files: BTreeMap<String, ShipFile>,
    bytes: u64,
}

#[derive(Debug, Clone)]
enum SourceKind {
    File(String),
    Folder(String),
    Contents,
}

impl LocalSource {
    /// Reads `src` (a file, a folder, or `FOLDER/.` for what it holds):
    /// every file's mode and hash; the bytes are read again only to pack
    /// them. A link is followed.
    pub fn read(src: &Path) -> Result<LocalSource, String> {
        let text = src.to_string_lossy();
        let contents = text == "." || text.ends_with("/.");
        let meta = std::fs::metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
        let name = || {
            std::fs::canonicalize(src)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .ok_or_else(|| {
                    format!(
                        "{} has no name to copy it under; copy what it holds with `{}/.`",
                        src.display(),
                        text.trim_end_matches('/')
                    )
                })
        };
        if meta.is_dir() {
            let manifest = scan(src, &HashCache::default()).map_err(|e| e.to_string())?;
            let files: BTreeMap<String, ShipFile> = manifest
                .files
                .into_iter()
                .map(|(rel, entry)| {
                    let data = FileData::Path(src.join(&rel));
                    (rel, ShipFile { entry, data })
                })
                .collect();
            let bytes = files.values().map(|f| f.entry.size).sum();
            let kind = if contents {
                SourceKind::Contents
            } else {
                SourceKind::Folder(name()?)
            };
            return Ok(LocalSource { kind, files, bytes });
        }
        if contents {
            return Err(format!("{} is not a folder", src.display()));
        }
        if !meta.is_file() {
            return Err(format!(
                "{} is not a regular file or a folder",
                src.display()
            ));
        }
        let entry = FileEntry {
            mode: meta.mode() & 0o7777,
            size: meta.len(),
            hash: hash_path(src).map_err(|e| e.to_string())?,
        };
        let bytes = entry.size;
        let file = ShipFile {
            entry,
            data: FileData::Path(src.to_path_buf()),
        };
        Ok(LocalSource {
            kind: SourceKind::File(name()?),
            files: BTreeMap::from([(String::new(), file)]),
            bytes,
        })
    }

    fn source(&self) -> CopySource<'_> {
        match &self.kind {
            SourceKind::File(name) => CopySource::File { name },
            SourceKind::Folder(name) => CopySource::Folder { name },
            SourceKind::Contents => CopySource::Contents,
        }
    }
}

/// Copies `source` to `dest` on every selected host, at most `parallelism`
/// at once, handing each host's result to `done` as it finishes.
pub async fn copy_to(
    hosts: &Hosts<'_>,
    source: Arc<LocalSource>,
    dest: &str,
    parallelism: usize,
    scrubber: &Scrubber,
    mut done: impl FnMut(CopyResult),
) -> Ended {
    let limit = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut jobs = JoinSet::new();
    for (host, address, id) in hosts.each() {
        let (limit, source, dest, scrubber, fleet) = (
            limit.clone(),
            source.clone(),
            dest.to_string(),
            scrubber.clone(),
            hosts.fleet.clone(),
        );
        jobs.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("never closed");
            let start = Instant::now();
            let copied = on_host(&fleet, id, async |transport| {
                transport
                    .copy_in(&dest, source.source(), &source.files)
                    .await
            })
            .await;
            let (landed, error, unreachable) = match copied {
                Ok(Ok(target)) => (Some(target), None, false),
                Ok(Err(e)) => (None, Some(scrubber.scrub(&e.to_string())), false),
                Err(why) => (None, Some(scrubber.scrub(&why)), true),
            };
            CopyResult {
                host,
                address,
                files: if landed.is_some() {
                    source.files.len()
                } else {
                    0
                },
                bytes: if landed.is_some() { source.bytes } else { 0 },
                dest: landed,
                duration_ms: elapsed_ms(start),
                error,
                unreachable,
            }
        });
    }
    let ended = collect(&mut jobs, &hosts.fleet, &mut done).await;
    jobs.shutdown().await;
    ended
}

/// Fetches `src` (a file, a folder, or `FOLDER/.` for what it holds) from
/// the one selected host to `dest` here, as `cp -r` would place it; the
/// copy is staged beside its place and renamed into it.
pub async fn fetch(hosts: &Hosts<'_>, src: &str, dest: &Path, scrubber: &Scrubber) -> CopyResult {
    let (host, address, id) = hosts
        .each()
        .into_iter()
        .next()
        .expect("a fetch has one host");
    let mut result = CopyResult {
        host,
        address,
        dest: None,
        files: 0,
        bytes: 0,
        duration_ms: 0,
        error: None,
        unreachable: false,
    };
    let start = Instant::now();
    match on_host(&hosts.fleet, id, async |transport| {
        fetch_to(transport, src, dest).await
    })
    .await
    {
        Ok(Ok((target, files, bytes))) => {
            result.dest = Some(target.display().to_string());
            result.files = files;
            result.bytes = bytes;
        }
        Ok(Err(e)) => result.error = Some(scrubber.scrub(&e)),
        Err(why) => {
            result.error = Some(scrubber.scrub(&why));
            result.unreachable = true;
        }
    }
    result.duration_ms = elapsed_ms(start);
    result
}

/// A fetch, from where it lands to its files in place: (path, files, bytes).
async fn fetch_to(
    transport: &Transport,
    src: &str,
    dest: &Path,
) -> Result<(PathBuf, usize, u64), String> {
    let contents = src == "." || src.ends_with("/.");
    let name = Path::new(src.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let source_name = match (&name, contents) {
        (_, true) => None,
        (Some(n), false) if n != ".." => Some(n.as_str()),
        _ => {
            return Err(format!(
                "{src} has no name to copy it under; fetch what it holds with `{}/.`",
                src.trim_end_matches('/')
            ));
        }
    };
    let dest_text = dest.to_string_lossy();
    let dest_kind = local_kind(dest);
    // Where it lands does not depend on whether it is a file or a folder, so
    // the staging folder can be made beside it before anything arrives.
    let into = source_name.is_some() && (dest_text.ends_with('/') || dest_kind == PathKind::Folder);
    let (target, parent) = match source_name {
        Some(n) if into => (dest.join(n), dest.to_path_buf()),
        _ => {
            let target = PathBuf::from(dest_text.trim_end_matches('/'));
            let target = if target.as_os_str().is_empty() {
                PathBuf::from("/")
            } else {
                target
            };
            let parent = match target.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (target, parent)
        }
    };
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("failed to create {}: {e}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".cairn-fetch-")
        .tempdir_in(&parent)
        .map_err(|e| {
            format!(
                "failed to make a staging folder in {}: {e}",
                parent.display()
            )
        })?;
    let payload = transport
        .fetch(src, contents, staging.path())
        .await
        .map_err(|e| e.to_string())?;
    let source = match (std::fs::metadata(&payload).map(|m| m.is_dir()), source_name) {
        (_, None) => CopySource::Contents,
        (Ok(true), Some(name)) => CopySource::Folder { name },
        (_, Some(name)) => CopySource::File { name },
    };
    replace_conflict(&target.to_string_lossy(), source, local_kind(&target))?;
    let placed = tokio::task::spawn_blocking(move || {
        let placed = place::place(&payload, &target).map(|(files, bytes)| (target, files, bytes));
        drop(staging);
        placed
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(placed)
}

fn local_kind(path: &Path) -> PathKind {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => PathKind::Folder,
        Ok(_) => PathKind::File,
        Err(_) if std::fs::symlink_metadata(path).is_ok() => PathKind::File,
        Err(_) => PathKind::Missing,
    }
}
