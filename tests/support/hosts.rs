//! Isolated OpenSSH test hosts on loopback, for end-to-end tests and benchmarks.
//!
//! Each host is `unshare --mount --uts --pid --fork` running
//! `tests/hosts/testhost-init`, which mounts an overlay of `/` (upper layer
//! on the host's own tmpfs "disk", mounted here so that it outlives the
//! host's processes: a killed host boots again with its files), sets the
//! hostname, and becomes sshd on `ADDRESS:22`. Addresses are claimed with a
//! lock file per address, so tests (and test processes) running at the same
//! time never share one.
//!
//! Besides the test key (root, `deploy` and `ops`), every host has logins
//! that are not a plain key, for the tests of passwords, encrypted keys,
//! certificates and bastions: [`PWUSER`] logs in only with
//! [`PWUSER_PASSWORD`]; [`CERTUSER`] only with the user certificate
//! [`TestHosts::certificate`]; [`TestHosts::encrypted_key`] (passphrase
//! [`KEY_PASSPHRASE`]) is authorized like the test key; and each host key
//! has a host certificate signed by the CA [`TestHosts::host_ca`].
//!
//! Stopping is by recorded pid, never by name: the namespace's init (sshd)
//! is killed, which takes everything in the namespace with it, mounts
//! included. `unshare` is started with a parent-death signal and
//! `--kill-child`, so hosts die with the test process even when it panics
//! or is killed.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A user on every host whose only way in is its password, [`PWUSER_PASSWORD`]
/// (no authorized keys); passwordless sudo, like `deploy`.
pub(crate) const PWUSER: &str = "pwuser";

/// The password of [`PWUSER`].
pub(crate) const PWUSER_PASSWORD: &str = "pw-login-secret-7";

/// A user on every host whose only way in is the user certificate
/// [`TestHosts::certificate`] (its principal); no authorized keys, no sudo.
pub(crate) const CERTUSER: &str = "certuser";

/// The passphrase of [`TestHosts::encrypted_key`].
pub(crate) const KEY_PASSPHRASE: &str = "key-passphrase-3";

/// One running test host.
pub(crate) struct TestHost {
    pub name: String,
    pub address: String,
    unshare: Child,
    /// PID (in this namespace) of the host's init: its sshd.
    init: i32,
    public_key: PathBuf,
    /// The folder of CA material handed to `testhost-init` on first boot.
    ca: PathBuf,
    _claim: File,
    dir: tempfile::TempDir,
}

/// A set of test hosts and the client key that logs in to all of them.
pub(crate) struct TestHosts {
    pub hosts: Vec<TestHost>,
    /// Private key accepted for root, `deploy` and `ops` on every host.
    pub key: PathBuf,
    /// Private key encrypted with [`KEY_PASSPHRASE`], accepted like `key`.
    pub encrypted_key: PathBuf,
    /// Unencrypted private key whose certificate ([`TestHosts::certificate`])
    /// lets [`CERTUSER`] in; the key alone lets no one in.
    pub cert_key: PathBuf,
    /// User certificate of `cert_key`, signed by the user CA every host
    /// trusts, principal [`CERTUSER`]. Named `id_cert-cert.pub` but kept in
    /// another folder than `cert_key`, so ssh uses it only when told to
    /// (`-o CertificateFile=`), never by finding it beside the key.
    pub certificate: PathBuf,
    /// Public key of the CA that signed every host's host certificate
    /// (`host_ca.pub`): for `host_ca = PATH`, or see
    /// [`TestHosts::cert_authority_line`].
    pub host_ca: PathBuf,
    /// Private key of the user CA every host trusts (`TrustedUserCAKeys`),
    /// to sign other user certificates (`user_ca.pub` beside it).
    pub user_ca: PathBuf,
    _keys: tempfile::TempDir,
}

/// Why test hosts cannot run here, if they cannot.
pub(crate) fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("test hosts need root (namespaces and mounts)".into());
    }
    for tool in ["/usr/sbin/sshd", "/usr/bin/unshare", "/usr/bin/nsenter"] {
        if !Path::new(tool).exists() {
            return Some(format!(
                "{tool} is missing (the README's test command installs it)"
            ));
        }
    }
    None
}

fn init_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hosts/testhost-init")
}

/// Loopback addresses handed out to test hosts, in order.
fn candidate(i: usize) -> String {
    format!("127.0.{}.{}", i / 250, 2 + i % 250)
}

/// Claims a free loopback address: a lock file per address, held while the host lives.
fn claim_address() -> (String, File) {
    let dir = std::env::temp_dir().join("cairn-testhosts");
    std::fs::create_dir_all(&dir).expect("can create the address claims folder");
    for i in 0..2000 {
        let address = candidate(i);
        let file = File::create(dir.join(&address)).expect("can create a claim file");
        if file.try_lock().is_ok() {
            // Someone outside this scheme may listen there: skip it.
            let addr: SocketAddr = format!("{address}:22").parse().expect("valid");
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                continue;
            }
            return (address, file);
        }
    }
    panic!("no free loopback address for a test host");
}

impl TestHosts {
    /// Starts `n` hosts at once and waits until each one's sshd answers.
    pub(crate) fn start(n: usize) -> TestHosts {
        TestHosts::start_with_disk(n, 256)
    }

    /// Like [`TestHosts::start`], with a disk of `disk_mb` per host.
    pub(crate) fn start_with_disk(n: usize, disk_mb: u32) -> TestHosts {
        if let Some(why) = unavailable() {
            panic!("{why}");
        }
        let keys = tempfile::tempdir().expect("tempdir");
        let key = keygen(keys.path(), "id_ed25519", "");
        let encrypted_key = keygen(keys.path(), "id_encrypted", KEY_PASSPHRASE);
        let cert_key = keygen(keys.path(), "id_cert", "");
        let user_ca = keygen(keys.path(), "user_ca", "");
        let host_ca = keygen(keys.path(), "host_ca", "").with_extension("pub");
        let signed = keys.path().join("id_cert-cert.pub");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&user_ca)
            .args(["-I", CERTUSER, "-n", CERTUSER])
            .arg(cert_key.with_extension("pub"))
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success(), "signing the user certificate failed");
        // Not beside its key, where ssh would load it unasked: a test of a
        // certificate setting must fail when the setting is not passed on.
        let certificate = keys.path().join("certificates").join("id_cert-cert.pub");
        std::fs::create_dir(certificate.parent().expect("a folder")).expect("can make a folder");
        std::fs::rename(&signed, &certificate).expect("can move the certificate");
        let public = keys.path().join("authorized_keys");
        let authorized = [&key, &encrypted_key]
            .iter()
            .map(|k| std::fs::read_to_string(k.with_extension("pub")).expect("public key"))
            .collect::<String>();
        std::fs::write(&public, authorized).expect("can write authorized_keys");
        let mut hosts: Vec<TestHost> = (0..n)
            .map(|i| TestHost::create(&format!("host{i}"), &public, keys.path(), disk_mb))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        for host in &mut hosts {
            host.wait_ready(deadline);
        }
        TestHosts {
            hosts,
            key,
            encrypted_key,
            cert_key,
            certificate,
            host_ca,
            user_ca,
            _keys: keys,
        }
    }

    /// A `known_hosts` line that trusts every host certificate signed by
    /// [`TestHosts::host_ca`]: `@cert-authority * <key>`.
    pub(crate) fn cert_authority_line(&self) -> String {
        let key = std::fs::read_to_string(&self.host_ca).expect("host CA public key");
        format!("@cert-authority * {}\n", key.trim())
    }

    /// An `[ssh]` table and `[[hosts]]` list for a Clusterfile: the first
    /// host has the role `master`, the others `worker`.
    pub(crate) fn clusterfile_hosts(&self, ssh_extra: &str) -> String {
        let mut text = format!(
            "[ssh]\nidentity = \"{}\"\nconnect_timeout = \"3s\"\n{ssh_extra}\n",
            self.key.display()
        );
        for (i, h) in self.hosts.iter().enumerate() {
            let role = if i == 0 { "master" } else { "worker" };
            let _ = write!(
                text,
                "[[hosts]]\nname = \"{}\"\naddress = \"{}\"\nroles = [\"{role}\"]\n\n",
                h.name, h.address
            );
        }
        text
    }

    /// The ssh command line that logs in to `host` as `user` with the test key.
    pub(crate) fn ssh(&self, user: &str, host: &TestHost) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-i")
            .arg(&self.key)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{user}@{}", host.address));
        c
    }
}

/// Makes an ed25519 key pair `dir/name` (and `.pub`) with `passphrase`
/// (empty: none), and returns the private key's path. A passphrase goes on
/// ssh-keygen's stdin (it reads it there when stdin is no terminal), never
/// on its command line: the tests that look for secrets in `ps` run beside
/// others that are starting hosts.
fn keygen(dir: &Path, name: &str, passphrase: &str) -> PathBuf {
    let key = dir.join(name);
    let mut keygen = Command::new("ssh-keygen");
    keygen.args(["-q", "-t", "ed25519", "-C", "cairn-tests"]);
    if passphrase.is_empty() {
        keygen.args(["-N", ""]);
    }
    let mut child = keygen
        .arg("-f")
        .arg(&key)
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh-keygen runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        if !passphrase.is_empty() {
            // Asked twice: the passphrase, then again to confirm it.
            write!(stdin, "{passphrase}\n{passphrase}\n").expect("ssh-keygen reads its stdin");
        }
    }
    let status = child.wait().expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed for {name}");
    key
}

impl TestHost {
    /// `ca` holds `user_ca.pub`, `host_ca` and `host_ca.pub` (see `testhost-init`).
    fn create(name: &str, public_key: &Path, ca: &Path, disk_mb: u32) -> TestHost {
        let (address, claim) = claim_address();
        let dir = tempfile::Builder::new()
            .prefix("cairn-testhost-")
            .tempdir()
            .expect("tempdir");
        let disk = dir.path().join("disk");
        std::fs::create_dir(&disk).expect("disk folder");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={disk_mb}m,mode=0755")])
            .arg(format!("disk-{name}"))
            .arg(&disk)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting the disk of {name} failed");
        let unshare = TestHost::boot(dir.path(), &address, name, public_key, ca);
        TestHost {
            name: name.to_string(),
            address,
            unshare,
            init: 0,
            public_key: public_key.to_path_buf(),
            ca: ca.to_path_buf(),
            _claim: claim,
            dir,
        }
    }

    /// Boots (again) a host whose disk is at `dir/disk`.
    fn boot(dir: &Path, address: &str, name: &str, public_key: &Path, ca: &Path) -> Child {
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("log"))
            .expect("log file");
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--uts", "--pid", "--fork", "--kill-child", "sh"])
            .arg(init_script())
            .arg(dir.join("disk"))
            .arg(address)
            .arg(name)
            .arg(public_key)
            .arg(ca)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        // SAFETY: prctl only sets a flag of the child between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        command.spawn().expect("unshare starts")
    }

    /// Boots a killed host again, with the files it had.
    pub(crate) fn restart(&mut self) {
        if self.is_alive() {
            self.kill();
        }
        self.unshare = TestHost::boot(
            self.dir.path(),
            &self.address,
            &self.name,
            &self.public_key,
            &self.ca,
        );
        self.init = 0;
        self.wait_ready(Instant::now() + Duration::from_secs(30));
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, deadline: Instant) {
        let addr: SocketAddr = format!("{}:22", self.address).parse().expect("valid");
        loop {
            if let Ok(Some(status)) = self.unshare.try_wait() {
                panic!("test host {} exited ({status}):\n{}", self.name, self.log());
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut banner = [0u8; 4];
                if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "test host {} did not start:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let children = format!("/proc/{0}/task/{0}/children", self.unshare.id());
        self.init = std::fs::read_to_string(&children)
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .expect("unshare has its child");
    }

    /// A path inside the host, seen from outside (through its sshd's root).
    pub(crate) fn path(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.init)).join(path.trim_start_matches('/'))
    }

    /// Every file and folder the host wrote on its disk (the upper layer of
    /// its overlay), as absolute paths inside the host, sorted.
    pub(crate) fn written_paths(&self) -> Vec<String> {
        let upper = self.dir.path().join("disk").join("upper");
        let mut paths: Vec<String> = walkdir::WalkDir::new(&upper)
            .min_depth(1)
            .into_iter()
            .filter_map(Result::ok)
            .map(|e| format!("/{}", e.path().strip_prefix(&upper).unwrap().display()))
            .collect();
        paths.sort();
        paths
    }

    pub(crate) fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.path(path)).ok()
    }

    pub(crate) fn write(&self, path: &str, text: &str) {
        std::fs::write(self.path(path), text).expect("can write into the test host");
    }

    /// Runs a shell command inside the host's namespaces, as root.
    pub(crate) fn exec(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.init.to_string(), "-m", "-u", "-p", "-r", "-w"])
            .args(["sh", "-c", script])
            .output()
            .expect("nsenter runs")
    }

    /// Every process of the host: those in its PID namespace.
    fn processes(&self) -> Vec<i32> {
        let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let Some(own) = ns(&self.init.to_string()) else {
            return Vec::new();
        };
        std::fs::read_dir("/proc")
            .map(|d| {
                d.filter_map(std::result::Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|pid| ns(&pid.to_string()).as_ref() == Some(&own))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Freezes the whole host (SIGSTOP to every process in it).
    pub(crate) fn freeze(&self) {
        for pid in self.processes() {
            // SAFETY: kill(2) on pids of this host's namespace.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
    }

    pub(crate) fn thaw(&self) {
        for pid in self.processes() {
            // SAFETY: as in freeze.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }

    /// Fills the host's disk.
    pub(crate) fn fill_disk(&self) {
        self.exec("cat /dev/zero > /fill 2>/dev/null; sync; true");
    }

    /// Gives the host a new SSH host key (as a reinstall would). Its host
    /// certificate goes with the old key: the host then shows a plain key.
    pub(crate) fn rotate_host_key(&self) {
        let out = self.exec(
            "rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && kill -HUP 1",
        );
        assert!(out.status.success(), "{out:?}");
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Cuts the power: SIGKILL to the host's init, which takes every process
    /// of the host with it. Its disk stays; [`TestHost::restart`] boots it again.
    pub(crate) fn power_off(&self) {
        if self.init > 0 {
            // SAFETY: the pid recorded at start; killing a namespace's init ends the namespace.
            unsafe { libc::kill(self.init, libc::SIGKILL) };
        }
    }

    /// Kills the host: everything in it dies at once, as in a power cut.
    pub(crate) fn kill(&mut self) {
        if self.init > 0 {
            // SAFETY: the pid recorded at start; killing a namespace's init ends the namespace.
            unsafe { libc::kill(self.init, libc::SIGKILL) };
            self.init = -self.init;
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        // A test that kills a host next expects "connection refused". Under
        // load a connection made just after the kill was once accepted and
        // then reset ("Connection reset by"): wait until the address
        // refuses, so a killed host looks down at once. Bounded, and no
        // panic: this also runs in `drop`, maybe while a test unwinds.
        let addr: SocketAddr = format!("{}:22", self.address).parse().expect("valid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.init > 0
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // A frozen host must be thawed to die promptly.
        if self.init > 0 {
            self.thaw();
        }
        self.kill();
        let disk =
            std::ffi::CString::new(self.dir.path().join("disk").as_os_str().as_encoded_bytes())
                .expect("no NUL in a temp path");
        // SAFETY: a valid C string; MNT_DETACH lets go even if something still holds it.
        unsafe { libc::umount2(disk.as_ptr(), libc::MNT_DETACH) };
    }
}
