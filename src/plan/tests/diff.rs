//! Unit tests of `plan::diff`, kept beside it in a file of their own.

use super::DiffOptions;
use crate::ids::TaskId;
use crate::ids::TaskKey;
use crate::plan::{ChangeKind, Observation, Refresh, Replacements};
use crate::state::{JournalEntry, PendingRerun, RecordDetail};
use crate::transport::{Observed, ReceiptInfo};

/// Two SSH hosts (nothing connects), a bundle, a file, and steps that
/// show how change flows: `hello` reads `${greeting}` and its host's
/// `${label}`; `announce` waits for it on the same host, `collect` (on
/// the master) for it on every host; `init` is a `once` step that reads
/// `${greeting}` and has an undo, and `join` waits for it across hosts.
use crate::plan::test_world as world;

use world::*;

#[test]
fn the_first_plan_creates_everything_on_new_hosts_then_new_tasks_are_named() {
    let mut world = World::new(BASE);
    let (graph, plan) = world.plan();
    assert_eq!(plan.changes.len(), graph.len());
    for c in &plan.changes {
        assert_eq!(
            (c.kind, c.reasons.as_slice()),
            (ChangeKind::Create, ["new host".to_string()].as_slice()),
            "{}",
            c.id
        );
    }
    world.apply(&graph, &plan);

    world.fixture.rewrite(&edited(&[
        (
            "[[bundles]]",
            "[[hosts]]\naddress = \"10.0.0.3\"\nname = \"w0\"\nroles = [\"web\"]\n\
             vars = { label = \"w\" }\n\n[[bundles]]",
        ),
        (
            "run = \"echo collected\"\n",
            "run = \"echo collected\"\n\n[[steps]]\nname = \"extra\"\nrun = \"true\"\n",
        ),
    ]));
    let (_, plan) = world.plan();
    assert_eq!(
        outline(&plan),
        [
            "create bundle.web@w0: new host",
            "create file.motd@w0: new host",
            "create step.install@w0: new host",
            "create step.hello@w0: new host",
            "create step.announce@w0: new host",
            "update step.collect@m0: now waits for step.hello@w0",
            "create step.extra@m0: new task",
            "create step.extra@n0: new task",
            "create step.extra@w0: new host",
        ]
    );
}

#[test]
fn an_unchanged_cluster_plans_nothing() {
    let mut world = World::new(BASE);
    world.converge();
    let (graph, plan) = world.plan();
    assert_eq!(plan.changes.len(), graph.len());
    for c in &plan.changes {
        assert_eq!(c.kind, ChangeKind::Noop, "{}", c.id);
        assert!(c.reasons.is_empty() && c.ignored.is_empty(), "{}", c.id);
        assert_eq!(
            c.key.as_ref(),
            Some(world.recorded_key(c.id.as_str())),
            "{}",
            c.id
        );
    }
    assert_eq!(plan.summary().unchanged, graph.len());
}

#[test]
fn a_changed_clusterfile_plans_exactly_what_changed() {
    struct Case {
        name: &'static str,
        edits: &'static [(&'static str, &'static str)],
        plan: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "a var: its readers, their dependents; the once step ignores it",
            edits: &[GREETING_B],
            plan: &[
                r#"update file.motd@m0: content changed; var greeting changed ("a" -> "b")"#,
                r#"update file.motd@n0: content changed; var greeting changed ("a" -> "b")"#,
                r#"update step.hello@m0: var greeting changed ("a" -> "b")"#,
                r#"update step.hello@n0: var greeting changed ("a" -> "b")"#,
                "update step.announce@m0: upstream task changed (step.hello@m0)",
                "update step.announce@n0: upstream task changed (step.hello@n0)",
                r#"noop step.init@m0 [ignored: var greeting changed ("a" -> "b")]"#,
                "update step.collect@m0: upstream task changed (step.hello@m0, step.hello@n0)",
            ],
        },
        Case {
            name: "a file's dest",
            edits: &[("dest = \"/etc/motd\"", "dest = \"/etc/motd.d/motd\"")],
            plan: &[
                "replace file.motd@m0: dest changed (/etc/motd -> /etc/motd.d/motd)",
                "replace file.motd@n0: dest changed (/etc/motd -> /etc/motd.d/motd)",
            ],
        },
        Case {
            name: "a bundle's dest, and everything after it but the once step",
            edits: &[("dest = \"/srv/web\"", "dest = \"/srv/www\"")],
            plan: &[
                "replace bundle.web@m0: dest changed (/srv/web -> /srv/www)",
                "replace bundle.web@n0: dest changed (/srv/web -> /srv/www)",
                "update step.install@m0: upstream task changed (bundle.web@m0)",
                "update step.install@n0: upstream task changed (bundle.web@n0)",
                "update step.hello@m0: upstream task changed (step.install@m0)",
                "update step.hello@n0: upstream task changed (step.install@n0)",
                "update step.announce@m0: upstream task changed (step.hello@m0)",
                "update step.announce@n0: upstream task changed (step.hello@n0)",
                "noop step.init@m0 [ignored: upstream task changed (step.install@m0)]",
                "update step.collect@m0: upstream task changed (step.hello@m0, step.hello@n0)",
            ],
        },
        Case {
            name: "steps removed: destroyed newest first, undone where they can be",
            edits: &[(ANNOUNCE, ""), (INIT, ""), (JOIN, "")],
            plan: &[
                "destroy step.join@n0: no longer in the Clusterfile; no undo: only forgotten",
                "destroy step.init@m0: no longer in the Clusterfile; runs its undo",
                "destroy step.announce@n0: no longer in the Clusterfile; no undo: only forgotten",
                "destroy step.announce@m0: no longer in the Clusterfile; no undo: only forgotten",
            ],
        },
        Case {
            name: "a host removed: all its tasks, newest first",
            edits: &[(N0, ""), (JOIN, "")],
            plan: &[
                "update step.collect@m0: no longer waits for step.hello@n0",
                "destroy step.join@n0: host left the Clusterfile; no undo: only forgotten",
                "destroy step.announce@n0: host left the Clusterfile; no undo: only forgotten",
                "destroy step.hello@n0: host left the Clusterfile; no undo: only forgotten",
                "destroy step.install@n0: host left the Clusterfile; no undo: only forgotten",
                "destroy file.motd@n0: host left the Clusterfile; removes the files it shipped",
                "destroy bundle.web@n0: host left the Clusterfile; removes the files it shipped",
            ],
        },
    ];
    for case in cases {
        let mut world = World::new(BASE);
        world.converge();
        world.fixture.rewrite(&edited(case.edits));
        let (_, plan) = world.plan();
        assert_eq!(outline(&plan), case.plan, "{}", case.name);
    }
}

#[test]
fn a_once_step_keeps_its_key_until_replaced() {
    let mut world = World::new(BASE);
    world.converge();
    world.fixture.rewrite(&edited(&[GREETING_B]));
    let graph = world.graph();

    let plan = world.diff(&graph, &Refresh::default(), &DiffOptions::default());
    let init = change(&plan, "step.init@m0");
    assert_eq!(init.kind, ChangeKind::Noop);
    assert_eq!(init.ignored, [r#"var greeting changed ("a" -> "b")"#]);
    assert_eq!(init.key.as_ref(), Some(world.recorded_key("step.init@m0")));
    assert_eq!(
        init.inputs.as_ref(),
        Some(&world.state.tasks[&id("step.init@m0")].inputs),
        "the record's inputs go on with its key"
    );
    let join = change(&plan, "step.join@n0");
    assert_eq!((join.kind, join.reasons.len()), (ChangeKind::Noop, 0));
    assert_eq!(join.key.as_ref(), Some(world.recorded_key("step.join@n0")));

    let replace = Replacements::new(&["step.init".to_string()], &graph).expect("known");
    let options = DiffOptions {
        replace,
        ..DiffOptions::default()
    };
    let plan = world.diff(&graph, &Refresh::default(), &options);
    let lines = outline(&plan);
    let about_init: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| l.contains("init") || l.contains("join"))
        .collect();
    assert_eq!(
        about_init,
        [
            r#"replace step.init@m0: forced by --replace; var greeting changed ("a" -> "b")"#,
            "update step.join@n0: upstream task changed (step.init@m0)",
        ]
    );
}

#[test]
fn what_refresh_finds_changed_on_a_host_is_drift() {
    let mut world = World::new(BASE);
    world.converge();
    let as_shipped = match &world.state.tasks[&id("file.motd@m0")].detail {
        RecordDetail::File { shipped, .. } => shipped.hash.clone(),
        other => panic!("a file record: {other:?}"),
    };
    let files = |found: &[(&str, Observed)]| {
        Observation::Files(
            found
                .iter()
                .map(|(path, o)| ((*path).to_string(), o.clone()))
                .collect(),
        )
    };
    let edited_by_hand = Observed::Hashed("0".repeat(64));
    let mut refresh = Refresh::default();
    for (task, observation) in [
        (
            "bundle.web@m0",
            files(&[
                ("index.html", edited_by_hand.clone()),
                ("install.sh", Observed::Unchanged),
            ]),
        ),
        ("bundle.web@n0", files(&[("index.html", Observed::Missing)])),
        ("file.motd@m0", files(&[("", Observed::Hashed(as_shipped))])),
        ("file.motd@n0", files(&[("", edited_by_hand)])),
        ("step.hello@m0", check(1)),
        ("step.hello@n0", check(0)),
    ] {
        refresh.observations.insert(id(task), observation);
    }
    let graph = world.graph();
    let plan = world.diff(&graph, &refresh, &DiffOptions::default());
    // The keys did not change, so nothing downstream reruns.
    assert_eq!(
        outline(&plan),
        [
            "update bundle.web@m0 (drifted): changed on the host: index.html",
            "update bundle.web@n0 (drifted): missing on the host: index.html",
            "update file.motd@n0 (drifted): changed on the host: /etc/motd",
            "update step.hello@m0 (drifted): check failed on the host (exit 1)",
        ]
    );
}

/// One host; steps with and without a check, a capture, `once`.
const STEPS: &str = r#"version = 1
name = "t"

[[hosts]]
address = "10.0.0.1"
name = "h0"

[[steps]]
name = "ready"
run = "true"
check = "true"

[[steps]]
name = "captures"
run = "echo v1"
check = "true"
capture = "version"

[[steps]]
name = "failing"
run = "true"
check = "false"

[[steps]]
name = "plain"
run = "true"

[[steps]]
name = "seeded"
run = "true"
once = true
"#;

/// A `check` that exited with `code`, as refresh reports it.
fn check(code: i32) -> Observation {
    Observation::Check {
        passed: code == 0,
        code: Some(code),
    }
}

#[test]
fn a_step_that_never_ran_is_adopted_when_its_check_passes_and_it_captures_nothing() {
    let mut world = World::new(STEPS);
    let mut refresh = Refresh::default();
    for (task, code) in [
        ("step.ready@h0", 0),
        ("step.captures@h0", 0),
        ("step.failing@h0", 1),
    ] {
        refresh.observations.insert(id(task), check(code));
    }
    let graph = world.graph();
    let plan = world.diff(&graph, &refresh, &DiffOptions::default());
    assert_eq!(
        outline(&plan),
        [
            "noop step.ready@h0 (adopt): check passes: already converged, recorded without running",
            "create step.captures@h0: new host",
            "create step.failing@h0: new host",
            "create step.plain@h0: new host",
            "create step.seeded@h0: new host",
        ]
    );
    assert!(plan.adopts());
    world.apply(&graph, &plan);
    let ready = change(&plan, "step.ready@h0");
    assert_eq!(
        Some(world.recorded_key("step.ready@h0")),
        ready.key.as_ref()
    );
}

#[test]
fn a_step_that_never_ran_here_is_adopted_from_its_receipt_on_the_host() {
    let world = World::new(STEPS);
    let graph = world.graph();
    let (_, first) = world.plan();
    let key = |task: &str| change(&first, task).key.clone().expect("a key");
    let other_key = TaskKey::from_digest([7; 32]);
    let mut refresh = Refresh::default();
    for (task, key, captured) in [
        ("step.ready@h0", key("step.ready@h0"), None),
        ("step.captures@h0", key("step.captures@h0"), None),
        ("step.plain@h0", other_key.clone(), None),
        ("step.seeded@h0", other_key, None),
    ] {
        let info = ReceiptInfo {
            task: id(task),
            key,
            finished_at: "2024-04-30T09:00:00Z".into(),
            by: "ops@laptop".into(),
            captured,
        };
        refresh.receipts.insert(id(task), info);
    }
    let plan = world.diff(&graph, &refresh, &DiffOptions::default());
    let receipt = "done on the host by ops@laptop at 2024-04-30T09:00:00Z (its receipt): \
                   recorded without running";
    assert_eq!(
        outline(&plan),
        [
            format!("noop step.ready@h0 (adopt): {receipt}"),
            // Its value is not in the receipt, so it must run to capture it.
            "create step.captures@h0: new host".into(),
            "create step.failing@h0: new host".into(),
            // Done with other inputs: not this task.
            "create step.plain@h0: new host".into(),
            // A once step is never run twice, whatever it was run with.
            format!("noop step.seeded@h0 (adopt): {receipt}"),
        ]
    );
}

#[test]
fn a_step_an_unrecorded_apply_finished_is_adopted_from_its_receipt_not_run_again() {
    // An apply changed `greeting`, ran `hello` on m0 (its receipt is on the
    // host, at the new key) and was killed before recording it.
    let mut world = World::new(BASE);
    world.converge();
    world.fixture.rewrite(&edited(&[GREETING_B]));
    let (_, changed) = world.plan();
    let new_key = change(&changed, "step.hello@m0")
        .key
        .clone()
        .expect("a key");
    let mut refresh = Refresh::default();
    for (task, key) in [
        ("step.hello@m0", new_key),
        // Done at another key (the old inputs): not this change.
        ("step.hello@n0", TaskKey::from_digest([7; 32])),
    ] {
        refresh.receipts.insert(
            id(task),
            ReceiptInfo {
                task: id(task),
                key,
                finished_at: "2024-04-30T09:00:00Z".into(),
                by: "ops@laptop".into(),
                captured: None,
            },
        );
    }
    let plan = world.diff(&world.graph(), &refresh, &DiffOptions::default());
    let outline = outline(&plan);
    assert!(
        outline.contains(
            &"noop step.hello@m0 (adopt): done on the host by ops@laptop at 2024-04-30T09:00:00Z (its receipt) by an apply that did not record it: recorded without running".to_string()
        ),
        "{outline:#?}"
    );
    assert!(
        outline.contains(&r#"update step.hello@n0: var greeting changed ("a" -> "b")"#.to_string()),
        "{outline:#?}"
    );
}

#[test]
fn hosts_left_out_are_not_planned_and_lend_their_recorded_keys() {
    struct Case {
        name: &'static str,
        excluded: &'static [&'static str],
        unreachable: &'static [&'static str],
        plan: Vec<&'static str>,
    }
    let label = "update step.hello@n0: var label changed (\"n\" -> \"n2\")";
    let collect = "update step.collect@m0: upstream task changed (step.hello@n0)";
    let master_destroy =
        "destroy step.announce@m0: no longer in the Clusterfile; no undo: only forgotten";
    let node_destroy =
        "destroy step.announce@n0: no longer in the Clusterfile; no undo: only forgotten";
    let cases = [
        Case {
            name: "every host",
            excluded: &[],
            unreachable: &[],
            plan: vec![label, collect, node_destroy, master_destroy],
        },
        Case {
            name: "n0 left out by --limit: its tasks and records are not touched",
            excluded: &["n0"],
            unreachable: &[],
            plan: vec![master_destroy],
        },
        Case {
            // Its records are still destroyed: apply fails those as not
            // connected, and undoes them once the host is back.
            name: "n0 unreachable: its tasks are left out",
            excluded: &[],
            unreachable: &["n0"],
            plan: vec![node_destroy, master_destroy],
        },
    ];
    for case in cases {
        let mut world = World::new(BASE);
        world.converge();
        world.fixture.rewrite(&edited(&[
            ("vars = { label = \"n\" }", "vars = { label = \"n2\" }"),
            (ANNOUNCE, ""),
        ]));
        let graph = world.graph();
        let mut refresh = Refresh::default();
        for host in case.unreachable {
            let why = format!("host {host}: connection refused");
            refresh.unreachable.insert((*host).to_string(), why);
        }
        let options = DiffOptions {
            excluded_hosts: case.excluded.iter().map(ToString::to_string).collect(),
            ..DiffOptions::default()
        };
        let plan = world.diff(&graph, &refresh, &options);
        assert_eq!(outline(&plan), case.plan, "{}", case.name);
        let left_out: Vec<&str> = case
            .excluded
            .iter()
            .chain(case.unreachable)
            .copied()
            .collect();
        for c in plan
            .changes
            .iter()
            .filter(|c| c.kind != ChangeKind::Destroy)
        {
            assert!(
                !left_out.contains(&c.host.as_str()),
                "{}: {}",
                case.name,
                c.id
            );
        }
        if !left_out.is_empty() {
            let collect = change(&plan, "step.collect@m0");
            assert_eq!(
                collect.key.as_ref(),
                Some(world.recorded_key("step.collect@m0")),
                "{}: collect sees hello@n0's recorded key",
                case.name
            );
        }
    }
}

/// The plan of `world` with `--replace` naming `patterns`.
fn plan_replacing(world: &World, patterns: &[&str]) -> crate::plan::Plan {
    let graph = world.graph();
    let patterns: Vec<String> = patterns.iter().map(ToString::to_string).collect();
    let options = DiffOptions {
        replace: Replacements::new(&patterns, &graph).expect("known tasks"),
        ..DiffOptions::default()
    };
    world.diff(&graph, &Refresh::default(), &options)
}

#[test]
fn a_replace_reruns_everything_downstream_but_a_once_step_which_says_so() {
    let mut world = World::new(BASE);
    world.converge();
    let plan = plan_replacing(&world, &["step.install@m0"]);
    assert_eq!(
        outline(&plan),
        [
            "replace step.install@m0: forced by --replace",
            "update step.hello@m0: upstream task replaced (step.install@m0)",
            "update step.announce@m0: upstream task reruns (step.hello@m0)",
            "noop step.init@m0 [ignored: upstream task replaced (step.install@m0)]",
            "update step.collect@m0: upstream task reruns (step.hello@m0)",
        ]
    );
    assert_eq!(
        plan.reruns.keys().map(TaskId::as_str).collect::<Vec<_>>(),
        [
            "step.announce@m0",
            "step.collect@m0",
            "step.hello@m0",
            "step.install@m0"
        ],
        "what the apply keeps in the state until it has run"
    );
    assert_eq!(plan.reruns[&id("step.install@m0")], PendingRerun::Replace);
    assert_eq!(plan.reruns[&id("step.hello@m0")], PendingRerun::Downstream);
}

#[test]
fn a_replace_not_finished_is_planned_again_until_each_task_has_run() {
    let mut world = World::new(BASE);
    world.converge();
    let plan = plan_replacing(&world, &["step.install@m0"]);
    world.state.apply(JournalEntry::Reruns {
        tasks: plan.reruns.clone(),
    });
    // The apply ran the replaced step and failed at `hello`.
    let graph = world.graph();
    world.record(&graph, change(&plan, "step.install@m0"));
    let (_, again) = world.plan();
    assert_eq!(
        outline(&again),
        [
            "update step.hello@m0: rerun required by an earlier apply (not finished)",
            "update step.announce@m0: rerun required by an earlier apply (not finished); upstream task reruns (step.hello@m0)",
            "update step.collect@m0: rerun required by an earlier apply (not finished); upstream task reruns (step.hello@m0)",
        ]
    );
    world.apply(&graph, &again);
    assert!(world.state.reruns.is_empty(), "{:?}", world.state.reruns);
    let (_, done) = world.plan();
    assert!(!done.has_changes(), "{:?}", outline(&done));

    // A replace interrupted before the replaced task ran is a replace again.
    world
        .state
        .apply(JournalEntry::Reruns { tasks: plan.reruns });
    let (_, again) = world.plan();
    assert_eq!(
        outline(&again)[0],
        "replace step.install@m0: replace requested by an earlier apply (not finished)"
    );
}

/// A value captured on the master, read by every host's step behind a
/// `once` step: the `once` step stops what flows along the edges, not the
/// value.
const CAPTURE: &str = r#"version = 1
name = "t"

[[hosts]]
address = "10.0.0.1"
name = "m0"
roles = ["master"]

[[hosts]]
address = "10.0.0.2"
name = "n0"

[[steps]]
name = "version"
on = "master"
run = "cat /etc/version"
capture = "app_version"

[[steps]]
name = "gate"
on = "master"
once = true
after = ["version"]
run = "true"

[[steps]]
name = "deploy"
after = ["gate@m0"]
run = "deploy ${app_version}"
"#;

#[test]
fn a_value_captured_again_reaches_the_steps_that_read_it() {
    let mut world = World::new(CAPTURE);
    world.converge();
    let plan = plan_replacing(&world, &["step.version"]);
    assert_eq!(
        outline(&plan),
        [
            "replace step.version@m0: forced by --replace",
            "noop step.gate@m0 [ignored: upstream task replaced (step.version@m0)]",
            "update step.deploy@m0: reads ${app_version}, which step.version@m0 captures again",
            "update step.deploy@n0: reads ${app_version}, which step.version@m0 captures again",
        ]
    );
}

#[test]
fn a_rerun_is_remembered_only_where_the_key_alone_would_not_rerun_it() {
    let mut world = World::new(CAPTURE);
    world.converge();
    // deploy's own text changes too: its new key reruns it (and a killed
    // apply's run of it leaves a receipt with that key, which the next plan
    // adopts), so remembering it would run it twice.
    world.fixture.rewrite(&CAPTURE.replace(
        "run = \"deploy ${app_version}\"",
        "run = \"deploy2 ${app_version}\"",
    ));
    let plan = plan_replacing(&world, &["step.version"]);
    assert!(
        plan.reruns.contains_key(&id("step.version@m0")),
        "{:?}",
        plan.reruns
    );
    assert!(
        !plan.reruns.contains_key(&id("step.deploy@m0"))
            && !plan.reruns.contains_key(&id("step.deploy@n0")),
        "{:?}",
        plan.reruns
    );
}

#[test]
fn reasons_say_what_really_changed() {
    struct Case {
        name: &'static str,
        edits: &'static [(&'static str, &'static str)],
        plan: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "an edge added to an unchanged task",
            edits: &[(
                "after = [\"web\"]\nrun = \"sh /srv/web/install.sh\"",
                "after = [\"web\", \"motd\"]\nrun = \"sh /srv/web/install.sh\"",
            )],
            plan: &[
                "update step.install@m0: now waits for file.motd@m0",
                "update step.install@n0: now waits for file.motd@n0",
                "update step.hello@m0: upstream task changed (step.install@m0)",
                "update step.hello@n0: upstream task changed (step.install@n0)",
                "update step.announce@m0: upstream task changed (step.hello@m0)",
                "update step.announce@n0: upstream task changed (step.hello@n0)",
                "noop step.init@m0 [ignored: upstream task changed (step.install@m0)]",
                "update step.collect@m0: upstream task changed (step.hello@m0, step.hello@n0)",
            ],
        },
        Case {
            name: "an edge removed",
            edits: &[(
                "after = [\"hello\"]\nrun = \"echo announced\"",
                "run = \"echo announced\"",
            )],
            plan: &[
                "update step.announce@m0: no longer waits for step.hello@m0",
                "update step.announce@n0: no longer waits for step.hello@n0",
            ],
        },
    ];
    for case in cases {
        let mut world = World::new(BASE);
        world.converge();
        world.fixture.rewrite(&edited(case.edits));
        let (_, plan) = world.plan();
        assert_eq!(outline(&plan), case.plan, "{}", case.name);
    }
}

#[test]
fn a_task_on_a_host_the_state_knows_is_a_new_task_even_if_nothing_ran_there() {
    let mut world = World::new(BASE);
    for host in &world.fixture.model.hosts {
        if host.name == "n0" {
            world.state.apply(JournalEntry::Host {
                name: host.name.clone(),
                record: Box::new(crate::plan::former::host_record(host)),
            });
        }
    }
    let (_, plan) = world.plan();
    assert_eq!(change(&plan, "step.hello@n0").reasons, ["new task"]);
    assert_eq!(change(&plan, "step.hello@m0").reasons, ["new host"]);
}

#[test]
fn a_files_template_is_rendered_differently() {
    let templated = r#"
[[files]]
name = "conf"
content = "greeting={{ greeting }}\n"
template = true
dest = "/etc/conf"
"#;
    let mut world = World::new(&format!("{BASE}{templated}"));
    world.converge();
    world
        .fixture
        .rewrite(&format!("{}{templated}", edited(&[GREETING_B])));
    let (_, plan) = world.plan();
    assert_eq!(
        change(&plan, "file.conf@m0").reasons,
        ["template rendered differently"]
    );
    assert_eq!(
        change(&plan, "file.motd@m0").reasons,
        ["content changed", r#"var greeting changed ("a" -> "b")"#]
    );
}

#[test]
fn a_replace_on_a_host_not_reached_is_kept_for_later_but_not_on_one_left_out() {
    let mut world = World::new(BASE);
    world.converge();
    let graph = world.graph();
    let replace = Replacements::new(&["step.hello".to_string()], &graph).expect("known");
    let mut refresh = Refresh::default();
    refresh
        .unreachable
        .insert("n0".into(), "host n0: connection refused".into());
    let options = DiffOptions {
        replace: replace.clone(),
        ..DiffOptions::default()
    };
    let plan = world.diff(&graph, &refresh, &options);
    assert_eq!(
        plan.reruns.get(&id("step.hello@n0")),
        Some(&PendingRerun::Replace),
        "unreachable: replaced when it is back"
    );
    let options = DiffOptions {
        replace,
        excluded_hosts: ["n0".to_string()].into(),
        ..DiffOptions::default()
    };
    let plan = world.diff(&graph, &Refresh::default(), &options);
    assert_eq!(
        plan.reruns.get(&id("step.hello@n0")),
        None,
        "left out by --limit"
    );
    assert_eq!(
        plan.reruns.get(&id("step.hello@m0")),
        Some(&PendingRerun::Replace)
    );
}
