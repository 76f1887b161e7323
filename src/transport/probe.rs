//! What refresh asks of a host, and what the host answers, in one round trip.
//!
//! Refresh (in `plan`) builds one [`ProbeRequest`] per host: the files cairn
//! shipped there (as recorded, with their stat) and the `check` of every step
//! that has one. A transport answers with a [`ProbeReport`] in the same
//! order, plus the host's facts and the receipts cairn left on it. These
//! types are the whole vocabulary between planning and a host: the plan
//! never learns how a transport gathered them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ReceiptInfo;
use crate::bundle::ShipFile;
use crate::ids::TaskId;
use crate::state::ShippedFile;

/// What a host has at a path cairn shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Missing,
    /// Stat unchanged since cairn shipped it: the content is taken as shipped.
    Unchanged,
    /// Rehashed: the content's sha256 now.
    Hashed(String),
}

impl Observed {
    /// What a `Hashed` observation says when the probe saw something other
    /// than content change: the file's mode (`mode:644`), its owner
    /// (`owner:nobody:nogroup`), or no regular file (`not-a-file`). A plan
    /// treats each as a changed hash, so an apply ships the file again.
    pub fn pseudo_hash(&self) -> Option<&str> {
        match self {
            Observed::Hashed(h)
                if h.starts_with("mode:") || h.starts_with("owner:") || h == "not-a-file" =>
            {
                Some(h)
            }
            _ => None,
        }
    }
}

impl ProbeRequest {
    /// The owner the Clusterfile sets for `self.files[i]`, if it sets one.
    pub(super) fn owner_of(&self, i: usize) -> Option<&str> {
        self.owners
            .iter()
            .find(|(at, _)| *at == i)
            .map(|(_, owner)| owner.as_str())
    }
}

/// How a file's owner is read on a host: `stat -c` with this format.
pub(super) const OWNER_STAT_FORMAT: &str = "%u:%g:%U:%G";

/// What a single file is observed as once its owner is known: a file
/// whose content is as recorded (`recorded_hash`) but whose owner is not
/// `want` is observed as an owner change; anything else stays as it was.
pub(super) fn with_owner(
    observed: Observed,
    recorded_hash: &str,
    want: &str,
    found: &str,
) -> Observed {
    let as_recorded = match &observed {
        Observed::Unchanged => true,
        Observed::Hashed(h) => h == recorded_hash,
        Observed::Missing => false,
    };
    if as_recorded {
        owner_observation(want, found).unwrap_or(observed)
    } else {
        observed
    }
}

/// What a file with owner `found` (as [`OWNER_STAT_FORMAT`] prints it)
/// is observed as, when the Clusterfile wants `expected` (`user` or
/// `user:group`, names or numbers): `None` when it matches.
fn owner_observation(expected: &str, found: &str) -> Option<Observed> {
    let mut fields = found.trim().splitn(4, ':');
    let (Some(uid), Some(gid), Some(user), Some(group)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        // Not read (the file is gone: that is reported on its own).
        return None;
    };
    let (want_user, want_group) = match expected.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (expected, None),
    };
    let user_ok = want_user == uid || want_user == user;
    let group_ok = want_group.is_none_or(|g| g == gid || g == group);
    (!(user_ok && group_ok)).then(|| Observed::Hashed(format!("owner:{user}:{group}")))
}

/// Facts a probe reads off a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    /// Whether `zstd` is there to unpack compressed file streams.
    pub zstd: bool,
}

/// A `check` command to run during a probe.
#[derive(Debug, Clone)]
pub struct CheckProbe {
    pub script: String,
    pub cwd: Option<String>,
    pub timeout: Duration,
}

/// Everything a refresh wants to know about one host, asked in one go.
#[derive(Debug, Clone, Default)]
pub struct ProbeRequest {
    /// Shipped files to look at: (destination, files as recorded).
    pub files: Vec<(String, BTreeMap<String, ShippedFile>)>,
    /// Single files whose owner the Clusterfile sets: (index into `files`,
    /// `user` or `user:group`). One found with another owner is observed
    /// as changed (see `with_owner`), so a plan repairs it.
    pub owners: Vec<(usize, String)>,
    pub checks: Vec<CheckProbe>,
    /// A file set to send with the lock and the probe, for an apply that
    /// will ship it whatever the probe finds (see [`Prestage`]).
    pub prestage: Option<Box<Prestage>>,
}

/// Files an apply will ship to a host whatever its probe finds: a bundle
/// or file task the state has no record of and that waits for nothing, on
/// an apply that asks nobody. Their stream is sent on the lock's channel
/// right behind the probe, so its bytes travel while the host is locked
/// and probed, and is unpacked into a staging folder only: the task, once
/// the plan has it, moves it into place (or it is removed with the
/// host's shell when the task does not run).
#[derive(Debug, Clone)]
pub struct Prestage {
    pub dest: String,
    /// Shared by the hosts that get the same files.
    pub files: std::sync::Arc<BTreeMap<String, ShipFile>>,
    /// When its stream may go, beside the other hosts' (see `turns`):
    /// `None`, at once.
    pub turn: Option<super::StreamTurn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckResult {
    /// Exit code; `None` when it timed out, was killed, or its working
    /// directory does not exist (the step has not set it up): the check
    /// does not pass.
    pub code: Option<i32>,
}

/// The answer to a [`ProbeRequest`], in the same order.
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    pub facts: Facts,
    pub files: Vec<BTreeMap<String, Observed>>,
    pub checks: Vec<CheckResult>,
    /// Receipts found on the host, by task id.
    pub receipts: BTreeMap<TaskId, ReceiptInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_matches_by_name_or_number_and_group_only_when_given() {
        let found = "0:0:root:root";
        for same in ["root", "0", "root:root", "0:0", "root:0"] {
            assert_eq!(owner_observation(same, found), None, "{same}");
        }
        assert_eq!(
            owner_observation("root:root", "65534:65534:nobody:nogroup"),
            Some(Observed::Hashed("owner:nobody:nogroup".into()))
        );
        assert_eq!(
            owner_observation("root:adm", found),
            Some(Observed::Hashed("owner:root:root".into()))
        );
        assert_eq!(owner_observation("root", ""), None, "not read: no claim");
        assert_eq!(
            Observed::Hashed("owner:a:b".into()).pseudo_hash(),
            Some("owner:a:b")
        );
        assert_eq!(Observed::Hashed("ab12".into()).pseudo_hash(), None);
    }
}
