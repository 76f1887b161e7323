//! The standard benchmark workload (benches/workload/README.md) on real
//! isolated sshd test hosts: S1 cold apply, S2 no-op re-apply, S3 one small
//! file changed, S4 drift check, each timed as the wall clock of the
//! `cairn` process, beside its floor, measured in the same run on the same
//! hosts: for S2 and S4 one fresh `ssh HOST true` to every host in
//! parallel; for S1 the bundle as one tar stream over one fresh ssh per
//! host, unpacked there, followed by the workload's own steps (install,
//! init, join); for S3 one fresh ssh per host writing the changed file and
//! rerunning the install. Each ratio is the scenario's median over its
//! floor's median.
//!
//!   cargo bench --bench workload                 # 4, 16 and 48 hosts, 3 runs each
//!   cargo bench --bench workload -- 16 --runs 1  # one size, one run
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

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
}

impl Bench {
    fn cairn(&self, args: &[&str]) -> (Duration, std::process::Output) {
        let t0 = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("cairn runs");
        (t0.elapsed(), out)
    }

    fn apply(&self) -> (Duration, Vec<serde_json::Value>) {
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

    /// Runs `script` on every host at once, each over one fresh ssh
    /// connection with `input(host index)` on its stdin, and returns the
    /// wall time until the last host is done. A host that fails stops the
    /// benchmark.
    fn on_every_host<'a>(
        &self,
        script: impl Fn(usize) -> String,
        input: impl Fn(usize) -> &'a [u8] + Sync,
    ) -> Duration {
        let t0 = Instant::now();
        let finished: Vec<(Duration, Duration)> = std::thread::scope(|scope| {
            let running: Vec<_> = self
                .hosts
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let mut child = self
                        .fresh_ssh(h)
                        .arg(script(i))
                        .stdin(Stdio::piped())
                        .stdout(Stdio::null())
                        .spawn()
                        .expect("ssh runs");
                    let input = &input;
                    scope.spawn(move || {
                        let mut stdin = child.stdin.take().expect("ssh's stdin is piped");
                        stdin
                            .write_all(input(i))
                            .unwrap_or_else(|e| panic!("writing to ssh {}: {e}", h.name));
                        drop(stdin);
                        let fed = t0.elapsed();
                        let status = child.wait().expect("ssh ends");
                        assert!(
                            status.success(),
                            "floor command on {} failed: {status}",
                            h.name
                        );
                        (fed, t0.elapsed())
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|host| host.join().expect("a floor command failed"))
                .collect()
        });
        if std::env::var_os("CAIRN_BENCH_VERBOSE").is_some() {
            let last_fed = finished.iter().map(|t| t.0).max().unwrap_or_default();
            let first_done = finished.iter().map(|t| t.1).min().unwrap_or_default();
            eprintln!(
                "floor: last input sent at {:.2} s, first host done at {:.2} s",
                last_fed.as_secs_f64(),
                first_done.as_secs_f64()
            );
        }
        t0.elapsed()
    }

    /// The floor of S2 and S4: one fresh `ssh HOST true` to every host at once.
    fn floor(&self) -> Duration {
        self.on_every_host(|_| "true".to_string(), |_| &[])
    }

    /// The floor of S1: what any tool must pay for the cold apply on these
    /// hosts. The bundle is made into one tar stream here (once, inside
    /// the timed span, as cairn builds one stream shared by every host) and
    /// piped over one fresh ssh connection per host, all hosts at once, into
    /// one command doing exactly the host-side work of the workload's steps,
    /// at the same paths: (a) `test -w /opt`, (b) unpack into
    /// /opt/bench/bundle (with cairn's own tar flags), (c) the rendered
    /// template written to /opt/bench/app.conf (its bytes are in the
    /// command), (d) `install.sh`, then (e) `cluster-init.sh` on the master
    /// or (f) `cluster-join.sh` on a worker. The one relaxation, which only
    /// lowers the floor: a worker's join does not wait for the master's
    /// init (that would take a second round trip). The result passes the
    /// same `verify()` as cairn's S1.
    fn s1_floor(&self, bundle: &Path) -> Duration {
        let master = self.hosts.hosts[0].address.clone();
        let template = std::fs::read_to_string(bundle.join("etc/app.conf.tmpl")).unwrap();
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
        self.on_every_host(script, |_| tar.stdout.as_slice());
        t0.elapsed()
    }

    /// The floor of S3: the ssh floor plus the workload's S3 work on every
    /// host: the one changed file written in place (its bytes on the
    /// connection's stdin) and the install rerun, over one fresh ssh
    /// connection per host, all hosts at once.
    fn s3_floor(&self, bundle: &Path) -> Duration {
        let t0 = Instant::now();
        let changed = std::fs::read(bundle.join("conf/file-003.txt")).unwrap();
        self.on_every_host(
            |_| {
                "cat > /opt/bench/bundle/conf/file-003.txt \
                 && sh /opt/bench/bundle/bin/install.sh"
                    .to_string()
            },
            |_| changed.as_slice(),
        );
        t0.elapsed()
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
    floor: Vec<f64>,
    s1_floor: Vec<f64>,
    s3_floor: Vec<f64>,
    s1: Vec<f64>,
    s2: Vec<f64>,
    s3: Vec<f64>,
    s4: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn one_run(n: usize, times: &mut Times) {
    let hosts = TestHosts::start_with_disk(n, 128);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    generator(None, &bundle, None);
    std::fs::write(dir.path().join("Clusterfile"), clusterfile(&hosts)).unwrap();
    let b = Bench { dir, hosts };

    times.floor.push(b.floor().as_secs_f64());

    // S1: fresh hosts, fresh state, pristine bundle.
    let (t, events) = b.apply();
    if std::env::var_os("CAIRN_BENCH_VERBOSE").is_some() {
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

    b.verify(&bundle);
    let expected = 4 * n + 1 + (n - 1);
    assert_eq!(ran(&events).len(), expected, "S1 runs every task once");
    times.s1.push(t.as_secs_f64());

    // S2: nothing changed; a real refresh of every host, nothing runs.
    let (t, events) = b.apply();
    assert!(ran(&events).is_empty(), "S2 ran {:?}", ran(&events));
    b.verify(&bundle);
    times.s2.push(t.as_secs_f64());

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
    times.s3.push(t.as_secs_f64());

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
    times.s4.push(t.as_secs_f64());

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
    generator(Some("--s3-change"), &bundle, Some("2"));
    times.s3_floor.push(b.s3_floor(&bundle).as_secs_f64());
    b.verify(&bundle);

    // S1 floor: on hosts made cold again (/opt/bench removed, not timed; the
    // floor writes nothing else), with a pristine bundle like cairn's S1.
    for h in &b.hosts.hosts {
        std::fs::remove_dir_all(h.path("/opt/bench")).expect("can clear /opt/bench on a host");
    }
    let pristine = b.dir.path().join("pristine");
    generator(None, &pristine, None);
    times.s1_floor.push(b.s1_floor(&pristine).as_secs_f64());
    b.verify(&pristine);
}

fn main() {
    let mut sizes = Vec::new();
    let mut runs = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|r| r.parse().ok()).expect("--runs N"),
            "--bench" => {}
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
    println!(
        "Workload v1 on isolated sshd test hosts; wall seconds, median of {runs} run{}.\n",
        if runs == 1 { "" } else { "s" }
    );
    println!(
        "| hosts | ssh floor | S1 floor | S3 floor | S1 cold | S2 no-op | S3 one file | S4 drift \
         | S1 / S1 floor | S2 / floor | S3 / S3 floor | S4 / floor |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let mut times = Times::default();
        for _ in 0..runs {
            one_run(n, &mut times);
        }
        let floor = median(&times.floor);
        let (s1_floor, s3_floor) = (median(&times.s1_floor), median(&times.s3_floor));
        let (s1, s2, s3, s4) = (
            median(&times.s1),
            median(&times.s2),
            median(&times.s3),
            median(&times.s4),
        );
        println!(
            "| {n} | {floor:.2} | {s1_floor:.2} | {s3_floor:.2} | {s1:.2} | {s2:.2} | {s3:.2} \
             | {s4:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            s1 / s1_floor,
            s2 / floor,
            s3 / s3_floor,
            s4 / floor
        );
    }
}
