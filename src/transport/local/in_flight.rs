//! What runs on this machine for a cluster, recorded in its state folder
//! (`inflight/<pid>.json`), so that the next apply can wait for what a
//! killed one left running: this machine's equivalent of a host lock's
//! records of commands in flight (see `ssh::lock`).
//!
//! The cluster lock frees itself when cairn dies, but the scripts it
//! started here (each leads a process group of its own) go on, and nothing
//! enforces their time limits any more: cairn did that. So each script is
//! recorded while it runs with who started it and when; before an apply
//! probes a host of this machine it looks for scripts of that host whose
//! cairn is dead, says it waits for them, waits until they end or their
//! time limit passes, and then kills their process group.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::state::{
    InFlight, Liveness, LockHolder, LockNotice, LockPolicy, LockScope, ProcessStamp,
};
use crate::transport::TransportError;
use crate::transport::lock::{BrokenLock, HeldLock, HostLockStatus};

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(200);

/// One script running here.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// The cluster host it runs for.
    host: String,
    /// The task it runs, or what is known of it.
    label: String,
    /// Its pid, which is also its process group.
    pid: u32,
    /// This machine's hostname, and the stamp of the script's process.
    machine: String,
    stamp: ProcessStamp,
    /// The cairn that started it.
    owner: LockHolder,
    started_unix: u64,
    timeout_secs: Option<u64>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Record {
    fn running_for(&self) -> Duration {
        Duration::from_secs(now_unix().saturating_sub(self.started_unix))
    }

    fn in_flight(&self) -> InFlight {
        InFlight {
            label: self.label.clone(),
            pid: self.pid,
            running_for: self.running_for(),
            timeout: self.timeout_secs.map(Duration::from_secs),
        }
    }

    /// Whether anything of its process group still runs.
    fn running(&self) -> bool {
        match self.stamp.liveness(self.pid, &self.machine) {
            Liveness::Alive => !is_zombie(self.pid),
            // The leader ended; children it left in its group may run on
            // (a pid is not reused while a group still uses it as its id).
            Liveness::Dead(_) => {
                !Path::new(&format!("/proc/{}", self.pid)).exists() && group_exists(self.pid)
            }
            Liveness::Unknown => false,
        }
    }

    fn kill(&self) {
        if self.running() {
            kill_group(self.pid);
        }
    }
}

/// Whether `pid` has ended and only waits to be reaped.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            == Some("Z")
    })
}

fn group_exists(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the group exists.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) on a process group this cluster's cairn started.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Writes a record per running script into a cluster's `inflight/` folder.
#[derive(Debug)]
pub(crate) struct Recorder {
    dir: PathBuf,
    /// This cairn, as records name it; made on first use.
    owner: OnceLock<LockHolder>,
}

impl Recorder {
    pub(crate) fn new(dir: PathBuf) -> Recorder {
        Recorder {
            dir,
            owner: OnceLock::new(),
        }
    }

    /// Records that `pid` started running `label` for `host`; the returned
    /// path is removed when it ends. `None` when it could not be recorded
    /// (no state folder, or a read-only one): the run goes on without.
    pub(super) fn started(
        &self,
        pid: u32,
        host: &str,
        label: &str,
        timeout: Option<Duration>,
    ) -> Option<PathBuf> {
        let owner = self
            .owner
            .get_or_init(|| LockHolder::current(&std::env::args().collect::<Vec<_>>().join(" ")));
        let record = Record {
            host: host.to_string(),
            label: label.to_string(),
            pid,
            machine: owner.host.clone(),
            stamp: ProcessStamp::of(pid)?,
            owner: owner.clone(),
            started_unix: now_unix(),
            timeout_secs: timeout.map(|t| t.as_secs().max(1)),
        };
        // Into an existing state folder only: a command that records nothing
        // (`exec`, `cp`) never makes one.
        if !self.dir.is_dir() {
            std::fs::create_dir(&self.dir).ok()?;
        }
        let path = self.dir.join(format!("{pid}.json"));
        std::fs::write(&path, serde_json::to_vec(&record).ok()?).ok()?;
        Some(path)
    }
}

/// The scripts of `host` whose cairn is gone and that still run; records of
/// scripts that ended are removed on the way.
fn dead_runs(dir: &Path, host: &str) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut left = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(record) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
        else {
            // Torn by a kill mid-write: its script cannot be told apart; forget it.
            let _ = std::fs::remove_file(&path);
            continue;
        };
        if record.owner.liveness() == Liveness::Alive {
            // A live cairn's (this one's, or a plan's check): not left behind.
            continue;
        }
        if !record.running() {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if record.host == host {
            left.push(record);
        }
    }
    left
}

/// Before an apply probes `host` (of this machine): waits for the scripts a
/// dead apply left running for it, as the module docs say.
pub(super) async fn wait_for_dead_runs(
    dir: &Path,
    host: &str,
    policy: &LockPolicy,
) -> Result<(), TransportError> {
    let left = dead_runs(dir, host);
    let Some(first) = left.first() else {
        return Ok(());
    };
    let started = Instant::now();
    let scope = LockScope::Host(host.to_string());
    let holder = first.owner.to_string();
    let why_dead = match first.owner.liveness() {
        Liveness::Dead(why) => why,
        _ => "it is not running".to_string(),
    };
    // When each script's time limit runs out; `None`: one has none.
    let bound = left.iter().try_fold(Duration::ZERO, |longest, r| {
        let limit = Duration::from_secs(r.timeout_secs?);
        Some(longest.max(limit.saturating_sub(r.running_for())))
    });
    policy.notify(&LockNotice::WaitingForDeadRun {
        scope: scope.clone(),
        holder: holder.clone(),
        why_dead,
        in_flight: left.iter().map(Record::in_flight).collect(),
        bound,
    });
    let mut killed_at: Option<Instant> = None;
    loop {
        let running: Vec<&Record> = left.iter().filter(|r| r.running()).collect();
        if running.is_empty() {
            break;
        }
        if let Some(at) = killed_at {
            // SIGKILL is not ignored; give the kernel a moment, no more.
            if at.elapsed() > Duration::from_secs(5) {
                break;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        let waited = started.elapsed();
        let over_limit = match bound {
            Some(bound) => waited >= bound,
            None => !policy.wait_for_live.is_zero() && waited >= policy.wait_for_live,
        };
        if over_limit {
            if bound.is_none() {
                return Err(TransportError::DeadRunStillRunning {
                    host: host.to_string(),
                    owner: holder,
                    running: running
                        .iter()
                        .map(|r| format!("{} (pid {})", r.label, r.pid))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            for r in &running {
                r.kill();
            }
            policy.notify(&LockNotice::KilledDeadRun {
                scope: scope.clone(),
                holder: holder.clone(),
                in_flight: running.iter().map(|r| r.in_flight()).collect(),
            });
            killed_at = Some(Instant::now());
            continue;
        }
        tokio::time::sleep(POLL).await;
    }
    dead_runs(dir, host);
    policy.notify(&LockNotice::Acquired {
        scope,
        waited: started.elapsed(),
    });
    Ok(())
}

/// What `cairn unlock` sees here for `host`: held while a dead apply's
/// scripts still run for it.
pub(super) fn status(dir: &Path, host: &str) -> HostLockStatus {
    let left = dead_runs(dir, host);
    match left.first() {
        None => HostLockStatus::Free { left_owner: None },
        Some(first) => HostLockStatus::Held(HeldLock {
            holder: first.owner.to_string(),
            owner_line: String::new(),
            heartbeat_age: None,
            dead: match first.owner.liveness() {
                Liveness::Dead(why) => Some(why),
                _ => None,
            },
            in_flight: left.iter().map(Record::in_flight).collect(),
        }),
    }
}

/// `cairn unlock`: kills the scripts a dead apply left running for `host`.
pub(super) fn break_open(dir: &Path, host: &str) -> BrokenLock {
    let left = dead_runs(dir, host);
    if left.is_empty() {
        return BrokenLock::WasFree;
    }
    for r in &left {
        r.kill();
    }
    dead_runs(dir, host);
    BrokenLock::Killed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::sync::{Arc, Mutex};

    /// A script left running by a cairn that is gone: `sleep` in a group of its own.
    fn left_running(dir: &Path, host: &str, timeout_secs: Option<u64>) -> std::process::Child {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let me = LockHolder::current("cairn apply");
        let dead_owner = LockHolder {
            stamp: ProcessStamp {
                pid_start: me.stamp.pid_start + 1,
                ..me.stamp.clone()
            },
            ..me.clone()
        };
        let record = Record {
            host: host.into(),
            label: "step.slow@local".into(),
            pid: child.id(),
            machine: me.host.clone(),
            stamp: ProcessStamp::of(child.id()).unwrap(),
            owner: dead_owner,
            started_unix: now_unix(),
            timeout_secs,
        };
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join(format!("{}.json", child.id())),
            serde_json::to_vec(&record).unwrap(),
        )
        .unwrap();
        child
    }

    fn policy(wait: Duration) -> (LockPolicy, Arc<Mutex<Vec<LockNotice>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let policy = LockPolicy::new(
            LockHolder::current("cairn apply"),
            wait,
            Arc::new(move |n: &LockNotice| sink.lock().unwrap().push(n.clone())),
        );
        (policy, seen)
    }

    #[tokio::test]
    async fn a_dead_applys_script_is_waited_for_then_killed_at_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("inflight");
        let mut child = left_running(&records, "local", Some(1));
        // Another host's script is not this host's business.
        assert!(matches!(
            status(&records, "other"),
            HostLockStatus::Free { .. }
        ));
        assert!(matches!(status(&records, "local"), HostLockStatus::Held(h) if h.dead.is_some()));
        let (policy, seen) = policy(Duration::ZERO);
        wait_for_dead_runs(&records, "local", &policy)
            .await
            .unwrap();
        // Killed: reaped here, it reports the signal.
        let status = child.wait().unwrap();
        assert!(!status.success(), "{status:?}");
        let seen = seen.lock().unwrap();
        assert!(
            matches!(&seen[0], LockNotice::WaitingForDeadRun { in_flight, bound: Some(_), .. } if in_flight[0].label == "step.slow@local"),
            "{seen:?}"
        );
        assert!(
            matches!(&seen[1], LockNotice::KilledDeadRun { .. }),
            "{seen:?}"
        );
        assert!(matches!(&seen[2], LockNotice::Acquired { .. }), "{seen:?}");
        assert_eq!(
            std::fs::read_dir(&records).unwrap().count(),
            0,
            "record removed"
        );
    }

    #[tokio::test]
    async fn a_dead_applys_script_without_timeout_is_waited_for_up_to_lock_timeout_then_refused() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("inflight");
        let mut child = left_running(&records, "local", None);
        let (policy, _) = policy(Duration::from_millis(300));
        let err = wait_for_dead_runs(&records, "local", &policy)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("step.slow@local") && err.contains("cairn unlock local"),
            "{err}"
        );
        // `cairn unlock` kills it.
        assert_eq!(break_open(&records, "local"), BrokenLock::Killed);
        assert!(!child.wait().unwrap().success());
        assert_eq!(break_open(&records, "local"), BrokenLock::WasFree);
    }
}
