//! Every way reaching a host can fail, each message naming the host, the
//! cause and the fix.

/// Why a transport could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("host {host}: {message}")]
    Io { host: String, message: String },
    #[error("host {host}: {message}")]
    Unreachable { host: String, message: String },
    /// A script's working directory is not there (a step that would have
    /// made it has not run yet): a failing check, not a broken host.
    #[error("host {host}: working directory {dir} does not exist")]
    WorkingDirMissing { host: String, dir: String },
    #[error(
        "host {host} ({address}): its SSH host key CHANGED since cairn recorded it in {known_hosts}; refused, nothing was done there. If the host was reinstalled, forget the old key with `ssh-keygen -R {address} -f {known_hosts}`; if not, someone may be intercepting the connection"
    )]
    HostKeyChanged {
        host: String,
        address: String,
        known_hosts: String,
    },
    #[error(
        "host {host} is locked by another apply: {owner}{}{}; wait for it to finish, wait for it with `--lock-timeout 10m`, or run `cairn unlock {host}` if that apply is stuck",
        heartbeat_age.map(|a| format!(", last heartbeat {a}s ago")).unwrap_or_default(),
        if waited.is_zero() { String::new() } else { format!(" (waited {})", humantime::format_duration(*waited)) }
    )]
    HostLocked {
        host: String,
        owner: String,
        heartbeat_age: Option<u64>,
        /// How long it was waited for (`--lock-timeout`).
        waited: std::time::Duration,
    },
    #[error(
        "host {host} is still locked: its holder {owner} is dead, but what it started there still runs and has no time limit: {running}; wait for it, or run `cairn unlock {host}` to kill it"
    )]
    DeadRunStillRunning {
        host: String,
        owner: String,
        running: String,
    },
    /// A host this apply probed and locked, then closed to stay within
    /// `--parallelism` connections, was found changed when reopened before
    /// anything of the run was done there.
    #[error(
        "host {host} changed between its probe and its turn in this apply ({what}): nothing was done there; run `cairn plan` to see what changed, then apply again (a larger --parallelism keeps every host's connection, and its lock, open from probe to work)"
    )]
    ChangedSinceProbe { host: String, what: String },
    /// A host that failed earlier in this run, told again to whoever asks.
    #[error("{0}")]
    Again(String),
}

/// The message of an error and all its sources.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
