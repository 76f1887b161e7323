//! The commands: each wires the pipeline stages together.
//!
//! `validate` stops after the model; `graph` after compiling; `plan` goes
//! through refresh and diff; `apply` takes the lock, plans, asks, executes
//! and compacts the state. Every command that reads the Clusterfile goes
//! through [`load`], so an invalid file fails the same way everywhere, before
//! anything is touched.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use crate::bundle::manifest::HashCache;
use crate::cli::{ApplyArgs, Cli, Command, DriftArgs, PlanArgs, Selection, StateCommand};
use crate::diagnostic::{InvalidClusterfile, Problems, SourceFile};
use crate::error::{CairnError, Success};
use crate::exec::{self, ExecOptions};
use crate::graph::{self, CompileOptions, TaskGraph};
use crate::model::{Model, Scrubber};
use crate::plan::render::PlanJson;
use crate::plan::{self, DiffOptions, Plan, Refresh};
use crate::report::{self, Mode, Reporter, Style};
use crate::state::{Journal, LockHolder, State, StateDir, StateLock};
use crate::transport::{Fleet, HostLock};

pub fn run(cli: Cli) -> Result<Success, CairnError> {
    let style = Style::detect(cli.no_color);
    match &cli.command {
        Command::Schema => {
            print!("{}", crate::schema::clusterfile_schema());
            Ok(Success::Ok)
        }
        Command::Validate => {
            let (model, graph) = check(&cli.file)?;
            let tasks = graph.len();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"valid": true, "cluster": model.name, "hosts": model.hosts.len(), "tasks": tasks})
                );
            } else {
                println!(
                    "{} {} is valid: cluster `{}`, {} host{}, {} task{}.",
                    style.green("✓"),
                    cli.file.display(),
                    model.name,
                    model.hosts.len(),
                    plural(model.hosts.len()),
                    tasks,
                    plural(tasks)
                );
            }
            Ok(Success::Ok)
        }
        Command::Graph => {
            let (source, model) = load(&cli.file)?;
            let dir = StateDir::new(&model.base_dir, &model.name);
            let state = dir.load()?;
            let graph = compile(&source, &model, &dir, &state, true)?;
            print!("{}", graph.to_dot(&model));
            Ok(Success::Ok)
        }
        Command::Plan(args) => plan_command(&cli, args, &style),
        Command::Drift(args) => drift_command(&cli, args, &style),
        Command::Apply(args) => apply_command(&cli, args, &style),
        Command::State(sub) => state_command(&cli, sub, &style),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Reads, parses and validates: every problem, or the model.
pub fn load(path: &Path) -> Result<(SourceFile, Arc<Model>), CairnError> {
    let source = crate::clusterfile::read(path)?;
    let mut problems = Problems::default();
    let model = crate::clusterfile::parse(&source, &mut problems).and_then(|(raw, recovered)| {
        crate::model::validate(&source, raw, &recovered, &mut problems)
    });
    match model {
        Some(m) if problems.is_empty() => Ok((source, Arc::new(m))),
        _ => Err(InvalidClusterfile::new(source, problems.0).into()),
    }
}

/// Compiles the graph, with the hash cache of this folder.
/// Everything `cairn validate` checks: the model, and the graph compiled
/// from it (bundles scanned, templates rendered, destinations resolved),
/// writing nothing.
pub fn check(path: &Path) -> Result<(Arc<Model>, TaskGraph), CairnError> {
    let (source, model) = load(path)?;
    let dir = StateDir::new(&model.base_dir, &model.name);
    let state = State::new(&model.name);
    let graph = compile(&source, &model, &dir, &state, false)?;
    Ok((model, graph))
}

fn compile(
    source: &SourceFile,
    model: &Model,
    dir: &StateDir,
    state: &State,
    save_cache: bool,
) -> Result<TaskGraph, CairnError> {
    let cache_dir = dir.cache_dir();
    let cache_file = cache_dir.join("hashes.json");
    let cache = HashCache::load(&cache_file);
    let options = CompileOptions {
        salt: &state.salt,
        hash_cache: &cache,
        cache_dir: cache_dir.clone(),
    };
    let graph = graph::compile(model, &options).map_err(|errors| {
        let problems = errors.iter().map(graph::CompileError::to_problem).collect();
        CairnError::from(InvalidClusterfile::new(source.clone(), problems))
    })?;
    // Only a cache: failing to save it costs time next run, nothing else.
    if save_cache && std::fs::create_dir_all(&cache_dir).is_ok() {
        let _ = cache.save(&cache_file);
    }
    Ok(graph)
}

/// Everything a plan needs, computed.
pub struct Planned {
    pub model: Arc<Model>,
    pub graph: Arc<TaskGraph>,
    pub state: Arc<State>,
    pub refresh: Arc<Refresh>,
    pub plan: Plan,
    pub dir: StateDir,
    /// The connections refresh used; apply goes on with them.
    pub fleet: Fleet,
    /// Host locks held (apply only).
    pub locks: Vec<HostLock>,
}

impl Planned {
    /// Releases the host locks and closes the connections.
    pub fn finish(self, runtime: &tokio::runtime::Runtime) {
        let (locks, fleet) = (self.locks, self.fleet);
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

/// The whole plan pipeline: load, compile, refresh (unless offline), diff.
/// Public so benchmarks measure exactly what `cairn plan` does.
pub fn make_plan(
    file: &Path,
    selection: &Selection,
    offline: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<Planned, CairnError> {
    let (source, model) = load(file)?;
    plan_model(&source, model, selection, offline, None, runtime)
}

/// [`make_plan`] for a Clusterfile already loaded. With `lock_as` (apply),
/// every host is locked for this run before it is refreshed; a host that
/// cannot be locked counts as unreachable.
fn plan_model(
    source: &SourceFile,
    model: Arc<Model>,
    selection: &Selection,
    offline: bool,
    lock_as: Option<&LockHolder>,
    runtime: &tokio::runtime::Runtime,
) -> Result<Planned, CairnError> {
    let dir = StateDir::new(&model.base_dir, &model.name);
    let state = Arc::new(dir.load()?);
    let graph = Arc::new(compile(source, &model, &dir, &state, true)?);
    for pattern in &selection.replace {
        let known = (0..graph.len())
            .map(petgraph::graph::NodeIndex::new)
            .any(|n| plan::matches_replace(std::slice::from_ref(pattern), &graph.task(n).id));
        if !known {
            return Err(CairnError::usage(
                format!("--replace {pattern}: no such task"),
                "name a task as `cairn state list` or `cairn plan` prints it (step.init@master0), or its element (step.init)",
            ));
        }
    }
    let excluded = crate::model::selection::excluded_hosts(&model, &selection.limit)
        .map_err(|e| CairnError::usage(e.to_string(), e.help()))?;
    let mut locks = Vec::new();
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
    let fleet = runtime.block_on(Fleet::connect(&model, &hosts, &dir.dir));
    let refresh = if offline {
        Refresh::default()
    } else {
        let (refresh, held) = runtime.block_on(async {
            plan::refresh::refresh(
                model.clone(),
                &graph,
                state.clone(),
                &fleet,
                &hosts,
                lock_as,
            )
            .await
        });
        locks = held;
        for note in &refresh.notes {
            eprintln!("warning: {note}");
        }
        refresh
    };
    let options = DiffOptions {
        replace: selection.replace.clone(),
        excluded_hosts: excluded,
        offline,
    };
    let plan = plan::diff(&model, &graph, &state, &refresh, &options);
    Ok(Planned {
        model,
        graph,
        state,
        refresh: Arc::new(refresh),
        plan,
        dir,
        fleet,
        locks,
    })
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("can start the tokio runtime")
}

fn plan_command(cli: &Cli, args: &PlanArgs, style: &Style) -> Result<Success, CairnError> {
    let rt = runtime();
    let (source, model) = load(&cli.file)?;
    if args.out.is_some() {
        // A saved plan's keys must match the apply's: keep the secret salt from now on.
        ensure_state(&StateDir::new(&model.base_dir, &model.name))?;
    }
    let planned = plan_model(&source, model, &args.selection, args.offline, None, &rt)?;
    let result = show_plan(cli, args, style, &planned);
    planned.finish(&rt);
    result
}

fn show_plan(
    cli: &Cli,
    args: &PlanArgs,
    style: &Style,
    planned: &Planned,
) -> Result<Success, CairnError> {
    let plan = &planned.plan;

    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan.to_json()).expect("plan serializes")
        );
    } else {
        print!("{}", plan.to_text(style));
    }
    if let Some(out) = &args.out {
        let text = serde_json::to_vec_pretty(&plan.to_json()).expect("plan serializes");
        crate::atomic_file::write_atomic(out, &text, true).map_err(|e| {
            CairnError::usage(
                format!("failed to write {}: {e}", out.display()),
                "check the path",
            )
        })?;
        if !cli.json {
            println!(
                "\nSaved the plan to {}. Apply exactly it with: cairn apply {}",
                out.display(),
                out.display()
            );
        }
    }
    if !plan.unreachable.is_empty() {
        return Err(CairnError::usage(
            format!(
                "{} host{} could not be refreshed",
                plan.unreachable.len(),
                plural(plan.unreachable.len())
            ),
            "see the hosts listed above; fix them, leave them out with --limit '!NAME', or plan with --offline",
        ));
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        Success::Changes
    } else {
        Success::Ok
    })
}

/// `cairn drift`: refresh every host (read-only) and say which no longer
/// match. A host has drifted when what is on it differs from what cairn
/// recorded (a hand edit, a missing file, a failing check); it is pending
/// when the Clusterfile asks for something not applied yet. Both count as
/// out of sync. Nothing is locked, written or repaired.
fn drift_command(cli: &Cli, args: &DriftArgs, style: &Style) -> Result<Success, CairnError> {
    let rt = runtime();
    let (source, model) = load(&cli.file)?;
    let selection = Selection {
        limit: args.limit.clone(),
        replace: Vec::new(),
    };
    let planned = plan_model(&source, model, &selection, false, None, &rt)?;
    let plan = &planned.plan;
    let mut hosts = Vec::new();
    for host in planned
        .model
        .hosts
        .iter()
        .filter(|h| !plan.excluded_hosts.contains(&h.name))
    {
        if plan.unreachable.contains_key(&host.name) {
            continue;
        }
        let entry = |c: &plan::Change| {
            serde_json::json!({
                "task": c.id,
                "action": format!("{:?}", c.kind).to_lowercase(),
                "reasons": c.reasons,
            })
        };
        let mine: Vec<&plan::Change> = plan
            .changes
            .iter()
            .filter(|c| c.host == host.name && c.kind != plan::ChangeKind::Noop)
            .collect();
        let drifted: Vec<_> = mine
            .iter()
            .filter(|c| c.drifted)
            .map(|c| entry(c))
            .collect();
        let pending: Vec<_> = mine
            .iter()
            .filter(|c| !c.drifted)
            .map(|c| entry(c))
            .collect();
        hosts.push(serde_json::json!({
            "host": host.name,
            "address": host.address,
            "in_sync": mine.is_empty(),
            "drifted": drifted,
            "pending": pending,
        }));
    }
    let out_of_sync = hosts.iter().filter(|h| h["in_sync"] == false).count();
    let unchecked: Vec<_> = plan
        .unreachable
        .iter()
        .map(|(host, error)| serde_json::json!({"host": host, "error": error}))
        .collect();
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cluster": planned.model.name,
                "in_sync": out_of_sync == 0 && unchecked.is_empty(),
                "hosts": hosts,
                "unchecked": unchecked,
            }))
            .expect("serializes")
        );
    } else {
        let checked = hosts.len();
        if out_of_sync == 0 {
            println!(
                "{} All {checked} checked host{} match the Clusterfile.",
                style.green("✓"),
                plural(checked)
            );
        } else {
            println!(
                "{} {out_of_sync} of {checked} checked host{} no longer match the Clusterfile:",
                style.yellow("!"),
                plural(checked)
            );
        }
        for h in hosts.iter().filter(|h| h["in_sync"] == false) {
            println!("\n  {}", style.bold(h["host"].as_str().unwrap_or_default()));
            for (label, list) in [("drifted", &h["drifted"]), ("pending", &h["pending"])] {
                for c in list.as_array().into_iter().flatten() {
                    let reasons: Vec<&str> = c["reasons"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str())
                        .collect();
                    println!(
                        "    {label:<8} {}: {}",
                        c["task"].as_str().unwrap_or_default(),
                        reasons.join("; ")
                    );
                }
            }
        }
        if !unchecked.is_empty() {
            println!(
                "\n{} {} host{} could not be checked:",
                style.red("✗"),
                unchecked.len(),
                plural(unchecked.len())
            );
            for u in &unchecked {
                println!("  {}", u["error"].as_str().unwrap_or_default());
            }
        }
        if out_of_sync > 0 {
            println!("\nRun `cairn plan` to see the changes, `cairn apply` to repair them.");
        }
    }
    let result = match (out_of_sync > 0, !unchecked.is_empty()) {
        (false, false) => Success::Ok,
        (true, false) => Success::Changes,
        (drift, true) => Success::Unchecked { drift },
    };
    planned.finish(&rt);
    Ok(result)
}

/// Compares a saved plan with a fresh one: same tasks, same actions, same keys, same reasons.
fn stale_differences(saved: &PlanJson, fresh: &PlanJson) -> Vec<String> {
    let mut out = Vec::new();
    if saved.cluster != fresh.cluster {
        out.push(format!(
            "cluster `{}` is now `{}`",
            saved.cluster, fresh.cluster
        ));
        return out;
    }
    let index = |p: &PlanJson| {
        p.changes
            .iter()
            .map(|c| (c.task.clone(), c.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (a, b) = (index(saved), index(fresh));
    for (task, old) in &a {
        match b.get(task) {
            None => out.push(format!("{task} is no longer in the plan")),
            Some(new) if new.action != old.action => out
                .push(format!("{task}: was {:?}, now {:?}", old.action, new.action).to_lowercase()),
            Some(new) if new.key != old.key || new.reasons != old.reasons => {
                out.push(format!("{task}: its inputs or its host changed"))
            }
            Some(_) => {}
        }
    }
    for task in b.keys().filter(|t| !a.contains_key(*t)) {
        out.push(format!("{task} is new"));
    }
    out
}

fn apply_command(cli: &Cli, args: &ApplyArgs, style: &Style) -> Result<Success, CairnError> {
    let rt = runtime();
    // The lock first: the state read for planning must be the one this apply builds on.
    let (source, model) = load(&cli.file)?;
    let dir = StateDir::new(&model.base_dir, &model.name);
    dir.create()?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let _lock = StateLock::acquire(&dir.lock_file(), &model.name, &command)?;
    ensure_state(&dir)?;

    let holder = LockHolder::current(&command);
    let planned = plan_model(&source, model, &args.selection, false, Some(&holder), &rt)?;
    let result = apply_planned(cli, args, style, &rt, &planned, &holder);
    planned.finish(&rt);
    result
}

/// The apply after planning: check a saved plan, show, ask, execute, record.
fn apply_planned(
    cli: &Cli,
    args: &ApplyArgs,
    style: &Style,
    rt: &tokio::runtime::Runtime,
    planned: &Planned,
    holder: &LockHolder,
) -> Result<Success, CairnError> {
    let dir = &planned.dir;
    let plan = &planned.plan;
    if let Some(saved_path) = &args.plan {
        let text = std::fs::read(saved_path).map_err(|e| {
            CairnError::usage(
                format!(
                    "failed to read the saved plan {}: {e}",
                    saved_path.display()
                ),
                "make one with `cairn plan -o FILE`",
            )
        })?;
        let saved: PlanJson = serde_json::from_slice(&text).map_err(|e| {
            CairnError::usage(
                format!("{} is not a saved cairn plan: {e}", saved_path.display()),
                "make one with `cairn plan -o FILE`",
            )
        })?;
        let differences = stale_differences(&saved, &plan.to_json());
        if !differences.is_empty() {
            let shown: Vec<String> = differences.iter().take(5).cloned().collect();
            let more = if differences.len() > 5 {
                format!(" (+{} more)", differences.len() - 5)
            } else {
                String::new()
            };
            return Err(CairnError::StalePlan {
                path: saved_path.display().to_string(),
                differences: format!("{}{more}", shown.join("; ")),
            });
        }
    }
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"event": "plan", "plan": plan.to_json()})
        );
    } else {
        print!("{}", plan.to_text(style));
    }
    // A host that cannot be reached (or locked) fails alone: the others converge.
    let unreachable: Vec<String> = plan
        .unreachable
        .iter()
        .map(|(host, why)| {
            if why.starts_with(&format!("host {host}")) {
                why.clone()
            } else {
                format!("host {host}: {why}")
            }
        })
        .collect();
    let adopt = plan.changes.iter().any(|c| c.adopt);
    if !plan.has_changes() && !adopt {
        return if unreachable.is_empty() {
            Ok(Success::Ok)
        } else {
            Err(CairnError::ApplyFailed {
                count: 0,
                unreachable: unreachable.len(),
            })
        };
    }
    if plan.has_changes() && !args.auto_approve && args.plan.is_none() {
        confirm()?;
    }
    let journal = Journal::open(&dir.journal_file())?;
    let mode = if cli.json {
        Mode::Json
    } else if std::io::stdout().is_terminal() {
        Mode::Progress
    } else {
        Mode::Plain
    };
    let reporter = Reporter::start(mode, *style);
    let log_dir = dir
        .runs_dir()
        .join(chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string());
    let mut summary = rt.block_on(exec::execute(
        exec::Run {
            model: planned.model.clone(),
            graph: planned.graph.clone(),
            state: planned.state.clone(),
            plan,
            refresh: planned.refresh.clone(),
            journal: journal.appender(),
            events: reporter.sender(),
            fleet: planned.fleet.clone(),
            operator: holder.operator(),
        },
        ExecOptions {
            parallelism: args.parallelism,
            per_host: exec::DEFAULT_PER_HOST,
            log_dir,
        },
    ));
    summary.unreachable = unreachable;
    let _ = reporter.sender().send(report::Event::RunFinished {
        summary: summary.clone(),
    });
    reporter.finish();
    drop(journal);
    let mut state = planned.dir.load()?;
    state.serial += 1;
    planned.dir.compact(&mut state)?;
    prune_runs(&planned.dir, 20);
    if summary.interrupted {
        Err(CairnError::Interrupted {
            not_finished: summary.not_finished,
        })
    } else if summary.failed.is_empty() && summary.unreachable.is_empty() {
        Ok(Success::Ok)
    } else {
        Err(CairnError::ApplyFailed {
            count: summary.failed.len(),
            unreachable: summary.unreachable.len(),
        })
    }
}

/// Keeps the newest `keep` run logs.
fn prune_runs(dir: &StateDir, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir.runs_dir()) else {
        return;
    };
    let mut runs: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    runs.sort();
    let excess = runs.len().saturating_sub(keep);
    for old in runs.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(old);
    }
}

fn confirm() -> Result<(), CairnError> {
    if !std::io::stdin().is_terminal() {
        return Err(CairnError::usage(
            "no terminal to ask for confirmation; nothing was changed",
            "pass --auto-approve to apply without asking, or apply a reviewed plan: cairn plan -o FILE && cairn apply FILE",
        ));
    }
    print!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|_| CairnError::Aborted)?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(CairnError::Aborted)
    }
}

fn state_command(cli: &Cli, sub: &StateCommand, style: &Style) -> Result<Success, CairnError> {
    let (_, model) = load(&cli.file)?;
    let dir = StateDir::new(&model.base_dir, &model.name);
    let state = dir.load()?;
    let scrubber = Scrubber::new(model.secret_values());
    match sub {
        StateCommand::List => {
            if cli.json {
                let list: Vec<_> = state.tasks.iter().map(|(id, r)| serde_json::json!({"task": id, "key": r.key, "host": r.host().name, "finished_at": r.finished_at})).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).expect("serializes")
                );
                return Ok(Success::Ok);
            }
            if state.tasks.is_empty() {
                println!(
                    "No tasks recorded for cluster `{}` yet (state: {}).",
                    model.name,
                    dir.dir.display()
                );
                return Ok(Success::Ok);
            }
            let width = state
                .tasks
                .keys()
                .map(|id| id.as_str().len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{}",
                style.bold(&format!("{:<width$}  {:<12}  FINISHED", "TASK", "KEY"))
            );
            for (id, r) in &state.tasks {
                println!("{id:<width$}  {:<12}  {}", r.key.short(), r.finished_at);
            }
            println!(
                "\n{} task{} recorded (serial {}).",
                state.tasks.len(),
                plural(state.tasks.len()),
                state.serial
            );
            Ok(Success::Ok)
        }
        StateCommand::Show { task } => {
            let record = crate::ids::TaskId::parse(task)
                .ok()
                .and_then(|id| state.tasks.get(&id))
                .ok_or_else(|| {
                    CairnError::usage(
                        format!("no task `{task}` in the state of cluster `{}`", model.name),
                        "list the recorded tasks with `cairn state list`",
                    )
                })?;
            let text =
                serde_json::to_string_pretty(&serde_json::json!({"task": task, "record": record}))
                    .expect("serializes");
            println!("{}", scrubber.scrub(&text));
            Ok(Success::Ok)
        }
    }
}

/// Writes an empty state if there is none, so the salt that keys secrets is
/// the same from this run on (a saved plan and its apply must agree).
fn ensure_state(dir: &StateDir) -> Result<(), CairnError> {
    if !dir.state_file().exists() {
        dir.create()?;
        let mut fresh = dir.load()?;
        dir.compact(&mut fresh)?;
    }
    Ok(())
}
