//! Building the task graph from the model.
//!
//! [`compile`] prepares every bundle once (scan, patch; in parallel on
//! rayon), then makes a task for each (element, host) pair: a bundle synced,
//! a file shipped, or a step run, with its key inputs. Edges follow `after`:
//! `x` waits for x on the same host where x runs there, else on all its
//! hosts; `x@*` on all; `x@HOST` on that one. A patch bundle also waits for
//! the rootfs bundles it overlays. Every problem found is collected, and
//! only a graph without any is sealed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use rayon::prelude::*;

use super::{CompileError, Task, TaskGraph, Work, task_id};
use crate::bundle::manifest::{FileEntry, HashCache, hash_bytes};
use crate::bundle::{self, FileData, PreparedBundle, ShipFile};
use crate::hash::{ActionSpec, HostIdentity, KEY_FORMAT, KeyInputs, secret_fingerprint};
use crate::model::interp::Interp;
use crate::model::{
    BundleKind, DepScope, ElementRef, FileSource, HostId, Model, TransportKind, VarValue,
};

/// What compiling needs besides the model.
pub struct CompileOptions<'a> {
    /// Salt for secret fingerprints (kept in the state).
    pub salt: &'a str,
    pub hash_cache: &'a HashCache,
    /// Where unpacked archives are cached.
    pub cache_dir: PathBuf,
}

/// Builds and seals the task graph, or says everything that stops it (a
/// template that fails to render, a relative dest on an SSH host, ...), each
/// with its span in the Clusterfile.
pub fn compile(model: &Model, options: &CompileOptions) -> Result<TaskGraph, Vec<CompileError>> {
    let mut errors = Vec::new();
    let prepared: Vec<Option<Arc<PreparedBundle>>> = model
        .bundles
        .par_iter()
        .map(|b| bundle::prepare(b, options.hash_cache, &options.cache_dir).map(Arc::new))
        .collect::<Vec<_>>()
        .into_iter()
        .zip(&model.bundles)
        .map(|(result, b)| match result {
            Ok(p) => Some(p),
            Err(error) => {
                errors.push(CompileError::Bundle {
                    span: b.span.clone(),
                    error,
                });
                None
            }
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let prepared: Vec<Arc<PreparedBundle>> = prepared
        .into_iter()
        .map(|p| p.expect("checked above"))
        .collect();

    let mut builder = Builder {
        model,
        options,
        graph: DiGraph::new(),
        nodes: HashMap::new(),
        errors: Vec::new(),
    };
    builder.bundle_tasks(&prepared);
    builder.file_tasks();
    builder.step_tasks();
    builder.edges();
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    TaskGraph::seal(builder.graph, prepared).map_err(|e| vec![e])
}

struct Builder<'a> {
    model: &'a Model,
    options: &'a CompileOptions<'a>,
    graph: DiGraph<Task, ()>,
    nodes: HashMap<(ElementRef, HostId), NodeIndex>,
    errors: Vec<CompileError>,
}

impl Builder<'_> {
    fn identity(&self, host: HostId) -> HostIdentity {
        let h = self.model.host(host);
        HostIdentity {
            name: h.name.clone(),
            address: h.address.clone(),
            port: h.port,
            user: h.user.clone(),
            transport: h.transport,
        }
    }

    /// Values of the variables a set of strings reads, for the key.
    fn var_values(&self, host: HostId, strings: &[&Interp]) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for s in strings {
            for name in s.vars() {
                if self.model.captures.contains_key(name) && self.model.var(host, name).is_none() {
                    // Captured at run time: the producing step's key stands for it.
                    continue;
                }
                let value = match self.model.builtin(host, name) {
                    Some(v) => v,
                    None => match self.model.var(host, name) {
                        Some(VarValue::Secret { value, .. }) => {
                            secret_fingerprint(self.options.salt, value.expose())
                        }
                        Some(v) => v.as_text().unwrap_or_default().into_owned(),
                        None => continue,
                    },
                };
                vars.insert(name.to_string(), value);
            }
        }
        vars
    }

    /// Renders a destination path for a host; relative paths resolve against the Clusterfile's folder on local hosts.
    fn dest(
        &mut self,
        host: HostId,
        dest: &Interp,
        span: &std::ops::Range<usize>,
    ) -> Option<String> {
        let rendered = dest
            .render(|name| self.model.resolve(host, name, &|_| None))
            .ok()?;
        let h = self.model.host(host);
        let path = Path::new(&rendered);
        if path.is_absolute() {
            return Some(normalize(path));
        }
        if h.transport == TransportKind::Local {
            return Some(normalize(&self.model.base_dir.join(path)));
        }
        self.errors.push(CompileError::RelativeDest {
            span: span.clone(),
            dest: rendered,
            host: h.name.clone(),
        });
        None
    }

    fn add(&mut self, task: Task) {
        let key = (task.element, task.host);
        let node = self.graph.add_node(task);
        self.nodes.insert(key, node);
    }

    fn bundle_tasks(&mut self, prepared: &[Arc<PreparedBundle>]) {
        let model = self.model;
        // Destinations first: patch bundles overlay rootfs bundles with the same dest on the same host.
        let mut dests: BTreeMap<(usize, HostId), String> = BTreeMap::new();
        for (i, b) in model.bundles.iter().enumerate() {
            for &host in &b.hosts {
                if let Some(dest) = self.dest(host, &b.dest, &b.dest_span) {
                    dests.insert((i, host), dest);
                }
            }
        }
        // Rendering templates is per host and may be the bulk of the work: do it in parallel.
        let jobs: Vec<(usize, HostId)> = dests.keys().copied().collect();
        let rendered: Vec<Result<BTreeMap<String, ShipFile>, bundle::BundleError>> = jobs
            .par_iter()
            .map(|(i, host)| prepared[*i].render_for(model, *host))
            .collect();
        for ((i, host), result) in jobs.into_iter().zip(rendered) {
            let b = &model.bundles[i];
            let rendered = match result {
                Ok(r) => r,
                Err(error) => {
                    self.errors.push(CompileError::BundleForHost {
                        span: b.span.clone(),
                        host: model.host(host).name.clone(),
                        error,
                    });
                    continue;
                }
            };
            let dest = dests[&(i, host)].clone();
            let mut excluded = BTreeSet::new();
            if b.kind != BundleKind::Patch {
                for (j, other) in model.bundles.iter().enumerate() {
                    if other.kind == BundleKind::Patch && dests.get(&(j, host)) == Some(&dest) {
                        let theirs: BTreeSet<&str> = prepared[j].paths().collect();
                        excluded.extend(
                            prepared[i]
                                .base
                                .keys()
                                .filter(|p| theirs.contains(p.as_str()))
                                .cloned(),
                        );
                    }
                }
            }
            let inputs = KeyInputs {
                format: KEY_FORMAT,
                action: ActionSpec::Bundle {
                    name: b.name.clone(),
                    kind: b.kind,
                    dest: dest.clone(),
                    base_root: prepared[i].base_root.clone(),
                    rendered: rendered
                        .iter()
                        .map(|(p, f)| (p.clone(), f.entry.hash.clone()))
                        .collect(),
                    excluded: excluded.iter().cloned().collect(),
                },
                host: self.identity(host),
                vars: self.var_values(host, &[&b.dest]),
                deps: BTreeMap::new(),
            };
            self.add(Task {
                id: task_id(model, ElementRef::Bundle(i), host),
                host,
                element: ElementRef::Bundle(i),
                work: Work::Bundle {
                    bundle: i,
                    prepared: prepared[i].clone(),
                    rendered,
                    excluded,
                    dest,
                },
                inputs,
                once: false,
            });
        }
    }

    #[expect(
        clippy::too_many_lines,
        reason = "a file's whole way to its tasks, in order: read, parse as a template, render per host, key"
    )]
    fn file_tasks(&mut self) {
        let model = self.model;
        for (i, f) in model.files.iter().enumerate() {
            let raw = match &f.source {
                // Interpolated per host below.
                FileSource::Inline(text) => Ok(Arc::new(text.source.clone().into_bytes())),
                FileSource::Path(path) => std::fs::read(path).map(Arc::new).map_err(|source| {
                    CompileError::UnreadableFile {
                        span: f.span.clone(),
                        path: path.clone(),
                        source,
                    }
                }),
            };
            let raw = match raw {
                Ok(r) => r,
                Err(error) => {
                    self.errors.push(error);
                    continue;
                }
            };
            let mut engine = None;
            if f.template {
                let mut t = crate::bundle::template::Templates::new();
                let added = String::from_utf8(raw.to_vec())
                    .map_err(|_| {
                        "the source is not UTF-8 text, so it cannot be a template".to_string()
                    })
                    .and_then(|text| t.add(&f.name, text));
                if let Err(message) = added {
                    self.errors.push(CompileError::FileTemplate {
                        span: f.span.clone(),
                        name: f.name.clone(),
                        host: None,
                        message,
                    });
                    continue;
                }
                engine = Some(t);
            }
            for &host in &f.hosts {
                let Some(dest) = self.dest(host, &f.dest, &f.dest_span) else {
                    continue;
                };
                let bytes = match &engine {
                    Some(t) => match t.render(&f.name, &model.template_context(host)) {
                        Ok(text) => Arc::new(text.into_bytes()),
                        Err(message) => {
                            self.errors.push(CompileError::FileTemplate {
                                span: f.span.clone(),
                                name: f.name.clone(),
                                host: Some(model.host(host).name.clone()),
                                message,
                            });
                            continue;
                        }
                    },
                    None => match &f.source {
                        FileSource::Inline(text) => {
                            match text.render(|n| model.resolve(host, n, &|_| None)) {
                                Ok(rendered) => Arc::new(rendered.into_bytes()),
                                Err(missing) => {
                                    self.errors.push(CompileError::ContentValueMissing {
                                        span: f.span.clone(),
                                        var: missing,
                                        host: model.host(host).name.clone(),
                                    });
                                    continue;
                                }
                            }
                        }
                        FileSource::Path(_) => raw.clone(),
                    },
                };
                let hash = hash_bytes(&bytes);
                let content = ShipFile {
                    entry: FileEntry {
                        mode: f.mode,
                        size: bytes.len() as u64,
                        hash: hash.clone(),
                    },
                    data: FileData::Bytes(bytes),
                };
                let inputs = KeyInputs {
                    format: KEY_FORMAT,
                    action: ActionSpec::File {
                        name: f.name.clone(),
                        dest: dest.clone(),
                        mode: f.mode,
                        owner: f.owner.clone(),
                        content: hash,
                    },
                    host: self.identity(host),
                    vars: match &f.source {
                        FileSource::Inline(content) => self.var_values(host, &[&f.dest, content]),
                        FileSource::Path(_) => self.var_values(host, &[&f.dest]),
                    },
                    deps: BTreeMap::new(),
                };
                self.add(Task {
                    id: task_id(model, ElementRef::File(i), host),
                    host,
                    element: ElementRef::File(i),
                    work: Work::File {
                        file: i,
                        content,
                        dest,
                    },
                    inputs,
                    once: false,
                });
            }
        }
    }

    fn step_tasks(&mut self) {
        let model = self.model;
        for (i, s) in model.steps.iter().enumerate() {
            let strings: Vec<&Interp> = s.strings().collect();
            for &host in &s.hosts {
                let inputs = KeyInputs {
                    format: KEY_FORMAT,
                    action: ActionSpec::Step {
                        name: s.name.clone(),
                        run: s.run.source.clone(),
                        cwd: s.cwd.as_ref().map(|c| c.source.clone()),
                        check: s.check.as_ref().map(|c| c.source.clone()),
                        undo: s.undo.as_ref().map(|c| c.source.clone()),
                        capture: s.capture.clone(),
                        timeout_ms: s
                            .timeout
                            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                        retries: s.retries,
                        once: s.once,
                    },
                    host: self.identity(host),
                    vars: self.var_values(host, &strings),
                    deps: BTreeMap::new(),
                };
                self.add(Task {
                    id: task_id(model, ElementRef::Step(i), host),
                    host,
                    element: ElementRef::Step(i),
                    work: Work::Step { step: i },
                    inputs,
                    once: s.once,
                });
            }
        }
    }

    fn edges(&mut self) {
        let model = self.model;
        let mut edges: Vec<(NodeIndex, NodeIndex)> = Vec::new();
        // Every task of an element meets the same `after` entry: a wrong one
        // is reported once, not once per host.
        let mut reported: HashSet<usize> = HashSet::new();
        for (&(element, host), &node) in &self.nodes {
            for dep in model.element_after(element) {
                let target_hosts = model.element_hosts(dep.element);
                let hosts: Vec<HostId> = match dep.scope {
                    DepScope::SameHostElseAll if target_hosts.contains(&host) => vec![host],
                    DepScope::SameHostElseAll | DepScope::AllHosts => target_hosts.to_vec(),
                    DepScope::Host(h) => {
                        if !target_hosts.contains(&h) {
                            if !reported.insert(dep.span.start) {
                                continue;
                            }
                            self.errors.push(CompileError::NotOnHost {
                                span: dep.span.clone(),
                                element: model.element_name(dep.element).to_string(),
                                host: model.host(h).name.clone(),
                            });
                            continue;
                        }
                        vec![h]
                    }
                };
                for h in hosts {
                    if let Some(&upstream) = self.nodes.get(&(dep.element, h)) {
                        edges.push((upstream, node));
                    }
                }
            }
            if let ElementRef::Bundle(i) = element
                && model.bundles[i].kind == BundleKind::Patch
            {
                let dest = match &self.graph[node].work {
                    Work::Bundle { dest, .. } => dest.clone(),
                    _ => unreachable!("bundle element has bundle work"),
                };
                for (j, other) in model.bundles.iter().enumerate() {
                    if other.kind == BundleKind::Patch {
                        continue;
                    }
                    if let Some(&upstream) = self.nodes.get(&(ElementRef::Bundle(j), host))
                        && matches!(&self.graph[upstream].work, Work::Bundle { dest: d, .. } if *d == dest)
                    {
                        edges.push((upstream, node));
                    }
                }
            }
        }
        edges.sort();
        edges.dedup();
        for (a, b) in edges {
            self.graph.add_edge(a, b, ());
        }
    }
}

/// Removes `.` and trailing slashes so one folder has one spelling in keys.
fn normalize(path: &Path) -> String {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
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
address = "10.0.0.2-10.0.0.3"
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
}
