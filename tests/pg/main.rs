//! The PostgreSQL state backend against real, throwaway PostgreSQL servers
//! (`server.rs`): operators are folders with a Clusterfile whose one host
//! uses the local transport, and whose `[state]` points at the test server;
//! their steps append to a log outside every folder, so a task run twice
//! shows there. Each test starts its own server (a second, in an `initdb`),
//! so that a restart or a broken schema in one is never seen by another.
//!
//! Every test needs root (the servers run as a system user made for them)
//! and Debian's `postgresql` package: `scripts/test` installs it and runs
//! them with `cargo test --test pg -- --include-ignored`.

mod server;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use server::Server;

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// One operator: a folder of their own holding a Clusterfile.
struct Operator {
    dir: tempfile::TempDir,
    url: String,
}

/// A step of the test Clusterfiles: its name, what it waits for, and how
/// long it sleeps before it logs itself (in an inner `sh -c` whose command
/// line names the log, so a test can find and kill it).
struct StepSpec<'a> {
    name: &'a str,
    after: &'a [&'a str],
    sleep: f32,
}

fn step<'a>(name: &'a str, after: &'a [&'a str], sleep: f32) -> StepSpec<'a> {
    StepSpec { name, after, sleep }
}

/// A Clusterfile for cluster `cluster` kept in `schema`, whose steps log to `log`.
fn clusterfile(
    cluster: &str,
    schema: &str,
    log: &Path,
    steps: &[StepSpec<'_>],
    extra_state: &str,
) -> String {
    let mut text = format!(
        "version = 1\nname = \"{cluster}\"\n\n[state]\nbackend = \"postgres\"\nurl = {{ secret = \"env:CAIRN_TEST_PG_URL\" }}\nschema = \"{schema}\"\n{extra_state}\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\nroles = [\"web\"]\n"
    );
    for s in steps {
        let after = s
            .after
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            text,
            "\n[[steps]]\nname = \"{}\"\non = \"web\"\nafter = [{after}]\nrun = \"sh -c 'sleep {}; echo {} >> {}'\"\n",
            s.name,
            s.sleep,
            s.name,
            log.display()
        );
    }
    text
}

impl Operator {
    fn new(server_url: &str, clusterfile: &str) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Clusterfile"), clusterfile).unwrap();
        Operator {
            dir,
            url: server_url.to_string(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, clusterfile: &str) {
        std::fs::write(self.dir.path().join("Clusterfile"), clusterfile).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(CAIRN);
        c.args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("CAIRN_TEST_PG_URL", &self.url)
            .env_remove("CAIRN_STATE_URL")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("cairn runs")
    }

    /// Runs and expects exit code `code`; the output, stdout then stderr.
    fn expect(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(code), "cairn {args:?}:\n{text}");
        text
    }

    fn apply(&self) -> String {
        self.expect(&["apply", "--auto-approve", "--lock-timeout", "30s"], 0)
    }

    /// A plan that must find nothing to do.
    fn plan_is_clean(&self) {
        let text = self.expect(&["plan", "--detailed-exitcode"], 0);
        assert!(text.contains("No changes"), "{text}");
    }

    /// An apply started in its own process group (so that killing the
    /// group kills the commands it runs too, as losing the machine would).
    fn spawn(&self, args: &[&str], stdin: Stdio) -> Child {
        use std::os::unix::process::CommandExt;
        let mut c = self.command(args);
        c.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        c.spawn().expect("cairn starts")
    }
}

/// The lines of the steps' log, as a count per step.
fn runs_of(log: &Path, step: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == step)
        .count()
}

fn kill_group(child: &Child) {
    let pgid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Kills the commands cairn started that write to `log` (the local
/// transport starts them in sessions of their own, so killing cairn's
/// group leaves them): what losing the machine would do to them.
fn kill_commands_logging_to(log: &Path) {
    let needle = log.display().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn output_of(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A temp folder for the steps' log, apart from every operator.
fn log_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    (dir, log)
}

/// True once the cluster's lock is held, by the holder recorded.
fn holder_recorded(schema: &str, cluster: &str) -> String {
    format!("SELECT EXISTS (SELECT 1 FROM {schema}.lock_holders WHERE cluster = '{cluster}')")
}

/// True once the journal has a row for `task`.
fn journaled(schema: &str, task: &str) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = '{schema}' AND tablename = 'journal') \
         AND EXISTS (SELECT 1 FROM {schema}.journal WHERE entry LIKE '%\"id\":\"{task}\"%')"
    )
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn two_operators_apply_in_turn_and_see_each_others_work() {
    let server = Server::start();
    let (_logs, log) = log_dir();
    let first = clusterfile("team", "cairn", &log, &[step("one", &[], 0.0)], "");
    let alice = Operator::new(&server.url(), &first);
    let bob = Operator::new(&server.url(), &first);
    alice.apply();
    // Bob, in another folder, sees what Alice did: nothing left to do.
    bob.plan_is_clean();
    let second = clusterfile(
        "team",
        "cairn",
        &log,
        &[step("one", &[], 0.0), step("two", &["one"], 0.0)],
        "",
    );
    bob.write(&second);
    let text = bob.apply();
    assert!(text.contains("1 done"), "{text}");
    alice.write(&second);
    alice.plan_is_clean();
    assert_eq!((runs_of(&log, "one"), runs_of(&log, "two")), (1, 1));
    // The state is in rows: no local state file in either folder.
    for op in [&alice, &bob] {
        assert!(!op.path().join(".cairn/team/state.json").exists());
    }
    let list = alice.expect(&["state", "list"], 0);
    assert!(list.contains("step.two@local"), "{list}");
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn a_holder_killed_while_idle_or_mid_run_frees_the_lock_and_nothing_is_lost_or_doubled() {
    let server = Server::start();
    let (_logs, log) = log_dir();
    let steps = [
        step("one", &[], 0.0),
        step("slow", &["one"], 3.0),
        step("three", &["slow"], 0.0),
    ];
    let file = clusterfile("kills", "cairn", &log, &steps, "");
    let alice = Operator::new(&server.url(), &file);
    let bob = Operator::new(&server.url(), &file);

    // Idle: Alice's apply holds the lock while it waits at its question.
    let waiting = alice.spawn(&["apply"], Stdio::piped());
    server.wait_until(&holder_recorded("cairn", "kills"));
    let refused = bob.expect(&["apply", "--auto-approve"], 1);
    assert!(refused.contains("is locked by"), "{refused}");
    assert!(
        refused.contains(&format!("pid {}", waiting.id())),
        "names the holder: {refused}"
    );
    assert!(refused.contains("database session"), "{refused}");
    assert!(
        refused.contains("`apply`") || refused.contains(" apply`"),
        "names the command: {refused}"
    );
    kill_group(&waiting);
    output_of(waiting);

    // Mid-run: Alice is killed (with the commands she runs) during `slow`.
    let running = alice.spawn(&["apply", "--auto-approve"], Stdio::null());
    server.wait_until(&journaled("cairn", "step.one@local"));
    kill_group(&running);
    kill_commands_logging_to(&log);
    output_of(running);
    let text = bob.apply();
    assert!(
        text.contains("2 done"),
        "slow and three, not one again: {text}"
    );
    // `one` was recorded: never run again. `slow` was not: Bob runs it.
    // Alice's own `slow` may still have finished (its script was starting
    // when she was killed, out of reach of kill_commands_logging_to), so
    // it is in the log once or twice; `three` waited for Bob's.
    assert_eq!(runs_of(&log, "one"), 1, "a recorded task is not run again");
    assert!(
        (1..=2).contains(&runs_of(&log, "slow")),
        "slow runs again: {}",
        runs_of(&log, "slow")
    );
    assert_eq!(runs_of(&log, "three"), 1, "nothing lost or doubled");
    alice.plan_is_clean();
}

/// Alice's apply of `one`, `slow` (2 s), `three`, cut by `disrupt` once
/// `one` is recorded; returns what her run printed, then checks that her
/// next apply finishes with each step run once and a clean plan after.
fn apply_disrupted_mid_run(
    cluster: &str,
    disrupt: impl FnOnce(&Server),
    check: impl FnOnce(&str, &Server, &Path),
) {
    let server = Server::start();
    let (_logs, log) = log_dir();
    let steps = [
        step("one", &[], 0.0),
        step("slow", &["one"], 2.0),
        step("three", &["slow"], 0.0),
    ];
    let alice = Operator::new(
        &server.url(),
        &clusterfile(cluster, "cairn", &log, &steps, ""),
    );
    let running = alice.spawn(&["apply", "--auto-approve"], Stdio::null());
    server.wait_until(&journaled("cairn", "step.one@local"));
    disrupt(&server);
    let out = output_of(running);
    assert!(out.contains("recording it failed"), "{out}");
    assert!(out.contains("lock in PostgreSQL is lost"), "{out}");
    assert_eq!(runs_of(&log, "three"), 0, "nothing starts after: {out}");
    check(&out, &server, &log);
    let text = alice.apply();
    // `slow` ran but was not recorded: its receipt records it, it does not run again.
    assert_eq!(
        (
            runs_of(&log, "one"),
            runs_of(&log, "slow"),
            runs_of(&log, "three")
        ),
        (1, 1, 1),
        "{text}"
    );
    alice.plan_is_clean();
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn an_ended_session_stops_the_run_which_says_what_is_recorded() {
    apply_disrupted_mid_run(
        "ended",
        |server| server.sql("SELECT pg_terminate_backend(backend_pid) FROM cairn.lock_holders"),
        |out, server, _| {
            assert!(
                out.contains("step.slow@local: the task ran, but recording it failed: the cluster lock in PostgreSQL is lost"),
                "{out}"
            );
            assert!(out.contains("Apply failed"), "{out}");
            assert_eq!(
                server.value(
                    "SELECT count(*)::text FROM cairn.journal WHERE entry LIKE '%step.slow@local%'"
                ),
                Some("0".into()),
                "slow is not recorded"
            );
        },
    );
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn a_server_restart_mid_run_stops_the_run_and_the_next_apply_finishes() {
    apply_disrupted_mid_run("restart", Server::restart, |_, _, _| {});
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn unlock_shows_the_holder_and_ends_its_session() {
    let server = Server::start();
    let (_logs, log) = log_dir();
    let file = clusterfile("stuck", "cairn", &log, &[step("one", &[], 0.0)], "");
    let alice = Operator::new(&server.url(), &file);
    let bob = Operator::new(&server.url(), &file);
    let hung = alice.spawn(&["apply"], Stdio::piped());
    server.wait_until(&holder_recorded("cairn", "stuck"));
    let pid = server
        .value("SELECT backend_pid::text FROM cairn.lock_holders")
        .unwrap();
    let refused = bob.expect(&["unlock"], 1);
    assert!(
        refused.contains(&format!("pg_terminate_backend({pid})")),
        "{refused}"
    );
    let text = bob.expect(&["unlock", "--auto-approve"], 0);
    assert!(
        text.contains(&format!("database session {pid} was ended")),
        "{text}"
    );
    bob.apply();
    kill_group(&hung);
    output_of(hung);
    assert_eq!(runs_of(&log, "one"), 1);
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn many_cairns_creating_one_cluster_make_one_state_and_schemas_do_not_contend() {
    use cairn::model::state_settings::{PgSettings, SslMode};
    use cairn::state::lock::{LockHolder, LockPolicy};
    use cairn::state::postgres::PgStore;
    let server = Server::start();
    let settings = |schema: &str| PgSettings {
        url: cairn::model::Secret::new(server.url()),
        schema: schema.into(),
        sslmode: SslMode::Disable,
        ca_file: None,
        lock_timeout: None,
    };
    // The schema first, so the race below is the cluster's alone.
    PgStore::new(settings("cairn"), "warmup").ensure().unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| PgStore::new(settings("cairn"), "fresh").ensure().unwrap());
        }
    });
    assert_eq!(
        server.value("SELECT count(*)::text FROM cairn.snapshots WHERE cluster = 'fresh'"),
        Some("1".into())
    );
    let salts: std::collections::BTreeSet<String> = (0..3)
        .map(|_| {
            PgStore::new(settings("cairn"), "fresh")
                .load()
                .unwrap()
                .salt
        })
        .collect();
    assert_eq!(salts.len(), 1, "every reader sees the one state");

    // One cluster name in two schemas: two locks, held at once.
    let policy = LockPolicy::immediate(LockHolder::current("test"));
    let a = PgStore::new(settings("cairn"), "fresh");
    let b = PgStore::new(settings("other"), "fresh");
    let _held_a = a.lock(&policy).unwrap();
    let _held_b = b
        .lock(&policy)
        .expect("another schema's lock is another lock");
    let again = PgStore::new(settings("cairn"), "fresh").lock(&policy);
    assert!(again.is_err(), "the same schema's lock is held");
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn a_local_state_migrates_refuses_reuse_and_pulls_back() {
    let server = Server::start();
    let (_logs, log) = log_dir();
    let steps = [step("one", &[], 0.0), step("two", &["one"], 0.0)];
    let on_pg = clusterfile("moving", "cairn", &log, &steps, "");
    let local = on_pg.replace("backend = \"postgres\"", "backend = \"local\"");
    let alice = Operator::new(&server.url(), &local);
    alice.apply();
    let tasks = std::fs::read_to_string(alice.path().join(".cairn/moving/state.json")).unwrap();
    // Without the backend configured, migrate says how to configure it.
    let text = alice.expect(&["state", "migrate", "--to", "postgres"], 1);
    assert!(text.contains("[state]"), "{text}");
    alice.write(&on_pg);
    let text = alice.expect(&["state", "migrate", "--to", "postgres"], 0);
    assert!(text.contains("2 tasks"), "{text}");
    alice.plan_is_clean();
    // The local state refuses use, pointing at the backend.
    alice.write(&local);
    let text = alice.expect(&["plan"], 1);
    assert!(text.contains("was migrated to PostgreSQL"), "{text}");
    // A second migration of the cluster is refused: the target holds it.
    let bob = Operator::new(&server.url(), &local);
    bob.apply();
    bob.write(&on_pg);
    let text = bob.expect(&["state", "migrate", "--to", "postgres"], 1);
    assert!(text.contains("already holds a state"), "{text}");
    // Pull writes the backend's state to a local folder.
    let carol = Operator::new(&server.url(), &on_pg);
    let text = carol.expect(&["state", "pull"], 0);
    assert!(text.contains("2 tasks"), "{text}");
    let pulled: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(carol.path().join(".cairn/moving/state.json")).unwrap(),
    )
    .unwrap();
    let original: serde_json::Value = serde_json::from_str(&tasks).unwrap();
    assert_eq!(pulled["tasks"], original["tasks"]);
    assert_eq!(pulled["salt"], original["salt"]);
    carol.write(&local);
    carol.plan_is_clean();
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn verify_full_tls_against_a_test_ca_and_the_password_never_shows() {
    let server = Server::start_tls();
    let (_logs, log) = log_dir();
    let port = server.port.unwrap();
    let url = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user=postgres password=secret-pw dbname=postgres"
    );
    let tls = format!(
        "sslmode = \"verify-full\"\nca_file = \"{}\"",
        server.ca_file().display()
    );
    let file = clusterfile("tls", "cairn", &log, &[step("one", &[], 0.0)], &tls);
    let alice = Operator::new(&url, &file);
    let text = alice.apply();
    assert!(!text.contains("secret-pw"), "{text}");
    alice.plan_is_clean();
    // The name must match: 127.0.0.1 is not `localhost` of the certificate.
    let by_address = Operator::new(
        &url.replace("host=localhost hostaddr=127.0.0.1", "host=127.0.0.1"),
        &file,
    );
    let text = by_address.expect(&["plan"], 1);
    assert!(!text.contains("secret-pw"), "{text}");
    assert!(text.contains("PostgreSQL"), "{text}");
    // Another CA is not trusted.
    let other_ca = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "k",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .current_dir(other_ca.path())
        .output()
        .unwrap();
    assert!(made.status.success());
    let untrusted = Operator::new(
        &url,
        &file.replace(
            &server.ca_file().display().to_string(),
            &other_ca.path().join("ca.pem").display().to_string(),
        ),
    );
    let text = untrusted.expect(&["plan"], 1);
    assert!(text.contains("certificate"), "{text}");
    assert!(!text.contains("secret-pw"), "{text}");
    // A wrong password is refused without being shown.
    let wrong = Operator::new(&url.replace("secret-pw", "wrong-pw-123"), &file);
    let text = wrong.expect(&["plan"], 1);
    assert!(!text.contains("wrong-pw-123"), "{text}");
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn the_schema_is_versioned_and_a_role_limited_to_its_tables_works() {
    let server = Server::start();
    let (_logs, log) = log_dir();
    let file = clusterfile("roles", "cairn", &log, &[step("one", &[], 0.0)], "");
    let owner = Operator::new(&server.url(), &file);
    owner.expect(&["plan"], 0);
    server.sql(
        "CREATE ROLE worker LOGIN;
         GRANT USAGE ON SCHEMA cairn TO worker;
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cairn TO worker;",
    );
    let worker = Operator::new(&server.url().replace("user=postgres", "user=worker"), &file);
    worker.apply();
    worker.plan_is_clean();
    // A role that may not create the tables says so, in a schema without them.
    let elsewhere = Operator::new(
        &server.url().replace("user=postgres", "user=worker"),
        &file.replace("schema = \"cairn\"", "schema = \"fresh\""),
    );
    let text = elsewhere.expect(&["plan"], 1);
    assert!(text.contains("may not create cairn's tables"), "{text}");
    // A newer schema is refused by name.
    server.sql("UPDATE cairn.schema_version SET version = 99");
    let text = owner.expect(&["plan"], 1);
    assert!(text.contains("newer cairn"), "{text}");
    assert!(text.contains("version 99"), "{text}");
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn a_bad_url_or_missing_secret_is_a_clusterfile_error() {
    let (_logs, log) = log_dir();
    let file = clusterfile("bad", "cairn", &log, &[step("one", &[], 0.0)], "");
    let unset = Operator::new("", &file);
    let mut c = unset.command(&["validate"]);
    c.env_remove("CAIRN_TEST_PG_URL");
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("CAIRN_TEST_PG_URL"), "{text}");
    let bad = Operator::new("postgres://u:hunter2@db:notaport/x", &file);
    let text = bad.expect(&["validate"], 1);
    assert!(text.contains("URL is not valid"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn a_migration_killed_mid_copy_leaves_the_target_empty() {
    let server = Server::start();
    let (_logs, log) = log_dir();
    let on_pg = clusterfile("halfway", "cairn", &log, &[step("one", &[], 0.0)], "");
    let local = on_pg.replace("backend = \"postgres\"", "backend = \"local\"");
    let alice = Operator::new(&server.url(), &local);
    alice.apply();
    alice.write(&on_pg);
    // A plan makes the tables (and finds no state there yet); then an
    // uncommitted row of the test's stops the migration's insert of the
    // snapshot half-way through its transaction, where it is killed.
    let plan = alice.expect(&["plan", "--offline"], 0);
    assert!(
        plan.contains("1 to add"),
        "the backend holds no state yet: {plan}"
    );
    let mut blocker = server.client();
    let mut tx = blocker.transaction().unwrap();
    tx.batch_execute(
        "DELETE FROM cairn.snapshots WHERE cluster = 'halfway';
         INSERT INTO cairn.snapshots (cluster, seq, serial, state) VALUES ('halfway', 0, 0, '{}')",
    )
    .unwrap();
    let migrating = alice.spawn(&["state", "migrate", "--to", "postgres"], Stdio::null());
    server.wait_until(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'cairn migrate%' AND wait_event_type = 'Lock')",
    );
    kill_group(&migrating);
    output_of(migrating);
    tx.rollback().unwrap();
    server.wait_until(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'cairn migrate%')",
    );
    assert_eq!(
        server.value(
            "SELECT count(*)::text FROM cairn.snapshots WHERE cluster = 'halfway' AND state LIKE '%step.one@local%'"
        ),
        Some("0".into()),
        "nothing of the migration is left"
    );
    assert!(!alice.path().join(".cairn/halfway/MIGRATED").exists());
    // The local state is still the one in use, and a second try goes through.
    let text = alice.expect(&["state", "migrate", "--to", "postgres"], 0);
    assert!(text.contains("1 task"), "{text}");
    alice.plan_is_clean();
}

#[test]
#[ignore = "needs root and postgresql: run by scripts/test"]
fn state_url_chooses_the_backend_for_one_run_and_refuses_a_password_in_argv() {
    let server = Server::start();
    let (_logs, log) = log_dir();
    let on_pg = clusterfile("ci", "cairn", &log, &[step("one", &[], 0.0)], "");
    // No [state] at all: the option alone moves the state to PostgreSQL.
    let start = on_pg.find("[state]").unwrap();
    let end = on_pg.find("[[hosts]]").unwrap();
    let plain = format!("{}{}", &on_pg[..start], &on_pg[end..]);
    let ci = Operator::new(&server.url(), &plain);
    let text = ci.expect(
        &[
            "apply",
            "--auto-approve",
            "--state-url",
            "env:CAIRN_TEST_PG_URL",
        ],
        0,
    );
    assert!(text.contains("1 done"), "{text}");
    assert!(!ci.path().join(".cairn/ci/state.json").exists());
    let mut from_env = ci.command(&["plan", "--detailed-exitcode"]);
    from_env.env("CAIRN_STATE_URL", server.url());
    let out = from_env.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = ci.expect(
        &["plan", "--state-url", "postgres://u:hunter2@localhost/db"],
        1,
    );
    assert!(text.contains("holds a password"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
