//! `cairn apply`: converging and the no-op re-apply, a failing step and
//! what it skips, `--fail-fast`, the lock, a killed or interrupted apply and
//! its resume, timeouts and retries, parallelism, `once` and `--replace`,
//! undo, archive and patch bundles, a full disk, a lost state rebuilt from
//! the receipts.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::sandbox::Sandbox;
use crate::support::{events, finished, lines, pairs, stderr, stdout, wait_until};

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
    // init runs beside the slow step (both wait only on install): let it be
    // recorded first, so that the slow step is the only task in flight.
    wait_until("init is recorded", || {
        std::fs::read_to_string(s.path(".cairn/fixture/journal.jsonl"))
            .is_ok_and(|j| j.contains("step.init@local"))
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
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT) };
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
#[ignore = "needs root for a private tmpfs; scripts/test runs it"]
fn a_full_disk_fails_the_task_and_leaves_nothing_half_written() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "this test needs root to mount a small tmpfs in a private mount namespace; \
         run it as root, as scripts/test does"
    );
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("big")).unwrap();
    let noise: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
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
        .current_dir(s.root())
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

#[test]
fn fail_fast_skips_what_had_not_started_and_runs_nothing_after_the_failure() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("out")).unwrap();
    // `slow` runs beside `bad` and goes on only once the failure is printed:
    // it is running when the failure stops the run, and what waits for it
    // has not started.
    let release = "i=0; while [ ! -f out/release ]; do i=$((i+1)); [ $i -gt 400 ] && exit 7; sleep 0.05; done";
    s.write(
        "Clusterfile",
        &format!(
            "version = 1\nname = \"ff\"\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
             [[steps]]\nname = \"bad\"\nrun = \"echo 'disk on fire' >&2; exit 3\"\n\n\
             [[steps]]\nname = \"slow\"\nrun = \"{release}; touch out/slow-done\"\n\n\
             [[steps]]\nname = \"later\"\nafter = [\"slow\"]\nrun = \"touch out/later-ran\"\n\n\
             [[steps]]\nname = \"last\"\nafter = [\"later\"]\nrun = \"touch out/last-ran\"\n"
        ),
    );
    let mut child = s
        .command(&["apply", "--auto-approve", "--fail-fast"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("step.bad@local: exited with code 3") {
            s.write("out/release", "");
        }
        text.push_str(&line);
        text.push('\n');
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1), "{text}\n{err}");
    assert!(
        text.contains("step.bad@local: exited with code 3"),
        "{text}"
    );
    assert!(text.contains("disk on fire"), "{text}");
    assert!(
        text.contains("step.slow@local: created"),
        "the running task finished: {text}"
    );
    assert!(
        text.contains(
            "step.later@local: skipped, not started: step.bad@local failed and --fail-fast stops the run"
        ),
        "not started, naming the failed task: {text}"
    );
    assert!(text.contains("step.last@local: skipped"), "{text}");
    assert!(text.contains("1 done, 1 failed, 2 skipped"), "{text}");
    assert!(s.path("out/slow-done").exists());
    assert!(
        !s.path("out/later-ran").exists(),
        "nothing started after the failure"
    );
    assert!(
        !s.path("out/last-ran").exists(),
        "nothing started after the failure"
    );
    assert_eq!(
        s.planned_actions(),
        pairs(&[
            ("step.bad@local", "create"),
            ("step.later@local", "create"),
            ("step.last@local", "create")
        ]),
        "the finished task was recorded"
    );
}

#[test]
fn a_lost_state_is_rebuilt_from_the_receipts_without_running_anything() {
    let s = Sandbox::new();
    s.apply();
    let receipts = s.path(".cairn/fixture/receipts/local");
    assert!(
        receipts.join("step.init@local.json").is_file(),
        "local hosts keep receipts under the state folder"
    );
    let markers = [
        "out/install.log",
        "out/announce",
        "out/init.log",
        "out/independent.log",
    ];
    let before: Vec<String> = markers.iter().map(|m| s.read(m)).collect();
    // The state is lost; the receipts are not.
    std::fs::remove_file(s.path(".cairn/fixture/state.json")).unwrap();
    let _ = std::fs::remove_file(s.path(".cairn/fixture/journal.jsonl"));
    // A `once` step is not run twice, even changed: any receipt of it will do.
    s.edit(
        "Clusterfile",
        "run = \"echo init >> out/init.log\"",
        "run = \"echo init-v2 >> out/init.log\"",
    );

    let plan = s.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(
        text.contains("Already converged, recorded without running:"),
        "{text}"
    );
    for step in ["install", "version", "announce", "init", "independent"] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("= step.{step}@local"))
                    && l.contains("done on the host by")
                    && l.contains("(its receipt): recorded without running")),
            "step.{step} is adopted from its receipt: {text}"
        );
    }

    let out = s.run(&["--json", "apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let events = events(&out);
    for step in ["install", "version", "announce", "init", "independent"] {
        let task = format!("step.{step}@local");
        assert_eq!(
            finished(&events, &task).map(|e| &e["outcome"]),
            Some(&serde_json::json!("adopted")),
            "{task}: {events:?}"
        );
    }
    let after: Vec<String> = markers.iter().map(|m| s.read(m)).collect();
    assert_eq!(after, before, "no step ran again");
    assert_eq!(s.read("out/init.log"), "init\n", "the once step ran once");

    assert_eq!(
        s.run(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0),
        "the state is whole again"
    );
}
