//! The order in which recorded tasks are undone: the reverse of the order
//! they ran in, as the dependency edges recorded with them say.
//!
//! A record `a` that waited for `b` (b is in a's recorded dependencies) is
//! undone before `b`: kubeadm's reset before the bundle holding its script
//! is removed, a join's undo before the init's. A step that ran in a folder
//! a bundle or file shipped (its `cwd` under that destination, on the same
//! host) is undone before those files are removed, even without an edge.
//! Among records with no order between them, the newest goes first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::ids::TaskId;
use crate::state::{RecordDetail, TaskRecord};

/// For each record (by index into `records`), the records that must be
/// undone before it.
pub fn undo_before(records: &[(&TaskId, &TaskRecord)]) -> Vec<BTreeSet<usize>> {
    let index: BTreeMap<&TaskId, usize> = records
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let mut before: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); records.len()];
    for (a, (_, record)) in records.iter().enumerate() {
        for dep in record.inputs.deps.keys() {
            if let Some(&b) = index.get(dep) {
                // `a` waited for `b`: undo `a` first.
                before[b].insert(a);
            }
        }
    }
    for (a, (_, step)) in records.iter().enumerate() {
        let RecordDetail::Step { cwd: Some(cwd), .. } = &step.detail else {
            continue;
        };
        for (b, (_, shipper)) in records.iter().enumerate() {
            if a == b || step.host().name != shipper.host().name {
                continue;
            }
            if let Some(dest) = shipper.detail.shipped_dest()
                && Path::new(cwd).starts_with(dest)
            {
                before[b].insert(a);
            }
        }
    }
    before
}

/// `records` sorted so that each comes after every record that must be
/// undone before it; among free ones, the newest (highest `seq`) first.
/// A cycle (which recorded edges cannot form) is broken by `seq`.
pub fn undo_order<'a>(
    records: &[(&'a TaskId, &'a TaskRecord)],
) -> Vec<(&'a TaskId, &'a TaskRecord)> {
    let before = undo_before(records);
    let mut waiting: Vec<usize> = before.iter().map(BTreeSet::len).collect();
    let mut unlocks: Vec<Vec<usize>> = vec![Vec::new(); records.len()];
    for (b, firsts) in before.iter().enumerate() {
        for &a in firsts {
            unlocks[a].push(b);
        }
    }
    let mut done = vec![false; records.len()];
    let mut order = Vec::with_capacity(records.len());
    while order.len() < records.len() {
        let next = (0..records.len())
            .filter(|&i| !done[i] && waiting[i] == 0)
            .max_by_key(|&i| records[i].1.seq)
            .or_else(|| {
                (0..records.len())
                    .filter(|&i| !done[i])
                    .max_by_key(|&i| records[i].1.seq)
            })
            .expect("records are left");
        done[next] = true;
        order.push(records[next]);
        for &b in &unlocks[next] {
            waiting[b] = waiting[b].saturating_sub(1);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::undo_order;
    use crate::hash::{ActionSpec, HostIdentity, KEY_FORMAT, KeyInputs};
    use crate::ids::{TaskId, TaskKey};
    use crate::model::TransportKind;
    use crate::state::{RecordDetail, TaskRecord};

    fn record(seq: u64, deps: &[&str], detail: RecordDetail) -> TaskRecord {
        let inputs = KeyInputs {
            format: KEY_FORMAT,
            action: ActionSpec::Step {
                name: "x".into(),
                run: "true".into(),
                cwd: None,
                check: None,
                undo: None,
                capture: None,
                capture_secret: false,
                timeout_ms: None,
                retries: 0,
                once: false,
            },
            host: HostIdentity {
                name: "h".into(),
                address: "10.0.0.2".into(),
                port: 22,
                user: "root".into(),
                transport: TransportKind::Ssh,
            },
            vars: BTreeMap::new(),
            deps: deps
                .iter()
                .map(|d| (TaskId::parse(d).unwrap(), TaskKey::from_digest([0; 32])))
                .collect(),
        };
        TaskRecord {
            key: inputs.key(),
            inputs,
            detail,
            finished_at: String::new(),
            seq,
        }
    }

    fn step_in(cwd: Option<&str>) -> RecordDetail {
        RecordDetail::Step {
            captured: None,
            captured_masked: false,
            undo: Some("true".into()),
            undo_vars: BTreeMap::new(),
            cwd: cwd.map(String::from),
        }
    }

    #[test]
    fn dependents_first_and_a_bundle_after_the_undos_that_run_in_its_folder() {
        let bundle = RecordDetail::Bundle {
            dest: "/opt/k8s".into(),
            shipped: BTreeMap::new(),
        };
        let ids: Vec<TaskId> = [
            "bundle.k8s@h",
            "step.reset@h",
            "step.join@h",
            "step.clean@h",
        ]
        .iter()
        .map(|t| TaskId::parse(t).unwrap())
        .collect();
        // Completion order is deliberately misleading: the bundle finished
        // last (it was re-shipped), and `clean` (no edge to the bundle) first.
        let records = [
            record(9, &[], bundle),
            record(5, &["bundle.k8s@h"], step_in(None)),
            record(7, &["step.reset@h"], step_in(None)),
            record(1, &[], step_in(Some("/opt/k8s/scripts"))),
        ];
        let pairs: Vec<(&TaskId, &TaskRecord)> = ids.iter().zip(records.iter()).collect();
        let order: Vec<&str> = undo_order(&pairs)
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        let pos = |t: &str| order.iter().position(|o| *o == t).unwrap();
        assert!(pos("step.join@h") < pos("step.reset@h"), "{order:?}");
        assert!(pos("step.reset@h") < pos("bundle.k8s@h"), "{order:?}");
        assert!(pos("step.clean@h") < pos("bundle.k8s@h"), "{order:?}");
        assert_eq!(order.last(), Some(&"bundle.k8s@h"));
    }
}
