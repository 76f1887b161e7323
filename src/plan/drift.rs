//! The drift report (`cairn drift`): which hosts no longer match, and how.
//!
//! Drift is a plan read per host, plus the detail refresh saw. A host has
//! *drifted* when what is on it differs from what cairn recorded: a shipped
//! file modified, deleted, or with another mode or owner; a `check` that
//! now fails; none of the receipts cairn's records expect (the host was
//! reimaged or wiped). It is *pending* when the Clusterfile asks for
//! something not applied yet. Both count as out of sync. Hosts that could
//! not be refreshed are *unchecked*.
//!
//! With `--diff`, the files found modified are read back from their hosts
//! ([`read_back`]: one round trip per host that has any, through the
//! reader `plan --diff` shares, [`read_paths`]) and compared with
//! what cairn shipped, as the controller can rebuild it (a bundle's source,
//! a rendered template, a `[[files]]` content), only while that still hashes
//! to what was recorded; secrets are masked on both sides before the diff
//! ([`DriftReport::attach_diffs`]). The unified diff itself is made by the
//! caller's function (the reporter's), so this room stays free of rendering.
//!
//! The report is a typed document whose JSON (`drift --json`) is part of
//! the contract (docs/clusterfile.md, "Drift"; `format_version`, fields only
//! ever added): its keys come out sorted, so every struct here declares its
//! fields in alphabetical order, and a new field goes in its sorted place.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Change, ChangeKind, Observation, Plan, Refresh};
use crate::bundle::manifest::hash_bytes;
use crate::graph::{TaskGraph, Work};
use crate::ids::TaskId;
use crate::model::{Host, Model, Scrubber, TransportKind};
use crate::state::{RecordDetail, ShippedFile, State, TaskRecord};
use crate::transport::{FileRead, Fleet, Observed, TransportError, target_path};

/// The version of the drift JSON document.
pub const DRIFT_JSON_VERSION: u32 = 1;

/// Files larger than this are not diffed (nor read back).
pub const DIFF_LIMIT_BYTES: u64 = 256 * 1024;

/// Every checked host's sync status, and the hosts that could not be checked.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub cluster: String,
    pub format_version: u32,
    /// Each checked host, in Clusterfile order, then the hosts that left
    /// the Clusterfile and were reached (their pending destroys), by name.
    pub hosts: Vec<HostDrift>,
    /// Every checked host matches and none was left unchecked.
    pub in_sync: bool,
    /// Hosts that could not be refreshed, with why.
    pub unchecked: Vec<UncheckedHost>,
}

/// One checked host.
#[derive(Debug, Clone, Serialize)]
pub struct HostDrift {
    /// How cairn reaches it: `10.0.0.4`, `10.0.0.4:2222` off port 22.
    pub address: String,
    /// Changed on the host since cairn recorded it.
    pub drifted: Vec<TaskDrift>,
    /// `check` commands of recorded steps that no longer pass.
    pub failing_checks: Vec<CheckDrift>,
    /// Shipped files no longer as cairn left them.
    pub files: Vec<FileDrift>,
    pub host: String,
    pub in_sync: bool,
    /// Tasks cairn's records say ran here, when the host holds none of
    /// their receipts (reimaged or wiped); empty otherwise.
    pub missing_receipts: Vec<TaskId>,
    /// Asked for by the Clusterfile, not applied yet.
    pub pending: Vec<TaskDrift>,
    #[serde(skip)]
    id: Option<crate::model::HostId>,
}

/// One task that is out of sync, and why.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDrift {
    /// What an apply would do about it.
    pub action: ChangeKind,
    pub reasons: Vec<String>,
    pub task: TaskId,
}

/// A recorded step whose `check` fails now.
#[derive(Debug, Clone, Serialize)]
pub struct CheckDrift {
    /// `None`: it timed out, or its working directory is gone.
    pub exit_code: Option<i32>,
    pub task: TaskId,
}

/// How a shipped file differs from what cairn left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    /// Its content is not what was shipped.
    Modified,
    /// Nothing is there any more.
    Deleted,
    /// Another mode (its content was not looked at).
    Mode,
    /// Another owner than the Clusterfile's `owner` (content not looked at).
    Owner,
    /// Something other than a regular file is there.
    NotAFile,
}

/// One shipped file that changed on its host.
#[derive(Debug, Clone, Serialize)]
pub struct FileDrift {
    pub change: FileChange,
    /// With `--diff`: the content compared with what cairn shipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<ContentDiff>,
    /// For a mode or owner change: what the host has (`0600`, `nobody:nogroup`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// Where it is on the host.
    pub path: String,
    pub task: TaskId,
    /// For a mode or owner change: what cairn left (`0644`, `root:root`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was: Option<String>,
    /// Its path within the task (`""`: a single file).
    #[serde(skip)]
    rel: String,
}

/// A changed file's content against what cairn shipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentDiff {
    pub status: DiffStatus,
    /// For `differs`: a unified diff, shipped first, secrets masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unified: Option<String>,
}

/// What comparing a file's content found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffStatus {
    /// Both sides are text: see `unified`.
    Differs,
    /// The content is as shipped (only its mode or owner changed).
    Same,
    /// One side is not UTF-8 text.
    Binary,
    /// One side is over [`DIFF_LIMIT_BYTES`].
    TooLarge,
    /// What cairn shipped cannot be rebuilt: the Clusterfile or the bundle
    /// changed since (an apply would ship the new version).
    ShippedUnavailable,
    /// The host's file could not be read back (gone since, unreadable, or
    /// the host stopped answering).
    Unreadable,
}

/// A host that could not be checked.
#[derive(Debug, Clone, Serialize)]
pub struct UncheckedHost {
    pub address: String,
    pub error: String,
    pub host: String,
}

/// What a drift report is made from: the plan and everything it was made of.
#[derive(Clone, Copy)]
pub struct DriftSources<'a> {
    pub plan: &'a Plan,
    pub model: &'a Model,
    pub graph: &'a TaskGraph,
    pub state: &'a State,
    pub refresh: &'a Refresh,
}

/// The files of each host read back for `--diff`, by path; or why the host could not answer.
pub type ReadBack = HashMap<String, Result<HashMap<String, FileRead>, String>>;

/// The address a host is reached at, as people and metrics name it (the
/// machine an ssh config alias names, not the alias).
fn shown_address(host: &Host) -> String {
    if host.transport == TransportKind::Ssh && host.port != 22 {
        format!("{}:{}", host.reached_at(), host.port)
    } else {
        host.reached_at().to_string()
    }
}

impl DriftReport {
    /// Reads the plan host by host; hosts left out by `--limit` are not reported.
    pub fn new(sources: DriftSources<'_>) -> DriftReport {
        let DriftSources {
            plan,
            model,
            refresh,
            ..
        } = sources;
        let entry = |c: &Change| TaskDrift {
            action: c.kind,
            reasons: c.reasons.clone(),
            task: c.id.clone(),
        };
        // Grouped once: a fleet has thousands of hosts and tasks.
        let mut changes_of: HashMap<&str, Vec<&Change>> = HashMap::new();
        for c in plan.changes.iter().filter(|c| c.kind != ChangeKind::Noop) {
            changes_of.entry(c.host.as_str()).or_default().push(c);
        }
        let mut records_of: HashMap<&str, Vec<(&TaskId, &TaskRecord)>> = HashMap::new();
        for (id, record) in &sources.state.tasks {
            records_of
                .entry(record.host().name.as_str())
                .or_default()
                .push((id, record));
        }
        let mut hosts: Vec<HostDrift> = model
            .hosts
            .iter()
            .filter(|h| !plan.excluded_hosts.contains(&h.name))
            .filter(|h| !plan.unreachable.contains_key(&h.name))
            .map(|host| {
                let mine = changes_of.remove(host.name.as_str()).unwrap_or_default();
                let drifted: Vec<&Change> = mine.iter().copied().filter(|c| c.drifted).collect();
                let mut files = Vec::new();
                let mut failing_checks = Vec::new();
                for change in &drifted {
                    match refresh.observations.get(&change.id) {
                        Some(Observation::Files(found)) => {
                            files.extend(file_drifts(&change.id, found, sources));
                        }
                        Some(Observation::Check {
                            passed: false,
                            code,
                        }) => failing_checks.push(CheckDrift {
                            exit_code: *code,
                            task: change.id.clone(),
                        }),
                        _ => {}
                    }
                }
                let recorded = records_of.remove(host.name.as_str()).unwrap_or_default();
                let missing_receipts = missing_receipts(&recorded, sources);
                HostDrift {
                    address: shown_address(host),
                    in_sync: mine.is_empty() && missing_receipts.is_empty(),
                    drifted: drifted.iter().map(|c| entry(c)).collect(),
                    failing_checks,
                    files,
                    host: host.name.clone(),
                    missing_receipts,
                    pending: mine
                        .iter()
                        .filter(|c| !c.drifted)
                        .map(|c| entry(c))
                        .collect(),
                    id: Some(host.id),
                }
            })
            .collect();
        hosts.extend(left_hosts(sources, &entry));
        let unchecked: Vec<UncheckedHost> = plan
            .unreachable
            .iter()
            .map(|(name, error)| UncheckedHost {
                address: address_of(sources, name),
                error: error.clone(),
                host: name.clone(),
            })
            .collect();
        DriftReport {
            cluster: plan.cluster.clone(),
            format_version: DRIFT_JSON_VERSION,
            in_sync: hosts.iter().all(|h| h.in_sync) && unchecked.is_empty(),
            hosts,
            unchecked,
        }
    }

    /// How many checked hosts are out of sync.
    pub fn out_of_sync(&self) -> usize {
        self.hosts.iter().filter(|h| !h.in_sync).count()
    }

    /// Whether any file's content is worth reading back for a diff.
    pub fn has_files_to_diff(&self) -> bool {
        self.hosts
            .iter()
            .any(|h| h.files.iter().any(FileDrift::worth_reading))
    }

    /// Attaches a [`ContentDiff`] to every file worth reading back, from
    /// `found` (see [`read_back`]). `unified(old, new, old_label, new_label)`
    /// makes the unified diff of two texts.
    pub fn attach_diffs(
        &mut self,
        sources: DriftSources<'_>,
        found: &ReadBack,
        unified: impl Fn(&str, &str, &str, &str) -> String,
    ) {
        let scrubber = sources.model.scrubber();
        for host in &mut self.hosts {
            let answer = found.get(&host.host);
            for file in host.files.iter_mut().filter(|f| f.worth_reading()) {
                let read = match answer {
                    Some(Ok(by_path)) => by_path.get(&file.path),
                    _ => None,
                };
                let recorded = recorded_hash(sources.state, &file.task, &file.rel);
                let shipped = shipped_content(sources.graph, &file.task, &file.rel, recorded);
                let labels = (
                    format!("{} (shipped by cairn)", file.path),
                    format!("{} (on {})", file.path, host.host),
                );
                file.diff = Some(compare(
                    shipped.as_deref(),
                    read,
                    recorded,
                    &scrubber,
                    |old, new| unified(old, new, &labels.0, &labels.1),
                ));
            }
        }
    }
}

/// Hosts that left the Clusterfile and were reached: only their pending
/// destroys (what an apply undoes there), sorted by name.
fn left_hosts(sources: DriftSources<'_>, entry: &impl Fn(&Change) -> TaskDrift) -> Vec<HostDrift> {
    let DriftSources { plan, model, .. } = sources;
    let mut left: BTreeMap<&str, Vec<TaskDrift>> = BTreeMap::new();
    for change in &plan.changes {
        let name = change.host.as_str();
        if change.kind != ChangeKind::Noop
            && !model.hosts.iter().any(|h| h.name == name)
            && !plan.excluded_hosts.contains(name)
            && !plan.unreachable.contains_key(name)
        {
            left.entry(name).or_default().push(entry(change));
        }
    }
    left.into_iter()
        .map(|(name, pending)| HostDrift {
            address: address_of(sources, name),
            drifted: Vec::new(),
            failing_checks: Vec::new(),
            files: Vec::new(),
            host: name.to_string(),
            in_sync: false,
            missing_receipts: Vec::new(),
            pending,
            id: None,
        })
        .collect()
}

/// The address of a host by name: as the Clusterfile has it, else as the
/// state recorded it (a host that left).
fn address_of(sources: DriftSources<'_>, name: &str) -> String {
    if let Some(host) = sources.model.hosts.iter().find(|h| h.name == name) {
        return shown_address(host);
    }
    match sources.state.hosts.get(name) {
        Some(r) if r.transport == TransportKind::Ssh && r.port != 22 => {
            format!("{}:{}", r.address, r.port)
        }
        Some(r) => r.address.clone(),
        None => String::new(),
    }
}

impl FileDrift {
    /// Its content may differ from what was shipped: modified, or another
    /// mode or owner (the probe looked no further than that).
    fn worth_reading(&self) -> bool {
        matches!(
            self.change,
            FileChange::Modified | FileChange::Mode | FileChange::Owner
        )
    }
}

/// The files of one drifted bundle or file task that are not as recorded.
fn file_drifts(
    task: &TaskId,
    found: &BTreeMap<String, Observed>,
    sources: DriftSources<'_>,
) -> Vec<FileDrift> {
    let Some(record) = sources.state.tasks.get(task) else {
        return Vec::new();
    };
    let Some((dest, shipped)) = record.detail.shipped_files() else {
        return Vec::new();
    };
    // Only a `[[files]]` entry declares an owner.
    let declared_owner =
        sources
            .graph
            .find(task)
            .and_then(|node| match sources.graph.task(node).work {
                Work::File { file, .. } => sources.model.files[file].owner.clone(),
                _ => None,
            });
    found
        .iter()
        .filter_map(|(rel, observed)| {
            let recorded = shipped.get(rel)?;
            let (change, was, now) = classify(observed, recorded, declared_owner.as_deref())?;
            Some(FileDrift {
                change,
                diff: None,
                now,
                path: target_path(dest, rel).to_string_lossy().into_owned(),
                task: task.clone(),
                was,
                rel: rel.clone(),
            })
        })
        .collect()
}

/// What an observation says changed, with the old and new mode or owner;
/// `None` when the file is as recorded.
fn classify(
    observed: &Observed,
    recorded: &ShippedFile,
    declared_owner: Option<&str>,
) -> Option<(FileChange, Option<String>, Option<String>)> {
    // The probe reports what is not content as a pseudo-hash (see `transport::probe`).
    match observed {
        Observed::Unchanged => None,
        Observed::Missing => Some((FileChange::Deleted, None, None)),
        Observed::Hashed(h) if *h == recorded.hash => None,
        Observed::Hashed(h) => {
            if let Some(mode) = h.strip_prefix("mode:") {
                let now = u32::from_str_radix(mode, 8).map_or_else(|_| mode.to_string(), mode_text);
                Some((FileChange::Mode, Some(mode_text(recorded.mode)), Some(now)))
            } else if let Some(owner) = h.strip_prefix("owner:") {
                Some((
                    FileChange::Owner,
                    declared_owner.map(str::to_string),
                    Some(owner.to_string()),
                ))
            } else if h == "not-a-file" {
                Some((FileChange::NotAFile, None, None))
            } else {
                Some((FileChange::Modified, None, None))
            }
        }
    }
}

fn mode_text(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// The tasks `recorded` on a host, when the host holds the receipt of none
/// of them. Only counted when at least one of them surely left a receipt: a
/// bundle or file always does, a step without `check` too; a step with a
/// `check` may have been recorded because its check passed, without one.
fn missing_receipts(recorded: &[(&TaskId, &TaskRecord)], sources: DriftSources<'_>) -> Vec<TaskId> {
    let DriftSources {
        model,
        graph,
        refresh,
        ..
    } = sources;
    if recorded
        .iter()
        .any(|(id, _)| refresh.receipts.contains_key(*id))
    {
        return Vec::new();
    }
    let leaves_a_receipt = |id: &TaskId, detail: &RecordDetail| {
        match detail {
        RecordDetail::Bundle { .. } | RecordDetail::File { .. } => true,
        RecordDetail::Step { .. } => graph.find(id).is_some_and(|node| {
            matches!(graph.task(node).work, Work::Step { step } if model.steps[step].check.is_none())
        }),
    }
    };
    if !recorded
        .iter()
        .any(|(id, r)| leaves_a_receipt(id, &r.detail))
    {
        return Vec::new();
    }
    let mut ids: Vec<TaskId> = recorded.iter().map(|(id, _)| (*id).clone()).collect();
    ids.sort();
    ids
}

/// The hash cairn recorded for a shipped file.
fn recorded_hash<'a>(state: &'a State, task: &TaskId, rel: &str) -> Option<&'a str> {
    match &state.tasks.get(task)?.detail {
        RecordDetail::Bundle { shipped, .. } => shipped.get(rel).map(|f| f.hash.as_str()),
        RecordDetail::File { shipped, .. } => Some(shipped.hash.as_str()),
        RecordDetail::Step { .. } => None,
    }
}

/// The bytes cairn shipped, rebuilt from what the task ships today, when
/// they still hash to what was recorded.
fn shipped_content(
    graph: &TaskGraph,
    task: &TaskId,
    rel: &str,
    recorded: Option<&str>,
) -> Option<Vec<u8>> {
    let recorded = recorded?;
    let node = graph.find(task)?;
    let file = graph.task(node).work.files().remove(rel)?;
    // The entry's hash is a cheap first test; the bytes, read now, are the proof.
    if file.entry.hash != recorded {
        return None;
    }
    let bytes = file.data.read().ok()?;
    (hash_bytes(&bytes) == recorded).then(|| bytes.as_ref().clone())
}

/// Compares the shipped content (if it could be rebuilt) with what the host has.
fn compare(
    shipped: Option<&[u8]>,
    found: Option<&FileRead>,
    recorded: Option<&str>,
    scrubber: &Scrubber,
    unified: impl Fn(&str, &str) -> String,
) -> ContentDiff {
    let status = |status| ContentDiff {
        status,
        unified: None,
    };
    let now = match found {
        Some(FileRead::Content(bytes)) => bytes,
        Some(FileRead::TooLarge { .. }) => return status(DiffStatus::TooLarge),
        _ => return status(DiffStatus::Unreadable),
    };
    if recorded.is_some_and(|h| hash_bytes(now) == h) {
        return status(DiffStatus::Same);
    }
    let Some(shipped) = shipped else {
        return status(DiffStatus::ShippedUnavailable);
    };
    if shipped.len() as u64 > DIFF_LIMIT_BYTES {
        return status(DiffStatus::TooLarge);
    }
    let (Ok(old), Ok(new)) = (std::str::from_utf8(shipped), std::str::from_utf8(now)) else {
        return status(DiffStatus::Binary);
    };
    ContentDiff {
        status: DiffStatus::Differs,
        unified: Some(unified(&scrubber.scrub(old), &scrubber.scrub(new))),
    }
}

/// Reads back, from each host, the files of `report` worth diffing: one
/// request per host that has any, all hosts at once.
pub async fn read_back(report: &DriftReport, fleet: &Fleet) -> ReadBack {
    let wanted = report
        .hosts
        .iter()
        .filter_map(|host| {
            let paths: Vec<String> = host
                .files
                .iter()
                .filter(|f| f.worth_reading())
                .map(|f| f.path.clone())
                .collect();
            Some((host.host.clone(), host.id?, paths))
        })
        .collect();
    read_paths(fleet, wanted).await
}

/// Reads `paths` (each up to [`DIFF_LIMIT_BYTES`]) from each host
/// `(name, id, paths)`: one request per host that has any, as many hosts
/// at once as the fleet keeps open; a host with no paths, or unreachable
/// at refresh, is not asked. What
/// `drift --diff` and `plan --diff` both read with.
pub async fn read_paths(
    fleet: &Fleet,
    wanted: Vec<(String, crate::model::HostId, Vec<String>)>,
) -> ReadBack {
    let mut jobs = tokio::task::JoinSet::new();
    for (name, id, paths) in wanted {
        if paths.is_empty() {
            continue;
        }
        let fleet = fleet.clone();
        jobs.spawn(async move {
            let transport = match fleet.lease(id).await {
                Ok(transport) => transport,
                // Unreachable at refresh: the plan already says so.
                Err(TransportError::Again(_)) => return None,
                Err(e) => return Some((name, Err(e.to_string()))),
            };
            let result = transport
                .read_files(&paths, DIFF_LIMIT_BYTES)
                .await
                .map(|found| paths.into_iter().zip(found).collect())
                .map_err(|e| e.to_string());
            Some((name, result))
        });
    }
    let mut all = ReadBack::new();
    while let Some(joined) = jobs.join_next().await {
        if let Some((name, result)) = joined.expect("reading files back does not panic") {
            all.insert(name, result);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(hash: &str, mode: u32) -> ShippedFile {
        ShippedFile {
            hash: hash.into(),
            mode,
            size: 1,
            mtime_ns: 0,
            inode: 1,
        }
    }

    #[test]
    fn observations_say_which_change_it_was() {
        let rec = shipped("abc", 0o644);
        assert_eq!(classify(&Observed::Unchanged, &rec, None), None);
        assert_eq!(classify(&Observed::Hashed("abc".into()), &rec, None), None);
        assert_eq!(
            classify(&Observed::Missing, &rec, None),
            Some((FileChange::Deleted, None, None))
        );
        assert_eq!(
            classify(&Observed::Hashed("def".into()), &rec, None),
            Some((FileChange::Modified, None, None))
        );
        assert_eq!(
            classify(&Observed::Hashed("mode:600".into()), &rec, None),
            Some((FileChange::Mode, Some("0644".into()), Some("0600".into())))
        );
        assert_eq!(
            classify(
                &Observed::Hashed("owner:nobody:nogroup".into()),
                &rec,
                Some("root:root")
            ),
            Some((
                FileChange::Owner,
                Some("root:root".into()),
                Some("nobody:nogroup".into())
            ))
        );
        assert_eq!(
            classify(&Observed::Hashed("not-a-file".into()), &rec, None),
            Some((FileChange::NotAFile, None, None))
        );
    }

    #[test]
    fn content_is_compared_masked_and_only_when_both_sides_are_text() {
        let scrubber = Scrubber::new(vec!["hunter2".into()]);
        let joined = |old: &str, new: &str| format!("{old}|{new}");
        let found = |b: &[u8]| FileRead::Content(b.to_vec());
        let shipped = b"pw = hunter2\n";
        let differs = compare(
            Some(shipped),
            Some(&found(b"pw = hunter2\nextra\n")),
            Some(&hash_bytes(shipped)),
            &scrubber,
            joined,
        );
        assert_eq!(differs.status, DiffStatus::Differs);
        assert_eq!(
            differs.unified.as_deref(),
            Some("pw = ***\n|pw = ***\nextra\n")
        );
        let same = compare(
            None,
            Some(&found(shipped)),
            Some(&hash_bytes(shipped)),
            &scrubber,
            joined,
        );
        assert_eq!(
            same.status,
            DiffStatus::Same,
            "as shipped: mode change only"
        );
        let status = |shipped: Option<&[u8]>, read: FileRead| {
            compare(shipped, Some(&read), Some("recorded"), &scrubber, joined).status
        };
        assert_eq!(status(None, found(b"x")), DiffStatus::ShippedUnavailable);
        assert_eq!(status(Some(b"a"), found(&[0xff, 0xfe])), DiffStatus::Binary);
        assert_eq!(
            status(Some(b"a"), FileRead::TooLarge { size: 1 << 30 }),
            DiffStatus::TooLarge
        );
        assert_eq!(
            status(Some(b"a"), FileRead::Missing),
            DiffStatus::Unreadable
        );
        let big = vec![b'a'; usize::try_from(DIFF_LIMIT_BYTES).unwrap() + 1];
        assert_eq!(status(Some(&big), found(b"x")), DiffStatus::TooLarge);
    }
}
