//! `cairn state list` / `show TASK` / `rm HOST|TASK...`: what is recorded,
//! and forgetting some of it without touching any host (the way out for a
//! host that left and can never be reached again).

use std::path::Path;

use crate::cli::{LockArgs, StateCommand};
use crate::error::{CairnError, Success};
use crate::ids::TaskId;
use crate::pipeline::Loaded;
use crate::report::{Forgotten, Output};
use crate::state::JournalEntry;
use crate::words::closest;

pub(super) fn run(file: &Path, sub: &StateCommand, out: Output) -> Result<Success, CairnError> {
    if let StateCommand::Rm { targets, lock } = sub {
        return remove(&Loaded::read(file)?, targets, lock, out);
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
        StateCommand::Rm { .. } => unreachable!("handled above"),
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
    loaded.dir.compact(&mut state)?;
    out.state_removed(&forgotten);
    Ok(Success::Ok)
}
