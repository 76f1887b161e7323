//! `cairn apply` when it goes right: converging and the no-op re-apply,
//! parallelism, `once` and `--replace`, undo, archive and patch bundles, a
//! lost state rebuilt from the receipts. When it goes wrong: `failures`.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;

use crate::support::sandbox::Sandbox;
use crate::support::{events, finished, lines, pairs, stderr, stdout};

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

/// A host that holds none of cairn's receipts (reinstalled, or its cairn
/// folder wiped) gets its tasks done again, except a `once` step; after
/// that apply the plan is clean.
#[test]
fn a_wiped_host_is_done_again_except_its_once_steps() {
    let s = Sandbox::new();
    assert_eq!(s.run(&["apply", "--auto-approve"]).status.code(), Some(0));
    std::fs::remove_dir_all(s.path(".cairn/fixture/receipts/local")).unwrap();
    std::fs::remove_dir_all(s.path("out")).unwrap();
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::stderr(&out)
    );
    assert!(s.path("out/motd").exists(), "shipped again");
    assert!(s.path("out/announce").exists(), "run again");
    assert!(
        !s.path("out/init.log").exists(),
        "the once step is not run again"
    );
    let plan = s.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        crate::support::stdout(&plan)
    );
}

#[test]
fn with_one_slot_the_task_with_the_longest_chain_behind_it_starts_first() {
    // `short` comes first in the file; `head` has two tasks waiting on it.
    let s = Sandbox::new();
    s.write(
        "Clusterfile",
        "version = 1\nname = \"crit\"\n\n[[hosts]]\naddress = \"localhost\"\nname = \"local\"\ntransport = \"local\"\n\n\
         [[steps]]\nname = \"short\"\nrun = \"true\"\n\n\
         [[steps]]\nname = \"head\"\nrun = \"true\"\n\n\
         [[steps]]\nname = \"middle\"\nafter = [\"head\"]\nrun = \"true\"\n\n\
         [[steps]]\nname = \"tail\"\nafter = [\"middle\"]\nrun = \"true\"\n",
    );
    let out = s.run(&["--json", "apply", "--auto-approve", "--parallelism", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", s.transcript(&out));
    let started: Vec<String> = events(&out)
        .iter()
        .filter(|e| e["event"] == "task_started")
        .map(|e| e["task"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        started,
        [
            "step.head@local",
            "step.middle@local",
            "step.short@local",
            "step.tail@local"
        ],
        "the longest chain first; equal chains (`short`, `tail`: one task each) oldest first"
    );
}

#[test]
fn a_serial_step_runs_on_its_hosts_one_at_a_time_in_host_order() {
    // Each run marks itself busy for a moment: two at once would see the
    // other's mark and fail.
    let s = Sandbox::new();
    let host = |n: &str| {
        format!("[[hosts]]\naddress = \"localhost\"\nname = \"{n}\"\ntransport = \"local\"\n\n")
    };
    let hosts = [host("c"), host("a"), host("b")].concat();
    s.write(
        "Clusterfile",
        &format!(
            "version = 1\nname = \"serial\"\n\n{hosts}\
             [[steps]]\nname = \"join\"\nserial = 1\n\
             run = \"mkdir -p out && [ ! -e out/busy ] || exit 9; touch out/busy; sleep 0.3; echo ${{host.name}} >> out/order; rm out/busy\"\n"
        ),
    );
    let out = s.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", s.transcript(&out));
    assert_eq!(
        s.read("out/order"),
        "c\na\nb\n",
        "one at a time, in the order the hosts are listed"
    );

    s.write(
        "Clusterfile",
        &s.read("Clusterfile").replace("serial = 1", "serial = 0"),
    );
    let out = s.run(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid serial 0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_hosts_of_a_role_are_built_ins_and_a_change_reruns_only_what_reads_them() {
    let s = Sandbox::new();
    let host = |name: &str, role: &str| {
        format!(
            "[[hosts]]\naddress = \"localhost\"\nname = \"{name}\"\ntransport = \"local\"\nroles = [\"{role}\"]\n\n"
        )
    };
    let clusterfile = |hosts: &str| {
        format!(
            "version = 1\nname = \"roles\"\n\n{hosts}\
             [[steps]]\nname = \"lb\"\non = \"w\"\nrun = \"mkdir -p out && echo ${{roles.m.names}} > out/lb-${{host.name}}\"\n\n\
             [[steps]]\nname = \"peers\"\non = \"w\"\nrun = \"mkdir -p out && echo ${{roles.w.names}} > out/peers-${{host.name}}\"\n\n\
             [[files]]\nname = \"etc-hosts\"\non = \"w\"\ntemplate = true\ndest = \"out/hosts-${{host.name}}\"\n\
             content = \"{{% for h in roles.m %}}{{{{ h.address }}}} {{{{ h.name }}}}\\n{{% endfor %}}\"\n"
        )
    };
    let two_masters = host("m1", "m") + &host("m2", "m") + &host("w1", "w");
    s.write("Clusterfile", &clusterfile(&two_masters));
    s.apply();
    assert_eq!(s.read("out/lb-w1"), "m1,m2\n");
    assert_eq!(s.read("out/peers-w1"), "w1\n");
    assert_eq!(s.read("out/hosts-w1"), "localhost m1\nlocalhost m2\n");

    // A third master: what reads the masters reruns on w1; what reads the workers does not.
    s.write(
        "Clusterfile",
        &clusterfile(&(two_masters + &host("m3", "m"))),
    );
    let planned: Vec<String> = s
        .planned_actions()
        .into_iter()
        .filter(|(task, _)| task.ends_with("@w1"))
        .map(|(task, action)| format!("{task} {action}"))
        .collect();
    assert_eq!(planned, ["file.etc-hosts@w1 update", "step.lb@w1 update"]);
    s.apply();
    assert_eq!(s.read("out/lb-w1"), "m1,m2,m3\n");

    // A role no host has is an error that names the roles there are.
    s.write(
        "Clusterfile",
        &s.read("Clusterfile")
            .replace("roles.m.names", "roles.mm.names"),
    );
    let out = s.run(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(
        said.contains("no host has the role `mm`") && said.contains("did you mean `m`?"),
        "{said}"
    );
}

#[test]
fn a_bundles_dest_is_a_built_in_and_a_moved_bundle_reruns_what_reads_it() {
    let s = Sandbox::new();
    s.edit(
        "Clusterfile",
        "run = \"echo v1\"",
        "run = \"test -d ${bundle.web.dest} && echo ${bundle.web.dest}\"\nafter = [\"web\"]",
    );
    s.apply();
    assert_eq!(
        s.read("out/announce"),
        "hello out/web\n",
        "the step sees where the bundle landed (and captures it for `announce`)"
    );
    s.edit("Clusterfile", "dest = \"out/web\"", "dest = \"out/web2\"");
    let planned: Vec<String> = s.planned_actions().into_iter().map(|(t, _)| t).collect();
    assert!(
        planned.contains(&"step.version@local".to_string()),
        "{planned:?}"
    );

    s.edit(
        "Clusterfile",
        "${bundle.web.dest} &&",
        "${bundle.wbe.dest} &&",
    );
    let out = s.run(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did you mean `bundle.web.dest`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_range_selector_that_selects_no_host_leaves_its_step_without_tasks() {
    let s = Sandbox::new();
    let file = |masters: &[&str]| {
        let mut text = String::from("version = 1\nname = \"ranges\"\n\n");
        for name in masters {
            let _ = write!(
                text,
                "[[hosts]]\naddress = \"localhost\"\nname = \"{name}\"\ntransport = \"local\"\nroles = [\"master\"]\n\n"
            );
        }
        text.push_str(
            "[[steps]]\nname = \"first\"\non = \"master[0]\"\nrun = \"mkdir -p out && echo ${host.name} >> out/first\"\n\n\
             [[steps]]\nname = \"others\"\non = \"master[1:]\"\nserial = 1\nafter = [\"first@*\"]\nrun = \"echo ${host.name} >> out/others\"\n\n\
             [[steps]]\nname = \"last\"\non = \"master[0]\"\nafter = [\"others@*\"]\nrun = \"echo done >> out/last\"\n",
        );
        text
    };
    s.write("Clusterfile", &file(&["m0"]));
    // `last` waits for `first` through `others`, which has no task.
    let graph = s.command(&["graph", "--json"]).output().unwrap();
    let graph: serde_json::Value = serde_json::from_slice(&graph.stdout).unwrap();
    let last = graph["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "step.last@m0")
        .expect("step.last@m0 in the graph");
    assert_eq!(last["after"], serde_json::json!(["step.first@m0"]));
    let one = s.command(&["apply", "--auto-approve"]).output().unwrap();
    assert_eq!(
        one.status.code(),
        Some(0),
        "{}{}",
        stdout(&one),
        stderr(&one)
    );
    assert_eq!(s.read("out/first"), "m0\n");
    assert!(!s.path("out/others").exists(), "no other master");
    assert_eq!(s.read("out/last"), "done\n");
    s.write("Clusterfile", &file(&["m0", "m1", "m2"]));
    let three = s.command(&["apply", "--auto-approve"]).output().unwrap();
    assert_eq!(
        three.status.code(),
        Some(0),
        "{}{}",
        stdout(&three),
        stderr(&three)
    );
    assert_eq!(s.read("out/others"), "m1\nm2\n");
}
