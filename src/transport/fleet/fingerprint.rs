//! What a host's plan rests on, to tell whether a host closed after its
//! probe is still as the plan found it when it is reopened.

use std::collections::BTreeMap;

use crate::ids::TaskId;
use crate::transport::{Facts, Observed, ProbeReport, ReceiptInfo};

/// What the plan of a host rests on: what cairn recorded and shipped there.
/// A `check`'s result is not part of it: it may change because of this
/// run's own work on other hosts, and a host kept open is not asked again
/// either.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Fingerprint {
    facts: Facts,
    files: Vec<BTreeMap<String, Observed>>,
    receipts: BTreeMap<TaskId, ReceiptInfo>,
}

impl Fingerprint {
    pub(super) fn of(report: &ProbeReport) -> Fingerprint {
        Fingerprint {
            facts: report.facts.clone(),
            files: report.files.clone(),
            receipts: report.receipts.clone(),
        }
    }

    /// What differs, in words, from `earlier`.
    pub(super) fn differences(&self, earlier: &Fingerprint) -> String {
        let mut what = Vec::new();
        if self.facts != earlier.facts {
            what.push("its facts".to_string());
        }
        if self.files != earlier.files {
            what.push("files cairn shipped there".to_string());
        }
        if self.receipts != earlier.receipts {
            let changed = self
                .receipts
                .iter()
                .filter(|(id, r)| earlier.receipts.get(*id) != Some(*r))
                .map(|(id, _)| id.as_str())
                .chain(
                    earlier
                        .receipts
                        .keys()
                        .filter(|id| !self.receipts.contains_key(*id))
                        .map(TaskId::as_str),
                )
                .take(3)
                .collect::<Vec<_>>()
                .join(", ");
            what.push(format!("receipts ({changed})"));
        }
        what.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskKey;
    use crate::transport::CheckResult;

    fn receipt(task: &str, key: &str) -> (TaskId, ReceiptInfo) {
        let task = TaskId::parse(task).unwrap();
        let info = ReceiptInfo {
            task: task.clone(),
            key: TaskKey::parse(key).unwrap(),
            finished_at: "2026-12-02T00:00:00Z".into(),
            by: "ops@laptop".into(),
            captured: None,
        };
        (task, info)
    }

    fn report(receipts: &[(&str, &str)], file: Observed, check: Option<i32>) -> ProbeReport {
        ProbeReport {
            facts: Facts::default(),
            files: vec![BTreeMap::from([("conf/a".to_string(), file)])],
            checks: vec![CheckResult { code: check }],
            receipts: receipts.iter().map(|(t, k)| receipt(t, k)).collect(),
        }
    }

    #[test]
    fn a_host_is_the_same_when_what_cairn_left_there_is_and_a_check_does_not_count() {
        let key = "a".repeat(64);
        let probed = report(&[("step.a@h", &key)], Observed::Unchanged, Some(1));
        let earlier = Fingerprint::of(&probed);
        let check_now_passes = report(&[("step.a@h", &key)], Observed::Unchanged, Some(0));
        assert!(Fingerprint::of(&check_now_passes) == earlier);

        let edited = report(
            &[("step.a@h", &key)],
            Observed::Hashed("ff".into()),
            Some(1),
        );
        let now = Fingerprint::of(&edited);
        assert!(now != earlier);
        assert_eq!(now.differences(&earlier), "files cairn shipped there");

        let other_key = "b".repeat(64);
        let rerun = report(
            &[("step.a@h", &other_key), ("step.b@h", &key)],
            Observed::Unchanged,
            Some(1),
        );
        assert_eq!(
            Fingerprint::of(&rerun).differences(&earlier),
            "receipts (step.a@h, step.b@h)"
        );
        let forgotten = report(&[], Observed::Missing, Some(1));
        assert_eq!(
            Fingerprint::of(&forgotten).differences(&earlier),
            "files cairn shipped there, receipts (step.a@h)"
        );
    }
}
