//! The SSH transport: one OpenSSH ControlMaster per host, one shell on it.
//!
//! A run opens one master connection per host (the `openssh` crate with
//! `native-mux`: a channel is opened on the master's socket, not by a new
//! `ssh` process) and closes it at the end. The master is started with
//! `ControlPersist` set to a minute of idleness, so a cairn that is killed
//! does not leave connections behind for long; while cairn runs, the host
//! lock's heartbeat keeps it busy. A host's commands run on one long-lived
//! shell (see `shells`): on apply, the lock's own channel, so a host costs
//! one channel and one login shell per run.
//!
//! The remote command line is fixed and holds nothing secret:
//! `[sudo ...] sh -c RUNNER`. The runner skips lines until a
//! `__CAIRN__ <length>` header, reads exactly that many bytes of script and
//! evaluates it; whatever follows on stdin (a compressed file stream) is the
//! script's stdin. A sudo password, when needed, is the first line, which
//! `sudo -S` consumes (and the runner skips if sudo did not ask). So scripts,
//! secrets and passwords only ever travel on stdin.
//!
//! Files ship as one tar stream per task, zstd-compressed when the host has
//! `zstd` (refresh finds out), unpacked into a staging folder beside the
//! destination and renamed into place, then stat'ed so refresh can later
//! tell an untouched file by its stat alone. The compressed stream of a file
//! set is built once and shared by every host that needs the same files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::shells::{Broken, SHELL_LOOP, Shell, Shells};
use super::{
    CheckResult, CommandOutput, Observed, ProbeReport, ProbeRequest, Receipt, TransportError,
    shell_quote, target_path,
};
use crate::bundle::ShipFile;
use crate::model::{Host, HostKeyPolicy, Secret};
use crate::state::ShippedFile;

/// The fixed remote runner (see the module docs). It holds no single quote.
const REMOTE_RUNNER: &str = "while IFS= read -r l; do case \"$l\" in \"__CAIRN__ \"*) break;; esac; done; s=$(head -c \"${l#__CAIRN__ }\") && eval \"$s\"";

/// Ends the probe's output inside the lock command.
const PROBE_END: &str = "__CAIRN_PROBE_END__";

/// Exit code and stderr marker of a script whose working directory is missing.
const CWD_MISSING_CODE: i32 = 211;
const CWD_MISSING_MARK: &str = "cairn: working directory missing: ";

/// How long past a step's own timeout cairn waits for a host that stopped answering.
const GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Sudo {
    No,
    NoPassword,
    Password(Secret),
}

#[derive(Clone)]
pub struct SshTransport {
    host: String,
    cluster: String,
    session: Arc<Session>,
    sudo: Sudo,
    /// Whether the host has `zstd`, once a probe has looked.
    zstd: Arc<OnceLock<bool>>,
    /// The host's long-lived shells, which run its commands.
    shells: Arc<Shells>,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("host", &self.host)
            .finish()
    }
}

/// Where connections keep their control sockets: short, because a unix
/// socket path is limited to about 100 bytes.
fn control_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

impl SshTransport {
    /// Opens the master connection to `host`. `known_hosts` is cairn's own file.
    pub async fn connect(
        host: &Host,
        cluster: &str,
        known_hosts: &Path,
    ) -> Result<SshTransport, TransportError> {
        let mut builder = SessionBuilder::default();
        builder
            .user(host.user.clone())
            .port(host.port)
            .connect_timeout(host.ssh.connect_timeout.max(Duration::from_secs(1)))
            .server_alive_interval(Duration::from_secs(5))
            .control_directory(control_dir())
            .control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(60).expect("non-zero"),
            ));
        if let Some(identity) = &host.ssh.identity {
            builder.keyfile(expand_home(identity));
        }
        if let Some(jump) = &host.ssh.jump {
            builder.jump_hosts([jump]);
        }
        match host.ssh.host_keys {
            HostKeyPolicy::Off => {
                builder
                    .known_hosts_check(KnownHosts::Accept)
                    .user_known_hosts_file("/dev/null");
            }
            policy => {
                if let Some(parent) = known_hosts.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                // cairn's file first (new keys go there), then the user's own.
                let files = format!("\"{}\" \"~/.ssh/known_hosts\"", known_hosts.display());
                builder
                    .known_hosts_check(if policy == HostKeyPolicy::Strict {
                        KnownHosts::Strict
                    } else {
                        KnownHosts::Add
                    })
                    .user_known_hosts_file(files);
            }
        }
        // The connect timeout covers TCP and the banner; this bounds the rest of the handshake.
        let limit = host.ssh.connect_timeout.max(Duration::from_secs(1)) * 3;
        let session = match tokio::time::timeout(limit, builder.connect_mux(&host.address)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_error(host, known_hosts, &e)),
            Err(_) => {
                return Err(TransportError::Unreachable {
                    host: host.name.clone(),
                    message: format!(
                        "{} did not finish the SSH handshake within {}; is the host frozen or overloaded?",
                        host.address,
                        humantime::format_duration(limit)
                    ),
                });
            }
        };
        let sudo = match (host.ssh.sudo, &host.ssh.sudo_password) {
            (false, _) => Sudo::No,
            (true, None) => Sudo::NoPassword,
            (true, Some(p)) => Sudo::Password(p.clone()),
        };
        Ok(SshTransport {
            host: host.name.clone(),
            cluster: cluster.to_string(),
            session: Arc::new(session),
            sudo,
            zstd: Arc::new(OnceLock::new()),
            shells: Arc::new(Shells::default()),
        })
    }

    /// Closes the host's shells, then the master connection (when no command holds it any more).
    pub async fn close(self) {
        self.shells.close(false).await;
        drop(self.shells);
        if let Ok(session) = Arc::try_unwrap(self.session) {
            let _ = session.close().await;
        }
    }

    fn error(&self, message: impl Into<String>) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            message: message.into(),
        }
    }

    fn command_line(&self) -> String {
        command_line(&self.sudo)
    }

    /// Opens a channel running `script` (read by the fixed runner), and reads
    /// what it prints up to `__CAIRN_READY__` (a shell is then ready) or its end.
    async fn open_channel(&self, script: &str) -> Result<Opened, TransportError> {
        let mut command = self.session.clone().arc_raw_command(self.command_line());
        command
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped());
        let mut child = command
            .spawn()
            .await
            .map_err(|e| self.error(format!("the connection failed: {}", chain(&e))))?;
        let mut stdin = child.stdin().take().expect("stdin is piped");
        let mut stdout = tokio::io::BufReader::new(child.stdout().take().expect("piped"));
        let mut head = Vec::new();
        if let Sudo::Password(p) = &self.sudo {
            head.extend_from_slice(p.expose().as_bytes());
            head.push(b'\n');
        }
        head.extend_from_slice(format!("__CAIRN__ {}\n", script.len()).as_bytes());
        head.extend_from_slice(script.as_bytes());
        stdin
            .write_all(&head)
            .await
            .map_err(|e| self.error(format!("the connection failed: {e}")))?;
        let _ = stdin.flush().await;
        use tokio::io::AsyncBufReadExt;
        let mut lines = Vec::new();
        let mut ready = false;
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.trim_end() == "__CAIRN_READY__" {
                ready = true;
                break;
            }
            lines.push(line);
        }
        if !ready {
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
            shell: Some((child, stdin, stdout)),
            lines,
            stderr: String::new(),
        })
    }

    /// Opens the host's shell.
    async fn open_shell(&self) -> Result<Arc<Shell>, TransportError> {
        let opened = self.open_channel(SHELL_LOOP).await?;
        match opened.shell {
            Some((child, stdin, stdout)) => Ok(Shell::new(child, stdin, stdout, false)),
            None => Err(self.error(format!(
                "could not start a shell: {}",
                format!("{} {}", opened.lines.concat().trim(), opened.stderr.trim()).trim()
            ))),
        }
    }

    /// Runs `script` (plus `data` as its stdin) on the host's shell.
    async fn exec(
        &self,
        script: &str,
        data: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<CommandOutput, TransportError> {
        let shell = self.shells.get(|| self.open_shell()).await?;
        let limit = timeout.map(|t| t + GRACE);
        let ran = match shell.run(script, data, timeout, limit).await {
            Ok(ran) => ran,
            Err(Broken::TimedOut) => {
                let limit = timeout.expect("only a limited command times out");
                return Ok(timed_out(limit, " (the host stopped answering)"));
            }
            Err(Broken::Lost(why)) => {
                return Err(self.error(format!("the connection was lost: {why}")));
            }
        };
        let code = Some(ran.code);
        if let Some(limit) = timeout
            && matches!(code, Some(124) | Some(137))
        {
            return Ok(timed_out(limit, ""));
        }
        if code == Some(CWD_MISSING_CODE) {
            let err = String::from_utf8_lossy(&ran.stderr);
            if let Some(dir) = err.lines().find_map(|l| l.strip_prefix(CWD_MISSING_MARK)) {
                return Err(self.error(format!("working directory {dir} does not exist")));
            }
        }
        Ok(CommandOutput {
            code,
            stdout: ran.stdout,
            stderr: ran.stderr,
            timed_out: false,
        })
    }

    /// Runs a user script in `cwd`; with a receipt, writes it when the script succeeds.
    pub async fn run(
        &self,
        script: &str,
        cwd: Option<&str>,
        timeout: Option<Duration>,
        receipt: Option<&Receipt>,
    ) -> Result<CommandOutput, TransportError> {
        let mut full = cd_prefix(cwd);
        full.push_str(&format!("(eval {})\ncairn_rc=$?\n", shell_quote(script)));
        if let Some(r) = receipt {
            full.push_str("if [ $cairn_rc -eq 0 ]; then\n");
            full.push_str(&self.receipt_snippet(r));
            full.push_str("fi\n");
        }
        full.push_str("exit $cairn_rc\n");
        self.exec(&full, None, timeout).await
    }

    /// Shell lines that write a receipt (atomically) under the host's cairn folder.
    fn receipt_snippet(&self, receipt: &Receipt) -> String {
        format!(
            "{dir}mkdir -p \"$cairn_d/receipts\" && printf '%s\\n' {json} > \"$cairn_d/receipts/.{file}.$$\" && mv -f \"$cairn_d/receipts/.{file}.$$\" \"$cairn_d/receipts/{file}\" || echo 'cairn: could not write the receipt in '\"$cairn_d\" >&2\n",
            dir = state_dir_snippet(&self.cluster),
            json = shell_quote(&receipt.json),
            file = receipt.file_name(),
        )
    }

    /// Writes a receipt on its own, for a task that needed no other command.
    pub async fn write_receipt(&self, receipt: &Receipt) -> Result<(), TransportError> {
        let out = self
            .exec(
                &self.receipt_snippet(receipt),
                None,
                Some(Duration::from_secs(60)),
            )
            .await?;
        if out.success() && out.stderr.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!(
                "failed to write the receipt: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    pub async fn forget_receipt(&self, task: &crate::ids::TaskId) -> Result<(), TransportError> {
        let name = super::receipt_file_name(task);

        let script = format!(
            "{}rm -f \"$cairn_d/receipts/\"{}\n",
            state_dir_snippet(&self.cluster),
            shell_quote(&name)
        );
        let out = self
            .exec(&script, None, Some(Duration::from_secs(60)))
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(self.error(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }

    pub async fn ship(
        &self,
        dest: &str,
        files: &BTreeMap<String, ShipFile>,
        receipt: Option<&Receipt>,
    ) -> Result<BTreeMap<String, ShippedFile>, TransportError> {
        let zstd = match self.zstd.get() {
            Some(z) => *z,
            None => {
                let out = self
                    .exec("command -v zstd", None, Some(Duration::from_secs(30)))
                    .await?;
                *self.zstd.get_or_init(|| out.success())
            }
        };
        let entries: Vec<(&String, &ShipFile)> = files.iter().collect();
        let stream = {
            let entries: Vec<(String, ShipFile)> = entries
                .iter()
                .map(|(r, f)| ((*r).clone(), (*f).clone()))
                .collect();
            tokio::task::spawn_blocking(move || shared_stream(&entries, zstd))
                .await
                .map_err(|e| self.error(e.to_string()))?
                .map_err(|e| self.error(e))?
        };
        let single = files.len() == 1 && files.contains_key("");
        let root = if single {
            Path::new(dest)
                .parent()
                .unwrap_or(Path::new("/"))
                .to_string_lossy()
                .into_owned()
        } else {
            dest.to_string()
        };
        let parent = Path::new(dest)
            .parent()
            .unwrap_or(Path::new("/"))
            .to_string_lossy()
            .into_owned();
        let targets: Vec<String> = entries
            .iter()
            .map(|(rel, _)| target_path(dest, rel).to_string_lossy().into_owned())
            .collect();
        // Parent folders of every target, created in one process.
        let mut dirs: Vec<String> = targets
            .iter()
            .filter_map(|t| Some(Path::new(t).parent()?.to_string_lossy().into_owned()))
            .collect();
        dirs.sort();
        dirs.dedup();
        let mut script = String::from("set -e\n");
        // A folder that does not exist yet is staged whole beside its place
        // and renamed into it at once; otherwise each file is staged inside
        // the destination and renamed over its old version.
        script.push_str(&format!(
            "cairn_dest={dest_q}\nmkdir -p {parent_q}\nif {fresh_test}; then cairn_fresh=1; cairn_base={parent_q}; else cairn_fresh=0; cairn_base={root_q}; mkdir -p \"$cairn_base\"; fi\ncairn_st=$(mktemp -d \"$cairn_base/.cairn-staging-XXXXXX\")\ntrap 'rm -rf \"$cairn_st\"' EXIT\n",
            dest_q = shell_quote(dest),
            parent_q = shell_quote(&parent),
            root_q = shell_quote(&root),
            fresh_test = if single { "false" } else { "[ ! -e \"$cairn_dest\" ]" },
        ));
        script.push_str(if stream.zstd {
            "zstd -dcq | tar -x -f - -C \"$cairn_st\" --no-same-owner\n"
        } else {
            "tar -x -f - -C \"$cairn_st\" --no-same-owner\n"
        });
        // Everything is staged (a full disk fails here, before anything is replaced); make it durable.
        script.push_str("sync -f \"$cairn_st\" 2>/dev/null || sync\n");
        script.push_str(
            "if [ $cairn_fresh = 1 ]; then\nchmod 755 \"$cairn_st\"\nmv -T \"$cairn_st\" \"$cairn_dest\"\nelse\n",
        );
        let mut mkdir = String::from("mkdir -p --");
        for d in &dirs {
            mkdir.push(' ');
            mkdir.push_str(&shell_quote(d));
        }
        script.push_str(&mkdir);
        script.push('\n');
        for ((rel, _), target) in entries.iter().zip(&targets) {
            script.push_str(&format!(
                "mv -f \"$cairn_st/\"{} {}\n",
                shell_quote(tar_name(rel)),
                shell_quote(target)
            ));
        }
        script.push_str("fi\nset +e\n");
        script.push_str(&stat_command(&targets));
        script.push_str(" || true\n");
        if let Some(r) = receipt {
            script.push_str(&self.receipt_snippet(r));
        }
        let out = self
            .exec(
                &script,
                Some(&stream.bytes),
                Some(Duration::from_secs(3600)),
            )
            .await?;
        if !out.success() {
            return Err(self.error(format!(
                "shipping to {dest} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let stats = parse_stats(&String::from_utf8_lossy(&out.stdout));
        let mut records = BTreeMap::new();
        for ((rel, file), target) in entries.iter().zip(&targets) {
            let stat = stats.get(target.as_str()).ok_or_else(|| {
                self.error(format!("{target} is missing right after it was shipped"))
            })?;
            records.insert(
                (*rel).clone(),
                ShippedFile {
                    hash: file.entry.hash.clone(),
                    mode: stat.mode,
                    size: stat.size,
                    mtime_ns: stat.mtime_ns,
                    inode: stat.inode,
                },
            );
        }
        Ok(records)
    }

    /// Removes shipped files that still hold what cairn shipped; returns the kept ones.
    pub async fn remove(
        &self,
        dest: &str,
        shipped: &BTreeMap<String, ShippedFile>,
    ) -> Result<Vec<String>, TransportError> {
        let mut script = String::new();
        for (rel, record) in shipped {
            let path = shell_quote(&target_path(dest, rel).to_string_lossy());
            script.push_str(&format!(
                "if [ -e {path} ]; then if [ \"$(sha256sum < {path} | cut -c1-64)\" = {hash} ]; then rm -f {path}; rmdir -p \"$(dirname {path})\" 2>/dev/null; else printf 'K%s\\n' {rel}; fi; fi\n",
                hash = record.hash,
                rel = shell_quote(rel),
            ));
        }
        script.push_str("true\n");
        let out = self
            .exec(&script, None, Some(Duration::from_secs(600)))
            .await?;
        if !out.success() {
            return Err(self.error(format!(
                "removing files under {dest} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix('K').map(str::to_string))
            .collect())
    }

    /// One round trip: facts, receipts, shipped files (stat, hash what changed) and checks.
    /// A plan or drift asks nothing else of the host, so the probe runs on
    /// a channel of its own (no long-lived shell to set up); an apply's probe
    /// rides on the lock's channel instead ([`SshTransport::lock_and_probe`]).
    pub async fn probe(&self, request: &ProbeRequest) -> Result<ProbeReport, TransportError> {
        let (script, longest) = self.probe_script(request);
        let script = format!("{script}echo {PROBE_END}\n");
        let opened = match tokio::time::timeout(longest + GRACE, self.open_channel(&script)).await {
            Ok(opened) => opened?,
            Err(_) => return Err(self.error("the probe timed out")),
        };
        let text = opened.lines.concat();
        match text.rsplit_once(&format!("{PROBE_END}\n")) {
            Some((probed, _)) => Ok(self.parse_probe(probed, request)),
            None => Err(self.error(format!(
                "the probe did not finish: {}",
                opened.stderr.trim()
            ))),
        }
    }

    /// The probe's script (its output is read by [`SshTransport::parse_probe`]) and its time limit.
    fn probe_script(&self, request: &ProbeRequest) -> (String, Duration) {
        // Every process started on the host costs about a millisecond of its
        // CPU, times every host: builtins wherever they do.
        let mut script = String::new();
        script.push_str(
            "if IFS= read -r cairn_h < /proc/sys/kernel/hostname; then echo \"H $cairn_h\"; else echo \"H $(hostname)\"; fi\nif IFS= read -r cairn_a < /proc/sys/kernel/arch 2>/dev/null; then echo \"A $cairn_a\"; else echo \"A $(uname -m)\"; fi\nPRETTY_NAME=; . /etc/os-release 2>/dev/null; echo \"O ${PRETTY_NAME:-unknown}\"\n",
        );
        script
            .push_str("if command -v zstd >/dev/null 2>&1; then echo 'Z 1'; else echo 'Z 0'; fi\n");
        script.push_str(&state_dir_snippet(&self.cluster));
        // Each receipt is one line; `read` is a builtin, `cat` would be a process.
        script.push_str("echo '<R>'; for cairn_r in \"$cairn_d\"/receipts/*.json; do [ -f \"$cairn_r\" ] && IFS= read -r cairn_l < \"$cairn_r\" && printf '%s\\n' \"$cairn_l\"; done; echo '</R>'\n");
        for (i, (dest, shipped)) in request.files.iter().enumerate() {
            let targets: Vec<String> = shipped
                .keys()
                .map(|rel| target_path(dest, rel).to_string_lossy().into_owned())
                .collect();
            if targets.is_empty() {
                continue;
            }
            let expected: Vec<String> = shipped
                .values()
                .zip(&targets)
                .map(|(r, t)| stat_line(r, t))
                .collect();
            let marker = heredoc_marker(&expected.join("\n"));
            script.push_str(&format!(
                "cairn_s=$({} 2>/dev/null)\nprintf '<F{i}>\\n%s\\n</F{i}>\\n' \"$cairn_s\"\n",
                stat_command(&targets)
            ));
            // Hash only what does not stat as recorded.
            script.push_str(&format!(
                "printf '%s\\n' \"$cairn_s\" | grep -vxF -f /dev/fd/3 3<<'{marker}' | while IFS= read -r l; do p=${{l#* * * * }}; [ -n \"$l\" ] && printf 'G{i} %s %s\\n' \"$(sha256sum < \"$p\" | cut -c1-64)\" \"$p\"; done\n{}\n{marker}\n",
                expected.join("\n")
            ));
        }
        for (i, check) in request.checks.iter().enumerate() {
            let body = format!("{}\n", check.script);
            let marker = heredoc_marker(&body);
            let dir = shell_quote(check.cwd.as_deref().unwrap_or("."));
            // The check's script reaches sh on a here-document, never as an argument.
            script.push_str(&format!(
                "if [ -d {dir} ]; then (cd {dir} && exec timeout -k 2 {secs}s sh -s >/dev/null 2>&1 <<'{marker}'\n{body}{marker}\n); echo \"C{i} $?\"; else echo 'C{i} cwd'; fi\n",
                secs = check.timeout.as_secs().max(1)
            ));
        }

        // What failed inside is in the output; the probe itself succeeded.
        script.push_str("true\n");
        let longest = request
            .checks
            .iter()
            .map(|c| c.timeout)
            .sum::<Duration>()
            .max(Duration::from_secs(120));
        (script, longest)
    }

    fn parse_probe(&self, text: &str, request: &ProbeRequest) -> ProbeReport {
        let mut report = ProbeReport {
            files: vec![BTreeMap::new(); request.files.len()],
            checks: vec![
                CheckResult {
                    code: None,
                    cwd_missing: false
                };
                request.checks.len()
            ],
            ..Default::default()
        };
        let mut stats: Vec<HashMap<String, Stat>> = vec![HashMap::new(); request.files.len()];
        let mut hashes: Vec<HashMap<String, String>> = vec![HashMap::new(); request.files.len()];
        // Inside `<R>`..`</R>`: receipts, one JSON per line; inside `<Fi>`..`</Fi>`: stat lines.
        enum Section {
            Top,
            Receipts,
            Stats(usize),
        }
        let mut section = Section::Top;
        for line in text.lines() {
            match (&section, line) {
                (Section::Top, "<R>") => {
                    section = Section::Receipts;
                    continue;
                }
                (Section::Receipts, "</R>") => {
                    section = Section::Top;
                    continue;
                }
                (Section::Receipts, json) => {
                    if let Ok(r) = serde_json::from_str::<super::ReceiptInfo>(json) {
                        report.receipts.insert(r.task.clone(), r);
                    }
                    continue;
                }
                (Section::Stats(i), l) => {
                    if l == format!("</F{i}>") {
                        section = Section::Top;
                    } else if let Some((path, stat)) = parse_stat(l) {
                        stats[*i].insert(path, stat);
                    }
                    continue;
                }
                (Section::Top, l) if l.starts_with("<F") && l.ends_with('>') => {
                    if let Some(i) = l[2..l.len() - 1]
                        .parse::<usize>()
                        .ok()
                        .filter(|i| *i < stats.len())
                    {
                        section = Section::Stats(i);
                    }
                    continue;
                }
                (Section::Top, _) => {}
            }
            let Some((tag, rest)) = line.split_once(' ') else {
                continue;
            };
            match tag {
                "H" => report.facts.hostname = rest.to_string(),
                "A" => report.facts.arch = rest.to_string(),
                "O" => report.facts.os = rest.to_string(),
                "Z" => report.facts.zstd = rest == "1",
                _ => {
                    let index = |t: &str| t[1..].parse::<usize>().ok();
                    if tag.starts_with('G')
                        && let Some(i) = index(tag).filter(|i| *i < hashes.len())
                        && let Some((hash, path)) = rest.split_once(' ')
                    {
                        hashes[i].insert(path.to_string(), hash.to_string());
                    } else if tag.starts_with('C')
                        && let Some(i) = index(tag).filter(|i| *i < report.checks.len())
                    {
                        report.checks[i] = match rest {
                            "cwd" => CheckResult {
                                code: None,
                                cwd_missing: true,
                            },
                            code => CheckResult {
                                code: code.parse().ok().filter(|c| *c != 124 && *c != 137),
                                cwd_missing: false,
                            },
                        };
                    }
                }
            }
        }
        let _ = self.zstd.set(report.facts.zstd);
        for (i, (dest, shipped)) in request.files.iter().enumerate() {
            for (rel, record) in shipped {
                let path = target_path(dest, rel).to_string_lossy().into_owned();
                let observed = match stats[i].get(&path) {
                    None => Observed::Missing,
                    Some(s) if s.same_as(record) => Observed::Unchanged,
                    Some(s) if s.mode != record.mode => {
                        Observed::Hashed(format!("mode:{:o}", s.mode))
                    }
                    Some(_) => match hashes[i].get(&path) {
                        Some(h) => Observed::Hashed(h.clone()),
                        None => Observed::Hashed(String::from("not-a-file")),
                    },
                };
                report.files[i].insert(rel.clone(), observed);
            }
        }
        report
    }

    /// Takes the host lock for this run and, in the same round trip, probes
    /// the host (see [`SshTransport::probe`]). The lock's channel then
    /// becomes the host's first shell; see [`HostLock`].
    pub async fn lock_and_probe(
        &self,
        owner: &str,
        request: &ProbeRequest,
    ) -> Result<(HostLock, ProbeReport), TransportError> {
        let (probe, longest) = self.probe_script(request);
        let script = format!(
            "{dir}[ -d \"$cairn_d\" ] || mkdir -p \"$cairn_d\" || exit 3\nexec 9>>\"$cairn_d/lock\"\nif ! flock -n 9; then echo BUSY; cat \"$cairn_d/lock.owner\" 2>/dev/null; echo; date +%s; stat -c %Y \"$cairn_d/lock.heartbeat\" 2>/dev/null; exit 0; fi\nif [ -s \"$cairn_d/lock.owner\" ]; then echo STALE; cat \"$cairn_d/lock.owner\"; echo; fi\nprintf '%s\\n' {owner} > \"$cairn_d/lock.owner\"\n: > \"$cairn_d/lock.heartbeat\"\necho LOCKED\n{{\n{probe}}} </dev/null\necho {PROBE_END}\ncairn_hb=\"$cairn_d/lock.heartbeat\"\n{SHELL_LOOP}: > \"$cairn_d/lock.owner\"\n",
            dir = state_dir_snippet(&self.cluster),
            owner = shell_quote(owner),
        );
        let opened = match tokio::time::timeout(
            Duration::from_secs(60) + longest,
            self.open_channel(&script),
        )
        .await
        {
            Ok(opened) => opened?,
            Err(_) => return Err(self.error("taking the host lock and probing it timed out")),
        };
        let lines: Vec<String> = opened
            .lines
            .iter()
            .map(|l| l.trim_end_matches('\n').to_string())
            .collect();
        if lines.first().map(String::as_str) == Some("BUSY") {
            let owner = lines.get(1).cloned().unwrap_or_default();
            let age = match (
                lines.get(3).and_then(|l| l.trim().parse::<i64>().ok()),
                lines.get(4).and_then(|l| l.trim().parse::<i64>().ok()),
            ) {
                (Some(now), Some(beat)) => Some(now - beat),
                _ => None,
            };
            return Err(TransportError::HostLocked {
                host: self.host.clone(),
                owner: describe_owner(&owner),
                heartbeat_age: age,
            });
        }
        let locked_at = lines.iter().position(|l| l == "LOCKED");
        let probe_end = lines.iter().position(|l| l == PROBE_END);
        let (Some((child, stdin, stdout)), Some(locked_at), Some(probe_end)) =
            (opened.shell, locked_at, probe_end)
        else {
            let said = format!("{} {}", lines.join(" "), opened.stderr.trim());
            return Err(self.error(format!("failed to take the host lock: {}", said.trim())));
        };
        let stale = (lines.first().map(String::as_str) == Some("STALE"))
            .then(|| describe_owner(lines.get(1).map(String::as_str).unwrap_or("")));
        let mut probed = lines[locked_at + 1..probe_end].join("\n");
        probed.push('\n');
        let report = self.parse_probe(&probed, request);
        self.shells
            .adopt(Shell::new(child, stdin, stdout, true))
            .await;
        let shells = self.shells.clone();
        let heartbeat = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(10));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                shells.ping_lock().await;
            }
        });
        Ok((
            HostLock {
                heartbeat,
                shells: self.shells.clone(),
                stale,
            },
            report,
        ))
    }
}

/// A channel just opened: its shell (when it reached its loop), and what it
/// printed before (or instead).
struct Opened {
    shell: Option<(
        openssh::Child<Arc<Session>>,
        openssh::ChildStdin,
        tokio::io::BufReader<openssh::ChildStdout>,
    )>,
    lines: Vec<String>,
    stderr: String,
}

/// The lock this run holds on one host. The remote side holds a `flock`
/// for as long as the lock's channel is open; that channel is also the
/// host's first shell (see `shells`), and touches a heartbeat file on every
/// command and every 10 seconds when idle. If cairn dies, the channel
/// closes and the lock is freed. A lock owner file left behind (the remote
/// side was killed) is reported as stale by the next run, which takes over.
pub struct HostLock {
    heartbeat: tokio::task::JoinHandle<()>,
    shells: Arc<Shells>,
    /// The owner of a stale lock this run took over.
    pub stale: Option<String>,
}

impl HostLock {
    /// Releases the lock: ends the heartbeat and closes the lock's shell.
    pub async fn release(self) {
        self.heartbeat.abort();
        let _ = self.heartbeat.await;
        self.shells.close(true).await;
    }
}

fn describe_owner(json: &str) -> String {
    match serde_json::from_str::<crate::state::lock::LockHolder>(json) {
        Ok(holder) => holder.to_string(),
        Err(_) if json.trim().is_empty() => "an unknown owner".into(),
        Err(_) => json.trim().to_string(),
    }
}

/// The fixed remote command line: nothing in it depends on the script or a secret.
fn command_line(sudo: &Sudo) -> String {
    let mut line = String::new();
    match sudo {
        Sudo::No => {}
        Sudo::NoPassword => line.push_str("sudo -n -- "),
        // -k: always ask, so the password line is never left for the script.
        Sudo::Password(_) => line.push_str("sudo -k -S -p '' -- "),
    }
    line.push_str(&format!("sh -c '{REMOTE_RUNNER}'"));
    line
}

/// Shell lines setting `$cairn_d`, the host's cairn folder for this cluster:
/// `/var/lib/cairn/<cluster>` for root (or whoever may write `/var/lib`),
/// else under the user's state folder. A test, not `id -u`: no process.
fn state_dir_snippet(cluster: &str) -> String {
    format!(
        "if [ -w /var/lib ]; then cairn_d=/var/lib/cairn/{c}; else cairn_d=\"${{XDG_STATE_HOME:-$HOME/.local/state}}/cairn/\"{c}; fi\n",
        c = shell_quote(cluster)
    )
}

fn cd_prefix(cwd: Option<&str>) -> String {
    match cwd {
        Some(dir) => format!(
            "cd {q} 2>/dev/null || {{ echo '{CWD_MISSING_MARK}'{q} >&2; exit {CWD_MISSING_CODE}; }}\n",
            q = shell_quote(dir)
        ),
        None => String::new(),
    }
}

fn timed_out(limit: Duration, why: &str) -> CommandOutput {
    CommandOutput {
        code: None,
        stdout: Vec::new(),
        stderr: format!("timed out after {}{why}", humantime::format_duration(limit)).into_bytes(),
        timed_out: true,
    }
}

/// The message of an error and all its sources.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Turns what ssh said into a message naming the host, the cause and the fix.
fn connect_error(host: &Host, known_hosts: &Path, error: &openssh::Error) -> TransportError {
    let text = chain(error);
    let lower = text.to_lowercase();
    let target = format!("{}@{}:{}", host.user, host.address, host.port);
    let (message, fix) = if lower.contains("remote host identification has changed") {
        return TransportError::HostKeyChanged {
            host: host.name.clone(),
            address: host.address.clone(),
            known_hosts: known_hosts.display().to_string(),
        };
    } else if lower.contains("host key verification failed") {
        (
            format!("{target}: its host key is not known and `host_keys = \"strict\"`"),
            format!(
                "add the key to {} or ~/.ssh/known_hosts (ssh-keyscan), or use host_keys = \"accept-new\"",
                known_hosts.display()
            ),
        )
    } else if lower.contains("permission denied") {
        (
            format!("{target} refused the login ({})", last_line(&text)),
            "check `user` and `identity` in [ssh], the agent (ssh-add -l), and the user's authorized_keys on the host".to_string(),
        )
    } else if lower.contains("connection refused") {
        (
            format!("{target}: connection refused"),
            "is sshd running there, on this port?".to_string(),
        )
    } else if lower.contains("timed out") {
        (
            format!(
                "{target} did not answer within connect_timeout ({})",
                humantime::format_duration(host.ssh.connect_timeout)
            ),
            "is the host up and reachable? raise connect_timeout in [ssh] for slow links"
                .to_string(),
        )
    } else {
        (
            format!("{target}: {}", last_line(&text)),
            "check the address and [ssh] settings; `ssh -v` with the same settings shows more"
                .to_string(),
        )
    };
    TransportError::Unreachable {
        host: host.name.clone(),
        message: format!("{message}; {fix}"),
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// `stat` of many paths in one process: `size mtime.ns inode mode path`.
fn stat_command(paths: &[String]) -> String {
    let mut cmd = String::from("stat -c '%s %.9Y %i %a %n' --");
    for p in paths {
        cmd.push(' ');
        cmd.push_str(&shell_quote(p));
    }
    cmd
}

/// The line `stat_command` prints for a file exactly as recorded.
fn stat_line(record: &ShippedFile, path: &str) -> String {
    format!(
        "{} {}.{:09} {} {:o} {}",
        record.size,
        record.mtime_ns.div_euclid(1_000_000_000),
        record.mtime_ns.rem_euclid(1_000_000_000),
        record.inode,
        record.mode & 0o7777,
        path
    )
}

#[derive(Debug, Clone, Copy)]
struct Stat {
    size: u64,
    mtime_ns: i64,
    inode: u64,
    mode: u32,
}

impl Stat {
    fn same_as(&self, r: &ShippedFile) -> bool {
        self.size == r.size
            && self.mtime_ns == r.mtime_ns
            && self.inode == r.inode
            && self.mode == r.mode & 0o7777
    }
}

fn parse_stat(line: &str) -> Option<(String, Stat)> {
    let mut parts = line.splitn(5, ' ');
    let size = parts.next()?.parse().ok()?;
    let (secs, nanos) = parts.next()?.split_once('.')?;
    let mtime_ns = secs.parse::<i64>().ok()? * 1_000_000_000 + nanos.parse::<i64>().ok()?;
    let inode = parts.next()?.parse().ok()?;
    let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
    let path = parts.next()?.to_string();
    Some((
        path,
        Stat {
            size,
            mtime_ns,
            inode,
            mode,
        },
    ))
}

fn parse_stats(text: &str) -> HashMap<String, Stat> {
    text.lines().filter_map(parse_stat).collect()
}

/// A here-document delimiter that does not occur in `body`.
fn heredoc_marker(body: &str) -> String {
    let mut n = 0u32;
    loop {
        let marker = format!("CAIRN_EOF_{n}");
        if !body.contains(&marker) {
            return marker;
        }
        n += 1;
    }
}

/// A file's name in the shipping stream: its path under the destination
/// (`file` for a destination that is itself the file).
fn tar_name(rel: &str) -> &str {
    if rel.is_empty() { "file" } else { rel }
}

type StreamKey = [u8; 32];

/// A stream being built (or built) once, for every host that waits on it.
type StreamCell = Arc<OnceLock<Result<Arc<Stream>, String>>>;

/// A file set packed for shipping.
struct Stream {
    bytes: Vec<u8>,
    /// Compressed with zstd (else a plain tar).
    zstd: bool,
}

/// Compressed streams by file set, shared across hosts.
static STREAMS: Mutex<Option<HashMap<StreamKey, StreamCell>>> = Mutex::new(None);

/// The tar stream (zstd-compressed if `zstd`) of `files`, entries named by
/// [`tar_name`]; built once per distinct file set and reused by every host.
fn shared_stream(files: &[(String, ShipFile)], zstd: bool) -> Result<Arc<Stream>, String> {
    let mut h = Sha256::new();
    h.update([u8::from(zstd)]);
    for (rel, f) in files {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(f.entry.hash.as_bytes());
        h.update(f.entry.mode.to_le_bytes());
    }
    let key: StreamKey = h.finalize().into();
    let cell = {
        let mut guard = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
        let map = guard.get_or_insert_with(HashMap::new);
        // Only the latest few sets are worth keeping in memory.
        if map.len() > 16 {
            map.clear();
        }
        map.entry(key).or_default().clone()
    };
    cell.get_or_init(|| build_stream(files, zstd).map(Arc::new))
        .clone()
}

/// A tar of `files`, compressed with zstd when the host has it and it pays:
/// a stream that shrinks by less than 5% (already-compressed images,
/// archives, random data) goes as plain tar, which spares the host a
/// decompression pass over every byte for nothing.
fn build_stream(files: &[(String, ShipFile)], zstd: bool) -> Result<Stream, String> {
    let mut tar = tar::Builder::new(Vec::new());
    for (rel, file) in files {
        let bytes = file
            .data
            .read()
            .map_err(|e| format!("failed to read the source of {rel}: {e}"))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(file.entry.mode);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(0);
        tar.append_data(&mut header, tar_name(rel), bytes.as_slice())
            .map_err(|e| format!("failed to pack {rel}: {e}"))?;
    }
    let raw = tar
        .into_inner()
        .map_err(|e| format!("failed to pack files: {e}"))?;
    if zstd {
        let packed = zstd::stream::encode_all(raw.as_slice(), 3)
            .map_err(|e| format!("failed to compress: {e}"))?;
        if packed.len() < raw.len() / 100 * 95 {
            return Ok(Stream {
                bytes: packed,
                zstd: true,
            });
        }
    }
    Ok(Stream {
        bytes: raw,
        zstd: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_round_trip() {
        let record = ShippedFile {
            hash: "h".into(),
            mode: 0o100644,
            size: 12,
            mtime_ns: 1_700_000_000_000_000_042,
            inode: 77,
        };
        let line = stat_line(&record, "/opt/a b/c");
        assert_eq!(line, "12 1700000000.000000042 77 644 /opt/a b/c");
        let (path, stat) = parse_stat(&line).unwrap();
        assert_eq!(path, "/opt/a b/c");
        assert!(stat.same_as(&record));
    }

    #[test]
    fn the_command_line_holds_no_secret() {
        // The runner sits in single quotes, so it must hold none itself.
        assert!(!REMOTE_RUNNER.contains('\''));
        // Sudo with a password: the password goes on stdin, never in the command line.
        let password = "pa55-never-on-a-command-line";
        let line = command_line(&Sudo::Password(Secret::new(password.into())));
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
