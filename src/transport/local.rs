//! The local transport: this machine, no SSH.
//!
//! Scripts run as `sh -c RUNNER` in their own process group, so a timeout
//! kills the script and everything it started. File I/O runs on tokio's
//! blocking pool. Files are written to a staging folder inside the
//! destination (same filesystem, so `rename` is atomic), fsynced, then
//! renamed into place one by one.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{
    CheckResult, CommandOutput, Facts, Observed, ProbeReport, ProbeRequest, RUNNER, TransportError,
    target_path,
};
use crate::bundle::ShipFile;
use crate::bundle::manifest::hash_path;
use crate::state::ShippedFile;

#[derive(Debug, Clone)]
pub struct LocalTransport {
    host: String,
    /// Default working directory: the Clusterfile's folder.
    base_dir: PathBuf,
}

impl LocalTransport {
    pub fn new(host: String, base_dir: PathBuf) -> LocalTransport {
        LocalTransport { host, base_dir }
    }

    fn error(&self, message: impl Into<String>) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            message: message.into(),
        }
    }

    pub async fn run(
        &self,
        script: &str,
        cwd: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, TransportError> {
        let dir = match cwd {
            Some(c) => self.base_dir.join(c),
            None => self.base_dir.clone(),
        };
        if !dir.is_dir() {
            return Err(self.error(format!(
                "working directory {} does not exist",
                dir.display()
            )));
        }
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(RUNNER)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.error(format!("failed to start sh: {e}")))?;
        let pid = child.id();
        // Registered while it runs, so an abandoned apply can kill the whole group.
        let _running = pid.map(RunningGroup::register);
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let script = script.as_bytes().to_vec();
        // Write the script while reading output, so a large script cannot deadlock on full pipes.
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&script).await;
            let _ = stdin.shutdown().await;
        });
        let wait = child.wait_with_output();
        let result = match timeout {
            Some(limit) => match tokio::time::timeout(limit, wait).await {
                Ok(result) => result,
                Err(_) => {
                    if let Some(pid) = pid {
                        kill_group(pid);
                    }
                    let _ = writer.await;
                    return Ok(CommandOutput {
                        code: None,
                        stdout: Vec::new(),
                        stderr: format!("timed out after {}", humantime::format_duration(limit))
                            .into_bytes(),
                        timed_out: true,
                    });
                }
            },
            None => wait.await,
        };
        let _ = writer.await;
        let output = result.map_err(|e| self.error(format!("failed to run sh: {e}")))?;
        Ok(CommandOutput {
            code: output.status.code(),
            stdout: output.stdout,
            stderr: output.stderr,
            timed_out: false,
        })
    }

    /// What refresh asks of this machine: facts, shipped files, checks.
    pub async fn probe(&self, request: &ProbeRequest) -> Result<ProbeReport, TransportError> {
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let mut report = ProbeReport {
            facts: Facts {
                hostname: gethostname::gethostname().to_string_lossy().into_owned(),
                os,
                arch: std::env::consts::ARCH.to_string(),
                zstd: true,
            },
            ..Default::default()
        };
        for (dest, shipped) in &request.files {
            report.files.push(self.observe(dest, shipped).await?);
        }
        for check in &request.checks {
            let result = match self
                .run(&check.script, check.cwd.as_deref(), Some(check.timeout))
                .await
            {
                Ok(out) => CheckResult {
                    code: if out.timed_out { None } else { out.code },
                    cwd_missing: false,
                },
                Err(e) if e.to_string().contains("working directory") => CheckResult {
                    code: None,
                    cwd_missing: true,
                },
                Err(e) => return Err(e),
            };
            report.checks.push(result);
        }
        Ok(report)
    }

    pub async fn ship(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
    ) -> Result<BTreeMap<String, ShippedFile>, TransportError> {
        let (dest, files) = (dest.to_string(), files.clone());
        self.blocking(move || ship_blocking(&dest, &files)).await
    }

    pub async fn observe(
        &self,
        dest: &str,
        shipped: &BTreeMap<String, ShippedFile>,
    ) -> Result<BTreeMap<String, Observed>, TransportError> {
        let (dest, shipped) = (dest.to_string(), shipped.clone());
        self.blocking(move || observe_blocking(&dest, &shipped))
            .await
    }

    pub async fn remove(
        &self,
        dest: &str,
        shipped: &BTreeMap<String, ShippedFile>,
    ) -> Result<Vec<String>, TransportError> {
        let observed = self.observe(dest, shipped).await?;
        let (dest, shipped) = (dest.to_string(), shipped.clone());
        self.blocking(move || {
            let mut kept = Vec::new();
            for (rel, record) in &shipped {
                let same = match &observed[rel] {
                    Observed::Missing => continue,
                    Observed::Unchanged => true,
                    Observed::Hashed(h) => *h == record.hash,
                };
                let path = target_path(&dest, rel);
                if !same {
                    kept.push(rel.clone());
                    continue;
                }
                std::fs::remove_file(&path)
                    .map_err(|e| format!("failed to remove {}: {e}", path.display()))?;
                // Remove folders left empty, up to dest; stop at the first that is not empty.
                let mut parent = path.parent();
                while let Some(dir) = parent {
                    if dir.as_os_str().len() < dest.len() || std::fs::remove_dir(dir).is_err() {
                        break;
                    }
                    parent = dir.parent();
                }
            }
            Ok(kept)
        })
        .await
    }

    /// Runs file I/O on tokio's blocking pool; its error text names this host.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, TransportError> {
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result.map_err(|message| self.error(message)),
            Err(e) => Err(self.error(e.to_string())),
        }
    }
}

/// Process groups of the scripts running now, in this process.
static RUNNING: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Keeps a script's process group in [`RUNNING`] while the script runs.
struct RunningGroup(u32);

impl RunningGroup {
    fn register(pid: u32) -> RunningGroup {
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
        RunningGroup(pid)
    }
}

impl Drop for RunningGroup {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != self.0);
    }
}

/// Kills every running script with everything it started (a second Ctrl-C).
pub fn kill_running() {
    for pid in RUNNING.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        kill_group(*pid);
    }
}

fn kill_group(pid: u32) {
    // SAFETY: kill(2) with a negative pid signals the process group the child leads; no memory is involved.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}

fn shipped_record(path: &Path, hash: &str) -> Result<ShippedFile, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("failed to stat {}: {e}", path.display()))?;
    Ok(ShippedFile {
        hash: hash.to_string(),
        mode: meta.mode() & 0o7777,
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        inode: meta.ino(),
    })
}

fn ship_blocking(
    dest: &str,
    files: &BTreeMap<String, ShipFile>,
) -> Result<BTreeMap<String, ShippedFile>, String> {
    let single = files.len() == 1 && files.contains_key("");
    let root = if single {
        Path::new(dest)
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf()
    } else {
        PathBuf::from(dest)
    };
    std::fs::create_dir_all(&root)
        .map_err(|e| format!("failed to create {}: {e}", root.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".cairn-staging-")
        .tempdir_in(&root)
        .map_err(|e| {
            format!(
                "failed to create a staging folder in {}: {e}",
                root.display()
            )
        })?;
    // Stage everything first: a full disk or unreadable source fails here, before any file is replaced.
    let mut staged = Vec::new();
    for (i, (rel, file)) in files.iter().enumerate() {
        let tmp = staging.path().join(i.to_string());
        let bytes = file
            .data
            .read()
            .map_err(|e| format!("failed to read the source of {rel}: {e}"))?;
        let mut out = std::fs::File::create(&tmp)
            .map_err(|e| format!("failed to write {}: {e}", tmp.display()))?;
        out.write_all(&bytes)
            .map_err(|e| format!("failed to write {}: {e}", target_path(dest, rel).display()))?;
        out.set_permissions(std::fs::Permissions::from_mode(file.entry.mode))
            .map_err(|e| format!("failed to set the mode of {}: {e}", tmp.display()))?;
        out.sync_all()
            .map_err(|e| format!("failed to write {}: {e}", target_path(dest, rel).display()))?;
        staged.push((rel, tmp, file));
    }
    let mut records = BTreeMap::new();
    for (rel, tmp, file) in staged {
        let target = target_path(dest, rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("failed to create {}: {e}", parent.display()))?;
        }
        std::fs::rename(&tmp, &target)
            .map_err(|e| format!("failed to move {} into place: {e}", target.display()))?;
        records.insert(rel.clone(), shipped_record(&target, &file.entry.hash)?);
    }
    if let Ok(dir) = std::fs::File::open(&root) {
        let _ = dir.sync_all();
    }
    Ok(records)
}

fn observe_blocking(
    dest: &str,
    shipped: &BTreeMap<String, ShippedFile>,
) -> Result<BTreeMap<String, Observed>, String> {
    let mut out = BTreeMap::new();
    for (rel, record) in shipped {
        let path = target_path(dest, rel);
        let observed = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Observed::Missing,
            Err(e) => return Err(format!("failed to stat {}: {e}", path.display())),
            Ok(meta) if !meta.is_file() => Observed::Hashed(String::from("not-a-file")),
            Ok(meta) => {
                let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
                let mode_same = meta.mode() & 0o7777 == record.mode;
                if meta.len() == record.size
                    && mtime_ns == record.mtime_ns
                    && meta.ino() == record.inode
                    && mode_same
                {
                    Observed::Unchanged
                } else if !mode_same {
                    Observed::Hashed(format!("mode:{:o}", meta.mode() & 0o7777))
                } else {
                    Observed::Hashed(hash_path(&path).map_err(|e| e.to_string())?)
                }
            }
        };
        out.insert(rel.clone(), observed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::FileData;
    use crate::bundle::manifest::{FileEntry, hash_bytes};
    use std::sync::Arc;

    fn file(content: &str, mode: u32) -> ShipFile {
        ShipFile {
            entry: FileEntry {
                mode,
                size: content.len() as u64,
                hash: hash_bytes(content.as_bytes()),
            },
            data: FileData::Bytes(Arc::new(content.as_bytes().to_vec())),
        }
    }

    #[tokio::test]
    async fn runs_scripts_from_stdin_with_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTransport::new("local".into(), dir.path().to_path_buf());
        let out = t
            .run("echo hi; echo err >&2; exit 3", None, None)
            .await
            .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, b"err\n");
        let out = t.run("cat; echo done", None, None).await.unwrap();
        assert_eq!(
            out.stdout, b"done\n",
            "the script's stdin is at EOF, not the script"
        );
        let out = t
            .run("sleep 5", None, Some(Duration::from_millis(200)))
            .await
            .unwrap();
        assert!(out.timed_out && out.code.is_none());
    }

    #[tokio::test]
    async fn ships_observes_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d").to_string_lossy().into_owned();
        let t = LocalTransport::new("local".into(), dir.path().to_path_buf());
        let files = BTreeMap::from([
            ("a/b.txt".to_string(), file("b", 0o644)),
            ("x.sh".to_string(), file("x", 0o755)),
        ]);
        let shipped = t.ship(&dest, &files).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(format!("{dest}/a/b.txt")).unwrap(),
            "b"
        );
        let mode = std::fs::metadata(format!("{dest}/x.sh")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o755);
        let seen = t.observe(&dest, &shipped).await.unwrap();
        assert!(seen.values().all(|o| *o == Observed::Unchanged));
        std::fs::write(format!("{dest}/a/b.txt"), "changed by hand").unwrap();
        std::fs::write(format!("{dest}/mine"), "not cairn's").unwrap();
        let seen = t.observe(&dest, &shipped).await.unwrap();
        assert!(
            matches!(&seen["a/b.txt"], Observed::Hashed(h) if *h == hash_bytes(b"changed by hand"))
        );
        let kept = t.remove(&dest, &shipped).await.unwrap();
        assert_eq!(kept, ["a/b.txt"], "a hand-edited file is kept");
        assert!(!Path::new(&format!("{dest}/x.sh")).exists());
        assert!(
            Path::new(&format!("{dest}/mine")).exists(),
            "files cairn did not ship are never deleted"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dest)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".cairn"))
            .collect();
        assert!(leftovers.is_empty(), "staging folder removed");
    }
}
