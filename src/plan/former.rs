//! Former hosts: machines the state knows under a name that the Clusterfile
//! no longer lists at that address. A host that left the Clusterfile, and
//! the old machine of a named host whose address changed, are reached with
//! the connection settings recorded at their last apply ([`HostRecord`]) so
//! that what cairn did there is undone, instead of failing for ever.
//!
//! Also here: the host record an apply keeps for each host it reaches, and
//! the renames that migrate a state written when unnamed hosts were named
//! by position (`node0`) to names by address.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Host, Model, TransportKind};
use crate::state::{HostRecord, POSITIONAL_NAMES_VERSION, State, TaskRecord};

/// Why the state still knows a host the Clusterfile does not list as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Departure {
    /// No host of the Clusterfile has this name any more.
    Left,
    /// The name is still there, at another address (`address:port`).
    Moved { to: String },
}

/// A machine the state knows and must still be reached to be cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormerHost {
    pub name: String,
    pub record: HostRecord,
    pub departure: Departure,
}

impl FormerHost {
    /// `address:port` as recorded.
    pub fn address(&self) -> String {
        format!("{}:{}", self.record.address, self.record.port)
    }
}

/// How `host` is reached now, as the state keeps it.
pub fn host_record(host: &Host) -> HostRecord {
    HostRecord {
        address: host.address.clone(),
        port: host.port,
        user: host.user.clone(),
        transport: host.transport,
        identity: host.ssh.identity.clone(),
        jump: jump_record(&host.ssh.jump),
        password: host.ssh.password.as_ref().map(|p| p.reference.clone()),
        identity_passphrase: host
            .ssh
            .identity_passphrase
            .as_ref()
            .map(|p| p.reference.clone()),
        certificate: host.ssh.certificate.clone(),
        host_ca: host.ssh.host_ca.clone(),
        config: host.ssh.config.clone(),
        sudo: host.ssh.sudo,
        sudo_password: host.ssh.sudo_password_ref.clone(),
        host_keys: host.ssh.host_keys,
        connect_timeout_ms: u64::try_from(host.ssh.connect_timeout.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Jump hosts as the state keeps them: OpenSSH's `ProxyJump` list (`a,b`).
fn jump_record(hops: &[String]) -> Option<String> {
    (!hops.is_empty()).then(|| hops.join(","))
}

/// The record used for a host that an older state knows only from its
/// tasks' key inputs: the Clusterfile's `[ssh]` settings.
fn fallback_record(model: &Model) -> HostRecord {
    let s = &model.ssh_defaults;
    HostRecord {
        address: String::new(),
        port: 22,
        user: "root".into(),
        transport: TransportKind::Ssh,
        identity: s.identity.clone(),
        jump: jump_record(&s.jump),
        password: s.password.as_ref().map(|p| p.reference.clone()),
        identity_passphrase: s.identity_passphrase.as_ref().map(|p| p.reference.clone()),
        certificate: s.certificate.clone(),
        host_ca: s.host_ca.clone(),
        config: s.config.clone(),
        sudo: s.sudo,
        sudo_password: s.sudo_password_ref.clone(),
        host_keys: s.host_keys,
        connect_timeout_ms: u64::try_from(s.connect_timeout.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Every host the state knows that the Clusterfile does not list by that
/// name, or lists at another address or port, sorted by name. A moved host
/// is found from its records (they keep the address they ran at), so its
/// old machine is still cleaned after its host record was updated.
pub fn former_hosts(model: &Model, state: &State) -> Vec<FormerHost> {
    let fallback = fallback_record(model);
    state
        .known_hosts()
        .into_iter()
        .filter_map(|name| {
            let Some(host) = model.hosts.iter().find(|h| h.name == name) else {
                let record = state.host_record(&name, &fallback)?;
                return Some(FormerHost {
                    name,
                    record,
                    departure: Departure::Left,
                });
            };
            if host.transport == TransportKind::Local {
                return None;
            }
            let old =
                state.tasks.values().map(TaskRecord::host).find(|h| {
                    h.name == name && (h.address != host.address || h.port != host.port)
                })?;
            let record = match state.hosts.get(&name) {
                Some(r) if r.address == old.address && r.port == old.port => r.clone(),
                _ => HostRecord {
                    address: old.address.clone(),
                    port: old.port,
                    user: old.user.clone(),
                    transport: old.transport,
                    ..fallback.clone()
                },
            };
            Some(FormerHost {
                name,
                record,
                departure: Departure::Moved {
                    to: format!("{}:{}", host.address, host.port),
                },
            })
        })
        .collect()
}

/// For a state written when unnamed hosts were named by position: each
/// recorded host name that the Clusterfile no longer has, whose recorded
/// address and port are a Clusterfile host's, renamed to that host's name.
/// Empty for a current state.
pub fn positional_renames(model: &Model, state: &State) -> BTreeMap<String, String> {
    if state.version > POSITIONAL_NAMES_VERSION {
        return BTreeMap::new();
    }
    let known: BTreeSet<String> = state.known_hosts();
    let mut renames = BTreeMap::new();
    for name in &known {
        if model.hosts.iter().any(|h| &h.name == name) {
            continue;
        }
        let Some((address, port)) = state.recorded_address(name) else {
            continue;
        };
        if let Some(host) = model
            .hosts
            .iter()
            .find(|h| h.address == address && h.port == port && !known.contains(&h.name))
        {
            renames.insert(name.clone(), host.name.clone());
        }
    }
    renames
}
