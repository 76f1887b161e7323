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
use super::local::{self, LocalTransport, RunningGroups};
use super::ssh::SshTransport;
use crate::bundle::stream::StreamCache;
use crate::hash::HostIdentity;
use crate::model::{HostId, Model, TransportKind};

/// The open transports of one run, and the hosts that could not be reached.
#[derive(Debug, Clone)]
pub struct Fleet {
    transports: HashMap<HostId, Transport>,
    /// Host name -> why it could not be reached.
    unreachable: BTreeMap<String, String>,
    /// The Clusterfile's folder: where this machine's scripts run by default.
    base_dir: PathBuf,
    /// The cluster's state folder: this machine's receipts live under it.
    state_dir: PathBuf,
    running: Arc<RunningGroups>,
}

impl Fleet {
    /// Opens a connection to every host in `hosts`, all at once. With no
    /// hosts (an offline plan) it opens nothing. `state_dir` is the cluster's
    /// state folder.
    pub async fn connect(model: &Model, hosts: &[HostId], state_dir: &Path) -> Fleet {
        let known_hosts = known_hosts_file(&model.base_dir);
        let streams = Arc::new(StreamCache::default());
        let running = Arc::new(RunningGroups::recording(local::in_flight_dir(state_dir)));
        let mut jobs = tokio::task::JoinSet::new();
        for &id in hosts {
            let host = model.host(id).clone();
            let base_dir = model.base_dir.clone();
            let state_dir = state_dir.to_path_buf();
            let cluster = model.name.clone();
            let known_hosts = known_hosts.clone();
            let streams = streams.clone();
            let running = running.clone();
            jobs.spawn(async move {
                let t = match host.transport {
                    TransportKind::Local => Ok(Transport::local(LocalTransport::new(
                        host.name.clone(),
                        base_dir,
                        &state_dir,
                        running,
                    ))),
                    TransportKind::Ssh => {
                        SshTransport::connect(&host, &cluster, &known_hosts, streams)
                            .await
                            .map(Transport::ssh)
                    }
                };
                (id, host.name, t)
            });
        }
        let mut fleet = Fleet {
            transports: HashMap::new(),
            unreachable: BTreeMap::new(),
            base_dir: model.base_dir.clone(),
            state_dir: state_dir.to_path_buf(),
            running,
        };
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

    /// The open transport of `host`, if it was connected.
    pub fn transport(&self, host: HostId) -> Option<&Transport> {
        self.transports.get(&host)
    }

    /// Why `host` (by name) could not be reached, if it was tried and failed.
    pub fn unreachable(&self, host: &str) -> Option<&str> {
        self.unreachable.get(host).map(String::as_str)
    }

    /// The transport for undoing a task that ran on `host`: the host's open
    /// one while it is in the Clusterfile; for this machine, a new one even
    /// after it left; `None` for an SSH host that is not connected.
    pub fn transport_for_record(&self, model: &Model, host: &HostIdentity) -> Option<Transport> {
        match model.hosts.iter().find(|h| h.name == host.name) {
            Some(h) => self.transports.get(&h.id).cloned(),
            None if host.transport == TransportKind::Local => {
                Some(Transport::local(LocalTransport::new(
                    host.name.clone(),
                    self.base_dir.clone(),
                    &self.state_dir,
                    self.running.clone(),
                )))
            }
            None => None,
        }
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
        for (_, t) in self.transports {
            jobs.spawn(t.close());
        }
        while jobs.join_next().await.is_some() {}
    }
}

/// cairn's own `known_hosts` file, beside the Clusterfile.
fn known_hosts_file(base_dir: &Path) -> PathBuf {
    base_dir.join(".cairn").join("known_hosts")
}
