//! [`Fleet`]: the open transports of one run.
//!
//! A command opens every host it needs at once, before refresh
//! ([`Fleet::connect`]), works through the fleet, and closes it at the end.
//! The fleet also makes what the run's transports share: the stream cache
//! every SSH host is handed at connect (a file set packed once for every
//! host that needs it), and the registry of scripts running on this machine,
//! which it keeps (so an abandoned apply can kill them,
//! [`Fleet::abort_running`]). Hosts that could not be reached are kept with
//! why, so each fails alone with its own message.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Transport;
use super::TransportError;
use super::local::{self, LocalTransport, RunningGroups};
use super::ssh::{SshRun, SshTransport};
use crate::bundle::stream::StreamCache;
use crate::hash::HostIdentity;
use crate::model::{Host, HostId, LoginSecret, Model, SshSettings, TransportKind, load_secret};
use crate::state::HostRecord;

/// The open transports of one run, and the hosts that could not be reached.
#[derive(Debug, Clone)]
pub struct Fleet {
    transports: HashMap<HostId, Transport>,
    /// Host name -> why it could not be reached.
    unreachable: BTreeMap<String, String>,
    /// Former hosts (the state knows them under a name the Clusterfile no
    /// longer lists at that address), by name: reached as recorded, to undo.
    former: HashMap<String, Transport>,
    /// Former host name -> why it could not be reached.
    former_unreachable: BTreeMap<String, String>,
    /// The Clusterfile's folder: where this machine's scripts run by default.
    base_dir: PathBuf,
    /// The cluster's state folder: this machine's receipts live under it.
    state_dir: PathBuf,
    running: Arc<RunningGroups>,
    /// What the run's SSH connections share (shared jump-host connections),
    /// closed with the fleet.
    ssh_run: Option<Arc<SshRun>>,
}

impl Fleet {
    /// Opens a connection to every host in `hosts` and every former host
    /// (name and how it was reached, from the state), all at once. With no
    /// hosts (an offline plan) it opens nothing. `state_dir` is the cluster's
    /// state folder.
    pub async fn connect(
        model: &Model,
        hosts: &[HostId],
        former: &[(String, HostRecord)],
        state_dir: &Path,
    ) -> Fleet {
        let known_hosts = known_hosts_file(&model.base_dir);
        let streams = Arc::new(StreamCache::default());
        let running = Arc::new(RunningGroups::recording(local::in_flight_dir(state_dir)));
        // What the SSH connections share: made once, kept until the fleet goes.
        let ssh_run = SshRun::start().map(Arc::new).map_err(|e| {
            format!(
                "cannot make cairn's private SSH folder in {}: {e}",
                std::env::temp_dir().display()
            )
        });
        let mut jobs = tokio::task::JoinSet::new();
        for &id in hosts {
            let host = model.host(id).clone();
            let base_dir = model.base_dir.clone();
            let state_dir = state_dir.to_path_buf();
            let cluster = model.name.clone();
            let known_hosts = known_hosts.clone();
            let streams = streams.clone();
            let running = running.clone();
            let ssh_run = ssh_run.clone();
            jobs.spawn(async move {
                let t = match host.transport {
                    TransportKind::Local => Ok(Transport::local(LocalTransport::new(
                        host.name.clone(),
                        base_dir,
                        &state_dir,
                        running,
                    ))),
                    TransportKind::Ssh => {
                        connect_ssh(&host, &cluster, &known_hosts, &ssh_run, streams).await
                    }
                };
                (Some(id), host.name, t)
            });
        }
        for (name, record) in former {
            // Its address may be an ssh config alias, as when it was listed.
            let host = former_host(name, record, &model.base_dir).map(|mut host| {
                crate::model::resolve_aliases(std::slice::from_mut(&mut host));
                host
            });
            let base_dir = model.base_dir.clone();
            let state_dir = state_dir.to_path_buf();
            let cluster = model.name.clone();
            let known_hosts = known_hosts.clone();
            let streams = streams.clone();
            let running = running.clone();
            let name = name.clone();
            let ssh_run = ssh_run.clone();
            jobs.spawn(async move {
                let t = match host {
                    Err(why) => Err(TransportError::Unreachable {
                        host: name.clone(),
                        message: why,
                    }),
                    Ok(host) if host.transport == TransportKind::Local => Ok(Transport::local(
                        LocalTransport::new(host.name.clone(), base_dir, &state_dir, running),
                    )),
                    Ok(host) => connect_ssh(&host, &cluster, &known_hosts, &ssh_run, streams).await,
                };
                (None, name, t)
            });
        }
        let mut fleet = Fleet {
            transports: HashMap::new(),
            unreachable: BTreeMap::new(),
            former: HashMap::new(),
            former_unreachable: BTreeMap::new(),
            base_dir: model.base_dir.clone(),
            state_dir: state_dir.to_path_buf(),
            running,
            ssh_run: ssh_run.ok(),
        };
        while let Some(joined) = jobs.join_next().await {
            let (id, name, result) = joined.expect("connecting does not panic");
            match (id, result) {
                (Some(id), Ok(t)) => {
                    fleet.transports.insert(id, t);
                }
                (Some(_), Err(e)) => {
                    fleet.unreachable.insert(name, e.to_string());
                }
                (None, Ok(t)) => {
                    fleet.former.insert(name, t);
                }
                (None, Err(e)) => {
                    fleet.former_unreachable.insert(name, e.to_string());
                }
            }
        }
        fleet
    }

    /// The open transport of `host`, if it was connected.
    pub fn transport(&self, host: HostId) -> Option<&Transport> {
        self.transports.get(&host)
    }

    /// Why `host` (by name) could not be reached, if it was tried and failed.
    pub fn unreachable(&self, host: &str) -> Option<&str> {
        self.unreachable.get(host).map(String::as_str)
    }

    /// The open connection to a former host, by name.
    pub fn former(&self, name: &str) -> Option<&Transport> {
        self.former.get(name)
    }

    /// Former hosts (by name) that could not be reached, with why.
    pub fn former_unreachable(&self) -> &BTreeMap<String, String> {
        &self.former_unreachable
    }

    /// The former hosts that were reached, by name.
    pub fn former_hosts(&self) -> impl Iterator<Item = (&String, &Transport)> {
        self.former.iter()
    }

    /// The transport for undoing a task that ran on `host`: the host's open
    /// one while the Clusterfile lists it at the same address; else the
    /// former host's, reached as recorded; for this machine, a new one even
    /// after it left; `None` for an SSH host that is not connected.
    pub fn transport_for_record(&self, model: &Model, host: &HostIdentity) -> Option<Transport> {
        let current = model.hosts.iter().find(|h| {
            h.name == host.name
                && (h.transport == TransportKind::Local
                    || (h.address == host.address && h.port == host.port))
        });
        if let Some(h) = current {
            return self.transports.get(&h.id).cloned();
        }
        if let Some(t) = self.former.get(&host.name) {
            return Some(t.clone());
        }
        // This machine needs no connection: a host that left it is reached anew.
        let left = !model.hosts.iter().any(|h| h.name == host.name);
        (left && host.transport == TransportKind::Local).then(|| {
            Transport::local(LocalTransport::new(
                host.name.clone(),
                self.base_dir.clone(),
                &self.state_dir,
                self.running.clone(),
            ))
        })
    }

    /// Stops the run's work in flight: every script running on this machine
    /// is killed with everything it started. Over SSH a step still running is
    /// stopped on its host by its own `timeout` once cairn's channels close.
    pub fn abort_running(&self) {
        self.running.kill_all();
    }

    /// Closes every connection.
    pub async fn close(self) {
        let mut jobs = tokio::task::JoinSet::new();
        for t in self
            .transports
            .into_values()
            .chain(self.former.into_values())
        {
            jobs.spawn(t.close());
        }
        while jobs.join_next().await.is_some() {}
        if let Some(run) = &self.ssh_run {
            run.close();
        }
    }
}

/// Connects one SSH host, unless the run's SSH folder could not be made.
async fn connect_ssh(
    host: &Host,
    cluster: &str,
    known_hosts: &Path,
    ssh_run: &Result<Arc<SshRun>, String>,
    streams: Arc<StreamCache>,
) -> Result<Transport, TransportError> {
    let run = ssh_run
        .as_ref()
        .map_err(|why| TransportError::Unreachable {
            host: host.name.clone(),
            message: why.clone(),
        })?;
    SshTransport::connect(host, cluster, known_hosts, run, streams)
        .await
        .map(Transport::ssh)
}

/// A former host as the transport connects to it, from its record. Its id
/// is not a model host's (it is not in the Clusterfile any more) and is
/// never looked up; the fleet keeps former hosts by name. A sudo password
/// comes from the secret the record names, read now.
fn former_host(name: &str, record: &HostRecord, base_dir: &Path) -> Result<Host, String> {
    let recorded_secret = |what: &str, reference: &Option<String>| {
        match reference {
        Some(reference) => load_secret(reference, base_dir)
            .map(|value| {
                Some(LoginSecret {
                    reference: reference.clone(),
                    value,
                })
            })
            .map_err(|e| {
                format!(
                    "its {what} ({reference}, recorded at its last apply): {}; {}, or forget the host with `cairn state rm {name}`",
                    e.message, e.help
                )
            }),
        None => Ok(None),
    }
    };
    let sudo_password = recorded_secret("sudo password", &record.sudo_password)?;
    Ok(Host {
        id: HostId::outside_model(),
        name: name.to_string(),
        address: record.address.clone(),
        user: record.user.clone(),
        port: record.port,
        user_given: true,
        port_given: true,
        roles: Vec::new(),
        vars: std::collections::BTreeMap::new(),
        transport: record.transport,
        ssh: SshSettings {
            identity: record.identity.clone(),
            identity_passphrase: recorded_secret(
                "identity passphrase",
                &record.identity_passphrase,
            )?,
            password: recorded_secret("password", &record.password)?,
            certificate: record.certificate.clone(),
            host_ca: record.host_ca.clone(),
            config: record.config.clone(),
            sudo: record.sudo,
            sudo_password: sudo_password.map(|s| s.value),
            sudo_password_ref: record.sudo_password.clone(),
            host_keys: record.host_keys,
            jump: record
                .jump
                .iter()
                .flat_map(|j| j.split(','))
                .map(str::to_string)
                .collect(),
            connect_timeout: std::time::Duration::from_millis(record.connect_timeout_ms),
            alias: None,
        },
        index: usize::MAX,
        span: 0..0,
    })
}

/// cairn's own `known_hosts` file, beside the Clusterfile.
fn known_hosts_file(base_dir: &Path) -> PathBuf {
    base_dir.join(".cairn").join("known_hosts")
}
