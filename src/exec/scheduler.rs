//! The scheduler: walks the task graph and runs what the plan says, in parallel.
//!
//! One loop owns all scheduling state (as cargo's job queue does): how many
//! upstream tasks each task still waits for, how each finished, the values
//! captured so far. Tasks run as tokio tasks and send one message back when
//! they end; the loop then releases what waited for them. A task starts as
//! soon as everything it waits for is done, with no barrier between steps
//! or hosts, within `--parallelism` overall and a per-host limit.
//!
//! What a failure does is the run's [`FailurePolicy`]: by default it skips
//! what waits for the failed task ("upstream failed") and nothing else, so
//! independent work goes on; `--fail-fast` also starts nothing new. The
//! first Ctrl-C stops starting tasks and lets the running ones finish and
//! be recorded; a second abandons them (the fleet kills what runs here).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

use petgraph::graph::NodeIndex;
use tokio::sync::mpsc::UnboundedSender;

use super::context::RunContext;
use super::destroy::run_destroys;
use super::failure::Failure;
use super::task::{TaskDone, capture_values, run_task};
use super::{Event, HostTotal, Outcome, RunSummary, millis};
use crate::graph::{TaskGraph, Work};
use crate::ids::TaskId;
use crate::model::{HostId, Model, Scrubber};
use crate::plan::{Change, ChangeKind, Plan, Refresh};
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
    pub plan: &'a Plan,
    /// What refresh saw, so shipping knows what each host has.
    pub refresh: Arc<Refresh>,
    /// The open connections.
    pub fleet: Fleet,
    /// Who runs this apply, as receipts name it (`user@machine`).
    pub operator: String,
    pub journal: Appender,
    pub events: Sender<Event>,
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
    announce(&context.model, plan, &events);
    let mut summary = RunSummary {
        unchanged: plan.summary().unchanged,
        ..Default::default()
    };
    record_manifests(&context, &graph, plan).await;
    run_destroys(&context, plan, &events, &mut summary).await;

    let mut scheduler = Scheduler::new(&graph, plan, &context, &events, &options, summary);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Finished>();
    let mut interrupts =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    loop {
        scheduler.settle_ready();
        scheduler.start_deferred(&context, &done_tx);
        if !scheduler.ready.is_empty() {
            // Skipping under --fail-fast readied what waited for the skipped.
            continue;
        }
        if scheduler.running == 0 {
            break;
        }
        let interrupt = async {
            match interrupts.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            finished = done_rx.recv() => match finished {
                Some(finished) => scheduler.finish(finished),
                None => break,
            },
            _ = interrupt => {
                if scheduler.interrupt() == Interrupt::Abandon {
                    context.fleet.abort_running();
                    break;
                }
            }
        }
    }
    let mut summary = scheduler.end();
    summary.duration_ms = millis(started.elapsed());
    if context.log_dir.is_dir() {
        summary.log_dir = Some(context.log_dir.display().to_string());
    }
    summary
}

/// Tells the reporter how many tasks will run, per host.
fn announce(model: &Model, plan: &Plan, events: &Sender<Event>) {
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    for c in plan
        .changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Noop || c.adopt)
    {
        *per_host.entry(c.host.clone()).or_default() += 1;
    }
    let _ = events.send(Event::RunStarted {
        cluster: model.name.clone(),
        tasks: per_host.values().sum(),
        hosts: per_host
            .into_iter()
            .map(|(host, tasks)| HostTotal { host, tasks })
            .collect(),
    });
}

/// Journals the manifest of every bundle about to ship, before any bundle
/// record, so every later plan can name the files that changed.
async fn record_manifests(context: &RunContext, graph: &TaskGraph, plan: &Plan) {
    let mut written = HashSet::new();
    for c in plan.changes.iter().filter(|c| c.kind != ChangeKind::Noop) {
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
    plan: &'a Plan,
    changes: HashMap<NodeIndex, &'a Change>,
    events: &'a Sender<Event>,
    options: &'a ExecOptions,
    /// Upstream tasks each task still waits for.
    waiting: HashMap<NodeIndex, usize>,
    /// Tasks whose upstream has all settled, to look at next.
    ready: VecDeque<NodeIndex>,
    /// Tasks that must run, waiting for a free slot.
    deferred: VecDeque<NodeIndex>,
    settled: HashMap<NodeIndex, Settled>,
    /// Values captured so far, by the task that captured them.
    captured: HashMap<TaskId, String>,
    running: usize,
    running_on: HashMap<HostId, usize>,
    started: usize,
    admission: Admission,
    /// Tasks `--fail-fast` left out, so what waits for them says why too.
    halted_out: HashSet<NodeIndex>,
    summary: RunSummary,
}

impl<'a> Scheduler<'a> {
    fn new(
        graph: &'a TaskGraph,
        plan: &'a Plan,
        context: &'a RunContext,
        events: &'a Sender<Event>,
        options: &'a ExecOptions,
        summary: RunSummary,
    ) -> Scheduler<'a> {
        let mut waiting = HashMap::new();
        let mut ready = VecDeque::new();
        for &node in graph.topological() {
            let n = graph.upstream(node).count();
            waiting.insert(node, n);
            if n == 0 {
                ready.push_back(node);
            }
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
            plan,
            changes: plan
                .changes
                .iter()
                .filter_map(|c| c.node.map(|n| (n, c)))
                .collect(),
            events,
            options,
            waiting,
            ready,
            deferred: VecDeque::new(),
            settled: HashMap::new(),
            captured,
            running: 0,
            running_on: HashMap::new(),
            started: 0,
            admission: Admission::Open,
            halted_out: HashSet::new(),
            summary,
        }
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
            let change = self.changes.get(&node).copied();
            if !blocked_by.is_empty() {
                let behind_halt = blocked_by.iter().any(|u| self.halted_out.contains(u));
                let reason = match &self.admission {
                    // Left out by --fail-fast, like what it waits for: name the failure.
                    Admission::Halted(failed) if behind_halt => {
                        self.halted_out.insert(node);
                        halted(failed)
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
                self.skip_if_it_runs(node, change, reason);
                continue;
            }
            match change {
                // Left out (by --limit or an unreachable host): fine if it ran before.
                None if self.state.tasks.contains_key(&task.id) => {
                    self.settle(node, Settled::Done);
                }
                None => self.settle(node, Settled::Blocked),
                Some(c) if c.kind == ChangeKind::Noop && !c.adopt => {
                    self.settle(node, Settled::Done);
                }
                Some(_) => self.deferred.push_back(node),
            }
        }
    }

    /// Blocks `node`; counts it skipped, and says so, if it was to run.
    fn skip_if_it_runs(&mut self, node: NodeIndex, change: Option<&Change>, reason: String) {
        if change.is_some_and(|c| c.kind != ChangeKind::Noop) {
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

    /// Starts what fits in the limits, oldest first.
    fn start_deferred(&mut self, context: &Arc<RunContext>, done: &UnboundedSender<Finished>) {
        let mut still_deferred = VecDeque::new();
        while let Some(node) = self.deferred.pop_front() {
            match &self.admission {
                Admission::Open => {}
                Admission::Draining => {
                    still_deferred.push_back(node);
                    continue;
                }
                Admission::Halted(failed) => {
                    let reason = halted(failed);
                    self.halted_out.insert(node);
                    let change = self.changes.get(&node).copied();
                    self.skip_if_it_runs(node, change, reason);
                    continue;
                }
            }
            let host = self.graph.task(node).host;
            let on_host = self.running_on.get(&host).copied().unwrap_or(0);
            if self.running >= self.options.parallelism.max(1)
                || on_host >= self.options.per_host.max(1)
            {
                still_deferred.push_back(node);
                continue;
            }
            self.running += 1;
            self.started += 1;
            *self.running_on.entry(host).or_default() += 1;
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
                self.settle(finished.node, Settled::Blocked);
            }
        }
    }

    /// A Ctrl-C: the first drains the run, the second abandons it.
    fn interrupt(&mut self) -> Interrupt {
        self.summary.interrupted = true;
        if self.admission == Admission::Draining {
            self.summary.not_finished += self.running;
            return Interrupt::Abandon;
        }
        self.admission = Admission::Draining;
        let _ = self.events.send(Event::Interrupted {
            running: self.running,
        });
        Interrupt::Drain
    }

    /// The summary; after an interrupt, what never started counts as not finished.
    fn end(mut self) -> RunSummary {
        if self.summary.interrupted {
            let should_run = self
                .plan
                .changes
                .iter()
                .filter(|c| c.node.is_some() && (c.kind != ChangeKind::Noop || c.adopt))
                .count();
            self.summary.not_finished +=
                should_run.saturating_sub(self.started + self.summary.skipped);
        }
        self.summary
    }

    /// Marks a task settled and readies what waited only for it.
    fn settle(&mut self, node: NodeIndex, settled: Settled) {
        self.settled.insert(node, settled);
        for down in self.graph.downstream(node) {
            let n = self.waiting.get_mut(&down).expect("every node is counted");
            *n -= 1;
            if *n == 0 {
                self.ready.push_back(down);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The real [`execute`] on real local hosts: a Clusterfile in a temp
    //! folder goes through the pipeline (read, compile, refresh, plan), and
    //! its steps write marker files beside it. Results are read on disk and
    //! from the events, never from timing; a step that waits for another
    //! process waits for a file, bounded.

    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::mpsc;

    use super::{DEFAULT_PER_HOST, ExecOptions, FailurePolicy, Run, execute};
    use crate::exec::{Event, Outcome, RunSummary};
    use crate::pipeline::{self, Loaded, Probe, Targets};
    use crate::state::{Journal, State};

    /// The CLI's default `--parallelism`.
    const DEFAULT_PARALLELISM: usize = 64;

    /// Two hosts on this machine, `a` and `b`.
    const HOSTS: &str = "version = 1\nname = \"sched\"\n\n\
        [[hosts]]\naddress = \"localhost\"\nname = \"a\"\ntransport = \"local\"\n\n\
        [[hosts]]\naddress = \"127.0.0.1\"\nname = \"b\"\ntransport = \"local\"\n\n";

    /// A shell snippet that waits until `file` exists, giving up (exit 7)
    /// after about `seconds`.
    fn wait_for(file: &str, seconds: u32) -> String {
        let tries = seconds * 20;
        format!(
            "i=0; while [ ! -f {file} ]; do i=$((i+1)); [ $i -gt {tries} ] && exit 7; sleep 0.05; done"
        )
    }

    /// A Clusterfile of [`HOSTS`] and `steps` in a temp folder.
    struct Cluster {
        dir: tempfile::TempDir,
    }

    /// What one run did: its summary, every event in order, and the state
    /// loaded from the state folder the moment `execute` returned.
    struct Applied {
        summary: RunSummary,
        events: Vec<Event>,
        state: State,
    }

    impl Cluster {
        fn new(steps: &str) -> Cluster {
            let cluster = Cluster {
                dir: tempfile::tempdir().unwrap(),
            };
            cluster.write(steps);
            cluster
        }

        /// Replaces the Clusterfile's steps.
        fn write(&self, steps: &str) {
            std::fs::write(self.path("Clusterfile"), format!("{HOSTS}{steps}")).unwrap();
        }

        fn path(&self, rel: &str) -> std::path::PathBuf {
            self.dir.path().join(rel)
        }

        fn exists(&self, rel: &str) -> bool {
            self.path(rel).exists()
        }

        fn read(&self, rel: &str) -> String {
            std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
        }

        fn apply(&self, parallelism: usize, on_failure: FailurePolicy) -> Applied {
            self.apply_watching(parallelism, on_failure, |_, _| {})
        }

        /// Plans and executes as `cairn apply` does, calling `watch` with
        /// each event as it is sent, while the run goes on.
        fn apply_watching(
            &self,
            parallelism: usize,
            on_failure: FailurePolicy,
            mut watch: impl FnMut(&Event, &Path),
        ) -> Applied {
            let rt = pipeline::runtime();
            let loaded = Loaded::read(&self.path("Clusterfile")).expect("a valid Clusterfile");
            let _lock = loaded.lock_cluster("scheduler tests").unwrap();
            let planned = loaded
                .compile()
                .unwrap()
                .refresh(&Targets::default(), Probe::Read, &rt)
                .unwrap()
                .plan();
            assert!(planned.plan.unreachable.is_empty(), "local hosts refresh");
            let dir = planned.state_dir().clone();
            let journal = Journal::open(&dir.journal_file()).unwrap();
            let compiled = &planned.refreshed.compiled;
            let (events, received) = mpsc::channel();
            let run = Run {
                model: compiled.loaded.model.clone(),
                graph: compiled.graph.clone(),
                state: compiled.state.clone(),
                plan: &planned.plan,
                refresh: planned.refreshed.refresh.clone(),
                fleet: planned.refreshed.fleet.clone(),
                operator: "tester@here".into(),
                journal: journal.appender(),
                events,
            };
            let options = ExecOptions {
                parallelism,
                per_host: DEFAULT_PER_HOST,
                log_dir: dir.new_run_log_dir(),
                on_failure,
            };
            let rt_ref = &rt;
            let (summary, events) = std::thread::scope(|s| {
                let running = s.spawn(move || rt_ref.block_on(execute(run, options)));
                // Ends when `execute` returns and drops its sender.
                let events: Vec<Event> = received
                    .iter()
                    .inspect(|e| watch(e, self.dir.path()))
                    .collect();
                (running.join().expect("execute does not panic"), events)
            });
            // Loaded before the journal closes and nothing compacts: what
            // execute recorded was on disk when it returned.
            let state = dir.load().unwrap();
            drop(journal);
            planned.finish(&rt);
            Applied {
                summary,
                events,
                state,
            }
        }
    }

    impl Applied {
        /// Skipped tasks and why.
        fn skipped(&self) -> BTreeMap<String, String> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::TaskSkipped { task, reason, .. } => {
                        Some((task.to_string(), reason.clone()))
                    }
                    _ => None,
                })
                .collect()
        }

        /// Finished tasks and how.
        fn finished(&self) -> BTreeMap<String, Outcome> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::TaskFinished { task, outcome, .. } => Some((task.to_string(), *outcome)),
                    _ => None,
                })
                .collect()
        }

        /// Failed tasks and their errors.
        fn failed(&self) -> BTreeMap<String, String> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::TaskFailed { task, error, .. } => {
                        Some((task.to_string(), error.clone()))
                    }
                    _ => None,
                })
                .collect()
        }

        /// Tasks recorded in the state.
        fn recorded(&self) -> Vec<String> {
            self.state.tasks.keys().map(ToString::to_string).collect()
        }

        /// The most tasks running at once, as the events tell it.
        fn most_running(&self) -> usize {
            let mut running = 0usize;
            let mut most = 0;
            for e in &self.events {
                match e {
                    Event::TaskStarted { .. } => {
                        running += 1;
                        most = most.max(running);
                    }
                    Event::TaskFinished { .. } | Event::TaskFailed { .. } => running -= 1,
                    _ => {}
                }
            }
            most
        }
    }

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_failed_step_skips_exactly_what_waits_for_it() {
        let c = Cluster::new(
            "[[steps]]\nname = \"bad\"\non = \"a\"\nrun = 'echo no >&2; exit 3'\n\n\
             [[steps]]\nname = \"child\"\non = \"a\"\nafter = [\"bad\"]\nrun = 'touch child-ran'\n\n\
             [[steps]]\nname = \"grandchild\"\non = \"a\"\nafter = [\"child\"]\nrun = 'touch grandchild-ran'\n\n\
             [[steps]]\nname = \"remote\"\non = \"b\"\nafter = [\"bad@a\"]\nrun = 'touch remote-ran'\n\n\
             [[steps]]\nname = \"free\"\nrun = 'touch free-${host.name}'\n",
        );
        let run = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
        assert_eq!(
            run.failed().into_keys().collect::<Vec<_>>(),
            names(&["step.bad@a"])
        );
        assert_eq!(run.summary.failed.len(), 1);
        let upstream = |of: &str| format!("upstream failed or not applied ({of})");
        assert_eq!(
            run.skipped(),
            BTreeMap::from([
                ("step.child@a".to_string(), upstream("step.bad@a")),
                ("step.grandchild@a".to_string(), upstream("step.child@a")),
                ("step.remote@b".to_string(), upstream("step.bad@a")),
            ]),
            "what waits for the failure, on its host and across hosts, and nothing else"
        );
        assert_eq!(run.summary.skipped, 3);
        assert_eq!(
            run.finished(),
            BTreeMap::from([
                ("step.free@a".to_string(), Outcome::Created),
                ("step.free@b".to_string(), Outcome::Created),
            ]),
            "independent work went on"
        );
        assert_eq!(run.summary.succeeded, 2);
        assert!(c.exists("free-a") && c.exists("free-b"));
        for marker in ["child-ran", "grandchild-ran", "remote-ran"] {
            assert!(!c.exists(marker), "{marker}: a skipped step ran");
        }
        assert_eq!(run.recorded(), names(&["step.free@a", "step.free@b"]));
    }

    #[test]
    fn fail_fast_names_the_failure_for_everything_it_left_out() {
        // `last` waits for `later`, which --fail-fast never starts: it is
        // left out for the same reason, and says so.
        let c = Cluster::new(&format!(
            "[[steps]]\nname = \"bad\"\non = \"a\"\nrun = 'exit 3'\n\n\
             [[steps]]\nname = \"slow\"\non = \"a\"\nrun = '{}'\n\n\
             [[steps]]\nname = \"later\"\non = \"a\"\nafter = [\"slow\"]\nrun = 'true'\n\n\
             [[steps]]\nname = \"last\"\non = \"a\"\nafter = [\"later\"]\nrun = 'true'\n",
            wait_for("release", 20)
        ));
        let run = c.apply_watching(DEFAULT_PARALLELISM, FailurePolicy::FailFast, |e, dir| {
            if matches!(e, Event::TaskFailed { .. }) {
                std::fs::write(dir.join("release"), "").unwrap();
            }
        });
        let skipped = run.skipped();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        for (task, why) in &skipped {
            assert_eq!(
                why, "not started: step.bad@a failed and --fail-fast stops the run",
                "{task}"
            );
        }
    }

    #[test]
    fn fail_fast_starts_nothing_new_and_lets_running_tasks_finish() {
        /// A policy, the tasks it skips with why, and the markers of the
        /// tasks after `slow` that run.
        struct Case {
            policy: FailurePolicy,
            skipped: &'static [(&'static str, &'static str)],
            ran_later: &'static [&'static str],
        }
        const NOT_STARTED: &str = "not started: step.bad@a failed and --fail-fast stops the run";
        const UPSTREAM: &str = "upstream failed or not applied (step.bad@a)";
        // `slow` runs beside `bad` and goes on only once the test has seen
        // bad's failure: it is running when the failure is handled.
        let steps = format!(
            "[[steps]]\nname = \"bad\"\non = \"a\"\nrun = 'exit 3'\n\n\
             [[steps]]\nname = \"child\"\non = \"a\"\nafter = [\"bad\"]\nrun = 'touch child-ran'\n\n\
             [[steps]]\nname = \"slow\"\non = \"a\"\nrun = '{}; touch slow-done'\n\n\
             [[steps]]\nname = \"later\"\non = \"a\"\nafter = [\"slow\"]\nrun = 'touch later-ran'\n\n\
             [[steps]]\nname = \"elsewhere\"\non = \"b\"\nafter = [\"slow@a\"]\nrun = 'touch elsewhere-ran'\n",
            wait_for("release", 20)
        );
        let cases = [
            Case {
                policy: FailurePolicy::SkipDependents,
                skipped: &[("step.child@a", UPSTREAM)],
                ran_later: &["later-ran", "elsewhere-ran"],
            },
            Case {
                policy: FailurePolicy::FailFast,
                skipped: &[
                    ("step.child@a", UPSTREAM),
                    ("step.elsewhere@b", NOT_STARTED),
                    ("step.later@a", NOT_STARTED),
                ],
                ran_later: &[],
            },
        ];
        for Case {
            policy,
            skipped,
            ran_later,
        } in cases
        {
            let c = Cluster::new(&steps);
            let run = c.apply_watching(DEFAULT_PARALLELISM, policy, |e, dir| {
                if let Event::TaskFailed { task, .. } = e {
                    assert_eq!(task.as_str(), "step.bad@a");
                    std::fs::write(dir.join("release"), "").unwrap();
                }
            });
            assert_eq!(
                run.failed().into_keys().collect::<Vec<_>>(),
                names(&["step.bad@a"]),
                "{policy:?}"
            );
            let skipped: BTreeMap<String, String> = skipped
                .iter()
                .map(|(t, why)| ((*t).to_string(), (*why).to_string()))
                .collect();
            assert_eq!(run.skipped(), skipped, "{policy:?}");
            assert_eq!(run.summary.skipped, skipped.len(), "{policy:?}");
            assert!(
                c.exists("slow-done"),
                "{policy:?}: the running task finished"
            );
            assert_eq!(
                run.finished().get("step.slow@a"),
                Some(&Outcome::Created),
                "{policy:?}"
            );
            assert!(
                run.recorded().contains(&"step.slow@a".to_string()),
                "{policy:?}: and was recorded"
            );
            assert!(!c.exists("child-ran"), "{policy:?}");
            for marker in ["later-ran", "elsewhere-ran"] {
                assert_eq!(
                    c.exists(marker),
                    ran_later.contains(&marker),
                    "{policy:?}: {marker}"
                );
            }
            if policy == FailurePolicy::FailFast {
                let failure = run
                    .events
                    .iter()
                    .position(|e| matches!(e, Event::TaskFailed { .. }))
                    .unwrap();
                assert!(
                    !run.events[failure..]
                        .iter()
                        .any(|e| matches!(e, Event::TaskStarted { .. })),
                    "nothing started after the failure: {:?}",
                    run.events
                );
                assert_eq!(run.recorded(), names(&["step.slow@a"]));
            }
        }
    }

    #[test]
    fn parallelism_bounds_how_many_tasks_run_at_once() {
        // Each step waits for the other's marker: both succeed only if they
        // overlap. Run one at a time, the first gives up (exit 7) and the
        // second then finds its marker; the bound only sets how long that
        // takes, so it is short there and generous where they must meet.
        // (parallelism, seconds a step waits, failures, most running at once)
        let cases = [(1, 1, 1, 1), (DEFAULT_PARALLELISM, 20, 0, 2)];
        for (parallelism, seconds, failures, most) in cases {
            let rendezvous = |me: &str, other: &str| {
                format!(
                    "[[steps]]\nname = \"{me}\"\non = \"a\"\nrun = 'touch {me}-started; {}'\n\n",
                    wait_for(&format!("{other}-started"), seconds)
                )
            };
            let c = Cluster::new(&format!(
                "{}{}",
                rendezvous("left", "right"),
                rendezvous("right", "left")
            ));
            let run = c.apply(parallelism, FailurePolicy::SkipDependents);
            let failed = run.failed();
            assert_eq!(
                failed.len(),
                failures,
                "parallelism {parallelism}: {failed:?}"
            );
            assert!(
                failed.values().all(|e| e == "exited with code 7"),
                "{failed:?}"
            );
            assert_eq!(run.summary.succeeded, 2 - failures);
            assert_eq!(run.most_running(), most, "parallelism {parallelism}");
        }
    }

    #[test]
    fn a_captured_value_reaches_the_steps_that_read_it() {
        let c = Cluster::new(
            "[[steps]]\nname = \"own\"\ncapture = \"mine\"\nrun = 'echo mine-${host.name}'\n\n\
             [[steps]]\nname = \"read\"\nafter = [\"own\"]\nrun = 'echo ${mine} > read-${host.name}'\n\n\
             [[steps]]\nname = \"leader\"\non = \"a\"\ncapture = \"lead\"\nrun = 'echo lead-${host.name}'\n\n\
             [[steps]]\nname = \"follow\"\nafter = [\"leader@*\"]\nrun = 'echo ${lead} > follow-${host.name}'\n",
        );
        let run = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
        assert!(run.summary.failed.is_empty(), "{:?}", run.failed());
        // (file, what it holds)
        let cases = [
            ("read-a", "mine-a"),
            ("read-b", "mine-b"),
            ("follow-a", "lead-a"),
            ("follow-b", "lead-a"),
        ];
        for (file, value) in cases {
            assert_eq!(c.read(file), format!("{value}\n"), "{file}");
        }
    }

    #[test]
    fn every_finished_task_is_journaled_and_an_adopted_one_is_not_counted() {
        let c = Cluster::new(
            "[[steps]]\nname = \"work\"\nrun = 'echo ran >> work-${host.name}'\n\n\
             [[steps]]\nname = \"ready\"\non = \"a\"\ncheck = 'test -f ready'\nrun = 'touch ready-ran'\n\n\
             [[steps]]\nname = \"bad\"\non = \"b\"\nrun = 'exit 3'\n",
        );
        std::fs::write(c.path("ready"), "").unwrap();
        let run = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
        assert_eq!(
            run.finished(),
            BTreeMap::from([
                ("step.ready@a".to_string(), Outcome::Adopted),
                ("step.work@a".to_string(), Outcome::Created),
                ("step.work@b".to_string(), Outcome::Created),
            ])
        );
        assert_eq!(
            run.recorded(),
            run.finished().into_keys().collect::<Vec<_>>(),
            "every finished task, and only those, is in the journal"
        );
        assert_eq!(run.summary.succeeded, 2, "the adopted task is not counted");
        assert_eq!(run.summary.failed.len(), 1);
        assert!(!c.exists("ready-ran"), "adopted without running");
        assert_eq!(c.read("work-a"), "ran\n");
        // Recorded, a second run has nothing to do but the failed task.
        let again = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
        assert_eq!(
            again.failed().into_keys().collect::<Vec<_>>(),
            names(&["step.bad@b"])
        );
        assert!(again.finished().is_empty(), "{:?}", again.finished());
        assert_eq!(c.read("work-a"), "ran\n");
    }

    #[test]
    fn destroys_run_before_the_graphs_tasks() {
        let c = Cluster::new(
            "[[steps]]\nname = \"old\"\nrun = 'true'\nundo = 'echo undo-${host.name} >> order.log'\n",
        );
        let first = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
        assert_eq!(first.summary.succeeded, 2);
        c.write("[[steps]]\nname = \"new\"\nrun = 'echo new-${host.name} >> order.log'\n");
        let run = c.apply(DEFAULT_PARALLELISM, FailurePolicy::SkipDependents);
        assert!(run.summary.failed.is_empty(), "{:?}", run.failed());
        assert_eq!(
            run.finished(),
            BTreeMap::from([
                ("step.new@a".to_string(), Outcome::Created),
                ("step.new@b".to_string(), Outcome::Created),
                ("step.old@a".to_string(), Outcome::Destroyed),
                ("step.old@b".to_string(), Outcome::Destroyed),
            ])
        );
        let first_new = run
            .events
            .iter()
            .position(|e| matches!(e, Event::TaskStarted { task, .. } if task.as_str().starts_with("step.new")))
            .unwrap();
        let last_destroy = run
            .events
            .iter()
            .rposition(|e| {
                matches!(
                    e,
                    Event::TaskFinished {
                        outcome: Outcome::Destroyed,
                        ..
                    }
                )
            })
            .unwrap();
        assert!(last_destroy < first_new, "{:?}", run.events);
        let order = c.read("order.log");
        let lines: Vec<&str> = order.lines().collect();
        assert_eq!(lines.len(), 4, "{order}");
        assert!(
            lines[..2].iter().all(|l| l.starts_with("undo-"))
                && lines[2..].iter().all(|l| l.starts_with("new-")),
            "undos first, on the hosts too: {order}"
        );
        assert_eq!(run.recorded(), names(&["step.new@a", "step.new@b"]));
    }
}
