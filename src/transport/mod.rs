//! How cairn reaches a host: run a script, ship files, read files back.
//!
//! [`Transport`] is an enum, not a trait object: the set is closed (local
//! now, SSH next) and an enum keeps the async methods simple. Every command
//! is a shell script fed to `sh` on stdin by a fixed runner (see
//! [`RUNNER`]), so neither the script nor any secret in it ever appears on
//! a command line that `ps` could show. File shipping stages files in the
//! destination folder and renames each into place, so a reader never sees a
//! half-written file, and it never deletes a file cairn did not ship.

pub mod local;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::bundle::ShipFile;
use crate::model::{Host, TransportKind};
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
    #[error(
        "host {host} is reached over SSH, which this build of cairn cannot do yet; plan it with `cairn plan --offline`, or set `transport = \"local\"`"
    )]
    SshUnavailable { host: String },
}

/// A way to reach one host.
#[derive(Debug, Clone)]
pub enum Transport {
    Local(local::LocalTransport),
}

impl Transport {
    /// The transport for a host. `base_dir` is the default working directory of local commands.
    pub fn for_host(host: &Host, base_dir: &std::path::Path) -> Result<Transport, TransportError> {
        match host.transport {
            TransportKind::Local => Ok(Transport::Local(local::LocalTransport::new(
                host.name.clone(),
                base_dir.to_path_buf(),
            ))),
            TransportKind::Ssh => Err(TransportError::SshUnavailable {
                host: host.name.clone(),
            }),
        }
    }

    /// Runs a shell script (fed on stdin), with an optional working directory and time limit.
    pub async fn run(
        &self,
        script: &str,
        cwd: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, TransportError> {
        match self {
            Transport::Local(t) => t.run(script, cwd, timeout).await,
        }
    }

    /// Ships files under `dest` (`""` as the path means `dest` itself is the file).
    pub async fn ship(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
    ) -> Result<BTreeMap<String, ShippedFile>, TransportError> {
        match self {
            Transport::Local(t) => t.ship(dest, files).await,
        }
    }

    /// Looks at files cairn shipped: stat first, rehash only what changed.
    pub async fn observe(
        &self,
        dest: &str,
        shipped: &BTreeMap<String, ShippedFile>,
    ) -> Result<BTreeMap<String, Observed>, TransportError> {
        match self {
            Transport::Local(t) => t.observe(dest, shipped).await,
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
