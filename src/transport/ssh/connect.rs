//! Opening the master connection to a host, and saying why it failed.
//!
//! The system's `ssh` is used (the `openssh` crate), so `~/.ssh/config`,
//! the agent and `ProxyJump` apply. Host keys are checked against cairn's own
//! `known_hosts` beside the Clusterfile first, then the user's; a failure is
//! turned into a message naming the host, the cause and the fix.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, SessionBuilder};

use super::SshTransport;
use super::host::Sudo;
use super::shells::Shells;
use crate::bundle::stream::StreamCache;
use crate::model::{Host, HostKeyPolicy};
use crate::transport::TransportError;
use crate::transport::error::error_chain;

/// Where connections keep their control sockets: short, because a unix
/// socket path is limited to about 100 bytes.
fn control_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

impl SshTransport {
    /// Opens the master connection to `host`. `known_hosts` is cairn's own
    /// file; `streams` is the run's cache of packed file streams.
    pub(crate) async fn connect(
        host: &Host,
        cluster: &str,
        known_hosts: &Path,
        streams: Arc<StreamCache>,
    ) -> Result<SshTransport, TransportError> {
        let mut builder = SessionBuilder::default();
        builder
            .user(host.user.clone())
            .port(host.port)
            .connect_timeout(host.ssh.connect_timeout.max(Duration::from_secs(1)))
            .server_alive_interval(Duration::from_secs(5))
            .control_directory(control_dir())
            .control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(60).expect("non-zero"),
            ));
        if let Some(identity) = &host.ssh.identity {
            builder.keyfile(crate::model::expand_home(identity));
        }
        if let Some(jump) = &host.ssh.jump {
            builder.jump_hosts([jump]);
        }
        match host.ssh.host_keys {
            HostKeyPolicy::Off => {
                builder
                    .known_hosts_check(KnownHosts::Accept)
                    .user_known_hosts_file("/dev/null");
            }
            policy => {
                if let Some(parent) = known_hosts.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                // cairn's file first (new keys go there), then the user's own.
                let files = format!("\"{}\" \"~/.ssh/known_hosts\"", known_hosts.display());
                builder
                    .known_hosts_check(if policy == HostKeyPolicy::Strict {
                        KnownHosts::Strict
                    } else {
                        KnownHosts::Add
                    })
                    .user_known_hosts_file(files);
            }
        }
        // The connect timeout covers TCP and the banner; this bounds the rest of the handshake.
        let limit = host.ssh.connect_timeout.max(Duration::from_secs(1)) * 3;
        let session = match tokio::time::timeout(limit, builder.connect_mux(&host.address)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_error(host, known_hosts, &e)),
            Err(_) => {
                return Err(TransportError::Unreachable {
                    host: host.name.clone(),
                    message: format!(
                        "{} did not finish the SSH handshake within {}; is the host frozen or overloaded?",
                        host.address,
                        humantime::format_duration(limit)
                    ),
                });
            }
        };
        let sudo = match (host.ssh.sudo, &host.ssh.sudo_password) {
            (false, _) => Sudo::No,
            (true, None) => Sudo::NoPassword,
            (true, Some(p)) => Sudo::Password(p.clone()),
        };
        Ok(SshTransport {
            host: host.name.clone(),
            cluster: cluster.to_string(),
            session: Arc::new(session),
            sudo,
            zstd: Arc::new(OnceLock::new()),
            shells: Arc::new(Shells::default()),
            streams,
            label: None,
        })
    }
}

/// Turns what ssh said into a message naming the host, the cause and the fix.
fn connect_error(host: &Host, known_hosts: &Path, error: &openssh::Error) -> TransportError {
    let text = error_chain(error);
    let lower = text.to_lowercase();
    let target = format!("{}@{}:{}", host.user, host.address, host.port);
    let (message, fix) = if lower.contains("remote host identification has changed") {
        return TransportError::HostKeyChanged {
            host: host.name.clone(),
            address: host.address.clone(),
            known_hosts: known_hosts.display().to_string(),
        };
    } else if lower.contains("host key verification failed") {
        (
            format!("{target}: its host key is not known and `host_keys = \"strict\"`"),
            format!(
                "add the key to {} or ~/.ssh/known_hosts (ssh-keyscan), or use host_keys = \"accept-new\"",
                known_hosts.display()
            ),
        )
    } else if lower.contains("permission denied") {
        (
            format!("{target} refused the login ({})", last_line(&text)),
            "check `user` and `identity` in [ssh], the agent (ssh-add -l), and the user's authorized_keys on the host".to_string(),
        )
    } else if lower.contains("connection refused") {
        (
            format!("{target}: connection refused"),
            "is sshd running there, on this port?".to_string(),
        )
    } else if lower.contains("timed out") {
        (
            format!(
                "{target} did not answer within connect_timeout ({})",
                humantime::format_duration(host.ssh.connect_timeout)
            ),
            "is the host up and reachable? raise connect_timeout in [ssh] for slow links"
                .to_string(),
        )
    } else {
        (
            format!("{target}: {}", last_line(&text)),
            "check the address and [ssh] settings; `ssh -v` with the same settings shows more"
                .to_string(),
        )
    };
    TransportError::Unreachable {
        host: host.name.clone(),
        message: format!("{message}; {fix}"),
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}
