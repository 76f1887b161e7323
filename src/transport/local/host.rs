//! `LocalTransport`: this machine as one host of the cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::process::{Running, RunningGroups};
use super::{files, in_flight, process, read, receipts};
use crate::bundle::ShipFile;
use crate::ids::TaskId;
use crate::state::{LockPolicy, ShippedFile};
use crate::transport::lock::{BrokenLock, HostLockStatus};
use crate::transport::probe::{OWNER_STAT_FORMAT, with_owner};
use crate::transport::{
    CheckResult, CommandOutput, Facts, FileRead, Observed, ProbeReport, ProbeRequest, Receipt,
    TransportError,
};

/// This machine, as one host of the cluster.
#[derive(Debug, Clone)]
pub(crate) struct LocalTransport {
    host: String,
    /// Default working directory: the Clusterfile's folder.
    base_dir: PathBuf,
    /// This host's receipts folder, under the cluster's state folder.
    receipts: PathBuf,
    /// The run's scripts in flight on this machine, for an abandoned apply to kill.
    running: Arc<RunningGroups>,
    /// Where scripts running here are recorded (see `in_flight`).
    in_flight: PathBuf,
    /// The task this copy runs scripts for (see [`LocalTransport::for_task`]).
    label: Option<Arc<str>>,
}

impl LocalTransport {
    /// `host` runs here, in `base_dir` by default; its receipts go to
    /// `state_dir/receipts/<host>/`.
    pub(crate) fn new(
        host: String,
        base_dir: PathBuf,
        state_dir: &std::path::Path,
        running: Arc<RunningGroups>,
    ) -> LocalTransport {
        let receipts = state_dir.join("receipts").join(&host);
        LocalTransport {
            host,
            base_dir,
            receipts,
            running,
            in_flight: in_flight_dir(state_dir),
            label: None,
        }
    }

    /// This host, its scripts recorded as run for `task`.
    pub(crate) fn for_task(&self, task: &str) -> LocalTransport {
        LocalTransport {
            label: Some(task.into()),
            ..self.clone()
        }
    }

    /// Before an apply probes this host: waits for what a dead apply left
    /// running here (the cluster lock, already held, covers the rest).
    pub(crate) async fn wait_for_dead_runs(
        &self,
        policy: &LockPolicy,
    ) -> Result<(), TransportError> {
        in_flight::wait_for_dead_runs(&self.in_flight, &self.host, policy).await
    }

    /// What a dead apply left running here, for `cairn unlock`.
    pub(crate) fn lock_status(&self) -> HostLockStatus {
        in_flight::status(&self.in_flight, &self.host)
    }

    /// Kills what a dead apply left running here (`cairn unlock`).
    pub(crate) fn break_lock(&self) -> BrokenLock {
        in_flight::break_open(&self.in_flight, &self.host)
    }

    pub(super) fn error(&self, message: impl Into<String>) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            message: message.into(),
        }
    }

    /// Runs a shell script (fed on stdin) in `cwd` (relative: to the
    /// Clusterfile's folder), with an optional time limit.
    pub(crate) async fn run(
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
            return Err(TransportError::WorkingDirMissing {
                host: self.host.clone(),
                dir: dir.display().to_string(),
            });
        }
        let what = Running {
            host: &self.host,
            label: self.label.as_deref().unwrap_or("a command"),
            timeout,
        };
        process::run(script, &dir, &what, &self.running)
            .await
            .map_err(|message| self.error(message))
    }

    /// What refresh asks of this machine: facts, receipts, shipped files, checks.
    pub(crate) async fn probe(
        &self,
        request: &ProbeRequest,
    ) -> Result<ProbeReport, TransportError> {
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let receipts = self.receipts.clone();
        let mut report = ProbeReport {
            facts: Facts {
                hostname: gethostname::gethostname().to_string_lossy().into_owned(),
                os,
                arch: std::env::consts::ARCH.to_string(),
                zstd: true,
            },
            receipts: self.blocking(move || receipts::read_all(&receipts)).await?,
            ..Default::default()
        };
        for (i, (dest, shipped)) in request.files.iter().enumerate() {
            let mut found = self.observe(dest, shipped).await?;
            if let Some(want) = request.owner_of(i) {
                self.observe_owner(dest, want, &shipped[""], &mut found)
                    .await?;
            }
            report.files.push(found);
        }
        for check in &request.checks {
            let result = match self
                .run(&check.script, check.cwd.as_deref(), Some(check.timeout))
                .await
            {
                Ok(out) => CheckResult {
                    code: if out.timed_out { None } else { out.code },
                },
                Err(TransportError::WorkingDirMissing { .. }) => CheckResult { code: None },
                Err(e) => return Err(e),
            };
            report.checks.push(result);
        }
        Ok(report)
    }

    /// Ships files under `dest` (`""` as the path means `dest` itself is the file).
    pub(crate) async fn ship(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
    ) -> Result<BTreeMap<String, ShippedFile>, TransportError> {
        let (dest, files) = (dest.to_string(), files.clone());
        self.blocking(move || files::ship(&dest, &files)).await
    }

    /// What is at each shipped path now.
    pub(crate) async fn observe(
        &self,
        dest: &str,
        shipped: &BTreeMap<String, ShippedFile>,
    ) -> Result<BTreeMap<String, Observed>, TransportError> {
        let (dest, shipped) = (dest.to_string(), shipped.clone());
        self.blocking(move || files::observe(&dest, &shipped)).await
    }

    /// A single file whose content is as recorded but whose owner is not
    /// what the Clusterfile sets is observed as changed (see `with_owner`).
    async fn observe_owner(
        &self,
        dest: &str,
        want: &str,
        record: &ShippedFile,
        found: &mut BTreeMap<String, Observed>,
    ) -> Result<(), TransportError> {
        if !matches!(
            found.get(""),
            Some(Observed::Unchanged | Observed::Hashed(_))
        ) {
            return Ok(());
        }
        let dest = dest.to_string();
        let owner = self
            .blocking(move || {
                std::process::Command::new("stat")
                    .args(["-c", OWNER_STAT_FORMAT, "--"])
                    .arg(&dest)
                    .output()
                    .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                    .map_err(|e| format!("failed to run stat on {dest}: {e}"))
            })
            .await?;
        if let Some(observed) = found.remove("") {
            found.insert(
                String::new(),
                with_owner(observed, &record.hash, want, &owner),
            );
        }
        Ok(())
    }

    /// Removes shipped files that still hold what cairn shipped; returns the kept ones.
    pub(crate) async fn remove(
        &self,
        dest: &str,
        shipped: &BTreeMap<String, ShippedFile>,
    ) -> Result<Vec<String>, TransportError> {
        let observed = self.observe(dest, shipped).await?;
        let (dest, shipped) = (dest.to_string(), shipped.clone());
        self.blocking(move || files::remove(&dest, &shipped, &observed))
            .await
    }

    /// The Clusterfile's folder: where relative paths on this host start.
    pub(super) fn base_dir(&self) -> &std::path::Path {
        &self.base_dir
    }

    /// What is at each of `paths` now, regular files read up to `limit` bytes.
    pub(crate) async fn read_files(
        &self,
        paths: &[String],
        limit: u64,
    ) -> Result<Vec<FileRead>, TransportError> {
        let paths = paths.to_vec();
        self.blocking(move || Ok(read::read_files(&paths, limit)))
            .await
    }

    pub(crate) async fn write_receipt(&self, receipt: &Receipt) -> Result<(), TransportError> {
        let (dir, receipt) = (self.receipts.clone(), receipt.clone());
        self.blocking(move || receipts::write(&dir, &receipt)).await
    }

    /// Moves the receipts kept under this host's old name to its own
    /// folder, unless it already has one.
    pub(crate) fn adopt_receipts_of(&self, old: &str) -> Result<(), TransportError> {
        let from = self
            .receipts
            .parent()
            .expect("a receipts folder has a parent")
            .join(old);
        if !from.is_dir() || self.receipts.exists() {
            return Ok(());
        }
        std::fs::rename(&from, &self.receipts).map_err(|e| {
            self.error(format!(
                "failed to move the receipts of {old} to {}: {e}",
                self.receipts.display()
            ))
        })
    }

    /// Removes this host's receipts folder (this machine keeps no lock of
    /// its own: the cluster lock covers it).
    pub(crate) async fn forget_host(&self) -> Result<(), TransportError> {
        let dir = self.receipts.clone();
        self.blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("failed to remove {}: {e}", dir.display())),
        })
        .await
    }

    pub(crate) async fn forget_receipt(&self, task: &TaskId) -> Result<(), TransportError> {
        let (dir, task) = (self.receipts.clone(), task.clone());
        self.blocking(move || receipts::forget(&dir, &task)).await
    }

    /// Runs file I/O on tokio's blocking pool; its error text names this host.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, TransportError> {
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result.map_err(|message| self.error(message)),
            Err(e) => Err(self.error(e.to_string())),
        }
    }
}

/// Where a cluster's scripts running on this machine are recorded.
pub(crate) fn in_flight_dir(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("inflight")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::hash_bytes;
    use crate::ids::TaskKey;
    use crate::transport::ReceiptInfo;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn file(content: &str, mode: u32) -> ShipFile {
        ShipFile::from_bytes(Arc::new(content.as_bytes().to_vec()), mode)
    }

    fn here(dir: &Path) -> LocalTransport {
        LocalTransport::new(
            "local".into(),
            dir.to_path_buf(),
            &dir.join(".cairn/c"),
            Arc::default(),
        )
    }

    #[tokio::test]
    async fn runs_scripts_from_stdin_with_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let t = here(dir.path());
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
        let missing = t.run("true", Some("nowhere"), None).await.unwrap_err();
        assert!(matches!(missing, TransportError::WorkingDirMissing { .. }));
    }

    #[tokio::test]
    async fn an_abandoned_run_kills_what_its_scripts_started() {
        let dir = tempfile::tempdir().unwrap();
        let t = here(dir.path());
        let running = t.running.clone();
        let script = t.run("sleep 30 & echo $! > child; wait", None, None);
        let killer = async {
            while !dir.path().join("child").exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            running.kill_all();
        };
        let (out, ()) = tokio::join!(script, killer);
        assert_eq!(out.unwrap().code, None, "killed by a signal");
        let child = std::fs::read_to_string(dir.path().join("child")).unwrap();
        // Gone, or a zombie waiting for init to reap it: either way, not running.
        let status = format!("/proc/{}/status", child.trim());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&status).is_ok_and(|s| !s.contains("State:\tZ")) {
            assert!(
                std::time::Instant::now() < deadline,
                "the background child outlived its group"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn ships_observes_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d").to_string_lossy().into_owned();
        let t = here(dir.path());
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
            .filter_map(std::result::Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".cairn"))
            .collect();
        assert!(leftovers.is_empty(), "staging folder removed");
    }

    #[tokio::test]
    async fn receipts_are_written_read_back_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let t = here(dir.path());
        let task = TaskId::parse("step.init@local").unwrap();
        let receipt = Receipt::new(ReceiptInfo {
            task: task.clone(),
            key: TaskKey::from_digest([7; 32]),
            finished_at: "2026-01-01T00:00:00Z".into(),
            by: "ops@laptop".into(),
            captured: Some("v1".into()),
        });
        t.write_receipt(&receipt).await.unwrap();
        assert!(
            dir.path()
                .join(".cairn/c/receipts/local/step.init@local.json")
                .is_file()
        );
        let report = t.probe(&ProbeRequest::default()).await.unwrap();
        assert_eq!(report.receipts.get(&task), Some(&receipt.info));
        t.forget_receipt(&task).await.unwrap();
        let report = t.probe(&ProbeRequest::default()).await.unwrap();
        assert!(report.receipts.is_empty());
    }
}
