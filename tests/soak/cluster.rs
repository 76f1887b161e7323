//! The soak's cluster: four SSH test hosts and this machine, a Clusterfile
//! whose apply keeps every kind of work in flight (a bundle of large files
//! to ship, templates, steps with captures, a `once` step, cross-host
//! dependencies, a step on this machine), and what each host must hold
//! once an apply has succeeded.
//!
//! Every round bumps `${round}`, which every step reads, so every step runs
//! again each round (long enough, up to 1.5 s, that a kill often leaves one
//! running for the next apply to wait for); some rounds also rewrite bundle files or change the
//! templates' `${generation}`, so shipping and rendering are in flight too.
//! Each step appends `<step> <round>` to `/opt/soak/runs.log` on its host
//! (`here.log` on this machine) through `record.sh`, which is how the soak
//! counts how often a step really ran.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::rngs::StdRng;

use crate::support::hosts::{TestHost, TestHosts};

/// Bundle files rewritten at random: their names.
pub(crate) const BLOBS: &[&str] = &["data/blob0.bin", "data/blob1.bin", "data/blob2.bin"];

/// The steps on SSH hosts, with the role they run on.
pub(crate) const STEPS: &[(&str, &str)] = &[
    ("prepare", "all"),
    ("init", "master"),
    ("join", "worker"),
    ("verify", "master"),
];

const RECORD_SH: &str = "#!/bin/sh\n# record.sh STEP ROUND: one line per run of a step.\nmkdir -p /opt/soak && echo \"$1 $2\" >> /opt/soak/runs.log\n";

/// The soak's folder, hosts and current inputs.
pub(crate) struct SoakCluster {
    pub dir: tempfile::TempDir,
    pub hosts: TestHosts,
    /// Bumped every round: every step reruns.
    pub round: u32,
    /// Read by the templates only: bumped in some rounds.
    pub generation: u32,
    /// The bundle's source files now, and as of the last converged apply.
    pub bundle: BTreeMap<String, Vec<u8>>,
    pub previous_bundle: BTreeMap<String, Vec<u8>>,
    pub previous_generation: u32,
    pub previous_round: u32,
}

impl SoakCluster {
    pub(crate) fn start(rng: &mut StdRng) -> SoakCluster {
        let hosts = TestHosts::start(4);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bundle = BTreeMap::new();
        bundle.insert("bin/record.sh".to_string(), RECORD_SH.as_bytes().to_vec());
        bundle.insert(
            "etc/app.conf.tmpl".to_string(),
            b"host = {{ host.name }}\ngeneration = {{ generation }}\n".to_vec(),
        );
        bundle.insert("README".to_string(), b"the soak's bundle\n".to_vec());
        for blob in BLOBS {
            bundle.insert((*blob).to_string(), random_blob(rng));
        }
        let cluster = SoakCluster {
            dir,
            hosts,
            round: 1,
            generation: 1,
            previous_bundle: bundle.clone(),
            bundle,
            previous_generation: 1,
            previous_round: 1,
        };
        std::fs::write(
            cluster.path("motd.tmpl"),
            "{{ host.name }} round {{ round }}\n",
        )
        .unwrap();
        cluster.write_sources();
        cluster
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The Clusterfile for the current round and generation.
    fn clusterfile(&self) -> String {
        format!(
            r#"version = 1
name = "soak"

{hosts}
[[hosts]]
name = "here"
address = "localhost"
transport = "local"
roles = ["local"]

[vars]
round = "{round}"
generation = "{generation}"

[[bundles]]
name = "app"
source = "app"
dest = "/opt/soak/app"
templates = ["etc/*.tmpl"]
on = ["master", "worker"]

[[files]]
name = "motd"
source = "motd.tmpl"
template = true
dest = "/opt/soak/motd"
on = ["master", "worker"]

[[steps]]
name = "prepare"
on = ["master", "worker"]
after = ["app", "motd"]
run = "sh /opt/soak/app/bin/record.sh prepare ${{round}} && sleep 0.8"
timeout = "20s"

[[steps]]
name = "init"
on = ["master"]
after = ["prepare"]
run = "sh /opt/soak/app/bin/record.sh init ${{round}} && sleep 1.5 && echo token-${{round}}-$(hostname)"
capture = "token"
timeout = "20s"

[[steps]]
name = "bootstrap"
on = ["master"]
after = ["init"]
once = true
run = "sh /opt/soak/app/bin/record.sh bootstrap once && sleep 0.2"
timeout = "20s"

[[steps]]
name = "join"
on = ["worker"]
after = ["prepare", "init@*"]
run = "sh /opt/soak/app/bin/record.sh join ${{round}} && sleep 1 && echo joined-${{token}}"
capture = "joined"
timeout = "20s"

[[steps]]
name = "verify"
on = ["master"]
after = ["join@*", "bootstrap"]
run = "sh /opt/soak/app/bin/record.sh verify ${{round}} && sleep 0.2"
timeout = "20s"

[[steps]]
name = "collect"
on = ["local"]
after = ["verify@*"]
run = "echo collect ${{round}} >> here.log && sleep 1"
timeout = "20s"
"#,
            hosts = self.hosts.clusterfile_hosts(""),
            round = self.round,
            generation = self.generation,
        )
    }

    fn write_sources(&self) {
        for (rel, bytes) in &self.bundle {
            let path = self.path("app").join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        std::fs::write(self.path("Clusterfile"), self.clusterfile()).unwrap();
    }

    /// The next round: every step reruns; at random, bundle files are
    /// rewritten and the templates' generation changes. Returns what changed.
    pub(crate) fn next_round(&mut self, rng: &mut StdRng) -> String {
        self.round += 1;
        let mut what = vec![format!("round {}", self.round)];
        if rng.random_bool(0.5) {
            let count = rng.random_range(1..=BLOBS.len());
            for blob in BLOBS.iter().take(count) {
                self.bundle.insert((*blob).to_string(), random_blob(rng));
            }
            what.push(format!("{count} bundle file(s) rewritten"));
        }
        if rng.random_bool(0.3) {
            self.generation += 1;
            what.push(format!("generation {}", self.generation));
        }
        self.write_sources();
        what.join(", ")
    }

    /// Called once an apply converged: the current inputs become the previous ones.
    pub(crate) fn settle(&mut self) {
        self.previous_bundle = self.bundle.clone();
        self.previous_generation = self.generation;
        self.previous_round = self.round;
    }

    /// What `rel` of the bundle holds on `host` for these inputs.
    pub(crate) fn expected(
        bundle: &BTreeMap<String, Vec<u8>>,
        generation: u32,
        host: &TestHost,
    ) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        for (rel, bytes) in bundle {
            match rel.strip_suffix(".tmpl") {
                Some(rendered) => {
                    files.insert(
                        rendered.to_string(),
                        format!("host = {}\ngeneration = {generation}\n", host.name).into_bytes(),
                    );
                }
                None => {
                    files.insert(rel.clone(), bytes.clone());
                }
            }
        }
        files
    }

    /// The runs recorded on `host`: `(step, round)` per line.
    pub(crate) fn runs(host: &TestHost) -> Vec<(String, String)> {
        host.read("/opt/soak/runs.log")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (step, round) = l.split_once(' ')?;
                Some((step.to_string(), round.to_string()))
            })
            .collect()
    }

    /// The runs of `collect` on this machine.
    pub(crate) fn local_runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("here.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn state_dir(&self) -> cairn::state::StateDir {
        cairn::state::StateDir::new(self.dir.path(), "soak")
    }
}

/// Between 64 KiB and 1.5 MiB of random bytes: big enough that shipping
/// takes a while, so kills land in it.
fn random_blob(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(64 * 1024..=1536 * 1024);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    bytes
}

/// A file's content in a message: its length and the start of its hash.
pub(crate) fn describe(bytes: Option<&[u8]>) -> String {
    use sha2::Digest;
    match bytes {
        None => "missing".into(),
        Some(b) => {
            let mut text = format!("{} bytes, sha256 ", b.len());
            for byte in &sha2::Sha256::digest(b)[..6] {
                let _ = write!(text, "{byte:02x}");
            }
            text
        }
    }
}

/// Paths under `dir` on `host` whose name starts with `.cairn` (staging left behind).
pub(crate) fn staging_left(host: &TestHost, dir: &str) -> Vec<String> {
    let root = host.path(dir);
    walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cairn"))
        .map(|e| {
            Path::new(dir)
                .join(e.path().strip_prefix(&root).unwrap_or(e.path()))
                .display()
                .to_string()
        })
        .collect()
}
