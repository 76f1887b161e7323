//! [`SshRun`]: what one run's SSH connections share.
//!
//! A private folder (mode 0700, short path: Unix socket paths are limited
//! to about 100 bytes) holds the askpass server's socket (`askpass`) and
//! the control sockets of shared jump-host connections (`j-…`): the first
//! host behind a bastion opens one master connection to it, and every
//! other host's hop rides on it (the `ControlPath` of the hop config that
//! `master` writes). Those connections are ssh processes of cairn's own,
//! ended with the run (or by their parent-death signal when cairn dies),
//! and the folder goes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::askpass::AskpassServer;

/// The run's SSH folder, its askpass server (started when a host needs
/// one), and the jump-host connections opened through it.
pub(crate) struct SshRun {
    dir: tempfile::TempDir,
    askpass: OnceLock<std::io::Result<AskpassServer>>,
    /// First jump hosts, each opened once for every host behind it: the
    /// shared connection's ssh process, when it could log in.
    jumps: Mutex<HashMap<String, Arc<JumpCell>>>,
}

impl std::fmt::Debug for SshRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshRun")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

type JumpCell = tokio::sync::OnceCell<Mutex<Option<tokio::process::Child>>>;

/// Ends an ssh process of cairn's: SIGTERM now, then the kill that its
/// dropping sends (the processes are `kill_on_drop`); tokio reaps it.
pub(super) fn end(process: &mut tokio::process::Child) {
    if let Some(pid) = process.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) on a child of ours that has not been reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Where connections keep their control sockets: short, because a unix
/// socket path is limited to about 100 bytes.
pub(super) fn control_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

impl SshRun {
    /// Makes the run's private folder.
    pub(crate) fn start() -> std::io::Result<SshRun> {
        // tempfile makes folders 0700: only this user reaches the sockets.
        let dir = tempfile::Builder::new()
            .prefix(".cairn-")
            .tempdir_in(control_dir())?;
        Ok(SshRun {
            dir,
            askpass: OnceLock::new(),
            jumps: Mutex::default(),
        })
    }

    /// The folder: where jump-host control sockets go.
    pub(super) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The askpass server, started on first use (only runs with a password
    /// or passphrase have one).
    pub(super) fn askpass(&self) -> Result<&AskpassServer, String> {
        self.askpass
            .get_or_init(|| AskpassServer::start(&self.dir.path().join("askpass")))
            .as_ref()
            .map_err(|e| format!("cannot start cairn's askpass helper: {e}"))
    }

    /// Runs `open` once per first jump host `hop` (the hosts behind it
    /// wait for the first to finish): it opens the connection the others
    /// share, and the run keeps it until [`SshRun::close`]. Whether it
    /// worked matters to no one here: a host whose hop fails says so when
    /// its own connection fails.
    pub(super) async fn open_jump_once<F>(&self, hop: &str, open: F)
    where
        F: std::future::Future<Output = Option<tokio::process::Child>>,
    {
        let cell = self
            .jumps
            .lock()
            .expect("jump hosts lock")
            .entry(hop.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| async { Mutex::new(open.await) }).await;
    }

    /// Ends every shared jump-host connection (the hosts behind them have
    /// closed theirs first).
    pub(crate) fn close(&self) {
        let jumps = self.jumps.lock().expect("jump hosts lock");
        for cell in jumps.values() {
            if let Some(process) = cell.get()
                && let Some(mut process) = process.lock().expect("jump process lock").take()
            {
                end(&mut process);
            }
        }
    }
}

impl Drop for SshRun {
    fn drop(&mut self) {
        self.close();
    }
}
