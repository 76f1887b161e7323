//! The scheduler: walks the task graph and runs what the plan says, in parallel.
//!
//! One loop owns all scheduling state (as cargo's job queue does): how many
//! upstream tasks each task still waits for, how each finished, the values
//! captured so far. Tasks run as tokio tasks and send one message back when
//! they end; the loop then releases what waited for them. A task starts as
//! soon as everything it waits for is done, with no barrier between steps
//! or hosts, within `--parallelism` overall and a per-host limit. A host
//! whose tasks have all settled is let go (its lock released, its
//! connection closed) at once, not at the end of the run.
//!
//! What a failure does is the run's [`FailurePolicy`]: by default it skips
//! what waits for the failed task ("upstream failed") and nothing else, so
//! independent work goes on; `--fail-fast` also starts nothing new. The
//! first Ctrl-C stops starting tasks and lets the running ones finish and
//! be recorded; a second abandons them (the fleet kills what runs here).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

use petgraph::graph::NodeIndex;
use tokio::sync::mpsc::UnboundedSender;

use super::context::{RunContext, Seen};
use super::destroy::run_destroys;
use super::events::millis;
use super::failure::{Failure, TaskError};
use super::task::{TaskDone, capture_values, run_task};
use super::{Event, HostTotal, Outcome, RunSummary};
use crate::graph::{TaskGraph, Work};
use crate::ids::TaskId;
use crate::model::{HostId, Model, Scrubber, TransportKind};
use crate::plan::stream::Resolved;
use crate::plan::{Change, ChangeKind, Plan};
use crate::state::journal::Appender;
use crate::state::{JournalEntry, RecordDetail, State};
use crate::transport::Fleet;

/// Default per-host limit of tasks running at once. Over SSH they share the
/// host's one long-lived shell.
pub const DEFAULT_PER_HOST: usize = 8;

/// What a failed task does to the rest of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Skip what waits for the failed task; independent work goes on.
    #[default]
    SkipDependents,
    /// Also start nothing new: what runs finishes and is recorded, the rest
    /// is skipped (`--fail-fast`, as sealos stops at its first error).
    FailFast,
}

/// How a run is carried out.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Tasks running at once, overall.
    pub parallelism: usize,
    /// Tasks running at once on one host.
    pub per_host: usize,
    /// Folder of this run's task logs.
    pub log_dir: PathBuf,
    pub on_failure: FailurePolicy,
}

/// What one run works from.
pub struct Run<'a> {
    pub model: Arc<Model>,
    pub graph: Arc<TaskGraph>,
    /// The state the plan was made from.
    pub state: Arc<State>,
    pub plan: PlanFeed<'a>,
    /// What refresh saw, so shipping knows what each host has.
    pub refresh: Seen,
    /// The open connections.
    pub fleet: Fleet,
    /// Who runs this apply, as receipts name it (`user@machine`).
    pub operator: String,
    pub journal: Appender,
    pub events: Sender<Event>,
    /// Hosts forgotten once all is undone there (they left the Clusterfile,
    /// or are reset).
    pub forget_hosts: BTreeSet<String>,
}

/// Where a run's changes come from.
pub enum PlanFeed<'a> {
    /// The whole plan, known (and shown) before anything runs.
    Whole(&'a Plan),
    /// A plan made host by host as probes come back (`plan::stream`): a
    /// task runs once its change is resolved and what it waits for is
    /// done. The run ends when the sender is dropped (every host is in)
    /// and nothing is left to do. Nothing is undone in such a run.
    Streamed(tokio::sync::mpsc::UnboundedReceiver<Feed>),
}

/// What a streamed plan tells the run, as it is made.
#[derive(Debug)]
pub enum Feed {
    /// Tasks whose change is final. `records` are journaled first (how
    /// their hosts are reached), before any of them runs.
    Resolved {
        records: Vec<JournalEntry>,
        tasks: Vec<Resolved>,
    },
    /// Tasks that must not run, with why (a saved plan that no longer
    /// holds for their host): skipped, as is what waits for them.
    Refused {
        tasks: Vec<Resolved>,
        reason: String,
    },
}

/// Runs the plan. Returns the summary; `failed` is empty on success.
pub async fn execute(run: Run<'_>, options: ExecOptions) -> RunSummary {
    let started = Instant::now();
    let Run {
        model,
        graph,
        state,
        plan,
        refresh,
        fleet,
        operator,
        journal,
        events,
        forget_hosts,
    } = run;
    let context = Arc::new(RunContext::new(
        model,
        state,
        refresh,
        journal,
        options.log_dir.clone(),
        fleet,
        operator,
    ));
    let (mut scheduler, mut plan_feed) = match plan {
        PlanFeed::Whole(plan) => {
            let summary =
                before_whole_plan(&context, &graph, plan, &forget_hosts, &options, &events).await;
            let mut scheduler = Scheduler::new(&graph, &context, &events, &options, summary);
            scheduler.resolve_whole(plan);
            (scheduler, None)
        }
        PlanFeed::Streamed(plan_feed) => {
            let _ = context.failed_undos.set(BTreeSet::new());
            let summary = RunSummary::default();
            (
                Scheduler::new(&graph, &context, &events, &options, summary),
                Some(plan_feed),
            )
        }
    };
    let mut manifests_written = HashSet::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Finished>();
    let mut interrupts =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut letting_go = tokio::task::JoinSet::new();
    loop {
        scheduler.settle_ready();
        scheduler.start_deferred(&context, &done_tx);
        // A host with nothing left to do in this run lets its connection
        // (and lock) go now, so a large fleet never holds more than the
        // hosts still at work.
        for host in scheduler.finished_hosts.drain(..) {
            let fleet = context.fleet.clone();
            letting_go.spawn(async move { fleet.done_with(host).await });
        }
        if !scheduler.ready.is_empty() {
            // Skipping under --fail-fast readied what waited for the skipped.
            continue;
        }
        // Waits for the rest of a streamed plan, unless Ctrl-C stops the run.
        if scheduler.running == 0 && (plan_feed.is_none() || scheduler.admission != Admission::Open)
        {
            break;
        }
        let interrupt = async {
            match interrupts.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let part = async {
            match plan_feed.as_mut() {
                Some(plan_feed) => plan_feed.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(finished) = done_rx.recv() => scheduler.finish(finished),
            part = part => {
                if let Some(part) = part {
                    scheduler.take_part(part, &context, &mut manifests_written).await;
                } else {
                    // The plan is whole.
                    plan_feed = None;
                    scheduler.let_go_idle_hosts();
                }
            }
            _ = interrupt => {
                if scheduler.interrupt(&context.log_dir) == Interrupt::Abandon {
                    context.fleet.abort_running();
                    break;
                }
            }
        }
    }
    let mut summary = scheduler.end(plan_feed.is_none());
    // Locks released cleanly before the run reports its end.
    while letting_go.join_next().await.is_some() {}
    summary.duration_ms = millis(started.elapsed());
    if context.log_dir.is_dir() {
        summary.log_dir = Some(context.log_dir.display().to_string());
    }
    summary
}

/// What a run of a whole plan does before its tasks: tells the reporter
/// how many will run, journals the manifests of the bundles about to ship,
/// and undoes what left the Clusterfile. The summary so far.
async fn before_whole_plan(
    context: &Arc<RunContext>,
    graph: &TaskGraph,
    plan: &Plan,
    forget_hosts: &BTreeSet<String>,
    options: &ExecOptions,
    events: &Sender<Event>,
) -> RunSummary {
    let mut summary = RunSummary::default();
    let _ = events.send(run_started(&context.model, plan));
    let changes = plan.changes.iter().filter(|c| c.kind != ChangeKind::Noop);
    record_manifests(context, graph, changes, &mut HashSet::new()).await;
    let failed_undos = run_destroys(
        context,
        plan,
        forget_hosts,
        options.parallelism,
        events,
        &mut summary,
    )
    .await;
    let _ = context.failed_undos.set(failed_undos);
    summary
}

/// The event that opens a run of `plan`: how many tasks will run, per
/// host. A streamed apply sends it once its plan is whole.
pub fn run_started(model: &Model, plan: &Plan) -> Event {
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    for c in plan
        .changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Noop || c.adopt)
    {
        *per_host.entry(c.host.clone()).or_default() += 1;
    }
    Event::RunStarted {
        cluster: model.name.clone(),
        tasks: per_host.values().sum(),
        hosts: per_host
            .into_iter()
            .map(|(host, tasks)| HostTotal { host, tasks })
            .collect(),
    }
}

/// Journals the manifest of every bundle about to ship (not written yet:
/// `written`), before any bundle record, so every later plan can name the
/// files that changed.
async fn record_manifests<'c>(
    context: &RunContext,
    graph: &TaskGraph,
    changes: impl Iterator<Item = &'c Change>,
    written: &mut HashSet<String>,
) {
    for c in changes.filter(|c| c.kind != ChangeKind::Noop) {
        if let Some(node) = c.node
            && let Work::Bundle { prepared, .. } = &graph.task(node).work
            && !context.state.manifests.contains_key(&prepared.base_root)
            && written.insert(prepared.base_root.clone())
        {
            // A manifest only lets later plans name changed files; if the journal
            // cannot be written, the task's own record fails next, loudly.
            let _ = context
                .record(JournalEntry::Manifest {
                    root: prepared.base_root.clone(),
                    manifest: prepared.base_manifest.clone(),
                })
                .await;
        }
    }
}

/// How a task ended, as far as what waits for it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Done,
    /// Failed, skipped, or left out without a record: what waits for it cannot run.
    Blocked,
}

/// Whether the run still starts tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Admission {
    Open,
    /// The first Ctrl-C: running tasks finish, nothing new starts.
    Draining,
    /// A task failed under `--fail-fast`: what has not started is skipped.
    Halted(TaskId),
    /// A task ran but could not be recorded (the disk, or the state
    /// backend's lock, is lost): nothing more starts, whatever the policy.
    Unrecorded(TaskId),
}

/// Why a task did not start after a record could not be written.
fn unrecorded(failed: &TaskId) -> String {
    format!("not started: {failed} ran but could not be recorded, so the run starts nothing more")
}

/// Why a task did not start under `--fail-fast`.
fn halted(failed: &TaskId) -> String {
    format!("not started: {failed} failed and --fail-fast stops the run")
}

/// What a Ctrl-C does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    /// The first: let the running tasks finish.
    Drain,
    /// The second: leave them.
    Abandon,
}

/// For every task, its chain length ([`TaskGraph::chain_lengths`]): the
/// scheduler starts the longest first, so the path that bounds the run's
/// length is never queued behind work that could wait.
///
/// The tasks of a `serial` step all get the longest of theirs, so that
/// among them host order decides.
fn critical_paths(graph: &TaskGraph, model: &Model) -> HashMap<NodeIndex, usize> {
    let mut critical = graph.chain_lengths();
    let mut serial_longest: HashMap<usize, usize> = HashMap::new();
    for (&node, &length) in &critical {
        if let Some((step, _)) = serial_step(graph, model, node) {
            let longest = serial_longest.entry(step).or_default();
            *longest = (*longest).max(length);
        }
    }
    for (node, length) in &mut critical {
        if let Some((step, _)) = serial_step(graph, model, *node) {
            *length = serial_longest[&step];
        }
    }
    critical
}

/// The tasks of each `serial` step, in host order.
fn serial_tasks(graph: &TaskGraph, model: &Model) -> HashMap<usize, Vec<NodeIndex>> {
    let mut tasks: HashMap<usize, Vec<NodeIndex>> = HashMap::new();
    for &node in graph.topological() {
        if let Some((step, _)) = serial_step(graph, model, node) {
            tasks.entry(step).or_default().push(node);
        }
    }
    for nodes in tasks.values_mut() {
        nodes.sort_by_key(|&n| model.host(graph.task(n).host).index);
    }
    tasks
}

/// The step `node` runs and its `serial` limit, when it has one.
fn serial_step(graph: &TaskGraph, model: &Model, node: NodeIndex) -> Option<(usize, usize)> {
    match graph.task(node).work {
        Work::Step { step } => model.steps[step].serial.map(|limit| (step, limit)),
        _ => None,
    }
}

/// A task's message back to the loop.
struct Finished {
    node: NodeIndex,
    result: Result<TaskDone, Failure>,
    duration_ms: u64,
}

/// The scheduling state of one run, owned by the loop in [`execute`].
struct Scheduler<'a> {
    graph: &'a TaskGraph,
    model: &'a Model,
    state: &'a State,
    scrubber: &'a Scrubber,
    /// Each task's change, once resolved (none: not touched this run).
    changes: HashMap<NodeIndex, Change>,
    /// Tasks whose change is final: a task is ready once it is resolved
    /// and everything it waits for has settled.
    resolved: HashSet<NodeIndex>,
    /// Resolved tasks that must not run, with why.
    refused: HashMap<NodeIndex, String>,
    events: &'a Sender<Event>,
    options: &'a ExecOptions,
    /// Upstream tasks each task still waits for.
    waiting: HashMap<NodeIndex, usize>,
    /// Tasks whose upstream has all settled, to look at next.
    ready: VecDeque<NodeIndex>,
    /// Tasks that must run, waiting for a free slot.
    deferred: VecDeque<NodeIndex>,
    /// Each task's critical path: the tasks on the longest chain from it
    /// to the end of the graph, itself included (see [`critical_paths`]).
    critical: HashMap<NodeIndex, usize>,
    /// Tasks of each `serial` step running now, by step index.
    running_in_step: HashMap<usize, usize>,
    /// Each `serial` step's tasks, by host order: a streamed plan resolves
    /// hosts in the order their probes come back, and one of these waits
    /// until those before it are resolved, so they still go in host order.
    serial_tasks: HashMap<usize, Vec<NodeIndex>>,
    settled: HashMap<NodeIndex, Settled>,
    /// Values captured so far, by the task that captured them.
    captured: HashMap<TaskId, String>,
    running: usize,
    running_on: HashMap<HostId, usize>,
    started: usize,
    admission: Admission,
    /// Tasks `--fail-fast` left out, so what waits for them says why too.
    halted_out: HashSet<NodeIndex>,
    /// Each host's tasks not settled yet: at zero, its connection closes.
    unsettled_on: HashMap<HostId, usize>,
    /// Hosts whose tasks have all settled, for the loop to let go of.
    finished_hosts: Vec<HostId>,
    /// Hosts with no task at all: let go once the plan is whole.
    taskless: Vec<HostId>,
    /// SSH hosts with a task started and some not settled: each holds one
    /// of the fleet's connections until it is done.
    active_hosts: HashSet<HostId>,
    summary: RunSummary,
}

impl<'a> Scheduler<'a> {
    /// A run with no task resolved yet ([`Scheduler::resolve`]).
    fn new(
        graph: &'a TaskGraph,
        context: &'a RunContext,
        events: &'a Sender<Event>,
        options: &'a ExecOptions,
        summary: RunSummary,
    ) -> Scheduler<'a> {
        let mut waiting = HashMap::new();
        let mut unsettled_on: HashMap<HostId, usize> =
            context.model.hosts.iter().map(|h| (h.id, 0)).collect();
        for &node in graph.topological() {
            *unsettled_on.entry(graph.task(node).host).or_default() += 1;
            waiting.insert(node, graph.upstream(node).count());
        }
        let captured = context
            .state
            .tasks
            .iter()
            .filter_map(|(id, record)| match &record.detail {
                RecordDetail::Step {
                    captured: Some(v),
                    captured_masked: false,
                    ..
                } => Some((id.clone(), v.clone())),
                _ => None,
            })
            .collect();
        Scheduler {
            graph,
            model: &context.model,
            state: &context.state,
            scrubber: &context.scrubber,
            changes: HashMap::with_capacity(graph.len()),
            resolved: HashSet::with_capacity(graph.len()),
            refused: HashMap::new(),
            events,
            options,
            waiting,
            ready: VecDeque::new(),
            deferred: VecDeque::new(),
            critical: critical_paths(graph, &context.model),
            running_in_step: HashMap::new(),
            serial_tasks: serial_tasks(graph, &context.model),
            settled: HashMap::new(),
            captured,
            running: 0,
            running_on: HashMap::new(),
            started: 0,
            admission: Admission::Open,
            halted_out: HashSet::new(),
            finished_hosts: Vec::new(),
            taskless: unsettled_on
                .iter()
                .filter(|&(_, &n)| n == 0)
                .map(|(&host, _)| host)
                .collect(),
            unsettled_on,
            active_hosts: HashSet::new(),
            summary,
        }
    }

    /// Takes a part of a streamed plan: journals how its hosts are reached
    /// and the manifests of its bundles, then resolves its tasks.
    async fn take_part(
        &mut self,
        part: Feed,
        context: &RunContext,
        manifests_written: &mut HashSet<String>,
    ) {
        match part {
            Feed::Resolved { records, tasks } => {
                for entry in records {
                    // A host record only helps a later run undo what ran
                    // there; a journal that cannot be written fails the
                    // first task's own record next, loudly.
                    let _ = context.record(entry).await;
                }
                let to_ship = tasks.iter().filter_map(|t| t.change.as_ref());
                record_manifests(context, self.graph, to_ship, manifests_written).await;
                for task in tasks {
                    self.resolve(task.node, task.change);
                }
            }
            Feed::Refused { tasks, reason } => {
                for task in tasks {
                    self.refuse(task.node, task.change, reason.clone());
                }
            }
        }
    }

    /// `node`'s change is final (`None`: not touched this run); it is
    /// ready once what it waits for has settled.
    fn resolve(&mut self, node: NodeIndex, change: Option<Change>) {
        if !self.resolved.insert(node) {
            return;
        }
        if let Some(change) = change {
            // As the plan's summary counts it (an adopted task too).
            if change.kind == ChangeKind::Noop {
                self.summary.unchanged += 1;
            }
            self.changes.insert(node, change);
        }
        if self.waiting[&node] == 0 {
            self.ready.push_back(node);
        }
    }

    /// [`Scheduler::resolve`] for a task that must not run, with why.
    fn refuse(&mut self, node: NodeIndex, change: Option<Change>, reason: String) {
        self.refused.insert(node, reason);
        self.resolve(node, change);
    }

    /// Resolves every task of a whole plan: those it has no change for (on
    /// a host left out or unreachable) are not touched this run.
    fn resolve_whole(&mut self, plan: &Plan) {
        for change in &plan.changes {
            if let Some(node) = change.node {
                self.resolve(node, Some(change.clone()));
            }
        }
        for &node in self.graph.topological() {
            self.resolve(node, None);
        }
        self.let_go_idle_hosts();
    }

    /// Lets go of the hosts that have no task at all.
    fn let_go_idle_hosts(&mut self) {
        self.finished_hosts.append(&mut self.taskless);
    }

    /// Settles every ready task that needs no running (unchanged, left out,
    /// or blocked by what it waits for); the rest wait for a slot.
    fn settle_ready(&mut self) {
        while let Some(node) = self.ready.pop_front() {
            let graph = self.graph;
            let task = graph.task(node);
            let blocked_by: Vec<NodeIndex> = graph
                .upstream(node)
                .filter(|u| self.settled.get(u) == Some(&Settled::Blocked))
                .collect();
            // Whether it has a change, and whether that change runs.
            let runs = self
                .changes
                .get(&node)
                .map(|c| c.kind != ChangeKind::Noop || c.adopt);
            if let Some(reason) = self.refused.remove(&node) {
                self.skip_if_it_runs(node, reason);
                continue;
            }
            if !blocked_by.is_empty() {
                let behind_halt = blocked_by.iter().any(|u| self.halted_out.contains(u));
                let reason = match &self.admission {
                    // Left out by --fail-fast, like what it waits for: name the failure.
                    Admission::Halted(failed) if behind_halt => {
                        self.halted_out.insert(node);
                        halted(failed)
                    }
                    Admission::Unrecorded(failed) if behind_halt => {
                        self.halted_out.insert(node);
                        unrecorded(failed)
                    }
                    _ => format!(
                        "upstream failed or not applied ({})",
                        blocked_by
                            .iter()
                            .map(|u| graph.task(*u).id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                self.skip_if_it_runs(node, reason);
                continue;
            }
            match runs {
                // Left out (by --limit or an unreachable host): fine if it ran before.
                None if self.state.tasks.contains_key(&task.id) => {
                    self.settle(node, Settled::Done);
                }
                None => self.settle(node, Settled::Blocked),
                Some(false) => self.settle(node, Settled::Done),
                Some(true) => self.deferred.push_back(node),
            }
        }
    }

    /// Blocks `node`; counts it skipped, and says so, if it was to run.
    fn skip_if_it_runs(&mut self, node: NodeIndex, reason: String) {
        if self
            .changes
            .get(&node)
            .is_some_and(|c| c.kind != ChangeKind::Noop)
        {
            let task = self.graph.task(node);
            self.summary.skipped += 1;
            let _ = self.events.send(Event::TaskSkipped {
                task: task.id.clone(),
                host: self.model.host(task.host).name.clone(),
                reason,
            });
        }
        self.settle(node, Settled::Blocked);
    }

    /// Starts what fits in the limits: the task with the longest chain of
    /// work behind it first (the master's bundle, install and init, which
    /// every join waits on, before a worker's), then one on a host already
    /// connected, then the oldest.
    ///
    /// A task on an SSH host that has not started yet waits while as many
    /// hosts as the fleet keeps connections are at work: a host, once
    /// started, is seen through to its end on its one connection, instead
    /// of being closed for another and reopened (each reopening is a new
    /// login). When nothing runs at all, it starts anyway, so hosts that
    /// wait on it can never hold every connection for good.
    fn start_deferred(&mut self, context: &Arc<RunContext>, done: &UnboundedSender<Finished>) {
        let (critical, graph, model) = (&self.critical, self.graph, self.model);
        let open = context.fleet.open_hosts();
        let active = &self.active_hosts;
        // A stable sort: equal chains keep their order, oldest first; the
        // hosts of a `serial` step (whose chains are made equal) in host order.
        self.deferred.make_contiguous().sort_by_key(|&node| {
            let host = graph.task(node).host;
            let in_host_order = serial_step(graph, model, node).map(|_| model.host(host).index);
            (
                std::cmp::Reverse(critical.get(&node).copied().unwrap_or(1)),
                in_host_order.unwrap_or(0),
                !(active.contains(&host) || open.contains(&host)),
            )
        });
        let connections = context.fleet.limit();
        let mut still_deferred = VecDeque::new();
        while let Some(node) = self.deferred.pop_front() {
            match &self.admission {
                Admission::Open => {}
                Admission::Draining => {
                    still_deferred.push_back(node);
                    continue;
                }
                Admission::Halted(_) | Admission::Unrecorded(_) => {
                    let reason = match &self.admission {
                        Admission::Unrecorded(failed) => unrecorded(failed),
                        Admission::Halted(failed) => halted(failed),
                        _ => unreachable!("matched above"),
                    };
                    self.halted_out.insert(node);
                    self.skip_if_it_runs(node, reason);
                    continue;
                }
            }
            let host = self.graph.task(node).host;
            let new_host = self.model.host(host).transport == TransportKind::Ssh
                && !self.active_hosts.contains(&host);
            if new_host && self.active_hosts.len() >= connections && self.running > 0 {
                still_deferred.push_back(node);
                continue;
            }
            let on_host = self.running_on.get(&host).copied().unwrap_or(0);
            let serial = serial_step(self.graph, self.model, node);
            let step_full = serial.is_some_and(|(step, limit)| {
                self.running_in_step.get(&step).copied().unwrap_or(0) >= limit
                    || self.serial_tasks[&step]
                        .iter()
                        .take_while(|&&n| n != node)
                        .any(|n| !self.resolved.contains(n))
            });
            if self.running >= self.options.parallelism.max(1)
                || on_host >= self.options.per_host.max(1)
                || step_full
            {
                still_deferred.push_back(node);
                continue;
            }
            if new_host {
                self.active_hosts.insert(host);
            }
            self.running += 1;
            self.started += 1;
            *self.running_on.entry(host).or_default() += 1;
            if let Some((step, _)) = serial {
                *self.running_in_step.entry(step).or_default() += 1;
            }
            let change = self.changes[&node].clone();
            let task = self.graph.task(node).clone();
            let upstream_values = capture_values(self.model, &task, &self.captured);
            let _ = self.events.send(Event::TaskStarted {
                task: task.id.clone(),
                host: self.model.host(host).name.clone(),
                action: format!("{:?}", change.kind).to_lowercase(),
            });
            let context = context.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                let result = run_task(&context, &task, &change, &upstream_values).await;
                let _ = done.send(Finished {
                    node,
                    result,
                    duration_ms: millis(t0.elapsed()),
                });
            });
        }
        self.deferred = still_deferred;
    }

    /// Takes a task's message: reports it and releases what waited for it.
    fn finish(&mut self, finished: Finished) {
        self.running -= 1;
        let task = self.graph.task(finished.node);
        *self
            .running_on
            .get_mut(&task.host)
            .expect("counted at start") -= 1;
        if let Some((step, _)) = serial_step(self.graph, self.model, finished.node) {
            *self
                .running_in_step
                .get_mut(&step)
                .expect("counted at start") -= 1;
        }
        let host = self.model.host(task.host).name.clone();
        match finished.result {
            Ok(done) => {
                if let Some(v) = done.captured {
                    self.captured.insert(task.id.clone(), v);
                }
                if done.outcome != Outcome::Adopted {
                    self.summary.succeeded += 1;
                }
                let _ = self.events.send(Event::TaskFinished {
                    task: task.id.clone(),
                    host,
                    outcome: done.outcome,
                    duration_ms: finished.duration_ms,
                    detail: done.detail,
                });
                self.settle(finished.node, Settled::Done);
            }
            Err(f) => {
                self.summary.failed.push(task.id.clone());
                let _ = self.events.send(Event::TaskFailed {
                    task: task.id.clone(),
                    host,
                    error: self.scrubber.scrub(&f.error.to_string()),
                    tail: f.tail,
                    log: f.log,
                    duration_ms: finished.duration_ms,
                });
                if self.options.on_failure == FailurePolicy::FailFast
                    && self.admission == Admission::Open
                {
                    self.admission = Admission::Halted(task.id.clone());
                }
                if matches!(
                    *f.error,
                    TaskError::NotRecorded(_) | TaskError::UndoNotRecorded(_)
                ) && matches!(self.admission, Admission::Open | Admission::Halted(_))
                {
                    self.admission = Admission::Unrecorded(task.id.clone());
                }
                self.settle(finished.node, Settled::Blocked);
            }
        }
    }

    /// A Ctrl-C: the first drains the run, the second abandons it (and
    /// says so, with where the task logs are).
    fn interrupt(&mut self, log_dir: &std::path::Path) -> Interrupt {
        self.summary.interrupted = true;
        if self.admission == Admission::Draining {
            self.summary.not_finished += self.running;
            let _ = self.events.send(Event::Stopping {
                running: self.running,
                log_dir: log_dir.display().to_string(),
            });
            return Interrupt::Abandon;
        }
        self.admission = Admission::Draining;
        let _ = self.events.send(Event::Interrupted {
            running: self.running,
        });
        Interrupt::Drain
    }

    /// The summary; after an interrupt, what never started counts as not
    /// finished. `plan_whole`: every change was resolved (a streamed plan
    /// stopped before its last host was in has more that did not run).
    fn end(mut self, plan_whole: bool) -> RunSummary {
        if self.summary.interrupted {
            let should_run = self
                .changes
                .values()
                .filter(|c| c.kind != ChangeKind::Noop || c.adopt)
                .count();
            self.summary.not_finished +=
                should_run.saturating_sub(self.started + self.summary.skipped);
            // Interrupted as the last tasks ran, and they all finished: the
            // run is whole, and nothing asks to be continued.
            if self.summary.not_finished == 0 && plan_whole {
                self.summary.interrupted = false;
            }
        }
        self.summary
    }

    /// Marks a task settled and readies what waited only for it.
    fn settle(&mut self, node: NodeIndex, settled: Settled) {
        self.settled.insert(node, settled);
        let host = self.graph.task(node).host;
        if let Some(left) = self.unsettled_on.get_mut(&host) {
            *left -= 1;
            if *left == 0 {
                self.finished_hosts.push(host);
                self.active_hosts.remove(&host);
            }
        }
        for down in self.graph.downstream(node) {
            let n = self.waiting.get_mut(&down).expect("every node is counted");
            *n -= 1;
            if *n == 0 && self.resolved.contains(&down) {
                self.ready.push_back(down);
            }
        }
    }
}

#[cfg(test)]
#[path = "tests/scheduler.rs"]
mod tests;
