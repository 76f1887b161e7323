//! The host lock: one apply per host at a time, taken with the probe.
//!
//! The lock command takes a `flock` on the host's cairn folder, records its
//! owner, runs the refresh probe, and then becomes the host's first shell
//! (see `shells`), so locking, probing and the shell cost one channel and
//! one round trip. On a fresh host the first files to ship can ride along:
//! written behind the lock command as the shell's first frame, staged as
//! soon as the probe is done (see `ship::stage_script`).
//!
//! The lock folder (`/var/lib/cairn/<cluster>/`) holds, beside `lock`:
//! `lock.owner` (the holder, one JSON line; emptied by a clean end),
//! `lock.heartbeat` (touched every 10 s while the holder lives),
//! `lock.session` (the session id of the holder's shell, so it can be
//! killed), `lock.inflight/<id>` (`<pid> <timeout s> <task>` for each command
//! running, emptied when it ends) and `lock.ended` (the owner line of the
//! run whose end of the channel closed, written when it does). Taking the
//! lock starts no process when the last run ended cleanly: nothing there
//! needs removing, since a record is emptied rather than removed and
//! `lock.ended` counts only while it names the holder.
//!
//! When cairn dies, its commands still running on the host keep the lock
//! (their shell holds it until they end; their `timeout` bounds them). The
//! next apply that finds the lock busy judges its holder: dead when its pid
//! is gone from this machine (the holder ran here), when its channel has
//! closed, or when its heartbeat is older than three intervals. A dead
//! holder's commands are waited for, up to their time limits (plus the
//! kill grace of `timeout -k`), and killed if they outlive them; a live
//! holder is waited for up to `--lock-timeout`, then refused by name.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::SshTransport;
use super::probe::PROBE_END;
use super::receipts::state_dir_snippet;
use super::shells::{SHELL_LOOP, Shell, Shells};
use crate::state::lock::{HEARTBEAT_DEAD_AFTER, HEARTBEAT_INTERVAL, describe_holder};
use crate::state::{InFlight, Liveness, LockHolder, LockNotice, LockPolicy, LockScope};
use crate::transport::lock::{BrokenLock, HeldLock, HostLockStatus};
use crate::transport::{ProbeReport, ProbeRequest, TransportError, shell_quote};

/// Past a command's own time limit: `timeout -k 5`'s grace, and time for
/// its shell to notice and let go.
const KILL_GRACE: Duration = Duration::from_secs(15);

/// How long a dead holder's shell may take to end when it has no command in
/// flight (it may be finishing a file stream, or noticing that cairn left).
const SETTLE_GRACE: Duration = Duration::from_secs(30);

/// Longest single wait on the host before cairn looks at the holder again.
const RECHECK: Duration = Duration::from_secs(30);

/// What one try at the lock found.
enum Attempt {
    Locked(SshLock, ProbeReport),
    Busy(Busy),
}

/// A lock held by someone else, as its folder describes it.
#[derive(Debug, Clone)]
struct Busy {
    /// `lock.owner`'s line as is (for `unlock` to check it did not change hands).
    owner_line: String,
    holder: Option<LockHolder>,
    heartbeat_age: Option<u64>,
    /// Seconds since the holder's channel closed, if it has.
    closed_age: Option<u64>,
    in_flight: Vec<InFlight>,
}

impl Busy {
    /// Parses the `OWNER`/`NOW`/`BEAT`/`CLOSED`/`IN` lines of [`busy_report`].
    fn parse(lines: &[String]) -> Busy {
        let field = |tag: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(tag))
                .map(|v| v.trim().to_string())
        };
        let number = |tag: &str| field(tag).and_then(|v| v.parse::<i64>().ok());
        let now = number("NOW ");
        let age = |at: Option<i64>| match (now, at) {
            (Some(now), Some(at)) => Some(u64::try_from(now - at).unwrap_or(0)),
            _ => None,
        };
        let owner_line = field("OWNER ").unwrap_or_default();
        let in_flight = lines
            .iter()
            .filter_map(|l| l.strip_prefix("IN "))
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let started: i64 = f.next()?.parse().ok()?;
                let pid: u32 = f.next()?.parse().ok()?;
                let timeout: u64 = f.next()?.parse().ok()?;
                let label = f.next().unwrap_or("a command").to_string();
                Some(InFlight {
                    label,
                    pid,
                    running_for: Duration::from_secs(age(Some(started)).unwrap_or(0)),
                    timeout: (timeout > 0).then(|| Duration::from_secs(timeout)),
                })
            })
            .collect();
        Busy {
            holder: LockHolder::parse(&owner_line),
            heartbeat_age: age(number("BEAT ")),
            closed_age: age(number("CLOSED ")),
            owner_line,
            in_flight,
        }
    }

    fn holder_text(&self) -> String {
        describe_holder(&self.owner_line)
    }

    /// Why the holder is dead, or `None` while it may live.
    fn dead(&self) -> Option<String> {
        if let Some(holder) = &self.holder {
            match holder.liveness() {
                Liveness::Alive => return None,
                Liveness::Dead(why) => return Some(why),
                Liveness::Unknown => {}
            }
        }
        if let Some(age) = self.closed_age {
            return Some(format!("its connection closed {age}s ago"));
        }
        match self.heartbeat_age {
            Some(age) if age > HEARTBEAT_DEAD_AFTER.as_secs() => {
                Some(format!("its last heartbeat is {age}s old"))
            }
            _ => None,
        }
    }

    /// How long the dead holder's commands may still run: `None` when one
    /// of them has no time limit.
    fn bound(&self) -> Option<Duration> {
        let mut longest = SETTLE_GRACE;
        for command in &self.in_flight {
            let left = command.timeout?.saturating_sub(command.running_for) + KILL_GRACE;
            longest = longest.max(left);
        }
        Some(longest)
    }

    fn held(&self) -> HeldLock {
        HeldLock {
            holder: self.holder_text(),
            owner_line: self.owner_line.clone(),
            heartbeat_age: self.heartbeat_age,
            dead: self.dead(),
            in_flight: self.in_flight.clone(),
        }
    }
}

/// Shell lines run once the lock is taken, making its folder ready for
/// this run without starting a process in the usual case: the in-flight
/// records a killed run left are emptied (their commands have ended: they
/// held the lock), and `lock.closed`, the closed mark of cairns before
/// `lock.ended`, is removed if one left it (they read its mere presence as
/// "the holder's channel closed").
const FRESH_RECORDS: &str = "[ -d \"$cairn_d/lock.inflight\" ] || mkdir \"$cairn_d/lock.inflight\"\nfor cairn_lx in \"$cairn_d\"/lock.inflight/*; do [ -s \"$cairn_lx\" ] && : > \"$cairn_lx\"; done\n[ ! -e \"$cairn_d/lock.closed\" ] || rm -f \"$cairn_d/lock.closed\"\n";

/// Shell lines printing what a busy lock's folder says: `OWNER`, `NOW`,
/// `BEAT` (heartbeat time), `CLOSED` (when the holder's channel closed),
/// and an `IN <start> <pid> <timeout> <label>` line per command in flight.
fn busy_report() -> &'static str {
    "cairn_lo=; { IFS= read -r cairn_lo < \"$cairn_d/lock.owner\"; } 2>/dev/null\necho \"OWNER $cairn_lo\"\necho \"NOW $(date +%s)\"\necho \"BEAT $(stat -c %Y \"$cairn_d/lock.heartbeat\" 2>/dev/null)\"\ncairn_le=; { IFS= read -r cairn_le < \"$cairn_d/lock.ended\"; } 2>/dev/null\nif [ -e \"$cairn_d/lock.closed\" ]; then echo \"CLOSED $(stat -c %Y \"$cairn_d/lock.closed\" 2>/dev/null)\"; elif [ -n \"$cairn_lo\" ] && [ \"$cairn_le\" = \"$cairn_lo\" ]; then echo \"CLOSED $(stat -c %Y \"$cairn_d/lock.ended\" 2>/dev/null)\"; else echo CLOSED; fi\nfor cairn_lx in \"$cairn_d\"/lock.inflight/*; do [ -s \"$cairn_lx\" ] && { IFS= read -r cairn_ll < \"$cairn_lx\"; } 2>/dev/null && echo \"IN $(stat -c %Y \"$cairn_lx\") $cairn_ll\"; done\n"
}

/// Shell lines killing every process of the session that holds the lock
/// (the holder's shell, the commands it waits for and what they started),
/// if `lock.owner` still reads `owner_line`; prints `CHANGED`, `NOSESSION`
/// or `KILLED`.
fn kill_holder_snippet(owner_line: &str) -> String {
    format!(
        "cairn_lo=; {{ IFS= read -r cairn_lo < \"$cairn_d/lock.owner\"; }} 2>/dev/null\nif [ \"$cairn_lo\" != {owner} ]; then echo CHANGED; else\ncairn_ls=; {{ read -r cairn_ls < \"$cairn_d/lock.session\"; }} 2>/dev/null\nif [ -z \"$cairn_ls\" ]; then echo NOSESSION; else\nfor cairn_lp in /proc/[0-9]*; do {{ read -r cairn_lq _ _ _ _ cairn_lt _ < \"$cairn_lp/stat\"; }} 2>/dev/null || continue; [ \"$cairn_lt\" = \"$cairn_ls\" ] && [ \"$cairn_lq\" != \"$$\" ] && kill -9 \"$cairn_lq\" 2>/dev/null; done\necho KILLED\nfi\nfi\n",
        owner = shell_quote(owner_line)
    )
}

impl SshTransport {
    /// Takes the host lock for this run and, in the same round trip, probes
    /// the host (see [`SshTransport::probe`]). The lock's channel then
    /// becomes the host's first shell; see [`SshLock`]. A busy lock is
    /// waited for as the module docs say, and each wait is told through
    /// the policy's notices.
    pub(crate) async fn lock_and_probe(
        &self,
        policy: &LockPolicy,
        request: &ProbeRequest,
    ) -> Result<(SshLock, ProbeReport), TransportError> {
        let started = Instant::now();
        let scope = LockScope::Host(self.host.clone());
        let mut wait = Duration::ZERO;
        let mut told_live = false;
        // Once the holder is found dead: when its commands are past their limits, and whether they were killed.
        let mut dead_wait: Option<(Option<Instant>, bool)> = None;
        loop {
            let busy = match self.try_lock(policy, request, wait).await? {
                Attempt::Locked(lock, report) => {
                    if told_live || dead_wait.is_some() {
                        policy.notify(&LockNotice::Acquired {
                            scope,
                            waited: started.elapsed(),
                        });
                    }
                    return Ok((lock, report));
                }
                Attempt::Busy(busy) => busy,
            };
            let now = Instant::now();
            if let Some(why_dead) = busy.dead() {
                let (deadline, killed) = dead_wait.get_or_insert_with(|| {
                    let bound = busy.bound();
                    policy.notify(&LockNotice::WaitingForDeadRun {
                        scope: scope.clone(),
                        holder: busy.holder_text(),
                        why_dead,
                        in_flight: busy.in_flight.clone(),
                        bound,
                    });
                    (bound.map(|b| now + b), false)
                });
                wait = match *deadline {
                    Some(deadline) if now >= deadline => {
                        if *killed {
                            return Err(self.error(format!(
                                "the lock is still held after the dead run of {} was killed; run `cairn unlock {}`",
                                busy.holder_text(),
                                self.host
                            )));
                        }
                        self.kill_holder(&busy.owner_line).await?;
                        policy.notify(&LockNotice::KilledDeadRun {
                            scope: scope.clone(),
                            holder: busy.holder_text(),
                            in_flight: busy.in_flight.clone(),
                        });
                        *killed = true;
                        Duration::from_secs(10)
                    }
                    Some(deadline) => (deadline - now).min(RECHECK),
                    None => {
                        let waited = started.elapsed();
                        if !policy.wait_for_live.is_zero() && waited >= policy.wait_for_live {
                            return Err(TransportError::DeadRunStillRunning {
                                host: self.host.clone(),
                                owner: busy.holder_text(),
                                running: describe_in_flight(&busy.in_flight),
                            });
                        }
                        if policy.wait_for_live.is_zero() {
                            RECHECK
                        } else {
                            policy.wait_for_live.saturating_sub(waited).min(RECHECK)
                        }
                    }
                };
            } else {
                let waited = started.elapsed();
                if waited >= policy.wait_for_live {
                    return Err(TransportError::HostLocked {
                        host: self.host.clone(),
                        owner: busy.holder_text(),
                        heartbeat_age: busy.heartbeat_age,
                        waited: policy.wait_for_live,
                    });
                }
                if !told_live {
                    told_live = true;
                    policy.notify(&LockNotice::WaitingForHolder {
                        scope: scope.clone(),
                        holder: busy.holder_text(),
                        heartbeat_age: busy.heartbeat_age,
                        wait: policy.wait_for_live,
                    });
                }
                wait = policy
                    .wait_for_live
                    .saturating_sub(waited)
                    .min(HEARTBEAT_INTERVAL);
            }
        }
    }

    /// One try: waits up to `wait` on the host for the lock, then either
    /// holds it (and has probed) or reports who holds it.
    async fn try_lock(
        &self,
        policy: &LockPolicy,
        request: &ProbeRequest,
        wait: Duration,
    ) -> Result<Attempt, TransportError> {
        let owner = serde_json::to_string(&policy.holder).expect("a lock holder serializes");
        let (probe, longest) = self.probe_script(request);
        // A fresh host's state folder is made with the two folders the run
        // will want in it by one `mkdir`, not three.
        let script = format!(
            "{dir}[ -d \"$cairn_d\" ] || mkdir -p \"$cairn_d\" \"$cairn_d/receipts\" \"$cairn_d/lock.inflight\" || exit 3\nexec 9>>\"$cairn_d/lock\"\ncairn_ln={wait}\nwhile ! flock -n 9; do\nif [ \"$cairn_ln\" -le 0 ]; then\necho BUSY\n{busy}exit 0\nfi\nsleep 1\ncairn_ln=$((cairn_ln - 1))\ndone\ncairn_lo=; {{ IFS= read -r cairn_lo < \"$cairn_d/lock.owner\"; }} 2>/dev/null\n[ -n \"$cairn_lo\" ] && printf 'STALE %s\\n' \"$cairn_lo\"\ncairn_lme={owner}\nprintf '%s\\n' \"$cairn_lme\" > \"$cairn_d/lock.owner\"\n: > \"$cairn_d/lock.heartbeat\"\n{fresh}{{ read -r _ _ _ _ _ cairn_ls _ < /proc/$$/stat; }} 2>/dev/null && echo \"$cairn_ls\" > \"$cairn_d/lock.session\"\necho LOCKED\n{{\n{probe}}} </dev/null\necho {PROBE_END}\ncairn_hb=\"$cairn_d/lock.heartbeat\"\ncairn_fl=\"$cairn_d/lock.inflight\"\ncairn_closed=\"$cairn_d/lock.ended\"\n{SHELL_LOOP}cairn_lo=; {{ IFS= read -r cairn_lo < \"$cairn_d/lock.owner\"; }} 2>/dev/null\n[ \"$cairn_lo\" = \"$cairn_lme\" ] && : > \"$cairn_d/lock.owner\"\n",
            dir = state_dir_snippet(&self.cluster),
            wait = wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            busy = busy_report(),
            owner = shell_quote(&owner),
            fresh = FRESH_RECORDS,
        );
        // Files to send behind the probe go on the first try only: one
        // that waits for a busy lock would hold them back for nothing.
        let prestage = request.prestage.as_ref().filter(|_| wait.is_zero());
        let early = prestage.map(|p| self.stage_frame(p));
        let opened = match tokio::time::timeout(
            Duration::from_secs(60)
                .saturating_add(longest)
                .saturating_add(wait),
            self.open_channel_with(&script, early),
        )
        .await
        {
            Ok(opened) => opened?,
            Err(_) => return Err(self.error("taking the host lock and probing it timed out")),
        };
        let lines: Vec<String> = opened
            .lines
            .iter()
            .map(|l| l.trim_end_matches('\n').to_string())
            .collect();
        if lines.first().map(String::as_str) == Some("BUSY") {
            return Ok(Attempt::Busy(Busy::parse(&lines)));
        }
        let locked_at = lines.iter().position(|l| l == "LOCKED");
        let probe_end = lines.iter().position(|l| l == PROBE_END);
        let (Some(started), Some(locked_at), Some(probe_end)) =
            (opened.shell, locked_at, probe_end)
        else {
            let said = format!("{} {}", lines.join(" "), opened.stderr.trim());
            return Err(self.error(format!("failed to take the host lock: {}", said.trim())));
        };
        let stale = lines
            .iter()
            .take(locked_at)
            .find_map(|l| l.strip_prefix("STALE "))
            .map(describe_holder);
        let mut probed = lines[locked_at + 1..probe_end].join("\n");
        probed.push('\n');
        let report = self.parse_probe(&probed, request);
        let (shell, staged) = Shell::new(started, true);
        self.shells.adopt(shell).await;
        if let (Some(prestage), Some(answer)) = (prestage, staged) {
            self.keep_prestaged(prestage, answer);
        }
        let shells = self.shells.clone();
        let heartbeat = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                shells.ping_lock().await;
            }
        });
        Ok(Attempt::Locked(
            SshLock {
                heartbeat,
                shells: self.shells.clone(),
                stale,
            },
            report,
        ))
    }

    /// Kills the session holding the lock, if its owner is still `owner_line`.
    async fn kill_holder(&self, owner_line: &str) -> Result<String, TransportError> {
        let script = format!(
            "{dir}{kill}",
            dir = state_dir_snippet(&self.cluster),
            kill = kill_holder_snippet(owner_line)
        );
        let out = self
            .exec(&script, None, Some(Duration::from_secs(60)))
            .await?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Who holds the host lock now, without taking it (`cairn unlock`).
    pub(crate) async fn lock_status(&self) -> Result<HostLockStatus, TransportError> {
        let script = format!(
            "{dir}[ -d \"$cairn_d\" ] || {{ echo NONE; exit 0; }}\nexec 9>>\"$cairn_d/lock\"\nif flock -n 9; then\ncairn_lo=; {{ IFS= read -r cairn_lo < \"$cairn_d/lock.owner\"; }} 2>/dev/null\necho \"FREE $cairn_lo\"\nexit 0\nfi\necho BUSY\n{busy}",
            dir = state_dir_snippet(&self.cluster),
            busy = busy_report(),
        );
        let out = self
            .exec(&script, None, Some(Duration::from_secs(60)))
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        match lines.first().map(String::as_str) {
            Some("NONE") => Ok(HostLockStatus::Free { left_owner: None }),
            Some(first) if first.starts_with("FREE") => {
                let left = first.trim_start_matches("FREE").trim();
                Ok(HostLockStatus::Free {
                    left_owner: (!left.is_empty()).then(|| describe_holder(left)),
                })
            }
            Some("BUSY") => Ok(HostLockStatus::Held(Busy::parse(&lines).held())),
            _ => Err(self.error(format!(
                "could not read the host lock: {} {}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    /// Breaks the host lock `seen` showed (`cairn unlock`): kills the
    /// session holding it, waits for the lock to come free (moving the lock
    /// file aside if it does not), and clears the owner and its records.
    pub(crate) async fn break_lock(&self, seen: &HeldLock) -> Result<BrokenLock, TransportError> {
        let script = format!(
            "{dir}exec 9>>\"$cairn_d/lock\"\nif flock -n 9; then echo FREE; exit 0; fi\n{kill}cairn_ln=10\nwhile ! flock -n 9; do\nif [ \"$cairn_ln\" -le 0 ]; then mv -f \"$cairn_d/lock\" \"$cairn_d/lock.broken\" && echo MOVED; break; fi\nsleep 1\ncairn_ln=$((cairn_ln - 1))\ndone\n: > \"$cairn_d/lock.owner\"\nrm -rf \"$cairn_d/lock.inflight\" \"$cairn_d/lock.closed\" \"$cairn_d/lock.ended\" \"$cairn_d/lock.session\"\n",
            dir = state_dir_snippet(&self.cluster),
            kill = kill_holder_snippet(&seen.owner_line)
        );
        let out = self
            .exec(&script, None, Some(Duration::from_secs(90)))
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let said = |word: &str| text.lines().any(|l| l == word);
        if said("FREE") {
            Ok(BrokenLock::WasFree)
        } else if said("CHANGED") {
            Ok(BrokenLock::ChangedHands)
        } else if said("MOVED") {
            Ok(BrokenLock::MovedAside)
        } else if said("KILLED") || said("NOSESSION") {
            Ok(BrokenLock::Killed)
        } else {
            Err(self.error(format!(
                "could not break the host lock: {} {}",
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

/// The commands a dead run left, in words.
fn describe_in_flight(in_flight: &[InFlight]) -> String {
    let mut text = String::new();
    for (i, c) in in_flight.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let _ = write!(
            text,
            "{} (pid {}, running for {})",
            c.label,
            c.pid,
            humantime::format_duration(c.running_for)
        );
    }
    if text.is_empty() {
        text.push_str("its shell");
    }
    text
}

/// The lock this run holds on one host. The remote side holds a `flock`
/// for as long as the lock's channel is open; that channel is also the
/// host's first shell (see `shells`), and touches a heartbeat file on every
/// command and every 10 seconds when idle. If cairn dies, the channel
/// closes and the lock is freed once the commands in flight end. A lock
/// owner file left behind (the remote side was killed) is reported as
/// stale by the next run, which takes over.
pub(crate) struct SshLock {
    heartbeat: tokio::task::JoinHandle<()>,
    shells: Arc<Shells>,
    /// The owner of a stale lock this run took over.
    pub(crate) stale: Option<String>,
}

impl SshLock {
    /// Releases the lock: ends the heartbeat and closes the lock's shell.
    pub(crate) async fn release(self) {
        self.heartbeat.abort();
        let _ = self.heartbeat.await;
        self.shells.close(true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn a_busy_lock_is_read_and_its_holder_judged() {
        let busy = Busy::parse(&lines(
            "BUSY\nOWNER {\"pid\":4242,\"host\":\"laptop\",\"user\":\"alice\",\"command\":\"cairn apply\",\"started_at\":\"2026-01-01T00:00:00Z\"}\nNOW 1000\nBEAT 995\nCLOSED \nIN 990 77 300 step.init@master0\nIN 999 78 0 step.join@master0\n",
        ));
        assert_eq!(busy.heartbeat_age, Some(5));
        assert_eq!(busy.closed_age, None);
        assert_eq!(
            busy.holder_text(),
            "alice@laptop (pid 4242, `cairn apply`, started 2026-01-01T00:00:00Z)"
        );
        // Another machine, a fresh heartbeat, the channel open: maybe alive.
        assert_eq!(busy.dead(), None);
        assert_eq!(busy.in_flight.len(), 2);
        assert_eq!(busy.in_flight[0].label, "step.init@master0");
        assert_eq!(busy.in_flight[0].running_for, Duration::from_secs(10));
        assert_eq!(busy.in_flight[0].timeout, Some(Duration::from_secs(300)));
        // One command has no time limit: no bound.
        assert_eq!(busy.bound(), None);

        let stale_beat = Busy::parse(&lines("BUSY\nOWNER x\nNOW 1000\nBEAT 960\nCLOSED\n"));
        assert!(stale_beat.dead().unwrap().contains("40s old"));
        assert_eq!(stale_beat.bound(), Some(SETTLE_GRACE));
        let closed = Busy::parse(&lines(
            "BUSY\nOWNER x\nNOW 1000\nBEAT 999\nCLOSED 998\nIN 900 12 120 step.a@h\n",
        ));
        assert!(closed.dead().unwrap().contains("connection closed 2s ago"));
        assert_eq!(closed.bound(), Some(Duration::from_secs(20) + KILL_GRACE));
    }

    /// Runs `script` with `sh` in the lock folder `dir` (as `$cairn_d`),
    /// with `path` as `PATH`; its output.
    fn run_in_lock_folder(script: &str, dir: &std::path::Path, path: &std::ffi::OsStr) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("cairn_d", dir)
            .env("PATH", path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Taking the lock after a clean run starts no process; after a killed
    /// run (or an older cairn) it empties what is left. A busy lock's
    /// holder has closed its channel only when `lock.ended` names it.
    #[test]
    fn the_lock_folder_is_made_ready_without_a_process_and_read_when_busy() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("lock");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let calls = dir.path().join("calls");
        for tool in ["rm", "mkdir"] {
            crate::transport::ssh::shells::test_loop::fake_tool(
                &bin,
                tool,
                &format!(
                    "#!/bin/sh\necho {tool} >> '{}'\nexec /bin/{tool} \"$@\"\n",
                    calls.display()
                ),
            );
        }
        std::fs::create_dir_all(lock.join("lock.inflight")).unwrap();
        std::fs::write(lock.join("lock.inflight/3"), "4242 30 step.a@h\n").unwrap();
        std::fs::write(lock.join("lock.inflight/4"), "").unwrap();
        std::fs::write(lock.join("lock.closed"), "").unwrap();
        run_in_lock_folder(FRESH_RECORDS, &lock, bin.as_os_str());
        assert_eq!(std::fs::read(lock.join("lock.inflight/3")).unwrap(), b"");
        assert!(
            !lock.join("lock.closed").exists(),
            "an older cairn's mark goes"
        );
        assert_eq!(std::fs::read_to_string(&calls).unwrap(), "rm\n");
        std::fs::remove_file(&calls).unwrap();
        run_in_lock_folder(FRESH_RECORDS, &lock, bin.as_os_str());
        assert!(!calls.exists(), "a clean folder needs no process");
        std::fs::remove_dir_all(lock.join("lock.inflight")).unwrap();
        run_in_lock_folder(FRESH_RECORDS, &lock, bin.as_os_str());
        assert!(lock.join("lock.inflight").is_dir());

        let path = std::env::var_os("PATH").unwrap_or_default();
        let busy = |owner: &str, ended: &str| {
            std::fs::write(lock.join("lock.owner"), format!("{owner}\n")).unwrap();
            std::fs::write(lock.join("lock.ended"), format!("{ended}\n")).unwrap();
            // In the lock script `exit 0` follows it.
            let report = format!("{}exit 0\n", busy_report());
            Busy::parse(&lines(&run_in_lock_folder(&report, &lock, &path)))
        };
        assert!(
            busy("x", "x").closed_age.is_some(),
            "the holder's channel closed"
        );
        assert_eq!(busy("y", "x").closed_age, None, "an earlier run's end");
        std::fs::write(lock.join("lock.closed"), "").unwrap();
        assert!(busy("y", "x").closed_age.is_some(), "an older cairn's mark");
    }

    #[test]
    fn a_holder_that_ran_here_is_judged_by_its_pid() {
        let me = LockHolder::current("cairn apply");
        let alive = Busy::parse(&lines(&format!(
            "BUSY\nOWNER {}\nNOW 1000\nBEAT 900\nCLOSED 950\n",
            serde_json::to_string(&me).unwrap()
        )));
        assert_eq!(alive.dead(), None, "a live pid outweighs an old heartbeat");
        let gone = LockHolder {
            stamp: crate::state::ProcessStamp {
                pid_start: me.stamp.pid_start + 1,
                ..me.stamp.clone()
            },
            ..me
        };
        let dead = Busy::parse(&lines(&format!(
            "BUSY\nOWNER {}\nNOW 1000\nBEAT 999\nCLOSED\n",
            serde_json::to_string(&gone).unwrap()
        )));
        assert!(dead.dead().is_some());
    }
}
