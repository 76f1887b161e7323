//! At most `--parallelism` connections at once: a fleet larger than the
//! limit is probed and worked on in turn, every host still converges, and
//! a host closed after its probe is checked again when its turn comes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

/// The `ssh -M` processes whose parent is `cairn` (a pid): cairn's master
/// connections (not the short `ssh -G` that reads the user's ssh config).
fn ssh_children(cairn: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                return false;
            };
            // `pid (comm) state ppid ...`: comm may hold spaces, so split after it.
            let Some((comm_part, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = comm_part.split_once('(').map_or("", |(_, c)| c);
            let parent = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            let master = std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|line| line.split(|&b| b == 0).any(|arg| arg == b"-M"));
            comm == "ssh" && parent == Some(cairn) && master
        })
        .count()
}

/// Runs `c`'s cairn with `args`, counting its ssh processes every few
/// milliseconds; returns what it printed and the most seen at once.
fn run_counting(c: &Cluster, args: &[&str]) -> (Output, usize) {
    let child = c
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn starts");
    let pid = child.id();
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (most, done) = (most.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                most.fetch_max(ssh_children(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    let out = child.wait_with_output().expect("cairn ends");
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (out, most.load(Ordering::Relaxed))
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_fleet_larger_than_the_parallelism_never_holds_more_connections_and_converges() {
    // Each task takes a moment, so connections overlap if nothing bounds them.
    let c = Cluster::with(
        5,
        "",
        "\n[[steps]]\nname = \"linger\"\nafter = [\"install\"]\nrun = \"sleep 0.3\"\n",
    );
    let (out, most) = run_counting(&c, &["apply", "--auto-approve", "--parallelism", "2"]);
    assert_ok(&out);
    assert_converged(&c, 0..5);
    assert!(
        (1..=2).contains(&most),
        "at most 2 ssh connections at once with --parallelism 2, saw {most}"
    );

    let (plan, most) = run_counting(&c, &["plan", "--detailed-exitcode", "--parallelism", "2"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "every host probed, nothing to do:\n{}\n{}",
        stdout(&plan),
        stderr(&plan)
    );
    assert!((1..=2).contains(&most), "plan: saw {most} at once");

    // Ad hoc commands too: each host connected in its turn, let go when done.
    let (exec, most) = run_counting(
        &c,
        &[
            "exec",
            "--on",
            "master,worker",
            "--parallelism",
            "2",
            "sleep 0.3",
        ],
    );
    assert_ok(&exec);
    assert!((1..=2).contains(&most), "exec: saw {most} at once");

    // Drift on the last host, found through a window of 2.
    c.host(4)
        .write("/opt/app/current/conf/a.conf", "alpha = 99\n");
    let (drift, most) = run_counting(&c, &["--json", "drift", "--parallelism", "2"]);
    assert_eq!(drift.status.code(), Some(2), "{}", stderr(&drift));
    assert!(stdout(&drift).contains("host4"), "{}", stdout(&drift));
    assert!((1..=2).contains(&most), "drift: saw {most} at once");

    // Repaired with one connection at a time: every host closed and
    // reopened in turn, its lock taken again and its probe checked.
    let (out, most) = run_counting(&c, &["apply", "--auto-approve", "--parallelism", "1"]);
    assert_ok(&out);
    assert_eq!(most, 1, "one connection at a time");
    assert_converged(&c, 0..5);
    let again = c.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    // Every lock was released cleanly: nothing stale is taken over next time.
    assert!(
        !stderr(&again).contains("stale lock") && !stdout(&again).contains("stale lock"),
        "{}",
        stderr(&again)
    );
}

#[test]
#[ignore = "needs root, util-linux and openssh-server: run by scripts/test"]
fn a_host_closed_after_its_probe_and_changed_before_its_turn_is_refused() {
    let c = Cluster::with(2, "", "");
    let tampered = |i: usize| c.host(i).path("/opt/app/current/conf/b.conf");
    // A step on this machine that, in round 2, changes a shipped file on
    // both hosts after they were probed; `use` on each host waits for it.
    let text = format!(
        r#"version = 1
name = "turns"

{hosts}
[[hosts]]
name = "here"
address = "localhost"
transport = "local"
roles = ["control"]

[vars]
round = "1"

[[bundles]]
name = "app"
source = "app"
dest = "/opt/app/current"
on = ["master", "worker"]

[[steps]]
name = "tamper"
on = ["control"]
run = "if [ ${{round}} = 2 ]; then echo tampered >> {a}; echo tampered >> {b}; fi"

[[steps]]
name = "use"
on = ["master", "worker"]
after = ["app", "tamper@*"]
run = "echo ${{round}} > /opt/app/used"
"#,
        hosts = c.hosts.clusterfile_hosts(""),
        a = tampered(0).display(),
        b = tampered(1).display(),
    );
    c.edit("Clusterfile", &text);
    let (events, code, out) = c.apply_events(&["--parallelism", "1"]);
    assert_eq!(code, Some(0), "{}\n{}", stdout(&out), stderr(&out));
    for task in ["step.tamper@here", "step.use@host0", "step.use@host1"] {
        assert!(finished(&events, task).is_some(), "{task} ran: {events:?}");
    }

    c.edit(
        "Clusterfile",
        &text.replace("round = \"1\"", "round = \"2\""),
    );
    // `--diff` shows the whole plan before anything runs, so every host is
    // probed first (a streamed apply would probe a host only when a
    // connection is free, here after the tamper, and plan the repair).
    let (events, code, out) = c.apply_events(&["--parallelism", "1", "--diff"]);
    assert_eq!(code, Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let failures: BTreeSet<&str> = ["step.use@host0", "step.use@host1"]
        .into_iter()
        .filter(|task| failed(&events, task).is_some())
        .collect();
    assert!(
        !failures.is_empty(),
        "the host closed after its probe was changed before its turn: refused\n{}",
        stdout(&out)
    );
    let all_failed = events
        .iter()
        .filter(|e| e["event"] == "task_failed")
        .count();
    assert_eq!(all_failed, failures.len(), "only `use` fails: {events:?}");
    for task in &failures {
        let host = &task["step.use@".len()..];
        let i: usize = host["host".len()..].parse().unwrap();
        assert_eq!(
            c.host(i).read("/opt/app/used").as_deref(),
            Some("1\n"),
            "nothing was done on {host}"
        );
    }
    let said = stdout(&out);
    assert!(
        said.contains("changed between its probe and its turn in this apply")
            && said.contains("files cairn shipped there"),
        "{said}"
    );
    // The next plan sees the change and repairs it; then all converges.
    c.edit(
        "Clusterfile",
        &text.replace("round = \"1\"", "round = \"3\""),
    );
    let (_, code, out) = c.apply_events(&[]);
    assert_eq!(code, Some(0), "{}\n{}", stdout(&out), stderr(&out));
    for i in 0..2 {
        assert_eq!(c.host(i).read("/opt/app/used").as_deref(), Some("3\n"));
        assert_eq!(
            c.host(i).read("/opt/app/current/conf/b.conf").as_deref(),
            Some("beta = 2\n")
        );
    }
}
