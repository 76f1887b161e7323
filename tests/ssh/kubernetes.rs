//! `plans/kubernetes.toml` end to end on 3 masters and 5 nodes (plus one
//! spare that joins later): the sealos pipeline as a cairn plan, with the
//! stand-in cluster image of fixtures/kubernetes.
//!
//! One test, in stages that share the hosts: a cold apply in which one
//! node's join fails (the others go on); an apply that converges by joining
//! that node alone, the first master's init not rerun; a Config patch
//! edited after install, which re-ships that one file and reruns only what
//! depends on the bundle; one node added and another deleted in one apply
//! (the new node runs only its own tasks and the token minted for it, the
//! deleted one is reset); `cairn reset`, after which no file of cairn's or
//! the bundles' is left on any host. The join token never appears in
//! output or in the state folder.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::{TestHosts, assert_ok, files_holding, hosts, planned_changes, stderr, stdout};
use crate::support::cairn;

const MASTERS: usize = 3;
const NODES: usize = 5;

struct Kube {
    dir: tempfile::TempDir,
    hosts: TestHosts,
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn name(i: usize) -> String {
    if i < MASTERS {
        format!("master{i}")
    } else {
        format!("node{}", i - MASTERS)
    }
}

impl Kube {
    fn start() -> Kube {
        if let Some(why) = hosts::unavailable() {
            panic!(
                "cannot start the isolated sshd test hosts this test needs: {why}; \
                 run it as root with openssh-server installed, as scripts/test does"
            );
        }
        let kube = Kube {
            dir: tempfile::tempdir().unwrap(),
            hosts: TestHosts::start(MASTERS + NODES + 1),
        };
        kube.write_plan(|_| {});
        kube
    }

    /// plans/kubernetes.toml with the test hosts (all but the spare), their
    /// key, and the bundles' sources made absolute; `edit` changes it further.
    fn write_plan(&self, edit: impl FnOnce(&mut toml_edit::DocumentMut)) {
        let text = std::fs::read_to_string(repo("plans/kubernetes.toml")).unwrap();
        let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
        doc["ssh"]["identity"] = toml_edit::value(self.hosts.key.display().to_string());
        doc["ssh"]["connect_timeout"] = toml_edit::value("3s");
        let hosts = doc["hosts"].as_array_of_tables_mut().unwrap();
        assert_eq!(hosts.len(), MASTERS + NODES, "the plan's fleet");
        for (i, host) in hosts.iter_mut().enumerate() {
            assert_eq!(host["name"].as_str(), Some(name(i).as_str()));
            host["address"] = toml_edit::value(self.address(i));
        }
        for bundle in doc["bundles"].as_array_of_tables_mut().unwrap().iter_mut() {
            let source = bundle["source"].as_str().unwrap().to_string();
            let absolute = repo("plans").join(source);
            bundle["source"] = toml_edit::value(absolute.display().to_string());
        }
        edit(&mut doc);
        std::fs::write(self.dir.path().join("Clusterfile"), doc.to_string()).unwrap();
    }

    fn address(&self, i: usize) -> String {
        self.hosts.hosts[i].address.clone()
    }

    fn read(&self, i: usize, path: &str) -> Option<String> {
        self.hosts.hosts[i].read(path)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = cairn(self.dir.path(), args);
        c.env_remove("SSH_AUTH_SOCK");
        c.output().expect("cairn runs")
    }

    fn apply(&self) -> Output {
        self.run(&["apply", "--auto-approve"])
    }

    /// The tasks a JSON plan would change, as `action task`, sorted.
    fn planned_changes(&self) -> Vec<String> {
        let mut changes = planned_changes(&self.run(&["plan", "--json"]));
        changes.sort();
        changes
    }

    /// Every token the first master minted.
    fn minted_tokens(&self) -> Vec<String> {
        self.read(0, "/etc/kubernetes/tokens")
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// The token host `i` joined with, checked against the first master's
    /// tokens and CA: the join command really came from it.
    fn joined_with(&self, i: usize, control_plane: bool) -> String {
        let conf = self
            .read(i, "/etc/kubernetes/kubelet.conf")
            .unwrap_or_else(|| panic!("{} has not joined", name(i)));
        let field = |key: &str| {
            conf.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} in {conf}"))
                .trim()
                .to_string()
        };
        let token = field("token:");
        assert!(
            self.minted_tokens().contains(&token),
            "{} joined with a token the first master did not mint",
            name(i)
        );
        let ca = self.read(0, "/etc/kubernetes/pki/ca.crt").unwrap();
        let hash = {
            use sha2::Digest as _;
            format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(ca.as_bytes()))
            )
        };
        assert_eq!(field("ca-cert-hash:"), hash, "{}'s CA hash", name(i));
        assert_eq!(
            field("control-plane:"),
            if control_plane { "yes" } else { "no" },
            "{}",
            name(i)
        );
        token
    }

    /// Files a cluster install leaves on host `i`, that a reset must take.
    /// (This machine may have a kubectl of its own, which the test hosts
    /// share: init.sh replaces it, as on a real host, and clean.sh removes it.)
    fn leftovers(&self, i: usize) -> Vec<String> {
        const OURS: &[&str] = &[
            "/var/lib/cairn",
            "/etc/kubernetes",
            "/usr/bin/kube",
            "/usr/bin/containerd",
            "/etc/containerd",
            "/var/lib/containerd",
            "/var/lib/registry",
            "/etc/registry",
            "/var/lib/kubelet",
            "/var/lib/etcd",
            "/var/lib/fake-apiserver",
            "/etc/sysctl.d/k8s.conf",
        ];
        let host = &self.hosts.hosts[i];
        host.written_paths()
            .into_iter()
            .filter(|p| OURS.iter().any(|o| p.starts_with(o)))
            // A file the host had and a clean removed is in its disk's
            // upper layer as a whiteout: gone, not left over.
            .filter(|p| std::fs::symlink_metadata(host.path(p)).is_ok())
            .collect()
    }
}

/// Nothing that holds a join token: output, and every file of the state
/// folder (state, journal, run logs).
fn assert_no_token(kube: &Kube, outputs: &[&Output]) {
    let tokens = kube.minted_tokens();
    assert!(!tokens.is_empty(), "the first master minted tokens");
    let secrets: Vec<&str> = tokens.iter().filter_map(|t| t.split('.').nth(1)).collect();
    assert_eq!(
        files_holding(&kube.dir.path().join(".cairn"), &secrets),
        Vec::<String>::new(),
        "a join token was stored"
    );
    for out in outputs {
        let shown = stdout(out) + &stderr(out);
        assert!(
            !secrets.iter().any(|s| shown.contains(s)),
            "a join token was shown"
        );
    }
}

/// A cold apply in which one node's join fails; every other task converges.
fn cold_apply_with_a_failed_join(kube: &Kube, broken: usize) -> Output {
    // A cold apply in which node2's join fails: something sits where its
    // kubelet's config goes. Every other host converges.
    let broken_host = &kube.hosts.hosts[broken];
    broken_host.exec("mkdir -p /etc/kubernetes/kubelet.conf");
    let cold = kube.apply();
    assert_eq!(cold.status.code(), Some(1), "{}", stdout(&cold));
    assert!(
        stdout(&cold).contains("step.join-nodes@node2"),
        "{}",
        stdout(&cold)
    );
    assert!(kube.read(0, "/etc/kubernetes/admin.conf").is_some());
    let conf = kube.read(0, "/etc/kubernetes/kubeadm-init.yaml").unwrap();
    assert!(
        conf.contains("clusterName: k8s") && conf.contains("maxPods: 120"),
        "the Config patch merged into kubeadm.yml: {conf}"
    );
    assert!(conf.contains("kubernetesVersion: v1.27.7"), "{conf}");
    for i in 1..MASTERS {
        kube.joined_with(i, true);
    }
    for i in MASTERS..MASTERS + NODES {
        if i != broken {
            kube.joined_with(i, false);
        }
        let lb = kube.read(i, "/etc/kubernetes/apiserver-lb.conf").unwrap();
        let masters: Vec<String> = (0..MASTERS).map(|m| kube.address(m)).collect();
        assert!(lb.contains(&masters.join(",")), "{lb}");
    }
    // The registry on the first master only; the app through it.
    assert!(kube.read(0, "/etc/registry/config.yml").is_some());
    assert!(kube.read(1, "/etc/registry/config.yml").is_none());
    assert!(
        kube.read(0, "/var/lib/fake-apiserver/objects/calico.yaml")
            .is_some(),
        "calico applied on the first master"
    );
    cold
}

/// The next apply joins the broken node alone, with a new token.
fn the_failed_join_alone_converges(kube: &Kube, broken: usize) -> Output {
    // The next apply joins node2 alone: a new token for it, nothing else.
    kube.hosts.hosts[broken].exec("rmdir /etc/kubernetes/kubelet.conf");
    assert_eq!(
        kube.planned_changes(),
        [
            "create step.join-nodes@node2",
            "update step.join-command@master0",
        ]
    );
    let converge = kube.apply();
    assert_ok(&converge);
    kube.joined_with(broken, false);
    assert_eq!(
        kube.read(0, "/etc/kubernetes/admin.conf").map(|_| ()),
        Some(())
    );
    assert_eq!(
        kube.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0)
    );
    converge
}

/// An edited Config re-ships one file and reruns only the bundle's dependents.
fn a_config_edit_reruns_only_the_bundle(kube: &Kube) {
    // The Config patch edited: one file shipped again on every host, and
    // only what depends on the bundle reruns; init and joins do not.
    kube.write_plan(|doc| {
        let data = doc["configs"][0]["data"]
            .as_str()
            .unwrap()
            .replace("maxPods: 120", "maxPods: 130");
        doc["configs"][0]["data"] = toml_edit::value(data);
    });
    let plan = kube.run(&["plan"]);
    assert!(
        stdout(&plan).contains("1 file changed (etc/kubeadm.yml)"),
        "{}",
        stdout(&plan)
    );
    for change in kube.planned_changes() {
        assert!(
            change.contains("kubernetes"),
            "only the bundle and its hooks rerun: {change}"
        );
        assert!(
            !change.contains("init-master") && !change.contains("join"),
            "{change}"
        );
    }
    assert_ok(&kube.apply());
    let shipped = kube
        .read(3, "/var/lib/cairn/k8s/rootfs/etc/kubeadm.yml")
        .unwrap();
    assert!(shipped.contains("maxPods: 130"), "{shipped}");
}

/// `cairn add` and `cairn delete`, then one apply.
fn a_node_added_and_one_deleted_in_one_apply(kube: &Kube) -> Output {
    // One node added and another deleted in one apply.
    let spare = MASTERS + NODES;
    let add = kube.run(&[
        "add",
        "--no-apply",
        "--role",
        "node",
        "--name",
        "node5",
        &kube.address(spare),
    ]);
    assert_ok(&add);
    let delete = kube.run(&["delete", "--no-apply", "node4"]);
    assert_ok(&delete);
    let changes = kube.planned_changes();
    for change in &changes {
        let own = change.ends_with("@node5") || change.ends_with("@node4");
        assert!(
            own || change == "update step.join-command@master0"
                || change == "update step.label-nodes@master0",
            "only the new and the deleted node's tasks, the token and the node list: {changes:#?}"
        );
    }
    assert!(
        changes.contains(&"create step.join-nodes@node5".to_string()),
        "{changes:#?}"
    );
    assert!(
        changes.iter().any(|c| c.ends_with("@node4")),
        "{changes:#?}"
    );
    let scaled = kube.apply();
    assert_ok(&scaled);
    kube.joined_with(spare, false);
    assert_eq!(
        kube.leftovers(MASTERS + 4),
        Vec::<String>::new(),
        "node4 is reset"
    );
    let labels = kube.read(0, "/var/lib/fake-apiserver/labels/node5");
    assert!(labels.is_some(), "the node list was relabelled");
    scaled
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_kubernetes_cluster_from_cluster_images_lives_its_life() {
    let kube = Kube::start();
    let broken = MASTERS + 2;
    let cold = cold_apply_with_a_failed_join(&kube, broken);
    let converge = the_failed_join_alone_converges(&kube, broken);
    a_config_edit_reruns_only_the_bundle(&kube);
    let scaled = a_node_added_and_one_deleted_in_one_apply(&kube);
    assert_no_token(&kube, &[&cold, &converge, &scaled]);

    // Reset: nothing of cairn's or the bundles' on any host.
    let reset = kube.run(&["reset", "--auto-approve"]);
    assert_ok(&reset);
    for i in 0..=MASTERS + NODES {
        assert_eq!(kube.leftovers(i), Vec::<String>::new(), "{}", name(i));
    }
}
