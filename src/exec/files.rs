//! Running a bundle or file task: ship what the host lacks.
//!
//! Only the files whose content on the host differs from what it should be
//! (known from refresh and the record) are shipped; files the bundle no
//! longer has are removed, but only while they still hold what cairn
//! shipped; a single file's owner is set after it lands. Replacing a task,
//! or moving its destination, removes what was shipped to the old place
//! first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::context::TaskContext;
use super::failure::{Failure, TaskError};
use crate::bundle::ShipFile;
use crate::graph::{Task, Work};
use crate::plan::Observation;
use crate::state::{RecordDetail, ShippedFile, TaskRecord};
use crate::transport::{Observed, Receipt, shell_quote};

/// Ships a bundle's or a file's content; returns the new record detail and a short description.
pub(super) async fn sync_files(
    ctx: &TaskContext<'_>,
    task: &Task,
    record: Option<&TaskRecord>,
    observation: Option<&Observation>,
    replace: bool,
) -> Result<(RecordDetail, String), Failure> {
    let (dest, desired) = match &task.work {
        Work::Bundle { dest, .. } | Work::File { dest, .. } => (dest.clone(), task.work.files()),
        Work::Step { .. } => unreachable!("sync_files is for bundles and files"),
    };
    let recorded = record.and_then(|r| r.detail.shipped_files());
    let old_dest = recorded.as_ref().map(|(d, _)| d.to_string());
    let old_shipped: BTreeMap<String, ShippedFile> = recorded.map(|(_, s)| s).unwrap_or_default();
    let mut removed = 0;
    let mut kept = Vec::new();
    // Replacing (or the destination moved): take away what was shipped to the old place first.
    let moved = old_dest.as_deref().is_some_and(|d| d != dest);
    if (replace || moved)
        && let Some(old) = &old_dest
    {
        kept = ctx.transport.remove(old, &old_shipped, None).await?;
        removed = old_shipped.len() - kept.len();
    }
    let FileWork { to_ship, dropped } =
        file_work(&desired, &old_shipped, observation, replace || moved);
    let chown = match &task.work {
        Work::File { file, .. } => ctx.model.files[*file].owner.clone(),
        _ => None,
    };
    // The receipt rides on the task's last command: the shipping, unless a
    // removal or chown follows; a round trip of its own only when the task
    // has no command to run at all.
    let mut receipt = ctx.receipt;
    let mut with_probe = false;
    let shipped_now = if to_ship.is_empty() {
        BTreeMap::new()
    } else {
        let with = if dropped.is_empty() && chown.is_none() {
            receipt.take()
        } else {
            None
        };
        let shipped = ctx.transport.ship(&dest, &to_ship, with).await?;
        with_probe = shipped.with_probe;
        shipped.files
    };
    // Files the bundle no longer has: remove them if they are still as shipped.
    if !dropped.is_empty() {
        let with = if chown.is_none() {
            receipt.take()
        } else {
            None
        };
        let k = ctx.transport.remove(&dest, &dropped, with).await?;
        removed += dropped.len() - k.len();
        kept.extend(k);
    }

    let mut shipped = BTreeMap::new();
    for rel in desired.keys() {
        let entry = match shipped_now.get(rel) {
            Some(s) => s.clone(),
            None => old_shipped
                .get(rel)
                .cloned()
                .expect("a file not shipped now was shipped before with the same content"),
        };
        shipped.insert(rel.clone(), entry);
    }
    let mut detail = describe(&to_ship, &dest, removed, kept.len());
    if with_probe {
        detail.push_str(" (sent with the probe)");
    }
    let record = match &task.work {
        Work::Bundle { .. } => RecordDetail::Bundle { dest, shipped },
        Work::File { dest, .. } => {
            if let Some(owner) = &chown {
                change_owner(ctx, dest, owner, receipt.take()).await?;
            }
            RecordDetail::File {
                dest: dest.clone(),
                shipped: shipped.remove("").expect("a file task ships one file"),
            }
        }
        Work::Step { .. } => unreachable!("sync_files is for bundles and files"),
    };
    if let Some(r) = receipt {
        ctx.transport.write_receipt(r).await?;
    }
    Ok((record, detail))
}

/// What shipping must do on the host.
struct FileWork {
    /// Files whose content or mode on the host is not what it should be.
    to_ship: BTreeMap<String, ShipFile>,
    /// Files shipped before that the task no longer has.
    dropped: BTreeMap<String, ShippedFile>,
}

/// Compares the files a task should leave with what the host has, as far
/// as the record and refresh know. `fresh`: the old files are gone (the
/// task is replaced or moved), so everything ships and nothing is dropped.
fn file_work(
    desired: &BTreeMap<String, ShipFile>,
    old_shipped: &BTreeMap<String, ShippedFile>,
    observation: Option<&Observation>,
    fresh: bool,
) -> FileWork {
    // What the host has now, per path, as far as we know.
    let host_hash = |rel: &str| -> Option<String> {
        if fresh {
            return None;
        }
        let recorded = old_shipped.get(rel)?;
        match observation {
            Some(Observation::Files(found)) => match found.get(rel) {
                Some(Observed::Unchanged) => Some(recorded.hash.clone()),
                Some(Observed::Hashed(h)) => Some(h.clone()),
                Some(Observed::Missing) | None => None,
            },
            // Not refreshed (offline plan): trust the record.
            _ => Some(recorded.hash.clone()),
        }
    };
    // Rehashed by refresh: its stat is no longer the recorded one, so even
    // when its content is right it ships again, and the record takes the
    // stat it has now (a record that keeps a stale stat drifts for ever).
    let stat_changed = |rel: &str| {
        !fresh
            && matches!(
                observation,
                Some(Observation::Files(found)) if matches!(found.get(rel), Some(Observed::Hashed(_)))
            )
    };
    let to_ship = desired
        .iter()
        .filter(|(rel, file)| {
            host_hash(rel).as_deref() != Some(file.entry.hash.as_str())
                || stat_changed(rel)
                || old_shipped
                    .get(*rel)
                    .is_some_and(|r| r.mode != file.entry.mode)
        })
        .map(|(rel, file)| (rel.clone(), file.clone()))
        .collect();
    let dropped = if fresh {
        BTreeMap::new()
    } else {
        old_shipped
            .iter()
            .filter(|(rel, _)| !desired.contains_key(*rel))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    FileWork { to_ship, dropped }
}

/// "1 file shipped (etc/a.conf), 2 removed, 1 kept (changed by hand)".
fn describe(
    to_ship: &BTreeMap<String, ShipFile>,
    dest: &str,
    removed: usize,
    kept: usize,
) -> String {
    let mut detail = match to_ship.len() {
        0 => "nothing to ship".to_string(),
        1 => format!(
            "1 file shipped ({})",
            if to_ship.contains_key("") {
                dest
            } else {
                to_ship.keys().next().map_or("", String::as_str)
            }
        ),
        n => format!("{n} files shipped"),
    };
    if removed > 0 {
        let _ = write!(detail, ", {removed} removed");
    }
    if kept > 0 {
        let _ = write!(detail, ", {kept} kept (changed by hand)");
    }
    detail
}

/// Gives a single file its owner; with a receipt, the same command leaves it.
async fn change_owner(
    ctx: &TaskContext<'_>,
    dest: &str,
    owner: &str,
    receipt: Option<&Receipt>,
) -> Result<(), Failure> {
    let script = format!("chown {} {}", shell_quote(owner), shell_quote(dest));
    let out = ctx
        .transport
        .run(&script, None, Some(Duration::from_secs(60)), receipt)
        .await?;
    if out.success() {
        Ok(())
    } else {
        let error = TaskError::Chown {
            dest: dest.to_string(),
            owner: owner.to_string(),
        };
        Err(Failure::with_output(error, &out, ctx.scrubber, None))
    }
}
