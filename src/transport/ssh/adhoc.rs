//! Ad hoc copies over SSH (`cairn cp`): files to a host, and a file or
//! folder fetched from one.
//!
//! A copy to a host first asks, in one command, where the user's shell
//! starts (relative paths are the home's, as for steps) and what DEST and
//! DEST/NAME are (`transport::copy` decides where the copy lands); then the
//! files go as one stream with the shipping every bundle uses (`ship`):
//! staged beside their place and renamed into it, so no half-written file is
//! ever in place.
//!
//! A fetch opens a channel of its own rather than using the host's shell:
//! the shell hands a command's whole output back at once from a file on the
//! host (in `/dev/shm`), which a large folder must not fill. On its own
//! channel, `tar` (piped through `zstd` when the host has it) streams to a
//! file in the local staging folder, and is unpacked there once it has
//! arrived whole and `tar` has said it succeeded. The channel runs the same
//! fixed, secret-free command line as every other (`channel`), with its
//! script and a sudo password on stdin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::SshTransport;
use super::channel::command_line;
use super::host::Sudo;
use crate::bundle::ShipFile;
use crate::transport::TransportError;
use crate::transport::copy::{CopySource, PathKind, copy_target, join, kind_snippet};
use crate::transport::error::error_chain;
use crate::transport::shell_quote;

/// How long the look-up before a copy may take.
const LOOK_UP: Duration = Duration::from_secs(60);

/// The line a fetch's script prints once the stream starts, with its format.
const STREAM_READY: &str = "__CAIRN_STREAM__ ";

impl SshTransport {
    /// Copies `files` (one `""` entry for a lone file) to `dest` as
    /// `cp -r` would (see `transport::copy`); returns where they landed.
    pub(crate) async fn copy_in(
        &self,
        dest: &str,
        source: CopySource<'_>,
        files: &std::collections::BTreeMap<String, ShipFile>,
    ) -> Result<String, TransportError> {
        let dest_q = shell_quote(dest);
        let inner_q = shell_quote(
            &source
                .name()
                .map_or_else(|| dest.to_string(), |n| join(dest, n)),
        );
        let script = format!("pwd\n{}{}", kind_snippet(&dest_q), kind_snippet(&inner_q));
        let out = self.exec(&script, None, Some(LOOK_UP)).await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(home), Some(dest_kind), Some(inner_kind)) = (
            lines.next(),
            lines.next().and_then(PathKind::parse),
            lines.next().and_then(PathKind::parse),
        ) else {
            return Err(self.error(format!(
                "could not look at {dest}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        };
        let target = copy_target(dest, source, dest_kind, inner_kind).map_err(|e| self.error(e))?;
        // Shipping needs a full path: a relative one is the home's, where the shell starts.
        let target = if target.starts_with('/') {
            target
        } else {
            join(home, &target)
        };
        self.ship(&target, files, None).await?;
        Ok(target)
    }

    /// Fetches `src` into the empty local folder `staging`; returns the
    /// path of what arrived there (see `Transport::fetch`).
    pub(crate) async fn fetch(
        &self,
        src: &str,
        contents: bool,
        staging: &Path,
    ) -> Result<PathBuf, TransportError> {
        let (mut child, errors) = self.open_stream(&fetch_script(src, contents)).await?;
        let mut stdout = tokio::io::BufReader::new(child.stdout().take().expect("piped"));
        // Lines before the stream starts (a login banner, say) are not the stream.
        let mut format = None;
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Some(f) = line.trim_end().strip_prefix(STREAM_READY) {
                format = Some(f == "zstd");
                break;
            }
        }
        let stream_file = staging.join("stream");
        let copied = match format {
            Some(_) => {
                let file = tokio::fs::File::create(&stream_file).await.map_err(|e| {
                    self.error(format!("failed to write {}: {e}", stream_file.display()))
                })?;
                let mut file = tokio::io::BufWriter::new(file);
                let copied = tokio::io::copy(&mut stdout, &mut file).await;
                let _ = file.flush().await;
                copied.map_err(|e| e.to_string())
            }
            None => Ok(0),
        };
        drop(stdout);
        let status = child.wait().await;
        let errors = tokio::time::timeout(Duration::from_secs(5), errors)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let errors = errors.trim();
        let Some(zstd) = format else {
            if errors.contains("incorrect password") || errors.contains("a password is required") {
                return Err(self.error(format!(
                    "sudo refused: {}; check `sudo_password`, or give the user NOPASSWD in sudoers",
                    errors.lines().last().unwrap_or_default()
                )));
            }
            return Err(self.error(format!("could not fetch {src}: {errors}")));
        };
        copied.map_err(|e| self.error(format!("fetching {src} failed: {e}")))?;
        match status {
            Ok(s) if s.success() => {}
            Ok(_) => {
                return Err(self.error(format!(
                    "fetching {src} failed: {}",
                    if errors.is_empty() {
                        "tar failed"
                    } else {
                        errors
                    }
                )));
            }
            Err(e) => {
                return Err(self.error(format!(
                    "fetching {src} failed, the connection was lost: {}",
                    error_chain(&e)
                )));
            }
        }
        let into = staging.join("payload");
        let unpack_into = into.clone();
        tokio::task::spawn_blocking(move || {
            let result = std::fs::create_dir(&unpack_into)
                .map_err(|e| e.to_string())
                .and_then(|()| unpack(&stream_file, zstd, &unpack_into));
            let _ = std::fs::remove_file(&stream_file);
            result
        })
        .await
        .map_err(|e| self.error(e.to_string()))?
        .map_err(|e| self.error(format!("unpacking {src} failed: {e}")))?;
        if contents {
            return Ok(into);
        }
        only_entry(&into).map_err(|e| self.error(e))
    }
}

impl SshTransport {
    /// Opens a channel of its own running `script` (read by the fixed
    /// runner, after the sudo password if there is one); returns it, with
    /// its stdin closed, and a task collecting its stderr.
    async fn open_stream(
        &self,
        script: &str,
    ) -> Result<
        (
            openssh::Child<std::sync::Arc<openssh::Session>>,
            tokio::task::JoinHandle<String>,
        ),
        TransportError,
    > {
        let mut command = self
            .session
            .clone()
            .arc_raw_command(command_line(&self.sudo));
        command
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped());
        let mut child = command
            .spawn()
            .await
            .map_err(|e| self.error(format!("the connection failed: {}", error_chain(&e))))?;
        let mut head = Vec::new();
        if let Sudo::Password(p) = &self.sudo {
            head.extend_from_slice(p.expose().as_bytes());
            head.push(b'\n');
        }
        head.extend_from_slice(format!("__CAIRN__ {}\n", script.len()).as_bytes());
        head.extend_from_slice(script.as_bytes());
        let mut stdin = child.stdin().take().expect("stdin is piped");
        stdin
            .write_all(&head)
            .await
            .map_err(|e| self.error(format!("the connection failed: {e}")))?;
        let _ = stdin.flush().await;
        drop(stdin);
        let mut stderr = child.stderr().take().expect("stderr is piped");
        let errors = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Ok((child, errors))
    }
}

/// The script that streams `src` as a tar (through `zstd` when the host has
/// it) after a `__CAIRN_STREAM__ zstd|tar` line; errors before the stream
/// go to stderr. A symbolic link given as `src` is followed, as `cp` and
/// `scp` do; links inside a folder stay links.
fn fetch_script(src: &str, contents: bool) -> String {
    let mut script = format!("cairn_src={}\n", shell_quote(src));
    script.push_str(
        "if [ ! -e \"$cairn_src\" ]; then echo \"cairn: $cairn_src: no such file or folder\" >&2; exit 1; fi\n\
         if [ -L \"$cairn_src\" ]; then cairn_src=$(readlink -f -- \"$cairn_src\") || exit 1; fi\n",
    );
    if contents {
        script.push_str(
            "if [ ! -d \"$cairn_src\" ]; then echo \"cairn: $cairn_src: not a folder\" >&2; exit 1; fi\n\
             cd -- \"$cairn_src\" || exit 1\ncairn_name=.\n",
        );
    } else {
        script.push_str(
            "cd -- \"$(dirname -- \"$cairn_src\")\" || exit 1\ncairn_name=$(basename -- \"$cairn_src\")\n",
        );
    }
    script.push_str(
        "if command -v zstd >/dev/null 2>&1; then\n\
         cairn_rc=$(mktemp) || exit 1\n\
         echo '__CAIRN_STREAM__ zstd'\n\
         { tar -c -f - -- \"$cairn_name\"; echo $? > \"$cairn_rc\"; } | zstd -q -c\n\
         read -r cairn_r < \"$cairn_rc\"; rm -f \"$cairn_rc\"; exit \"${cairn_r:-1}\"\n\
         fi\n\
         echo '__CAIRN_STREAM__ tar'\n\
         exec tar -c -f - -- \"$cairn_name\"\n",
    );
    script
}

/// Unpacks the tar stream in `file` (zstd-compressed or not) into `into`.
fn unpack(file: &Path, zstd: bool, into: &Path) -> Result<(), String> {
    let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(|e| e.to_string())?);
    let reader: Box<dyn std::io::Read> = if zstd {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader).map_err(|e| e.to_string())?)
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.unpack(into).map_err(|e| e.to_string())
}

/// The one file or folder a fetch unpacked into `into`.
fn only_entry(into: &Path) -> Result<PathBuf, String> {
    let entries: Vec<PathBuf> = std::fs::read_dir(into)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    match entries.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "expected one file or folder in the stream, found {}",
            entries.len()
        )),
    }
}
