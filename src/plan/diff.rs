//! The diff: desired keys against records and observations, task by task.
//!
//! [`diff`] walks the sealed graph in dependency order. For each task it
//! fills in the keys of what it waits for (the *effective* keys: a `once`
//! step that will not rerun passes its recorded key on, so nothing
//! downstream reruns because of it), hashes the inputs, and compares with
//! the record and with what refresh saw on the host:
//!
//! - no record: create (`+`), unless a step's `check` already passes and it
//!   captures nothing, or the host holds its receipt, in which case it is
//!   adopted as converged;
//! - key changed, or the host no longer matches the record: update (`~`);
//! - `--replace`, or a bundle/file whose destination moved: replace (`-/+`);
//! - a record with no task any more: destroy (`-`);
//! - otherwise unchanged.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::graph::NodeIndex;

use super::reasons::{drift_reasons, explain};
use super::{Change, ChangeKind, Observation, Plan, Refresh, Replacements};
use crate::graph::{Task, TaskGraph, Work};
use crate::hash::KeyInputs;
use crate::ids::{TaskId, TaskKey};
use crate::model::Model;
use crate::state::{RecordDetail, State, TaskRecord};

/// What the diff needs besides graph and state.
#[derive(Debug, Default)]
pub struct DiffOptions {
    /// The tasks `--replace` forces.
    pub replace: Replacements,
    /// Hosts to leave out (by `--limit`).
    pub excluded_hosts: BTreeSet<String>,
    pub offline: bool,
}

/// Compares desired keys, records and observations.
pub fn diff(
    model: &Model,
    graph: &TaskGraph,
    state: &State,
    refresh: &Refresh,
    options: &DiffOptions,
) -> Plan {
    let differ = Differ {
        model,
        graph,
        state,
        refresh,
        options,
        recorded_hosts: state
            .tasks
            .values()
            .map(|r| r.host().name.as_str())
            .collect(),
    };
    let mut changes = Vec::with_capacity(graph.len());
    let mut effective: HashMap<NodeIndex, TaskKey> = HashMap::with_capacity(graph.len());
    for &node in graph.topological() {
        let task = graph.task(node);
        let mut inputs = task.inputs.clone();
        inputs.deps = graph
            .upstream(node)
            .filter_map(|up| {
                effective
                    .get(&up)
                    .map(|k| (graph.task(up).id.clone(), k.clone()))
            })
            .collect::<BTreeMap<_, _>>();
        let host = &model.host(task.host).name;
        if options.excluded_hosts.contains(host) || refresh.unreachable.contains_key(host) {
            // Not touched this run: downstream tasks see the recorded key.
            if let Some(record) = state.tasks.get(&task.id) {
                effective.insert(node, record.key.clone());
            }
            continue;
        }
        let change = differ.task(node, inputs);
        effective.insert(node, change.key.clone().expect("graph tasks have keys"));
        changes.push(change);
    }
    changes.extend(differ.destroys());
    Plan {
        facts: refresh.facts.clone(),
        cluster: model.name.clone(),
        offline: options.offline,
        changes,
        unreachable: refresh.unreachable.clone(),
        excluded_hosts: options.excluded_hosts.clone(),
    }
}

/// What every task's comparison reads.
struct Differ<'a> {
    model: &'a Model,
    graph: &'a TaskGraph,
    state: &'a State,
    refresh: &'a Refresh,
    options: &'a DiffOptions,
    /// Hosts something ran on, to tell a new host from a new task on a known one.
    recorded_hosts: BTreeSet<&'a str>,
}

impl Differ<'_> {
    /// The change of one task whose dependency keys are filled in `inputs`.
    fn task(&self, node: NodeIndex, inputs: KeyInputs) -> Change {
        let task = self.graph.task(node);
        let key = inputs.key();
        let record = self.state.tasks.get(&task.id);
        let drift = drift_reasons(self.refresh.observations.get(&task.id), record);
        let mut change = Change {
            id: task.id.clone(),
            host: self.model.host(task.host).name.clone(),
            kind: ChangeKind::Noop,
            reasons: Vec::new(),
            ignored: Vec::new(),
            node: Some(node),
            key: Some(key),
            inputs: Some(inputs),
            adopt: false,
            drifted: record.is_some() && !drift.is_empty(),
        };
        match record {
            None => self.unrecorded(task, &mut change),
            Some(record) => self.recorded(task, record, drift, &mut change),
        }
        change
    }

    /// A task that never ran here: created, or adopted when its check
    /// passes or the host holds its receipt.
    fn unrecorded(&self, task: &Task, change: &mut Change) {
        let key = change.key.as_ref().expect("graph tasks have keys");
        let observation = self.refresh.observations.get(&task.id);
        let check_passes = match (&task.work, observation) {
            (Work::Step { step }, Some(Observation::Check { passed: true, .. })) => {
                self.model.steps[*step].capture.is_none()
            }
            _ => false,
        };
        // Not in this state, but the host has a receipt: another operator
        // (or a lost state) did it. A `once` step is never run twice.
        let receipt = match &task.work {
            Work::Step { step } => self.refresh.receipts.get(&task.id).filter(|r| {
                (r.key == *key || task.once)
                    && (self.model.steps[*step].capture.is_none()
                        || r.captured.is_some()
                        || task.once)
            }),
            _ => None,
        };
        if self.options.replace.forces(&task.id) {
            change.kind = ChangeKind::Create;
            change.reasons.push("forced by --replace".into());
        } else if let Some(r) = receipt {
            change.adopt = true;
            change.reasons.push(format!(
                "done on the host by {} at {} (its receipt): recorded without running",
                r.by, r.finished_at
            ));
        } else if check_passes {
            change.adopt = true;
            change
                .reasons
                .push("check passes: already converged, recorded without running".into());
        } else {
            change.kind = ChangeKind::Create;
            let host = change.host.as_str();
            change.reasons.push(if self.recorded_hosts.contains(host) {
                "new task".into()
            } else {
                "new host".into()
            });
        }
    }

    /// A task that ran before: unchanged, updated (its inputs changed, or
    /// the host drifted), or replaced (forced, or its destination moved). A
    /// `once` step ignores changed inputs and keeps its recorded key, so
    /// nothing downstream reruns because of it.
    fn recorded(&self, task: &Task, record: &TaskRecord, drift: Vec<String>, change: &mut Change) {
        let inputs = change.inputs.as_ref().expect("graph tasks have inputs");
        let key_changed = change.key.as_ref() != Some(&record.key);
        let mut reasons = if key_changed {
            explain(self.graph, self.state, record, inputs, task)
        } else {
            Vec::new()
        };
        if key_changed && reasons.is_empty() {
            reasons.push("inputs changed".into());
        }
        if self.options.replace.forces(&task.id) {
            change.kind = ChangeKind::Replace;
            change.reasons.push("forced by --replace".into());
            change.reasons.extend(reasons);
            change.reasons.extend(drift);
        } else if task.once {
            if drift.is_empty() {
                change.key = Some(record.key.clone());
                change.inputs = Some(record.inputs.clone());
                change.ignored = reasons;
            } else {
                change.kind = ChangeKind::Update;
                change.reasons.extend(drift);
                change.reasons.extend(reasons);
            }
        } else if dest_moved(&record.detail, &task.work) {
            change.kind = ChangeKind::Replace;
            change.reasons.extend(reasons);
        } else if !reasons.is_empty() || !drift.is_empty() {
            change.kind = ChangeKind::Update;
            change.reasons.extend(drift);
            change.reasons.extend(reasons);
        }
    }

    /// Records with no task any more: destroyed, newest first.
    fn destroys(&self) -> Vec<Change> {
        let mut gone: Vec<(&TaskId, &TaskRecord)> = self
            .state
            .tasks
            .iter()
            .filter(|(id, r)| {
                self.graph.find(id).is_none()
                    && !self.options.excluded_hosts.contains(&r.host().name)
            })
            .collect();
        gone.sort_by_key(|(_, r)| std::cmp::Reverse(r.seq));
        gone.into_iter()
            .map(|(id, record)| {
                let host_gone = !self
                    .model
                    .hosts
                    .iter()
                    .any(|h| h.name == record.host().name);
                let what = match &record.detail {
                    RecordDetail::Step { undo: Some(_), .. } => "runs its undo",
                    RecordDetail::Step { .. } => "no undo: only forgotten",
                    RecordDetail::Bundle { .. } | RecordDetail::File { .. } => {
                        "removes the files it shipped"
                    }
                };
                let why = if host_gone {
                    "host left the Clusterfile"
                } else {
                    "no longer in the Clusterfile"
                };
                Change {
                    id: id.clone(),
                    host: record.host().name.clone(),
                    kind: ChangeKind::Destroy,
                    reasons: vec![format!("{why}; {what}")],
                    ignored: Vec::new(),
                    node: None,
                    key: None,
                    inputs: None,
                    adopt: false,
                    drifted: false,
                }
            })
            .collect()
    }
}

fn dest_moved(detail: &RecordDetail, work: &Work) -> bool {
    match (detail, work) {
        (RecordDetail::Bundle { dest: old, .. }, Work::Bundle { dest: new, .. })
        | (RecordDetail::File { dest: old, .. }, Work::File { dest: new, .. }) => old != new,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{DiffOptions, diff};
    use crate::bundle::manifest::FileEntry;
    use crate::graph::testing::Fixture;
    use crate::graph::{TaskGraph, Work};
    use crate::hash::ActionSpec;
    use crate::ids::{TaskId, TaskKey};
    use crate::model::ElementRef;
    use crate::plan::{Change, ChangeKind, Observation, Plan, Refresh, Replacements};
    use crate::state::{JournalEntry, RecordDetail, ShippedFile, State, TaskRecord};
    use crate::transport::{Observed, ReceiptInfo};

    /// Two SSH hosts (nothing connects), a bundle, a file, and steps that
    /// show how change flows: `hello` reads `${greeting}` and its host's
    /// `${label}`; `announce` waits for it on the same host, `collect` (on
    /// the master) for it on every host; `init` is a `once` step that reads
    /// `${greeting}` and has an undo, and `join` waits for it across hosts.
    const BASE: &str = r#"version = 1
name = "t"

[vars]
greeting = "a"

[[hosts]]
address = "10.0.0.1"
name = "m0"
roles = ["master"]
vars = { label = "m" }

[[hosts]]
address = "10.0.0.2"
name = "n0"
roles = ["node"]
vars = { label = "n" }

[[bundles]]
name = "web"
source = "web"
dest = "/srv/web"

[[files]]
name = "motd"
content = "${greeting}\n"
dest = "/etc/motd"

[[steps]]
name = "install"
after = ["web"]
run = "sh /srv/web/install.sh"

[[steps]]
name = "hello"
after = ["install"]
run = "echo ${greeting} ${label}"
check = "test -f /etc/hello"

[[steps]]
name = "announce"
after = ["hello"]
run = "echo announced"

[[steps]]
name = "init"
on = "master"
once = true
after = ["install"]
run = "kubeadm init --token ${greeting}"
undo = "kubeadm reset -f"

[[steps]]
name = "join"
on = "node"
after = ["init@m0"]
run = "kubeadm join"

[[steps]]
name = "collect"
on = "master"
after = ["hello@*"]
run = "echo collected"
"#;

    /// The one-line edit most tests make.
    const GREETING_B: (&str, &str) = ("greeting = \"a\"", "greeting = \"b\"");

    /// Blocks of `BASE`, to take out.
    const N0: &str = r#"[[hosts]]
address = "10.0.0.2"
name = "n0"
roles = ["node"]
vars = { label = "n" }

"#;
    const ANNOUNCE: &str = r#"[[steps]]
name = "announce"
after = ["hello"]
run = "echo announced"

"#;
    const INIT: &str = r#"[[steps]]
name = "init"
on = "master"
once = true
after = ["install"]
run = "kubeadm init --token ${greeting}"
undo = "kubeadm reset -f"

"#;
    const JOIN: &str = r#"[[steps]]
name = "join"
on = "node"
after = ["init@m0"]
run = "kubeadm join"

"#;

    const BUNDLE: &[(&str, &str)] = &[
        ("web/index.html", "<h1>hi</h1>\n"),
        ("web/install.sh", "echo installed\n"),
    ];

    /// `BASE` with each `(from, to)` replaced; `from` must occur once.
    fn edited(edits: &[(&str, &str)]) -> String {
        let mut text = BASE.to_string();
        for (from, to) in edits {
            assert_eq!(text.matches(from).count(), 1, "edit {from:?} matches once");
            text = text.replacen(from, to, 1);
        }
        text
    }

    fn id(text: &str) -> TaskId {
        TaskId::parse(text).unwrap_or_else(|e| panic!("{text} is a task id: {e}"))
    }

    /// A Clusterfile in its folder and the state applies leave behind.
    struct World {
        fixture: Fixture,
        state: State,
    }

    impl World {
        fn new(clusterfile: &str) -> World {
            let fixture = Fixture::new(clusterfile, BUNDLE);
            let state = State::new(&fixture.model.name);
            World { fixture, state }
        }

        fn graph(&self) -> TaskGraph {
            self.fixture.graph(&self.state.salt)
        }

        fn diff(&self, graph: &TaskGraph, refresh: &Refresh, options: &DiffOptions) -> Plan {
            diff(&self.fixture.model, graph, &self.state, refresh, options)
        }

        /// The plan with nothing observed and nothing left out.
        fn plan(&self) -> (TaskGraph, Plan) {
            let graph = self.graph();
            let plan = self.diff(&graph, &Refresh::default(), &DiffOptions::default());
            (graph, plan)
        }

        /// What an apply that succeeds everywhere records: every task
        /// that runs or is adopted, with its new key and inputs, and every
        /// destroy forgotten; unchanged tasks keep their records.
        fn apply(&mut self, graph: &TaskGraph, plan: &Plan) {
            for change in &plan.changes {
                match change.kind {
                    ChangeKind::Destroy => self.state.apply(JournalEntry::Forget {
                        id: change.id.clone(),
                    }),
                    ChangeKind::Noop if !change.adopt => {}
                    _ => self.record(graph, change),
                }
            }
        }

        fn record(&mut self, graph: &TaskGraph, change: &Change) {
            let task = graph.task(change.node.expect("a task of the graph"));
            let shipped = |e: &FileEntry| ShippedFile {
                hash: e.hash.clone(),
                mode: e.mode,
                size: e.size,
                mtime_ns: 0,
                inode: 0,
            };
            let detail = match &task.work {
                Work::Bundle { dest, .. } => RecordDetail::Bundle {
                    dest: dest.clone(),
                    shipped: task
                        .work
                        .files()
                        .into_iter()
                        .map(|(path, f)| (path, shipped(&f.entry)))
                        .collect(),
                },
                Work::File { dest, content, .. } => RecordDetail::File {
                    dest: dest.clone(),
                    shipped: shipped(&content.entry),
                },
                Work::Step { step } => {
                    let s = &self.fixture.model.steps[*step];
                    RecordDetail::Step {
                        captured: s.capture.as_ref().map(|_| "captured".to_string()),
                        captured_masked: false,
                        undo: s.undo.as_ref().map(|u| u.source.clone()),
                        undo_vars: BTreeMap::new(),
                        cwd: None,
                    }
                }
            };
            let inputs = change.inputs.clone().expect("a task's change has inputs");
            if let (ActionSpec::Bundle { base_root, .. }, ElementRef::Bundle(i)) =
                (&inputs.action, task.element)
            {
                self.state.apply(JournalEntry::Manifest {
                    root: base_root.clone(),
                    manifest: graph.bundles[i].base_manifest.clone(),
                });
            }
            let record = TaskRecord {
                key: change.key.clone().expect("a task's change has a key"),
                inputs,
                detail,
                finished_at: "2024-05-01T10:00:00Z".into(),
                seq: self.state.next_seq,
            };
            self.state.apply(JournalEntry::Done {
                id: change.id.clone(),
                record: Box::new(record),
            });
        }

        /// Plans and applies once, and checks that nothing is left to do.
        fn converge(&mut self) {
            let (graph, plan) = self.plan();
            self.apply(&graph, &plan);
            let (_, again) = self.plan();
            assert!(!again.has_changes(), "converged: {:?}", outline(&again));
        }

        fn recorded_key(&self, task: &str) -> &TaskKey {
            &self.state.tasks[&id(task)].key
        }
    }

    /// Every change that is more than "unchanged", one line each, in plan
    /// order: `update step.hello@m0: reason; reason [ignored: ...]`, with
    /// `(adopt)` and `(drifted)` after the task when set.
    fn outline(plan: &Plan) -> Vec<String> {
        plan.changes
            .iter()
            .filter(|c| {
                c.kind != ChangeKind::Noop
                    || !c.reasons.is_empty()
                    || !c.ignored.is_empty()
                    || c.adopt
                    || c.drifted
            })
            .map(|c| {
                let mut line = format!("{:?} {}", c.kind, c.id).to_lowercase();
                if c.adopt {
                    line.push_str(" (adopt)");
                }
                if c.drifted {
                    line.push_str(" (drifted)");
                }
                if !c.reasons.is_empty() {
                    line = format!("{line}: {}", c.reasons.join("; "));
                }
                if !c.ignored.is_empty() {
                    line = format!("{line} [ignored: {}]", c.ignored.join("; "));
                }
                line
            })
            .collect()
    }

    fn change<'p>(plan: &'p Plan, task: &str) -> &'p Change {
        plan.changes
            .iter()
            .find(|c| c.id.as_str() == task)
            .unwrap_or_else(|| panic!("{task} is in the plan"))
    }

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
                "update step.collect@m0: upstream task changed (step.hello@w0)",
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
}
