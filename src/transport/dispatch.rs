//! [`Transport`]: one host, however it is reached.
//!
//! An enum, not a trait object: the set is closed (this machine, or a host
//! over SSH) and an enum keeps the async methods simple. Each method hands
//! the work to the transport that knows how; where the two differ (a receipt
//! rides on the SSH command that finishes a task, and is a file written
//! after it here), the difference stays behind this enum.

use std::collections::BTreeMap;
use std::time::Duration;

use super::local::LocalTransport;
use super::lock::{BrokenLock, HeldLock, HostLockStatus};
use super::ssh::SshTransport;
use super::{
    CommandOutput, CopySource, FileRead, HostLock, ProbeReport, ProbeRequest, Receipt,
    TransportError,
};
use crate::bundle::ShipFile;
use crate::ids::TaskId;
use crate::state::{LockPolicy, ShippedFile};

/// Files shipped: each one's record, and whether their bytes went with the
/// host's probe (see `Prestage`).
#[derive(Debug)]
pub struct Shipped {
    pub files: BTreeMap<String, ShippedFile>,
    pub with_probe: bool,
}

/// A way to reach one host. Which way is private to this module: nothing
/// outside `transport` can name an SSH or local transport, only ask.
#[derive(Debug, Clone)]
pub struct Transport {
    reach: Reach,
}

#[derive(Debug, Clone)]
enum Reach {
    Local(LocalTransport),
    Ssh(SshTransport),
}

impl Transport {
    pub(super) fn local(transport: LocalTransport) -> Transport {
        Transport {
            reach: Reach::Local(transport),
        }
    }

    pub(super) fn ssh(transport: SshTransport) -> Transport {
        Transport {
            reach: Reach::Ssh(transport),
        }
    }

    /// Closes the connection, if there is one.
    pub(super) async fn close(self) {
        if let Reach::Ssh(t) = self.reach {
            t.close().await;
        }
    }

    /// Runs a shell script (fed on stdin), with an optional working directory
    /// and time limit. With a receipt, the receipt is written when the script
    /// succeeds (over SSH, by the same command).
    pub async fn run(
        &self,
        script: &str,
        cwd: Option<&str>,
        timeout: Option<Duration>,
        receipt: Option<&Receipt>,
    ) -> Result<CommandOutput, TransportError> {
        match &self.reach {
            Reach::Local(t) => {
                let out = t.run(script, cwd, timeout).await?;
                // A capturing step's receipt is written after, with its value.
                if let Some(r) = receipt.filter(|r| out.success() && !r.keep_output) {
                    t.write_receipt(r).await?;
                }
                Ok(out)
            }
            Reach::Ssh(t) => t.run(script, cwd, timeout, receipt).await,
        }
    }

    /// Ships files under `dest` (`""` as the path means `dest` itself is the
    /// file); with a receipt, writes it once the files are in place.
    pub async fn ship(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
        receipt: Option<&Receipt>,
    ) -> Result<Shipped, TransportError> {
        match &self.reach {
            Reach::Local(t) => {
                let shipped = t.ship(dest, files).await?;
                if let Some(r) = receipt {
                    t.write_receipt(r).await?;
                }
                Ok(Shipped {
                    files: shipped,
                    with_probe: false,
                })
            }
            Reach::Ssh(t) => t.ship(dest, files, receipt).await,
        }
    }

    /// Writes a receipt for a task that ran no command on the host.
    pub async fn write_receipt(&self, receipt: &Receipt) -> Result<(), TransportError> {
        match &self.reach {
            Reach::Local(t) => t.write_receipt(receipt).await,
            Reach::Ssh(t) => t.write_receipt(receipt).await,
        }
    }

    /// Removes the receipt of a task that was undone.
    pub async fn forget_receipt(&self, task: &TaskId) -> Result<(), TransportError> {
        match &self.reach {
            Reach::Local(t) => t.forget_receipt(task).await,
            Reach::Ssh(t) => t.forget_receipt(task).await,
        }
    }

    /// After the state renamed this host from `old` (the migration of a
    /// state that named hosts by position): this machine's receipts move
    /// to the new name's folder. An SSH host keeps one receipts folder per
    /// cluster, read under the new names as they are, so nothing moves.
    pub fn adopt_receipts_of(&self, old: &str) -> Result<(), TransportError> {
        match &self.reach {
            Reach::Local(t) => t.adopt_receipts_of(old),
            Reach::Ssh(_) => Ok(()),
        }
    }

    /// Removes everything cairn keeps on the host for this cluster (its
    /// receipts, its lock files), once nothing it did there is left: the
    /// host has left the cluster, or been reset.
    pub async fn forget_host(&self) -> Result<(), TransportError> {
        match &self.reach {
            Reach::Local(t) => t.forget_host().await,
            Reach::Ssh(t) => t.forget_host().await,
        }
    }

    /// Everything refresh asks of a host, in one round trip (plan, drift).
    pub async fn probe(&self, request: &ProbeRequest) -> Result<ProbeReport, TransportError> {
        match &self.reach {
            Reach::Local(t) => t.probe(request).await,
            Reach::Ssh(t) => t.probe(request).await,
        }
    }

    /// What is at each of `paths` now, regular files read up to `limit`
    /// bytes, in one round trip (`drift --diff`). Read-only: no lock.
    pub async fn read_files(
        &self,
        paths: &[String],
        limit: u64,
    ) -> Result<Vec<FileRead>, TransportError> {
        match &self.reach {
            Reach::Local(t) => t.read_files(paths, limit).await,
            Reach::Ssh(t) => t.read_files(paths, limit).await,
        }
    }

    /// Takes this run's lock on the host for the policy's holder and probes
    /// it, in one round trip (apply). A host locked by another live apply is
    /// waited for up to the policy's `--lock-timeout`, then refused with its
    /// owner; a dead holder's commands still running there are waited for
    /// (bounded by their time limits), and a lock whose holder died is taken
    /// over, [`HostLock::stale_owner`] saying whose it was.
    pub async fn lock_and_probe(
        &self,
        policy: &LockPolicy,
        request: &ProbeRequest,
    ) -> Result<(HostLock, ProbeReport), TransportError> {
        match &self.reach {
            Reach::Local(t) => {
                t.wait_for_dead_runs(policy).await?;
                Ok((HostLock::by_cluster_lock(), t.probe(request).await?))
            }
            Reach::Ssh(t) => {
                let (lock, report) = t.lock_and_probe(policy, request).await?;
                Ok((HostLock::ssh(lock), report))
            }
        }
    }

    /// This host, its commands named as run for `task` in the records of
    /// what is in flight (which the next apply reads if this one dies).
    #[must_use]
    pub fn for_task(&self, task: &TaskId) -> Transport {
        let reach = match &self.reach {
            Reach::Local(t) => Reach::Local(t.for_task(task.as_str())),
            Reach::Ssh(t) => Reach::Ssh(t.for_task(task.as_str())),
        };
        Transport { reach }
    }

    /// Who holds this host's lock, without taking it (`cairn unlock`).
    pub async fn lock_status(&self) -> Result<HostLockStatus, TransportError> {
        match &self.reach {
            Reach::Local(t) => Ok(t.lock_status()),
            Reach::Ssh(t) => t.lock_status().await,
        }
    }

    /// Breaks the lock `seen` showed (`cairn unlock`): its holder's
    /// processes there are killed, unless the lock changed hands since.
    pub async fn break_lock(&self, seen: &HeldLock) -> Result<BrokenLock, TransportError> {
        match &self.reach {
            Reach::Local(t) => Ok(t.break_lock()),
            Reach::Ssh(t) => t.break_lock(seen).await,
        }
    }

    /// Removes files cairn shipped, if they still hold what it shipped;
    /// returns the paths kept because someone changed them.
    /// With a receipt, the same command leaves it once the files are gone.
    pub async fn remove(
        &self,
        dest: &str,
        shipped: &BTreeMap<String, ShippedFile>,
        receipt: Option<&Receipt>,
    ) -> Result<Vec<String>, TransportError> {
        match &self.reach {
            Reach::Local(t) => {
                let kept = t.remove(dest, shipped).await?;
                if let Some(r) = receipt {
                    t.write_receipt(r).await?;
                }
                Ok(kept)
            }
            Reach::Ssh(t) => t.remove(dest, shipped, receipt).await,
        }
    }

    /// Copies `files` (one `""` entry for a lone file) to `dest` on the host
    /// as `cp -r` would: into `dest/NAME` when `dest` ends with `/` or is a
    /// folder there, else to `dest` itself (relative: where the host's
    /// scripts start). Each file is staged and renamed into place. Returns
    /// the path the copy landed at. Records nothing (`cairn cp`).
    pub async fn copy_in(
        &self,
        dest: &str,
        source: CopySource<'_>,
        files: &BTreeMap<String, ShipFile>,
    ) -> Result<String, TransportError> {
        match &self.reach {
            Reach::Local(t) => t.copy_in(dest, source, files).await,
            Reach::Ssh(t) => t.copy_in(dest, source, files).await,
        }
    }

    /// Fetches the host's file or folder `src` (a link given as `src` is
    /// followed) into `staging`, an empty local folder, and returns the path
    /// of what arrived: a file or folder in `staging` (named as on the host)
    /// or, with `contents`, a folder holding what `src` holds.
    pub async fn fetch(
        &self,
        src: &str,
        contents: bool,
        staging: &std::path::Path,
    ) -> Result<std::path::PathBuf, TransportError> {
        match &self.reach {
            Reach::Local(t) => t.fetch(src, contents, staging).await,
            Reach::Ssh(t) => t.fetch(src, contents, staging).await,
        }
    }
}
