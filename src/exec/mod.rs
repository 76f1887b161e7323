//! The executor: walks the task graph and runs what the plan says, in parallel.
//!
//! One loop owns all scheduling state (as cargo's job queue does): how many
//! upstream tasks each task still waits for, which finished how, the values
//! captured so far. Tasks run as tokio tasks and send one message back when
//! they end; the loop then releases what waited for them. A task starts as
//! soon as everything it waits for is done, with no barrier between steps
//! or hosts, within `--parallelism` overall and a per-host limit.
//!
//! A task that fails marks everything downstream of it skipped ("upstream
//! failed") and nothing else: independent work goes on, and the run ends
//! with a summary and a non-zero exit. Each finished task is appended to the
//! state journal (fsynced) by the task itself before it reports back, so a
//! killed cairn loses at most what was in flight. Destroys run first, newest
//! first. The executor never prints: it sends [`Event`]s to the reporter.

pub mod events;
pub mod runner;

pub use events::{Event, HostTotal, Outcome, RunSummary};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::Instant;

use petgraph::graph::NodeIndex;

use crate::graph::{TaskGraph, Work};
use crate::ids::TaskId;
use crate::model::{ElementRef, HostId, Model, Scrubber};
use crate::plan::{ChangeKind, Plan, Refresh};
use crate::state::{JournalEntry, RecordDetail, State, TaskRecord, journal::Appender};
use crate::transport::{Fleet, Receipt, ReceiptInfo};

use runner::{Failure, RunnerContext};

pub struct ExecOptions {
    /// Tasks running at once, overall.
    pub parallelism: usize,
    /// Tasks running at once on one host.
    pub per_host: usize,
    /// Folder of this run's task logs.
    pub log_dir: PathBuf,
}

/// Default per-host limit of tasks running at once. Over SSH they share the
/// host's one long-lived shell (see `transport::shells`).
pub const DEFAULT_PER_HOST: usize = 8;

struct Shared {
    model: Arc<Model>,
    state: Arc<State>,
    refresh: Arc<Refresh>,
    scrubber: Scrubber,
    journal: Appender,
    log_dir: PathBuf,
    seq: AtomicU64,
    fleet: Fleet,
    operator: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Done,
    /// Failed, skipped, or left out without a record: what waits for it cannot run.
    Blocked,
}

struct Finished {
    node: NodeIndex,
    result: Result<(Outcome, Option<String>, Option<String>), Failure>,
    duration_ms: u64,
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
    let Run {
        model,
        graph,
        state,
        plan,
        refresh,
        journal,
        events,
        fleet,
        operator,
    } = run;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        operator,
        scrubber: Scrubber::new(model.secret_values()),
        model: model.clone(),
        state: state.clone(),
        refresh,
        journal,
        log_dir: options.log_dir.clone(),
        seq: AtomicU64::new(state.next_seq),
        fleet,
    });
    let changes: HashMap<NodeIndex, &crate::plan::Change> = plan
        .changes
        .iter()
        .filter_map(|c| c.node.map(|n| (n, c)))
        .collect();
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
    let mut summary = RunSummary {
        unchanged: plan.summary().unchanged,
        ..Default::default()
    };

    // Manifests first, so every bundle record that follows can be explained later.
    let mut roots_written = HashSet::new();
    for c in plan.changes.iter().filter(|c| c.kind != ChangeKind::Noop) {
        if let Some(node) = c.node
            && let Work::Bundle { prepared, .. } = &graph.task(node).work
            && !state.manifests.contains_key(&prepared.base_root)
            && roots_written.insert(prepared.base_root.clone())
        {
            // A manifest only lets later plans name changed files; if the journal
            // cannot be written, the task's own record fails next, loudly.
            let _ = shared.journal.append(JournalEntry::Manifest {
                root: prepared.base_root.clone(),
                manifest: prepared.base_manifest.clone(),
            });
        }
    }

    // Destroys, newest first, one at a time: undo order matters more than speed here.
    for c in plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Destroy)
    {
        let t0 = Instant::now();
        let _ = events.send(Event::TaskStarted {
            task: c.id.clone(),
            host: c.host.clone(),
            action: "destroy".into(),
        });
        match destroy(&shared, &c.id).await {
            Ok(detail) => {
                summary.succeeded += 1;
                let _ = events.send(Event::TaskFinished {
                    task: c.id.clone(),
                    host: c.host.clone(),
                    outcome: Outcome::Destroyed,
                    duration_ms: t0.elapsed().as_millis() as u64,
                    detail: Some(detail),
                });
            }
            Err(f) => {
                summary.failed.push(c.id.clone());
                let _ = events.send(Event::TaskFailed {
                    task: c.id.clone(),
                    host: c.host.clone(),
                    error: f.error,
                    tail: f.tail,
                    log: f.log,
                    duration_ms: t0.elapsed().as_millis() as u64,
                });
            }
        }
    }

    // The graph walk.
    let mut waiting: HashMap<NodeIndex, usize> = HashMap::new();
    let mut ready: VecDeque<NodeIndex> = VecDeque::new();
    for &node in graph.topological() {
        let n = graph.upstream(node).count();
        waiting.insert(node, n);
        if n == 0 {
            ready.push_back(node);
        }
    }
    let mut states: HashMap<NodeIndex, NodeState> = HashMap::new();
    let mut captured: HashMap<TaskId, String> = HashMap::new();
    for (id, record) in &state.tasks {
        if let RecordDetail::Step {
            captured: Some(v),
            captured_masked: false,
            ..
        } = &record.detail
        {
            captured.insert(id.clone(), v.clone());
        }
    }
    let mut running_total = 0usize;
    let mut running_per_host: HashMap<HostId, usize> = HashMap::new();
    let mut deferred: VecDeque<NodeIndex> = VecDeque::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Finished>();
    // Ctrl-C: the first stops new tasks (the running ones finish and are
    // recorded); the second abandons the running ones.
    let mut interrupts =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let mut stopping = false;
    let mut started_count = 0usize;

    loop {
        // Settle everything that needs no running; start what fits.
        while let Some(node) = ready.pop_front() {
            let task = graph.task(node);
            let blocked_by: Vec<&TaskId> = graph
                .upstream(node)
                .filter(|u| states.get(u) == Some(&NodeState::Blocked))
                .map(|u| &graph.task(u).id)
                .collect();
            let change = changes.get(&node);
            let runs = change.is_some_and(|c| c.kind != ChangeKind::Noop);
            if !blocked_by.is_empty() {
                if runs {
                    summary.skipped += 1;
                    let _ = events.send(Event::TaskSkipped {
                        task: task.id.clone(),
                        host: model.host(task.host).name.clone(),
                        reason: format!(
                            "upstream failed or not applied ({})",
                            blocked_by
                                .iter()
                                .map(|t| t.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
                settle(
                    &graph,
                    node,
                    NodeState::Blocked,
                    &mut states,
                    &mut waiting,
                    &mut ready,
                );
                continue;
            }
            match change {
                None => {
                    // Left out (by --limit or an unreachable host): fine if it ran before.
                    let s = if state.tasks.contains_key(&task.id) {
                        NodeState::Done
                    } else {
                        NodeState::Blocked
                    };
                    settle(&graph, node, s, &mut states, &mut waiting, &mut ready);
                }
                Some(c) if c.kind == ChangeKind::Noop && !c.adopt => {
                    settle(
                        &graph,
                        node,
                        NodeState::Done,
                        &mut states,
                        &mut waiting,
                        &mut ready,
                    );
                }
                Some(_) => deferred.push_back(node),
            }
        }
        let mut still_deferred = VecDeque::new();
        while let Some(node) = deferred.pop_front() {
            if stopping {
                still_deferred.push_back(node);
                continue;
            }
            let host = graph.task(node).host;
            let host_running = running_per_host.get(&host).copied().unwrap_or(0);
            if running_total >= options.parallelism.max(1)
                || host_running >= options.per_host.max(1)
            {
                still_deferred.push_back(node);
                continue;
            }
            running_total += 1;
            started_count += 1;
            *running_per_host.entry(host).or_default() += 1;
            let change = changes[&node];
            let task = graph.task(node).clone();
            let captures = capture_values(&model, &task, &captured);
            let _ = events.send(Event::TaskStarted {
                task: task.id.clone(),
                host: model.host(host).name.clone(),
                action: format!("{:?}", change.kind).to_lowercase(),
            });
            let shared = shared.clone();
            let tx = done_tx.clone();
            let change = change.clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                let result = run_one(&shared, &task, &change, &captures).await;
                let _ = tx.send(Finished {
                    node,
                    result,
                    duration_ms: t0.elapsed().as_millis() as u64,
                });
            });
        }
        deferred = still_deferred;
        if running_total == 0 {
            break;
        }
        let interrupt = async {
            match interrupts.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let finished = tokio::select! {
            finished = done_rx.recv() => finished,
            _ = interrupt => {
                if stopping {
                    summary.interrupted = true;
                    summary.not_finished += running_total;
                    shared.fleet.abort_running();
                    break;
                }

                stopping = true;
                summary.interrupted = true;
                let _ = events.send(Event::Interrupted { running: running_total });
                continue;
            }
        };
        let Some(finished) = finished else {
            break;
        };

        running_total -= 1;
        let task = graph.task(finished.node);
        *running_per_host
            .get_mut(&task.host)
            .expect("counted at start") -= 1;
        let host = model.host(task.host).name.clone();
        match finished.result {
            Ok((outcome, capture, detail)) => {
                if let Some(v) = capture {
                    captured.insert(task.id.clone(), v);
                }
                if outcome != Outcome::Adopted {
                    summary.succeeded += 1;
                }
                let _ = events.send(Event::TaskFinished {
                    task: task.id.clone(),
                    host,
                    outcome,
                    duration_ms: finished.duration_ms,
                    detail,
                });
                settle(
                    &graph,
                    finished.node,
                    NodeState::Done,
                    &mut states,
                    &mut waiting,
                    &mut ready,
                );
            }
            Err(f) => {
                summary.failed.push(task.id.clone());
                let _ = events.send(Event::TaskFailed {
                    task: task.id.clone(),
                    host,
                    error: f.error,
                    tail: f.tail,
                    log: f.log,
                    duration_ms: finished.duration_ms,
                });
                settle(
                    &graph,
                    finished.node,
                    NodeState::Blocked,
                    &mut states,
                    &mut waiting,
                    &mut ready,
                );
            }
        }
    }
    if summary.interrupted {
        let should_run = plan
            .changes
            .iter()
            .filter(|c| c.node.is_some() && (c.kind != ChangeKind::Noop || c.adopt))
            .count();
        summary.not_finished += should_run.saturating_sub(started_count + summary.skipped);
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    if shared.log_dir.is_dir() {
        summary.log_dir = Some(shared.log_dir.display().to_string());
    }
    summary
}

/// Marks a node finished and releases what waited for it.
fn settle(
    graph: &TaskGraph,
    node: NodeIndex,
    s: NodeState,
    states: &mut HashMap<NodeIndex, NodeState>,
    waiting: &mut HashMap<NodeIndex, usize>,
    ready: &mut VecDeque<NodeIndex>,
) {
    states.insert(node, s);
    for down in graph.downstream(node) {
        let n = waiting.get_mut(&down).expect("every node is counted");
        *n -= 1;
        if *n == 0 {
            ready.push_back(down);
        }
    }
}

/// The captured values a step reads, from the tasks that captured them.
fn capture_values(
    model: &Model,
    task: &crate::graph::Task,
    captured: &HashMap<TaskId, String>,
) -> runner::Captures {
    let mut values = runner::Captures::new();
    let Work::Step { step } = task.work else {
        return values;
    };
    let s = &model.steps[step];
    for interp in s.strings() {
        for name in interp.vars() {
            if model.var(task.host, name).is_some() {
                continue;
            }
            if let Some((producer, host)) = model.capture_source(task.host, name) {
                let id = crate::graph::task_id(model, ElementRef::Step(producer), host);
                if let Some(v) = captured.get(&id) {
                    values.insert(name.to_string(), v.clone());
                }
            }
        }
    }
    values
}

type TaskOutput = (Outcome, Option<String>, Option<String>);

async fn run_one(
    shared: &Shared,
    task: &crate::graph::Task,
    change: &crate::plan::Change,
    captures: &runner::Captures,
) -> Result<TaskOutput, Failure> {
    let transport = shared.fleet.transport(task.host).ok_or_else(|| {
        Failure::new(format!(
            "host {} is not connected",
            shared.model.host(task.host).name
        ))
    })?;
    let receipt = Receipt::new(ReceiptInfo {
        task: task.id.clone(),
        key: change.key.clone().expect("graph changes have keys"),
        finished_at: crate::state::now_rfc3339(),
        by: shared.operator.clone(),
        captured: None,
    });
    let ctx = RunnerContext {
        model: &shared.model,
        transport,
        scrubber: &shared.scrubber,
        log_dir: &shared.log_dir,
        receipt: Some(&receipt),
    };
    let record = shared.state.tasks.get(&task.id);
    let observation = shared.refresh.observations.get(&task.id);
    let replace = change.kind == ChangeKind::Replace;
    let (detail, description, outcome) = if change.kind == ChangeKind::Noop {
        // Adopted: the check passes, so it is recorded as converged without running.
        let Work::Step { step } = task.work else {
            unreachable!("only steps are adopted")
        };
        let s = &shared.model.steps[step];
        let cwd = s
            .cwd
            .as_ref()
            .map(|c| runner::render_for_host(&shared.model, task.host, c, captures))
            .transpose()?;
        // Adopted from a receipt: the value it captured then goes on.
        let captured = shared
            .refresh
            .receipts
            .get(&task.id)
            .and_then(|r| r.captured.clone());
        (
            RecordDetail::Step {
                captured,
                captured_masked: false,
                undo: s.undo.as_ref().map(|u| u.source.clone()),
                undo_vars: runner::undo_values(&shared.model, task.host, s.undo.as_ref(), captures),
                cwd,
            },
            change
                .reasons
                .first()
                .cloned()
                .unwrap_or_else(|| "already converged".into()),
            Outcome::Adopted,
        )
    } else {
        let outcome = match change.kind {
            ChangeKind::Create => Outcome::Created,
            ChangeKind::Replace => Outcome::Replaced,
            _ => Outcome::Updated,
        };
        match &task.work {
            Work::Bundle { .. } | Work::File { .. } => {
                let (d, s) = runner::sync_files(&ctx, task, record, observation, replace).await?;
                (d, s, outcome)
            }
            Work::Step { step } => {
                if replace && let Some(r) = record {
                    runner::run_undo(&ctx, r, &task.id).await?;
                }
                let (d, s) = runner::run_step(&ctx, task, *step, captures, &task.id).await?;
                (d, s, outcome)
            }
        }
    };
    // The run goes on with the real value; the state keeps it only without secrets.
    let mut detail = detail;
    let capture = match &mut detail {
        RecordDetail::Step {
            captured,
            captured_masked,
            ..
        } => {
            let real = captured.clone();
            if let Some(value) = captured.as_mut() {
                let scrubbed = shared.scrubber.scrub(value);
                if scrubbed != *value {
                    *value = scrubbed;
                    *captured_masked = true;
                }
            }
            real
        }
        _ => None,
    };
    let record = TaskRecord {
        key: change.key.clone().expect("graph changes have keys"),
        inputs: change.inputs.clone().expect("graph changes have inputs"),
        detail,
        finished_at: crate::state::now_rfc3339(),
        seq: shared.seq.fetch_add(1, Ordering::SeqCst),
    };
    record_entry(
        shared,
        JournalEntry::Done {
            id: task.id.clone(),
            record: Box::new(record),
        },
    )
    .await
    .map_err(|e| Failure::new(format!("the task ran, but recording it failed: {e}")))?;
    Ok((
        outcome,
        capture,
        (!description.is_empty()).then_some(description),
    ))
}

/// Undoes a task that left the Clusterfile, then forgets it.
async fn destroy(shared: &Shared, id: &TaskId) -> Result<String, Failure> {
    let record = shared
        .state
        .tasks
        .get(id)
        .ok_or_else(|| Failure::new("no record"))?;
    let transport = shared
        .fleet
        .transport_for_record(&shared.model, record.host())
        .ok_or_else(|| {
        Failure::new(format!(
            "host {} is not connected (unreachable, left out by --limit, or no longer in the Clusterfile): its tasks are undone when it is reachable again",
            record.host().name
        ))
    })?;
    let ctx = RunnerContext {
        model: &shared.model,
        transport: &transport,
        scrubber: &shared.scrubber,
        log_dir: &shared.log_dir,
        receipt: None,
    };
    let detail = match record.detail.shipped_files() {
        Some((dest, shipped)) => {
            let kept = transport
                .remove(dest, &shipped)
                .await
                .map_err(|e| Failure::new(e.to_string()))?;
            removal_detail(shipped.len(), &kept)
        }
        None => runner::run_undo(&ctx, record, id).await?,
    };
    transport.forget_receipt(id).await.map_err(|e| {
        Failure::new(format!(
            "the undo ran, but removing its receipt failed: {e}"
        ))
    })?;
    record_entry(shared, JournalEntry::Forget { id: id.clone() })
        .await
        .map_err(|e| Failure::new(format!("the undo ran, but recording it failed: {e}")))?;
    Ok(detail)
}

/// Appends to the journal on the blocking pool and waits until it is on disk.
async fn record_entry(shared: &Shared, entry: JournalEntry) -> Result<(), String> {
    let journal = shared.journal.clone();
    match tokio::task::spawn_blocking(move || journal.append(entry)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn removal_detail(total: usize, kept: &[String]) -> String {
    if kept.is_empty() {
        format!("{total} file{} removed", if total == 1 { "" } else { "s" })
    } else {
        format!(
            "{} removed, {} kept because they were changed by hand ({})",
            total - kept.len(),
            kept.len(),
            kept.join(", ")
        )
    }
}
