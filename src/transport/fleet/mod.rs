//! [`Fleet`]: the hosts of one run, and at most a bounded number of open
//! connections to them.
//!
//! Every SSH connection is an OpenSSH master process of about 5 MB on this
//! machine, so a run never holds one per host: a fleet opens a host when
//! something needs it ([`Fleet::lease`]), keeps at most `limit` SSH
//! connections open at once (the command's `--parallelism`), and when it
//! needs one more it closes the host that has been idle longest. Memory
//! therefore grows with the parallelism, not with the fleet. With no more
//! hosts than the limit nothing is ever closed early, so a run costs one
//! connection per host, as before.
//!
//! An apply locks each host in the same round trip as its probe
//! ([`Fleet::refresh_host`]), and the lock lives with the connection (it is
//! held by the lock's shell there). A host closed after its probe is locked
//! again when it is reopened, and, if nothing of this run was done there
//! yet, probed again: what cairn recorded and shipped there (receipts,
//! shipped files, facts) must be exactly what the plan was made from, as a
//! saved plan is checked, or its work is refused
//! ([`TransportError::ChangedSinceProbe`]). The scheduler closes a host as
//! soon as its last task in the run has settled ([`Fleet::done_with`]).
//!
//! The fleet also makes what the run's transports share: the stream cache
//! every SSH host is handed (a file set packed once for every host that
//! needs it), and the registry of scripts running on this machine (so an
//! abandoned apply can kill them, [`Fleet::abort_running`]). A host that
//! could not be reached keeps why, so each fails alone with its own message.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

mod fingerprint;
mod former;

use fingerprint::Fingerprint;
use former::former_host;

use super::local::{self, LocalTransport, RunningGroups};
use super::ssh::{SshRun, SshTransport};
use super::{HostLock, ProbeReport, ProbeRequest, Transport, TransportError};
use crate::bundle::stream::StreamCache;
use crate::hash::HostIdentity;
use crate::model::{Host, HostId, Model, TransportKind};
use crate::state::{HostRecord, LockPolicy};

/// One host of the run: listed in the Clusterfile, or a former host (the
/// state knows it under a name the Clusterfile no longer lists at that
/// address), kept by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostKey {
    Listed(HostId),
    Former(String),
}

/// The hosts of one run and their open connections. Cheap to clone: every
/// clone is the same fleet.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("hosts", &self.inner.hosts.len())
            .field("limit", &self.inner.limit)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// How to reach each host, or why it cannot be.
    hosts: HashMap<HostKey, Result<Host, String>>,
    slots: Mutex<HashMap<HostKey, Slot>>,
    /// Told whenever a slot changes: a lease ends, a host opens or closes.
    changed: Notify,
    /// One permit per open SSH connection.
    permits: Arc<Semaphore>,
    limit: usize,
    cluster: String,
    known_hosts: PathBuf,
    /// The Clusterfile's folder: where this machine's scripts run by default.
    base_dir: PathBuf,
    /// The cluster's state folder: this machine's receipts live under it.
    state_dir: PathBuf,
    streams: Arc<StreamCache>,
    running: Arc<RunningGroups>,
    /// What the run's SSH connections share (shared jump-host connections),
    /// closed with the fleet; why not, if its folder could not be made.
    ssh_run: Result<Arc<SshRun>, String>,
    /// The apply's lock policy, once a host was locked: a host reopened is
    /// locked again with it.
    lock_policy: Mutex<Option<LockPolicy>>,
    /// How long the work waiting on each host is ([`Fleet::keep_open_longest`]):
    /// of the idle hosts, the one with the least is closed first.
    weights: Mutex<HashMap<HostId, usize>>,
}

/// Where one host stands.
enum Slot {
    /// Not open. `relock`: it was locked by this run, and is locked again
    /// (and maybe probed again) when reopened.
    Closed {
        relock: Option<Relock>,
    },
    /// Being opened or closed by someone: wait for it.
    Busy,
    Open(Box<OpenHost>),
    /// Could not be reached (or refused to go on): why, for everyone who asks.
    Failed(String),
}

/// An open host.
struct OpenHost {
    transport: Transport,
    /// This run's lock there (apply).
    lock: Option<HostLock>,
    /// Held while the connection is open (SSH only: this machine needs none).
    permit: Option<OwnedSemaphorePermit>,
    /// Leases out now; a host is closed only when none are.
    in_use: usize,
    idle_since: Instant,
    relock: Option<Relock>,
    /// Close as soon as the last lease ends ([`Fleet::done_with`]).
    close_when_idle: bool,
}

impl OpenHost {
    /// One more lease out on this host, for `purpose`: once it is worked
    /// on, a reopening can no longer compare it with its probe.
    fn lend(&mut self, purpose: Purpose) -> Transport {
        self.in_use += 1;
        if purpose == Purpose::Work
            && let Some(relock) = &mut self.relock
        {
            relock.fingerprint = None;
        }
        self.transport.clone()
    }
}

/// What reopening a locked host checks.
#[derive(Clone)]
struct Relock {
    request: ProbeRequest,
    /// What the probe saw, while nothing of this run has been done there:
    /// compared with a fresh probe when the host is reopened.
    fingerprint: Option<Fingerprint>,
}

/// Why a lease is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Refresh: probing does not change the host.
    Probe,
    /// Refresh while the apply's tasks already run (a streamed apply): the
    /// probe waits in line for a connection to come free rather than close
    /// an idle host, whose work may be next, unless no host has been at work
    /// for [`STUCK_AFTER`] (then waiting could be for ever: what the open
    /// hosts wait for may be on this one). Waiting in line, not woken by
    /// every change of every slot: at 200 hosts, 136 probes woken on each
    /// change cost cairn seconds of CPU.
    ProbeBesideWork,
    /// Anything else: the host may change, so a later reopen cannot
    /// compare it with its probe any more.
    Work,
}

/// A host's transport, lent while the holder works on it: the fleet does
/// not close a host while any lease on it is out.
pub struct Lease {
    transport: Transport,
    slot: Option<(Arc<Inner>, HostKey)>,
}

impl std::ops::Deref for Lease {
    type Target = Transport;
    fn deref(&self) -> &Transport {
        &self.transport
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some((inner, key)) = self.slot.take() else {
            return;
        };
        let closing = {
            let mut slots = inner.slots();
            let Some(Slot::Open(open)) = slots.get_mut(&key) else {
                return;
            };
            open.in_use = open.in_use.saturating_sub(1);
            open.idle_since = Instant::now();
            if open.in_use == 0 && open.close_when_idle {
                take_open(&mut slots, &key)
            } else {
                None
            }
        };
        inner.changed.notify_waiters();
        if let Some(open) = closing
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move {
                let relock = close_host(open).await;
                inner.set(&key, Slot::Closed { relock });
            });
        }
    }
}

/// How long every open SSH host has been idle: `None` while one has a
/// lease out (work, or a probe, under way).
fn all_idle_for(slots: &HashMap<HostKey, Slot>) -> Option<std::time::Duration> {
    let mut last_busy: Option<Instant> = None;
    for slot in slots.values() {
        if let Slot::Open(open) = slot
            && open.permit.is_some()
        {
            if open.in_use > 0 {
                return None;
            }
            last_busy = last_busy.max(Some(open.idle_since));
        }
    }
    Some(last_busy.map_or(std::time::Duration::MAX, |at| at.elapsed()))
}

/// Takes an open host out of its slot (marked busy), to close it.
fn take_open(slots: &mut HashMap<HostKey, Slot>, key: &HostKey) -> Option<Box<OpenHost>> {
    let slot = slots.get_mut(key)?;
    match std::mem::replace(slot, Slot::Busy) {
        Slot::Open(open) => Some(open),
        other => {
            *slot = other;
            None
        }
    }
}

/// Releases a host's lock, then closes its connection; what reopening it must check.
async fn close_host(open: Box<OpenHost>) -> Option<Relock> {
    let OpenHost {
        transport,
        lock,
        permit,
        relock,
        ..
    } = *open;
    if let Some(lock) = lock {
        lock.release().await;
    }
    transport.close().await;
    drop(permit);
    relock
}

impl Inner {
    fn slots(&self) -> MutexGuard<'_, HashMap<HostKey, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, key: &HostKey, slot: Slot) {
        self.slots().insert(key.clone(), slot);
        self.changed.notify_waiters();
    }

    fn name(&self, key: &HostKey) -> String {
        match (key, self.hosts.get(key)) {
            (_, Some(Ok(host))) => host.name.clone(),
            (HostKey::Former(name), _) => name.clone(),
            (HostKey::Listed(id), _) => format!("#{}", id.index()),
        }
    }

    fn is_ssh(&self, key: &HostKey) -> bool {
        matches!(self.hosts.get(key), Some(Ok(h)) if h.transport == TransportKind::Ssh)
    }

    /// No connection is free for a lease of `purpose`: closes an idle host
    /// for it, or says to wait. A probe beside running work closes one only
    /// when no host has been at work for [`STUCK_AFTER`]; until then it
    /// waits in line for a connection to come free.
    fn make_room(&self, slots: &mut HashMap<HostKey, Slot>, purpose: Purpose) -> Next {
        let may_close = purpose != Purpose::ProbeBesideWork
            || all_idle_for(slots).is_some_and(|idle| idle >= STUCK_AFTER);
        match may_close.then(|| self.take_idle(slots)).flatten() {
            Some((victim, open)) => Next::Evict(victim, open),
            None if purpose == Purpose::ProbeBesideWork => Next::Queue,
            None => Next::Wait,
        }
    }

    /// The idle SSH host with the least work waiting on it, of those the
    /// one idle longest, taken out of its slot to be closed.
    fn take_idle(&self, slots: &mut HashMap<HostKey, Slot>) -> Option<(HostKey, Box<OpenHost>)> {
        let weights = self.weights.lock().unwrap_or_else(PoisonError::into_inner);
        let weight = |key: &HostKey| match key {
            HostKey::Listed(id) => weights.get(id).copied().unwrap_or(0),
            HostKey::Former(_) => 0,
        };
        let victim = slots
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Open(open) if open.in_use == 0 && open.permit.is_some() => {
                    Some(((weight(key), open.idle_since), key))
                }
                _ => None,
            })
            .min_by_key(|(order, _)| *order)
            .map(|(_, key)| key.clone())?;
        drop(weights);
        take_open(slots, &victim).map(|open| (victim, open))
    }

    /// Connects `key`; with `relock`, locks it again with the run's policy
    /// and, while nothing of this run was done there, checks that it is
    /// as its probe found it.
    async fn open(
        &self,
        key: &HostKey,
        permit: Option<OwnedSemaphorePermit>,
        relock: Option<Relock>,
    ) -> Result<Box<OpenHost>, TransportError> {
        let host = match self.hosts.get(key) {
            Some(Ok(host)) => host,
            Some(Err(why)) => {
                return Err(TransportError::Unreachable {
                    host: self.name(key),
                    message: why.clone(),
                });
            }
            None => {
                return Err(TransportError::Unreachable {
                    host: self.name(key),
                    message: "not part of this run (left out by --limit)".into(),
                });
            }
        };
        let transport = match host.transport {
            TransportKind::Local => Transport::local(LocalTransport::new(
                host.name.clone(),
                self.base_dir.clone(),
                &self.state_dir,
                self.running.clone(),
            )),
            TransportKind::Ssh => {
                let run = self
                    .ssh_run
                    .as_ref()
                    .map_err(|why| TransportError::Unreachable {
                        host: host.name.clone(),
                        message: why.clone(),
                    })?;
                let ssh = SshTransport::connect(
                    host,
                    &self.cluster,
                    &self.known_hosts,
                    run,
                    self.streams.clone(),
                )
                .await?;
                Transport::ssh(ssh)
            }
        };
        let policy = self
            .lock_policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let lock = match (&relock, policy) {
            (Some(relock), Some(policy)) => {
                let (lock, report) = match transport.lock_and_probe(&policy, &relock.request).await
                {
                    Ok(locked) => locked,
                    Err(e) => {
                        transport.close().await;
                        return Err(e);
                    }
                };
                if let Some(earlier) = &relock.fingerprint {
                    let now = Fingerprint::of(&report);
                    if &now != earlier {
                        lock.release().await;
                        transport.close().await;
                        return Err(TransportError::ChangedSinceProbe {
                            host: host.name.clone(),
                            what: now.differences(earlier),
                        });
                    }
                }
                Some(lock)
            }
            _ => None,
        };
        Ok(Box::new(OpenHost {
            transport,
            lock,
            permit,
            in_use: 0,
            idle_since: Instant::now(),
            relock,
            close_when_idle: false,
        }))
    }
}

/// How long no SSH host may be at work before a probe beside running
/// work closes an idle host to get a connection: the open hosts may all be
/// waiting for work on hosts not probed yet. Closing one too early costs
/// it a second login, nothing else.
const STUCK_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// What a waiter does next, decided under the slots' mutex.
enum Next {
    /// Until a slot changes.
    Wait,
    /// In line for a connection to come free (a probe beside work, which
    /// does not close idle hosts that may have work next), looking again
    /// after [`STUCK_AFTER`].
    Queue,
    Open(Option<OwnedSemaphorePermit>, Option<Relock>),
    Evict(HostKey, Box<OpenHost>),
}

impl Fleet {
    /// A fleet of `hosts` and the former hosts `former` (name and how it was
    /// reached, from the state), none opened yet; at most `limit` SSH
    /// connections will be open at once. `state_dir` is the cluster's
    /// state folder.
    pub fn new(
        model: &Model,
        hosts: &[HostId],
        former: &[(String, HostRecord)],
        state_dir: &Path,
        limit: usize,
    ) -> Fleet {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        let mut reach = HashMap::new();
        for &id in hosts {
            reach.insert(HostKey::Listed(id), Ok(model.host(id).clone()));
        }
        for (name, record) in former {
            // Its address may be an ssh config alias, as when it was listed.
            let host = former_host(name, record, &model.base_dir).map(|mut host| {
                crate::model::resolve_aliases(std::slice::from_mut(&mut host));
                host
            });
            reach.insert(HostKey::Former(name.clone()), host);
        }
        let slots = reach
            .keys()
            .map(|key| (key.clone(), Slot::Closed { relock: None }))
            .collect();
        // What the SSH connections share: made once, kept until the fleet goes.
        let ssh_run = SshRun::start().map(Arc::new).map_err(|e| {
            format!(
                "cannot make cairn's private SSH folder in {}: {e}",
                std::env::temp_dir().display()
            )
        });
        Fleet {
            inner: Arc::new(Inner {
                hosts: reach,
                slots: Mutex::new(slots),
                changed: Notify::new(),
                permits: Arc::new(Semaphore::new(limit)),
                limit,
                cluster: model.name.clone(),
                known_hosts: known_hosts_file(&model.base_dir),
                base_dir: model.base_dir.clone(),
                state_dir: state_dir.to_path_buf(),
                streams: Arc::new(StreamCache::default()),
                running: Arc::new(RunningGroups::recording(local::in_flight_dir(state_dir))),
                ssh_run,
                lock_policy: Mutex::new(None),
                weights: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// [`Fleet::new`] with every host opened at once (`cairn unlock`, which
    /// looks at each host's lock side by side).
    pub async fn connect(
        model: &Model,
        hosts: &[HostId],
        former: &[(String, HostRecord)],
        state_dir: &Path,
    ) -> Fleet {
        let fleet = Fleet::new(model, hosts, former, state_dir, hosts.len() + former.len());
        let mut jobs = tokio::task::JoinSet::new();
        for key in fleet.inner.hosts.keys().cloned() {
            let fleet = fleet.clone();
            jobs.spawn(async move {
                // A failure is kept in the slot, for `unreachable` to tell.
                drop(fleet.lease_key(key, Purpose::Probe).await);
            });
        }
        while jobs.join_next().await.is_some() {}
        fleet
    }

    /// How long a chain of work waits on each host (its tasks' longest):
    /// when a connection must be closed for another, the idle host with the
    /// least is closed first, so that the hosts the run's longest path goes
    /// through stay open from their probe to their work.
    pub fn keep_open_longest(&self, weights: HashMap<HostId, usize>) {
        *self
            .inner
            .weights
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = weights;
    }

    /// The most SSH connections open at once.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// `host`'s transport, opened if it is not (closing the host idle
    /// longest if the limit is reached, and waiting if none is idle). A host
    /// this apply locked and then closed is locked again, and checked
    /// against its probe if nothing was done there yet.
    pub async fn lease(&self, host: HostId) -> Result<Lease, TransportError> {
        self.lease_key(HostKey::Listed(host), Purpose::Work).await
    }

    /// [`Fleet::lease`] for a former host, by name.
    pub async fn lease_former(&self, name: &str) -> Result<Lease, TransportError> {
        self.lease_key(HostKey::Former(name.to_string()), Purpose::Work)
            .await
    }

    async fn lease_key(&self, key: HostKey, purpose: Purpose) -> Result<Lease, TransportError> {
        let inner = &self.inner;
        // A connection a probe waited for in line, until it is used.
        let mut in_hand: Option<OwnedSemaphorePermit> = None;
        loop {
            let changed = inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let next = {
                let mut slots = inner.slots();
                let Some(slot) = slots.get_mut(&key) else {
                    return Err(TransportError::Unreachable {
                        host: inner.name(&key),
                        message: "not part of this run (left out by --limit)".into(),
                    });
                };
                match slot {
                    Slot::Open(open) => {
                        return Ok(Lease {
                            transport: open.lend(purpose),
                            slot: Some((inner.clone(), key)),
                        });
                    }
                    Slot::Failed(why) => return Err(TransportError::Again(why.clone())),
                    Slot::Busy => Next::Wait,
                    Slot::Closed { relock } => {
                        let ssh = inner.is_ssh(&key);
                        let permit = if ssh {
                            in_hand
                                .take()
                                .or_else(|| inner.permits.clone().try_acquire_owned().ok())
                        } else {
                            None
                        };
                        if !ssh || permit.is_some() {
                            let relock = relock.clone();
                            *slot = Slot::Busy;
                            Next::Open(permit, relock)
                        } else {
                            inner.make_room(&mut slots, purpose)
                        }
                    }
                }
            };
            match next {
                Next::Wait => changed.await,
                Next::Queue => {
                    tokio::select! {
                        permit = inner.permits.clone().acquire_owned() => in_hand = permit.ok(),
                        () = tokio::time::sleep(STUCK_AFTER) => {}
                    }
                }
                Next::Evict(victim, open) => {
                    let relock = close_host(open).await;
                    inner.set(&victim, Slot::Closed { relock });
                }
                Next::Open(permit, relock) => {
                    let opened = inner.open(&key, permit, relock).await;
                    match opened {
                        // Lent at once: an idle host could be closed again
                        // by someone else before this loop came back to it.
                        Ok(mut open) => {
                            let transport = open.lend(purpose);
                            inner.set(&key, Slot::Open(open));
                            return Ok(Lease {
                                transport,
                                slot: Some((inner.clone(), key)),
                            });
                        }
                        // Unreachable, or refused after its probe: nothing
                        // more of this run tries it.
                        Err(e) => {
                            inner.set(&key, Slot::Failed(e.to_string()));
                            return Err(e);
                        }
                    }
                }
            }
        }
    }

    /// Refresh of one listed host: opens it and probes it, and with
    /// `policy` (apply) locks it for this run in the same round trip, the
    /// lock kept with its connection. Returns the report and, when a stale
    /// lock was taken over, whose it was. `beside_work`: the apply's tasks
    /// already run, and the probe waits for a free connection rather than
    /// close a host that may have work next ([`Purpose::ProbeBesideWork`]).
    pub async fn refresh_host(
        &self,
        host: HostId,
        request: &ProbeRequest,
        policy: Option<&LockPolicy>,
        beside_work: bool,
    ) -> Result<(ProbeReport, Option<String>), TransportError> {
        let purpose = if beside_work {
            Purpose::ProbeBesideWork
        } else {
            Purpose::Probe
        };
        self.probe_key(HostKey::Listed(host), request, policy, purpose)
            .await
    }

    /// Locks a former host for this apply (nothing is probed there: only
    /// undoing is planned).
    pub async fn lock_former(&self, name: &str, policy: &LockPolicy) -> Result<(), TransportError> {
        self.probe_key(
            HostKey::Former(name.to_string()),
            &ProbeRequest::default(),
            Some(policy),
            Purpose::Probe,
        )
        .await
        .map(|_| ())
    }

    async fn probe_key(
        &self,
        key: HostKey,
        request: &ProbeRequest,
        policy: Option<&LockPolicy>,
        purpose: Purpose,
    ) -> Result<(ProbeReport, Option<String>), TransportError> {
        let lease = self.lease_key(key.clone(), purpose).await?;
        let Some(policy) = policy else {
            return match lease.probe(request).await {
                Ok(report) => Ok((report, None)),
                Err(e) => {
                    drop(lease);
                    Err(self.fail(&key, e).await)
                }
            };
        };
        self.inner
            .lock_policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| policy.clone());
        let (lock, report) = match lease.lock_and_probe(policy, request).await {
            Ok(locked) => locked,
            Err(e) => {
                drop(lease);
                return Err(self.fail(&key, e).await);
            }
        };
        let stale = lock.stale_owner().map(str::to_string);
        let mut slots = self.inner.slots();
        if let Some(Slot::Open(open)) = slots.get_mut(&key) {
            open.lock = Some(lock);
            open.relock = Some(Relock {
                // Files go with the first probe only: a second would send them again.
                request: ProbeRequest {
                    prestage: None,
                    ..request.clone()
                },
                fingerprint: Some(Fingerprint::of(&report)),
            });
        }
        drop(slots);
        drop(lease);
        Ok((report, stale))
    }

    /// A host that could not be probed or locked: closed, and kept failed
    /// with why, so nothing of this run uses it (it is not planned).
    async fn fail(&self, key: &HostKey, error: TransportError) -> TransportError {
        let open = take_open(&mut self.inner.slots(), key);
        if let Some(open) = open {
            close_host(open).await;
        }
        self.inner.set(key, Slot::Failed(error.to_string()));
        error
    }

    /// The listed hosts open now.
    pub fn open_hosts(&self) -> std::collections::HashSet<HostId> {
        self.inner
            .slots()
            .iter()
            .filter_map(|(key, slot)| match (key, slot) {
                (HostKey::Listed(id), Slot::Open(_)) => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// The transport of `host` if it is open now (nothing is opened).
    pub fn open_now(&self, host: HostId) -> Option<Transport> {
        self.open_transport(&HostKey::Listed(host))
    }

    /// The transport of the former host `name` if it is open now.
    pub fn former_open_now(&self, name: &str) -> Option<Transport> {
        self.open_transport(&HostKey::Former(name.to_string()))
    }

    fn open_transport(&self, key: &HostKey) -> Option<Transport> {
        match self.inner.slots().get(key) {
            Some(Slot::Open(open)) => Some(open.transport.clone()),
            _ => None,
        }
    }

    /// Why `host` (by name) could not be reached, if it was tried and failed.
    pub fn unreachable(&self, host: &str) -> Option<String> {
        self.inner
            .slots()
            .iter()
            .find_map(|(key, slot)| match (key, slot) {
                (HostKey::Listed(_), Slot::Failed(why)) if self.inner.name(key) == host => {
                    Some(why.clone())
                }
                _ => None,
            })
    }

    /// Former hosts (by name) that could not be reached, with why.
    pub fn former_unreachable(&self) -> BTreeMap<String, String> {
        self.inner
            .slots()
            .iter()
            .filter_map(|(key, slot)| match (key, slot) {
                (HostKey::Former(name), Slot::Failed(why)) => Some((name.clone(), why.clone())),
                _ => None,
            })
            .collect()
    }

    /// The former hosts of this run, by name.
    pub fn former_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .hosts
            .keys()
            .filter_map(|key| match key {
                HostKey::Former(name) => Some(name.clone()),
                HostKey::Listed(_) => None,
            })
            .collect();
        names.sort();
        names
    }

    /// Whether `name` is a former host of this run that has not failed.
    pub fn former_reachable(&self, name: &str) -> bool {
        matches!(
            self.inner.slots().get(&HostKey::Former(name.to_string())),
            Some(Slot::Open(_) | Slot::Closed { .. } | Slot::Busy)
        )
    }

    /// The transport for undoing a task that ran on `host`: the host's own
    /// while the Clusterfile lists it at the same address; else the former
    /// host's, reached as recorded; for this machine, a new one even after
    /// it left; `None` for an SSH host that is not part of this run.
    pub async fn lease_for_record(
        &self,
        model: &Model,
        host: &HostIdentity,
    ) -> Option<Result<Lease, TransportError>> {
        let current = model.hosts.iter().find(|h| {
            h.name == host.name
                && (h.transport == TransportKind::Local
                    || (h.address == host.address && h.port == host.port))
        });
        if let Some(h) = current {
            let key = HostKey::Listed(h.id);
            if !self.inner.hosts.contains_key(&key) {
                return None;
            }
            return Some(self.lease_key(key, Purpose::Work).await);
        }
        let former = HostKey::Former(host.name.clone());
        if self.inner.hosts.contains_key(&former) {
            return Some(self.lease_key(former, Purpose::Work).await);
        }
        // This machine needs no connection: a host that left it is reached anew.
        let left = !model.hosts.iter().any(|h| h.name == host.name);
        (left && host.transport == TransportKind::Local).then(|| {
            Ok(Lease {
                transport: Transport::local(LocalTransport::new(
                    host.name.clone(),
                    self.inner.base_dir.clone(),
                    &self.inner.state_dir,
                    self.inner.running.clone(),
                )),
                slot: None,
            })
        })
    }

    /// Nothing more of this run needs `host`: its lock is released and its
    /// connection closed once no lease on it is out.
    pub async fn done_with(&self, host: HostId) {
        self.close_key(&HostKey::Listed(host)).await;
    }

    /// [`Fleet::done_with`] for every former host.
    pub async fn done_with_former(&self) {
        for name in self.former_names() {
            self.close_key(&HostKey::Former(name)).await;
        }
    }

    async fn close_key(&self, key: &HostKey) {
        let open = {
            let mut slots = self.inner.slots();
            match slots.get_mut(key) {
                Some(Slot::Open(open)) if open.in_use > 0 => {
                    open.close_when_idle = true;
                    None
                }
                Some(Slot::Open(_)) => take_open(&mut slots, key),
                _ => None,
            }
        };
        if let Some(open) = open {
            let relock = close_host(open).await;
            self.inner.set(key, Slot::Closed { relock });
        }
    }

    /// Stops the run's work in flight: every script running on this machine
    /// is killed with everything it started. Over SSH a step still running is
    /// stopped on its host by its own `timeout` once cairn's channels close.
    pub fn abort_running(&self) {
        self.inner.running.kill_all();
    }

    /// Releases every lock and closes every connection.
    pub async fn close(self) {
        let open: Vec<Box<OpenHost>> = {
            let mut slots = self.inner.slots();
            let keys: Vec<HostKey> = slots.keys().cloned().collect();
            keys.iter()
                .filter_map(|key| take_open(&mut slots, key))
                .collect()
        };
        let mut jobs = tokio::task::JoinSet::new();
        for host in open {
            jobs.spawn(close_host(host));
        }
        while jobs.join_next().await.is_some() {}
        if let Ok(run) = &self.inner.ssh_run {
            run.close();
        }
    }
}

/// cairn's own `known_hosts` file, beside the Clusterfile.
fn known_hosts_file(base_dir: &Path) -> PathBuf {
    base_dir.join(".cairn").join("known_hosts")
}
