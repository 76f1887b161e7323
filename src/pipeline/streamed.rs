//! A streamed apply: refresh, plan and run at once, for an apply that
//! needs no confirmation (`--auto-approve`, or a saved plan).
//!
//! Each host's probe (with its lock) goes out as in a whole refresh, the
//! hosts with the longest chain of work first; as each comes back, its
//! part of the plan is made (`plan::stream`) and handed to the executor,
//! which starts a task as soon as its change is known and what it waits
//! for is done. So no host waits for the slowest host's probe, and on a
//! fleet larger than `--parallelism` a host is probed, worked on and let
//! go on one connection (its probe waits for a free connection rather than
//! close a host whose work is next).
//!
//! The plan is still whole before the operator reads anything: the run's
//! events are held until every host is in, then the plan is shown and the
//! events follow. On a large fleet the hold can last most of the run, so
//! meanwhile the command is told how far the apply is ([`Holding`]: hosts
//! probed, tasks done and running), counted as the probes come back and as
//! the held events pass ([`Tally`]).
//!
//! The journal is as exact as in a whole apply: how each host is reached
//! is recorded before its tasks run, each task as it finishes. A saved
//! plan is checked host by host, each when its part is known: a host whose
//! part differs from the saved one does not run (nor what waits for it),
//! and the apply ends refused, naming the difference.
//!
//! Only plans with nothing to undo and nothing to rerun by request stream
//! ([`Compiled::can_stream`]): undoing comes before everything else.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::mpsc::UnboundedSender;

use super::{ApplySettings, Compiled, Reaching, Targets};
use crate::error::CairnError;
use crate::exec::{self, Event, ExecOptions, Feed, PlanFeed, RunSummary};
use crate::graph::TaskGraph;
use crate::model::HostId;
use crate::plan::stream::{PlanStream, Resolved};
use crate::plan::{self, Plan, PlanJson, Refresh};
use crate::state::LockPolicy;

/// What the command shows once the plan is whole, before any event of the run.
pub struct WholePlan<'a> {
    /// `None`: the run was stopped (Ctrl-C) before every host was in.
    pub plan: Option<&'a Plan>,
    /// What the operator should read before the plan (a stale lock taken
    /// over, a selector that moved).
    pub notes: Vec<String>,
    /// Whether the plan has anything to do: if not, it is all there is to show.
    pub runs: bool,
    /// The event that opens the run, then the run's events, held until now.
    pub run_started: Option<Event>,
    pub events: mpsc::Receiver<Event>,
}

/// How far a streamed apply is while it holds the run's events (its plan
/// not whole yet): what the command tells the operator meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    /// The hosts of the run.
    pub hosts: usize,
    /// Hosts whose probe is back, reached or not.
    pub probed: usize,
    /// Of those, the hosts that could not be reached or locked.
    pub unreachable: usize,
    /// Tasks that finished, that failed, and that are running now.
    pub done: usize,
    pub failed: usize,
    pub running: usize,
    /// Ctrl-C: no new task starts, the running ones finish.
    pub interrupted: bool,
}

/// [`Holding`] as it changes, told to the command's `watch` at each change
/// until the plan is whole (or the run stopped before): from the probe
/// loop, and from the thread the run's events pass through.
struct Tally {
    /// `None` once nothing more is told.
    counts: Mutex<Option<Holding>>,
    watch: Box<dyn Fn(&Holding) + Send + Sync>,
}

impl Tally {
    fn new(hosts: usize, watch: impl Fn(&Holding) + Send + Sync + 'static) -> Tally {
        let tally = Tally {
            counts: Mutex::new(Some(Holding {
                hosts,
                ..Holding::default()
            })),
            watch: Box::new(watch),
        };
        tally.change(|_| {});
        tally
    }

    /// Changes the counts and tells them, while the events are held. Under
    /// the lock, so the command hears each change in order, and none after
    /// [`Tally::end`].
    fn change(&self, how: impl FnOnce(&mut Holding)) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counts) = counts.as_mut() {
            how(counts);
            (self.watch)(counts);
        }
    }

    fn host_in(&self, reached: bool) {
        self.change(|h| {
            h.probed += 1;
            h.unreachable += usize::from(!reached);
        });
    }

    fn event(&self, event: &Event) {
        match event {
            Event::TaskStarted { .. } => self.change(|h| h.running += 1),
            Event::TaskFinished { .. } => self.change(|h| {
                h.running = h.running.saturating_sub(1);
                h.done += 1;
            }),
            Event::TaskFailed { .. } => self.change(|h| {
                h.running = h.running.saturating_sub(1);
                h.failed += 1;
            }),
            Event::Interrupted { .. } => self.change(|h| h.interrupted = true),
            _ => {}
        }
    }

    /// The plan is whole, or the run stopped before: the events are shown
    /// from now on, and nothing more is told.
    fn end(&self) {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The run's events: where the executor sends them, and where they are
/// held until the plan is whole; a thread passes them from one to the
/// other, counting them for `watch` on the way ([`Tally`]), and ends when
/// the last sender is gone.
fn counted_events(
    hosts: usize,
    watch: impl Fn(&Holding) + Send + Sync + 'static,
) -> (Arc<Tally>, mpsc::Sender<Event>, mpsc::Receiver<Event>) {
    let tally = Arc::new(Tally::new(hosts, watch));
    let (events, passing) = mpsc::channel();
    let (held, held_events) = mpsc::channel();
    let counting = tally.clone();
    std::thread::Builder::new()
        .name("cairn-held-events".into())
        .spawn(move || {
            for event in passing {
                counting.event(&event);
                // Fails only when no one will show them (the plan had
                // nothing to do): they are dropped.
                let _ = held.send(event);
            }
        })
        .expect("can start the thread the run's events pass through");
    (tally, events, held_events)
}

/// How a streamed apply ended.
pub struct Streamed<R> {
    pub plan: Option<Plan>,
    /// What ran; `None` when the plan had nothing to do.
    pub summary: Option<RunSummary>,
    /// With a saved plan: how it no longer holds for the hosts that did
    /// not run because of it.
    pub stale: Vec<String>,
    /// What the command's `show` returned (its reporter).
    pub shown: R,
}

impl Compiled {
    /// Whether an apply of this graph against this state can stream: it
    /// undoes nothing (no record without a task, no host that left or
    /// moved), reruns nothing on request (`--replace`, or one an earlier
    /// apply left), and renames no host of an older state.
    pub fn can_stream(&self, targets: &Targets) -> bool {
        targets.replace.is_empty()
            && self.state.reruns.is_empty()
            && self.renamed.is_empty()
            && self.former.is_empty()
            && self
                .state
                .tasks
                .keys()
                .all(|id| self.graph.find(id).is_some())
    }

    /// Applies with no barrier between a host's probe and its work (see
    /// the module's documentation). `saved`: the saved plan being applied,
    /// checked host by host. `watch` is told how far the apply is at each
    /// change until then ([`Holding`]). `show` is called once, when the
    /// plan is whole (or the run stopped before), and returns what the
    /// command keeps showing the run with.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_streamed<R>(
        self,
        targets: &Targets,
        policy: &LockPolicy,
        settings: &ApplySettings,
        saved: Option<&PlanJson>,
        runtime: &tokio::runtime::Runtime,
        watch: impl Fn(&Holding) + Send + Sync + 'static,
        show: impl FnOnce(WholePlan<'_>) -> R,
    ) -> Result<Streamed<R>, CairnError> {
        let reaching = self.reach(targets, false)?;
        let compiled = &reaching.compiled;
        let store = &compiled.loaded.store;
        let journal = store.journal()?;
        if let Some(entry) = compiled.positions_entry() {
            journal.append(entry)?;
        }
        let model = compiled.loaded.model.clone();
        let refresh = Arc::new(RwLock::new(Refresh::default()));
        let (plan_parts, parts) = tokio::sync::mpsc::unbounded_channel();
        let (tally, events, held_events) = counted_events(reaching.hosts.len(), watch);
        let run = exec::Run {
            model: model.clone(),
            graph: compiled.graph.clone(),
            state: compiled.state.clone(),
            plan: PlanFeed::Streamed(parts),
            refresh: exec::Seen::Growing(refresh.clone()),
            journal: journal.appender(),
            events: events.clone(),
            fleet: reaching.fleet.clone(),
            operator: settings.operator.clone(),
            forget_hosts: BTreeSet::new(),
        };
        let options = ExecOptions {
            parallelism: settings.parallelism,
            per_host: exec::DEFAULT_PER_HOST,
            log_dir: compiled.loaded.dir.new_run_log_dir(),
            on_failure: settings.on_failure,
        };
        let (plan, stale, summary, shown) = runtime.block_on(async {
            // Shown the moment the plan is whole, while the run goes on.
            let mut show = Some(show);
            let mut held_events = Some(held_events);
            let mut present = |plan: Option<&Plan>| {
                let show = show.take()?;
                tally.end();
                Some(show(WholePlan {
                    plan,
                    notes: plan.map(|p| notes(&refresh, p)).unwrap_or_default(),
                    runs: plan.is_none_or(|p| p.has_changes() || p.adopts()),
                    run_started: plan.map(|p| exec::run_started(&model, p)),
                    events: held_events.take()?,
                }))
            };
            let mut shown = None;
            let (whole, summary) = {
                let executing = exec::execute(run, options);
                let planning =
                    plan_as_probes_come(&reaching, policy, saved, &refresh, &tally, plan_parts);
                tokio::pin!(executing, planning);
                let mut whole: Option<(Plan, Vec<String>)> = None;
                let summary = loop {
                    tokio::select! {
                        made = &mut planning, if whole.is_none() => {
                            shown = present(Some(&made.0));
                            whole = Some(made);
                        }
                        summary = &mut executing => break summary,
                    }
                };
                // The run ends once the plan's last part is in, unless
                // Ctrl-C stopped it: then the probes still out are dropped
                // here, and the hosts not probed yet are left as they are.
                if whole.is_none() && !summary.interrupted {
                    let made = planning.await;
                    shown = present(Some(&made.0));
                    whole = Some(made);
                }
                (whole, summary)
            };
            let (plan, stale) =
                whole.map_or((None, Vec::new()), |(plan, stale)| (Some(plan), stale));
            if shown.is_none() {
                shown = present(plan.as_ref());
            }
            let shown = shown.expect("shown once");
            reaching.fleet.clone().close().await;
            (plan, stale, summary, shown)
        });
        let runs = plan.as_ref().is_none_or(|p| p.has_changes() || p.adopts());
        let summary = runs.then(|| {
            let mut summary = summary;
            summary.unreachable = plan
                .as_ref()
                .map(Plan::unreachable_messages)
                .unwrap_or_default();
            let _ = events.send(Event::RunFinished {
                summary: summary.clone(),
            });
            summary
        });
        drop(journal);
        if summary.is_some() {
            let mut recorded = store.load()?;
            recorded.serial = recorded.serial.saturating_add(1);
            store.compact(&mut recorded)?;
            compiled.loaded.dir.prune_runs(super::RUN_LOGS_KEPT);
        }
        Ok(Streamed {
            plan,
            summary,
            stale,
            shown,
        })
    }
}

/// What the operator should read before the plan, as a whole apply tells it.
fn notes(refresh: &RwLock<Refresh>, plan: &Plan) -> Vec<String> {
    let mut found = read(refresh).notes.clone();
    found.sort();
    super::notes(&found, plan)
}

fn read(refresh: &RwLock<Refresh>) -> std::sync::RwLockReadGuard<'_, Refresh> {
    refresh.read().unwrap_or_else(PoisonError::into_inner)
}

/// Probes every host of the run and feeds the executor each part of the
/// plan as it becomes known; returns the whole plan, and how a saved plan
/// no longer holds.
async fn plan_as_probes_come(
    reaching: &Reaching,
    policy: &LockPolicy,
    saved: Option<&PlanJson>,
    refresh: &RwLock<Refresh>,
    tally: &Tally,
    feed: UnboundedSender<Feed>,
) -> (Plan, Vec<String>) {
    let compiled = &reaching.compiled;
    let model = &compiled.loaded.model;
    let origins = compiled.loaded.outer.origins();
    let options = compiled.diff_options(
        reaching.replace.clone(),
        reaching.excluded.clone(),
        false,
        false,
    );
    let mut stream = PlanStream::new(
        model.clone(),
        compiled.graph.clone(),
        compiled.state.clone(),
        options,
    );
    let mut gate = saved.map(|saved| SavedGate::new(saved, &compiled.graph));
    let mut hand_over = |records: Vec<_>, mut tasks: Vec<Resolved>| {
        let changes = tasks.iter_mut().filter_map(|t| t.change.as_mut());
        plan::name_var_origins_in(changes, model, &origins);
        let (go, refused) = match gate.as_mut() {
            Some(gate) => gate.pass(&compiled.graph, model, tasks),
            None => (tasks, Vec::new()),
        };
        // The executor is gone only when Ctrl-C ended the run: nothing is lost.
        let _ = feed.send(Feed::Resolved { records, tasks: go });
        for (tasks, reason) in refused {
            let _ = feed.send(Feed::Refused { tasks, reason });
        }
    };
    let left_out = stream.host_in(&read(refresh), None);
    hand_over(Vec::new(), left_out);
    let mut probes = plan::refresh::start_probes(
        model,
        &compiled.graph,
        &compiled.state,
        &reaching.fleet,
        &reaching.hosts,
        Some(policy),
        true,
    );
    while let Some(joined) = probes.join_next().await {
        let probe = joined.expect("refresh tasks do not panic");
        let host = probe.host;
        let (resolved, reached) = {
            let mut refresh = refresh.write().unwrap_or_else(PoisonError::into_inner);
            refresh.take_in(probe);
            let reached = refresh.facts.contains_key(&model.host(host).name);
            (stream.host_in(&refresh, Some(host)), reached)
        };
        tally.host_in(reached);
        let records = reached
            .then(|| compiled.host_entry(model.host(host)))
            .flatten();
        hand_over(records.into_iter().collect(), resolved);
    }
    let (mut plan, held) = stream.finish(&read(refresh));
    hand_over(Vec::new(), held);
    plan::name_var_origins(&mut plan, model, &origins);
    let stale = gate.map(|g| g.stale).unwrap_or_default();
    (plan, stale)
}

/// A saved plan, checked host by host: a host's tasks go to the executor
/// once all of them are resolved and they are as the saved plan has them.
struct SavedGate<'a> {
    saved: &'a PlanJson,
    /// Each host's tasks not resolved yet.
    left: HashMap<HostId, usize>,
    /// Each host's resolved tasks, held until the last.
    held: HashMap<HostId, Vec<Resolved>>,
    /// What differs, for the hosts refused.
    stale: Vec<String>,
}

impl<'a> SavedGate<'a> {
    fn new(saved: &'a PlanJson, graph: &TaskGraph) -> SavedGate<'a> {
        let mut left: HashMap<HostId, usize> = HashMap::new();
        for &node in graph.topological() {
            *left.entry(graph.task(node).host).or_default() += 1;
        }
        SavedGate {
            saved,
            left,
            held: HashMap::new(),
            stale: Vec::new(),
        }
    }

    /// The tasks that may go now, and those refused (with why), host by host.
    #[allow(clippy::type_complexity)]
    fn pass(
        &mut self,
        graph: &TaskGraph,
        model: &crate::model::Model,
        tasks: Vec<Resolved>,
    ) -> (Vec<Resolved>, Vec<(Vec<Resolved>, String)>) {
        let mut go = Vec::new();
        let mut refused = Vec::new();
        for task in tasks {
            let host = graph.task(task.node).host;
            self.held.entry(host).or_default().push(task);
            let left = self.left.get_mut(&host).expect("every host is counted");
            *left -= 1;
            if *left > 0 {
                continue;
            }
            let tasks = self.held.remove(&host).unwrap_or_default();
            let fresh: Vec<_> = tasks
                .iter()
                .filter_map(|t| t.change.as_ref().map(plan::Change::to_json))
                .collect();
            // A host left out or unreachable runs nothing: nothing to check.
            let name = &model.host(host).name;
            let differences = if fresh.is_empty() {
                Vec::new()
            } else {
                plan::saved::host_differences(self.saved, name, &fresh)
            };
            if differences.is_empty() {
                go.extend(tasks);
            } else {
                let reason = format!(
                    "not started: the saved plan no longer holds for host {name} ({})",
                    differences.join("; ")
                );
                self.stale.extend(differences);
                refused.push((tasks, reason));
            }
        }
        (go, refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskId;

    /// A tally whose every report is kept.
    fn tally(hosts: usize) -> (Tally, Arc<Mutex<Vec<Holding>>>) {
        let told = Arc::new(Mutex::new(Vec::new()));
        let kept = told.clone();
        let tally = Tally::new(hosts, move |h: &Holding| kept.lock().unwrap().push(*h));
        (tally, told)
    }

    fn task() -> TaskId {
        TaskId::parse("step.install@host0").unwrap()
    }

    #[test]
    fn the_tally_counts_probes_and_task_events_until_the_plan_is_whole() {
        let (tally, told) = tally(3);
        tally.host_in(true);
        tally.host_in(false);
        let started = |host: &str| Event::TaskStarted {
            task: task(),
            host: host.into(),
            action: "create".into(),
        };
        tally.event(&started("host0"));
        tally.event(&started("host0"));
        tally.event(&Event::TaskFinished {
            task: task(),
            host: "host0".into(),
            outcome: exec::Outcome::Created,
            duration_ms: 1,
            detail: None,
        });
        tally.event(&Event::Note {
            message: "not counted".into(),
        });
        tally.event(&Event::TaskFailed {
            task: task(),
            host: "host0".into(),
            error: "exit 1".into(),
            tail: Vec::new(),
            log: None,
            duration_ms: 1,
        });
        tally.event(&Event::Interrupted { running: 0 });
        let last = *told.lock().unwrap().last().unwrap();
        assert_eq!(
            last,
            Holding {
                hosts: 3,
                probed: 2,
                unreachable: 1,
                done: 1,
                failed: 1,
                running: 0,
                interrupted: true,
            }
        );
        // Told at the start, then once per change (the note is none).
        assert_eq!(told.lock().unwrap().len(), 1 + 2 + 4 + 1);

        tally.end();
        tally.host_in(true);
        tally.event(&started("host2"));
        assert_eq!(
            told.lock().unwrap().len(),
            8,
            "nothing is told once the plan is whole"
        );
    }
}
