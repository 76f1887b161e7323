//! The host lock: one apply per host at a time, taken with the probe.
//!
//! The lock command takes a `flock` on the host's cairn folder, records its
//! owner, runs the refresh probe, and then becomes the host's first shell
//! (see `shells`), so locking, probing and the shell cost one channel and
//! one round trip.

use std::sync::Arc;
use std::time::Duration;

use super::SshTransport;
use super::probe::PROBE_END;
use super::receipts::state_dir_snippet;
use super::shells::{SHELL_LOOP, Shell, Shells};
use crate::state::LockHolder;
use crate::transport::{ProbeReport, ProbeRequest, TransportError, shell_quote};

impl SshTransport {
    /// Takes the host lock for this run and, in the same round trip, probes
    /// the host (see [`SshTransport::probe`]). The lock's channel then
    /// becomes the host's first shell; see [`SshLock`].
    pub(crate) async fn lock_and_probe(
        &self,
        owner: &LockHolder,
        request: &ProbeRequest,
    ) -> Result<(SshLock, ProbeReport), TransportError> {
        let owner = serde_json::to_string(owner).expect("a lock holder serializes");
        let (probe, longest) = self.probe_script(request);
        let script = format!(
            "{dir}[ -d \"$cairn_d\" ] || mkdir -p \"$cairn_d\" || exit 3\nexec 9>>\"$cairn_d/lock\"\nif ! flock -n 9; then echo BUSY; cat \"$cairn_d/lock.owner\" 2>/dev/null; echo; date +%s; stat -c %Y \"$cairn_d/lock.heartbeat\" 2>/dev/null; exit 0; fi\nif [ -s \"$cairn_d/lock.owner\" ]; then echo STALE; cat \"$cairn_d/lock.owner\"; echo; fi\nprintf '%s\\n' {owner} > \"$cairn_d/lock.owner\"\n: > \"$cairn_d/lock.heartbeat\"\necho LOCKED\n{{\n{probe}}} </dev/null\necho {PROBE_END}\ncairn_hb=\"$cairn_d/lock.heartbeat\"\n{SHELL_LOOP}: > \"$cairn_d/lock.owner\"\n",
            dir = state_dir_snippet(&self.cluster),
            owner = shell_quote(&owner),
        );
        let opened = match tokio::time::timeout(
            Duration::from_secs(60) + longest,
            self.open_channel(&script),
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
            let owner = lines.get(1).cloned().unwrap_or_default();
            let age = match (
                lines.get(3).and_then(|l| l.trim().parse::<i64>().ok()),
                lines.get(4).and_then(|l| l.trim().parse::<i64>().ok()),
            ) {
                (Some(now), Some(beat)) => Some(now - beat),
                _ => None,
            };
            return Err(TransportError::HostLocked {
                host: self.host.clone(),
                owner: describe_owner(&owner),
                heartbeat_age: age,
            });
        }
        let locked_at = lines.iter().position(|l| l == "LOCKED");
        let probe_end = lines.iter().position(|l| l == PROBE_END);
        let (Some((child, stdin, stdout)), Some(locked_at), Some(probe_end)) =
            (opened.shell, locked_at, probe_end)
        else {
            let said = format!("{} {}", lines.join(" "), opened.stderr.trim());
            return Err(self.error(format!("failed to take the host lock: {}", said.trim())));
        };
        let stale = (lines.first().map(String::as_str) == Some("STALE"))
            .then(|| describe_owner(lines.get(1).map_or("", String::as_str)));
        let mut probed = lines[locked_at + 1..probe_end].join("\n");
        probed.push('\n');
        let report = self.parse_probe(&probed, request);
        self.shells
            .adopt(Shell::new(child, stdin, stdout, true))
            .await;
        let shells = self.shells.clone();
        let heartbeat = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(10));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                shells.ping_lock().await;
            }
        });
        Ok((
            SshLock {
                heartbeat,
                shells: self.shells.clone(),
                stale,
            },
            report,
        ))
    }
}

/// The lock this run holds on one host. The remote side holds a `flock`
/// for as long as the lock's channel is open; that channel is also the
/// host's first shell (see `shells`), and touches a heartbeat file on every
/// command and every 10 seconds when idle. If cairn dies, the channel
/// closes and the lock is freed. A lock owner file left behind (the remote
/// side was killed) is reported as stale by the next run, which takes over.
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

fn describe_owner(json: &str) -> String {
    match serde_json::from_str::<LockHolder>(json) {
        Ok(holder) => holder.to_string(),
        Err(_) if json.trim().is_empty() => "an unknown owner".into(),
        Err(_) => json.trim().to_string(),
    }
}
