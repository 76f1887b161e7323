//! `cairn show`: a saved plan as `cairn plan` printed it (what it was made
//! from above it), or the recorded state as a summary per host: how it is
//! reached, each task with when it finished, and the values it captured
//! (masked where they hold a secret).
//!
//! Also the one place hints get a path quoted for the shell, so a command
//! cairn suggests runs as printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::Style;
use super::captured::{CapturedValue, captured_values};
use super::lines::plural;
use super::plan::plan_text;
use crate::model::{Model, Scrubber};
use crate::plan::saved::SavedPlan;
use crate::state::State;

/// `path` as one shell word: as is when it is plain, else single-quoted.
pub fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,%".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// `cairn show PLAN`: where the plan came from, then the plan's text.
pub(super) fn saved_plan_text(
    path: &Path,
    saved: &SavedPlan,
    style: Style,
    expand: bool,
) -> String {
    let mut out = format!(
        "Saved plan {} for cluster `{}`, made from {}",
        path.display(),
        saved.plan.cluster,
        saved.clusterfile.path.display()
    );
    let mut with = Vec::new();
    for (name, var) in &saved.vars.0 {
        with.push(format!("{name} from {}", var.origin));
    }
    if !saved.limit.is_empty() {
        with.push(format!("--limit {}", saved.limit.join(",")));
    }
    for replace in &saved.replace {
        with.push(format!("--replace {replace}"));
    }
    if !with.is_empty() {
        let _ = write!(out, " with {}", with.join(", "));
    }
    out.push_str(if saved.plan.offline {
        " (offline).\n\n"
    } else {
        ".\n\n"
    });
    let plan = saved.plan.to_plan();
    out.push_str(&plan_text(&plan, style, expand));
    if plan.has_changes() {
        let _ = writeln!(
            out,
            "\nTo apply exactly this plan: cairn apply {}",
            shell_word(path)
        );
    }
    out
}

/// One host of `cairn show --json`.
#[derive(Serialize)]
struct HostShown<'a> {
    name: &'a str,
    address: String,
    transport: String,
    /// Still listed in the Clusterfile (else the next apply undoes its tasks).
    /// `null` when the Clusterfile could not be read here (the state alone was).
    in_clusterfile: Option<bool>,
    tasks: Vec<TaskShown<'a>>,
}

#[derive(Serialize)]
struct TaskShown<'a> {
    task: &'a str,
    status: &'static str,
    finished_at: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    captured: Option<CaptureShown<'a>>,
}

#[derive(Serialize)]
struct CaptureShown<'a> {
    name: &'a str,
    value: &'a str,
    masked: bool,
}

/// `cairn show --json`.
#[derive(Serialize)]
struct StateShown<'a> {
    cluster: &'a str,
    serial: u64,
    hosts: Vec<HostShown<'a>>,
}

/// The state by host, in the order cairn knows them, each with its tasks
/// in the order they finished.
fn by_host<'a>(
    state: &'a State,
    model: Option<&Model>,
    captured: &'a BTreeMap<String, BTreeMap<String, CapturedValue>>,
) -> StateShown<'a> {
    let mut hosts: BTreeMap<&str, HostShown<'a>> = BTreeMap::new();
    let mut records: Vec<_> = state.tasks.iter().collect();
    records.sort_by_key(|(_, r)| r.seq);
    for (id, record) in records {
        let identity = record.host();
        let name = identity.name.as_str();
        let host = hosts.entry(name).or_insert_with(|| {
            let (address, port, transport) = match state.hosts.get(name) {
                Some(h) => (h.address.clone(), h.port, h.transport),
                None => (identity.address.clone(), identity.port, identity.transport),
            };
            HostShown {
                name,
                address: if transport == crate::model::TransportKind::Local {
                    address
                } else {
                    format!("{address}:{port}")
                },
                transport: format!("{transport:?}").to_lowercase(),
                in_clusterfile: model.map(|m| m.hosts.iter().any(|h| h.name == name)),
                tasks: Vec::new(),
            }
        });
        let capture = match &record.inputs.action {
            crate::hash::ActionSpec::Step {
                capture: Some(c), ..
            } => captured
                .get(c)
                .and_then(|hosts| hosts.get(name))
                .map(|v| CaptureShown {
                    name: c,
                    value: &v.value,
                    masked: v.masked,
                }),
            _ => None,
        };
        host.tasks.push(TaskShown {
            task: id.as_str(),
            status: "done",
            finished_at: &record.finished_at,
            key: record.key.short(),
            captured: capture,
        });
    }
    StateShown {
        cluster: &state.cluster,
        serial: state.serial,
        hosts: hosts.into_values().collect(),
    }
}

/// `cairn show`: the state as text, per host.
pub(super) fn state_summary_text(
    state: &State,
    model: Option<&Model>,
    scrubber: &Scrubber,
    state_dir: &Path,
    apply: &str,
    style: Style,
) -> String {
    if state.tasks.is_empty() {
        return format!(
            "Nothing recorded for cluster `{}` yet (state: {}): run `{apply}`.\n",
            state.cluster,
            state_dir.display()
        );
    }
    let captured = captured_values(state, scrubber);
    let shown = by_host(state, model, &captured);
    let mut out = format!(
        "Cluster `{}`: {} host{}, {} task{} recorded (serial {}; state: {}).\n",
        shown.cluster,
        shown.hosts.len(),
        plural(shown.hosts.len()),
        state.tasks.len(),
        plural(state.tasks.len()),
        shown.serial,
        state_dir.display()
    );
    for host in &shown.hosts {
        let _ = write!(
            out,
            "\n{}  {} ({})",
            style.bold(host.name),
            host.address,
            host.transport
        );
        if host.in_clusterfile == Some(false) {
            out.push_str("  left the Clusterfile: the next apply undoes its tasks");
        }
        out.push('\n');
        let width = host
            .tasks
            .iter()
            .map(|t| t.task.split_once('@').map_or(t.task, |(e, _)| e).len())
            .max()
            .unwrap_or(0);
        for task in &host.tasks {
            let element = task.task.split_once('@').map_or(task.task, |(e, _)| e);
            let _ = write!(
                out,
                "  {element:<width$}  {}  {}",
                style.green(task.status),
                style.dim(task.finished_at)
            );
            if let Some(c) = &task.captured {
                let _ = write!(out, "  {} = {}", c.name, c.value);
            }
            out.push('\n');
        }
    }
    out
}

/// `cairn show --json`: the same, as one document.
pub(super) fn state_summary_json(
    state: &State,
    model: Option<&Model>,
    scrubber: &Scrubber,
) -> String {
    let captured = captured_values(state, scrubber);
    serde_json::to_string_pretty(&super::stamp::stamped(&by_host(state, model, &captured)))
        .expect("serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_only_when_the_shell_needs_it() {
        assert_eq!(shell_word(Path::new("plans/x.plan")), "plans/x.plan");
        assert_eq!(shell_word(Path::new("my plan")), "'my plan'");
        assert_eq!(shell_word(Path::new("it's")), "'it'\\''s'");
    }
}
