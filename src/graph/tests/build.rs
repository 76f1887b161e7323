//! Unit tests of `graph::build`, kept beside it in a file of their own.

use std::collections::BTreeMap;

use crate::graph::testing::Fixture;
use crate::graph::{CompileError, TaskGraph, Work};
use crate::hash::{ActionSpec, secret_fingerprint};
use crate::ids::TaskId;

const SALT: &str = "salt";

fn id(text: &str) -> TaskId {
    TaskId::parse(text).unwrap_or_else(|e| panic!("{text} is a task id: {e}"))
}

/// What `task` waits for, sorted.
fn upstream(graph: &TaskGraph, task: &str) -> Vec<String> {
    let node = graph
        .find(&id(task))
        .unwrap_or_else(|| panic!("{task} is in the graph"));
    let mut ids: Vec<String> = graph
        .upstream(node)
        .map(|n| graph.task(n).id.to_string())
        .collect();
    ids.sort();
    ids
}

fn order(graph: &TaskGraph) -> Vec<String> {
    graph
        .topological()
        .iter()
        .map(|&n| graph.task(n).id.to_string())
        .collect()
}

fn messages(errors: &[CompileError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// `m0` (master), then `node0` and `node1`; `base` runs on all three,
/// `m` on the master, `n` on the nodes, and `x` where each case says,
/// after what it says.
fn scoped(on: &str, after: &str) -> String {
    format!(
        r#"version = 1
name = "t"

[[hosts]]
address = "10.0.0.1"
name = "m0"
roles = ["master"]

[[hosts]]
address = "10.0.0.2"
name = "node0"
roles = ["node"]

[[hosts]]
address = "10.0.0.3"
name = "node1"
roles = ["node"]

[[steps]]
name = "base"
run = "true"

[[steps]]
name = "m"
on = "master"
run = "true"

[[steps]]
name = "n"
on = "node"
run = "true"

[[steps]]
name = "x"
on = "{on}"
after = ["{after}"]
run = "true"
"#
    )
}

#[test]
fn after_scopes_pick_the_hosts_waited_for() {
    struct Case {
        name: &'static str,
        on: &'static str,
        after: &'static str,
        task: &'static str,
        waits_for: Result<&'static [&'static str], &'static str>,
    }
    let cases = [
        Case {
            name: "x: the same host, where x runs there",
            on: "node",
            after: "base",
            task: "step.x@node0",
            waits_for: Ok(&["step.base@node0"]),
        },
        Case {
            name: "x: its only host, when it does not run here",
            on: "node",
            after: "m",
            task: "step.x@node0",
            waits_for: Ok(&["step.m@m0"]),
        },
        Case {
            name: "x: all its hosts, when it does not run here",
            on: "master",
            after: "n",
            task: "step.x@m0",
            waits_for: Ok(&["step.n@node0", "step.n@node1"]),
        },
        Case {
            name: "x@*: all its hosts, even where it runs here",
            on: "node",
            after: "base@*",
            task: "step.x@node0",
            waits_for: Ok(&["step.base@m0", "step.base@node0", "step.base@node1"]),
        },
        Case {
            name: "x@HOST: that host only",
            on: "node",
            after: "base@node1",
            task: "step.x@node0",
            waits_for: Ok(&["step.base@node1"]),
        },
        Case {
            name: "x@HOST where x does not run on HOST",
            on: "node",
            after: "m@node0",
            task: "step.x@node0",
            waits_for: Err("`m` does not run on host node0"),
        },
    ];
    for case in cases {
        let text = scoped(case.on, case.after);
        let fixture = Fixture::new(&text, &[]);
        match (fixture.compile(SALT), case.waits_for) {
            (Ok(graph), Ok(expected)) => {
                assert_eq!(upstream(&graph, case.task), expected, "{}", case.name);
            }
            (Err(errors), Err(expected)) => {
                // Reported once, however many hosts x runs on.
                assert_eq!(messages(&errors), [expected], "{}", case.name);
                for error in &errors {
                    let CompileError::NotOnHost { span, .. } = error else {
                        panic!("{}: not a NotOnHost error: {error:?}", case.name)
                    };
                    assert_eq!(
                        &text[span.clone()],
                        format!("\"{}\"", case.after),
                        "{}: the span is the reference",
                        case.name
                    );
                }
            }
            (Ok(graph), Err(_)) => panic!(
                "{}: compiled, waiting for {:?}",
                case.name,
                upstream(&graph, case.task)
            ),
            (Err(errors), Ok(_)) => {
                panic!("{}: did not compile: {:?}", case.name, messages(&errors))
            }
        }
    }
}

/// A bundle task as the patch test sees it.
#[derive(Debug, PartialEq, Eq)]
struct BundleView {
    waits_for: Vec<String>,
    /// Base paths it leaves to an overlaying patch, as its key names them.
    leaves_out: Vec<String>,
    ships: Vec<String>,
}

impl BundleView {
    fn of(graph: &TaskGraph, task: &str) -> BundleView {
        let node = graph.find(&id(task)).expect("the task is in the graph");
        let t = graph.task(node);
        let ActionSpec::Bundle { excluded, .. } = &t.inputs.action else {
            panic!("{task} has a bundle key")
        };
        let Work::Bundle {
            excluded: left_to_patch,
            ..
        } = &t.work
        else {
            panic!("{task} is a bundle task")
        };
        assert!(
            excluded.iter().eq(left_to_patch.iter()),
            "{task}: the key names exactly what the task leaves out"
        );
        BundleView {
            waits_for: upstream(graph, task),
            leaves_out: excluded.clone(),
            ships: t.work.files().into_keys().collect(),
        }
    }

    fn new(waits_for: &[&str], leaves_out: &[&str], ships: &[&str]) -> BundleView {
        BundleView {
            waits_for: strings(waits_for),
            leaves_out: strings(leaves_out),
            ships: strings(ships),
        }
    }
}

#[test]
fn a_patch_bundle_waits_for_the_rootfs_it_overlays_and_takes_its_paths() {
    let fixture = Fixture::new(
        r#"version = 1
name = "t"

[[hosts]]
address = "10.0.0.1"
name = "h0"

[[hosts]]
address = "10.0.0.2"
name = "h1"

[[bundles]]
name = "k8s"
source = "k8s"

[[bundles]]
name = "fix"
source = "fix"
kind = "patch"
on = "h0"
templates = ["*.tmpl"]

[[bundles]]
name = "other"
source = "other"
dest = "/opt/other"
"#,
        &[
            ("k8s/a.conf", "a\n"),
            ("k8s/b.conf", "b from k8s\n"),
            ("k8s/c.txt", "c from k8s\n"),
            ("fix/b.conf", "b from fix\n"),
            ("fix/c.txt.tmpl", "c for {{ cluster }}\n"),
            ("other/b.conf", "b from other\n"),
        ],
    );
    let graph = fixture.graph(SALT);
    let cases = [
        (
            "the rootfs under the patch leaves it the paths it ships, template output included",
            "bundle.k8s@h0",
            BundleView::new(&[], &["b.conf", "c.txt"], &["a.conf"]),
        ),
        (
            "the same rootfs on a host without the patch ships everything",
            "bundle.k8s@h1",
            BundleView::new(&[], &[], &["a.conf", "b.conf", "c.txt"]),
        ),
        (
            "the patch waits for the rootfs with its dest, on its own host only",
            "bundle.fix@h0",
            BundleView::new(&["bundle.k8s@h0"], &[], &["b.conf", "c.txt"]),
        ),
        (
            "a rootfs with another dest is not overlaid",
            "bundle.other@h0",
            BundleView::new(&[], &[], &["b.conf"]),
        ),
        (
            "nor is it on a host without the patch",
            "bundle.other@h1",
            BundleView::new(&[], &[], &["b.conf"]),
        ),
    ];
    for (name, task, expected) in cases {
        assert_eq!(BundleView::of(&graph, task), expected, "{name}");
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

#[test]
fn a_relative_dest_is_an_error_over_ssh_and_resolves_against_the_clusterfile_locally() {
    struct Case {
        name: &'static str,
        transport: &'static str,
        /// `bundle` b or `file` f, with this dest.
        kind: &'static str,
        dest: &'static str,
        /// The resolved dest, `{base}` for the Clusterfile's folder; or the error.
        expected: Result<&'static str, &'static str>,
    }
    let cases = [
        Case {
            name: "a file on a local host",
            transport: "local",
            kind: "file",
            dest: "out/./sub/../motd",
            expected: Ok("{base}/out/motd"),
        },
        Case {
            name: "a bundle on a local host",
            transport: "local",
            kind: "bundle",
            dest: "out/web/",
            expected: Ok("{base}/out/web"),
        },
        Case {
            name: "an absolute dest over SSH, normalized",
            transport: "ssh",
            kind: "file",
            dest: "/etc/./app//motd/",
            expected: Ok("/etc/app/motd"),
        },
        Case {
            name: "a file over SSH",
            transport: "ssh",
            kind: "file",
            dest: "out/motd",
            expected: Err("dest `out/motd` is relative, but host h0 is reached over SSH"),
        },
        Case {
            name: "a bundle over SSH",
            transport: "ssh",
            kind: "bundle",
            dest: "web",
            expected: Err("dest `web` is relative, but host h0 is reached over SSH"),
        },
    ];
    for case in cases {
        let (element, task) = match case.kind {
            "file" => ("name = \"f\"\ncontent = \"x\"", "file.f@h0"),
            _ => ("name = \"b\"\nsource = \"b\"", "bundle.b@h0"),
        };
        let text = format!(
            "version = 1\nname = \"t\"\n\n[[hosts]]\naddress = \"10.0.0.1\"\nname = \"h0\"\n\
             transport = \"{}\"\n\n[[{}s]]\n{element}\ndest = \"{}\"\n",
            case.transport, case.kind, case.dest
        );
        let fixture = Fixture::new(&text, &[("b/index.html", "hi\n")]);
        match (fixture.compile(SALT), case.expected) {
            (Ok(graph), Ok(expected)) => {
                let node = graph.find(&id(task)).expect("the task is in the graph");
                let dest = match &graph.task(node).work {
                    Work::Bundle { dest, .. } | Work::File { dest, .. } => dest.clone(),
                    Work::Step { .. } => unreachable!("bundles and files only"),
                };
                let base = fixture.model.base_dir.display().to_string();
                assert_eq!(dest, expected.replace("{base}", &base), "{}", case.name);
            }
            (Err(errors), Err(expected)) => {
                assert_eq!(messages(&errors), [expected], "{}", case.name);
                assert!(
                    matches!(errors[0], CompileError::RelativeDest { .. }),
                    "{}: {:?}",
                    case.name,
                    errors[0]
                );
            }
            (Ok(_), Err(_)) => panic!("{}: compiled", case.name),
            (Err(errors), Ok(_)) => {
                panic!("{}: did not compile: {:?}", case.name, messages(&errors))
            }
        }
    }
}

#[test]
fn topological_order_is_file_order_among_ready_tasks_and_stable() {
    // Steps are declared before files and bundles, and `early` before
    // the `late` it waits for: the order still goes bundles, files,
    // steps, hosts in file order, each task as soon as it is ready.
    let text = r#"version = 1
name = "t"

[[hosts]]
address = "10.0.0.1"
name = "a"

[[hosts]]
address = "10.0.0.2"
name = "b"

[[steps]]
name = "early"
after = ["late"]
run = "true"

[[steps]]
name = "late"
after = ["f"]
run = "true"

[[files]]
name = "f"
content = "x"
dest = "/etc/f"

[[bundles]]
name = "web"
source = "web"
"#;
    let fixture = Fixture::new(text, &[("web/index.html", "hi\n")]);
    let expected = [
        "bundle.web@a",
        "bundle.web@b",
        "file.f@a",
        "file.f@b",
        "step.late@a",
        "step.early@a",
        "step.late@b",
        "step.early@b",
    ];
    for run in 0..5 {
        assert_eq!(order(&fixture.graph(SALT)), expected, "run {run}");
    }
}

/// What a case names, which task, and the vars its key should name.
type VarsCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

#[test]
fn key_inputs_name_exactly_the_vars_a_task_reads() {
    let fixture = Fixture::new(
        r#"version = 1
name = "t"

[vars]
greeting = "hello"
port = 8080
unused = "never read"
token = { secret = "file:token.txt" }

[[hosts]]
address = "10.0.0.1"
name = "h0"

[[hosts]]
address = "10.0.0.2"
name = "h1"
vars = { greeting = "hi" }

[[bundles]]
name = "web"
source = "web"
dest = "/srv/${cluster}/web"

[[files]]
name = "inline"
content = "${greeting}:${port}"
dest = "/etc/inline"

[[files]]
name = "from-source"
source = "app.conf"
dest = "/etc/app.conf"

[[steps]]
name = "version"
run = "echo v1"
capture = "version"

[[steps]]
name = "login"
after = ["version"]
run = "login ${token} ${version}"
cwd = "/home/${host.name}"
check = "test ${greeting} = ${greeting}"
"#,
        &[
            ("web/index.html", "hi\n"),
            ("app.conf", "${greeting} is not interpolated in a source\n"),
            ("token.txt", "s3cret\n"),
        ],
    );
    let graph = fixture.graph(SALT);
    let secret = secret_fingerprint(SALT, "s3cret");
    let cases: [VarsCase; 7] = [
        ("a bundle's dest", "bundle.web@h0", &[("cluster", "t")]),
        (
            "inline content and its host's override",
            "file.inline@h1",
            &[("greeting", "hi"), ("port", "8080")],
        ),
        (
            "the same file elsewhere",
            "file.inline@h0",
            &[("greeting", "hello"), ("port", "8080")],
        ),
        (
            "a source file is not interpolated",
            "file.from-source@h0",
            &[],
        ),
        ("a step that reads nothing", "step.version@h0", &[]),
        (
            "run, cwd and check; a secret as its fingerprint; a capture not at all",
            "step.login@h0",
            &[
                ("greeting", "hello"),
                ("host.name", "h0"),
                ("token", &secret),
            ],
        ),
        (
            "the same step on the host that overrides a var",
            "step.login@h1",
            &[("greeting", "hi"), ("host.name", "h1"), ("token", &secret)],
        ),
    ];
    for (name, task, expected) in cases {
        let node = graph.find(&id(task)).expect("the task is in the graph");
        let inputs = &graph.task(node).inputs;
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        assert_eq!(inputs.vars, expected, "{name}");
        let encoded = serde_json::to_string(inputs).expect("inputs serialize");
        assert!(
            !encoded.contains("s3cret"),
            "{name}: a secret's value never reaches a key: {encoded}"
        );
    }
    assert!(secret.starts_with("secret:"), "{secret}");
}

/// Masters `m0` and `m1`, node `node0`, registry `reg0` (last in the file);
/// a rootfs `k8s` with every hook on all four, an app `helm` on every host
/// (so the first), and `deploy` after the rootfs.
fn hooked() -> Fixture {
    let text = r#"version = 1
name = "t"

[[hosts]]
address = "10.0.0.9"
name = "node0"
roles = ["node"]

[[hosts]]
address = "10.0.0.1"
name = "m0"
roles = ["master"]

[[hosts]]
address = "10.0.0.2"
name = "m1"
roles = ["master"]

[[hosts]]
address = "10.0.0.3"
name = "reg0"
roles = ["registry"]

[[bundles]]
name = "k8s"
source = "k8s"

[[bundles]]
name = "helm"
source = "helm"
on = ["master"]

[[steps]]
name = "deploy"
on = "node0"
after = ["k8s"]
run = "true"
"#;
    Fixture::new(
        text,
        &[
            (
                "k8s/bundle.toml",
                "cmd = \"echo up\"\n[vars]\nregistryDomain = \"sealos.hub\"\n[hooks]\ncheck = \"bash check.sh\"\ninit-registry = \"bash init-registry.sh\"\ninit-cri = \"init-cri.sh\"\ninit = \"bash init.sh\"\nclean = \"bash clean.sh\"\nclean-registry = \"bash clean-registry.sh\"\n",
            ),
            ("k8s/scripts/init.sh", "true\n"),
            (
                "helm/bundle.toml",
                "kind = \"app\"\ncmd = \"helm install\"\n",
            ),
            ("helm/chart.yaml", "x: 1\n"),
        ],
    )
}

#[test]
fn hooks_run_in_sealos_order_on_their_hosts() {
    let fixture = hooked();
    let graph = fixture.graph(SALT);
    assert_eq!(
        upstream(&graph, "hook.k8s.check@m0"),
        ["bundle.k8s@m0"],
        "check once the files landed"
    );
    assert_eq!(
        upstream(&graph, "hook.k8s.init-cri@m0"),
        ["bundle.k8s@m0", "hook.k8s.check@m0"]
    );
    assert!(
        graph.find(&id("hook.k8s.init-registry@m0")).is_none()
            && graph.find(&id("hook.k8s.init-registry@reg0")).is_some(),
        "init-registry on the host with role registry"
    );
    assert_eq!(
        upstream(&graph, "hook.k8s.init@node0"),
        [
            "bundle.k8s@node0",
            "hook.k8s.check@node0",
            "hook.k8s.init-cri@node0",
            "hook.k8s.init-registry@reg0"
        ],
        "init after every init-NAME, the registry's on its own host"
    );
    assert!(
        upstream(&graph, "hook.k8s.cmd@node0").contains(&"hook.k8s.init@node0".to_string()),
        "cmd after init"
    );
    // Waiting for a bundle waits for its hooks.
    let deploy = upstream(&graph, "step.deploy@node0");
    for hook in [
        "bundle.k8s@node0",
        "hook.k8s.check@node0",
        "hook.k8s.init@node0",
        "hook.k8s.cmd@node0",
        "hook.k8s.init-registry@reg0",
    ] {
        assert!(deploy.contains(&hook.to_string()), "{hook} in {deploy:?}");
    }
    // An app's cmd: once, on the first master it targets.
    let helm: Vec<String> = order(&graph)
        .into_iter()
        .filter(|t| t.starts_with("hook.helm."))
        .collect();
    assert_eq!(helm, ["hook.helm.cmd@m0"]);
    assert!(
        graph.find(&id("bundle.helm@m1")).is_none(),
        "bundle.toml's kind app: shipped to the first targeted host only"
    );
    let model = &fixture.model;
    let init = model
        .steps
        .iter()
        .find(|s| s.name == "k8s.init")
        .expect("the init hook");
    let hook = init.hook.as_ref().expect("marked as a hook");
    assert_eq!(hook.env, ["registryDomain"]);
    assert_eq!(hook.undo_command.as_deref(), Some("bash clean.sh"));
    assert!(
        init.cwd
            .as_ref()
            .unwrap()
            .source
            .ends_with("rootfs/scripts"),
        "runs in the scripts folder"
    );
    let task = graph.task(graph.find(&id("hook.k8s.init@m0")).unwrap());
    match &task.inputs.action {
        ActionSpec::Step { run, undo, .. } => {
            assert_eq!(run, "bash init.sh", "the key names the command alone");
            assert_eq!(undo.as_deref(), Some("bash clean.sh"));
        }
        other => panic!("a step's spec: {other:?}"),
    }
    assert_eq!(
        task.inputs.vars.get("registryDomain").map(String::as_str),
        Some("sealos.hub"),
        "what it sees is in its key"
    );
    assert!(matches!(task.work, Work::Step { .. }));
}

#[test]
fn hook_overrides_replace_disable_and_add() {
    let mut fixture = hooked();
    let text = r#"version = 1
name = "t"

[vars]
greeting = "hi"

[[hosts]]
address = "10.0.0.1"
name = "m0"
roles = ["master"]

[[bundles]]
name = "k8s"
source = "k8s"
hooks = { init = "bash init.sh --fast ${greeting}", check = false, init-extra = "true", clean-registry = false }
cmd = false
"#;
    fixture.rewrite(text);
    let graph = fixture.graph(SALT);
    let hooks: Vec<String> = order(&graph)
        .into_iter()
        .filter(|t| t.starts_with("hook."))
        .collect();
    assert_eq!(
        hooks,
        [
            "hook.k8s.init-cri@m0",
            "hook.k8s.init-extra@m0",
            "hook.k8s.init-registry@m0",
            "hook.k8s.init@m0"
        ]
    );
    let task = graph.task(graph.find(&id("hook.k8s.init@m0")).unwrap());
    assert_eq!(
        task.inputs.vars.get("greeting").map(String::as_str),
        Some("hi"),
        "a Clusterfile override interpolates"
    );
    let registry = fixture
        .model
        .steps
        .iter()
        .find(|s| s.name == "k8s.init-registry")
        .unwrap();
    assert!(registry.undo.is_none(), "clean-registry disabled");
}

#[test]
fn a_rootfs_hook_waits_for_the_patch_bundles_overlaying_it() {
    let mut fixture = hooked();
    fixture.rewrite(
        r#"version = 1
name = "t"

[[hosts]]
address = "10.0.0.1"
name = "m0"
roles = ["master"]

[[bundles]]
name = "k8s"
source = "k8s"

[[bundles]]
name = "fix"
source = "helm"
kind = "patch"
"#,
    );
    let graph = fixture.graph(SALT);
    assert_eq!(
        upstream(&graph, "hook.k8s.check@m0"),
        ["bundle.fix@m0", "bundle.k8s@m0"],
        "the scripts run on the merged rootfs"
    );
    assert_eq!(
        upstream(&graph, "bundle.fix@m0"),
        ["bundle.k8s@m0"],
        "the Clusterfile's kind (patch) wins over bundle.toml's (app)"
    );
}
