//! Running a script on this machine: `sh -c RUNNER`, the script on stdin,
//! in a process group of its own. Its stdout and stderr are read as they
//! come, each kept apart (a captured value is stdout alone) and both
//! together in the order they arrived, for the tail a failure shows.
//!
//! The group is what a timeout kills (the script and everything it
//! started), and what an abandoned apply kills: each running group is
//! registered in the run's [`RunningGroups`] while it runs, so a second
//! Ctrl-C can end them all at once. A run that has a state folder also
//! records each one there while it runs (`in_flight`), so that if cairn is
//! killed the next apply can wait for it.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStderr, ChildStdout};

use super::in_flight::Recorder;
use crate::transport::CommandOutput;

/// The fixed command line of every script: read the script from stdin, then
/// run it with stdin at end-of-file. Neither the script nor a secret in it
/// is ever on a command line that `ps` could show.
const RUNNER: &str = "s=$(cat) && eval \"$s\"";

/// Process groups of the scripts running now on this machine, for one run.
#[derive(Debug, Default)]
pub(crate) struct RunningGroups {
    groups: Mutex<Vec<u32>>,
    /// Where each script is recorded while it runs, if anywhere.
    recorder: Option<Recorder>,
}

impl RunningGroups {
    /// Groups also recorded in `dir` (a cluster's `inflight/` folder) while they run.
    pub(crate) fn recording(dir: std::path::PathBuf) -> RunningGroups {
        RunningGroups {
            groups: Mutex::default(),
            recorder: Some(Recorder::new(dir)),
        }
    }

    /// Kills every running script with everything it started.
    pub(crate) fn kill_all(&self) {
        for pid in self
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            kill_group(*pid);
        }
    }

    fn register(self: &Arc<Self>, pid: u32, what: &Running<'_>) -> Registered {
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(pid);
        let record = self
            .recorder
            .as_ref()
            .and_then(|r| r.started(pid, what.host, what.label, what.timeout));
        Registered {
            groups: self.clone(),
            pid,
            record,
        }
    }
}

/// What a script runs for: its host and task, and its time limit.
pub(super) struct Running<'a> {
    pub host: &'a str,
    pub label: &'a str,
    pub timeout: Option<Duration>,
}

/// A running group's place in [`RunningGroups`], given up when it ends.
struct Registered {
    groups: Arc<RunningGroups>,
    pid: u32,
    /// Its record in the state folder.
    record: Option<std::path::PathBuf>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(path) = &self.record {
            let _ = std::fs::remove_file(path);
        }
        self.groups
            .groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|p| *p != self.pid);
    }
}

fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) with a negative pid signals the process group the child leads; no memory is involved.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Runs `script` in `dir`; the error is why it could not be started.
pub(super) async fn run(
    script: &str,
    dir: &Path,
    what: &Running<'_>,
    running: &Arc<RunningGroups>,
) -> Result<CommandOutput, String> {
    let timeout = what.timeout;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(RUNNER)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("failed to start sh: {e}"))?;
    let pid = child.id();
    let _registered = pid.map(|pid| running.register(pid, what));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let script = script.as_bytes().to_vec();
    // Write the script while reading output, so a large script cannot deadlock on full pipes.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&script).await;
        let _ = stdin.shutdown().await;
    });
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // Shared, so that what a script wrote before its timeout killed it is
    // still there to show: for a hung step, that is the only clue.
    let written = Arc::new(Mutex::new(Written::default()));
    let wait = async {
        let ((), status) = tokio::join!(read_both(stdout, stderr, &written), child.wait());
        status
    };
    let result = match timeout {
        Some(limit) => {
            if let Ok(result) = tokio::time::timeout(limit, wait).await {
                result
            } else {
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                let _ = writer.await;
                let written = std::mem::take(&mut *written.lock().expect("not poisoned"));
                return Ok(CommandOutput {
                    code: None,
                    stdout: written.stdout,
                    stderr: format!("timed out after {}", humantime::format_duration(limit))
                        .into_bytes(),
                    combined: Some(written.combined),
                    timed_out: true,
                });
            }
        }
        None => wait.await,
    };
    let _ = writer.await;
    let status = result.map_err(|e| format!("failed to run sh: {e}"))?;
    let output = std::mem::take(&mut *written.lock().expect("not poisoned"));
    Ok(CommandOutput {
        code: status.code(),
        stdout: output.stdout,
        stderr: output.stderr,
        combined: Some(output.combined),
        timed_out: false,
    })
}

/// What a script wrote: each stream, and both in the order they arrived.
#[derive(Default)]
struct Written {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    combined: Vec<u8>,
}

/// Reads both pipes to their end into `written`, each chunk as it comes. (A read that
/// loses the race in `select!` has read nothing: tokio's reads are
/// cancel-safe.)
async fn read_both(mut stdout: ChildStdout, mut stderr: ChildStderr, written: &Mutex<Written>) {
    // On the heap: every future that runs a script holds this one.
    let (mut out_buf, mut err_buf) = (vec![0u8; 8192], vec![0u8; 8192]);
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            read = stdout.read(&mut out_buf), if out_open => match read {
                Ok(n) if n > 0 => {
                    let mut written = written.lock().expect("not poisoned");
                    written.stdout.extend_from_slice(&out_buf[..n]);
                    written.combined.extend_from_slice(&out_buf[..n]);
                }
                _ => out_open = false,
            },
            read = stderr.read(&mut err_buf), if err_open => match read {
                Ok(n) if n > 0 => {
                    let mut written = written.lock().expect("not poisoned");
                    written.stderr.extend_from_slice(&err_buf[..n]);
                    written.combined.extend_from_slice(&err_buf[..n]);
                }
                _ => err_open = false,
            },
        }
    }
}
