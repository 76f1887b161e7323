//! The lock an apply holds on each host, whatever the transport.
//!
//! `Transport::lock_and_probe` takes it in the same round trip as the
//! refresh probe; the apply holds it until it ends and then releases it.
//! Over SSH it is a `flock` on the host held by a remote shell that lives as
//! long as cairn's channel (see `ssh::lock`). This machine needs none of its
//! own: its receipts live in the cluster's state folder, which the cluster
//! lock (`state::lock`) already keeps to one apply at a time.

use super::ssh;

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
