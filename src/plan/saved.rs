//! Saved plans: `cairn plan -o FILE` writes one, `cairn apply FILE` applies
//! it only while a fresh plan still says exactly the same.
//!
//! A saved plan is the plan's JSON document. Applying it makes a fresh plan
//! and compares the two task by task (actions, keys, reasons): anything that
//! changed since, on the hosts or in the Clusterfile, refuses the apply and
//! says what differs, as Terraform does with a stale plan file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{PlanError, PlanJson};
use crate::atomic_file::write_atomic;

/// How many differences a refusal names before it says "+N more".
const SHOWN: usize = 5;

/// Writes `plan` to `path` (whole, durable, private).
pub fn write(plan: &PlanJson, path: &Path) -> Result<(), PlanError> {
    let text = serde_json::to_vec_pretty(plan).expect("plan serializes");
    write_atomic(path, &text, true).map_err(|source| PlanError::WriteSaved {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a plan saved by [`write`].
pub fn read(path: &Path) -> Result<PlanJson, PlanError> {
    let text = std::fs::read(path).map_err(|source| PlanError::ReadSaved {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| PlanError::NotASavedPlan {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses, naming what differs, unless `fresh` is the plan saved at `path`.
pub fn check_unchanged(path: &Path, saved: &PlanJson, fresh: &PlanJson) -> Result<(), PlanError> {
    let differences = differences(saved, fresh);
    if differences.is_empty() {
        return Ok(());
    }
    let mut text = differences
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if differences.len() > SHOWN {
        let _ = write!(text, " (+{} more)", differences.len() - SHOWN);
    }
    Err(PlanError::Stale {
        path: path.to_path_buf(),
        differences: text,
    })
}

/// What differs between a saved plan and a fresh one: tasks gone or new,
/// actions changed, keys or reasons changed.
pub fn differences(saved: &PlanJson, fresh: &PlanJson) -> Vec<String> {
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
            .collect::<BTreeMap<_, _>>()
    };
    let (a, b) = (index(saved), index(fresh));
    for (task, old) in &a {
        match b.get(task) {
            None => out.push(format!("{task} is no longer in the plan")),
            Some(new) if new.action != old.action => out
                .push(format!("{task}: was {:?}, now {:?}", old.action, new.action).to_lowercase()),
            Some(new) if new.key != old.key || new.reasons != old.reasons => {
                out.push(format!("{task}: its inputs or its host changed"));
            }
            Some(_) => {}
        }
    }
    for task in b.keys().filter(|t| !a.contains_key(*t)) {
        out.push(format!("{task} is new"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{TaskId, TaskKey};
    use crate::plan::{ChangeJson, ChangeKind, Summary};

    fn plan(changes: &[(&str, ChangeKind, u8)]) -> PlanJson {
        PlanJson {
            format_version: 1,
            cluster: "c".into(),
            offline: false,
            changes: changes
                .iter()
                .map(|(task, action, key)| ChangeJson {
                    task: TaskId::parse(task).unwrap(),
                    host: "h".into(),
                    action: *action,
                    reasons: vec![],
                    ignored: vec![],
                    key: Some(TaskKey::from_digest([*key; 32])),
                    diffs: vec![],
                })
                .collect(),
            unreachable: vec![],
            summary: Summary::default(),
            hosts: BTreeMap::new(),
        }
    }

    #[test]
    fn differences_name_each_task() {
        use ChangeKind::*;
        let saved = plan(&[
            ("step.a@h", Create, 1),
            ("step.b@h", Update, 2),
            ("step.c@h", Noop, 3),
        ]);
        let fresh = plan(&[
            ("step.a@h", Update, 1),
            ("step.b@h", Update, 9),
            ("step.d@h", Create, 4),
        ]);
        assert_eq!(
            differences(&saved, &fresh),
            [
                "step.a@h: was create, now update",
                "step.b@h: its inputs or its host changed",
                "step.c@h is no longer in the plan",
                "step.d@h is new",
            ]
        );
        assert!(differences(&saved, &saved).is_empty());
    }

    #[test]
    fn a_stale_plan_is_refused_with_at_most_five_reasons() {
        let names: Vec<String> = (0..7).map(|i| format!("step.s{i}@h")).collect();
        let saved = plan(&[]);
        let fresh = plan(
            &names
                .iter()
                .map(|n| (n.as_str(), ChangeKind::Create, 1))
                .collect::<Vec<_>>(),
        );
        let err = check_unchanged(Path::new("x.plan"), &saved, &fresh)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the saved plan x.plan no longer matches: step.s0@h is new;"),
            "{err}"
        );
        assert!(err.ends_with("(+2 more)"), "{err}");
    }

    #[test]
    fn a_saved_plan_round_trips_and_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.plan");
        let saved = plan(&[("step.a@h", ChangeKind::Create, 1)]);
        write(&saved, &path).unwrap();
        assert_eq!(read(&path).unwrap(), saved);
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(read(&path), Err(PlanError::NotASavedPlan { .. })));
    }
}
