//! A sealos Clusterfile imported with `cairn import sealos` and applied to
//! real test hosts: a master and two nodes reached with the password of a
//! user that is not root (so through sudo, as sealos does), the cluster
//! image (saved as `sealos save` does) shipped with the kubeadm documents
//! merged into its `etc/kubeadm.yml`, its label hooks run on their hosts, the password nowhere in what cairn printed or kept,
//! and a second plan with nothing to do.

use std::path::Path;

use crate::support::hosts::{PWUSER, PWUSER_PASSWORD, TestHosts};
use crate::support::{cairn, stderr, stdout, transcript};

/// The image the imported bundle reads, as `sealos save` writes it: the
/// stand-in Kubernetes cluster image of fixtures/kubernetes, built with
/// umoci and saved by skopeo as an OCI archive (`kubernetes.tar`), its
/// hooks in its labels.
fn save_image(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/kubernetes/build-images.sh");
    let built = std::process::Command::new(script)
        .arg(dir)
        .output()
        .expect("build-images.sh runs");
    assert!(
        built.status.success(),
        "building the images needs umoci and skopeo (scripts/test installs them): {}",
        transcript(&built)
    );
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_sealos_clusterfile_imported_and_applied_converges_over_password_logins() {
    let hosts = TestHosts::start(3);
    let address = |i: usize| hosts.hosts[i].address.clone();
    let dir = tempfile::tempdir().unwrap();
    let sealos = format!(
        "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata:\n  name: imported\n\
         spec:\n  hosts:\n  - ips: [{}:22]\n    roles: [master, amd64]\n\
         \x20 - ips: [{}:22, {}:22]\n    roles: [node, amd64]\n\
         \x20 ssh:\n    user: {PWUSER}\n    passwd: {PWUSER_PASSWORD}\n\
         \x20 env: [greeting=hello]\n  image: [labring/kubernetes:v1.27.7]\n\
         ---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n\
         networking:\n  podSubnet: 10.244.0.0/16\n",
        address(0),
        address(1),
        address(2)
    );
    std::fs::write(dir.path().join("sealos.yaml"), sealos).unwrap();
    let import = cairn(
        dir.path(),
        &["import", "sealos", "sealos.yaml", "-o", "Imported"],
    )
    .output()
    .unwrap();
    assert_eq!(import.status.code(), Some(0), "{}", transcript(&import));
    let imported = std::fs::read_to_string(dir.path().join("Imported")).unwrap();
    assert!(!imported.contains(PWUSER_PASSWORD), "{imported}");
    std::fs::write(dir.path().join("Clusterfile"), &imported).unwrap();
    save_image(dir.path());

    let apply = cairn(dir.path(), &["apply", "--auto-approve"])
        .env("SEALOS_SSH_PASSWORD", PWUSER_PASSWORD)
        .output()
        .unwrap();
    let said = transcript(&apply);
    assert_eq!(apply.status.code(), Some(0), "{said}");
    for host in &hosts.hosts {
        let kubeadm = host
            .read("/var/lib/cairn/imported/rootfs/etc/kubeadm.yml")
            .unwrap_or_else(|| panic!("{}: no kubeadm.yml\n{said}", host.name));
        assert!(kubeadm.contains("podSubnet: 10.244.0.0/16"), "{kubeadm}");
        assert!(kubeadm.contains("serviceSubnet: 10.96.0.0/22"), "{kubeadm}");
        assert!(kubeadm.contains("maxPods: 110"), "{kubeadm}");
        // The image's hooks ran through sudo: check, then init (init-cri.sh
        // and init.sh, which install the binaries).
        assert!(
            host.read("/usr/bin/kubeadm").is_some(),
            "{}: init hook\n{said}",
            host.name
        );
        assert!(
            host.read("/etc/containerd/config.toml").is_some(),
            "{}",
            host.name
        );
    }
    // The registry on the first master only (init-registry's host).
    assert!(
        hosts.hosts[0].read("/etc/registry/config.yml").is_some(),
        "{said}"
    );
    assert!(hosts.hosts[1].read("/etc/registry/config.yml").is_none());

    let plan = cairn(dir.path(), &["plan", "--detailed-exitcode"])
        .env("SEALOS_SSH_PASSWORD", PWUSER_PASSWORD)
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0), "{}", transcript(&plan));

    let mut kept = stdout(&apply) + &stderr(&apply) + &stdout(&plan) + &stderr(&plan);
    for entry in walkdir::WalkDir::new(dir.path().join(".cairn")) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            kept.push_str(&String::from_utf8_lossy(
                &std::fs::read(entry.path()).unwrap(),
            ));
        }
    }
    assert!(
        !kept.contains(PWUSER_PASSWORD),
        "the password reached the output or the state"
    );
}
