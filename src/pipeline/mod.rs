//! The stages every command walks, as types: [`Loaded`] → [`Compiled`] →
//! [`Refreshed`] → [`Planned`], and then, for an apply, executed.
//!
//! Each stage owns what the ones before it made and adds its own: a
//! Clusterfile read and validated into a model; the recorded state and the
//! sealed task graph; the fleet's connections, what refresh found on each
//! host and, for an apply, the host locks; the plan (with `--diff`, each
//! changed file against what its host has now). A command takes a
//! stage as far as it needs (`validate` stops after checking, `graph` after
//! compiling, `plan` and `drift` after planning) and so every command fails
//! the same way at the same stage: an invalid Clusterfile before any host
//! is touched, an unknown `--replace` or `--limit` before anything is
//! connected. Nothing here prints; commands hand results to `report`.
//!
//! An apply that needs no confirmation takes a shortcut through the last
//! two stages (`streamed`): each host's tasks start as soon as its own
//! probe is back.

mod streamed;

pub use streamed::{Holding, Streamed, WholePlan};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use crate::bundle::manifest::HashCache;
use crate::diagnostic::{InvalidClusterfile, Problems, SourceFile};
use crate::error::CairnError;
use crate::exec::{self, Event, ExecOptions, FailurePolicy, RunSummary};
use crate::graph::{self, CompileOptions, TaskGraph};
use crate::model::selection::{RecordedHost, excluded_hosts};
use crate::model::{Model, OuterVars};
use crate::plan::file_diffs::DiffSources;
use crate::plan::former::{Departure, FormerHost};
use crate::plan::{self, DiffOptions, FileDiffs, Plan, Refresh, Replacements};
use crate::state::{ClusterLock, Journal, JournalEntry, LockPolicy, State, StateDir, Store};
use crate::transport::Fleet;

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
    /// Where the state and the cluster lock live (`[state]`): this folder, or PostgreSQL.
    pub store: Store,
    /// Values given from outside (`--var-file`, `--var`), already in the
    /// model's `[vars]`: kept to say where a changed value came from, and
    /// for a saved plan to record.
    pub outer: OuterVars,
}

impl Loaded {
    /// Reads, parses and validates: every problem in the file, or the model.
    pub fn read(path: &Path) -> Result<Loaded, CairnError> {
        Loaded::from_source(crate::clusterfile::read(path)?)
    }

    /// [`Loaded::read`] with values from outside put over `[vars]`: an
    /// undeclared name, a secret's or a mistyped value is a usage error
    /// (after the Clusterfile's own problems, which come first).
    pub fn read_with(path: &Path, outer: &OuterVars) -> Result<Loaded, CairnError> {
        Loaded::from_source_with(crate::clusterfile::read(path)?, outer)
    }

    /// [`Loaded::read_with`] for the `--var` and `--var-file` arguments.
    pub fn read_with_args(path: &Path, args: &crate::cli::VarArgs) -> Result<Loaded, CairnError> {
        let outer = OuterVars::read(&args.var_files, &args.vars)
            .map_err(|e| CairnError::usage(e.message, e.help))?;
        Loaded::read_with(path, &outer)
    }

    /// Parses and validates a Clusterfile's text already in hand: what
    /// [`Loaded::read`] does once the file is read. Relative paths in it
    /// start at the folder of `source.path`, which need not exist as a file
    /// (`add` and `delete` check the text they mean to write; the fuzz
    /// targets feed text this way).
    pub fn from_source(source: SourceFile) -> Result<Loaded, CairnError> {
        Loaded::from_source_with(source, &OuterVars::default())
    }

    /// [`Loaded::from_source`] with values from outside over `[vars]`.
    pub fn from_source_with(source: SourceFile, outer: &OuterVars) -> Result<Loaded, CairnError> {
        let mut problems = Problems::default();
        let mut refused = None;
        let model =
            crate::clusterfile::parse(&source, &mut problems).and_then(|(raw, recovered)| {
                let host_vars = raw.hosts.iter().flat_map(|h| h.vars.keys());
                // `--var` may set a name a bundle's bundle.toml declares, too.
                let declared = crate::model::bundle_toml::declarable_vars(
                    &source.path,
                    &raw,
                    &crate::bundle::Sources,
                );
                let overrides = match outer.resolve(&declared, host_vars) {
                    Ok(overrides) => overrides,
                    Err(error) => {
                        refused = Some(error);
                        BTreeMap::new()
                    }
                };
                crate::model::validate_with(
                    &source,
                    &raw,
                    &recovered,
                    &overrides,
                    &crate::bundle::Sources,
                    &mut problems,
                )
            });
        if let Some(error) = refused
            && problems.is_empty()
        {
            return Err(CairnError::usage(error.message, error.help));
        }
        match model {
            Some(model) if problems.is_empty() => {
                let dir = StateDir::new(&model.base_dir, &model.name);
                let store = Store::new(&model.state, &dir);
                Ok(Loaded {
                    source,
                    model: Arc::new(model),
                    dir,
                    store,
                    outer: outer.clone(),
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

    /// Takes the cluster lock for an apply (while another apply runs:
    /// waited for up to `--lock-timeout`, then refused naming its holder)
    /// and makes sure a state exists, so the plan read next is the one this
    /// apply builds on.
    pub fn lock_cluster(&self, policy: &LockPolicy) -> Result<ClusterLock, CairnError> {
        self.dir.create()?;
        Ok(self.store.lock(policy)?)
    }

    /// Loads the recorded state and compiles the graph against it. A state
    /// written when unnamed hosts were named by position is migrated here
    /// (hosts renamed by address); the next apply stores it so.
    pub fn compile(self) -> Result<Compiled, CairnError> {
        let (state, renamed) = self.load_state()?;
        let graph = self.compile_graph(&state, true)?;
        let former = plan::former::former_hosts(&self.model, &state);
        Ok(Compiled {
            loaded: self,
            state: Arc::new(state),
            graph: Arc::new(graph),
            renamed,
            former,
        })
    }

    /// The recorded state, migrated if it was written when unnamed hosts
    /// were named by position; with the hosts renamed so.
    pub fn load_state(&self) -> Result<(State, BTreeMap<String, String>), CairnError> {
        let mut state = self.store.load()?;
        let renamed = plan::former::positional_renames(&self.model, &state);
        state.rename_hosts(&renamed);
        Ok((state, renamed))
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
            let problems = graph::compile_problems(&errors);
            CairnError::from(InvalidClusterfile::new(self.source.clone(), problems))
        })?;
        // Only a cache: failing to save it costs time next run, nothing else.
        if save_cache && std::fs::create_dir_all(&cache_dir).is_ok() {
            let _ = cache.save(&cache_file);
        }
        Ok(graph)
    }
}

/// The state folder of the Clusterfile at `path`, from its `name` alone,
/// the rest not validated: what `cairn output` falls back on when the
/// Clusterfile does not validate here (a secret whose source this shell
/// does not set), since the state holds no secret in clear.
pub fn state_dir_only(path: &Path) -> Result<StateDir, CairnError> {
    let source = crate::clusterfile::read(path)?;
    let mut problems = Problems::default();
    let parsed = crate::clusterfile::parse(&source, &mut problems);
    match parsed {
        Some((raw, _)) if !raw.name.get_ref().is_empty() => {
            let dir = source
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let base = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            Ok(StateDir::new(&base, raw.name.get_ref()))
        }
        _ => Err(InvalidClusterfile::new(source, problems.0).into()),
    }
}

/// The graph compiled against the recorded state.
#[derive(Debug)]
pub struct Compiled {
    pub loaded: Loaded,
    pub state: Arc<State>,
    pub graph: Arc<TaskGraph>,
    /// Hosts of an older state renamed on load (old name → name by address).
    pub renamed: BTreeMap<String, String>,
    /// Hosts the state knows that the Clusterfile no longer lists as they were.
    pub former: Vec<FormerHost>,
}

impl Compiled {
    /// How `host`, reached by this apply, is reached, when the state does
    /// not say so yet: what a later run uses to undo its tasks if it leaves.
    fn host_entry(&self, host: &crate::model::Host) -> Option<JournalEntry> {
        let record = plan::former::host_record(host);
        (self.state.hosts.get(&host.name) != Some(&record)).then(|| JournalEntry::Host {
            name: host.name.clone(),
            record: Box::new(record),
        })
    }

    /// Which host each positional selector (`master[0]`) names now, when
    /// that changed since the last apply.
    fn positions_entry(&self) -> Option<JournalEntry> {
        let model = &self.loaded.model;
        let positions: BTreeMap<String, String> = model
            .positions
            .iter()
            .map(|(selector, &id)| (selector.clone(), model.host(id).name.clone()))
            .collect();
        (positions != self.state.positions).then_some(JournalEntry::Positions { positions })
    }

    /// What the diff needs besides graph and state.
    fn diff_options(
        &self,
        replace: Replacements,
        excluded_hosts: BTreeSet<String>,
        offline: bool,
        reset: bool,
    ) -> DiffOptions {
        DiffOptions {
            replace,
            excluded_hosts,
            offline,
            former: self
                .former
                .iter()
                .map(|f| (f.name.clone(), f.clone()))
                .collect(),
            reset,
            renamed: self.renamed.values().cloned().collect(),
        }
    }

    /// The hosts only the state knows, as `--limit` may name them.
    fn recorded_hosts(&self) -> Vec<RecordedHost> {
        self.former
            .iter()
            .filter(|f| f.departure == Departure::Left)
            .map(|f| RecordedHost {
                name: f.name.clone(),
                address: f.record.address.clone(),
            })
            .collect()
    }
}

/// Which hosts and tasks a run is about (`--limit` and `--replace`), and
/// how many of its hosts may be connected at once.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Roles, host names or addresses; `!NAME` leaves one out.
    pub limit: Vec<String>,
    /// Task ids, or elements (`step.init`) for all their hosts.
    pub replace: Vec<String>,
    /// SSH connections open at once (`--parallelism`): hosts beyond it are
    /// probed, and worked on, in turn.
    pub connections: usize,
}

impl Default for Targets {
    fn default() -> Targets {
        Targets::new(&[], &[])
    }
}

impl Targets {
    pub fn new(limit: &[String], replace: &[String]) -> Targets {
        Targets {
            limit: limit.to_vec(),
            replace: replace.to_vec(),
            connections: crate::cli::DEFAULT_PARALLELISM,
        }
    }

    /// At most `connections` hosts connected at once.
    #[must_use]
    pub fn connecting(mut self, connections: usize) -> Targets {
        self.connections = connections;
        self
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
    Lock(&'a LockPolicy),
}

/// The hosts a run is about, none connected yet: what refresh, whole or
/// streamed, starts from.
struct Reaching {
    compiled: Compiled,
    fleet: Fleet,
    /// The targeted hosts, those with the longest chain of work first:
    /// the order they are probed in.
    hosts: Vec<crate::model::HostId>,
    replace: Replacements,
    excluded: BTreeSet<String>,
    offline: bool,
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
        let reaching = self.reach(targets, matches!(probe, Probe::Offline))?;
        let refresh = match probe {
            Probe::Offline => Refresh::default(),
            Probe::Read | Probe::Lock(_) => {
                let owner = match probe {
                    Probe::Lock(policy) => Some(policy),
                    _ => None,
                };
                let compiled = &reaching.compiled;
                runtime.block_on(plan::refresh::refresh(
                    compiled.loaded.model.clone(),
                    &compiled.graph,
                    compiled.state.clone(),
                    &reaching.fleet,
                    &reaching.hosts,
                    owner,
                ))
            }
        };
        let mut refresh = refresh;
        rename_receipts(&mut refresh, &reaching.compiled.renamed);
        Ok(Refreshed {
            compiled: reaching.compiled,
            fleet: reaching.fleet,
            refresh: Arc::new(refresh),
            replace: reaching.replace,
            excluded: reaching.excluded,
            offline: reaching.offline,
        })
    }

    /// Checks the targets and makes the fleet of the targeted hosts.
    fn reach(self, targets: &Targets, offline: bool) -> Result<Reaching, CairnError> {
        let replace = Replacements::new(&targets.replace, &self.graph)?;
        let model = self.loaded.model.clone();
        let excluded = excluded_hosts(&model, &self.recorded_hosts(), &targets.limit)
            .map_err(|e| CairnError::usage(e.to_string(), e.help()))?;
        let (mut hosts, former): (Vec<_>, Vec<_>) = if offline {
            (Vec::new(), Vec::new())
        } else {
            (
                model
                    .hosts
                    .iter()
                    .filter(|h| !excluded.contains(&h.name))
                    .map(|h| h.id)
                    .collect(),
                self.former
                    .iter()
                    .filter(|f| !excluded.contains(&f.name))
                    .map(|f| (f.name.clone(), f.record.clone()))
                    .collect(),
            )
        };
        let fleet = Fleet::new(
            &model,
            &hosts,
            &former,
            &self.loaded.dir.dir,
            targets.connections,
        );
        // A host on the run's longest path keeps its connection from its
        // probe to its work when the fleet is larger than the limit, and is
        // probed first.
        let mut weights: HashMap<crate::model::HostId, usize> = HashMap::new();
        for (node, length) in self.graph.chain_lengths() {
            let weight = weights.entry(self.graph.task(node).host).or_default();
            *weight = (*weight).max(length);
        }
        hosts.sort_by_key(|h| std::cmp::Reverse(weights.get(h).copied().unwrap_or(0)));
        fleet.keep_open_longest(weights);
        Ok(Reaching {
            compiled: self,
            fleet,
            hosts,
            replace,
            excluded,
            offline,
        })
    }
}

/// Receipts on a host renamed by the migration of an older state carry the
/// task ids of the host's old name; read under the new ones, so they count
/// as the receipts of the records they belong to.
fn rename_receipts(refresh: &mut Refresh, renamed: &BTreeMap<String, String>) {
    if renamed.is_empty() {
        return;
    }
    refresh.receipts = std::mem::take(&mut refresh.receipts)
        .into_iter()
        .map(|(id, receipt)| {
            let renamed_id = id
                .as_str()
                .split_once('@')
                .and_then(|(element, host)| {
                    let new = renamed.get(host)?;
                    crate::ids::TaskId::parse(&format!("{element}@{new}")).ok()
                })
                .unwrap_or(id);
            (renamed_id, receipt)
        })
        .collect();
}

/// The hosts as they really are, with the connections still open.
pub struct Refreshed {
    pub compiled: Compiled,
    /// The hosts' connections refresh used (and, for an apply, the locks
    /// it took with them); an apply goes on with them.
    pub fleet: Fleet,
    pub refresh: Arc<Refresh>,
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
        self.diff(false)
    }

    /// `cairn reset`: a plan that destroys every record on the targeted,
    /// reachable hosts, after which each of them is forgotten.
    pub fn plan_reset(self) -> Planned {
        self.diff(true)
    }

    fn diff(self, reset: bool) -> Planned {
        let compiled = &self.compiled;
        let options = compiled.diff_options(
            self.replace.clone(),
            self.excluded.clone(),
            self.offline,
            reset,
        );
        let mut plan = plan::diff(
            &compiled.loaded.model,
            &compiled.graph,
            &compiled.state,
            &self.refresh,
            &options,
        );
        plan::name_var_origins(
            &mut plan,
            &compiled.loaded.model,
            &compiled.loaded.outer.origins(),
        );
        // Hosts to forget once all is undone there: those that left, or on
        // a reset every targeted host (reached: an unreachable one is kept).
        let forget_hosts = if reset {
            compiled
                .loaded
                .model
                .hosts
                .iter()
                .map(|h| h.name.clone())
                .chain(compiled.former.iter().map(|f| f.name.clone()))
                .filter(|n| !self.excluded.contains(n) && !plan.unreachable.contains_key(n))
                .collect()
        } else {
            compiled
                .former
                .iter()
                .filter(|f| f.departure == Departure::Left)
                .map(|f| f.name.clone())
                .collect()
        };
        Planned {
            refreshed: self,
            plan,
            forget_hosts,
            file_diffs: None,
        }
    }
}

/// Everything a plan needs, computed: the plan and what it was made from.
pub struct Planned {
    pub refreshed: Refreshed,
    pub plan: Plan,
    /// Hosts forgotten (cairn's folder removed, out of the state) once
    /// everything cairn did there is undone.
    forget_hosts: BTreeSet<String>,
    /// With `--diff`: each changed file against what its host has now.
    file_diffs: Option<FileDiffs>,
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
    /// What the operator should read before the plan: a stale lock taken
    /// over, a positional selector that moved, a `once` step that would.
    pub fn notes(&self) -> Vec<String> {
        notes(self.refreshed.notes(), &self.plan)
    }

    /// `--diff`: reads back, from the hosts that have any, the files this
    /// plan changes (one more round trip per such host, all at once) and
    /// diffs each against what cairn would write, with `unified` (see
    /// [`plan::file_diffs`]); kept for [`Planned::file_diffs`].
    pub fn read_file_diffs(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        unified: impl Fn(&str, &str, &str, &str) -> String,
    ) {
        let compiled = &self.refreshed.compiled;
        let sources = DiffSources {
            plan: &self.plan,
            model: &compiled.loaded.model,
            graph: &compiled.graph,
            state: &compiled.state,
            refresh: &self.refreshed.refresh,
        };
        let diffs = runtime.block_on(plan::file_diffs::file_diffs(
            sources,
            &self.refreshed.fleet,
            unified,
        ));
        self.file_diffs = Some(diffs);
    }

    /// The file diffs read by [`Planned::read_file_diffs`], if it ran.
    pub fn file_diffs(&self) -> Option<&FileDiffs> {
        self.file_diffs.as_ref()
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.refreshed.compiled.loaded.model
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.refreshed.compiled.loaded.dir
    }

    /// Where the state is kept: [`Planned::state_dir`], or PostgreSQL.
    pub fn store(&self) -> &Store {
        &self.refreshed.compiled.loaded.store
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
        self.record_reached_hosts()?;
        let journal = self.store().journal()?;
        let mut summary = runtime.block_on(exec::execute(
            exec::Run {
                model: compiled.loaded.model.clone(),
                graph: compiled.graph.clone(),
                state: compiled.state.clone(),
                plan: exec::PlanFeed::Whole(&self.plan),
                refresh: exec::Seen::Whole(self.refreshed.refresh.clone()),
                journal: journal.appender(),
                events: events.clone(),
                fleet: self.refreshed.fleet.clone(),
                operator: settings.operator.clone(),
                forget_hosts: self.forget_hosts.clone(),
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
        let mut state = self.store().load()?;
        state.serial = state.serial.saturating_add(1);
        self.store().compact(&mut state)?;
        dir.prune_runs(RUN_LOGS_KEPT);
        Ok(summary)
    }

    /// What an apply records even when it runs nothing: a state migrated
    /// from an older version, written before anything runs (so the journal
    /// this run appends under the new names replays over a state that has
    /// them), how each reached host is reached, and the reruns a replace
    /// asks for.
    pub fn record_reached_hosts(&self) -> Result<(), CairnError> {
        let compiled = &self.refreshed.compiled;
        if !compiled.renamed.is_empty() {
            self.store().compact(&mut (*compiled.state).clone())?;
            let model = &compiled.loaded.model;
            for (old, new) in &compiled.renamed {
                if let Some(transport) = model
                    .hosts
                    .iter()
                    .find(|h| &h.name == new)
                    .and_then(|h| self.refreshed.fleet.open_now(h.id))
                {
                    transport.adopt_receipts_of(old)?;
                }
            }
        }
        let journal = self.store().journal()?;
        self.record_hosts(&journal)?;
        self.record_reruns(&journal)
    }

    /// Records the tasks this apply reruns because of a replace before any
    /// runs, so one that does not finish (interrupted, failed, or blocked)
    /// is rerun by the next apply and shown by the next plan.
    fn record_reruns(&self, journal: &Journal) -> Result<(), CairnError> {
        let known = &self.refreshed.compiled.state.reruns;
        let tasks: BTreeMap<_, _> = self
            .plan
            .reruns
            .iter()
            .filter(|(id, why)| known.get(*id) != Some(*why))
            .map(|(id, why)| (id.clone(), *why))
            .collect();
        if !tasks.is_empty() {
            journal.append(JournalEntry::Reruns { tasks })?;
        }
        Ok(())
    }

    /// Records how each host this apply reached is reached, where that
    /// changed: what a later run uses to undo its tasks if it leaves.
    fn record_hosts(&self, journal: &Journal) -> Result<(), CairnError> {
        let compiled = &self.refreshed.compiled;
        for host in &compiled.loaded.model.hosts {
            // Facts are kept for exactly the hosts refresh reached.
            if self.refreshed.refresh.facts.contains_key(&host.name)
                && let Some(entry) = compiled.host_entry(host)
            {
                journal.append(entry)?;
            }
        }
        if let Some(entry) = compiled.positions_entry() {
            journal.append(entry)?;
        }
        Ok(())
    }

    /// Releases the host locks and closes the connections.
    pub fn finish(self, runtime: &tokio::runtime::Runtime) {
        runtime.block_on(self.refreshed.fleet.close());
    }
}

/// What the operator should read before `plan`, after what refresh found
/// (`refresh_notes`, sorted): a stale lock taken over, a positional
/// selector that moved, a `once` step that would.
fn notes(refresh_notes: &[String], plan: &Plan) -> Vec<String> {
    let mut notes = refresh_notes.to_vec();
    notes.extend(plan.warnings.iter().cloned());
    notes.extend(
        plan.once_moves
            .iter()
            .map(|m| format!("{m}; apply refuses this plan")),
    );
    notes
}

/// The stages of a plan in one call: read, compile, refresh (unless
/// offline), diff; what `cairn drift` runs, and what benchmarks measure.
pub fn plan(
    file: &Path,
    targets: &Targets,
    probe: Probe<'_>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Planned, CairnError> {
    plan_with(file, &OuterVars::default(), targets, probe, runtime)
}

/// [`plan`] with values from outside over `[vars]`.
pub fn plan_with(
    file: &Path,
    outer: &OuterVars,
    targets: &Targets,
    probe: Probe<'_>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Planned, CairnError> {
    Ok(Loaded::read_with(file, outer)?
        .compile()?
        .refresh(targets, probe, runtime)?
        .plan())
}
