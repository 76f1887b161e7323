//! pyinfra beside cairn in the workload benchmark (`--with-pyinfra`): the
//! workload as a pyinfra 3.x deploy (`benches/pyinfra/deploy.py`), run on
//! the same test hosts with an inventory and a `known_hosts` written into
//! the run's temp folder. pyinfra itself is installed on demand into a
//! virtualenv in a cache folder outside the repository (the package index's
//! `pyinfra==3.10.*`), once, before anything is timed.

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::hosts::TestHosts;

/// The pyinfra release the deploy is written for and measured with.
const PYINFRA: &str = "pyinfra==3.10.*";

/// An installed pyinfra and the deploy it runs.
pub(crate) struct Pyinfra {
    program: PathBuf,
    deploy: PathBuf,
    /// What `pyinfra --version` said, for the report.
    pub version: String,
}

/// The virtualenv: `$CAIRN_PYINFRA_VENV`, else `cairn-bench/pyinfra-venv`
/// in `$XDG_CACHE_HOME` or `~/.cache`: outside the repository, kept
/// between runs.
fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAIRN_PYINFRA_VENV") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").expect("$HOME is set (for the cache folder)"))
                .join(".cache")
        },
        PathBuf::from,
    );
    cache.join("cairn-bench/pyinfra-venv")
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Pyinfra {
    /// pyinfra from its virtualenv, made (`python3 -m venv`, `pip install`)
    /// when missing or holding another release than [`PYINFRA`].
    pub(crate) fn install() -> Pyinfra {
        let venv = venv_dir();
        let program = venv.join("bin/pyinfra");
        let version = |program: &Path| {
            Command::new(program)
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let wanted = PYINFRA
            .trim_start_matches("pyinfra==")
            .trim_end_matches('*');
        let have =
            version(&program).filter(|v| v.trim_start_matches("pyinfra: v").starts_with(wanted));
        let version = have.unwrap_or_else(|| {
            eprintln!("installing {PYINFRA} into {}", venv.display());
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", PYINFRA]));
            version(&program).expect("pyinfra runs once installed")
        });
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pyinfra/deploy.py");
        assert!(deploy.is_file(), "{} is missing", deploy.display());
        Pyinfra {
            program,
            deploy,
            version,
        }
    }
}

/// One run's pyinfra setup: the inventory and `known_hosts` in a folder of
/// the run's temp folder.
pub(crate) struct Run<'a> {
    pyinfra: &'a Pyinfra,
    dir: PathBuf,
}

impl<'a> Run<'a> {
    /// Writes into `dir` (made here) a `known_hosts` holding every host's
    /// own host key (read from the host's files, so pyinfra checks keys
    /// strictly rather than trusting the first one it sees) and
    /// `inventory.py`: the first host in the group `master`, the others in
    /// `workers`, each named as cairn names it, logging in as root with the
    /// test key, with the workload's variables and the local `bundle`.
    pub(crate) fn new(
        pyinfra: &'a Pyinfra,
        dir: PathBuf,
        hosts: &TestHosts,
        bundle: &Path,
    ) -> Run<'a> {
        std::fs::create_dir(&dir).expect("can make the pyinfra folder");
        let mut known_hosts = String::new();
        for h in &hosts.hosts {
            let key = std::fs::read_to_string(h.path("/etc/ssh/ssh_host_ed25519_key.pub"))
                .expect("the host's public host key");
            let mut words = key.split_whitespace();
            let (kind, key) = (
                words.next().expect("a key type"),
                words.next().expect("a key"),
            );
            let _ = writeln!(known_hosts, "{} {kind} {key}", h.address);
        }
        let known_hosts_file = dir.join("known_hosts");
        std::fs::write(&known_hosts_file, known_hosts).expect("can write known_hosts");
        let master = &hosts.hosts[0].address;
        let host_entry = |h: &crate::hosts::TestHost| {
            // JSON strings and objects are Python literals too.
            let data = serde_json::json!({
                "ssh_hostname": h.address,
                "ssh_user": "root",
                "ssh_key": hosts.key,
                "ssh_known_hosts_file": known_hosts_file,
                "ssh_strict_host_key_checking": "yes",
                "host_addr": h.address,
                "cluster_name": "bench-cluster",
                "bundle": bundle,
                "master_addr": master,
            });
            format!("    ({:?}, {data}),\n", h.name)
        };
        let (first, rest) = hosts.hosts.split_first().expect("at least one host");
        let inventory = format!(
            "# Generated by benches/workload.rs for one benchmark run.\nmaster = [\n{}]\nworkers = [\n{}]\n",
            host_entry(first),
            rest.iter().map(host_entry).collect::<String>()
        );
        std::fs::write(dir.join("inventory.py"), inventory).expect("can write the inventory");
        Run { pyinfra, dir }
    }

    /// Runs `pyinfra ARGS inventory.py deploy.py` and returns its wall
    /// time (process start to exit), its own CPU time (user and system, by
    /// `wait4`) and what it printed.
    pub(crate) fn deploy(&self, args: &[&str]) -> (Duration, Duration, Output) {
        let t0 = Instant::now();
        #[expect(
            clippy::zombie_processes,
            reason = "reaped by controller::wait_with_usage (wait4), which also gives its CPU time"
        )]
        let mut child = Command::new(&self.pyinfra.program)
            .args(args)
            .arg("inventory.py")
            .arg(&self.pyinfra.deploy)
            .current_dir(&self.dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pyinfra runs");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                pipe.read_to_end(&mut bytes)
                    .expect("reading pyinfra's output");
                bytes
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("piped")));
        let stderr = drain(Box::new(child.stderr.take().expect("piped")));
        let pid = i32::try_from(child.id()).expect("a pid fits in i32");
        let (status, usage) = crate::controller::wait_with_usage(pid);
        let wall = t0.elapsed();
        let out = Output {
            status: ExitStatus::from_raw(status),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        };
        (wall, usage.user + usage.system, out)
    }
}
