//! Channels on a host's master connection, and the fixed command line they run.
//!
//! The remote command line is fixed and holds nothing secret:
//! `[sudo ...] sh -c RUNNER`. The runner skips lines until a
//! `__CAIRN__ <length>` header, reads exactly that many bytes of script and
//! evaluates it; whatever follows on stdin (a compressed file stream) is the
//! script's stdin. A sudo password, when needed, is the first line, which
//! `sudo -S` consumes (and the runner skips if sudo did not ask). So
//! scripts, secrets and passwords only ever travel on stdin.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::SshTransport;
use super::host::Sudo;
use super::shells::{
    EarlyFrame, SHELL_LOOP, Shell, ShellInput, Started, WIDE_LINE, WIDEN_FIRST, write_early,
};
use crate::transport::TransportError;
use crate::transport::error::error_chain;

/// The fixed remote runner (see the module docs). It holds no single quote.
const REMOTE_RUNNER: &str = "while IFS= read -r l; do case \"$l\" in \"__CAIRN__ \"*) break;; esac; done; s=$(head -c \"${l#__CAIRN__ }\") && eval \"$s\"";

impl SshTransport {
    fn command_line(&self) -> String {
        command_line(&self.sudo)
    }

    /// Opens a channel running `script` (read by the fixed runner), and reads
    /// what it prints up to `__CAIRN_READY__` (a shell is then ready) or its end.
    pub(super) async fn open_channel(&self, script: &str) -> Result<Opened, TransportError> {
        self.open_channel_with(script, None).await
    }

    /// [`SshTransport::open_channel`], writing `early` as the shell's first
    /// frame while `script` runs (see `EarlyFrame`): as soon as the host has
    /// widened the channel's input pipe, which `script` is made to do first
    /// (see `WIDEN_FIRST`).
    pub(super) async fn open_channel_with(
        &self,
        script: &str,
        early: Option<EarlyFrame>,
    ) -> Result<Opened, TransportError> {
        let mut command = self.session.clone().arc_raw_command(self.command_line());
        command
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped());
        let mut child = command
            .spawn()
            .await
            .map_err(|e| self.error(format!("the connection failed: {}", error_chain(&e))))?;
        let mut stdin = child.stdin().take().expect("stdin is piped");
        let mut stdout = tokio::io::BufReader::new(child.stdout().take().expect("piped"));
        let mut head = Vec::new();
        if let Sudo::Password(p) = &self.sudo {
            head.extend_from_slice(p.expose().as_bytes());
            head.push(b'\n');
        }
        let widen = if early.is_some() { WIDEN_FIRST } else { "" };
        head.extend_from_slice(
            format!("__CAIRN__ {}\n{widen}", widen.len() + script.len()).as_bytes(),
        );
        head.extend_from_slice(script.as_bytes());
        stdin
            .write_all(&head)
            .await
            .map_err(|e| self.error(format!("the connection failed: {e}")))?;
        let _ = stdin.flush().await;
        let (mut wide, input) = match early {
            Some(frame) => {
                let (wide, widened) = tokio::sync::oneshot::channel();
                (
                    Some(wide),
                    ShellInput::Writing(write_early(stdin, frame, widened)),
                )
            }
            None => (None, ShellInput::Ready(stdin)),
        };
        let mut lines = Vec::new();
        let mut ready = false;
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            match line.trim_end() {
                "__CAIRN_READY__" => {
                    ready = true;
                    break;
                }
                WIDE_LINE if wide.is_some() => {
                    let _ = wide.take().map(|wide| wide.send(()));
                }
                _ => lines.push(line),
            }
        }
        if !ready {
            if let ShellInput::Writing(writer) = &input {
                writer.abort();
            }
            // The channel ended: say why (sudo refusing is the usual reason).
            let mut err = String::new();
            if let Some(mut e) = child.stderr().take() {
                use tokio::io::AsyncReadExt;
                let read = e.read_to_string(&mut err);
                let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
            }
            if err.contains("incorrect password") || err.contains("a password is required") {
                return Err(self.error(format!(
                    "sudo refused: {}; check `sudo_password`, or give the user NOPASSWD in sudoers",
                    err.trim().lines().last().unwrap_or_default()
                )));
            }
            return Ok(Opened {
                shell: None,
                lines,
                stderr: err,
            });
        }
        // The shell's own stderr is not read again; keep it from filling up.
        if let Some(mut e) = child.stderr().take() {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut e, &mut tokio::io::sink()).await;
            });
        }
        Ok(Opened {
            shell: Some(Started {
                child,
                input,
                stdout,
            }),
            lines,
            stderr: String::new(),
        })
    }

    /// Opens the host's shell.
    pub(super) async fn open_shell(&self) -> Result<Arc<Shell>, TransportError> {
        let opened = self.open_channel(SHELL_LOOP).await?;
        match opened.shell {
            Some(started) => Ok(Shell::new(started, false).0),
            None => Err(self.error(format!(
                "could not start a shell: {}",
                format!("{} {}", opened.lines.concat().trim(), opened.stderr.trim()).trim()
            ))),
        }
    }
}

/// A channel just opened: its shell (when it reached its loop), and what it
/// printed before (or instead).
pub(super) struct Opened {
    pub(super) shell: Option<Started>,
    pub(super) lines: Vec<String>,
    pub(super) stderr: String,
}

/// The fixed remote command line: nothing in it depends on the script or a secret.
pub(super) fn command_line(sudo: &Sudo) -> String {
    let mut line = String::new();
    match sudo {
        Sudo::No => {}
        Sudo::NoPassword => line.push_str("sudo -n -- "),
        // -k: always ask, so the password line is never left for the script.
        Sudo::Password(_) => line.push_str("sudo -k -S -p '' -- "),
    }
    let _ = write!(line, "sh -c '{REMOTE_RUNNER}'");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_holds_no_secret() {
        // The runner sits in single quotes, so it must hold none itself.
        assert!(!REMOTE_RUNNER.contains('\''));
        // Sudo with a password: the password goes on stdin, never in the command line.
        let password = "pa55-never-on-a-command-line";
        let line = command_line(&Sudo::Password(crate::model::Secret::new(password.into())));
        assert!(line.starts_with("sudo -k -S -p '' -- sh -c '"), "{line}");
        assert!(!line.contains(password));
        assert_eq!(command_line(&Sudo::No), format!("sh -c '{REMOTE_RUNNER}'"));
    }

    #[test]
    fn the_runner_reads_exactly_the_script_and_leaves_the_rest() {
        let script = "echo ran; cat";
        let input = format!(
            "sudo-password-line\n__CAIRN__ {}\n{script}payload",
            script.len()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(REMOTE_RUNNER)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(input.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\npayload");
    }
}
