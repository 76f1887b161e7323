//! Starting a host's OpenSSH master connection, with every option spelled
//! out, and what its logs say when it fails.
//!
//! cairn starts `ssh -M -N` itself, in the foreground as its child, ended
//! with it (see [`ssh_dying_with_cairn`]), then attaches to its control socket
//! with the `openssh` crate's native mux client) rather than through the
//! crate's builder, for three things the builder cannot do:
//!
//! - **Secrets**: a host with a `password` or `identity_passphrase` gets
//!   cairn's askpass environment (see `askpass`) and is not in batch mode;
//!   every other host runs with `BatchMode=yes`, so nothing ever prompts.
//! - **Jump hosts**: OpenSSH passes `-F` to a jump host's ssh but not `-o`
//!   or `-i`, so a hop would not see the identity, `known_hosts` or host-key
//!   policy given on the command line. A host with hops gets a config file
//!   of its own: the user's ssh config included first (what it says for a
//!   host wins), then cairn's settings for every host. The target itself
//!   gets them as `-o` options, which win over any config.
//! - **Errors by hop**: when a host with jump hosts cannot be reached, each
//!   hop is tried on its own, so the error names the hop that failed and why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use openssh::Session;

use super::run::{SshRun, control_dir, end};
use crate::model::{Host, HostKeyPolicy, expand_home};
use crate::transport::TransportError;

/// A host's master connection: its folder (control socket, logs, config)
/// and its ssh process, ended when dropped.
pub(super) struct Master {
    dir: tempfile::TempDir,
    /// Behind a lock so that closing the host ends it even while a copy of
    /// the host's transport is still held somewhere (a finished task's).
    process: std::sync::Mutex<Option<tokio::process::Child>>,
}

impl Master {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("m")
    }

    /// Ends the ssh process and waits until it is gone (up to 2 s, then it
    /// is killed): a fleet that closes a host to open another counts on the
    /// first one's memory being free, and on no more than `--parallelism`
    /// ssh processes being alive.
    pub(super) async fn shut(&self) {
        let process = self
            .process
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut process) = process {
            end(&mut process);
            if tokio::time::timeout(Duration::from_secs(2), process.wait())
                .await
                .is_err()
            {
                let _ = process.kill().await;
            }
        }
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let process = self
            .process
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(process) = process {
            end(process);
        }
    }
}

/// `ssh`, set up to die with cairn. Masters run in the foreground as
/// cairn's children (not `-f`, which makes a daemon that would outlive a
/// killed cairn by its `ControlPersist`): a parent-death signal ends each
/// one however cairn ends, and a normal end asks them to (see `run::end`).
/// Each is in a session of its own, as a daemon would be: a Ctrl-C at the
/// terminal reaches cairn (which lets running tasks finish over these
/// connections), not them, and ssh has no terminal to prompt on.
fn ssh_dying_with_cairn() -> tokio::process::Command {
    let mut ssh = tokio::process::Command::new("ssh");
    // SAFETY: setsid(2), prctl(2), getppid(2) and raise(3) are
    // async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        ssh.pre_exec(|| {
            let parent = libc::getppid();
            libc::setsid();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // cairn died before the signal was asked for: nobody would send it.
            if parent == 1 {
                libc::raise(libc::SIGTERM);
            }
            Ok(())
        });
    }
    ssh.kill_on_drop(false);
    ssh
}

/// Waits until a master started in the foreground listens on `socket` (it
/// has logged in), or ends (it could not). `Ok(None)`: listening.
async fn until_listening(
    process: &mut tokio::process::Child,
    socket: &Path,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    loop {
        tokio::select! {
            status = process.wait() => return status.map(Some),
            () = tokio::time::sleep(Duration::from_millis(3)) => {
                if socket.exists() {
                    return Ok(None);
                }
            }
        }
    }
}

/// What the master's start-up left behind when it failed.
pub(super) struct Failure {
    /// ssh's own log (`-E`): the target's side.
    pub log: String,
    /// The first jump host that could not be passed (its index in the host's hops)
    /// and what its ssh said, when one failed.
    pub hop: Option<(usize, String)>,
    /// Whether a password / passphrase was handed out.
    pub served: super::askpass::Served,
}

/// How one host's ssh processes are started: the options, config file and
/// askpass environment that its master and any diagnosis share.
struct Invocation<'a> {
    host: &'a Host,
    options: Vec<String>,
    config: Option<PathBuf>,
    env: Vec<(&'static str, String)>,
}

impl Invocation<'_> {
    /// `ssh` for a jump host: its settings come from the hop config alone,
    /// so what the user's ssh config says for it wins, as for every hop.
    fn hop_command(&self) -> tokio::process::Command {
        let mut ssh = ssh_dying_with_cairn();
        ssh.kill_on_drop(true)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .envs(self.env.iter().cloned());
        if let Some(config) = &self.config {
            ssh.arg("-F").arg(config);
        }
        ssh
    }

    /// `ssh` for the host itself, with everything but the destination and
    /// the mode: the Clusterfile's settings as `-o` options, which win over
    /// any config.
    fn command(&self) -> tokio::process::Command {
        let mut ssh = self.hop_command();
        for option in &self.options {
            ssh.arg("-o").arg(option);
        }
        if let Some(identity) = &self.host.ssh.identity {
            ssh.arg("-i").arg(expand_home(identity));
        }
        ssh
    }
}

/// Starts the master connection to `host` and attaches to it. `limit`
/// bounds the whole login (a frozen host must not hang the run).
pub(super) async fn launch(
    host: &Host,
    known_hosts: &Path,
    run: &SshRun,
    limit: Duration,
) -> Result<Result<(Session, Master), Failure>, TransportError> {
    let io_error = |what: &str, e: std::io::Error| unreachable(host, format!("{what}: {e}"));
    let dir = tempfile::Builder::new()
        .prefix(".cairn-ssh")
        .tempdir_in(control_dir())
        .map_err(|e| io_error("cannot make a folder for its SSH connection", e))?;
    let master = Master {
        dir,
        process: std::sync::Mutex::new(None),
    };
    let (invocation, token) = invocation(host, known_hosts, run, master.dir.path())?;
    if let Some(first) = host.ssh.hops().first() {
        // Opened once, before any host behind it: the hops of every host
        // behind it find its socket (the hop config's `ControlPath`) and
        // share it. Kept by the run, ended with it.
        let open = open_jump(&invocation, first, limit);
        run.open_jump_once(&hop_key(first), open).await;
    }
    let log = master.dir.path().join("log");
    let mut ssh = invocation.command();
    ssh.arg("-E").arg(&log).arg("-S").arg(master.socket());
    ssh.args(["-M", "-N", "-o", "ControlPersist=no"]);
    ssh.arg("-p").arg(host.port.to_string());
    ssh.arg("-l").arg(&host.user);
    if !host.ssh.jump.is_empty() {
        ssh.arg("-J").arg(host.ssh.jump.join(","));
    }
    ssh.arg("--").arg(&host.address);
    let mut process = match ssh.spawn() {
        Ok(process) => process,
        Err(e) => return Err(io_error("cannot run ssh (is openssh-client installed?)", e)),
    };
    let socket = master.socket();
    let listening = tokio::time::timeout(limit, until_listening(&mut process, &socket)).await;
    *master
        .process
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(process);
    let outcome = match listening {
        Ok(Ok(None)) => {
            let session = Session::resume_mux(
                master.socket().into_boxed_path(),
                Some(log.into_boxed_path()),
            );
            Ok(Ok((session, master)))
        }
        Ok(Ok(Some(_))) => {
            // Its jump hosts' ssh wrote their errors nowhere this run keeps:
            // each hop is tried on its own to find the one that fails, and why.
            let hop = tokio::time::timeout(limit, diagnose_hops(&invocation, master.dir.path()))
                .await
                .unwrap_or_default();
            Ok(Err(Failure {
                log: std::fs::read_to_string(&log).unwrap_or_default(),
                hop,
                served: super::askpass::Served::default(),
            }))
        }
        Ok(Err(e)) => Err(io_error("cannot run ssh (is openssh-client installed?)", e)),
        Err(_) => Err(TransportError::Unreachable {
            host: host.name.clone(),
            message: format!(
                "{} did not finish the SSH login within {}; is the host (or a jump host) frozen or overloaded?",
                host.reached_at(),
                humantime::format_duration(limit)
            ),
        }),
    };
    if let (Some(t), Ok(askpass)) = (&token, run.askpass()) {
        let served = askpass.served(t);
        askpass.forget(t);
        if let Ok(Err(mut failure)) = outcome {
            failure.served = served;
            return Ok(Err(failure));
        }
    }
    outcome
}

fn unreachable(host: &Host, message: String) -> TransportError {
    TransportError::Unreachable {
        host: host.name.clone(),
        message,
    }
}

/// How `host`'s ssh processes start (see [`Invocation`]), and its askpass
/// token when it has secrets to hand over.
fn invocation<'a>(
    host: &'a Host,
    known_hosts: &Path,
    run: &SshRun,
    dir: &Path,
) -> Result<(Invocation<'a>, Option<String>), TransportError> {
    let io_error = |what: &str, e: std::io::Error| unreachable(host, format!("{what}: {e}"));
    let known = known_hosts_files(host, known_hosts, dir)
        .map_err(|e| io_error("cannot read its host_ca", e))?;
    let config = if host.ssh.hops().is_empty() {
        host.ssh.config.as_ref().map(PathBuf::from)
    } else {
        let config = dir.join("config");
        std::fs::write(&config, hop_config(host, &known, run.dir()))
            .map_err(|e| io_error("cannot write its jump hosts' ssh config", e))?;
        Some(config)
    };
    let mut invocation = Invocation {
        host,
        options: options(host, &known),
        config,
        env: Vec::new(),
    };
    let mut token = None;
    if host.ssh.needs_askpass() {
        let askpass = run
            .askpass()
            .map_err(|message| unreachable(host, message))?;
        let (env, t) = askpass.register(&host.ssh);
        invocation.env = env;
        token = Some(t);
    }
    Ok((invocation, token))
}

/// Opens the shared connection to a first jump host: a master in the
/// foreground on the socket its hops look for (`ssh -G` says where the hop
/// config's `ControlPath` puts it for this machine), kept by the run. When
/// it cannot log in, nothing is kept: the hosts behind it then fail with
/// their own connections, which say why.
fn open_jump(
    invocation: &Invocation<'_>,
    first: &str,
    limit: Duration,
) -> impl std::future::Future<Output = Option<tokio::process::Child>> + use<> {
    let mut ask = invocation.hop_command();
    ask.stdout(Stdio::piped())
        .arg("-G")
        .arg("--")
        .arg(destination(first));
    let mut open = invocation.hop_command();
    open.args(["-M", "-N", "-o", "ControlPersist=no"]);
    open.arg("--").arg(destination(first));
    async move {
        let said = ask.output().await.ok()?;
        let socket = String::from_utf8_lossy(&said.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("controlpath ").map(PathBuf::from))?;
        open.arg("-S").arg(&socket);
        let mut process = open.spawn().ok()?;
        if let Ok(Ok(None)) =
            tokio::time::timeout(limit, until_listening(&mut process, &socket)).await
        {
            Some(process)
        } else {
            end(&mut process);
            None
        }
    }
}

/// Passes the jump hosts one at a time (`ssh -W NEXT HOP`, through the hops
/// before it), each with its own log: the first that fails, and its log.
/// `None` when every hop lets the connection through (the target failed).
async fn diagnose_hops(invocation: &Invocation<'_>, dir: &Path) -> Option<(usize, String)> {
    let hops = invocation.host.ssh.hops();
    for (i, hop) in hops.iter().enumerate() {
        let log = dir.join(format!("hop{i}"));
        let mut ssh = invocation.hop_command();
        ssh.arg("-E").arg(&log);
        ssh.args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "-W"]);
        ssh.arg(next_hop(invocation, i));
        if i > 0 {
            ssh.arg("-J").arg(hops[..i].join(","));
        }
        ssh.arg("--").arg(destination(hop));
        let passed = ssh.status().await.is_ok_and(|s| s.success());
        if !passed {
            return Some((i, std::fs::read_to_string(&log).unwrap_or_default()));
        }
    }
    None
}

/// Where hop `index` forwards to, as `ssh -W` takes it: the next hop, or
/// the host itself (the machine, not an alias: the jump host knows nothing
/// of this ssh config).
fn next_hop(invocation: &Invocation<'_>, index: usize) -> String {
    match invocation.host.ssh.hops().get(index + 1) {
        Some(next) => forward_target(next),
        None => format!(
            "[{}]:{}",
            invocation.host.reached_at(),
            invocation.host.port
        ),
    }
}

/// A jump host as written (`[user@]host[:port]`), parsed as a host
/// address is (validation already checked it parses).
fn parse_hop(hop: &str) -> Option<crate::model::address::Address> {
    crate::model::address::parse(hop).ok()?.into_iter().next()
}

/// A jump host as one machine, however it is spelled (`root@b`, `root@b:22`).
fn hop_key(hop: &str) -> String {
    match parse_hop(hop) {
        Some(a) => format!(
            "{}@{}:{}",
            a.user.unwrap_or_default(),
            a.host,
            a.port.unwrap_or(22)
        ),
        None => hop.to_string(),
    }
}

/// A jump host (`user@host:port`) as a destination on ssh's command line,
/// which reads no port there: `ssh://user@host:port`.
fn destination(hop: &str) -> String {
    match parse_hop(hop) {
        Some(a) if a.port.is_some() => {
            let user = a.user.map(|u| format!("{u}@")).unwrap_or_default();
            let host = if a.host.contains(':') {
                format!("[{}]", a.host)
            } else {
                a.host
            };
            format!("ssh://{user}{host}:{}", a.port.unwrap_or(22))
        }
        _ => hop.to_string(),
    }
}

/// `user@host:port` as `ssh -W` takes it: `[host]:port`.
fn forward_target(hop: &str) -> String {
    match parse_hop(hop) {
        Some(a) => format!("[{}]:{}", a.host, a.port.unwrap_or(22)),
        None => hop.to_string(),
    }
}

/// The `known_hosts` files ssh reads, in order: cairn's own (new keys go
/// there under `accept-new`), the user's, and a file holding the
/// `host_ca` as an `@cert-authority` line. Empty for `host_keys = "off"`.
fn known_hosts_files(host: &Host, cairn_file: &Path, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if host.ssh.host_keys == HostKeyPolicy::Off {
        return Ok(Vec::new());
    }
    if let Some(parent) = cairn_file.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let mut files = vec![cairn_file.to_path_buf(), expand_home("~/.ssh/known_hosts")];
    if let Some(ca) = &host.ssh.host_ca {
        let key = std::fs::read_to_string(ca)?;
        let key = key
            .lines()
            .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        let file = dir.join("host_ca");
        std::fs::write(&file, format!("@cert-authority * {}\n", key.trim()))?;
        files.push(file);
    }
    Ok(files)
}

/// The `-o` options for the target (and, in the hop config, every hop).
fn options(host: &Host, known: &[PathBuf]) -> Vec<String> {
    let s = &host.ssh;
    let mut options = vec![
        format!(
            "StrictHostKeyChecking={}",
            match s.host_keys {
                HostKeyPolicy::Strict => "yes",
                HostKeyPolicy::AcceptNew => "accept-new",
                HostKeyPolicy::Off => "no",
            }
        ),
        if known.is_empty() {
            "UserKnownHostsFile=/dev/null".to_string()
        } else {
            let quoted: Vec<String> = known
                .iter()
                .map(|p| format!("\"{}\"", p.display()))
                .collect();
            format!("UserKnownHostsFile={}", quoted.join(" "))
        },
        format!("ConnectTimeout={}", s.connect_timeout.as_secs().max(1)),
        "ServerAliveInterval=5".to_string(),
    ];
    if s.needs_askpass() {
        options.push("BatchMode=no".into());
        options.push("NumberOfPasswordPrompts=1".into());
    } else {
        options.push("BatchMode=yes".into());
    }
    if s.identity.is_some() {
        options.push("IdentitiesOnly=yes".into());
    }
    if let Some(certificate) = &s.certificate {
        options.push(format!("CertificateFile=\"{certificate}\""));
    }
    options
}

/// The ssh config of a host with jump hosts (see the module doc): the
/// user's config first, then cairn's settings for every host, and a shared
/// connection per jump host in the run's folder.
fn hop_config(host: &Host, known: &[PathBuf], run_dir: &Path) -> String {
    let mut text = String::from(
        "# Written by cairn for one connection; the user's ssh config comes first and wins.\n",
    );
    match &host.ssh.config {
        Some(config) => {
            let _ = writeln!(text, "Include \"{config}\"");
        }
        None => {
            text.push_str("Include ~/.ssh/config\nInclude /etc/ssh/ssh_config\n");
        }
    }
    text.push_str("Host *\n");
    for option in options(host, known) {
        let (key, value) = option.split_once('=').expect("options are KEY=VALUE");
        let _ = writeln!(text, "    {key} {value}");
    }
    if let Some(identity) = &host.ssh.identity {
        let _ = writeln!(
            text,
            "    IdentityFile \"{}\"",
            expand_home(identity).display()
        );
    }
    // Hops use the run's shared connection to a machine when there is one
    // (see `open_jump`), and never become masters themselves.
    let _ = writeln!(text, "    ControlMaster no");
    let _ = writeln!(text, "    ControlPath \"{}/j-%C\"", run_dir.display());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_host_with_a_port_becomes_a_uri_and_the_next_hop_a_forward() {
        assert_eq!(destination("ops@10.0.0.9:2222"), "ssh://ops@10.0.0.9:2222");
        assert_eq!(destination("10.0.0.9:2222"), "ssh://10.0.0.9:2222");
        assert_eq!(destination("ops@bastion"), "ops@bastion");
        assert_eq!(forward_target("ops@10.0.0.9:2222"), "[10.0.0.9]:2222");
        assert_eq!(forward_target("bastion"), "[bastion]:22");
        assert_eq!(hop_key("root@b"), hop_key("root@b:22"));
        assert_ne!(hop_key("root@b"), hop_key("ops@b"));
    }
}
