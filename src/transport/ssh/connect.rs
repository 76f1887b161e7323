//! Opening the master connection to a host, and saying why it failed.
//!
//! The system's `ssh` is used (started by `master`), so `~/.ssh/config`
//! and the agent apply. Host keys are checked against cairn's own
//! `known_hosts` beside the Clusterfile first, then the user's; a failure is
//! turned into a message naming the host (or the jump host that failed),
//! the cause and the fix.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::SshTransport;
use super::host::Sudo;
use super::master::{self, Failure};
use super::run::SshRun;
use super::shells::Shells;
use crate::bundle::stream::StreamCache;
use crate::model::Host;
use crate::transport::TransportError;

impl SshTransport {
    /// Opens the master connection to `host`. `known_hosts` is cairn's own
    /// file; `run` what the run's connections share; `streams` is the run's
    /// cache of packed file streams.
    pub(crate) async fn connect(
        host: &Host,
        cluster: &str,
        known_hosts: &Path,
        run: &SshRun,
        streams: Arc<StreamCache>,
    ) -> Result<SshTransport, TransportError> {
        // The connect timeout covers TCP and the banner, per hop; this bounds the rest of the login.
        let hops = u32::try_from(host.ssh.hops().len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let limit = host.ssh.connect_timeout.max(Duration::from_secs(1)) * 3 * hops;
        let (session, master) = match master::launch(host, known_hosts, run, limit).await? {
            Ok(connected) => connected,
            Err(failure) => return Err(connect_error(host, known_hosts, &failure)),
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
            master: Arc::new(master),
            sudo,
            zstd: Arc::new(OnceLock::new()),
            shells: Arc::new(Shells::default()),
            prestaged: Arc::default(),
            streams,
            label: None,
        })
    }
}

/// Turns what ssh said into a message naming the host (or the jump host
/// that failed), the cause and the fix.
fn connect_error(host: &Host, known_hosts: &Path, failure: &Failure) -> TransportError {
    if let Some(message) = hop_error(host, known_hosts, failure) {
        return TransportError::Unreachable {
            host: host.name.clone(),
            message,
        };
    }
    let text = &failure.log;
    let lower = text.to_lowercase();
    let target = format!("{}@{}:{}", host.user, host.reached_at(), host.port);
    let (message, fix) = if lower.contains("remote host identification has changed") {
        return TransportError::HostKeyChanged {
            host: host.name.clone(),
            address: host.reached_at().to_string(),
            known_hosts: known_hosts.display().to_string(),
        };
    } else if lower.contains("host key verification failed") {
        (
            format!("{target}: its host key is not known and `host_keys = \"strict\"`"),
            format!(
                "add the key to {} or ~/.ssh/known_hosts (ssh-keyscan), trust its CA with `host_ca`, or use host_keys = \"accept-new\"",
                known_hosts.display()
            ),
        )
    } else if lower.contains("permission denied") && failure.served.passphrase {
        (
            format!(
                "{target} refused the login with the key `identity_passphrase` was given for ({})",
                last_line(text)
            ),
            "the passphrase is wrong (check the secret it names), or the key is not in the user's authorized_keys there".to_string(),
        )
    } else if lower.contains("permission denied") && failure.served.password {
        (
            format!("{target} refused the password"),
            "check the secret `password` names, and `user`".to_string(),
        )
    } else if lower.contains("permission denied") {
        (
            format!("{target} refused the login ({})", last_line(text)),
            login_fix(host).to_string(),
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
            format!("{target}: {}", last_line(text)),
            "check the address and [ssh] settings; `ssh -v` with the same settings shows more"
                .to_string(),
        )
    };
    TransportError::Unreachable {
        host: host.name.clone(),
        message: format!("{message}; {fix}"),
    }
}

/// What to check when a login is refused, by what the host logs in with.
fn login_fix(host: &Host) -> &'static str {
    if host.ssh.password.is_some() {
        "check `user` and `password` in [ssh], and that the host allows password logins"
    } else if host.ssh.certificate.is_some() {
        "check `user`, `identity` and `certificate` in [ssh] (the certificate's principals must name the user), and that the host trusts its CA (TrustedUserCAKeys)"
    } else {
        "check `user` and `identity` in [ssh], the agent (ssh-add -l), and the user's authorized_keys on the host"
    }
}

/// When a jump host failed, the message naming it: its place in the chain,
/// the cause and the fix. `None` when the hops said nothing of a failure.
fn hop_error(host: &Host, known_hosts: &Path, failure: &Failure) -> Option<String> {
    let (index, said) = failure.hop.as_ref()?;
    let said = said.trim();
    let lower = said.to_lowercase();
    let hops = host.ssh.hops();
    let who = format!(
        "jump host {} (hop {} of {} to {})",
        hops[*index],
        index + 1,
        hops.len(),
        host.reached_at()
    );
    let (cause, fix) = if lower.contains("remote host identification has changed") {
        (
            "its host key CHANGED since it was recorded; refused".to_string(),
            format!(
                "if it was reinstalled, forget the old key with `ssh-keygen -R HOST -f {}`; if not, someone may be intercepting the connection",
                known_hosts.display()
            ),
        )
    } else if lower.contains("host key verification failed") {
        (
            "its host key is not known and `host_keys = \"strict\"`".to_string(),
            format!(
                "add its key to {} or ~/.ssh/known_hosts (ssh-keyscan), trust its CA with `host_ca`, or use host_keys = \"accept-new\"",
                known_hosts.display()
            ),
        )
    } else if lower.contains("permission denied") {
        (
            if failure.served.password {
                "it refused the password".to_string()
            } else {
                format!("it refused the login ({})", last_line(said))
            },
            format!(
                "the hop logs in with this host's settings unless your ssh config sets them for it; {}",
                login_fix(host)
            ),
        )
    } else if (lower.contains("open failed") || lower.contains("forwarding failed"))
        && *index + 1 == hops.len()
    {
        return Some(format!(
            "{}:{} cannot be reached from jump host {} ({}); is sshd running there, on this port, and reachable from the jump host?",
            host.reached_at(),
            host.port,
            hops[*index],
            last_line(said)
        ));
    } else if lower.contains("open failed") || lower.contains("forwarding failed") {
        (
            format!(
                "it could not reach the next hop ({})",
                last_line(said)
            ),
            "check the address behind it, and that the jump host allows TCP forwarding (AllowTcpForwarding)".to_string(),
        )
    } else if lower.contains("connection refused") {
        (
            "connection refused".to_string(),
            "is sshd running there, on this port?".to_string(),
        )
    } else if lower.contains("timed out") {
        (
            format!(
                "did not answer within connect_timeout ({})",
                humantime::format_duration(host.ssh.connect_timeout)
            ),
            "is the jump host up and reachable?".to_string(),
        )
    } else if lower.contains("could not resolve") {
        (last_line(said), "check the jump host's name".to_string())
    } else {
        (
            last_line(said),
            "check the jump host's address and settings; `ssh -v -J` with the same settings shows more".to_string(),
        )
    };
    Some(format!("{who}: {cause}; {fix}"))
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}
