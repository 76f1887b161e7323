//! `cairn import sealos`: fixtures/sealos/Clusterfile.yaml (3 masters and 2
//! nodes, passwords, a node on another ssh port, env, three images, a
//! Config with `match`, kubeadm documents and fields cairn does not
//! import) becomes a Clusterfile that validates, pinned whole by a
//! snapshot; no password or passphrase of the source ever reaches the
//! output; every field left out is a warning naming it; and `-o` never
//! replaces a file without `--force`. Also the `[[configs]]` rule the
//! import relies on for a Config without `match`, applied end to end: a
//! patch without `bundle` changes every bundle that ships its path, and an
//! archive bundle that does not is left as it is.

use std::path::Path;
use std::process::Output;

use crate::support::sandbox::Sandbox;
use crate::support::{cairn, stderr, stdout, transcript};

/// The clear secrets of the fixture: none may appear anywhere cairn writes.
const CLEAR_SECRETS: [&str; 3] = ["Sup3r-Secret-Pw", "node-6-secret!", "key-passphrase-42"];

/// The variables the imported Clusterfile reads its secrets from, with test values.
const SECRET_VARIABLES: [(&str, &str); 3] = [
    ("SEALOS_SSH_PASSWORD", "test-password"),
    ("SEALOS_SSH_PK_PASSWORD", "test-passphrase"),
    ("SEALOS_SSH_PASSWORD_192_168_0_6", "test-password-6"),
];

/// A temp folder holding the fixture as `sealos.yaml`.
fn folder_with_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        "fixtures/sealos/Clusterfile.yaml",
        dir.path().join("sealos.yaml"),
    )
    .unwrap();
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cairn(dir, args).output().expect("cairn runs")
}

/// Stand-ins for the image archives `sealos save` would write, as folders
/// of the same names holding the files the Config patches read, so that
/// `cairn validate` checks everything else for real.
fn placeholder_archives(dir: &Path) {
    for file in [
        "kubernetes.tar/etc/kubeadm.yml",
        "helm.tar/README",
        "calico.tar/charts/calico/values.yaml",
    ] {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "placeholder: true\n").unwrap();
    }
}

fn validate(dir: &Path, file: &str) -> Output {
    let mut command = cairn(dir, &["-f", file, "validate"]);
    for (name, value) in SECRET_VARIABLES {
        command.env(name, value);
    }
    command.output().expect("cairn runs")
}

#[test]
fn a_sealos_clusterfile_becomes_a_clusterfile_that_validates() {
    let dir = folder_with_fixture();
    let out = run(
        dir.path(),
        &["import", "sealos", "sealos.yaml", "-o", "Clusterfile"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let written = std::fs::read_to_string(dir.path().join("Clusterfile")).unwrap();
    insta::assert_snapshot!("sealos_clusterfile", written);
    insta::assert_snapshot!("sealos_transcript", transcript(&out));

    placeholder_archives(dir.path());
    let checked = validate(dir.path(), "Clusterfile");
    assert_eq!(checked.status.code(), Some(0), "{}", transcript(&checked));
    assert!(
        stdout(&checked).contains("5 hosts"),
        "{}",
        transcript(&checked)
    );
}

#[test]
fn no_clear_secret_reaches_the_output_and_each_has_its_variable() {
    let dir = folder_with_fixture();
    let out = run(dir.path(), &["import", "sealos", "sealos.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let all = transcript(&out);
    for secret in CLEAR_SECRETS {
        assert!(!all.contains(secret), "`{secret}` printed:\n{all}");
    }
    let text = stdout(&out);
    assert!(
        text.contains("password = { secret = \"env:SEALOS_SSH_PASSWORD\" }"),
        "{text}"
    );
    assert!(
        text.contains("identity_passphrase = { secret = \"env:SEALOS_SSH_PK_PASSWORD\" }"),
        "{text}"
    );
    assert!(
        text.contains(
            "ssh = { port = 2222, password = { secret = \"env:SEALOS_SSH_PASSWORD_192_168_0_6\" } }"
        ),
        "{text}"
    );
    for (variable, _) in SECRET_VARIABLES {
        assert!(stderr(&out).contains(variable), "{}", stderr(&out));
    }
    // stdout is the Clusterfile alone: the same text `-o` writes.
    let written = run(dir.path(), &["import", "sealos", "sealos.yaml", "-o", "C"]);
    assert_eq!(written.status.code(), Some(0), "{}", transcript(&written));
    assert_eq!(std::fs::read_to_string(dir.path().join("C")).unwrap(), text);
}

#[test]
fn every_field_left_out_is_a_warning_naming_it_in_file_order() {
    let dir = folder_with_fixture();
    let out = run(dir.path(), &["import", "sealos", "sealos.yaml"]);
    let err = stderr(&out);
    let warnings: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(|l| l.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            "Cluster.metadata.annotations",
            "Cluster.spec.provider",
            "Cluster.status",
            "document 5 (example.com/v1 Telemetry)",
        ],
        "{err}"
    );
    // They are in the Clusterfile's header too, for whoever reads it later.
    assert!(stdout(&out).contains("#   Cluster.spec.provider: "));
}

#[test]
fn an_existing_file_is_replaced_only_with_force() {
    let dir = folder_with_fixture();
    std::fs::write(dir.path().join("Clusterfile"), "mine\n").unwrap();
    let out = run(
        dir.path(),
        &["import", "sealos", "sealos.yaml", "-o", "Clusterfile"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(stderr(&out).contains("--force"), "{}", transcript(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("Clusterfile")).unwrap(),
        "mine\n"
    );
    let out = run(
        dir.path(),
        &[
            "import",
            "sealos",
            "sealos.yaml",
            "-o",
            "Clusterfile",
            "--force",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    assert!(
        std::fs::read_to_string(dir.path().join("Clusterfile"))
            .unwrap()
            .contains("name = \"prod\"")
    );
}

#[test]
fn a_config_without_match_or_strategy_goes_to_every_bundle_shipping_its_path_as_an_override() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sealos.yaml"),
        "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata:\n  name: lab\n\
         spec:\n  hosts:\n  - ips: [10.0.0.2]\n    roles: [master]\n  ssh:\n    user: ops\n    passwd: hunter2\n\
         \x20 image: [labring/kubernetes:v1.27.7, labring/helm:v3.9.4]\n\
         ---\napiVersion: apps.sealos.io/v1beta1\nkind: Config\nmetadata:\n  name: values\n\
         spec:\n  path: etc/kubeadm.yml\n  data: |\n    a: 2\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &["import", "sealos", "sealos.yaml", "-o", "Clusterfile"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let text = std::fs::read_to_string(dir.path().join("Clusterfile")).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    // A non-root user runs through sudo, answered with the password, as in sealos.
    assert!(text.contains("sudo = true"), "{text}");
    assert!(
        text.contains("sudo_password = { secret = \"env:SEALOS_SSH_PASSWORD\" }"),
        "{text}"
    );
    let config = &text[text.find("[[configs]]").expect("a config")..];
    assert!(!config.contains("bundle ="), "{config}");
    assert!(config.contains("strategy = \"override\""), "{config}");

    placeholder_archives(dir.path());
    std::fs::write(dir.path().join("Checked"), &text).unwrap();
    let checked = validate(dir.path(), "Checked");
    assert_eq!(checked.status.code(), Some(0), "{}", transcript(&checked));
}

#[test]
fn a_file_without_a_cluster_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.yaml"),
        "apiVersion: v1\nkind: ConfigMap\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &["import", "sealos", "x.yaml", "-o", "Clusterfile"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        stderr(&out).contains("no `kind: Cluster`"),
        "{}",
        transcript(&out)
    );
    assert!(!dir.path().join("Clusterfile").exists());
}

/// `dir` packed as the `.tar.zst` bundle archive `path`.
fn pack_tar_zst(dir: &Path, path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let encoder = zstd::Encoder::new(file, 3).unwrap().auto_finish();
    let mut archive = tar::Builder::new(encoder);
    archive.append_dir_all(".", dir).unwrap();
    archive.into_inner().unwrap();
}

#[test]
fn a_patch_without_bundle_changes_every_bundle_that_ships_its_path_and_no_other() {
    let s = Sandbox::new();
    // The fixture's patch of web's etc/app.yaml, without naming the bundle.
    s.edit(
        "Clusterfile",
        "[[configs]]\nbundle = \"web\"\npath = \"etc/app.yaml\"",
        "[[configs]]\npath = \"etc/app.yaml\"",
    );
    // A second bundle shipping the same file, and an archive that does not.
    let api = s.path("api/etc");
    std::fs::create_dir_all(&api).unwrap();
    std::fs::write(
        api.join("app.yaml"),
        "server:\n  workers: 2\n  port: 9000\n",
    )
    .unwrap();
    let docs = s.path("docs-src");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("README"), "no app.yaml here\n").unwrap();
    pack_tar_zst(&docs, &s.path("docs.tar.zst"));
    let text = s.read("Clusterfile");
    s.write(
        "Clusterfile",
        &text.replacen(
            "[[configs]]",
            "[[bundles]]\nname = \"api\"\nsource = \"api\"\ndest = \"out/api\"\n\n\
             [[bundles]]\nname = \"docs\"\nsource = \"docs.tar.zst\"\ndest = \"out/docs\"\n\n[[configs]]",
            1,
        ),
    );
    s.apply();
    assert_eq!(s.read("out/web/etc/app.yaml"), "server:\n  workers: 4\n");
    assert_eq!(
        s.read("out/api/etc/app.yaml"),
        "server:\n  workers: 4\n  port: 9000\n"
    );
    assert_eq!(s.read("out/docs/README"), "no app.yaml here\n");
    assert!(
        !s.path("out/docs/etc/app.yaml").exists(),
        "the archive that does not ship the file got it"
    );
}

#[test]
fn a_patch_that_matches_a_bundle_by_name_changes_only_it() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "[[configs]]\nbundle = \"web\"",
        "[[configs]]\nmatch = \"web\"",
    );
    s.apply();
    assert_eq!(s.read("out/web/etc/app.yaml"), "server:\n  workers: 4\n");
    s.edit("Clusterfile", "match = \"web\"", "match = \"wbe\"");
    let out = s.run(&["validate"]);
    assert_eq!(out.status.code(), Some(1), "{}", s.transcript(&out));
    assert!(
        stderr(&out).contains("no bundle is named `wbe` or has that image"),
        "{}",
        s.transcript(&out)
    );
    assert!(
        stderr(&out).contains("did you mean `web`?"),
        "{}",
        s.transcript(&out)
    );
}
