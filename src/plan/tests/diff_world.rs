//! The plan tests' world: a Clusterfile in a temp folder, planned by the
//! real stages and "applied" by journaling each change as a record (the
//! tests of `diff` and of `file_diffs` share it).

use std::collections::BTreeMap;

use crate::bundle::manifest::FileEntry;
use crate::graph::testing::Fixture;
use crate::graph::{TaskGraph, Work};
use crate::hash::ActionSpec;
use crate::ids::{TaskId, TaskKey};
use crate::model::ElementRef;
use crate::plan::{Change, ChangeKind, Plan, Refresh};
use crate::plan::{DiffOptions, diff};
use crate::state::{JournalEntry, RecordDetail, ShippedFile, State, TaskRecord};

/// Two SSH hosts (nothing connects), a bundle, a file, and steps that
/// show how change flows: `hello` reads `${greeting}` and its host's
/// `${label}`; `announce` waits for it on the same host, `collect` (on
/// the master) for it on every host; `init` is a `once` step that reads
/// `${greeting}` and has an undo, and `join` waits for it across hosts.
pub(crate) const BASE: &str = r#"version = 1
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
pub(crate) const GREETING_B: (&str, &str) = ("greeting = \"a\"", "greeting = \"b\"");

/// Blocks of `BASE`, to take out.
pub(crate) const N0: &str = r#"[[hosts]]
address = "10.0.0.2"
name = "n0"
roles = ["node"]
vars = { label = "n" }

"#;
pub(crate) const ANNOUNCE: &str = r#"[[steps]]
name = "announce"
after = ["hello"]
run = "echo announced"

"#;
pub(crate) const INIT: &str = r#"[[steps]]
name = "init"
on = "master"
once = true
after = ["install"]
run = "kubeadm init --token ${greeting}"
undo = "kubeadm reset -f"

"#;
pub(crate) const JOIN: &str = r#"[[steps]]
name = "join"
on = "node"
after = ["init@m0"]
run = "kubeadm join"

"#;

pub(crate) const BUNDLE: &[(&str, &str)] = &[
    ("web/index.html", "<h1>hi</h1>\n"),
    ("web/install.sh", "echo installed\n"),
];

/// `BASE` with each `(from, to)` replaced; `from` must occur once.
pub(crate) fn edited(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_string();
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "edit {from:?} matches once");
        text = text.replacen(from, to, 1);
    }
    text
}

pub(crate) fn id(text: &str) -> TaskId {
    TaskId::parse(text).unwrap_or_else(|e| panic!("{text} is a task id: {e}"))
}

/// A Clusterfile in its folder and the state applies leave behind.
pub(crate) struct World {
    pub(crate) fixture: Fixture,
    pub(crate) state: State,
}

impl World {
    pub(crate) fn new(clusterfile: &str) -> World {
        World::with_files(clusterfile, BUNDLE)
    }

    /// A world whose Clusterfile's folder holds `files` (path, text).
    pub(crate) fn with_files(clusterfile: &str, files: &[(&str, &str)]) -> World {
        let fixture = Fixture::new(clusterfile, files);
        let state = State::new(&fixture.model.name);
        World { fixture, state }
    }

    pub(crate) fn graph(&self) -> TaskGraph {
        self.fixture.graph(&self.state.salt)
    }

    pub(crate) fn diff(&self, graph: &TaskGraph, refresh: &Refresh, options: &DiffOptions) -> Plan {
        diff(&self.fixture.model, graph, &self.state, refresh, options)
    }

    /// The plan with nothing observed and nothing left out.
    pub(crate) fn plan(&self) -> (TaskGraph, Plan) {
        let graph = self.graph();
        let plan = self.diff(&graph, &Refresh::default(), &DiffOptions::default());
        (graph, plan)
    }

    /// What an apply that succeeds everywhere records: every task
    /// that runs or is adopted, with its new key and inputs, and every
    /// destroy forgotten; unchanged tasks keep their records.
    pub(crate) fn apply(&mut self, graph: &TaskGraph, plan: &Plan) {
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

    pub(crate) fn record(&mut self, graph: &TaskGraph, change: &Change) {
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
    pub(crate) fn converge(&mut self) {
        let (graph, plan) = self.plan();
        self.apply(&graph, &plan);
        let (_, again) = self.plan();
        assert!(!again.has_changes(), "converged: {:?}", outline(&again));
    }

    pub(crate) fn recorded_key(&self, task: &str) -> &TaskKey {
        &self.state.tasks[&id(task)].key
    }
}

/// Every change that is more than "unchanged", one line each, in plan
/// order: `update step.hello@m0: reason; reason [ignored: ...]`, with
/// `(adopt)` and `(drifted)` after the task when set.
pub(crate) fn outline(plan: &Plan) -> Vec<String> {
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

pub(crate) fn change<'p>(plan: &'p Plan, task: &str) -> &'p Change {
    plan.changes
        .iter()
        .find(|c| c.id.as_str() == task)
        .unwrap_or_else(|| panic!("{task} is in the plan"))
}
