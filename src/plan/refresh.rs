//! Refresh: read what is really on each host before planning.
//!
//! For every host, one probe request looks at everything cairn recorded
//! there, in one round trip: facts (hostname, OS, arch, zstd), cairn's
//! receipts, the files it shipped (stat first, rehash only what changed) and
//! the `check` command of every step that has one. Hosts are probed as many
//! at once as the run's fleet keeps connections open.
//! The result is a map of observations by task id, which `plan::diff`
//! compares with the records.

use std::collections::{BTreeMap, HashMap};

use petgraph::graph::NodeIndex;
use std::sync::Arc;

use crate::graph::{TaskGraph, Work};
use crate::ids::TaskId;
use crate::model::{HostId, Model};
use crate::state::LockPolicy;
use crate::state::{RecordDetail, State};
use crate::transport::{
    CheckProbe, Facts, Fleet, Observed, Prestage, ProbeReport, ProbeRequest, ReceiptInfo,
    StreamTurn, TransportError,
};

/// What a probe found for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Shipped files, each as found.
    Files(BTreeMap<String, Observed>),
    /// A step's `check`: exit code (None: timed out or killed).
    Check { passed: bool, code: Option<i32> },
}

/// All observations of one refresh.
#[derive(Debug, Default)]
pub struct Refresh {
    pub observations: HashMap<TaskId, Observation>,
    /// Hosts that could not be probed, with why.
    pub unreachable: BTreeMap<String, String>,
    /// Facts of each probed host, by name.
    pub facts: BTreeMap<String, Facts>,
    /// Receipts found on the hosts, by task.
    pub receipts: HashMap<TaskId, ReceiptInfo>,
    /// Things worth telling the operator (a stale lock taken over).
    pub notes: Vec<String>,
    /// Former hosts (see `former`) that could not be reached or locked, with why.
    pub former_unreachable: BTreeMap<String, String>,
}

/// The value `${name}` had on `host` when last captured, from the state.
pub fn recorded_capture(model: &Model, state: &State, host: HostId, name: &str) -> Option<String> {
    let (step, source_host) = model.capture_source(host, name)?;
    let id = crate::graph::task_id(model, crate::model::ElementRef::Step(step), source_host);
    match &state.tasks.get(&id)?.detail {
        // A masked value is not the value: unknown, as if never captured.
        RecordDetail::Step {
            captured,
            captured_masked: false,
            ..
        } => captured.clone(),
        _ => None,
    }
}

/// Probes every host in `hosts` (ids into `model.hosts`) through `fleet`:
/// one request per host, as many hosts at once as the fleet keeps
/// connections open. With `lock_policy` (apply), each host is locked for
/// this run in the same round trip as its probe (waiting as the policy
/// says), the lock kept with its connection; a host that cannot be locked
/// counts as unreachable. Former hosts are only locked.
pub async fn refresh(
    model: Arc<Model>,
    graph: &TaskGraph,
    state: Arc<State>,
    fleet: &Fleet,
    hosts: &[HostId],
    lock_policy: Option<&LockPolicy>,
) -> Refresh {
    let mut jobs = start_probes(&model, graph, &state, fleet, hosts, lock_policy, false);
    let mut all = Refresh::default();
    lock_former_hosts(fleet, lock_policy, &mut all).await;
    while let Some(joined) = jobs.join_next().await {
        all.take_in(joined.expect("refresh tasks do not panic"));
    }
    all.notes.sort();
    all
}

/// One host's probe, back: what it found, or why it could not be probed.
pub struct HostProbe {
    pub host: HostId,
    name: String,
    ids: RequestIds,
    result: Result<(ProbeReport, Option<String>), TransportError>,
}

/// Starts probing every host in `hosts`, in that order (first asked,
/// first given a connection), each probe a task of the returned set; what
/// [`refresh`] waits for all of, and a streamed apply takes in one by one.
/// `beside_work`: the apply's tasks run while hosts are still probed, so a
/// probe waits for a connection to come free rather than close a host
/// that has work to do (see [`Fleet::refresh_host`]).
pub fn start_probes(
    model: &Arc<Model>,
    graph: &TaskGraph,
    state: &State,
    fleet: &Fleet,
    hosts: &[HostId],
    lock_policy: Option<&LockPolicy>,
    beside_work: bool,
) -> tokio::task::JoinSet<HostProbe> {
    // Each host's tasks, in dependency order, gathered in one pass over the graph.
    let mut tasks_of: HashMap<HostId, Vec<NodeIndex>> = HashMap::new();
    for &node in graph.topological() {
        tasks_of
            .entry(graph.task(node).host)
            .or_default()
            .push(node);
    }
    // Only an apply whose work starts as each probe is in (it asks nobody)
    // sends files with the probe: one that waits for an answer would have
    // sent them for nothing if the answer is no.
    let chains = (beside_work && lock_policy.is_some()).then(|| graph.chain_lengths());
    let mut shared = SharedFiles::default();
    let mut requests: Vec<_> = hosts
        .iter()
        .map(|&host| {
            let nodes = tasks_of.remove(&host).unwrap_or_default();
            let (mut request, ids) = request_for(model, graph, state, host, &nodes);
            let mut chain = None;
            if let Some(chains) = &chains
                && let Some((staged, length)) = prestage(graph, state, &nodes, chains, &mut shared)
            {
                request.prestage = Some(Box::new(staged));
                chain = Some(length);
            }
            (host, request, ids, chain)
        })
        .collect();
    // The hosts whose files start the longest chain of work get theirs first.
    let chains: Vec<Option<usize>> = requests.iter().map(|(.., chain)| *chain).collect();
    for (turn, (_, request, _, _)) in StreamTurn::assign(&chains).into_iter().zip(&mut requests) {
        if let Some(staged) = &mut request.prestage {
            staged.turn = turn;
        }
    }
    let mut jobs = tokio::task::JoinSet::new();
    for (host, request, ids, _) in requests {
        let name = model.host(host).name.clone();
        let policy = lock_policy.cloned();
        let fleet = fleet.clone();
        jobs.spawn(async move {
            let result = fleet
                .refresh_host(host, &request, policy.as_ref(), beside_work)
                .await;
            HostProbe {
                host,
                name,
                ids,
                result,
            }
        });
    }
    jobs
}

impl Refresh {
    /// Takes in one host's probe: its observations, receipts and facts, or
    /// why it is unreachable.
    pub fn take_in(&mut self, probe: HostProbe) {
        let HostProbe {
            name, ids, result, ..
        } = probe;
        let report = match result {
            Ok((report, stale_owner)) => {
                if let Some(owner) = stale_owner {
                    self.notes.push(format!(
                        "host {name}: took over a stale lock left by {owner} (that apply did not finish; this one picks up where it stopped)"
                    ));
                }
                report
            }
            Err(error) => {
                self.unreachable.insert(name, error.to_string());
                return;
            }
        };
        for (id, found) in ids.files.into_iter().zip(report.files) {
            self.observations.insert(id, Observation::Files(found));
        }
        for (id, result) in ids.checks.into_iter().zip(report.checks) {
            self.observations.insert(
                id,
                Observation::Check {
                    passed: result.code == Some(0),
                    code: result.code,
                },
            );
        }
        for id in ids.unrenderable {
            self.observations.insert(
                id,
                Observation::Check {
                    passed: false,
                    code: None,
                },
            );
        }
        self.receipts.extend(report.receipts);
        self.facts.insert(name, report.facts);
    }
}

/// Former hosts are not probed (nothing is planned there but undoing): a
/// plan connects to each, an apply locks each like any host, in parallel. One that could not be
/// reached or locked is kept with why.
async fn lock_former_hosts(fleet: &Fleet, lock_policy: Option<&LockPolicy>, all: &mut Refresh) {
    let mut jobs = tokio::task::JoinSet::new();
    for name in fleet.former_names() {
        let fleet = fleet.clone();
        let policy = lock_policy.cloned();
        jobs.spawn(async move {
            let result = match policy {
                Some(policy) => fleet.lock_former(&name, &policy).await,
                // A plan only tells whether it can be reached.
                None => fleet.lease_former(&name).await.map(drop),
            };
            (name, result)
        });
    }
    while let Some(joined) = jobs.join_next().await {
        if let (name, Err(error)) = joined.expect("locking does not panic") {
            all.former_unreachable.insert(name, error.to_string());
        }
    }
}

/// What an apply that asks nobody can send to a host with its probe:
/// the files of the bundle or file task that will ship them whatever the
/// probe finds, because the state has no record of it (so it is created,
/// see `Differ::unrecorded`) and it waits for nothing. Of several, the one
/// with the longest chain of work behind it, which the scheduler starts
/// first, and the length of that chain. A destination with a control
/// character is left to the task.
fn prestage(
    graph: &TaskGraph,
    state: &State,
    nodes: &[NodeIndex],
    chains: &HashMap<NodeIndex, usize>,
    shared: &mut SharedFiles,
) -> Option<(Prestage, usize)> {
    let (length, node) = nodes
        .iter()
        .filter(|&&node| {
            let task = graph.task(node);
            matches!(task.work, Work::Bundle { .. } | Work::File { .. })
                && graph.upstream(node).next().is_none()
                && !state.tasks.contains_key(&task.id)
        })
        .map(|&node| (chains.get(&node).copied().unwrap_or(0), node))
        .rev()
        .max_by_key(|(length, _)| *length)?;
    let work = &graph.task(node).work;
    let (Work::Bundle { dest, .. } | Work::File { dest, .. }) = work else {
        return None;
    };
    if dest.chars().any(char::is_control) {
        return None;
    }
    let files = match work {
        // The same bundle with nothing rendered for the host: the same files.
        Work::Bundle {
            bundle,
            rendered,
            excluded,
            ..
        } if rendered.is_empty() && excluded.is_empty() => shared
            .entry(*bundle)
            .or_insert_with(|| Arc::new(work.files()))
            .clone(),
        _ => Arc::new(work.files()),
    };
    Some((
        Prestage {
            dest: dest.clone(),
            files,
            turn: None,
        },
        length,
    ))
}

/// The file sets hosts share, by bundle: one copy in memory for every host
/// a bundle goes to, not one per host.
type SharedFiles = HashMap<usize, Arc<BTreeMap<String, crate::bundle::ShipFile>>>;

/// Which task each part of a probe request belongs to.
#[derive(Default)]
struct RequestIds {
    files: Vec<TaskId>,
    checks: Vec<TaskId>,
    /// Steps whose check reads a value not captured yet.
    unrenderable: Vec<TaskId>,
}

fn request_for(
    model: &Model,
    graph: &TaskGraph,
    state: &State,
    host: HostId,
    nodes: &[NodeIndex],
) -> (ProbeRequest, RequestIds) {
    let mut request = ProbeRequest::default();
    let mut ids = RequestIds::default();
    for &node in nodes {
        let task = graph.task(node);
        match &task.work {
            Work::Step { step } => {
                let s = &model.steps[*step];
                let Some(check) = &s.check else { continue };
                let captured = |n: &str| recorded_capture(model, state, host, n);
                let Ok(script) = check.render(|n| model.resolve(host, n, &captured)) else {
                    ids.unrenderable.push(task.id.clone());
                    continue;
                };
                let cwd = s
                    .cwd
                    .as_ref()
                    .and_then(|c| c.render(|n| model.resolve(host, n, &captured)).ok());
                request.checks.push(CheckProbe {
                    script,
                    cwd,
                    timeout: s.timeout.unwrap_or(std::time::Duration::from_secs(60)),
                });
                ids.checks.push(task.id.clone());
            }
            Work::Bundle { .. } | Work::File { .. } => {
                if let Some((dest, shipped)) = state
                    .tasks
                    .get(&task.id)
                    .and_then(|r| r.detail.shipped_files())
                {
                    request.files.push((dest.to_string(), shipped));
                    ids.files.push(task.id.clone());
                    // A file the Clusterfile gives an owner: the probe checks it has it.
                    if let Work::File { file, .. } = &task.work
                        && let Some(owner) = &model.files[*file].owner
                    {
                        request
                            .owners
                            .push((request.files.len() - 1, owner.clone()));
                    }
                }
            }
        }
    }
    (request, ids)
}
