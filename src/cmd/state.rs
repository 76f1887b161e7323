//! `cairn state list` / `show TASK` / `rm HOST|TASK...`: what is recorded,
//! and forgetting some of it without touching any host (the way out for a
//! host that left and can never be reached again). `migrate --to postgres`
//! and `pull` move a state between the local folder and PostgreSQL.
//!
//! A migration holds the local lock (no local apply runs meanwhile), reads
//! the local state whole (a damaged journal refuses it), copies it in one
//! transaction under the backend's cluster lock, reads it back and compares,
//! and only then leaves the marker that makes the local state refuse use.
//! A pull writes the backend's state as the local `state.json` and takes a
//! marker away, refusing to overwrite a local state that was never migrated
//! unless told to.

use std::path::Path;

use crate::cli::{LockArgs, StateCommand};
use crate::error::{CairnError, Success};
use crate::ids::TaskId;
use crate::pipeline::Loaded;
use crate::report::{Forgotten, Output, StateMoved};
use crate::state::{JournalEntry, LockHolder, StateLock, Store};
use crate::words::closest;

pub(super) fn run(file: &Path, sub: &StateCommand, out: Output) -> Result<Success, CairnError> {
    match sub {
        StateCommand::Rm { targets, lock } => {
            return remove(&Loaded::read(file)?, targets, lock, out);
        }
        StateCommand::Migrate { lock, .. } => return migrate(&Loaded::read(file)?, lock, out),
        StateCommand::Pull { force } => return pull(&Loaded::read(file)?, *force, out),
        StateCommand::List | StateCommand::Show { .. } => {}
    }
    let super::recorded::Recorded {
        state,
        dir,
        scrubber,
        ..
    } = super::recorded::read(file, out, "the state read alone")?;
    match sub {
        StateCommand::List => out.state_list(&state, &dir),
        StateCommand::Show { task } => {
            let found = TaskId::parse(task)
                .ok()
                .and_then(|id| state.tasks.get_key_value(&id));
            let Some((id, record)) = found else {
                let recorded: Vec<&str> = state.tasks.keys().map(TaskId::as_str).collect();
                let element_of = state
                    .tasks
                    .keys()
                    .filter(|id| id.element_part() == task)
                    .map(TaskId::as_str)
                    .collect::<Vec<_>>();
                let help = if !element_of.is_empty() {
                    format!("name one host's task: {}", element_of.join(", "))
                } else if let Some(close) = closest(task, recorded.iter()) {
                    format!("did you mean `{close}`? `cairn state list` lists the recorded tasks")
                } else {
                    "list the recorded tasks with `cairn state list`".to_string()
                };
                return Err(CairnError::usage(
                    format!(
                        "no task `{task}` in the state of cluster `{}`",
                        state.cluster
                    ),
                    help,
                ));
            };
            out.state_show(id, record, &scrubber);
        }
        StateCommand::Rm { .. } | StateCommand::Migrate { .. } | StateCommand::Pull { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(Success::Ok)
}

/// `state rm`: under the cluster lock, every target is resolved first (an
/// unknown one refuses the whole command, nothing forgotten), then each is
/// journaled and the state compacted.
fn remove(
    loaded: &Loaded,
    targets: &[String],
    lock: &LockArgs,
    out: Output,
) -> Result<Success, CairnError> {
    let _lock = loaded.lock_cluster(&super::apply::lock_policy(lock, out))?;
    let (mut state, _) = loaded.load_state()?;
    let mut entries = Vec::new();
    let mut forgotten = Vec::new();
    for target in targets {
        if let Ok(id) = TaskId::parse(target)
            && state.tasks.contains_key(&id)
        {
            forgotten.push(Forgotten::Task(id.clone()));
            entries.push(JournalEntry::Forget { id });
            continue;
        }
        let host = state.known_hosts().into_iter().find(|name| {
            name == target
                || state
                    .recorded_address(name)
                    .is_some_and(|(address, _)| &address == target)
        });
        let Some(name) = host else {
            let known: Vec<String> = state.known_hosts().into_iter().collect();
            return Err(CairnError::usage(
                format!(
                    "`{target}` is neither a host nor a task in the state of cluster `{}`",
                    loaded.model.name
                ),
                if known.is_empty() {
                    "the state knows no host".to_string()
                } else {
                    format!(
                        "hosts the state knows: {}; tasks: `cairn state list`",
                        known.join(", ")
                    )
                },
            ));
        };
        let tasks = state
            .tasks
            .values()
            .filter(|r| r.host().name == name)
            .count();
        forgotten.push(Forgotten::Host {
            name: name.clone(),
            tasks,
            in_clusterfile: loaded.model.hosts.iter().any(|h| h.name == name),
        });
        entries.push(JournalEntry::ForgetHost { name });
    }
    for entry in entries {
        state.apply(entry);
    }
    state.serial = state.serial.saturating_add(1);
    loaded.store.compact(&mut state)?;
    out.state_removed(&forgotten);
    Ok(Success::Ok)
}

/// The usage error of a move that needs the PostgreSQL backend configured.
fn needs_backend(what: &str) -> CairnError {
    CairnError::usage(
        format!(
            "`cairn state {what}` needs the PostgreSQL backend, and this Clusterfile keeps its state locally"
        ),
        "add `[state] backend = \"postgres\"` with `url = { secret = \"env:NAME\" }` to the Clusterfile, or pass --state-url (or set CAIRN_STATE_URL)",
    )
}

/// `state migrate --to postgres`.
fn migrate(loaded: &Loaded, lock: &LockArgs, out: Output) -> Result<Success, CairnError> {
    let Store::Postgres(backend) = &loaded.store else {
        return Err(needs_backend("migrate --to postgres"));
    };
    let local = &loaded.dir;
    local.check_not_migrated()?;
    if !local.state_file().exists() && !local.journal_file().exists() {
        return Err(CairnError::usage(
            format!(
                "there is no local state of cluster `{}` to migrate ({} holds none)",
                loaded.model.name,
                local.dir.display()
            ),
            "run cairn from the folder of the Clusterfile whose state it is; a new cluster needs no migration",
        ));
    }
    let policy = super::apply::lock_policy(lock, out);
    let _local_lock = StateLock::acquire(&local.lock_file(), &loaded.model.name, &policy)?;
    let state = local.load()?;
    backend.import(&state)?;
    let to = format!("PostgreSQL, schema `{}`", backend.schema());
    let marker = local.migrated_marker();
    let note = format!(
        "{to}\nmigrated at {} by {}\n",
        crate::state::now_rfc3339(),
        LockHolder::current("cairn state migrate").operator()
    );
    crate::atomic_file::write_atomic(&marker, note.as_bytes(), true).map_err(|source| {
        crate::state::StateError::Io {
            action: "write",
            path: marker.clone(),
            source,
        }
    })?;
    out.state_moved(&StateMoved::Migrated {
        cluster: loaded.model.name.clone(),
        to,
        tasks: state.tasks.len(),
        marker: marker.display().to_string(),
    });
    Ok(Success::Ok)
}

/// `state pull`.
fn pull(loaded: &Loaded, force: bool, out: Output) -> Result<Success, CairnError> {
    let Store::Postgres(backend) = &loaded.store else {
        return Err(needs_backend("pull"));
    };
    let mut state = backend.load()?;
    let local = &loaded.dir;
    let marker = local.migrated_marker();
    if local.state_file().exists() && !marker.exists() && !force {
        return Err(CairnError::usage(
            format!(
                "{} already holds a local state of cluster `{}`, which was never migrated",
                local.dir.display(),
                loaded.model.name
            ),
            "pass --force to overwrite it, or run from another folder (a copy of the Clusterfile) to keep it",
        ));
    }
    local.create()?;
    let policy = crate::state::LockPolicy::immediate(LockHolder::current("cairn state pull"));
    let _local_lock = StateLock::acquire(&local.lock_file(), &loaded.model.name, &policy)?;
    local.compact(&mut state)?;
    match std::fs::remove_file(&marker) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(crate::state::StateError::Io {
                action: "remove",
                path: marker,
                source,
            }
            .into());
        }
    }
    out.state_moved(&StateMoved::Pulled {
        cluster: loaded.model.name.clone(),
        from: loaded.store.place(),
        tasks: state.tasks.len(),
        path: local.state_file().display().to_string(),
    });
    Ok(Success::Ok)
}
