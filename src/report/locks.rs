//! Locks as the operator reads them: what a wait for a lock says while it
//! waits (`apply`), and what `cairn unlock` found and broke.

use std::fmt::Write as _;

use serde::Serialize;

use super::Style;
use crate::state::{InFlight, LockNotice, LockScope};
use crate::transport::{BrokenLock, HostLockStatus};

/// What `cairn unlock` found, before it breaks anything.
#[derive(Debug)]
pub struct LockSurvey {
    pub cluster: String,
    /// The cluster lock's holder, if it is held.
    pub cluster_holder: Option<String>,
    /// Whether the cluster lock is part of this unlock (not when only some hosts are named).
    pub cluster_included: bool,
    /// The database session holding the cluster lock, when the state is
    /// kept in PostgreSQL (`None`: the lock file on this machine).
    pub cluster_session: Option<ClusterSession>,
    /// Each host asked about: its lock, or why it could not be read.
    pub hosts: Vec<(String, Result<HostLockStatus, String>)>,
}

impl LockSurvey {
    /// Whether there is anything to break.
    pub fn anything_held(&self) -> bool {
        (self.cluster_included && self.cluster_holder.is_some())
            || self
                .hosts
                .iter()
                .any(|(_, s)| matches!(s, Ok(HostLockStatus::Held(_))))
    }
}

/// Where a PostgreSQL cluster lock is held.
#[derive(Debug, Clone)]
pub struct ClusterSession {
    /// Where the state is: "PostgreSQL, schema `cairn`".
    pub place: String,
    /// The holder's database session (its backend pid).
    pub backend_pid: i32,
}

/// What breaking one lock came to.
#[derive(Debug)]
pub enum Unlocked {
    Cluster {
        holder: String,
    },
    /// The PostgreSQL session holding the cluster lock was ended (`Ok(true)`),
    /// had already let go (`Ok(false)`), or could not be ended.
    ClusterSession {
        holder: String,
        backend_pid: i32,
        result: Result<bool, String>,
    },
    Host {
        host: String,
        holder: String,
        result: Result<BrokenLock, String>,
    },
}

fn scope_text(scope: &LockScope) -> String {
    match scope {
        LockScope::Cluster(name) => format!("cluster `{name}`"),
        LockScope::Host(name) => format!("host {name}"),
    }
}

fn in_flight_text(in_flight: &[InFlight]) -> String {
    if in_flight.is_empty() {
        return "its shell, which has no command left".into();
    }
    in_flight
        .iter()
        .map(|c| {
            let limit = c.timeout.map_or_else(
                || "no timeout".to_string(),
                |t| format!("timeout {}", humantime::format_duration(t)),
            );
            format!(
                "{} (pid {}, running for {}, {limit})",
                c.label,
                c.pid,
                humantime::format_duration(c.running_for)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One notice of a lock wait, as a warning line (without `warning: `).
pub(super) fn lock_notice_text(notice: &LockNotice) -> String {
    match notice {
        LockNotice::WaitingForHolder {
            scope,
            holder,
            heartbeat_age,
            wait,
        } => format!(
            "{} is locked by {holder}{}: waiting up to {} for it (--lock-timeout)",
            scope_text(scope),
            heartbeat_age
                .map(|a| format!(", last heartbeat {a}s ago"))
                .unwrap_or_default(),
            humantime::format_duration(*wait)
        ),
        LockNotice::WaitingForDeadRun {
            scope,
            holder,
            why_dead,
            in_flight,
            bound,
        } => {
            let until = if let Some(bound) = bound {
                format!(
                    "; waiting at most {} (its timeouts), then it is killed",
                    humantime::format_duration(*bound)
                )
            } else {
                let host = match scope {
                    LockScope::Host(h) => format!(" {h}"),
                    LockScope::Cluster(_) => String::new(),
                };
                format!(
                    "; it has no timeout, so this waits until it ends (--lock-timeout bounds the wait; `cairn unlock{host}` kills it)"
                )
            };
            format!(
                "{} is held by a dead apply, {holder} ({why_dead}); waiting for the task it left in flight to finish there: {}{until}",
                scope_text(scope),
                in_flight_text(in_flight)
            )
        }
        LockNotice::KilledDeadRun {
            scope,
            holder,
            in_flight,
        } => format!(
            "{}: killed what the dead apply of {holder} still ran there past its timeout: {}",
            scope_text(scope),
            in_flight_text(in_flight)
        ),
        LockNotice::Acquired { scope, waited } => format!(
            "{}: lock taken after waiting {}; going on",
            scope_text(scope),
            humantime::format_duration(std::time::Duration::from_secs(waited.as_secs()))
        ),
    }
}

/// `cairn unlock`, before asking: every lock looked at, and its holder.
pub(super) fn survey_text(survey: &LockSurvey, style: Style) -> String {
    let mut out = String::new();
    if survey.cluster_included {
        match (&survey.cluster_holder, &survey.cluster_session) {
            (Some(holder), Some(session)) => {
                let _ = writeln!(
                    out,
                    "{} cluster `{}` ({}): held by {holder}\n       An advisory lock is freed only when its session ends: breaking it ends database session {pid} (`SELECT pg_terminate_backend({pid})`), which needs a superuser, a member of pg_signal_backend, or the holder's role. If that run still goes on, it stops at its next journal write, and what it recorded stays.",
                    style.yellow("locked"),
                    survey.cluster,
                    session.place,
                    pid = session.backend_pid,
                );
            }
            (None, Some(session)) => {
                let _ = writeln!(
                    out,
                    "{} cluster `{}` ({}): no lock held",
                    style.dim("free  "),
                    survey.cluster,
                    session.place
                );
            }
            (Some(holder), None) => {
                let _ = writeln!(
                    out,
                    "{} cluster `{}` (this machine): held by {holder}",
                    style.yellow("locked"),
                    survey.cluster
                );
            }
            (None, None) => {
                let _ = writeln!(
                    out,
                    "{} cluster `{}` (this machine): no lock held",
                    style.dim("free  "),
                    survey.cluster
                );
            }
        }
    }
    for (host, status) in &survey.hosts {
        let line = match status {
            Ok(HostLockStatus::Held(held)) => {
                let mut line = format!(
                    "{} host {host}: held by {}",
                    style.yellow("locked"),
                    held.holder
                );
                if let Some(age) = held.heartbeat_age {
                    let _ = write!(line, ", last heartbeat {age}s ago");
                }
                match &held.dead {
                    Some(why) => {
                        let _ = write!(line, " (dead: {why})");
                    }
                    None => line.push_str(" (may still be running)"),
                }
                if !held.in_flight.is_empty() {
                    let _ = write!(
                        line,
                        "; still running there: {}",
                        in_flight_text(&held.in_flight)
                    );
                }
                line
            }
            Ok(HostLockStatus::Free { left_owner: None }) => {
                format!("{} host {host}: no lock held", style.dim("free  "))
            }
            Ok(HostLockStatus::Free {
                left_owner: Some(owner),
            }) => format!(
                "{} host {host}: no lock held (an owner file left by {owner}, whose shell was killed, is taken over by the next apply)",
                style.dim("free  ")
            ),
            Err(why) => format!("{} host {host}: cannot tell: {why}", style.red("error ")),
        };
        out.push_str(&line);
        out.push('\n');
    }
    if !survey.anything_held() {
        out.push_str("\nNo lock is held: nothing to unlock.\n");
    }
    out
}

/// `cairn unlock`, after: what each break did.
pub(super) fn unlocked_text(done: &[Unlocked], style: Style) -> String {
    let mut out = String::new();
    for item in done {
        let line = match item {
            Unlocked::Cluster { holder } => format!(
                "{} cluster lock held by {holder}: a new lock file took its place (if that process still runs, it goes on, but no longer keeps other applies out)",
                style.green("broke")
            ),
            Unlocked::ClusterSession {
                holder,
                backend_pid,
                result,
            } => match result {
                Ok(true) => format!(
                    "{} cluster lock held by {holder}: its database session {backend_pid} was ended, which freed the lock",
                    style.green("broke")
                ),
                Ok(false) => format!(
                    "{} cluster lock of {holder}: its session let go (or the lock changed hands) since it was shown; left alone",
                    style.dim("free ")
                ),
                Err(why) => format!("{} cluster lock: {why}", style.red("failed")),
            },
            Unlocked::Host {
                host,
                holder,
                result,
            } => match result {
                Ok(BrokenLock::Killed) => format!(
                    "{} host {host}'s lock held by {holder}: its processes there were killed",
                    style.green("broke")
                ),
                Ok(BrokenLock::MovedAside) => format!(
                    "{} host {host}'s lock held by {holder}: not all of its processes could be killed, so the lock file was moved aside (lock.broken)",
                    style.green("broke")
                ),
                Ok(BrokenLock::ChangedHands) => format!(
                    "{} host {host}: the lock changed hands since it was shown; left alone (run `cairn unlock {host}` again to see its new holder)",
                    style.yellow("kept ")
                ),
                Ok(BrokenLock::WasFree) => format!(
                    "{} host {host}: the lock of {holder} came free by itself",
                    style.dim("free ")
                ),
                Err(why) => format!("{} host {host}: {why}", style.red("failed")),
            },
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `cairn unlock --json`: one document, what was found and what was done.
#[derive(Debug, Serialize)]
struct UnlockJson<'a> {
    cluster: &'a str,
    locks: Vec<LockJson>,
}

#[derive(Debug, Serialize)]
struct LockJson {
    /// `cluster` or `host`.
    scope: &'static str,
    name: String,
    /// `held`, `free`, `error`.
    found: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead: Option<String>,
    /// `killed`, `moved_aside`, `changed_hands`, `was_free`, `broken`,
    /// `failed`; absent when nothing was tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    done: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(super) fn unlock_json(survey: &LockSurvey, done: &[Unlocked]) -> String {
    let mut locks = Vec::new();
    if survey.cluster_included {
        locks.push(LockJson {
            scope: "cluster",
            name: survey.cluster.clone(),
            found: if survey.cluster_holder.is_some() {
                "held"
            } else {
                "free"
            },
            holder: survey.cluster_holder.clone(),
            dead: None,
            done: done.iter().find_map(|d| match d {
                Unlocked::Cluster { .. }
                | Unlocked::ClusterSession {
                    result: Ok(true), ..
                } => Some("broken"),
                Unlocked::ClusterSession {
                    result: Ok(false), ..
                } => Some("was_free"),
                Unlocked::ClusterSession { result: Err(_), .. } => Some("failed"),
                Unlocked::Host { .. } => None,
            }),
            error: done.iter().find_map(|d| match d {
                Unlocked::ClusterSession { result: Err(e), .. } => Some(e.clone()),
                _ => None,
            }),
        });
    }
    for (host, status) in &survey.hosts {
        let result = done.iter().find_map(|d| match d {
            Unlocked::Host {
                host: h, result, ..
            } if h == host => Some(result),
            _ => None,
        });
        let (done, error) = match result {
            None => (None, None),
            Some(Ok(BrokenLock::Killed)) => (Some("killed"), None),
            Some(Ok(BrokenLock::MovedAside)) => (Some("moved_aside"), None),
            Some(Ok(BrokenLock::ChangedHands)) => (Some("changed_hands"), None),
            Some(Ok(BrokenLock::WasFree)) => (Some("was_free"), None),
            Some(Err(e)) => (Some("failed"), Some(e.clone())),
        };
        let entry = match status {
            Ok(HostLockStatus::Held(held)) => LockJson {
                scope: "host",
                name: host.clone(),
                found: "held",
                holder: Some(held.holder.clone()),
                dead: held.dead.clone(),
                done,
                error,
            },
            Ok(HostLockStatus::Free { .. }) => LockJson {
                scope: "host",
                name: host.clone(),
                found: "free",
                holder: None,
                dead: None,
                done,
                error,
            },
            Err(why) => LockJson {
                scope: "host",
                name: host.clone(),
                found: "error",
                holder: None,
                dead: None,
                done,
                error: Some(why.clone()),
            },
        };
        locks.push(entry);
    }
    serde_json::to_string_pretty(&UnlockJson {
        cluster: &survey.cluster,
        locks,
    })
    .expect("serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_wait_for_a_dead_run_names_the_task_its_limit_and_the_way_out() {
        let text = lock_notice_text(&LockNotice::WaitingForDeadRun {
            scope: LockScope::Host("node0".into()),
            holder: "alice@laptop (pid 4242, `cairn apply`, started 2026-01-01T00:00:00Z)".into(),
            why_dead: "pid 4242 is gone from laptop".into(),
            in_flight: vec![InFlight {
                label: "step.init@node0".into(),
                pid: 77,
                running_for: Duration::from_secs(3),
                timeout: Some(Duration::from_secs(300)),
            }],
            bound: Some(Duration::from_secs(312)),
        });
        assert_eq!(
            text,
            "host node0 is held by a dead apply, alice@laptop (pid 4242, `cairn apply`, started 2026-01-01T00:00:00Z) (pid 4242 is gone from laptop); waiting for the task it left in flight to finish there: step.init@node0 (pid 77, running for 3s, timeout 5m); waiting at most 5m 12s (its timeouts), then it is killed"
        );
        let unbounded = lock_notice_text(&LockNotice::WaitingForDeadRun {
            scope: LockScope::Host("node0".into()),
            holder: "x".into(),
            why_dead: "y".into(),
            in_flight: vec![],
            bound: None,
        });
        assert!(
            unbounded.contains("`cairn unlock node0` kills it"),
            "{unbounded}"
        );
    }
}
