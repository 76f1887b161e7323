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

/// `state show TASK`: the record as people read it, secrets scrubbed: the
/// key, when, the host, what the task does, the variables and upstream keys
/// it was made from, and what it left (files, or the captured value).
pub(super) fn state_show_text(
    task: &TaskId,
    record: &TaskRecord,
    scrubber: &Scrubber,
    style: Style,
) -> String {
    use crate::hash::ActionSpec;
    let mut out = format!("{}\n", style.bold(task.as_str()));
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "  {name:<9} {}", scrubber.scrub(value));
    };
    let host = record.host();
    field("key", record.key.as_str());
    field("finished", &record.finished_at);
    field(
        "host",
        &format!(
            "{} ({}@{}:{}, {})",
            host.name,
            host.user,
            host.address,
            host.port,
            format!("{:?}", host.transport).to_lowercase()
        ),
    );
    match &record.inputs.action {
        ActionSpec::Bundle {
            name, kind, dest, ..
        } => field(
            "bundle",
            &format!("{name} ({}) -> {dest}", format!("{kind:?}").to_lowercase()),
        ),
        ActionSpec::File {
            name, dest, mode, ..
        } => field("file", &format!("{name} -> {dest} (mode {mode:04o})")),
        ActionSpec::Step {
            run,
            cwd,
            check,
            undo,
            once,
            ..
        } => {
            field("run", run);
            for (name, value) in [("cwd", cwd), ("check", check), ("undo", undo)] {
                if let Some(value) = value {
                    field(name, value);
                }
            }
            if *once {
                field("once", "true");
            }
        }
    }
    if !record.inputs.vars.is_empty() {
        let _ = writeln!(out, "  vars");
        for (name, value) in &record.inputs.vars {
            let shown = if value.starts_with("secret:") {
                "(secret, hashed)".to_string()
            } else {
                scrubber.scrub(value)
            };
            let _ = writeln!(out, "    {name} = {shown}");
        }
    }
    if !record.inputs.deps.is_empty() {
        let _ = writeln!(out, "  after");
        for (id, key) in &record.inputs.deps {
            let _ = writeln!(out, "    {id}  {}", style.dim(key.short()));
        }
    }
    left_text(record, scrubber, style, &mut out);
    out
}

/// What a recorded task left: the files it shipped, or the value it captured.
fn left_text(record: &TaskRecord, scrubber: &Scrubber, style: Style, out: &mut String) {
    use crate::hash::ActionSpec;
    use crate::state::RecordDetail;
    match &record.detail {
        RecordDetail::Bundle { dest, shipped } => {
            let _ = writeln!(
                out,
                "  shipped   {} file{} to {dest}",
                shipped.len(),
                plural(shipped.len())
            );
            for (path, file) in shipped.iter().take(20) {
                let _ = writeln!(
                    out,
                    "    {path}  {:04o}  {} bytes  {}",
                    file.mode & 0o7777,
                    file.size,
                    style.dim(&file.hash[..file.hash.len().min(12)])
                );
            }
            if shipped.len() > 20 {
                let _ = writeln!(out, "    +{} more (--json lists all)", shipped.len() - 20);
            }
        }
        RecordDetail::File { dest, shipped } => {
            let _ = writeln!(
                out,
                "  shipped   {dest}  {:04o}  {} bytes  {}",
                shipped.mode & 0o7777,
                shipped.size,
                style.dim(&shipped.hash[..shipped.hash.len().min(12)])
            );
        }
        RecordDetail::Step {
            captured,
            captured_masked,
            ..
        } => {
            if let (Some(value), ActionSpec::Step { capture, .. }) =
                (captured, &record.inputs.action)
            {
                let name = capture.as_deref().unwrap_or("value");
                let masked = if *captured_masked {
                    style.dim(" (masked: it held a secret)")
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "  captured  {name} = {}{masked}",
                    scrubber.scrub(value)
                );
            }
        }
    }
}

/// `state show TASK --json`: the record as JSON, secrets scrubbed. Keys come out
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

/// `cairn state migrate` / `pull`: a state moved between backends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "moved", rename_all = "snake_case")]
pub enum StateMoved {
    /// The local state copied to `to`, checked, and the local one marked.
    Migrated {
        cluster: String,
        to: String,
        tasks: usize,
        marker: String,
    },
    /// The backend's state written to the local folder `path`.
    Pulled {
        cluster: String,
        from: String,
        tasks: usize,
        path: String,
    },
}

pub(super) fn state_moved_text(moved: &StateMoved) -> String {
    match moved {
        StateMoved::Migrated {
            cluster,
            to,
            tasks,
            marker,
        } => format!(
            "Migrated the state of cluster `{cluster}` ({tasks} task{}) to {to}, and read it back: it matches.\nThe local state is kept but marked as moved ({marker}): cairn refuses to use it. Set `[state] backend = \"postgres\"` in the Clusterfile (or pass --state-url) from now on.\n",
            plural(*tasks)
        ),
        StateMoved::Pulled {
            cluster,
            from,
            tasks,
            path,
        } => format!(
            "Wrote the state of cluster `{cluster}` ({tasks} task{}) from {from} to {path}.\nIt is a copy: the backend still holds the state, and applies with `[state] backend = \"postgres\"` keep using it there.\n",
            plural(*tasks)
        ),
    }
}
