//! Saved plans: `cairn plan -o FILE` writes one, `cairn apply FILE` applies
//! it only while a fresh plan still says exactly the same.
//!
//! A saved plan stands alone: beside the plan's JSON document it records
//! the Clusterfile it was made from (absolute path and sha256 of its text),
//! the values given from outside (`--var-file`, `--var`) and the targets
//! (`--limit`, `--replace`), so `cairn apply FILE` works from any folder
//! with nothing else given. Applying reads that Clusterfile, refuses if its
//! text changed, makes a fresh plan with the recorded values and targets,
//! and compares the two task by task (actions, keys, reasons): anything
//! that changed since on the hosts refuses the apply and says what differs,
//! as Terraform does with a stale plan file. The file carries its own
//! format version; one this cairn cannot read is refused by name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Change, ChangeJson, Plan, PlanError, PlanJson};
use crate::atomic_file::write_atomic;
use crate::model::OuterVars;

/// How many differences a refusal names before it says "+N more".
const SHOWN: usize = 5;

/// Version of the saved plan file. 1 was the bare plan document (no
/// Clusterfile recorded); 2 is [`SavedPlan`].
pub const SAVED_PLAN_VERSION: u32 = 2;

/// A plan file: the plan and everything needed to apply exactly it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub saved_plan_version: u32,
    pub clusterfile: SavedClusterfile,
    /// Values given from outside, as given (applied again as they were).
    #[serde(default)]
    pub vars: OuterVars,
    /// `--limit` as given.
    #[serde(default)]
    pub limit: Vec<String>,
    /// `--replace` as given.
    #[serde(default)]
    pub replace: Vec<String>,
    /// The plan, as `cairn plan --json` prints it.
    pub plan: PlanJson,
}

/// The Clusterfile a plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedClusterfile {
    /// Absolute.
    pub path: PathBuf,
    /// sha256 of its text, hex.
    pub sha256: String,
}

impl SavedClusterfile {
    /// `path` (made absolute) with the hash of `text`, its content.
    pub fn new(path: &Path, text: &str) -> SavedClusterfile {
        SavedClusterfile {
            path: absolute(path),
            sha256: text_hash(text),
        }
    }
}

/// `path` made absolute without requiring it to exist.
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

fn text_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Refuses a path whose folder does not exist: a plan is never written
/// somewhere the operator did not mean (a typo would create folders).
pub fn check_folder(path: &Path) -> Result<(), PlanError> {
    if path.is_dir() {
        return Err(PlanError::SavedIsFolder {
            path: path.to_path_buf(),
        });
    }
    match crate::atomic_file::missing_folder(path) {
        Some(folder) => Err(PlanError::SavedFolderMissing {
            path: path.to_path_buf(),
            folder: folder.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Writes `saved` to `path` (whole, durable, private); the folder must exist.
pub fn write(saved: &SavedPlan, path: &Path) -> Result<(), PlanError> {
    check_folder(path)?;
    let text = serde_json::to_vec_pretty(saved).expect("plan serializes");
    write_atomic(path, &text, true).map_err(|source| PlanError::WriteSaved {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a plan saved by [`write`]; one of another format version is
/// refused by name.
pub fn read(path: &Path) -> Result<SavedPlan, PlanError> {
    let text = std::fs::read(path).map_err(|source| PlanError::ReadSaved {
        path: path.to_path_buf(),
        source,
    })?;
    let not_a_plan = |source| PlanError::NotASavedPlan {
        path: path.to_path_buf(),
        source,
    };
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(not_a_plan)?;
    match value
        .get("saved_plan_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(SAVED_PLAN_VERSION) => {
            serde_json::from_value(value).map_err(not_a_plan)
        }
        Some(version) => Err(PlanError::SavedVersion {
            path: path.to_path_buf(),
            version: version.to_string(),
        }),
        // Version 1: the bare plan document, which did not record its Clusterfile.
        None if value.get("format_version").is_some() && value.get("changes").is_some() => {
            Err(PlanError::SavedVersion {
                path: path.to_path_buf(),
                version: "1".into(),
            })
        }
        None => Err(not_a_plan(serde::de::Error::custom(
            "no saved_plan_version field",
        ))),
    }
}

/// Refuses unless `text` is the Clusterfile the plan at `path` was made from.
pub fn check_clusterfile(path: &Path, saved: &SavedPlan, text: &str) -> Result<(), PlanError> {
    if text_hash(text) == saved.clusterfile.sha256 {
        Ok(())
    } else {
        Err(PlanError::ClusterfileChanged {
            path: path.to_path_buf(),
            clusterfile: saved.clusterfile.path.clone(),
        })
    }
}

/// Refuses `-f FILE` naming another Clusterfile than the plan's.
pub fn check_same_clusterfile(
    path: &Path,
    saved: &SavedPlan,
    given: &Path,
) -> Result<(), PlanError> {
    if absolute(given) == saved.clusterfile.path {
        Ok(())
    } else {
        Err(PlanError::OtherClusterfile {
            path: path.to_path_buf(),
            clusterfile: saved.clusterfile.path.clone(),
            given: given.to_path_buf(),
        })
    }
}

impl PlanJson {
    /// The plan again from its document, for showing it as `plan` did
    /// (what only the running plan knows, like the hosts `--limit` left
    /// out, is not in the document).
    pub fn to_plan(&self) -> Plan {
        Plan {
            cluster: self.cluster.clone(),
            offline: self.offline,
            // Shown, not applied: what a replace reruns is in each change's reasons.
            reruns: std::collections::BTreeMap::new(),
            aliases: self.aliases.clone(),
            changes: self
                .changes
                .iter()
                .map(|c| Change {
                    id: c.task.clone(),
                    host: c.host.clone(),
                    kind: c.action,
                    reasons: c.reasons.clone(),
                    ignored: c.ignored.clone(),
                    node: None,
                    key: c.key.clone(),
                    inputs: None,
                    adopt: c.adopt,
                    drifted: false,
                    moved_from: None,
                })
                .collect(),
            unreachable: self
                .unreachable
                .iter()
                .map(|u| (u.host.clone(), u.error.clone()))
                .collect(),
            excluded_hosts: BTreeSet::new(),
            facts: self.hosts.clone(),
            warnings: Vec::new(),
            once_moves: Vec::new(),
        }
    }
}

/// Refuses, naming what differs, unless `fresh` is the plan saved at `path`.
pub fn check_unchanged(path: &Path, saved: &PlanJson, fresh: &PlanJson) -> Result<(), PlanError> {
    refuse_differences(path, &differences(saved, fresh))
}

/// Refuses the plan saved at `path`, naming the first `differences`, unless there are none.
pub fn refuse_differences(path: &Path, differences: &[String]) -> Result<(), PlanError> {
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
    match cluster_difference(saved, &fresh.cluster) {
        Some(difference) => vec![difference],
        None => change_differences(&saved.changes, &fresh.changes),
    }
}

/// How a saved plan's cluster differs from `cluster`, the one applied now.
pub fn cluster_difference(saved: &PlanJson, cluster: &str) -> Option<String> {
    (saved.cluster != cluster).then(|| format!("cluster `{}` is now `{cluster}`", saved.cluster))
}

/// [`differences`] for one host, whose changes in a fresh plan are
/// `fresh` (a streamed apply checks each host as its part of the plan is
/// known, and runs a host only when its part is as saved).
pub fn host_differences(saved: &PlanJson, host: &str, fresh: &[ChangeJson]) -> Vec<String> {
    let saved: Vec<ChangeJson> = saved
        .changes
        .iter()
        .filter(|c| c.host == host)
        .cloned()
        .collect();
    change_differences(&saved, fresh)
}

/// Tasks gone or new, actions changed, keys or reasons changed.
fn change_differences(saved: &[ChangeJson], fresh: &[ChangeJson]) -> Vec<String> {
    let mut out = Vec::new();
    let index = |changes: &[ChangeJson]| {
        changes
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
                    adopt: false,
                    diffs: vec![],
                })
                .collect(),
            unreachable: vec![],
            summary: Summary::default(),
            hosts: BTreeMap::new(),
            aliases: BTreeMap::new(),
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
        let plan = plan(&[("step.a@h", ChangeKind::Create, 1)]);
        let saved = SavedPlan {
            saved_plan_version: SAVED_PLAN_VERSION,
            clusterfile: SavedClusterfile::new(&dir.path().join("Clusterfile"), "x"),
            vars: OuterVars::read(&[], &["a=1".into()]).unwrap(),
            limit: vec!["h".into()],
            replace: vec![],
            plan: plan.clone(),
        };
        write(&saved, &path).unwrap();
        assert_eq!(read(&path).unwrap(), saved);
        assert!(check_clusterfile(&path, &saved, "x").is_ok());
        assert!(matches!(
            check_clusterfile(&path, &saved, "y"),
            Err(PlanError::ClusterfileChanged { .. })
        ));
        // A version-1 file: the bare plan document.
        std::fs::write(&path, serde_json::to_vec(&plan).unwrap()).unwrap();
        let old = read(&path).unwrap_err();
        assert!(matches!(old, PlanError::SavedVersion { .. }), "{old}");
        assert!(old.help().contains("cairn plan -o"), "{}", old.help());
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(read(&path), Err(PlanError::NotASavedPlan { .. })));
    }

    #[test]
    fn a_plan_is_never_written_into_a_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/p.plan");
        let err = check_folder(&path).unwrap_err();
        assert!(matches!(err, PlanError::SavedFolderMissing { .. }), "{err}");
        assert!(!dir.path().join("missing").exists());
        assert!(check_folder(Path::new("p.plan")).is_ok());
    }
}
