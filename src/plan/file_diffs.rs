//! Diffs before they happen (`plan --diff`, `apply --diff`): for every file
//! a plan would write or remove, what the host has now against what cairn
//! would leave there.
//!
//! Which files really change is known without asking the host again: a
//! bundle's or a `[[files]]` entry's content for this host (templates
//! rendered, config patches applied: [`Work::files`]) is compared, file by
//! file, with what the record and refresh say the host holds, as the
//! executor decides what to ship (`exec::files`). Only the files left, and
//! only on the hosts that have any, are read back after refresh (one more
//! round trip per such host, all hosts at once, through the reader
//! `drift --diff` uses: [`super::drift::read_paths`]); a host with nothing
//! to diff costs nothing. Files a task no longer ships, or a destroyed task
//! shipped, are only named: they will be removed.
//!
//! Both sides are masked with the model's [`Scrubber`] before the unified
//! diff is made, so a template holding a secret shows `***` on both. The
//! diff itself is made by the caller's function (the reporter's), as
//! drift's is, so this room stays free of rendering.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::drift::{DIFF_LIMIT_BYTES, ReadBack, read_paths};
use super::{ChangeKind, Observation, Plan, Refresh};
use crate::bundle::ShipFile;
use crate::graph::{TaskGraph, Work};
use crate::ids::TaskId;
use crate::model::{HostId, Model, Scrubber};
use crate::state::State;
use crate::transport::{FileRead, Fleet, Observed, target_path};

/// What an apply would do to one file's content, as `plan --diff` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDiff {
    /// Where the file is on the host.
    pub path: String,
    pub kind: FileDiffKind,
    /// For `changed`, and `new` text: a unified diff from what the host has
    /// to what cairn will write, secrets masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unified: Option<String>,
}

/// How a file's content changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileDiffKind {
    /// Both sides are text: see `unified`.
    Changed,
    /// Nothing is there yet (`unified` holds it, when it is text within the limit).
    New,
    /// cairn removes it (the task no longer ships it, or is destroyed).
    Removed,
    /// One side is not UTF-8 text.
    Binary,
    /// One side is over [`DIFF_LIMIT_BYTES`].
    TooLarge,
    /// The host's file could not be read (not a regular file, permissions,
    /// or the host stopped answering).
    Unreadable,
}

/// The file diffs of a plan, by task, each task's in path order.
#[derive(Debug, Clone, Default)]
pub struct FileDiffs {
    by_task: HashMap<TaskId, Vec<FileDiff>>,
    /// Tasks in plan order.
    order: Vec<TaskId>,
    /// Hosts whose files could not be read back, with why.
    pub failed_hosts: BTreeMap<String, String>,
}

impl FileDiffs {
    /// The diffs of one task (empty when none of its files changes).
    pub fn of(&self, task: &TaskId) -> &[FileDiff] {
        self.by_task.get(task).map_or(&[], Vec::as_slice)
    }

    /// Every task with diffs, in plan order.
    pub fn tasks(&self) -> impl Iterator<Item = (&TaskId, &[FileDiff])> {
        self.order.iter().map(|t| (t, self.of(t)))
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// What file diffs are made from: the plan and everything it was made of.
#[derive(Clone, Copy)]
pub struct DiffSources<'a> {
    pub plan: &'a Plan,
    pub model: &'a Model,
    pub graph: &'a TaskGraph,
    pub state: &'a State,
    pub refresh: &'a Refresh,
}

/// One file a change writes or removes.
struct Pending {
    task: TaskId,
    path: String,
    /// What cairn will write; `None`: it removes the file.
    new: Option<ShipFile>,
    /// The host has nothing there (known from refresh): no need to read it.
    known_missing: bool,
}

/// The file diffs of `sources.plan`, reading what the host has now over
/// `fleet` for the files that change. `unified(old, new, old_label,
/// new_label)` makes the unified diff of two texts.
pub async fn file_diffs(
    sources: DiffSources<'_>,
    fleet: &Fleet,
    unified: impl Fn(&str, &str, &str, &str) -> String,
) -> FileDiffs {
    let pending = pending_files(sources);
    let wanted = reads(&pending);
    let found: ReadBack = read_paths(fleet, wanted).await;
    let scrubber = sources.model.scrubber();
    let mut diffs = FileDiffs::default();
    for (name, answer) in &found {
        if let Err(why) = answer {
            diffs.failed_hosts.insert(name.clone(), why.clone());
        }
    }
    for (name, _, file) in pending {
        let read = if file.known_missing {
            Some(&FileRead::Missing)
        } else {
            match found.get(&name) {
                Some(Ok(by_path)) => by_path.get(&file.path),
                _ => None,
            }
        };
        let labels = (
            if read == Some(&FileRead::Missing) {
                "/dev/null".to_string()
            } else {
                format!("{} (on {name})", file.path)
            },
            format!("{} (after apply)", file.path),
        );
        let diff = compare(file.new.as_ref(), read, &scrubber, |old, new| {
            unified(old, new, &labels.0, &labels.1)
        });
        if let Some((kind, unified)) = diff {
            if !diffs.by_task.contains_key(&file.task) {
                diffs.order.push(file.task.clone());
            }
            diffs.by_task.entry(file.task).or_default().push(FileDiff {
                path: file.path,
                kind,
                unified,
            });
        }
    }
    for list in diffs.by_task.values_mut() {
        list.sort_by(|a, b| a.path.cmp(&b.path));
    }
    diffs
}

/// Every file the plan writes with other content than its host holds, or
/// removes, with its host's name and id (`None`: a host that left).
fn pending_files(sources: DiffSources<'_>) -> Vec<(String, Option<HostId>, Pending)> {
    let mut pending = Vec::new();
    for change in &sources.plan.changes {
        for file in changing_files(sources, change) {
            let host = change.node.map(|n| sources.graph.task(n).host);
            pending.push((change.host.clone(), host, file));
        }
    }
    pending
}

/// What to read back, per host: the paths of `pending` whose content on
/// the host is not known. A host with none is left out: it is not asked.
fn reads(pending: &[(String, Option<HostId>, Pending)]) -> Vec<(String, HostId, Vec<String>)> {
    let mut wanted: BTreeMap<&str, (HostId, Vec<String>)> = BTreeMap::new();
    for (name, host, file) in pending {
        if let (Some(host), Some(_), false) = (host, &file.new, file.known_missing) {
            wanted
                .entry(name.as_str())
                .or_insert_with(|| (*host, Vec::new()))
                .1
                .push(file.path.clone());
        }
    }
    wanted
        .into_iter()
        .map(|(name, (id, mut paths))| {
            paths.sort();
            paths.dedup();
            (name.to_string(), id, paths)
        })
        .collect()
}

/// The files `change` writes with other content than the host holds, or
/// removes, as far as the record and refresh know (a file whose content
/// is surely right already is left out: it is not read).
fn changing_files(sources: DiffSources<'_>, change: &super::Change) -> Vec<Pending> {
    if change.kind == ChangeKind::Noop || change.adopt {
        return Vec::new();
    }
    let recorded = sources
        .state
        .tasks
        .get(&change.id)
        .and_then(|r| r.detail.shipped_files());
    let removed = |dest: &str, rel: &str| Pending {
        task: change.id.clone(),
        path: target_path(dest, rel).to_string_lossy().into_owned(),
        new: None,
        known_missing: false,
    };
    let work = change.node.map(|n| &sources.graph.task(n).work);
    let dest = match work {
        Some(Work::Bundle { dest, .. } | Work::File { dest, .. }) => dest.as_str(),
        // A destroy (or a step): only what the record shipped, all removed.
        _ => {
            return match (change.kind, recorded) {
                (ChangeKind::Destroy, Some((old_dest, shipped))) => {
                    shipped.keys().map(|rel| removed(old_dest, rel)).collect()
                }
                _ => Vec::new(),
            };
        }
    };
    let desired = work.map(Work::files).unwrap_or_default();
    let desired_paths: std::collections::BTreeSet<String> = desired.keys().cloned().collect();
    // What the host holds at each path, as far as the record and refresh
    // know (only where the destination did not move).
    let (old_dest, old_shipped) = recorded.unwrap_or(("", BTreeMap::new()));
    let same_place = !old_dest.is_empty() && old_dest == dest;
    let observed = match sources.refresh.observations.get(&change.id) {
        Some(Observation::Files(found)) => Some(found),
        _ => None,
    };
    let host_has = |rel: &str| -> Option<Option<String>> {
        if !same_place {
            return None;
        }
        let recorded = old_shipped.get(rel)?;
        Some(match observed.and_then(|o| o.get(rel)) {
            Some(Observed::Missing) => None,
            Some(Observed::Hashed(h)) => Some(h.clone()),
            Some(Observed::Unchanged) | None => Some(recorded.hash.clone()),
        })
    };
    let mut files: Vec<Pending> = desired
        .into_iter()
        .filter_map(|(rel, file)| {
            let known = host_has(&rel);
            if known
                .as_ref()
                .is_some_and(|h| h.as_deref() == Some(file.entry.hash.as_str()))
            {
                return None;
            }
            Some(Pending {
                task: change.id.clone(),
                path: target_path(dest, &rel).to_string_lossy().into_owned(),
                new: Some(file),
                known_missing: matches!(known, Some(None)),
            })
        })
        .collect();
    let still_shipped = |rel: &str| same_place && desired_paths.contains(rel);
    files.extend(
        old_shipped
            .keys()
            .filter(|rel| !still_shipped(rel))
            .map(|rel| removed(old_dest, rel)),
    );
    files
}

/// What the host has (`found`; `None`: not read) against what cairn will
/// write (`new`; `None`: it removes the file). `None` when the content does
/// not change.
fn compare(
    new: Option<&ShipFile>,
    found: Option<&FileRead>,
    scrubber: &Scrubber,
    unified: impl Fn(&str, &str) -> String,
) -> Option<(FileDiffKind, Option<String>)> {
    let Some(new) = new else {
        return Some((FileDiffKind::Removed, None));
    };
    let Ok(bytes) = new.data.read() else {
        return Some((FileDiffKind::Unreadable, None));
    };
    let text_of = |b: &[u8]| {
        if b.len() as u64 > DIFF_LIMIT_BYTES {
            Err(FileDiffKind::TooLarge)
        } else {
            std::str::from_utf8(b)
                .map(|t| scrubber.scrub(t))
                .map_err(|_| FileDiffKind::Binary)
        }
    };
    let old = match found {
        Some(FileRead::Missing) => {
            return Some(match text_of(&bytes) {
                Ok(new) => (FileDiffKind::New, Some(unified("", &new))),
                Err(_) => (FileDiffKind::New, None),
            });
        }
        Some(FileRead::Content(old)) => old,
        Some(FileRead::TooLarge { .. }) => return Some((FileDiffKind::TooLarge, None)),
        Some(FileRead::NotAFile | FileRead::Unreadable) | None => {
            return Some((FileDiffKind::Unreadable, None));
        }
    };
    if old.as_slice() == bytes.as_slice() {
        return None;
    }
    match (text_of(old), text_of(&bytes)) {
        (Ok(old), Ok(new)) => Some((FileDiffKind::Changed, Some(unified(&old, &new)))),
        (Err(FileDiffKind::TooLarge), _) | (_, Err(FileDiffKind::TooLarge)) => {
            Some((FileDiffKind::TooLarge, None))
        }
        _ => Some((FileDiffKind::Binary, None)),
    }
}

#[cfg(test)]
#[path = "tests/file_diffs.rs"]
mod tests;
