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
    pub sudo: bool,
    pub sudo_password: Option<Secret>,
    /// Where `sudo_password` came from (`env:NAME`, `file:PATH`): what the
    /// state keeps, so a host that left can still be given it.
    pub sudo_password_ref: Option<String>,
    pub host_keys: HostKeyPolicy,
    pub jump: Option<String>,
    pub connect_timeout: Duration,
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
    /// Position among all hosts, in file order (`${host.index}`).
    pub index: usize,
    pub span: Range<usize>,
}
