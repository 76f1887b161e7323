//! The standard benchmark workload (benches/workload/README.md) on real
//! isolated sshd test hosts: S1 cold apply, S2 no-op re-apply, S3 one small
//! file changed, S4 drift check, each timed as the wall clock of the
//! `cairn` process, beside its floor, measured in the same run on the same
//! hosts: for S2 and S4 one fresh `ssh HOST true` to every host in
//! parallel; for S1 the bundle as one tar stream over one fresh ssh per
//! host, unpacked there, followed by the workload's own steps (install,
//! init, join); for S3 one fresh ssh per host writing the changed file and
//! rerunning the install. On a fleet larger than cairn's default
//! `--parallelism` (`cairn::cli::DEFAULT_PARALLELISM`), each floor is
//! measured both with every host at once and in windows of that many
//! hosts, and the lower counts. Each ratio is the
//! scenario's median over its floor's median. Beside each scenario (and `cairn plan --offline`), the
//! controller side's cost: the peak resident memory of cairn and of cairn
//! plus every process descended from it (its ssh), the ssh processes alive
//! at that peak, and the CPU of cairn, of its ssh and of the hosts
//! (`support/controller.rs`); an ssh process cairn started that outlives
//! it fails the benchmark.
//!
//!   cargo bench --bench workload                 # 4, 16 and 48 hosts, 3 runs each
//!   cargo bench --bench workload -- 16 --runs 1  # one size, one run
//!   cargo bench --bench workload -- 4 16 --runs 3 --with-pyinfra
//!
//! `--with-pyinfra` also runs the workload as a pyinfra deploy
//! (`benches/pyinfra/`, `support/pyinfra.rs`) in each run, on the same
//! hosts, after cairn's scenarios and the floors, from a fresh /opt/bench,
//! and prints cairn beside it. pyinfra 3.10 is installed on first use into
//! a virtualenv outside the repository (needs `python3 -m venv` and the package index).
//!
//! Needs root (test hosts), openssh-server and python3 (the bundle
//! generator). The workload is vendored in `benches/workload/` (its
//! README.md, `gen_bundle.py` and static/); `$CAIRN_WORKLOAD` names another
//! workload folder instead. The generated bundle (31 MB) goes only to the
//! run's temp folder, by absolute path, with the generator started in that
//! folder: nothing is ever generated inside the repository. Every run starts
//! fresh hosts and a fresh local state; each scenario's end state is
//! verified as the workload specifies, and a scenario that does not verify
//! aborts the benchmark.

#[path = "../tests/support/hosts.rs"]
#[expect(
    dead_code,
    reason = "the fault helpers (freeze, kill, fill) are for tests/ssh/"
)]
mod hosts;

#[path = "support/controller.rs"]
mod controller;

#[path = "support/pyinfra.rs"]
mod pyinfra;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead as _, Read as _, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use hosts::TestHosts;
use sha2::{Digest, Sha256};

fn workload_dir() -> PathBuf {
    std::env::var_os("CAIRN_WORKLOAD").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/workload"),
        PathBuf::from,
    )
}

/// Runs the workload's bundle generator, `gen_bundle.py [FLAG] BUNDLE [ARG]`,
/// and returns what it printed. Generated data goes only to a temp folder:
/// `bundle` must be an absolute path (so it can never be read as an option,
/// as `--help` once was) outside the repository, and the generator runs in
/// the bundle's parent folder, never in the checkout.
fn generator(flag: Option<&str>, bundle: &Path, arg: Option<&str>) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .expect("the repository folder exists");
    let parent = bundle
        .parent()
        .filter(|_| bundle.is_absolute())
        .unwrap_or_else(|| panic!("bundle folder {} is not absolute", bundle.display()));
    let parent = parent
        .canonicalize()
        .unwrap_or_else(|e| panic!("bundle's parent {}: {e}", parent.display()));
    assert!(
        !parent.starts_with(&repo),
        "bundle folder {} is inside the repository {}: generated data goes to a temp folder only",
        bundle.display(),
        repo.display()
    );
    let script = workload_dir().join("gen_bundle.py");
    assert!(
        script.is_file(),
        "{} is missing (the workload folder is benches/workload/ or $CAIRN_WORKLOAD)",
        script.display()
    );
    let out = Command::new("python3")
        .arg(&script)
        .args(flag)
        .arg(bundle)
        .args(arg)
        .current_dir(&parent)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs the bundle generator");
    assert!(
        out.status.success(),
        "gen_bundle.py {flag:?} {} {arg:?}: {}",
        bundle.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The workload as a cairn Clusterfile: (a) preflight, (b) the bundle, (c)
/// the template, (d) install after (a) and (b), (e) init on the master
/// (once), (f) join on every worker after its own install and the init.
fn clusterfile(hosts: &TestHosts) -> String {
    let master = &hosts.hosts[0].address;
    let mut text = format!(
        r#"version = 1
name = "bench"

[ssh]
identity = "{key}"

[vars]
cluster_name = "bench-cluster"

"#,
        key = hosts.key.display()
    );
    for (i, h) in hosts.hosts.iter().enumerate() {
        let role = if i == 0 { "master" } else { "worker" };
        let _ = write!(
            text,
            "[[hosts]]\nname = \"{}\"\naddress = \"{}\"\nroles = [\"{role}\"]\nvars = {{ host_addr = \"{}\" }}\n\n",
            h.name, h.address, h.address
        );
    }
    let _ = write!(
        text,
        r#"[[steps]]
name = "preflight"
run = "test -w /opt"
check = "test -w /opt"

[[bundles]]
name = "bundle"
source = "bundle"
dest = "/opt/bench/bundle"

[[files]]
name = "app-conf"
source = "bundle/etc/app.conf.tmpl"
template = true
dest = "/opt/bench/app.conf"

[[steps]]
name = "install"
after = ["preflight", "bundle"]
run = "sh /opt/bench/bundle/bin/install.sh"

[[steps]]
name = "init"
on = ["master"]
after = ["install"]
run = "test -e /opt/bench/token || sh /opt/bench/bundle/bin/cluster-init.sh"
once = true

[[steps]]
name = "join"
on = ["worker"]
after = ["install", "init@*"]
run = "test -e /opt/bench/joined || sh /opt/bench/bundle/bin/cluster-join.sh {master}"
once = true
"#
    );
    text
}

struct Bench {
    dir: tempfile::TempDir,
    hosts: TestHosts,
    /// The `unshare` processes of the test hosts: their children are the
    /// hosts' inits (sshd), whose waited-for CPU is all the hosts' work.
    host_roots: HashSet<i32>,
}

/// What one `cairn` run cost the controller side and the hosts.
#[derive(Debug, Clone)]
struct Cost {
    wall: Duration,
    /// Each line cairn printed, with when it arrived (since cairn started).
    lines: Vec<(Duration, String)>,
    peaks: controller::Peaks,
    usage: controller::Usage,
    /// CPU time spent on the test hosts (sshd and everything under it)
    /// from cairn's start until its ssh processes were gone.
    hosts_cpu: Duration,
}

/// How long the ssh processes cairn started may take to go after it
/// exited (they get SIGTERM by parent death) before the bench fails.
const SSH_GRACE: Duration = Duration::from_secs(3);

impl Bench {
    /// Runs cairn with `args`, watching its memory and its ssh processes
    /// (see `controller`); fails the benchmark if an ssh process cairn
    /// started outlives it by more than [`SSH_GRACE`].
    fn cairn(&self, args: &[&str]) -> (Cost, std::process::Output) {
        let hosts_cpu0 = controller::cpu_of_children_of(&self.host_roots);
        let t0 = Instant::now();
        #[expect(
            clippy::zombie_processes,
            reason = "reaped by controller::wait_with_usage (wait4), which also gives its resource usage"
        )]
        let mut child = cairn_command()
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cairn runs");
        let pid = i32::try_from(child.id()).expect("a pid fits in i32");
        let watch = controller::Watch::start(pid);
        let stdout = child.stdout.take().expect("piped");
        let stdout = std::thread::spawn(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map(|line| (t0.elapsed(), line.expect("reading cairn's output")))
                .collect::<Vec<_>>()
        });
        let mut stderr_pipe = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            stderr_pipe
                .read_to_end(&mut bytes)
                .expect("reading cairn's errors");
            bytes
        });
        let (status, usage) = controller::wait_with_usage(pid);
        let wall = t0.elapsed();
        let peaks = watch.finish();
        let lines = stdout.join().expect("stdout reader");
        let out = std::process::Output {
            status: std::process::ExitStatus::from_raw(status),
            stdout: lines
                .iter()
                .flat_map(|(_, l)| [l.as_bytes(), b"\n"].concat())
                .collect(),
            stderr: stderr.join().expect("stderr reader"),
        };
        let deadline = Instant::now() + SSH_GRACE;
        let mut left = controller::still_alive(&peaks.ssh_started);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            left = controller::still_alive(&left);
        }
        assert!(
            left.is_empty(),
            "cairn {args:?} exited, and {} of the {} ssh processes it started were still alive {} s later: pids {:?}",
            left.len(),
            peaks.ssh_started.len(),
            SSH_GRACE.as_secs(),
            left.iter().map(|p| p.pid).collect::<Vec<_>>()
        );
        let hosts_cpu = controller::cpu_of_children_of(&self.host_roots).saturating_sub(hosts_cpu0);
        let cost = Cost {
            wall,
            lines,
            peaks,
            usage,
            hosts_cpu,
        };
        (cost, out)
    }

    fn apply(&self) -> (Cost, Vec<serde_json::Value>) {
        let (t, out) = self.cairn(&["--json", "apply", "--auto-approve"]);
        assert!(
            out.status.success(),
            "apply failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let events = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (t, events)
    }

    /// `ssh root@HOST` with the test key, never sharing a connection: every
    /// floor pays its own handshake, as cairn does in a run.
    fn fresh_ssh(&self, host: &hosts::TestHost) -> Command {
        let login = self.hosts.ssh("root", host);
        let mut c = Command::new("ssh");
        // Options go before the destination, which `ssh()` puts last.
        c.args(["-o", "ControlMaster=no", "-o", "ControlPath=none"])
            .args(login.get_args());
        c
    }

    /// Runs `script` on every host, each over one fresh ssh connection
    /// with `input(host index)` on its stdin, at most `window` hosts at once
    /// (the next starting as one ends), and returns the wall time until
    /// the last host is done. A host that fails stops the benchmark.
    fn on_every_host<'a>(
        &self,
        window: usize,
        script: impl Fn(usize) -> String + Sync,
        input: impl Fn(usize) -> &'a [u8] + Sync,
    ) -> Duration {
        let t0 = Instant::now();
        let free = (
            std::sync::Mutex::new(window.max(1)),
            std::sync::Condvar::new(),
        );
        let take = || {
            let mut slots = free.0.lock().unwrap();
            while *slots == 0 {
                slots = free.1.wait(slots).unwrap();
            }
            *slots -= 1;
        };
        let give_back = || {
            *free.0.lock().unwrap() += 1;
            free.1.notify_one();
        };
        // Each host's ssh is started by a thread of its own: started one
        // after another from one thread, under 200 hosts' load the last
        // one started 18 to 36 s after the first, and the floor measured
        // that queue rather than the hosts.
        let finished: Vec<(Duration, Duration, Duration)> = std::thread::scope(|scope| {
            let running: Vec<_> = self
                .hosts
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let (script, input, take, give_back) = (&script, &input, &take, &give_back);
                    scope.spawn(move || {
                        take();
                        let mut child = self
                            .fresh_ssh(h)
                            .arg(script(i))
                            .stdin(Stdio::piped())
                            .stdout(Stdio::null())
                            .spawn()
                            .expect("ssh runs");
                        let started = t0.elapsed();
                        let mut stdin = child.stdin.take().expect("ssh's stdin is piped");
                        stdin
                            .write_all(input(i))
                            .unwrap_or_else(|e| panic!("writing to ssh {}: {e}", h.name));
                        drop(stdin);
                        let fed = t0.elapsed();
                        let status = child.wait().expect("ssh ends");
                        give_back();
                        assert!(
                            status.success(),
                            "floor command on {} failed: {status}",
                            h.name
                        );
                        (started, fed, t0.elapsed())
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|host| host.join().expect("a floor command failed"))
                .collect()
        });
        if std::env::var_os("CAIRN_BENCH_VERBOSE").is_some() {
            let last_started = finished.iter().map(|t| t.0).max().unwrap_or_default();
            let last_fed = finished.iter().map(|t| t.1).max().unwrap_or_default();
            let first_done = finished.iter().map(|t| t.2).min().unwrap_or_default();
            eprintln!(
                "floor: last ssh started at {:.2} s, last input sent at {:.2} s, first host done at {:.2} s",
                last_started.as_secs_f64(),
                last_fed.as_secs_f64(),
                first_done.as_secs_f64()
            );
        }
        t0.elapsed()
    }

    /// The floor of S2 and S4: one fresh `ssh HOST true` to every host,
    /// `window` hosts at once.
    fn floor(&self, window: usize) -> FloorCost {
        let cpu = self.cpu_now();
        let wall = self.on_every_host(window, |_| "true".to_string(), |_| &[]);
        self.floor_cost(wall, cpu)
    }

    /// CPU spent so far by this benchmark's reaped children (a floor's ssh
    /// and tar) and by the test hosts.
    fn cpu_now(&self) -> (Duration, Duration) {
        (
            controller::cpu_of_reaped_children(),
            controller::cpu_of_children_of(&self.host_roots),
        )
    }

    /// A floor's cost: its wall time and the CPU spent since `cpu` (from [`Bench::cpu_now`]).
    fn floor_cost(&self, wall: Duration, cpu: (Duration, Duration)) -> FloorCost {
        let (controller, hosts) = self.cpu_now();
        FloorCost {
            wall: wall.as_secs_f64(),
            controller_cpu: controller.saturating_sub(cpu.0).as_secs_f64(),
            hosts_cpu: hosts.saturating_sub(cpu.1).as_secs_f64(),
        }
    }

    /// The floor of S1: what any tool must pay for the cold apply on these
    /// hosts. The bundle is made into one tar stream here (once, inside
    /// the timed span, as cairn builds one stream shared by every host) and
    /// piped over one fresh ssh connection per host, `window` hosts at once, into
    /// one command doing exactly the host-side work of the workload's steps,
    /// at the same paths: (a) `test -w /opt`, (b) unpack into
    /// /opt/bench/bundle (with cairn's own tar flags), (c) the rendered
    /// template written to /opt/bench/app.conf (its bytes are in the
    /// command), (d) `install.sh`, then (e) `cluster-init.sh` on the master
    /// or (f) `cluster-join.sh` on a worker. The one relaxation, which only
    /// lowers the floor: a worker's join does not wait for the master's
    /// init (that would take a second round trip). The result passes the
    /// same `verify()` as cairn's S1.
    fn s1_floor(&self, bundle: &Path, window: usize) -> FloorCost {
        let master = self.hosts.hosts[0].address.clone();
        let template = std::fs::read_to_string(bundle.join("etc/app.conf.tmpl")).unwrap();
        let cpu = self.cpu_now();
        let t0 = Instant::now();
        let tar = Command::new("tar")
            .args(["-c", "-f", "-", "-C"])
            .arg(bundle)
            .arg(".")
            .stderr(Stdio::inherit())
            .output()
            .expect("tar runs");
        assert!(tar.status.success(), "tar of the bundle failed");
        let script = |i: usize| {
            let host = &self.hosts.hosts[i].address;
            let rendered = template
                .replace("{{ cluster_name }}", "bench-cluster")
                .replace("{{ host_addr }}", host);
            let last = if i == 0 {
                "sh /opt/bench/bundle/bin/cluster-init.sh".to_string()
            } else {
                format!("sh /opt/bench/bundle/bin/cluster-join.sh {master}")
            };
            format!(
                "test -w /opt && mkdir -p /opt/bench/bundle \
                 && tar -x -f - -C /opt/bench/bundle --no-same-owner \
                 && printf %s {} > /opt/bench/app.conf \
                 && sh /opt/bench/bundle/bin/install.sh && {last}",
                shell_quote(&rendered)
            )
        };
        self.on_every_host(window, script, |_| tar.stdout.as_slice());
        self.floor_cost(t0.elapsed(), cpu)
    }

    /// The floor of S3: the ssh floor plus the workload's S3 work on every
    /// host: the one changed file written in place (its bytes on the
    /// connection's stdin) and the install rerun, over one fresh ssh
    /// connection per host, `window` hosts at once.
    fn s3_floor(&self, bundle: &Path, window: usize) -> FloorCost {
        let cpu = self.cpu_now();
        let t0 = Instant::now();
        let changed = std::fs::read(bundle.join("conf/file-003.txt")).unwrap();
        self.on_every_host(
            window,
            |_| {
                "cat > /opt/bench/bundle/conf/file-003.txt \
                 && sh /opt/bench/bundle/bin/install.sh"
                    .to_string()
            },
            |_| changed.as_slice(),
        );
        self.floor_cost(t0.elapsed(), cpu)
    }

    /// The end state of the workload, on every host.
    fn verify(&self, bundle: &Path) {
        let checksum = generator(Some("--checksum"), bundle, None);
        let mut local = Vec::new();
        for entry in walkdir::WalkDir::new(bundle).sort_by_file_name() {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                let rel = entry.path().strip_prefix(bundle).unwrap().to_path_buf();
                let hash = Sha256::digest(std::fs::read(entry.path()).unwrap());
                local.push((rel, hash));
            }
        }
        let template = std::fs::read_to_string(bundle.join("etc/app.conf.tmpl")).unwrap();
        for (i, h) in self.hosts.hosts.iter().enumerate() {
            let root = h.path("/opt/bench/bundle");
            let count = walkdir::WalkDir::new(&root)
                .into_iter()
                .filter_map(std::result::Result::ok)
                .filter(|e| e.file_type().is_file())
                .count();
            assert_eq!(count, local.len(), "no extra files on {}", h.name);
            for (rel, hash) in &local {
                let there = Sha256::digest(std::fs::read(root.join(rel)).unwrap());
                assert_eq!(&there, hash, "{} on {}", rel.display(), h.name);
            }
            let rendered = template
                .replace("{{ cluster_name }}", "bench-cluster")
                .replace("{{ host_addr }}", &h.address);
            assert_eq!(h.read("/opt/bench/app.conf").unwrap(), rendered);
            assert_eq!(
                h.read("/opt/bench/installed").unwrap(),
                format!("{checksum}\n")
            );
            if i == 0 {
                assert_eq!(h.read("/opt/bench/token").unwrap().trim().len(), 64);
            } else {
                assert_eq!(
                    h.read("/opt/bench/joined").unwrap(),
                    format!("joined {}\n", self.hosts.hosts[0].address)
                );
            }
        }
    }
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn ran(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "task_finished" || e["event"] == "task_failed")
        .map(|e| e["task"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[derive(Default)]
struct Times {
    floor: Vec<FloorCost>,
    s1_floor: Vec<FloorCost>,
    s3_floor: Vec<FloorCost>,
    s1: Vec<Cost>,
    s2: Vec<Cost>,
    s3: Vec<Cost>,
    s4: Vec<Cost>,
    plan_offline: Vec<Cost>,
    /// pyinfra's S1 to S4 (`--with-pyinfra`); its S4 is `--dry`.
    pyinfra: [Vec<PyinfraCost>; 4],
}

/// What a floor cost (the lowest of its windows), in seconds.
#[derive(Clone, Copy)]
struct FloorCost {
    wall: f64,
    /// The benchmark's own children meanwhile: the floor's ssh clients (and
    /// for S1 the local `tar` packing the bundle), as cairn's CPU and its
    /// ssh's are on cairn's side.
    controller_cpu: f64,
    /// The test hosts (sshd and everything under it).
    hosts_cpu: f64,
}

/// What one `pyinfra` run cost, in seconds.
struct PyinfraCost {
    wall: f64,
    /// pyinfra's own CPU (user and system; it runs no local child).
    cpu: f64,
    /// CPU spent on the test hosts (sshd and everything under it) meanwhile.
    hosts_cpu: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The median over runs of `field` of each run's cost.
fn median_of(costs: &[Cost], field: impl Fn(&Cost) -> f64) -> f64 {
    median(&costs.iter().map(field).collect::<Vec<_>>())
}

fn wall(costs: &[Cost]) -> f64 {
    median_of(costs, |c| c.wall.as_secs_f64())
}

/// The cairn binary, or `$CAIRN_BENCH_WRAP` (words split at spaces, e.g.
/// `valgrind --tool=massif --massif-out-file=/tmp/massif.%p`) running it.
/// A wrapper must run cairn in its own process (as valgrind does), or the
/// memory watched is the wrapper's.
fn cairn_command() -> Command {
    let cairn = env!("CARGO_BIN_EXE_cairn");
    match std::env::var("CAIRN_BENCH_WRAP") {
        Ok(wrap) if !wrap.trim().is_empty() => {
            let mut words = wrap.split_whitespace();
            let mut c = Command::new(words.next().expect("a word"));
            c.args(words).arg(cairn);
            c
        }
        _ => Command::new(cairn),
    }
}

/// Bytes in MB (10^6 bytes).
fn mb(bytes: u64) -> f64 {
    f64::from(u32::try_from(bytes / 1000).unwrap_or(u32::MAX)) / 1000.0
}

fn count(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The median of the runs' PSS peaks in MB, or a dash when a run was too
/// short to sample it.
fn pss(costs: &[Cost]) -> String {
    let peaks: Option<Vec<f64>> = costs.iter().map(|c| c.peaks.total_pss.map(mb)).collect();
    peaks.map_or_else(|| "—".to_string(), |p| format!("{:.0}", median(&p)))
}

/// One row of the controller table: a scenario's medians over the runs.
fn controller_row(n: usize, scenario: &str, costs: &[Cost]) -> String {
    let ssh_at_peak = median_of(costs, |c| count(c.peaks.ssh_at_peak));
    let per_ssh = median_of(costs, |c| {
        if c.peaks.ssh_at_peak == 0 {
            0.0
        } else {
            mb(c.peaks.ssh_bytes_at_peak) / count(c.peaks.ssh_at_peak)
        }
    });
    format!(
        "| {n} | {scenario} | {:.2} | {:.0} | {:.0} | {:.0} | {} | {ssh_at_peak:.0} | {per_ssh:.1} \
         | {:.0} | {:.2} | {:.2} | {:.2} |",
        wall(costs),
        median_of(costs, |c| mb(c.peaks.cairn)),
        median_of(costs, |c| mb(c.peaks.cairn_hwm)),
        median_of(costs, |c| mb(c.peaks.total)),
        pss(costs),
        median_of(costs, |c| count(c.peaks.most_ssh)),
        median_of(costs, |c| c.peaks.cairn_cpu.as_secs_f64()),
        median_of(costs, |c| c.peaks.ssh_cpu.as_secs_f64()),
        median_of(costs, |c| c.hosts_cpu.as_secs_f64()),
    )
}

/// A floor's median wall time over the runs.
fn floor_wall(costs: &[FloorCost]) -> f64 {
    median(&costs.iter().map(|c| c.wall).collect::<Vec<_>>())
}

/// A floor's row of the controller table: its wall time and CPU (its ssh
/// clients in the ssh column), medians over the runs; it keeps no memory
/// figures (its ssh clients are not watched).
fn floor_row(n: usize, floor: &str, costs: &[FloorCost]) -> String {
    let of = |field: fn(&FloorCost) -> f64| median(&costs.iter().map(field).collect::<Vec<_>>());
    format!(
        "| {n} | {floor} | {:.2} | — | — | — | — | — | — | — | — | {:.2} | {:.2} |",
        floor_wall(costs),
        of(|c| c.controller_cpu),
        of(|c| c.hosts_cpu),
    )
}

/// With `CAIRN_BENCH_VERBOSE`, one scenario's cost as soon as it is known.
fn report_cost(scenario: &str, c: &Cost) {
    if std::env::var_os("CAIRN_BENCH_VERBOSE").is_none() {
        return;
    }
    eprintln!(
        "{scenario}: {:.2} s; cairn peak {:.0} MB (sampled; {:.0} MB by VmHWM), with its ssh {:.0} MB (PSS {} MB), \
         {} ssh at that peak ({:.0} MB), at most {} at once, {} started; CPU: cairn {:.2} s, \
         its ssh {:.2} s, hosts {:.2} s (wait4: cairn and the children it reaped {:.2} s); \
         {} samples (one every {:.0} ms), watch CPU {:.2} s",
        c.wall.as_secs_f64(),
        mb(c.peaks.cairn),
        mb(c.peaks.cairn_hwm),
        mb(c.peaks.total),
        pss(std::slice::from_ref(c)),
        c.peaks.ssh_at_peak,
        mb(c.peaks.ssh_bytes_at_peak),
        c.peaks.most_ssh,
        c.peaks.ssh_started.len(),
        c.peaks.cairn_cpu.as_secs_f64(),
        c.peaks.ssh_cpu.as_secs_f64(),
        c.hosts_cpu.as_secs_f64(),
        (c.usage.user + c.usage.system).as_secs_f64(),
        c.peaks.samples,
        c.wall.as_secs_f64() * 1000.0 / count(c.peaks.samples.max(1)),
        c.peaks.watch_cpu.as_secs_f64(),
    );
}

/// With `CAIRN_BENCH_VERBOSE`, the timeline of an apply from its `--json`
/// events as they arrived: when the plan came out, when the bundles and
/// the installs started and ended, the init, the joins. An apply that asks
/// nobody (`--auto-approve`, as here) holds its events until its plan is
/// whole and then prints them at once, and an event's `time` is when it
/// was printed: whatever happened before the plan shows at the plan's time.
fn report_timeline(scenario: &str, cost: &Cost) {
    if std::env::var_os("CAIRN_BENCH_VERBOSE").is_none() {
        return;
    }
    let events: Vec<(f64, serde_json::Value)> = cost
        .lines
        .iter()
        .filter_map(|(t, l)| Some((t.as_secs_f64(), serde_json::from_str(l).ok()?)))
        .collect();
    let span = |event: &str, kind: &str| {
        let times: Vec<f64> = events
            .iter()
            .filter(|(_, e)| {
                e["event"] == event
                    && e["task"]
                        .as_str()
                        .is_some_and(|t| t.split('@').next() == Some(kind))
            })
            .map(|(t, _)| *t)
            .collect();
        let first = times.iter().copied().fold(f64::INFINITY, f64::min);
        let last = times.iter().copied().fold(0.0, f64::max);
        if times.is_empty() {
            "none".to_string()
        } else {
            format!("{first:.2} to {last:.2} s")
        }
    };
    let plan = events
        .iter()
        .find(|(_, e)| e["event"] == "plan")
        .map_or(f64::NAN, |(t, _)| *t);
    eprintln!(
        "{scenario} timeline: plan out at {plan:.2} s; bundles started {}, ended {}; \
         installs started {}, ended {}; init started {}, ended {}; joins started {}, ended {}; \
         cairn exited at {:.2} s",
        span("task_started", "bundle.bundle"),
        span("task_finished", "bundle.bundle"),
        span("task_started", "step.install"),
        span("task_finished", "step.install"),
        span("task_started", "step.init"),
        span("task_finished", "step.init"),
        span("task_started", "step.join"),
        span("task_finished", "step.join"),
        cost.wall.as_secs_f64()
    );
}

/// With `CAIRN_BENCH_VERBOSE`, S1's task durations by kind.
fn report_task_durations(events: &[serde_json::Value]) {
    if std::env::var_os("CAIRN_BENCH_VERBOSE").is_none() {
        return;
    }
    let mut by_kind: std::collections::BTreeMap<String, Vec<u64>> =
        std::collections::BTreeMap::new();
    for e in events.iter().filter(|e| e["event"] == "task_finished") {
        let task = e["task"].as_str().unwrap_or_default();
        let kind = task.split('@').next().unwrap_or_default().to_string();
        by_kind
            .entry(kind)
            .or_default()
            .push(e["duration_ms"].as_u64().unwrap_or(0));
    }
    for (kind, ms) in by_kind {
        let mean = ms.iter().sum::<u64>() / ms.len() as u64;
        eprintln!(
            "S1 {kind}: mean {mean} ms, max {} ms",
            ms.iter().max().unwrap()
        );
    }
}

fn one_run(n: usize, with_pyinfra: Option<&pyinfra::Pyinfra>, times: &mut Times) {
    let hosts = TestHosts::start_with_disk(n, 128);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    generator(None, &bundle, None);
    std::fs::write(dir.path().join("Clusterfile"), clusterfile(&hosts)).unwrap();
    let host_roots = controller::own_children_named("unshare");
    assert!(
        host_roots.len() >= n,
        "found {} test host processes for {n} hosts",
        host_roots.len()
    );
    let b = Bench {
        dir,
        hosts,
        host_roots,
    };

    let windows = floor_windows(b.hosts.hosts.len());
    times
        .floor
        .push(lowest("ssh floor", &windows, |w| b.floor(w)));

    // S1: fresh hosts, fresh state, pristine bundle.
    let (t, events) = b.apply();
    report_task_durations(&events);
    report_timeline("S1", &t);

    b.verify(&bundle);
    let expected = 4 * n + 1 + (n - 1);
    assert_eq!(ran(&events).len(), expected, "S1 runs every task once");
    report_cost("S1", &t);
    times.s1.push(t);

    // S2: nothing changed; a real refresh of every host, nothing runs.
    let (t, events) = b.apply();
    assert!(ran(&events).is_empty(), "S2 ran {:?}", ran(&events));
    b.verify(&bundle);
    report_cost("S2", &t);
    times.s2.push(t);

    // `plan --offline` against the state S1 recorded: no host contacted.
    let (t, out) = b.cairn(&["plan", "--offline"]);
    assert!(
        out.status.success(),
        "plan --offline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.peaks.ssh_started.is_empty(), "plan --offline started ssh");
    report_cost("plan --offline", &t);
    times.plan_offline.push(t);

    // S3: one small file changed: it alone ships, install reruns, nothing else.
    generator(Some("--s3-change"), &bundle, Some("1"));
    let (t, events) = b.apply();
    let mut ran = ran(&events);
    ran.sort();
    assert_eq!(ran.len(), 2 * n, "S3 ran {ran:?}");
    for e in events.iter().filter(|e| {
        e["event"] == "task_finished" && e["task"].as_str().unwrap().starts_with("bundle.")
    }) {
        assert_eq!(e["detail"], "1 file shipped (conf/file-003.txt)");
    }
    b.verify(&bundle);
    report_cost("S3", &t);
    times.s3.push(t);

    // S4: a hand edit on the last host; drift must name it, and repair nothing.
    if std::env::var_os("CAIRN_BENCH_HOLD").is_some() {
        eprintln!("holding: cd {} (press enter)", b.dir.path().display());
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    let last = b.hosts.hosts.last().unwrap();
    let conf = last.read("/opt/bench/app.conf").unwrap();
    last.write(
        "/opt/bench/app.conf",
        &format!("{conf}# manual edit on the host (drift)\n"),
    );
    let (t, out) = b.cairn(&["drift"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "S4 exit code: {text}");
    assert!(
        text.contains(&last.name) && text.contains("/opt/bench/app.conf"),
        "S4 names the host and the file: {text}"
    );
    assert!(
        last.read("/opt/bench/app.conf")
            .unwrap()
            .contains("manual edit")
    );
    report_cost("S4", &t);
    times.s4.push(t);

    floors(&b, &bundle, last, &windows, times);
    if let Some(installed) = with_pyinfra {
        pyinfra_scenarios(&b, installed, times);
    }
}

/// The S3 and S1 floors, measured after cairn's scenarios on the same hosts.
fn floors(b: &Bench, bundle: &Path, last: &hosts::TestHost, windows: &[usize], times: &mut Times) {
    // The S3 and S1 floors run after cairn's scenarios, never before: cairn's
    // S1 then starts from hosts nothing has touched but the ssh floor's
    // `true`, exactly as the workload says, and its S3 and S4 from the
    // state its own apply left. The floors, in turn, get hosts as warm as
    // cairn left them, which can only make them lower, so the ratios err
    // against cairn, not for it. First the S4 hand edit is undone (not timed),
    // so that each floor's result passes the same `verify()` as cairn's.
    let rendered = std::fs::read_to_string(bundle.join("etc/app.conf.tmpl"))
        .unwrap()
        .replace("{{ cluster_name }}", "bench-cluster")
        .replace("{{ host_addr }}", &last.address);
    last.write("/opt/bench/app.conf", &rendered);

    // S3 floor: the next revision of the one file, written and installed.
    generator(Some("--s3-change"), bundle, Some("2"));
    times
        .s3_floor
        .push(lowest("S3 floor", windows, |w| b.s3_floor(bundle, w)));
    b.verify(bundle);

    // S1 floor: on hosts made cold again (/opt/bench removed, not timed; the
    // floor writes nothing else), with a pristine bundle like cairn's S1.
    let pristine = b.dir.path().join("pristine");
    generator(None, &pristine, None);
    let s1_floor = lowest("S1 floor", windows, |w| {
        for h in &b.hosts.hosts {
            std::fs::remove_dir_all(h.path("/opt/bench")).expect("can clear /opt/bench on a host");
        }
        let t = b.s1_floor(&pristine, w);
        b.verify(&pristine);
        t
    });
    times.s1_floor.push(s1_floor);
}

/// Every file under /opt/bench on every host, with when it was last written:
/// what a scenario rewrote is what changed between two of these.
fn stamps(b: &Bench) -> Vec<BTreeMap<String, SystemTime>> {
    b.hosts
        .hosts
        .iter()
        .map(|h| {
            let root = h.path("/opt/bench");
            walkdir::WalkDir::new(&root)
                .into_iter()
                .filter_map(std::result::Result::ok)
                .filter(|e| e.file_type().is_file())
                .map(|e| {
                    let rel = e.path().strip_prefix(&root).unwrap().display().to_string();
                    (rel, e.metadata().unwrap().modified().unwrap())
                })
                .collect()
        })
        .collect()
}

/// The files under /opt/bench that were written between `before` and
/// `after`, per host.
fn rewritten(
    before: &[BTreeMap<String, SystemTime>],
    after: &[BTreeMap<String, SystemTime>],
) -> Vec<Vec<String>> {
    before
        .iter()
        .zip(after)
        .map(|(before, after)| {
            after
                .iter()
                .filter(|(path, time)| before.get(*path) != Some(time))
                .map(|(path, _)| path.clone())
                .collect()
        })
        .collect()
}

/// pyinfra's S1 to S4 on the same hosts, after cairn's scenarios and the
/// floors: /opt/bench is removed on every host (not timed) and pyinfra
/// starts from a pristine bundle of its own. Each scenario is checked as
/// cairn's is: S1 and S3 end in `verify()`; S2 rewrites nothing on any
/// host; S3 rewrites exactly the changed file and the install's record on
/// every host (so only that file was put, the install reran, and neither
/// the template, the init nor a join ran again). S4 is `pyinfra --dry`,
/// the nearest pyinfra has to a drift check: it must name the hand-edited
/// host's app.conf as a change and change nothing.
fn pyinfra_scenarios(b: &Bench, installed: &pyinfra::Pyinfra, times: &mut Times) {
    for h in &b.hosts.hosts {
        std::fs::remove_dir_all(h.path("/opt/bench")).expect("can clear /opt/bench on a host");
    }
    let bundle = b.dir.path().join("pyinfra-bundle");
    generator(None, &bundle, None);
    let run = pyinfra::Run::new(installed, b.dir.path().join("pyinfra"), &b.hosts, &bundle);
    let deploy = |scenario: &str, args: &[&str]| {
        let hosts_cpu0 = controller::cpu_of_children_of(&b.host_roots);
        let (wall, cpu, out) = run.deploy(args);
        let hosts_cpu = controller::cpu_of_children_of(&b.host_roots).saturating_sub(hosts_cpu0);
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pyinfra {scenario} failed:\n{text}");
        let cost = PyinfraCost {
            wall: wall.as_secs_f64(),
            cpu: cpu.as_secs_f64(),
            hosts_cpu: hosts_cpu.as_secs_f64(),
        };
        if std::env::var_os("CAIRN_BENCH_VERBOSE").is_some() {
            eprintln!(
                "pyinfra {scenario}: {:.2} s; CPU: pyinfra {:.2} s, hosts {:.2} s",
                cost.wall, cost.cpu, cost.hosts_cpu
            );
        }
        (cost, text)
    };

    let (t, _) = deploy("S1", &["-y"]);
    b.verify(&bundle);
    times.pyinfra[0].push(t);

    let before = stamps(b);
    let (t, _) = deploy("S2", &["-y"]);
    b.verify(&bundle);
    let rewrote = rewritten(&before, &stamps(b));
    assert!(
        rewrote.iter().all(Vec::is_empty),
        "pyinfra S2 rewrote {rewrote:?}"
    );
    times.pyinfra[1].push(t);

    generator(Some("--s3-change"), &bundle, Some("1"));
    let before = stamps(b);
    let (t, _) = deploy("S3", &["-y"]);
    b.verify(&bundle);
    for (h, rewrote) in b.hosts.hosts.iter().zip(rewritten(&before, &stamps(b))) {
        assert_eq!(
            rewrote,
            ["bundle/conf/file-003.txt", "installed"],
            "pyinfra S3 on {}",
            h.name
        );
    }
    times.pyinfra[2].push(t);

    let last = b.hosts.hosts.last().unwrap();
    let conf = last.read("/opt/bench/app.conf").unwrap();
    let edited = format!("{conf}# manual edit on the host (drift)\n");
    last.write("/opt/bench/app.conf", &edited);
    let before = stamps(b);
    let (t, text) = deploy("S4", &["--dry"]);
    assert!(
        drift_named(&text, &last.name),
        "pyinfra --dry names {}'s app.conf as a change:\n{text}",
        last.name
    );
    assert_eq!(last.read("/opt/bench/app.conf").unwrap(), edited);
    let rewrote = rewritten(&before, &stamps(b));
    assert!(
        rewrote.iter().all(Vec::is_empty),
        "pyinfra --dry rewrote {rewrote:?}"
    );
    times.pyinfra[3].push(t);
}

/// Whether `pyinfra --dry`'s output names the template step as a change on
/// `host`, and on no other host.
fn drift_named(text: &str, host: &str) -> bool {
    let change = format!(" 1 ({host}) ");
    let mut detected = text
        .lines()
        .skip_while(|line| !line.starts_with("--> Detected changes:"));
    detected.next().is_some()
        && detected.any(|line| {
            line.trim_start().starts_with("(c) app.conf") && format!("{line} ").contains(&change)
        })
}

/// cairn's default `--parallelism`: its most connections at once.
const WINDOW: usize = cairn::cli::DEFAULT_PARALLELISM;

/// How many hosts at once each floor is measured with: all of them, and on
/// a fleet larger than [`WINDOW`] also windows of that many (the next host
/// starting as one ends), as a tool bounded like cairn works. On 2 cores,
/// 200 hosts at once thrash more than a window of them does, so "all at once" is
/// not the lowest there; the floor is the lower of the two.
fn floor_windows(hosts: usize) -> Vec<usize> {
    if hosts > WINDOW {
        vec![hosts, WINDOW]
    } else {
        vec![hosts]
    }
}

/// The lowest of `measure(window)` over `windows`, in seconds; each one
/// said with `CAIRN_BENCH_VERBOSE`.
fn lowest(what: &str, windows: &[usize], mut measure: impl FnMut(usize) -> FloorCost) -> FloorCost {
    let mut lowest: Option<FloorCost> = None;
    for &window in windows {
        let cost = measure(window);
        if std::env::var_os("CAIRN_BENCH_VERBOSE").is_some() {
            eprintln!(
                "{what}, {window} hosts at once: {:.2} s (CPU: here {:.2} s, hosts {:.2} s)",
                cost.wall, cost.controller_cpu, cost.hosts_cpu
            );
        }
        if lowest.is_none_or(|l| cost.wall < l.wall) {
            lowest = Some(cost);
        }
    }
    lowest.expect("at least one window")
}

/// The rows of the pyinfra table for `n` hosts: each scenario's medians.
fn pyinfra_rows_of(n: usize, times: &Times) -> Vec<String> {
    let mut rows = Vec::new();
    for (scenario, cairn, pyinfra) in [
        ("S1 cold", &times.s1, &times.pyinfra[0]),
        ("S2 no-op", &times.s2, &times.pyinfra[1]),
        ("S3 one file", &times.s3, &times.pyinfra[2]),
        ("S4 drift (pyinfra: --dry)", &times.s4, &times.pyinfra[3]),
    ] {
        let of =
            |field: fn(&PyinfraCost) -> f64| median(&pyinfra.iter().map(field).collect::<Vec<_>>());
        let (cairn_wall, pyinfra_wall) = (wall(cairn), of(|c| c.wall));
        rows.push(format!(
            "| {n} | {scenario} | {cairn_wall:.2} | {pyinfra_wall:.2} | {:.1} | {:.2} | {:.2} \
             | {:.2} | {:.2} |",
            pyinfra_wall / cairn_wall,
            median_of(cairn, |c| (c.peaks.cairn_cpu + c.peaks.ssh_cpu)
                .as_secs_f64()),
            median_of(cairn, |c| c.hosts_cpu.as_secs_f64()),
            of(|c| c.cpu),
            of(|c| c.hosts_cpu),
        ));
    }
    rows
}

/// The table of cairn beside pyinfra, after the benchmark's own tables.
fn print_pyinfra_table(version: &str, rows: &[String]) {
    println!(
        "\n{version} (benches/pyinfra/deploy.py) on the same hosts, in the same runs, after \
         cairn's scenarios and the floors, from fresh /opt/bench; wall seconds of the \
         `pyinfra` process, medians; its S4 is `pyinfra --dry` (it has no drift command). \
         CPU seconds, medians: cairn's is cairn and its ssh processes, pyinfra's its one \
         process (paramiko, no ssh processes); hosts' is sshd and all under it.\n"
    );
    println!(
        "| hosts | scenario | cairn | pyinfra | pyinfra / cairn | cairn CPU | hosts CPU (cairn) \
         | pyinfra CPU | hosts CPU (pyinfra) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
}

fn main() {
    let mut sizes = Vec::new();
    let mut runs = 3;
    let mut pyinfra_asked = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|r| r.parse().ok()).expect("--runs N"),
            "--bench" => {}
            "--with-pyinfra" => pyinfra_asked = true,
            n => match n.parse::<usize>() {
                Ok(n) if n >= 2 => sizes.push(n),
                _ => {}
            },
        }
    }
    if sizes.is_empty() {
        sizes = vec![4, 16, 48];
    }
    // A benchmark that cannot run its subject fails, saying why: a green
    // `cargo bench` that measured nothing would be read as a result.
    if let Some(why) = hosts::unavailable() {
        eprintln!("the workload benchmark cannot run here: {why}");
        std::process::exit(1);
    }
    // Installed (when missing) before anything is timed.
    let with_pyinfra = pyinfra_asked.then(pyinfra::Pyinfra::install);
    println!(
        "Workload v1 on isolated sshd test hosts; wall seconds, median of {runs} run{}.\n",
        if runs == 1 { "" } else { "s" }
    );
    println!(
        "| hosts | ssh floor | S1 floor | S3 floor | S1 cold | S2 no-op | S3 one file | S4 drift \
         | S1 / S1 floor | S2 / floor | S3 / S3 floor | S4 / floor |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut controller_rows = Vec::new();
    let mut pyinfra_rows = Vec::new();
    for n in sizes {
        let mut times = Times::default();
        for _ in 0..runs {
            one_run(n, with_pyinfra.as_ref(), &mut times);
        }
        let floor = floor_wall(&times.floor);
        let (s1_floor, s3_floor) = (floor_wall(&times.s1_floor), floor_wall(&times.s3_floor));
        let (s1, s2, s3, s4) = (
            wall(&times.s1),
            wall(&times.s2),
            wall(&times.s3),
            wall(&times.s4),
        );
        println!(
            "| {n} | {floor:.2} | {s1_floor:.2} | {s3_floor:.2} | {s1:.2} | {s2:.2} | {s3:.2} \
             | {s4:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            s1 / s1_floor,
            s2 / floor,
            s3 / s3_floor,
            s4 / floor
        );
        for (scenario, costs) in [
            ("S1", &times.s1),
            ("S2", &times.s2),
            ("S3", &times.s3),
            ("S4", &times.s4),
            ("plan --offline", &times.plan_offline),
        ] {
            controller_rows.push(controller_row(n, scenario, costs));
        }
        for (floor, costs) in [
            ("ssh floor", &times.floor),
            ("S1 floor", &times.s1_floor),
            ("S3 floor", &times.s3_floor),
        ] {
            controller_rows.push(floor_row(n, floor, costs));
        }
        if with_pyinfra.is_some() {
            pyinfra_rows.extend(pyinfra_rows_of(n, &times));
        }
    }
    println!(
        "\nThe controller side: cairn and every process descended from it (its ssh), \
         sampled from /proc every 100 ms (PSS every second); peaks in MB (10^6 bytes), \
         VmRSS unless PSS; MB per ssh is VmRSS, which counts ssh's shared libraries in \
         every process; CPU in seconds; medians over the runs.\n"
    );
    println!(
        "| hosts | scenario | wall s | cairn peak | cairn peak (VmHWM) | cairn + ssh peak \
         | cairn + ssh peak PSS | ssh at that peak | MB per ssh | most ssh at once | cairn CPU \
         | ssh CPU | hosts CPU |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in controller_rows {
        println!("{row}");
    }
    if let Some(pyinfra) = &with_pyinfra {
        print_pyinfra_table(&pyinfra.version, &pyinfra_rows);
    }
}
