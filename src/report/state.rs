//! The recorded state as people and programs read it (`cairn state list`,
//! `cairn state show`).

use std::fmt::Write as _;

use serde::Serialize;

use super::Style;
use super::lines::plural;
use crate::ids::TaskId;
use crate::model::Scrubber;
use crate::state::{State, TaskRecord};

/// One line of `state list --json`. Fields in alphabetical order: the keys
/// have always come out sorted; a new field goes in its sorted place.
#[derive(Debug, Serialize)]
struct ListedTask<'a> {
    finished_at: &'a str,
    host: &'a str,
    key: &'a crate::ids::TaskKey,
    task: &'a TaskId,
}

/// `state list --json`: every recorded task, its key, host and finish time.
pub(super) fn state_list_json(state: &State) -> String {
    let list: Vec<ListedTask<'_>> = state
        .tasks
        .iter()
        .map(|(id, r)| ListedTask {
            finished_at: &r.finished_at,
            host: &r.host().name,
            key: &r.key,
            task: id,
        })
        .collect();
    serde_json::to_string_pretty(&list).expect("serializes")
}

/// `state list`: a table of recorded tasks, or why there is none.
pub(super) fn state_list_text(state: &State, state_dir: &std::path::Path, style: Style) -> String {
    if state.tasks.is_empty() {
        return format!(
            "No tasks recorded for cluster `{}` yet (state: {}).\n",
            state.cluster,
            state_dir.display()
        );
    }
    let width = state
        .tasks
        .keys()
        .map(|id| id.as_str().len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{}\n",
        style.bold(&format!("{:<width$}  {:<12}  FINISHED", "TASK", "KEY"))
    );
    for (id, r) in &state.tasks {
        let _ = writeln!(
            out,
            "{id:<width$}  {:<12}  {}",
            r.key.short(),
            r.finished_at
        );
    }
    let _ = write!(
        out,
        "\n{} task{} recorded (serial {}).\n",
        state.tasks.len(),
        plural(state.tasks.len()),
        state.serial
    );
    out
}

/// `state show TASK`: the record as JSON, secrets scrubbed. Keys come out
/// sorted at every level, as they always have.
pub(super) fn state_show(task: &TaskId, record: &TaskRecord, scrubber: &Scrubber) -> String {
    #[derive(Serialize)]
    struct Shown<'a> {
        task: &'a TaskId,
        record: &'a TaskRecord,
    }
    let value = serde_json::to_value(Shown { task, record }).expect("serializes");
    let text = serde_json::to_string_pretty(&value).expect("serializes");
    format!("{}\n", scrubber.scrub(&text))
}

/// What `cairn state rm` forgot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forgotten {
    Task(TaskId),
    Host {
        name: String,
        tasks: usize,
        /// Still listed: the next apply treats it as a new host.
        in_clusterfile: bool,
    },
}

/// `state rm`: one line per target, and what it means for the next apply.
pub(super) fn state_removed_text(forgotten: &[Forgotten]) -> String {
    let mut out = String::new();
    for f in forgotten {
        match f {
            Forgotten::Task(id) => {
                let _ = writeln!(
                    out,
                    "Forgot task {id}; nothing was changed on its host. The next apply runs it again, or records it without running where the host's receipt shows it done."
                );
            }
            Forgotten::Host {
                name,
                tasks,
                in_clusterfile,
            } => {
                let _ = writeln!(
                    out,
                    "Forgot host {name} and its {tasks} task{}; nothing was changed on it.{}",
                    plural(*tasks),
                    if *in_clusterfile {
                        " It is still in the Clusterfile: the next apply treats it as a new host (what its receipts show done is recorded without running)."
                    } else {
                        ""
                    }
                );
            }
        }
    }
    out
}
