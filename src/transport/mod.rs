//! How cairn reaches a host: run a script, ship files, probe what is there.
//!
//! [`Transport`] is an enum, not a trait object: the set is closed (this
//! machine, or a host over SSH) and an enum keeps the async methods simple.
//! [`Fleet`] holds the open transports of one run: connections are opened
//! once, in parallel, before refresh, and closed at the end. Every command
//! is a shell script fed to `sh` on stdin by a fixed runner (see
//! [`RUNNER`]), so neither the script nor any secret in it ever appears on
//! a command line that `ps` could show. File shipping stages files in the
//! destination folder and renames each into place, so a reader never sees a
//! half-written file, and it never deletes a file cairn did not ship.

pub mod local;
pub mod shells;
pub mod ssh;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bundle::ShipFile;
use crate::ids::{TaskId, TaskKey};
use crate::model::{HostId, Model, TransportKind};
use crate::state::ShippedFile;

/// The fixed command line of every script: read the script from stdin, then
/// run it with stdin at end-of-file.
pub const RUNNER: &str = "s=$(cat) && eval \"$s\"";

/// The result of a command.
#[derive(Debug, Clone, Default)]
pub struct CommandOutput {
    /// Exit code; `None` when killed by a signal or the timeout.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// What a host has at a path cairn shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Missing,
    /// Stat unchanged since cairn shipped it: the content is taken as shipped.
    Unchanged,
    /// Rehashed: the content's sha256 now.
    Hashed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("host {host}: {message}")]
    Io { host: String, message: String },
    #[error("host {host}: {message}")]
    Unreachable { host: String, message: String },
    #[error(
        "host {host} ({address}): its SSH host key CHANGED since cairn recorded it in {known_hosts}; refused, nothing was done there. If the host was reinstalled, forget the old key with `ssh-keygen -R {address} -f {known_hosts}`; if not, someone may be intercepting the connection"
    )]
    HostKeyChanged {
        host: String,
        address: String,
        known_hosts: String,
    },
    #[error("host {host} is locked by another apply: {owner}{}; wait for it to finish (a lock whose owner died frees itself)", heartbeat_age.map(|a| format!(", last heartbeat {a}s ago")).unwrap_or_default())]
    HostLocked {
        host: String,
        owner: String,
        heartbeat_age: Option<i64>,
    },
}

/// A way to reach one host.
#[derive(Debug, Clone)]
pub enum Transport {
    Local(local::LocalTransport),
    Ssh(ssh::SshTransport),
}

/// What a task leaves on its host when it succeeds: a one-line JSON file
/// under the host's cairn folder, so another operator (or a lost laptop)
/// still sees what was done there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptInfo {
    pub task: TaskId,
    pub key: TaskKey,
    pub finished_at: String,
    /// `user@machine` of the cairn that did it.
    pub by: String,
    /// The value a `capture` step printed, unless it held a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Receipt {
    pub info: ReceiptInfo,
    pub json: String,
}

impl Receipt {
    pub fn new(info: ReceiptInfo) -> Receipt {
        let json = serde_json::to_string(&info).expect("receipts serialize");
        Receipt { info, json }
    }

    pub fn file_name(&self) -> String {
        receipt_file_name(&self.info.task)
    }
}

/// The file name of a task's receipt.
pub fn receipt_file_name(task: &TaskId) -> String {
    format!("{}.json", task.file_safe())
}

/// Facts a probe reads off a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    /// Whether `zstd` is there to unpack compressed file streams.
    pub zstd: bool,
}

/// A `check` command to run during a probe.
#[derive(Debug, Clone)]
pub struct CheckProbe {
    pub script: String,
    pub cwd: Option<String>,
    pub timeout: Duration,
}

/// Everything a refresh wants to know about one host, asked in one go.
#[derive(Debug, Clone, Default)]
pub struct ProbeRequest {
    /// Shipped files to look at: (destination, files as recorded).
    pub files: Vec<(String, BTreeMap<String, ShippedFile>)>,
    pub checks: Vec<CheckProbe>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckResult {
    /// Exit code; `None` when it timed out or was killed.
    pub code: Option<i32>,
    /// The check's working directory does not exist (the step has not set it up).
    pub cwd_missing: bool,
}

/// The answer to a [`ProbeRequest`], in the same order.
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    pub facts: Facts,
    pub files: Vec<BTreeMap<String, Observed>>,
    pub checks: Vec<CheckResult>,
    /// Receipts found on the host, by task id.
    pub receipts: BTreeMap<TaskId, ReceiptInfo>,
}

/// The open transports of one run, and the hosts that could not be reached.
#[derive(Debug, Default)]
pub struct Fleet {
    pub transports: HashMap<HostId, Transport>,
    /// Host name -> why it could not be reached.
    pub unreachable: BTreeMap<String, String>,
}

impl Fleet {
    /// Opens a connection to every host in `hosts`, all at once.
    pub async fn connect(model: &Model, hosts: &[HostId]) -> Fleet {
        let known_hosts = known_hosts_file(&model.base_dir);
        let mut jobs = tokio::task::JoinSet::new();
        for &id in hosts {
            let host = model.host(id).clone();
            let base_dir = model.base_dir.clone();
            let cluster = model.name.clone();
            let known_hosts = known_hosts.clone();
            jobs.spawn(async move {
                let t = match host.transport {
                    TransportKind::Local => Ok(Transport::Local(local::LocalTransport::new(
                        host.name.clone(),
                        base_dir,
                    ))),
                    TransportKind::Ssh => ssh::SshTransport::connect(&host, &cluster, &known_hosts)
                        .await
                        .map(Transport::Ssh),
                };
                (id, host.name, t)
            });
        }
        let mut fleet = Fleet::default();
        while let Some(joined) = jobs.join_next().await {
            let (id, name, result) = joined.expect("connecting does not panic");
            match result {
                Ok(t) => {
                    fleet.transports.insert(id, t);
                }
                Err(e) => {
                    fleet.unreachable.insert(name, e.to_string());
                }
            }
        }
        fleet
    }

    /// Closes every connection.
    pub async fn close(self) {
        let mut jobs = tokio::task::JoinSet::new();
        for (_, t) in self.transports {
            if let Transport::Ssh(s) = t {
                jobs.spawn(s.close());
            }
        }
        while jobs.join_next().await.is_some() {}
    }
}

/// cairn's own known_hosts file, beside the Clusterfile.
pub fn known_hosts_file(base_dir: &Path) -> PathBuf {
    base_dir.join(".cairn").join("known_hosts")
}

/// Quotes a word for sh.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

impl Transport {
    /// Runs a shell script (fed on stdin), with an optional working directory
    /// and time limit. Over SSH, a receipt is written by the same command when
    /// the script succeeds.
    pub async fn run(
        &self,
        script: &str,
        cwd: Option<&str>,
        timeout: Option<Duration>,
        receipt: Option<&Receipt>,
    ) -> Result<CommandOutput, TransportError> {
        match self {
            Transport::Local(t) => t.run(script, cwd, timeout).await,
            Transport::Ssh(t) => t.run(script, cwd, timeout, receipt).await,
        }
    }

    /// Ships files under `dest` (`""` as the path means `dest` itself is the
    /// file); over SSH the same command writes the receipt.
    pub async fn ship(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
        receipt: Option<&Receipt>,
    ) -> Result<BTreeMap<String, ShippedFile>, TransportError> {
        match self {
            Transport::Local(t) => t.ship(dest, files).await,
            Transport::Ssh(t) => t.ship(dest, files, receipt).await,
        }
    }

    /// Writes a receipt for a task that ran no command on the host.
    pub async fn write_receipt(&self, receipt: &Receipt) -> Result<(), TransportError> {
        match self {
            Transport::Local(_) => Ok(()),
            Transport::Ssh(t) => t.write_receipt(receipt).await,
        }
    }

    /// Removes the receipt of a task that was undone.
    pub async fn forget_receipt(&self, task: &TaskId) -> Result<(), TransportError> {
        match self {
            Transport::Local(_) => Ok(()),
            Transport::Ssh(t) => t.forget_receipt(task).await,
        }
    }

    /// Everything refresh asks of a host, in one round trip.
    pub async fn probe(&self, request: &ProbeRequest) -> Result<ProbeReport, TransportError> {
        match self {
            Transport::Local(t) => t.probe(request).await,
            Transport::Ssh(t) => t.probe(request).await,
        }
    }

    /// Removes files cairn shipped, if they still hold what it shipped;
    /// returns the paths kept because someone changed them.
    pub async fn remove(
        &self,
        dest: &str,
        shipped: &BTreeMap<String, ShippedFile>,
    ) -> Result<Vec<String>, TransportError> {
        match self {
            Transport::Local(t) => t.remove(dest, shipped).await,
            Transport::Ssh(t) => t.remove(dest, shipped).await,
        }
    }
}

/// `dest` joined with a shipped path (`""` is `dest` itself).
pub fn target_path(dest: &str, rel: &str) -> PathBuf {
    if rel.is_empty() {
        PathBuf::from(dest)
    } else {
        PathBuf::from(dest).join(rel)
    }
}
