//! The standard benchmark workload (benches/workload/README.md) on real
//! isolated sshd test hosts: S1 cold apply, S2 no-op re-apply, S3 one small
//! file changed, S4 drift check, each timed as the wall clock of the
//! `cairn` process, beside the floor: one fresh `ssh HOST true` to every
//! host in parallel, measured in the same run.
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

    /// One fresh `ssh HOST true` to every host at once.
    fn floor(&self) -> Duration {
        let t0 = Instant::now();
        let children: Vec<_> = self
            .hosts
            .hosts
            .iter()
            .map(|h| {
                self.hosts
                    .ssh("root", h)
                    .arg("true")
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("ssh runs")
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success(), "ssh true failed");
        }
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
        "| hosts | ssh floor | S1 cold | S2 no-op | S3 one file | S4 drift | S2 / floor | S4 / floor |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let mut times = Times::default();
        for _ in 0..runs {
            one_run(n, &mut times);
        }
        let floor = median(&times.floor);
        let (s1, s2, s3, s4) = (
            median(&times.s1),
            median(&times.s2),
            median(&times.s3),
            median(&times.s4),
        );
        println!(
            "| {n} | {floor:.2} | {s1:.2} | {s2:.2} | {s3:.2} | {s4:.2} | {:.2} | {:.2} |",
            s2 / floor,
            s4 / floor
        );
    }
}
