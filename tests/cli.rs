//! The real `cairn` binary against fixtures/local, copied into a temp dir:
//! plan output, exit codes, no-op re-apply, one-file changes, failure
//! isolation, the lock, kill and resume, secrets, timeouts, saved plans,
//! `once`, undo, drift, and the JSON forms. Everything runs on the local
//! transport; nothing leaves the temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Sandbox {
    dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(Path::new("fixtures/local"), dir.path());
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} has no `{from}`");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// Adds `token`, a secret read from `CAIRN_TEST_TOKEN`, to the fixture's `[vars]`.
    fn add_token_secret(&self) {
        self.edit(
            "Clusterfile",
            "port = 8080",
            "port = 8080\ntoken = { secret = \"env:CAIRN_TEST_TOKEN\" }",
        );
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("cairn runs")
    }

    fn apply(&self) -> Output {
        let out = self.run(&["apply", "--auto-approve"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "apply failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        out
    }

    fn plan_json(&self) -> serde_json::Value {
        let out = self.run(&["plan", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("plan --json is JSON")
    }

    /// Task → action, for tasks that change.
    fn planned_actions(&self) -> Vec<(String, String)> {
        let plan = self.plan_json();
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["action"] != "noop")
            .map(|c| {
                (
                    c["task"].as_str().unwrap().to_string(),
                    c["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Every file under the sandbox's `.cairn`, as text.
    fn state_text(&self) -> String {
        let mut all = String::new();
        for entry in walkdir::WalkDir::new(self.path(".cairn")) {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                all.push_str(&String::from_utf8_lossy(
                    &std::fs::read(entry.path()).unwrap(),
                ));
            }
        }
        all
    }
}

/// Polls until `done` (a bounded wait for another process, not a timing assertion).
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lines(text: &str) -> usize {
    text.lines().count()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn first_plan_lists_every_task_with_its_reason() {
    let s = Sandbox::new();
    let out = s.run(&["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
    assert!(
        !s.path(".cairn").exists() || !s.path(".cairn/fixture/state.json").exists(),
        "plan records nothing"
    );
    assert!(!s.path("out").exists(), "plan runs nothing");
}

#[test]
fn exit_codes_follow_the_contract() {
    let s = Sandbox::new();
    assert_eq!(s.run(&["validate"]).status.code(), Some(0));
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(2),
        "changes → 2"
    );
    s.apply();
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0),
        "no changes → 0"
    );
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode", "--offline"])
            .status
            .code(),
        Some(0)
    );
    s.write("Clusterfile", "version = 1\n");
    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(1),
        "error → 1"
    );
    assert_eq!(
        s.run(&["validate", "-f", "nope.toml"]).status.code(),
        Some(1)
    );
}

#[test]
fn apply_converges_and_a_second_apply_runs_nothing() {
    let s = Sandbox::new();
    let first = s.apply();
    assert!(
        stdout(&first).contains("Apply complete!"),
        "{}",
        stdout(&first)
    );
    assert_eq!(s.read("out/install.log"), "installed hello from cairn\n");
    assert_eq!(
        s.read("out/announce"),
        "hello v1\n",
        "captured value passed on"
    );
    assert_eq!(
        s.read("out/web/etc/web.conf"),
        "listen = localhost:8080\ngreeting = hello\n",
        "template rendered per host"
    );
    assert!(
        s.read("out/web/etc/app.yaml").contains("workers: 4"),
        "config patch applied"
    );
    assert_eq!(s.read("out/motd"), "hello from fixture\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(s.path("out/motd"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(s.path("out/web/bin/install.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );

    let second = s.apply();
    assert!(
        stdout(&second).contains("No changes."),
        "{}",
        stdout(&second)
    );
    assert!(
        !stdout(&second).contains("Applying"),
        "nothing ran: {}",
        stdout(&second)
    );
    assert_eq!(lines(&s.read("out/install.log")), 1);
    assert_eq!(lines(&s.read("out/independent.log")), 1);
    assert!(s.planned_actions().is_empty());
}

#[test]
fn one_bundle_file_change_reruns_exactly_its_dependents() {
    let s = Sandbox::new();
    s.apply();
    s.write("web/index.html", "hello again\n");
    let plan = s.run(&["plan"]);
    let text = stdout(&plan);
    assert!(
        text.contains("bundle web: 1 file changed (index.html)"),
        "{text}"
    );
    assert!(
        text.contains("upstream task changed (bundle.web@local)"),
        "{text}"
    );
    assert!(
        text.contains("Changes ignored because the step has `once = true`"),
        "{text}"
    );
    assert_eq!(
        s.planned_actions(),
        pairs(&[
            ("bundle.web@local", "update"),
            ("step.install@local", "update"),
            ("step.announce@local", "update")
        ])
    );
    let out = s.apply();
    assert!(
        stdout(&out).contains("bundle.web@local: updated (1 file shipped (index.html))"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        s.read("out/install.log"),
        "installed hello from cairn\ninstalled hello again\n"
    );
    assert_eq!(lines(&s.read("out/init.log")), 1, "once step not rerun");
    assert_eq!(
        lines(&s.read("out/independent.log")),
        1,
        "unrelated step not rerun"
    );
}

#[test]
fn a_var_change_names_the_var_and_reruns_its_readers() {
    let s = Sandbox::new();
    s.apply();
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"howdy\"",
    );
    let text = stdout(&s.run(&["plan"]));
    assert!(
        text.contains("var greeting changed (\"hello\" -> \"howdy\")"),
        "{text}"
    );
    assert!(
        text.contains("bundle web: 1 template rendered differently (etc/web.conf)"),
        "{text}"
    );
    s.apply();
    assert_eq!(s.read("out/announce"), "howdy v1\n");
    assert_eq!(s.read("out/motd"), "howdy from fixture\n");
}

#[test]
fn a_failing_step_skips_its_dependents_and_nothing_else() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"sh bin/install.sh\"",
        "run = \"echo about to fail; echo 'disk on fire' >&2; exit 3\"",
    );
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("step.install@local: exited with code 3"),
        "{text}"
    );
    assert!(
        text.contains("disk on fire"),
        "the tail of the output is shown: {text}"
    );
    assert!(
        text.contains("step.announce@local: skipped, upstream failed"),
        "{text}"
    );
    assert!(
        text.contains("step.init@local: skipped, upstream failed"),
        "{text}"
    );
    assert!(text.contains("1 failed, 2 skipped"), "{text}");
    assert!(
        stderr(&out).contains("apply failed: 1 task failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        lines(&s.read("out/independent.log")),
        1,
        "independent work went on"
    );
    assert!(!s.path("out/announce").exists());
    // Fixed, the next apply runs only what did not succeed.
    s.edit(
        "Clusterfile",
        "run = \"echo about to fail; echo 'disk on fire' >&2; exit 3\"",
        "run = \"sh bin/install.sh\"",
    );
    assert_eq!(
        s.planned_actions(),
        pairs(&[
            ("step.install@local", "create"),
            ("step.announce@local", "create"),
            ("step.init@local", "create")
        ])
    );
    s.apply();
    assert_eq!(lines(&s.read("out/independent.log")), 1);
}

#[test]
fn a_second_apply_is_refused_while_the_first_holds_the_lock() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"sleep 4; echo v1\"",
    );
    let mut first = s
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lock = s.path(".cairn/fixture/lock");
    wait_until("the first apply takes the lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("pid"))
    });
    let second = s.run(&["apply", "--auto-approve"]);
    assert_eq!(second.status.code(), Some(1));
    let err = stderr(&second);
    assert!(
        err.contains(&format!(
            "cluster `fixture` is locked by pid {}",
            first.id()
        )),
        "{err}"
    );
    assert!(err.contains("started"), "{err}");
    assert!(first.wait().unwrap().success());
    s.apply();
}

#[test]
fn a_killed_apply_resumes_where_it_stopped() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"echo ${greeting} ${version} > out/announce\"",
        "run = \"if [ -f out/slow-started ]; then echo resumed > out/announce; else touch out/slow-started; sleep 30; fi\"",
    );
    let mut child = s
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the slow step starts", || {
        s.path("out/slow-started").exists()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let actions = s.planned_actions();
    assert_eq!(
        actions,
        pairs(&[("step.announce@local", "create")]),
        "only the task in flight is left"
    );
    s.apply();
    assert_eq!(s.read("out/announce"), "resumed\n");
    assert_eq!(
        lines(&s.read("out/install.log")),
        1,
        "finished work was not repeated"
    );
}

#[test]
fn secrets_never_reach_output_logs_or_state() {
    let s = Sandbox::new();
    let secret = "s3cr3t-VALUE-9f8e";
    s.add_token_secret();
    s.edit(
        "Clusterfile",
        "run = \"mkdir -p out && echo ran >> out/independent.log\"",
        "run = \"mkdir -p out && echo ${token} > out/delivered && echo token=${token}; echo ${token} >&2; exit 1\"",
    );
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"echo v1 # uses ${token}\"",
    );
    let plan = s
        .command(&["plan"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();

    let apply = s
        .command(&["apply", "--auto-approve"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(apply.status.code(), Some(1), "the step fails on purpose");
    let json = s
        .command(&["apply", "--auto-approve", "--json"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    let shown = s
        .command(&["state", "list"])
        .env("CAIRN_TEST_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(
        s.read("out/delivered"),
        format!("{secret}\n"),
        "the host gets the value"
    );
    for (what, text) in [
        ("plan", stdout(&plan) + &stderr(&plan)),
        ("apply", stdout(&apply) + &stderr(&apply)),
        ("apply --json", stdout(&json) + &stderr(&json)),
        ("state list", stdout(&shown)),
        ("state and logs", s.state_text()),
    ] {
        assert!(!text.contains(secret), "{what} leaks the secret:\n{text}");
    }
    assert!(
        stdout(&apply).contains("    ***"),
        "the failure's tail is scrubbed, not dropped: {}",
        stdout(&apply)
    );
    assert!(s.state_text().contains("token=***"), "so is the run log");

    assert!(
        s.state_text().contains("secret:"),
        "keys hold a salted hash"
    );
}

#[test]
fn timeouts_and_retries_are_honoured() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"sleep 20\"\ntimeout = \"1s\"",
    );
    s.edit(
        "Clusterfile",
        "run = \"mkdir -p out && echo ran >> out/independent.log\"",
        "run = \"mkdir -p out; if [ -f out/tried ]; then echo second; else touch out/tried; exit 1; fi\"\nretries = 2",
    );
    let started = Instant::now();
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("step.version@local: timed out after 1s"),
        "{text}"
    );
    assert!(
        text.contains("step.independent@local: created (succeeded on attempt 2)"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the sleep was killed"
    );
}

#[test]
fn a_saved_plan_applies_only_while_nothing_changed() {
    let s = Sandbox::new();
    let out = s.run(&["plan", "-o", "tonight.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.edit(
        "Clusterfile",
        "greeting = \"hello\"",
        "greeting = \"changed\"",
    );
    let stale = s.run(&["apply", "tonight.plan"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        stderr(&stale).contains("the saved plan tonight.plan no longer matches"),
        "{}",
        stderr(&stale)
    );
    assert!(!s.path("out").exists(), "nothing ran");
    s.edit(
        "Clusterfile",
        "greeting = \"changed\"",
        "greeting = \"hello\"",
    );
    let ok = s.run(&["apply", "tonight.plan"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(s.read("out/announce"), "hello v1\n");
}

#[test]
fn a_removed_step_runs_its_undo_and_a_removed_file_is_deleted() {
    let s = Sandbox::new();
    s.apply();
    assert!(s.path("out/init.log").exists());
    let text = s.read("Clusterfile");
    let without = text
        .replace("[[steps]]\nname = \"init\"\nafter = [\"install\"]\nonce = true\nrun = \"echo init >> out/init.log\"\nundo = \"rm -f out/init.log\"\n", "")
        .replace("[[files]]\nname = \"motd\"\ncontent = \"${greeting} from ${cluster}\\n\"\ndest = \"out/motd\"\nmode = \"0600\"\n", "");
    assert_ne!(without, text);
    s.write("Clusterfile", &without);
    let plan = stdout(&s.run(&["plan"]));
    assert!(plan.contains("- step.init@local"), "{plan}");
    assert!(
        plan.contains("no longer in the Clusterfile; runs its undo"),
        "{plan}"
    );
    assert!(plan.contains("- file.motd@local"), "{plan}");
    s.apply();
    assert!(!s.path("out/init.log").exists(), "undo ran");
    assert!(!s.path("out/motd").exists(), "shipped file removed");
    assert!(s.planned_actions().is_empty());
}

#[test]
fn changes_made_on_the_host_are_found_and_repaired() {
    let s = Sandbox::new();
    s.apply();
    s.write("out/web/index.html", "defaced\n");
    std::fs::write(s.path("out/web/extra.txt"), "mine\n").unwrap();
    let plan = stdout(&s.run(&["plan"]));
    assert!(
        plan.contains("~ bundle.web@local") && plan.contains("changed on the host: index.html"),
        "{plan}"
    );
    let offline = stdout(&s.run(&["plan", "--offline"]));
    assert!(
        offline.contains("No changes") && offline.contains("offline"),
        "offline plans do not look: {offline}"
    );
    s.apply();
    assert_eq!(s.read("out/web/index.html"), "hello from cairn\n");
    assert_eq!(
        s.read("out/web/extra.txt"),
        "mine\n",
        "files cairn did not ship are kept"
    );
}

#[test]
fn once_steps_and_replace() {
    let s = Sandbox::new();
    s.apply();
    s.edit(
        "Clusterfile",
        "run = \"echo init >> out/init.log\"",
        "run = \"echo init-v2 >> out/init.log\"",
    );
    let plan = stdout(&s.run(&["plan"]));
    assert!(
        plan.contains("No changes") && plan.contains("step.init@local  run changed"),
        "{plan}"
    );
    let out = s.run(&["apply", "--auto-approve", "--replace", "step.init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("-/+ step.init@local")
            && stdout(&out).contains("forced by --replace"),
        "{}",
        stdout(&out)
    );
    // Replace runs the recorded undo (which empties the log) and then the new command.
    assert_eq!(s.read("out/init.log"), "init-v2\n");
    let bad = s.run(&["plan", "--replace", "step.nope"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--replace step.nope: no such task"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let s = Sandbox::new();
    let out = s.run(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--auto-approve"), "{}", stderr(&out));
    assert!(!s.path("out").exists());
}

#[test]
fn json_outputs_are_parseable() {
    let s = Sandbox::new();
    let plan = s.plan_json();
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["summary"]["add"], 7);
    let out = s.run(&["apply", "--auto-approve", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(events.first().unwrap()["event"], "plan");
    assert_eq!(events.last().unwrap()["event"], "run_finished");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "task_finished")
            .count(),
        7
    );
    let list: serde_json::Value =
        serde_json::from_slice(&s.run(&["state", "list", "--json"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 7);
    let show = stdout(&s.run(&["state", "show", "step.version@local"]));
    assert!(show.contains("\"captured\": \"v1\""), "{show}");
    let missing = s.run(&["state", "show", "step.nope@local"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn graph_is_dot_with_every_edge() {
    let s = Sandbox::new();
    let out = s.run(&["graph"]);
    assert_eq!(out.status.code(), Some(0));
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph cairn {"), "{dot}");
    assert!(
        dot.contains("\"bundle.web@local\" -> \"step.install@local\";"),
        "{dot}"
    );
    assert!(
        dot.contains("\"step.version@local\" -> \"step.announce@local\";"),
        "{dot}"
    );
}

#[test]
fn limit_leaves_hosts_out() {
    let s = Sandbox::new();
    let out = s.run(&["plan", "--limit", "!local"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Left out by --limit: local"),
        "{}",
        stdout(&out)
    );
    let bad = s.run(&["plan", "--limit", "nowhere"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--limit nowhere: no host"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn independent_tasks_run_at_the_same_time() {
    // Each step waits until the other has started: run one after the other,
    // the first would give up and fail. No timing is measured.
    let s = Sandbox::new();
    let rendezvous = |me: &str, other: &str| {
        format!(
            "mkdir -p out && touch out/{me}-started && i=0; while [ ! -f out/{other}-started ]; do i=$((i+1)); [ $i -gt 160 ] && exit 7; sleep 0.05; done"
        )
    };
    let text = format!(
        "version = 1\nname = \"par\"\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[steps]]\nname = \"left\"\nrun = \"{}\"\n\n[[steps]]\nname = \"right\"\nrun = \"{}\"\n",
        rendezvous("left", "right"),
        rendezvous("right", "left")
    );
    s.write("Clusterfile", &text);
    s.apply();
    std::fs::remove_file(s.path("out/left-started")).unwrap();
    std::fs::remove_file(s.path("out/right-started")).unwrap();
    let serial = s.run(&[
        "apply",
        "--auto-approve",
        "--parallelism",
        "1",
        "--replace",
        "step.left",
        "--replace",
        "step.right",
    ]);
    assert_eq!(
        serial.status.code(),
        Some(1),
        "with --parallelism 1 they cannot meet"
    );
    assert!(
        stdout(&serial).contains("exited with code 7"),
        "{}",
        stdout(&serial)
    );
}

#[test]
fn archive_bundles_and_patch_overlays() {
    let s = Sandbox::new();
    // A .tar.zst bundle made here, with the tar and zstd crates cairn uses to read it.
    let file = std::fs::File::create(s.path("base.tar.zst")).unwrap();
    let encoder = zstd::stream::write::Encoder::new(file, 3)
        .unwrap()
        .auto_finish();
    let mut archive = tar::Builder::new(encoder);
    for (path, text) in [
        ("etc/app.conf", "from the archive\n"),
        ("etc/keep.conf", "kept\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive
            .append_data(&mut header, path, text.as_bytes())
            .unwrap();
    }
    archive.into_inner().unwrap();
    std::fs::create_dir_all(s.path("patch/etc")).unwrap();
    s.write("patch/etc/app.conf", "from the patch\n");
    s.write(
        "Clusterfile",
        "version = 1\nname = \"arch\"\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[bundles]]\nname = \"base\"\nsource = \"base.tar.zst\"\ndest = \"out/root\"\n\n\
         [[bundles]]\nname = \"fix\"\nkind = \"patch\"\nsource = \"patch\"\ndest = \"out/root\"\n",
    );
    s.apply();
    assert_eq!(
        s.read("out/root/etc/app.conf"),
        "from the patch\n",
        "the patch bundle wins"
    );
    assert_eq!(s.read("out/root/etc/keep.conf"), "kept\n");
    assert!(
        s.planned_actions().is_empty(),
        "no flip-flop between the bundle and its patch"
    );
    s.write("patch/etc/app.conf", "patched again\n");
    assert_eq!(
        s.planned_actions(),
        pairs(&[("bundle.fix@local", "update")])
    );
}

#[test]
fn ssh_hosts_plan_offline_and_fail_clearly_when_unreachable() {
    let s = Sandbox::new();
    // Port 1 on loopback: nothing listens there.
    s.write(
        "Clusterfile",
        "version = 1\nname = \"remote\"\n\n[[hosts]]\naddress = \"127.0.0.1:1\"\nroles = [\"node\"]\n\n[[steps]]\nname = \"hello\"\nrun = \"echo hi\"\n",
    );
    let offline = s.run(&["plan", "--offline"]);
    assert_eq!(offline.status.code(), Some(0), "{}", stderr(&offline));
    assert!(
        stdout(&offline).contains("+ step.hello@node0"),
        "{}",
        stdout(&offline)
    );
    let online = s.run(&["apply", "--auto-approve"]);
    assert_eq!(online.status.code(), Some(1));
    let text = stdout(&online) + &stderr(&online);
    assert!(
        text.contains("node0: root@127.0.0.1:1: connection refused; is sshd running there"),
        "{text}"
    );
    assert!(text.contains("1 host unreachable"), "{text}");
    assert!(text.contains("The reachable hosts match"), "{text}");

    let list = s.run(&["state", "list"]);
    assert!(
        stdout(&list).contains("No tasks recorded"),
        "{}",
        stdout(&list)
    );
}

#[test]
fn ctrl_c_lets_running_tasks_finish_and_starts_nothing_new() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"sh bin/install.sh\"",
        "run = \"touch ../slow-started && sleep 1 && sh bin/install.sh\"",
    );
    let child = s
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the slow step starts", || {
        s.path("out/slow-started").exists()
    });
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("interrupted: no new task starts"), "{text}");
    assert!(
        text.contains("step.install@local: created"),
        "the running task finished: {text}"
    );
    assert!(text.contains("Apply interrupted."), "{text}");
    assert_eq!(lines(&s.read("out/install.log")), 1);
    let left: Vec<String> = s.planned_actions().into_iter().map(|(t, _)| t).collect();
    assert!(
        left.contains(&"step.announce@local".to_string())
            && !left.contains(&"step.install@local".to_string()),
        "{left:?}"
    );
    s.apply();
    assert_eq!(
        lines(&s.read("out/install.log")),
        1,
        "not repeated after the interrupt"
    );
}

#[test]
fn a_captured_value_holding_a_secret_is_passed_on_but_never_stored() {
    let s = Sandbox::new();
    let secret = "pa55-WORD-1234";
    s.write(
        "Clusterfile",
        "version = 1\nname = \"cap\"\n\n[vars]\npw = { secret = \"env:CAIRN_TEST_PW\" }\n\n\
         [[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[steps]]\nname = \"mint\"\nrun = \"echo user:${pw}\"\ncapture = \"creds\"\n\n\
         [[steps]]\nname = \"use\"\nafter = [\"mint\"]\nrun = \"mkdir -p out && echo ${creds} > out/creds\"\n",
    );
    let run = |args: &[&str]| {
        s.command(args)
            .env("CAIRN_TEST_PW", secret)
            .output()
            .unwrap()
    };
    let first = run(&["apply", "--auto-approve"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(
        s.read("out/creds"),
        format!("user:{secret}\n"),
        "the consumer got the real value"
    );
    assert!(
        !s.state_text().contains(secret),
        "the state keeps it masked"
    );
    assert!(s.state_text().contains("\"captured_masked\": true"));
    // A later run that needs the value, without the producer rerunning, says how to get it.
    s.edit(
        "Clusterfile",
        "echo ${creds} > out/creds",
        "echo ${creds} >> out/creds",
    );
    let second = run(&["apply", "--auto-approve"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stdout(&second).contains("`${creds}` has no value")
            && stdout(&second).contains("--replace"),
        "{}",
        stdout(&second)
    );
    let third = run(&["apply", "--auto-approve", "--replace", "step.mint"]);
    assert_eq!(third.status.code(), Some(0), "{}", stdout(&third));
    assert_eq!(
        s.read("out/creds"),
        format!("user:{secret}\nuser:{secret}\n")
    );
}

#[test]
fn a_full_disk_fails_the_task_and_leaves_nothing_half_written() {
    // Needs root for a tmpfs in a private mount namespace (CI runs as root).
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    }
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("big")).unwrap();
    let noise: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(s.path("big/one.bin"), &noise).unwrap();
    std::fs::write(
        s.path("big/two.bin"),
        noise.iter().rev().copied().collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::create_dir_all(s.path("small")).unwrap();
    s.write(
        "Clusterfile",
        "version = 1\nname = \"full\"\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[bundles]]\nname = \"big\"\nsource = \"big\"\ndest = \"small\"\n\n\
         [[steps]]\nname = \"after\"\nafter = [\"big\"]\nrun = \"touch ran\"\n\n\
         [[steps]]\nname = \"other\"\nrun = \"touch other-ran\"\n",
    );
    // The mount lives only in the namespace of this one command.
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs small && echo keep > small/existing && '{}' apply --auto-approve; echo \"exit=$?\"; ls -A small",
        env!("CARGO_BIN_EXE_cairn")
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .current_dir(s.dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare runs");
    let text = stdout(&out);
    assert!(
        text.contains("No space left on device"),
        "{text}\n{}",
        stderr(&out)
    );
    assert!(text.contains("exit=1"), "{text}");
    assert!(
        text.trim_end().ends_with("existing"),
        "only the file that was there is left, no staging, no partial file:\n{text}"
    );
    assert!(!s.path("ran").exists(), "the dependent step was skipped");
    assert!(s.path("other-ran").exists(), "independent work went on");
    assert!(
        s.planned_actions()
            .iter()
            .any(|(t, a)| t == "bundle.big@local" && a == "create"),
        "the next apply retries it"
    );
}

#[test]
fn a_first_saved_plan_with_secrets_applies() {
    let s = Sandbox::new();
    s.add_token_secret();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"echo v1 # ${token}\"",
    );
    let run = |args: &[&str]| {
        s.command(args)
            .env("CAIRN_TEST_TOKEN", "t0k3n")
            .output()
            .unwrap()
    };
    let plan = run(&["plan", "-o", "first.plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let apply = run(&["apply", "first.plan"]);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "the salt keying the secret is the same at plan and apply: {}",
        stderr(&apply)
    );
}

#[test]
fn undo_runs_in_the_steps_working_directory() {
    let s = Sandbox::new();
    let step = "[[steps]]\nname = \"mark\"\nafter = [\"web\"]\ncwd = \"out/web\"\nrun = \"touch marker\"\nundo = \"rm marker\"\n";
    let with_step = format!("{}\n{step}", s.read("Clusterfile"));
    s.write("Clusterfile", &with_step);
    s.apply();
    assert!(s.path("out/web/marker").exists());
    // --replace undoes first, in the same folder the step runs in.
    let replaced = s.run(&["apply", "--auto-approve", "--replace", "step.mark"]);
    assert_eq!(replaced.status.code(), Some(0), "{}", stdout(&replaced));
    assert!(s.path("out/web/marker").exists());
    s.write("Clusterfile", &with_step.replace(step, ""));
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the undo found its file: {}",
        stdout(&out)
    );
    assert!(
        !s.path("out/web/marker").exists(),
        "undo ran where the step ran"
    );
}

#[test]
fn an_adopted_step_can_be_undone_where_it_would_have_run() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("out/web")).unwrap();
    s.write("out/web/ready-local", "");
    let step = "[[steps]]\nname = \"ready\"\ncwd = \"out/web\"\nrun = \"touch ready-${host.name}\"\ncheck = \"test -f ready-${host.name}\"\nundo = \"rm ready-${host.name}\"\n";
    let with_step = format!("{}\n{step}", s.read("Clusterfile"));
    s.write("Clusterfile", &with_step);
    let plan = stdout(&s.run(&["plan"]));
    assert!(
        plan.contains("= step.ready@local"),
        "adopted, since its check passes: {plan}"
    );
    s.apply();
    s.write("Clusterfile", &with_step.replace(step, ""));
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        !s.path("out/web/ready-local").exists(),
        "the undo had its folder and its values"
    );
}
