//! The drift report (`cairn drift`): which hosts no longer match.
//!
//! Drift is a plan read per host. A host has *drifted* when what is on it
//! differs from what cairn recorded (a hand edit, a missing file, a failing
//! check); it is *pending* when the Clusterfile asks for something not
//! applied yet. Both count as out of sync. Hosts that could not be refreshed
//! are *unchecked*. The report is a typed document whose JSON
//! (`drift --json`) is part of the contract (docs/clusterfile.md, "Drift"):
//! its keys have always come out sorted, so every struct here declares its
//! fields in alphabetical order, and a new field goes in its sorted place.

use serde::Serialize;

use super::{Change, ChangeKind, Plan};
use crate::ids::TaskId;
use crate::model::Model;

/// Every checked host's sync status, and the hosts that could not be checked.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub cluster: String,
    /// Each checked host, in Clusterfile order.
    pub hosts: Vec<HostDrift>,
    /// Every checked host matches and none was left unchecked.
    pub in_sync: bool,
    /// Hosts that could not be refreshed, with why.
    pub unchecked: Vec<UncheckedHost>,
}

/// One checked host.
#[derive(Debug, Clone, Serialize)]
pub struct HostDrift {
    pub address: String,
    /// Changed on the host since cairn recorded it.
    pub drifted: Vec<TaskDrift>,
    pub host: String,
    pub in_sync: bool,
    /// Asked for by the Clusterfile, not applied yet.
    pub pending: Vec<TaskDrift>,
}

/// One task that is out of sync, and why.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDrift {
    /// What an apply would do about it.
    pub action: ChangeKind,
    pub reasons: Vec<String>,
    pub task: TaskId,
}

/// A host that could not be checked.
#[derive(Debug, Clone, Serialize)]
pub struct UncheckedHost {
    pub error: String,
    pub host: String,
}

impl DriftReport {
    /// Reads `plan` host by host; hosts left out by `--limit` are not reported.
    pub fn from_plan(plan: &Plan, model: &Model) -> DriftReport {
        let entry = |c: &Change| TaskDrift {
            action: c.kind,
            reasons: c.reasons.clone(),
            task: c.id.clone(),
        };
        let hosts: Vec<HostDrift> = model
            .hosts
            .iter()
            .filter(|h| !plan.excluded_hosts.contains(&h.name))
            .filter(|h| !plan.unreachable.contains_key(&h.name))
            .map(|host| {
                let mine: Vec<&Change> = plan
                    .changes
                    .iter()
                    .filter(|c| c.host == host.name && c.kind != ChangeKind::Noop)
                    .collect();
                HostDrift {
                    address: host.address.clone(),
                    drifted: mine
                        .iter()
                        .filter(|c| c.drifted)
                        .map(|c| entry(c))
                        .collect(),
                    host: host.name.clone(),
                    in_sync: mine.is_empty(),
                    pending: mine
                        .iter()
                        .filter(|c| !c.drifted)
                        .map(|c| entry(c))
                        .collect(),
                }
            })
            .collect();
        let unchecked: Vec<UncheckedHost> = plan
            .unreachable
            .iter()
            .map(|(host, error)| UncheckedHost {
                error: error.clone(),
                host: host.clone(),
            })
            .collect();
        DriftReport {
            cluster: plan.cluster.clone(),
            in_sync: hosts.iter().all(|h| h.in_sync) && unchecked.is_empty(),
            hosts,
            unchecked,
        }
    }

    /// How many checked hosts are out of sync.
    pub fn out_of_sync(&self) -> usize {
        self.hosts.iter().filter(|h| !h.in_sync).count()
    }
}
