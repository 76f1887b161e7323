//! The test hosts' logins that are not a plain key, proved with the plain
//! `ssh` client alone (no cairn), so that a cairn test that fails on them
//! fails on cairn and not on the harness: the password-only user, the
//! encrypted key with its passphrase, the user certificate, the host
//! certificate under strict host-key checking, and one host reached through
//! another as a jump host. Each of the first four is also tried the wrong
//! way (wrong password, no passphrase, no certificate, no CA known) and
//! refused, so that none of them passes by accident; the host certificate
//! is checked again after a power cut, which must keep it.
//!
//! Nothing of this machine's own ssh setup plays a part: every run has
//! `-F` (an empty or a temporary config), its own `known_hosts` file, no
//! agent, and secrets reach ssh only through an askpass script.

use std::path::Path;

use super::*;
use support::hosts::{CERTUSER, KEY_PASSPHRASE, PWUSER, PWUSER_PASSWORD};

/// A client's temporary files: askpass scripts, `known_hosts` files, configs.
struct Client {
    dir: tempfile::TempDir,
}

impl Client {
    fn new() -> Client {
        Client {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file named `name` holding `text`.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// An askpass script that answers every prompt with `secret`.
    fn askpass(&self, name: &str, secret: &str) -> PathBuf {
        let path = self.file(name, &format!("#!/bin/sh\nprintf '%s\\n' '{secret}'\n"));
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    }
}

/// `ssh -F /dev/null OPTIONS LOGIN COMMAND` with no agent, nothing on
/// stdin, and the `known_hosts` file `known_hosts` (accept-new unless
/// `options` say otherwise: ssh keeps the first value it is given).
fn ssh(known_hosts: &Path, options: &[&str], login: &str, command: &str) -> Output {
    ssh_command(known_hosts, options, login, command)
        .output()
        .expect("ssh runs")
}

fn ssh_command(known_hosts: &Path, options: &[&str], login: &str, command: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null"])
        .args(options)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ])
        .args([login, command])
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("DISPLAY")
        .env_remove("SSH_ASKPASS")
        .env_remove("SSH_ASKPASS_REQUIRE")
        .stdin(Stdio::null());
    c
}

/// Like [`ssh`], not in batch mode, with every prompt (a
/// password or a key's passphrase, once) answered by `askpass`.
fn ssh_askpass(
    known_hosts: &Path,
    askpass: &Path,
    options: &[&str],
    login: &str,
    command: &str,
) -> Output {
    let options = [
        &["-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1"],
        options,
    ]
    .concat();
    ssh_command(known_hosts, &options, login, command)
        .env("SSH_ASKPASS", askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .output()
        .expect("ssh runs")
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

fn assert_in(out: &Output, expected_stdout: &str, what: &str) {
    assert!(
        out.status.success(),
        "{what}: ssh failed\n{}\n{}",
        stdout(out),
        stderr(out)
    );
    assert_eq!(stdout(out), expected_stdout, "{what}: {}", stderr(out));
}

fn assert_refused(out: &Output, why: &str, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(255),
        "{what}: ssh should have been refused\n{}\n{}",
        stdout(out),
        stderr(out)
    );
    assert!(
        stderr(out).contains(why),
        "{what}: expected {why:?} in\n{}",
        stderr(out)
    );
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn the_test_hosts_take_passwords_encrypted_keys_certificates_and_jump_hosts() {
    if let Some(why) = hosts::unavailable() {
        panic!(
            "cannot start the isolated sshd test hosts this test needs: {why}; \
             run it as root with openssh-server installed, as scripts/test does"
        );
    }
    let hosts = TestHosts::start(2);
    let client = Client::new();
    password_login(&hosts, &client, &hosts.hosts[0]);
    encrypted_key_login(&hosts, &client, &hosts.hosts[0]);
    certificate_login(&hosts, &client, &hosts.hosts[1]);
    host_certificate(&hosts, &client, &hosts.hosts[1], "before a restart");
    jump_host(&hosts, &client);

    // The host certificate lives on the host's disk, with its host key: a
    // power cut and a boot keep both, and every login still works.
    let mut hosts = hosts;
    let before = hosts.hosts[1].read("/etc/ssh/ssh_host_ed25519_key-cert.pub");
    assert!(before.is_some(), "host1 has a host certificate");
    hosts.hosts[1].power_off();
    hosts.hosts[1].restart();
    assert_eq!(
        hosts.hosts[1].read("/etc/ssh/ssh_host_ed25519_key-cert.pub"),
        before,
        "a boot does not sign the host key again"
    );
    host_certificate(&hosts, &client, &hosts.hosts[1], "after a power cut");
    password_login(&hosts, &client, &hosts.hosts[1]);
}

/// `pwuser` gets in with its password (and has sudo), not with a wrong one,
/// nor with the test key.
fn password_login(hosts: &TestHosts, client: &Client, host: &TestHost) {
    let known_hosts = client.path("known_hosts");
    let login = format!("{PWUSER}@{}", host.address);
    let password = ["-o", "PreferredAuthentications=password"];
    let right = client.askpass("right-password", PWUSER_PASSWORD);
    let out = ssh_askpass(
        &known_hosts,
        &right,
        &password,
        &login,
        "whoami; sudo -n whoami",
    );
    assert_in(&out, "pwuser\nroot\n", "pwuser with its password");

    let wrong = client.askpass("wrong-password", "not-the-password");
    let out = ssh_askpass(&known_hosts, &wrong, &password, &login, "whoami");
    assert_refused(&out, "Permission denied", "pwuser with a wrong password");

    let key = path_arg(&hosts.key);
    let with_key = [
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        &key,
    ];
    let out = ssh(&known_hosts, &with_key, &login, "whoami");
    assert_refused(&out, "Permission denied", "pwuser with the test key");
}

/// The encrypted key gets root in with its passphrase; in batch mode (no
/// way to ask for the passphrase) it does not.
fn encrypted_key_login(hosts: &TestHosts, client: &Client, host: &TestHost) {
    let known_hosts = client.path("known_hosts");
    let login = format!("root@{}", host.address);
    let key = path_arg(&hosts.encrypted_key);
    let with_key = [
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "PreferredAuthentications=publickey",
        "-i",
        &key,
    ];
    let passphrase = client.askpass("passphrase", KEY_PASSPHRASE);
    let out = ssh_askpass(&known_hosts, &passphrase, &with_key, &login, "whoami");
    assert_in(&out, "root\n", "the encrypted key with its passphrase");

    let batch = [&["-o", "BatchMode=yes"][..], &with_key].concat();
    let out = ssh(&known_hosts, &batch, &login, "whoami");
    assert_refused(
        &out,
        "Permission denied",
        "the encrypted key without its passphrase",
    );
}

/// `certuser` gets in with the user certificate, not with its key alone.
fn certificate_login(hosts: &TestHosts, client: &Client, host: &TestHost) {
    let known_hosts = client.path("known_hosts");
    let login = format!("{CERTUSER}@{}", host.address);
    let key = path_arg(&hosts.cert_key);
    let certificate = format!("CertificateFile={}", hosts.certificate.display());
    let batch = [
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        &key,
    ];
    let with_certificate = [&batch[..], &["-o", &certificate]].concat();
    let out = ssh(&known_hosts, &with_certificate, &login, "whoami");
    assert_in(&out, "certuser\n", "certuser with its certificate");

    let out = ssh(&known_hosts, &batch, &login, "whoami");
    assert_refused(
        &out,
        "Permission denied",
        "certuser with the key and no certificate",
    );
}

/// Under strict host-key checking, a `known_hosts` file that trusts only the
/// host CA accepts the host; an empty one does not.
fn host_certificate(hosts: &TestHosts, client: &Client, host: &TestHost, when: &str) {
    let login = format!("root@{}", host.address);
    let key = path_arg(&hosts.key);
    let strict = [
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        &key,
        "-o",
        "StrictHostKeyChecking=yes",
    ];
    let trusts_ca = client.file("known_hosts_ca", &hosts.cert_authority_line());
    let out = ssh(&trusts_ca, &strict, &login, "hostname");
    assert_in(
        &out,
        &format!("{}\n", host.name),
        &format!("the host certificate of {}, {when}", host.name),
    );
    assert_eq!(
        std::fs::read_to_string(&trusts_ca).unwrap(),
        hosts.cert_authority_line(),
        "the host was trusted through its certificate, not added"
    );

    let empty = client.file("known_hosts_empty", "");
    let out = ssh(&empty, &strict, &login, "hostname");
    assert_refused(
        &out,
        "Host key verification failed",
        &format!("{} with no CA known, {when}", host.name),
    );
}

/// host1 reached through host0 (`-J`), with the identity and the host-key
/// policy only in a config file given with `-F` (the jump's own ssh reads
/// that file, not `-o` options).
fn jump_host(hosts: &TestHosts, client: &Client) {
    let known_hosts = client.path("known_hosts_jump");
    let config = client.file(
        "jump_config",
        &format!(
            "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
             GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking accept-new\n  \
             BatchMode yes\n  ConnectTimeout 10\n  LogLevel ERROR\n",
            hosts.key.display(),
            known_hosts.display()
        ),
    );
    let (bastion, target) = (&hosts.hosts[0], &hosts.hosts[1]);
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-J", &format!("root@{}", bastion.address)])
        .args([&format!("root@{}", target.address), "hostname"])
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_in(&out, &format!("{}\n", target.name), "host1 through host0");
    let known = std::fs::read_to_string(&known_hosts).unwrap();
    for host in [bastion, target] {
        assert!(
            known
                .lines()
                .any(|l| l.split_whitespace().next() == Some(host.address.as_str())),
            "{} was reached (its key recorded):\n{known}",
            host.name
        );
    }
}
