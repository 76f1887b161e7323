//! Locks: the cluster lock (one apply per cluster at a time), and the
//! vocabulary every lock shares — who holds it, whether that holder still
//! lives, how long to wait for it, and what a wait tells the operator.
//!
//! The cluster lock is a `flock` on `.cairn/<cluster>/lock`, held for as
//! long as the [`StateLock`] lives. The kernel releases it when the holder
//! exits, however it exits, so a killed apply never blocks the next one.
//! The file's content names the holder ([`LockHolder`]: user, machine, pid,
//! command, start time) so that a refused second apply can say who is in
//! the way. A live holder is waited for up to `--lock-timeout`
//! ([`LockPolicy::wait_for_live`]), polling, then refused.
//!
//! Host locks (`transport::HostLock`) outlive their holder when a command
//! it started still runs on the host; there, whether the holder is dead
//! decides between waiting for that command and refusing. A holder records
//! enough about its process ([`ProcessStamp`]: machine id, boot id, pid
//! namespace, the pid's start time) for a later cairn on the same machine to
//! tell for certain whether it is gone, even after its pid was reused.
//! Waits are told to the operator as [`LockNotice`]s, which `report`
//! renders.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often a host lock's heartbeat is touched while its holder lives.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// A heartbeat older than this (three intervals) means the holder is dead.
pub const HEARTBEAT_DEAD_AFTER: Duration = Duration::from_secs(30);

/// Who holds a lock: written into the lock's owner file when it is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    /// The machine cairn runs on (its hostname).
    pub host: String,
    pub user: String,
    pub command: String,
    pub started_at: String,
    /// What tells this process apart on its machine; empty in owners
    /// written by an older cairn.
    #[serde(default, flatten)]
    pub stamp: ProcessStamp,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{} (pid {}, `{}`, started {})",
            self.user, self.host, self.pid, self.command, self.started_at
        )
    }
}

impl LockHolder {
    /// This process, running `command`.
    pub fn current(command: &str) -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            user: current_user(),
            command: command.to_string(),
            started_at: super::now_rfc3339(),
            stamp: ProcessStamp::of(std::process::id()).unwrap_or_default(),
        }
    }

    /// `user@machine`, as receipts name who did a task.
    pub fn operator(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// Whether this holder's process still runs, as far as this machine can tell.
    pub fn liveness(&self) -> Liveness {
        self.stamp.liveness(self.pid, &self.host)
    }

    /// The holder an owner file names: its JSON, or `None` when it holds none.
    pub fn parse(text: &str) -> Option<LockHolder> {
        serde_json::from_str(text.trim()).ok()
    }
}

/// Who runs cairn: `$USER` (or `$LOGNAME`) as the shell says, else the
/// passwd entry of the real uid, else the uid itself.
pub fn current_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(|| whoami::username().ok())
        .unwrap_or_else(|| {
            // SAFETY: getuid has no preconditions and cannot fail.
            format!("uid {}", unsafe { libc::getuid() })
        })
}

/// What identifies a process beyond its pid: the machine and boot it runs
/// in, its pid namespace, and when it started (pids are reused).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStamp {
    /// `/etc/machine-id`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id`: changes at every boot.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub boot_id: String,
    /// The pid namespace (`/proc/self/ns/pid`), so a container's pid is not
    /// looked up outside it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pid_ns: String,
    /// The process's start time, in clock ticks after boot (`/proc/PID/stat`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid_start: u64,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Whether a lock's holder still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// Certainly gone, and why we know.
    Dead(String),
    /// It ran on another machine (or wrote no stamp): this machine cannot tell.
    Unknown,
}

impl ProcessStamp {
    /// The stamp of process `pid` of this machine, if `/proc` shows it.
    pub fn of(pid: u32) -> Option<ProcessStamp> {
        Some(ProcessStamp {
            machine_id: machine_id(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            pid_ns: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid_start: process_start(pid)?,
        })
    }

    /// Whether `pid`, stamped so on machine `host`, still runs.
    pub fn liveness(&self, pid: u32, host: &str) -> Liveness {
        let here = ProcessStamp::of(std::process::id()).unwrap_or_default();
        let this_host = gethostname::gethostname().to_string_lossy().into_owned();
        if self.machine_id.is_empty() || self.machine_id != here.machine_id || host != this_host {
            return Liveness::Unknown;
        }
        if !self.boot_id.is_empty() && self.boot_id != here.boot_id {
            return Liveness::Dead(format!("{host} has rebooted since pid {pid} took it"));
        }
        if self.pid_ns != here.pid_ns {
            return Liveness::Unknown;
        }
        match process_start(pid) {
            None => Liveness::Dead(format!("pid {pid} is gone from {host}")),
            Some(start) if self.pid_start != 0 && start != self.pid_start => Liveness::Dead(
                format!("pid {pid} on {host} ended (the pid is another process's now)"),
            ),
            Some(_) => Liveness::Alive,
        }
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}

fn machine_id() -> String {
    let id = read_trimmed("/etc/machine-id");
    if id.is_empty() {
        read_trimmed("/var/lib/dbus/machine-id")
    } else {
        id
    }
}

/// Field 22 of `/proc/PID/stat` (after the command name, which may hold spaces).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); the start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Which lock a notice is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockScope {
    /// The cluster lock in the state folder on this machine.
    Cluster(String),
    /// The lock on one host.
    Host(String),
}

/// A command a dead holder left running, that the lock waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The task it runs (`step.init@master0`), or what is known of it.
    pub label: String,
    /// Its pid, on the machine it runs on.
    pub pid: u32,
    /// How long it has run.
    pub running_for: Duration,
    /// Its time limit, if it has one.
    pub timeout: Option<Duration>,
}

/// What the operator is told while a lock is being waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockNotice {
    /// A live holder has the lock; waiting up to `--lock-timeout`.
    WaitingForHolder {
        scope: LockScope,
        holder: String,
        heartbeat_age: Option<u64>,
        wait: Duration,
    },
    /// The holder is dead, but commands it started still run: waiting for
    /// them, up to `bound` (their time limits; `None`: one has none).
    WaitingForDeadRun {
        scope: LockScope,
        holder: String,
        why_dead: String,
        in_flight: Vec<InFlight>,
        bound: Option<Duration>,
    },
    /// The dead holder's commands outlived their time limits: killed.
    KilledDeadRun {
        scope: LockScope,
        holder: String,
        in_flight: Vec<InFlight>,
    },
    /// The lock was free at last, after `waited`.
    Acquired { scope: LockScope, waited: Duration },
}

/// Hears about lock waits as they happen (the reporter renders them).
pub type LockNotices = Arc<dyn Fn(&LockNotice) + Send + Sync>;

/// How a command takes locks: for whom, how long it waits for a live
/// holder, and who hears about waits.
#[derive(Clone)]
pub struct LockPolicy {
    pub holder: LockHolder,
    /// `--lock-timeout`: how long to wait for a live holder before refusing
    /// (zero: refuse at once). It also bounds the wait for a dead holder's
    /// command that has no time limit of its own.
    pub wait_for_live: Duration,
    pub notices: LockNotices,
}

impl std::fmt::Debug for LockPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockPolicy")
            .field("holder", &self.holder)
            .field("wait_for_live", &self.wait_for_live)
            .finish_non_exhaustive()
    }
}

impl LockPolicy {
    pub fn new(holder: LockHolder, wait_for_live: Duration, notices: LockNotices) -> LockPolicy {
        LockPolicy {
            holder,
            wait_for_live,
            notices,
        }
    }

    /// A policy that refuses at once and tells no one (tests, tools).
    pub fn immediate(holder: LockHolder) -> LockPolicy {
        LockPolicy::new(holder, Duration::ZERO, Arc::new(|_| {}))
    }

    pub fn notify(&self, notice: &LockNotice) {
        (self.notices)(notice);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "cluster `{cluster}` is locked by {holder}{}; wait for it to finish, wait for it with `--lock-timeout 10m`, or run `cairn unlock` if that process is stuck",
        if waited.is_zero() { String::new() } else { format!(" (waited {})", humantime::format_duration(*waited)) }
    )]
    Held {
        cluster: String,
        holder: String,
        /// How long it was waited for (`--lock-timeout`).
        waited: Duration,
    },
    /// The state backend (PostgreSQL) failed; the message says what and why.
    #[error("{0}")]
    Backend(String),
    #[error("failed to lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

/// How often a waiting cluster lock tries again.
const RETRY: Duration = Duration::from_millis(250);

impl StateLock {
    /// Takes the lock for the policy's holder; while another process holds
    /// it, waits up to the policy's `--lock-timeout`, then says who holds it.
    pub fn acquire(
        path: &Path,
        cluster: &str,
        policy: &LockPolicy,
    ) -> Result<StateLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let started = Instant::now();
        let mut told = false;
        let mut file = loop {
            let mut file = open_lock_file(path).map_err(io)?;
            match file.try_lock() {
                Ok(()) => {
                    // `unlock` may have put a new file in place while we waited on the old one.
                    if !same_file(&file, path) {
                        continue;
                    }
                    break file;
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
            let holder = describe_holder(&read_all(&mut file));
            let waited = started.elapsed();
            if waited >= policy.wait_for_live {
                return Err(LockError::Held {
                    cluster: cluster.to_string(),
                    holder,
                    waited: policy.wait_for_live,
                });
            }
            if !told {
                told = true;
                policy.notify(&LockNotice::WaitingForHolder {
                    scope: LockScope::Cluster(cluster.to_string()),
                    holder,
                    heartbeat_age: None,
                    wait: policy.wait_for_live,
                });
            }
            std::thread::sleep(RETRY.min(policy.wait_for_live.saturating_sub(waited)));
        };
        if told {
            policy.notify(&LockNotice::Acquired {
                scope: LockScope::Cluster(cluster.to_string()),
                waited: started.elapsed(),
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(
            serde_json::to_string(&policy.holder)
                .expect("serializes")
                .as_bytes(),
        )
        .map_err(io)?;
        file.flush().map_err(io)?;
        Ok(StateLock { _file: file })
    }

    /// Who holds the lock at `path` now, without taking it: `None` when it is free.
    pub fn holder(path: &Path) -> Result<Option<String>, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if !path.exists() {
            return Ok(None);
        }
        let mut file = open_lock_file(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(None),
            Err(std::fs::TryLockError::WouldBlock) => {
                Ok(Some(describe_holder(&read_all(&mut file))))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// Breaks the lock at `path` open (`cairn unlock`): a new, empty lock
    /// file takes its place, so the next apply locks that one. The holder
    /// is not stopped: it keeps the old file locked and goes on.
    pub fn break_open(path: &Path) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let fresh = path.with_extension("broken-new");
        std::fs::write(&fresh, b"").map_err(io)?;
        std::fs::rename(&fresh, path).map_err(io)
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn read_all(file: &mut std::fs::File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    text
}

/// Whether the open `file` is still the one at `path`.
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A lock file's content, as the operator reads its holder.
pub fn describe_holder(text: &str) -> String {
    match LockHolder::parse(text) {
        Some(holder) => holder.to_string(),
        None if text.trim().is_empty() => {
            "another cairn process (it has not written its details yet)".into()
        }
        None => text.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn recorder() -> (LockNotices, Arc<Mutex<Vec<LockNotice>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        (
            Arc::new(move |n: &LockNotice| sink.lock().unwrap().push(n.clone())),
            seen,
        )
    }

    #[test]
    fn second_lock_is_refused_with_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let policy = LockPolicy::immediate(LockHolder::current("cairn apply"));
        let first = StateLock::acquire(&path, "c", &policy).unwrap();
        let err = StateLock::acquire(&path, "c", &policy)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("`cairn apply`"), "names the command: {err}");
        assert!(err.contains("--lock-timeout"), "says how to wait: {err}");
        assert_eq!(
            StateLock::holder(&path).unwrap().as_deref(),
            Some(policy.holder.to_string().as_str())
        );
        drop(first);
        assert_eq!(StateLock::holder(&path).unwrap(), None);
        StateLock::acquire(&path, "c", &policy).expect("free after drop");
    }

    #[test]
    fn a_lock_timeout_waits_for_a_live_holder_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = StateLock::acquire(
            &path,
            "c",
            &LockPolicy::immediate(LockHolder::current("first")),
        )
        .unwrap();
        let (notices, seen) = recorder();
        let policy = LockPolicy::new(
            LockHolder::current("second"),
            Duration::from_secs(60),
            notices,
        );
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        StateLock::acquire(&path, "c", &policy).expect("taken once the first lets go");
        release.join().unwrap();
        let seen = seen.lock().unwrap();
        assert!(
            matches!(&seen[0], LockNotice::WaitingForHolder { holder, .. } if holder.contains("`first`")),
            "{seen:?}"
        );
        assert!(matches!(&seen[1], LockNotice::Acquired { .. }), "{seen:?}");
    }

    #[test]
    fn a_broken_lock_lets_the_next_apply_in_while_its_holder_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let policy = LockPolicy::immediate(LockHolder::current("cairn apply"));
        let _stuck = StateLock::acquire(&path, "c", &policy).unwrap();
        StateLock::break_open(&path).unwrap();
        assert_eq!(StateLock::holder(&path).unwrap(), None);
        StateLock::acquire(&path, "c", &policy).expect("the new file is free");
    }

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_dead() {
        let me = LockHolder::current("cairn apply");
        assert_eq!(me.liveness(), Liveness::Alive);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let stamp = ProcessStamp::of(pid);
        child.wait().unwrap();
        // A child that ended before it was stamped cannot be looked at; one stamped is judged.
        if let Some(stamp) = stamp {
            let gone = LockHolder {
                pid,
                stamp,
                ..me.clone()
            };
            assert!(
                matches!(gone.liveness(), Liveness::Dead(_)),
                "{:?}",
                gone.liveness()
            );
        }
        // The same pid, restarted since: another process.
        let reused = LockHolder {
            stamp: ProcessStamp {
                pid_start: me.stamp.pid_start + 1,
                ..me.stamp.clone()
            },
            ..me.clone()
        };
        assert!(matches!(reused.liveness(), Liveness::Dead(_)));
        // Another machine, or an owner written by an older cairn: cannot tell.
        let elsewhere = LockHolder {
            host: "laptop".into(),
            ..me.clone()
        };
        assert_eq!(elsewhere.liveness(), Liveness::Unknown);
        let old: LockHolder = serde_json::from_str(
            r#"{"pid":4242,"host":"laptop","user":"alice","command":"cairn apply","started_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(old.liveness(), Liveness::Unknown);
        assert_eq!(
            old.to_string(),
            "alice@laptop (pid 4242, `cairn apply`, started 2026-01-01T00:00:00Z)"
        );
    }

    #[test]
    fn the_user_comes_from_the_system_when_the_environment_has_none() {
        // Whatever the environment says, the passwd entry of our uid has a name here.
        let from_system = whoami::username().expect("this machine has a passwd entry for us");
        assert!(!from_system.is_empty());
        assert!(!current_user().is_empty());
        assert_ne!(current_user(), "unknown");
    }
}
