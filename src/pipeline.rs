//! The stages every command walks, as types: [`Loaded`] → [`Compiled`] →
//! [`Refreshed`] → [`Planned`], and then, for an apply, executed.
//!
//! Each stage owns what the ones before it made and adds its own: a
//! Clusterfile read and validated into a model; the recorded state and the
//! sealed task graph; the fleet's connections, what refresh found on each
//! host and, for an apply, the host locks; the plan. A command takes a
//! stage as far as it needs (`validate` stops after checking, `graph` after
//! compiling, `plan` and `drift` after planning) and so every command fails
//! the same way at the same stage: an invalid Clusterfile before any host
//! is touched, an unknown `--replace` or `--limit` before anything is
//! connected. Nothing here prints; commands hand results to `report`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use crate::bundle::manifest::HashCache;
use crate::diagnostic::{InvalidClusterfile, Problems, SourceFile};
use crate::error::CairnError;
use crate::exec::{self, Event, ExecOptions, FailurePolicy, RunSummary};
use crate::graph::{self, CompileError, CompileOptions, TaskGraph};
use crate::model::Model;
use crate::model::selection::excluded_hosts;
use crate::plan::{self, DiffOptions, Plan, Refresh, Replacements};
use crate::state::{Journal, LockHolder, State, StateDir, StateLock};
use crate::transport::{Fleet, HostLock};

/// Run logs kept in the state folder; older ones are pruned after each apply.
const RUN_LOGS_KEPT: usize = 20;

/// The tokio runtime commands run their host I/O on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("can start the tokio runtime")
}

/// A Clusterfile read, parsed and validated.
#[derive(Debug)]
pub struct Loaded {
    pub source: SourceFile,
    pub model: Arc<Model>,
    /// The cluster's state folder, `.cairn/<cluster>/` beside the Clusterfile.
    pub dir: StateDir,
}

impl Loaded {
    /// Reads, parses and validates: every problem in the file, or the model.
    pub fn read(path: &Path) -> Result<Loaded, CairnError> {
        Loaded::from_source(crate::clusterfile::read(path)?)
    }

    /// Parses and validates a Clusterfile's text already in hand: what
    /// [`Loaded::read`] does once the file is read. Relative paths in it
    /// start at the folder of `source.path`, which need not exist as a
    /// file (the fuzz targets feed text this way).
    pub fn from_source(source: SourceFile) -> Result<Loaded, CairnError> {
        let mut problems = Problems::default();
        let model =
            crate::clusterfile::parse(&source, &mut problems).and_then(|(raw, recovered)| {
                crate::model::validate(&source, &raw, &recovered, &mut problems)
            });
        match model {
            Some(model) if problems.is_empty() => {
                let dir = StateDir::new(&model.base_dir, &model.name);
                Ok(Loaded {
                    source,
                    model: Arc::new(model),
                    dir,
                })
            }
            _ => Err(InvalidClusterfile::new(source, problems.0).into()),
        }
    }

    /// Everything `cairn validate` checks beyond the model: the graph
    /// compiled from it (bundles scanned, templates rendered, destinations
    /// resolved), writing nothing.
    pub fn check(&self) -> Result<TaskGraph, CairnError> {
        self.compile_graph(&State::new(&self.model.name), false)
    }

    /// Takes the cluster lock for an apply (refused, naming its holder, while
    /// another apply runs) and makes sure a state exists, so the plan read
    /// next is the one this apply builds on.
    pub fn lock_cluster(&self, holder: &LockHolder) -> Result<StateLock, CairnError> {
        self.dir.create()?;
        let lock = StateLock::acquire(&self.dir.lock_file(), &self.model.name, holder)?;
        self.dir.ensure()?;
        Ok(lock)
    }

    /// Loads the recorded state and compiles the graph against it.
    pub fn compile(self) -> Result<Compiled, CairnError> {
        let state = self.dir.load()?;
        let graph = self.compile_graph(&state, true)?;
        Ok(Compiled {
            loaded: self,
            state: Arc::new(state),
            graph: Arc::new(graph),
        })
    }

    /// Compiles with this folder's hash cache; `save_cache` keeps what it learned.
    fn compile_graph(&self, state: &State, save_cache: bool) -> Result<TaskGraph, CairnError> {
        let cache_dir = self.dir.cache_dir();
        let cache_file = cache_dir.join("hashes.json");
        let cache = HashCache::load(&cache_file);
        let options = CompileOptions {
            salt: &state.salt,
            hash_cache: &cache,
            cache_dir: cache_dir.clone(),
        };
        let graph = graph::compile(&self.model, &options).map_err(|errors| {
            let problems = errors.iter().map(CompileError::to_problem).collect();
            CairnError::from(InvalidClusterfile::new(self.source.clone(), problems))
        })?;
        // Only a cache: failing to save it costs time next run, nothing else.
        if save_cache && std::fs::create_dir_all(&cache_dir).is_ok() {
            let _ = cache.save(&cache_file);
        }
        Ok(graph)
    }
}

/// The graph compiled against the recorded state.
#[derive(Debug)]
pub struct Compiled {
    pub loaded: Loaded,
    pub state: Arc<State>,
    pub graph: Arc<TaskGraph>,
}

/// Which hosts and tasks a run is about: `--limit` and `--replace`.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Roles, host names or addresses; `!NAME` leaves one out.
    pub limit: Vec<String>,
    /// Task ids, or elements (`step.init`) for all their hosts.
    pub replace: Vec<String>,
}

impl Targets {
    pub fn new(limit: &[String], replace: &[String]) -> Targets {
        Targets {
            limit: limit.to_vec(),
            replace: replace.to_vec(),
        }
    }
}

/// How refresh looks at the hosts.
#[derive(Debug, Clone, Copy)]
pub enum Probe<'a> {
    /// Not at all: compare the Clusterfile with the recorded state only.
    Offline,
    /// Read-only (plan, drift): no lock, nothing written.
    Read,
    /// Take each host's lock for this apply in the same round trip.
    Lock(&'a LockHolder),
}

impl Compiled {
    /// Checks the targets, connects to the targeted hosts and refreshes
    /// them. A host that cannot be reached, probed or locked is left out
    /// with why; the others go on.
    pub fn refresh(
        self,
        targets: &Targets,
        probe: Probe<'_>,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Refreshed, CairnError> {
        let replace = Replacements::new(&targets.replace, &self.graph)?;
        let model = self.loaded.model.clone();
        let excluded = excluded_hosts(&model, &targets.limit)
            .map_err(|e| CairnError::usage(e.to_string(), e.help()))?;
        let offline = matches!(probe, Probe::Offline);
        let hosts: Vec<_> = if offline {
            Vec::new()
        } else {
            model
                .hosts
                .iter()
                .filter(|h| !excluded.contains(&h.name))
                .map(|h| h.id)
                .collect()
        };
        let (fleet, refresh, locks) = runtime.block_on(async {
            let fleet = Fleet::connect(&model, &hosts, &self.loaded.dir.dir).await;
            let (refresh, locks) = match probe {
                Probe::Offline => (Refresh::default(), Vec::new()),
                Probe::Read | Probe::Lock(_) => {
                    let owner = match probe {
                        Probe::Lock(holder) => Some(holder),
                        _ => None,
                    };
                    plan::refresh::refresh(
                        model.clone(),
                        &self.graph,
                        self.state.clone(),
                        &fleet,
                        &hosts,
                        owner,
                    )
                    .await
                }
            };
            (fleet, refresh, locks)
        });
        Ok(Refreshed {
            compiled: self,
            fleet,
            refresh: Arc::new(refresh),
            locks,
            replace,
            excluded,
            offline,
        })
    }
}

/// The hosts as they really are, with the connections still open.
pub struct Refreshed {
    pub compiled: Compiled,
    /// The connections refresh used; an apply goes on with them.
    pub fleet: Fleet,
    pub refresh: Arc<Refresh>,
    /// Host locks held (apply only).
    pub locks: Vec<HostLock>,
    replace: Replacements,
    excluded: BTreeSet<String>,
    offline: bool,
}

impl Refreshed {
    /// Things refresh found worth telling the operator (a stale lock taken over).
    pub fn notes(&self) -> &[String] {
        &self.refresh.notes
    }

    /// Compares the desired keys with the records and what refresh found.
    pub fn plan(self) -> Planned {
        let compiled = &self.compiled;
        let options = DiffOptions {
            replace: self.replace.clone(),
            excluded_hosts: self.excluded.clone(),
            offline: self.offline,
        };
        let plan = plan::diff(
            &compiled.loaded.model,
            &compiled.graph,
            &compiled.state,
            &self.refresh,
            &options,
        );
        Planned {
            refreshed: self,
            plan,
        }
    }
}

/// Everything a plan needs, computed: the plan and what it was made from.
pub struct Planned {
    pub refreshed: Refreshed,
    pub plan: Plan,
}

/// How an apply runs its tasks.
#[derive(Debug, Clone)]
pub struct ApplySettings {
    /// Tasks running at once, overall.
    pub parallelism: usize,
    /// Who runs this apply, as receipts name it (`user@machine`).
    pub operator: String,
    /// What a failed task does to the rest of the run.
    pub on_failure: FailurePolicy,
}

impl Planned {
    pub fn model(&self) -> &Arc<Model> {
        &self.refreshed.compiled.loaded.model
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.refreshed.compiled.loaded.dir
    }

    /// Runs the plan: each finished task is journaled as it finishes,
    /// events go to `events` (the last is `RunFinished`, with the hosts that
    /// could not be reached), and the state is compacted at the end.
    pub fn execute(
        &self,
        settings: &ApplySettings,
        events: &Sender<Event>,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<RunSummary, CairnError> {
        let compiled = &self.refreshed.compiled;
        let dir = self.state_dir();
        let journal = Journal::open(&dir.journal_file())?;
        let mut summary = runtime.block_on(exec::execute(
            exec::Run {
                model: compiled.loaded.model.clone(),
                graph: compiled.graph.clone(),
                state: compiled.state.clone(),
                plan: &self.plan,
                refresh: self.refreshed.refresh.clone(),
                journal: journal.appender(),
                events: events.clone(),
                fleet: self.refreshed.fleet.clone(),
                operator: settings.operator.clone(),
            },
            ExecOptions {
                parallelism: settings.parallelism,
                per_host: exec::DEFAULT_PER_HOST,
                log_dir: dir.new_run_log_dir(),
                on_failure: settings.on_failure,
            },
        ));
        summary.unreachable = self.plan.unreachable_messages();
        let _ = events.send(Event::RunFinished {
            summary: summary.clone(),
        });
        drop(journal);
        let mut state = dir.load()?;
        state.serial += 1;
        dir.compact(&mut state)?;
        dir.prune_runs(RUN_LOGS_KEPT);
        Ok(summary)
    }

    /// Releases the host locks and closes the connections.
    pub fn finish(self, runtime: &tokio::runtime::Runtime) {
        let Refreshed { locks, fleet, .. } = self.refreshed;
        runtime.block_on(async move {
            let mut jobs = tokio::task::JoinSet::new();
            for lock in locks {
                jobs.spawn(lock.release());
            }
            while jobs.join_next().await.is_some() {}
            fleet.close().await;
        });
    }
}

/// The stages of a plan in one call: read, compile, refresh (unless
/// offline), diff; what `cairn drift` runs, and what benchmarks measure.
pub fn plan(
    file: &Path,
    targets: &Targets,
    probe: Probe<'_>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Planned, CairnError> {
    Ok(Loaded::read(file)?
        .compile()?
        .refresh(targets, probe, runtime)?
        .plan())
}
