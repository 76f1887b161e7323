//! A throwaway PostgreSQL server for one test: `initdb` and `pg_ctl` from
//! Debian's `postgresql` package, run as an unprivileged system user
//! (PostgreSQL refuses root) in a temp folder, listening on a Unix socket
//! in that folder only — or, for the TLS variant, also on 127.0.0.1 with a
//! certificate signed by a test CA made with the `openssl` command.
//!
//! Dropping the server stops it (immediately) and removes its folder.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Where Debian keeps the server's programs (not on PATH).
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The system user the servers run as.
const USER: &str = "cairnpg";

pub(crate) struct Server {
    dir: tempfile::TempDir,
    /// The TCP port when the server listens on 127.0.0.1 (TLS).
    pub(crate) port: Option<u16>,
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} did not start: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn as_user(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", USER, "--", program]).current_dir("/");
    command
}

/// Creates the servers' user once per test process. The tests start their
/// servers in parallel, and on a fresh machine they all find the user
/// missing at once: unserialized, the losers' `useradd` fails ("already
/// exists"), and a test that looks while `useradd` is still writing its files
/// can chown to a user whose entry is not yet whole (initdb then gets
/// "Permission denied" in its own folder).
fn ensure_user() {
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(|| {
        let known = || {
            Command::new("id")
                .arg("-u")
                .arg(USER)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if known() {
            return;
        }
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .output()
            .unwrap_or_else(|e| panic!("useradd did not start: {e}"));
        // Exit code 9: another process made the user first, which is as good.
        assert!(
            out.status.success() || out.status.code() == Some(9) && known(),
            "useradd {USER} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn chown(path: &Path) {
    run(Command::new("chown").arg("-R").arg(USER).arg(path));
}

impl Server {
    /// A server on a Unix socket only.
    pub(crate) fn start() -> Server {
        Server::start_with(false)
    }

    /// A server on a Unix socket and on 127.0.0.1, TLS on, its certificate
    /// (for `localhost`) signed by `ca.pem` in its folder; the `postgres`
    /// role has the password `secret-pw` over TCP.
    pub(crate) fn start_tls() -> Server {
        Server::start_with(true)
    }

    fn start_with(tls: bool) -> Server {
        assert!(
            Path::new(BIN).join("initdb").exists(),
            "PostgreSQL 15 is not installed: run scripts/test, which installs Debian's postgresql"
        );
        ensure_user();
        let dir = tempfile::Builder::new()
            .prefix("cairn-pg")
            .tempdir()
            .unwrap();
        chown(dir.path());
        let data = dir.path().join("data");
        run(as_user(&format!("{BIN}/initdb"))
            .args([
                "-A",
                "trust",
                "--auth-host=scram-sha-256",
                "-U",
                "postgres",
                "--no-sync",
                "-D",
            ])
            .arg(&data));
        let mut conf = format!(
            "unix_socket_directories = '{}'\nfsync = off\nmax_connections = 50\n",
            dir.path().display()
        );
        let port = if tls {
            make_certificates(dir.path());
            let port = free_port();
            let _ = write!(
                conf,
                "listen_addresses = '127.0.0.1'\nport = {port}\nssl = on\nssl_cert_file = '{0}/server.pem'\nssl_key_file = '{0}/server.key'\n",
                dir.path().display()
            );
            Some(port)
        } else {
            conf.push_str("listen_addresses = ''\n");
            None
        };
        let conf_file = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_file).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_file, text).unwrap();
        chown(dir.path());
        let server = Server { dir, port };
        server.pg_ctl("start");
        if tls {
            server.sql("ALTER ROLE postgres PASSWORD 'secret-pw'");
        }
        server
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let mut command = as_user(&format!("{BIN}/pg_ctl"));
        command.arg("-D").arg(&data).arg("-l").arg(&log).arg("-w");
        if action != "start" {
            command.args(["-m", "immediate"]);
        }
        command.arg(action);
        run(&mut command);
    }

    /// Stops the server at once (as a crash would), then starts it again.
    pub(crate) fn restart(&self) {
        self.pg_ctl("stop");
        self.pg_ctl("start");
    }

    /// The URL (key=value form) of database `postgres` over the socket.
    pub(crate) fn url(&self) -> String {
        let port = self.port.map(|p| format!(" port={p}")).unwrap_or_default();
        format!(
            "host={}{port} user=postgres dbname=postgres",
            self.dir.path().display()
        )
    }

    /// The CA that signed the TLS server's certificate.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A connection as the superuser, over the socket.
    pub(crate) fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).expect("the test server answers")
    }

    /// Runs statements as the superuser.
    pub(crate) fn sql(&self, statements: &str) {
        self.client().batch_execute(statements).unwrap();
    }

    /// The first column of the first row of `query`, as text.
    pub(crate) fn value(&self, query: &str) -> Option<String> {
        self.client()
            .query_opt(query, &[])
            .unwrap()
            .and_then(|row| row.get::<_, Option<String>>(0))
    }

    /// Waits until `query` returns a true first column (or panics after a minute).
    pub(crate) fn wait_until(&self, query: &str) {
        let started = Instant::now();
        loop {
            // An error (the tables not made yet) is a no.
            let yes = self
                .client()
                .query_one(query, &[])
                .is_ok_and(|row| row.get::<_, bool>(0));
            if yes {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "waited a minute for: {query}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_user(&format!("{BIN}/pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA, and a server certificate for `localhost` it signed.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").args(args).current_dir(dir));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=cairn test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}
