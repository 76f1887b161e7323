//! Reasons, in words: why a task's key changed (`hash::explain`, plus a
//! bundle's content file by file from the stored manifests, and templates
//! named as rendered differently), and what refresh
//! found different on the host from what was recorded.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Change, Observation, Plan};
use crate::graph::{Task, TaskGraph, Work};
use crate::hash::{self, ActionSpec, KeyInputs};
use crate::model::{ElementRef, Model, VarOrigin};
use crate::state::{RecordDetail, State, TaskRecord};
use crate::transport::Observed;

/// What refresh found different from the record.
pub(super) fn drift_reasons(
    observation: Option<&Observation>,
    record: Option<&TaskRecord>,
) -> Vec<String> {
    let recorded_hash = |rel: &str| -> Option<&str> {
        match &record?.detail {
            RecordDetail::Bundle { shipped, .. } => shipped.get(rel).map(|f| f.hash.as_str()),
            RecordDetail::File { shipped, .. } => Some(shipped.hash.as_str()),
            RecordDetail::Step { .. } => None,
        }
    };
    match observation {
        Some(Observation::Check {
            passed: false,
            code,
        }) => vec![match code {
            Some(c) => format!("check failed on the host (exit {c})"),
            None => "check did not pass on the host".into(),
        }],
        Some(Observation::Files(found)) => {
            let mut modified = Vec::new();
            let mut missing = Vec::new();
            for (rel, o) in found {
                let name = match (rel.is_empty(), record.map(|r| &r.detail)) {
                    (true, Some(RecordDetail::File { dest, .. })) => dest.clone(),
                    (true, _) => "the file".to_string(),
                    (false, _) => rel.clone(),
                };
                match o {
                    Observed::Missing => missing.push(name),
                    Observed::Hashed(h) if Some(h.as_str()) != recorded_hash(rel) => {
                        modified.push(name);
                    }
                    Observed::Hashed(_) | Observed::Unchanged => {}
                }
            }
            let mut out = Vec::new();
            if !modified.is_empty() {
                out.push(format!("changed on the host: {}", short_list(&modified)));
            }
            if !missing.is_empty() {
                out.push(format!("missing on the host: {}", short_list(&missing)));
            }
            out
        }
        _ => Vec::new(),
    }
}

fn short_list(items: &[String]) -> String {
    if items.len() <= 3 {
        items.join(", ")
    } else {
        format!("{}, +{} more", items[..3].join(", "), items.len() - 3)
    }
}

/// Reasons for a key change, with bundle content explained file by file
/// and a `[[files]]` template's new content as rendered differently.
pub(super) fn explain(
    model: &Model,
    graph: &TaskGraph,
    state: &State,
    record: &TaskRecord,
    new: &KeyInputs,
    task: &Task,
) -> Vec<String> {
    let mut reasons = hash::explain(&record.inputs, new);
    if let Work::File { file, .. } = &task.work
        && model.files[*file].template
        && let Some(content) = reasons.iter_mut().find(|r| *r == hash::CONTENT_CHANGED)
    {
        *content = "template rendered differently".into();
    }
    if let (
        ActionSpec::Bundle {
            name,
            base_root: old_root,
            rendered: old_rendered,
            ..
        },
        ActionSpec::Bundle {
            base_root: new_root,
            rendered: new_rendered,
            ..
        },
    ) = (&record.inputs.action, &new.action)
    {
        let mut parts = Vec::new();
        if old_root != new_root {
            let ElementRef::Bundle(bundle_index) = task.element else {
                unreachable!("bundle action on a bundle element")
            };
            let new_manifest = &graph.bundles[bundle_index].base_manifest;
            match state.manifests.get(old_root) {
                Some(old) => {
                    let d = new_manifest.diff(old);
                    if !d.is_empty() {
                        parts.push(d.describe());
                    }
                }
                None => parts.push("content changed".into()),
            }
        }
        let rendered: Vec<String> = new_rendered
            .iter()
            .filter(|(p, h)| old_rendered.get(*p) != Some(*h))
            .map(|(p, _)| p.clone())
            .chain(
                old_rendered
                    .keys()
                    .filter(|p| !new_rendered.contains_key(*p))
                    .cloned(),
            )
            .collect();
        if !rendered.is_empty() {
            parts.push(format!(
                "{} rendered differently ({})",
                if rendered.len() == 1 {
                    "1 template"
                } else {
                    "templates"
                },
                short_list(&rendered)
            ));
        }
        if !parts.is_empty() {
            reasons.insert(0, format!("bundle {name}: {}", parts.join(", ")));
        }
    }
    reasons
}

/// Says where a changed value given from outside came from: `var v changed
/// ("1" -> "2", from --var)`, on hosts that do not set `v` themselves (whose
/// own value wins, so it came from the Clusterfile).
pub fn name_var_origins(plan: &mut Plan, model: &Model, origins: &BTreeMap<String, VarOrigin>) {
    name_var_origins_in(&mut plan.changes, model, origins);
}

/// [`name_var_origins`] for some of a plan's changes (a streamed plan's, as they come).
pub fn name_var_origins_in<'c>(
    changes: impl IntoIterator<Item = &'c mut Change>,
    model: &Model,
    origins: &BTreeMap<String, VarOrigin>,
) {
    if origins.is_empty() {
        return;
    }
    for change in changes {
        let own = model.hosts.iter().find(|h| h.name == change.host);
        for reason in change.reasons.iter_mut().chain(change.ignored.iter_mut()) {
            for (name, origin) in origins {
                if own.is_some_and(|h| h.vars.contains_key(name)) {
                    continue;
                }
                if reason.starts_with(&format!("var {name} changed (")) && reason.ends_with(')') {
                    reason.pop();
                    let _ = write!(reason, ", from {origin})");
                } else if *reason == format!("var {name} now used") {
                    let _ = write!(reason, " (from {origin})");
                }
            }
        }
    }
}
