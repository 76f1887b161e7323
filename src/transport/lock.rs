//! The lock an apply holds on each host, whatever the transport, and what
//! `cairn unlock` sees of it and does to it.
//!
//! `Transport::lock_and_probe` takes it in the same round trip as the
//! refresh probe; the apply holds it until it ends and then releases it.
//! Over SSH it is a `flock` on the host held by a remote shell that lives as
//! long as cairn's channel, and by the commands that shell still waits for
//! (see `ssh::lock`, which also says how a dead holder is waited for). This
//! machine needs no lock of its own: its receipts live in the cluster's
//! state folder, which the cluster lock (`state::lock`) already keeps to one
//! apply at a time; what a dead apply left running here is recorded in that
//! folder and waited for the same way (see `local::in_flight`).

use super::ssh;
use crate::state::InFlight;

/// The lock this run holds on one host; [`HostLock::release`] lets it go.
pub struct HostLock {
    held: Held,
}

enum Held {
    Ssh(ssh::SshLock),
    /// Covered by the cluster lock (see the module docs).
    ByClusterLock,
}

impl HostLock {
    pub(super) fn ssh(lock: ssh::SshLock) -> HostLock {
        HostLock {
            held: Held::Ssh(lock),
        }
    }

    pub(super) fn by_cluster_lock() -> HostLock {
        HostLock {
            held: Held::ByClusterLock,
        }
    }

    /// The owner of a stale lock this run took over (its holder died), as shown to the operator.
    pub fn stale_owner(&self) -> Option<&str> {
        match &self.held {
            Held::Ssh(lock) => lock.stale.as_deref(),
            Held::ByClusterLock => None,
        }
    }

    /// Releases the lock.
    pub async fn release(self) {
        match self.held {
            Held::Ssh(lock) => lock.release().await,
            Held::ByClusterLock => {}
        }
    }
}

/// A host's lock as `cairn unlock` finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostLockStatus {
    /// Nobody holds it. `left_owner`: an owner file left behind by a holder
    /// killed on the host (the next apply takes it over).
    Free {
        left_owner: Option<String>,
    },
    Held(HeldLock),
}

/// A lock someone holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    /// Who, as the operator reads it.
    pub holder: String,
    /// The owner file's line as found, so that breaking it can check it
    /// did not change hands since the operator confirmed.
    pub(super) owner_line: String,
    pub heartbeat_age: Option<u64>,
    /// Why the holder is known to be dead, if it is.
    pub dead: Option<String>,
    /// The holder's commands still running there.
    pub in_flight: Vec<InFlight>,
}

/// What breaking a lock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenLock {
    /// The holder's processes there were killed; the lock is free.
    Killed,
    /// They could not all be killed: the lock file was moved aside, so the
    /// next apply takes a new one.
    MovedAside,
    /// Someone else took the lock since it was shown: left alone.
    ChangedHands,
    /// It had come free by itself.
    WasFree,
}
