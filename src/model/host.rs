//! Hosts as validation leaves them: one per address, named, with their SSH
//! settings merged and their variables resolved.
//!
//! A `[[hosts]]` entry may be a range of addresses; by the time anything
//! reads a [`Host`], the range is expanded and every host has a [`HostId`],
//! its index in `Model::hosts`, which the rest of cairn uses to refer to it
//! (tasks, connections) without copying names around.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use super::{HostKeyPolicy, Secret, TransportKind, VarValue};

/// A host of the model, by its index in `Model::hosts`. Only validation
/// makes one, so an id always names a host of the model it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(usize);

impl HostId {
    /// Ids are made by validation; the index into `Model::hosts`.
    pub(crate) fn new(index: usize) -> HostId {
        HostId(index)
    }

    /// The id of a host that is not in the model: one that left the
    /// Clusterfile, reached from the state to undo what was done there.
    /// It indexes nothing; whoever holds such a host keeps it by name.
    pub(crate) fn outside_model() -> HostId {
        HostId(usize::MAX)
    }

    /// The index into `Model::hosts`.
    pub fn index(self) -> usize {
        self.0
    }
}

/// SSH settings of one host, defaults and overrides merged.
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub identity: Option<String>,
    /// The passphrase of an encrypted `identity`.
    pub identity_passphrase: Option<LoginSecret>,
    /// The login password (password or keyboard-interactive authentication).
    pub password: Option<LoginSecret>,
    /// A user certificate for `identity` (`CertificateFile`).
    pub certificate: Option<String>,
    /// A CA public key whose host certificates are trusted.
    pub host_ca: Option<String>,
    /// An ssh config file read instead of `~/.ssh/config`.
    pub config: Option<String>,
    pub sudo: bool,
    pub sudo_password: Option<Secret>,
    /// Where `sudo_password` came from (`env:NAME`, `file:PATH`): what the
    /// state keeps, so a host that left can still be given it.
    pub sudo_password_ref: Option<String>,
    pub host_keys: HostKeyPolicy,
    /// Jump hosts, nearest first (`ProxyJump`); empty: reached directly.
    pub jump: Vec<String>,
    pub connect_timeout: Duration,
    /// What the ssh config makes of the host's address, when it is an
    /// alias there (`HostName`, `ProxyJump`); see `model::ssh_config`.
    pub alias: Option<SshAlias>,
}

/// A secret that logs in (a password, a key's passphrase): its value, and
/// the reference it was read from, which is all the state keeps.
#[derive(Debug, Clone)]
pub struct LoginSecret {
    pub reference: String,
    pub value: Secret,
}

/// What `ssh -G` resolved a host's address to, where the ssh config has an
/// entry for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAlias {
    /// The machine it names (`HostName`).
    pub hostname: String,
    /// The config's own jump hosts for it (`ProxyJump`), nearest first;
    /// empty when it has none or the Clusterfile gives `jump`.
    pub proxy_jump: Vec<String>,
}

impl SshSettings {
    /// Whether logging in may need a secret typed in (so ssh cannot run in batch mode).
    pub fn needs_askpass(&self) -> bool {
        self.password.is_some() || self.identity_passphrase.is_some()
    }

    /// The jump hosts in front of the host, nearest first: the
    /// Clusterfile's `jump`, else the ssh config's `ProxyJump` for an alias.
    pub fn hops(&self) -> &[String] {
        match &self.alias {
            Some(alias) if self.jump.is_empty() => &alias.proxy_jump,
            _ => &self.jump,
        }
    }
}

/// One machine: reached over SSH, or this one (`transport = "local"`).
#[derive(Debug, Clone)]
pub struct Host {
    pub id: HostId,
    pub name: String,
    pub address: String,
    pub user: String,
    pub port: u16,
    pub roles: Vec<String>,
    pub vars: BTreeMap<String, VarValue>,
    pub transport: TransportKind,
    pub ssh: SshSettings,
    /// Whether the Clusterfile gives `user` (else the ssh config's, or root).
    pub user_given: bool,
    /// Whether the Clusterfile gives `port` (else the ssh config's, or 22).
    pub port_given: bool,
    /// Position among all hosts, in file order (`${host.index}`).
    pub index: usize,
    pub span: Range<usize>,
}

impl Host {
    /// Where the host really is: the address, or for an ssh config alias the
    /// machine it names (`web1 → 10.0.0.4`), for output.
    pub fn reached_at(&self) -> &str {
        self.ssh
            .alias
            .as_ref()
            .map_or(self.address.as_str(), |a| a.hostname.as_str())
    }
}
