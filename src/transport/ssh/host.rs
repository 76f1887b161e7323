//! `SshTransport`: one host over SSH, and the commands run on it.
//!
//! A host's commands go to its long-lived shell (see `shells`), opened on
//! first use or adopted from the host lock's channel. A user script runs in
//! its working directory and, with a receipt, writes the receipt in the same
//! command when it succeeds, so "done" on the host and "receipt written"
//! can never disagree.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openssh::Session;

use super::receipts::{MAKE_RECEIPTS_DIR, state_dir_snippet};
use super::shells::{Broken, Shells};
use crate::bundle::stream::{Stream, StreamCache};
use crate::model::Secret;
use crate::transport::{CommandOutput, Receipt, TransportError, shell_quote};

/// Exit code and stderr marker of a script whose working directory is missing.
pub(super) const CWD_MISSING_CODE: i32 = 211;
pub(super) const CWD_MISSING_MARK: &str = "cairn: working directory missing: ";

/// How long past a step's own timeout cairn waits for a host that stopped answering.
pub(super) const GRACE: Duration = Duration::from_secs(10);

/// How commands become root, if they do.
#[derive(Debug, Clone)]
pub(super) enum Sudo {
    No,
    NoPassword,
    Password(Secret),
}

/// One host reached over SSH: its master connection and its shells.
#[derive(Clone)]
pub(crate) struct SshTransport {
    pub(super) host: String,
    pub(super) cluster: String,
    pub(super) session: Arc<Session>,
    /// The master connection's folder; dropping the last copy shuts it down.
    pub(super) master: Arc<super::master::Master>,
    pub(super) sudo: Sudo,
    /// Whether the host has `zstd`, once a probe has looked.
    pub(super) zstd: Arc<OnceLock<bool>>,
    /// The host's long-lived shells, which run its commands.
    pub(super) shells: Arc<Shells>,
    /// The run's packed file streams, shared by every host.
    pub(super) streams: Arc<StreamCache>,
    /// The files sent with the lock and the probe, until the task that
    /// ships them takes them (see `Prestage`).
    pub(super) prestaged: Arc<std::sync::Mutex<Option<super::shells::EarlyAnswer>>>,
    /// The task this copy runs commands for, named in the lock's record of
    /// commands in flight (see [`SshTransport::for_task`]).
    pub(super) label: Option<Arc<str>>,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl SshTransport {
    /// Closes the host's shells, then the master connection (when no command holds it any more).
    pub(crate) async fn close(self) {
        self.shells.close(false).await;
        drop(self.shells);
        if let Ok(session) = Arc::try_unwrap(self.session) {
            let _ = session.close().await;
        }
        // Ended and waited for even while a copy of this transport is still
        // held (a finished task's): the fleet counts on its process being
        // gone before it opens another host. The folder goes with the last copy.
        self.master.shut().await;
    }

    /// This host, its commands labelled as run for `task`.
    pub(crate) fn for_task(&self, task: &str) -> SshTransport {
        SshTransport {
            label: Some(task.into()),
            ..self.clone()
        }
    }

    pub(super) fn error(&self, message: impl Into<String>) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            message: message.into(),
        }
    }

    /// Runs `script` (plus `data` as its stdin) on the host's shell, under
    /// `timeout(1)` there when it has a `timeout`.
    pub(super) async fn exec(
        &self,
        script: &str,
        data: Option<&Stream>,
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, TransportError> {
        self.exec_limited(script, data, timeout, timeout.map(|t| t + GRACE))
            .await
    }

    /// Runs one of cairn's own scripts (shipping, receipts): they end by
    /// themselves, so the host runs no `timeout(1)` for them, which would
    /// be a process per task; cairn waits at most `wait` for the answer,
    /// then takes the host as no longer answering.
    pub(super) async fn exec_own(
        &self,
        script: &str,
        data: Option<&Stream>,
        wait: Duration,
    ) -> Result<CommandOutput, TransportError> {
        self.exec_limited(script, data, None, Some(wait)).await
    }

    /// [`SshTransport::exec`]'s body: `timeout` limits the command on the
    /// host, `wait` cairn's wait for its answer.
    async fn exec_limited(
        &self,
        script: &str,
        data: Option<&Stream>,
        timeout: Option<Duration>,
        wait: Option<Duration>,
    ) -> Result<CommandOutput, TransportError> {
        let shell = self.shells.get(|| self.open_shell()).await?;
        let ran = match shell
            .run(script, data, timeout, wait, self.label.as_deref())
            .await
        {
            Ok(ran) => ran,
            Err(Broken::TimedOut) => {
                let limit = timeout.or(wait).expect("only a limited command times out");
                return Ok(timed_out(limit, " (the host stopped answering)"));
            }
            Err(Broken::Lost(why)) => {
                return Err(self.error(format!("the connection was lost: {why}")));
            }
        };
        let code = Some(ran.code);
        if let Some(limit) = timeout
            && matches!(code, Some(124 | 137))
        {
            // What it wrote before it was stopped: for a hung step, the only clue.
            return Ok(CommandOutput {
                stdout: ran.stdout,
                ..timed_out(limit, "")
            });
        }
        if code == Some(CWD_MISSING_CODE) {
            let err = String::from_utf8_lossy(&ran.stderr);
            if let Some(dir) = err.lines().find_map(|l| l.strip_prefix(CWD_MISSING_MARK)) {
                return Err(TransportError::WorkingDirMissing {
                    host: self.host.clone(),
                    dir: dir.to_string(),
                });
            }
        }
        Ok(CommandOutput {
            code,
            stdout: ran.stdout,
            stderr: ran.stderr,
            combined: None,
            timed_out: false,
        })
    }

    /// Runs a user script in `cwd`; with a receipt, writes it when the
    /// script succeeds (keeping its output beside it, for a capturing
    /// step's: see [`Receipt::keep_output`]). A step that captures nothing
    /// writes both streams into one, so its output comes back in the order
    /// written (`combined`), at no cost; a capturing step keeps stdout
    /// apart, and its failure shows stdout, then stderr.
    pub(crate) async fn run(
        &self,
        script: &str,
        cwd: Option<&str>,
        timeout: Option<Duration>,
        receipt: Option<&Receipt>,
    ) -> Result<CommandOutput, TransportError> {
        let mut full = cd_prefix(cwd);
        match receipt {
            Some(r) if r.keep_output => {
                // The output goes to a private file first, which becomes the
                // kept output beside the receipt, and then to cairn.
                let _ = write!(
                    full,
                    "{dir}cairn_k=\"$cairn_d/receipts/.{out}.$$\"\n{{ {MAKE_RECEIPTS_DIR} && (umask 077 && : > \"$cairn_k\"); }} 2>/dev/null || cairn_k=\nif [ -n \"$cairn_k\" ]; then (eval {script}) > \"$cairn_k\"; else (eval {script}); fi\ncairn_rc=$?\nif [ -n \"$cairn_k\" ]; then\nif [ $cairn_rc -eq 0 ] && mv -f \"$cairn_k\" \"$cairn_d/receipts/{out}\"; then\n{receipt}cat \"$cairn_d/receipts/{out}\"\nelse\ncat \"$cairn_k\"; rm -f \"$cairn_k\"\nfi\nfi\n",
                    dir = state_dir_snippet(&self.cluster),
                    out = r.output_file_name(),
                    script = shell_quote(script),
                    receipt = self.receipt_snippet(r),
                );
            }
            Some(r) => {
                // Nothing reads this step's stdout alone (it captures
                // nothing): both streams go to one file, in the order
                // written, which is what a failure shows.
                let _ = write!(full, "(eval {}) 2>&1\ncairn_rc=$?\n", shell_quote(script));
                full.push_str("if [ $cairn_rc -eq 0 ]; then\n");
                full.push_str(&self.receipt_snippet(r));
                full.push_str("fi\n");
            }
            None => {
                let _ = write!(full, "(eval {})\ncairn_rc=$?\n", shell_quote(script));
            }
        }
        full.push_str("exit $cairn_rc\n");
        let merged = receipt.is_some_and(|r| !r.keep_output);
        let mut out = self.exec(&full, None, timeout).await?;
        if merged && !out.timed_out {
            out.combined = Some(out.stdout.clone());
        }
        Ok(out)
    }
}

pub(super) fn cd_prefix(cwd: Option<&str>) -> String {
    match cwd {
        Some(dir) => format!(
            "cd {q} 2>/dev/null || {{ echo '{CWD_MISSING_MARK}'{q} >&2; exit {CWD_MISSING_CODE}; }}\n",
            q = shell_quote(dir)
        ),
        None => String::new(),
    }
}

pub(super) fn timed_out(limit: Duration, why: &str) -> CommandOutput {
    CommandOutput {
        code: None,
        stdout: Vec::new(),
        stderr: format!("timed out after {}{why}", humantime::format_duration(limit)).into_bytes(),
        combined: None,
        timed_out: true,
    }
}
