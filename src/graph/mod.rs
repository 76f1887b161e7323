//! The task DAG: one task per action per host, built from the model and sealed.
//!
//! [`compile`] prepares every bundle once (scan, patch; in parallel on
//! rayon), then makes a task for each (element, host) pair: a bundle synced,
//! a file shipped, or a step run. Each task carries its [`KeyInputs`] minus
//! the dependency keys, which `plan` fills in topological order once it knows
//! which upstream tasks keep their recorded key (`once` steps). Edges follow
//! `after`: `x` waits for x on the same host where x runs there, else on all
//! its hosts; `x@*` on all; `x@HOST` on that one. A patch bundle also waits
//! for the rootfs bundles it overlays. Only a sealed [`TaskGraph`] (acyclic,
//! with its topological order) leaves this module.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use rayon::prelude::*;

use crate::bundle::manifest::{FileEntry, HashCache, hash_bytes};
use crate::bundle::{self, FileData, PreparedBundle, ShipFile};
use crate::diagnostic::Problem;
use crate::hash::{ActionSpec, HostIdentity, KEY_FORMAT, KeyInputs, secret_fingerprint};
use crate::ids::{TaskId, TaskKind};
use crate::model::interp::Interp;
use crate::model::{
    BundleKind, DepScope, ElementRef, FileSource, HostId, Model, TransportKind, VarValue,
};

/// The id of `element`'s task on `host`: `step.init@master0`.
pub fn task_id(model: &Model, element: ElementRef, host: HostId) -> TaskId {
    let kind = match element {
        ElementRef::Bundle(_) => TaskKind::Bundle,
        ElementRef::File(_) => TaskKind::File,
        ElementRef::Step(_) => TaskKind::Step,
    };
    TaskId::new(kind, model.element_name(element), &model.host(host).name)
}

/// What a task does when it runs.
#[derive(Debug, Clone)]
pub enum Work {
    Bundle {
        bundle: usize,
        prepared: Arc<PreparedBundle>,
        /// Templates rendered for this host.
        rendered: BTreeMap<String, ShipFile>,
        /// Base paths an overlaying patch bundle ships instead.
        excluded: BTreeSet<String>,
        dest: String,
    },
    File {
        file: usize,
        content: ShipFile,
        dest: String,
    },
    Step {
        step: usize,
    },
}

impl Work {
    /// Every file this task ships, with where its bytes come from.
    pub fn files(&self) -> BTreeMap<String, ShipFile> {
        match self {
            Work::Bundle {
                prepared,
                rendered,
                excluded,
                ..
            } => prepared
                .base
                .iter()
                .filter(|(path, _)| !excluded.contains(*path))
                .chain(rendered.iter())
                .map(|(p, f)| (p.clone(), f.clone()))
                .collect(),
            Work::File { content, .. } => BTreeMap::from([(String::new(), content.clone())]),
            Work::Step { .. } => BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    pub host: HostId,
    pub element: ElementRef,
    pub work: Work,
    /// Key inputs with `deps` empty; `plan` fills them.
    pub inputs: KeyInputs,
    pub once: bool,
}

/// A sealed, acyclic task graph. Edges point from a task to the tasks that wait for it.
#[derive(Debug)]
pub struct TaskGraph {
    graph: DiGraph<Task, ()>,
    order: Vec<NodeIndex>,
    by_id: HashMap<TaskId, NodeIndex>,
    /// Prepared bundles, by bundle index, for explaining content changes.
    pub bundles: Vec<Arc<PreparedBundle>>,
}

impl TaskGraph {
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn task(&self, node: NodeIndex) -> &Task {
        &self.graph[node]
    }

    pub fn find(&self, id: &TaskId) -> Option<NodeIndex> {
        self.by_id.get(id).copied()
    }

    /// Nodes in dependency order: every task after all it waits for.
    pub fn topological(&self) -> &[NodeIndex] {
        &self.order
    }

    /// What `node` waits for.
    pub fn upstream(&self, node: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph
            .edges_directed(node, petgraph::Direction::Incoming)
            .map(|e| e.source())
    }

    /// What waits for `node`.
    pub fn downstream(&self, node: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph
            .edges_directed(node, petgraph::Direction::Outgoing)
            .map(|e| e.target())
    }

    /// The graph in Graphviz DOT, tasks grouped by host.
    pub fn to_dot(&self, model: &Model) -> String {
        let mut out = String::from(
            "digraph cairn {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        for host in &model.hosts {
            let nodes: Vec<NodeIndex> = self
                .order
                .iter()
                .copied()
                .filter(|n| self.graph[*n].host == host.id)
                .collect();
            if nodes.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "  subgraph \"cluster_{}\" {{\n    label=\"{} ({})\";\n",
                escape(&host.name),
                escape(&host.name),
                escape(&host.address)
            ));
            for n in nodes {
                let t = &self.graph[n];
                let shape = match t.work {
                    Work::Bundle { .. } => "folder",
                    Work::File { .. } => "note",
                    Work::Step { .. } => "box",
                };
                out.push_str(&format!(
                    "    \"{}\" [label=\"{}\", shape={shape}];\n",
                    escape(t.id.as_str()),
                    escape(t.id.element_part())
                ));
            }
            out.push_str("  }\n");
        }
        for n in &self.order {
            for d in self.downstream(*n) {
                out.push_str(&format!(
                    "  \"{}\" -> \"{}\";\n",
                    escape(self.graph[*n].id.as_str()),
                    escape(self.graph[d].id.as_str())
                ));
            }
        }
        out.push_str("}\n");
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// What compiling needs besides the model.
pub struct CompileOptions<'a> {
    /// Salt for secret fingerprints (kept in the state).
    pub salt: &'a str,
    pub hash_cache: &'a HashCache,
    /// Where unpacked archives are cached.
    pub cache_dir: PathBuf,
}

/// Builds and seals the task graph. Problems (a template that fails to
/// render, a relative dest on an SSH host, ...) carry spans into the file.
pub fn compile(model: &Model, options: &CompileOptions) -> Result<TaskGraph, Vec<Problem>> {
    let mut problems = Vec::new();
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
                problems
                    .push(Problem::at(b.span.clone(), error.to_string()).label("in this bundle"));
                None
            }
        })
        .collect();
    if !problems.is_empty() {
        return Err(problems);
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
        problems: Vec::new(),
    };
    builder.bundle_tasks(&prepared);
    builder.file_tasks();
    builder.step_tasks();
    builder.edges();
    if !builder.problems.is_empty() {
        return Err(builder.problems);
    }
    let Builder { graph, nodes, .. } = builder;
    seal(graph, nodes, prepared)
}

fn seal(
    graph: DiGraph<Task, ()>,
    nodes: HashMap<(ElementRef, HostId), NodeIndex>,
    bundles: Vec<Arc<PreparedBundle>>,
) -> Result<TaskGraph, Vec<Problem>> {
    let order = match file_order_toposort(&graph) {
        Ok(order) => order,
        Err(node) => {
            let id = &graph[node].id;

            return Err(vec![Problem::new(None, format!("circular dependency through task {id}")).help(
                "the tasks of this element wait for each other across hosts; check `@HOST` references in `after`",
            )]);
        }
    };
    let by_id = nodes.values().map(|n| (graph[*n].id.clone(), *n)).collect();
    Ok(TaskGraph {
        graph,
        order,
        by_id,
        bundles,
    })
}

struct Builder<'a> {
    model: &'a Model,
    options: &'a CompileOptions<'a>,
    graph: DiGraph<Task, ()>,
    nodes: HashMap<(ElementRef, HostId), NodeIndex>,
    problems: Vec<Problem>,
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
        self.problems.push(
            Problem::at(
                span.clone(),
                format!(
                    "dest `{rendered}` is relative, but host {} is reached over SSH",
                    h.name
                ),
            )
            .label("relative path")
            .help("use an absolute path; relative dests are for `transport = \"local\"` hosts"),
        );
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
        let rendered: Vec<Result<BTreeMap<String, ShipFile>, String>> = jobs
            .par_iter()
            .map(|(i, host)| {
                prepared[*i]
                    .render_for(model, *host)
                    .map_err(|e| e.to_string())
            })
            .collect();
        for ((i, host), result) in jobs.into_iter().zip(rendered) {
            let b = &model.bundles[i];
            let rendered = match result {
                Ok(r) => r,
                Err(message) => {
                    self.problems.push(
                        Problem::at(
                            b.span.clone(),
                            format!("{message} (host {})", model.host(host).name),
                        )
                        .label("in this bundle"),
                    );
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

    fn file_tasks(&mut self) {
        let model = self.model;
        for (i, f) in model.files.iter().enumerate() {
            let raw = match &f.source {
                // Interpolated per host below.
                FileSource::Inline(text) => Ok(Arc::new(text.source.clone().into_bytes())),
                FileSource::Path(path) => std::fs::read(path)
                    .map(Arc::new)
                    .map_err(|e| format!("cannot read {}: {e}", path.display())),
            };
            let raw = match raw {
                Ok(r) => r,
                Err(message) => {
                    self.problems
                        .push(Problem::at(f.span.clone(), message).label("in this file"));
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
                    self.problems.push(
                        Problem::at(f.span.clone(), format!("template `{}`: {message}", f.name))
                            .label("in this file"),
                    );
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
                            self.problems.push(
                                Problem::at(
                                    f.span.clone(),
                                    format!(
                                        "template `{}`: {message} (host {})",
                                        f.name,
                                        model.host(host).name
                                    ),
                                )
                                .label("in this file"),
                            );
                            continue;
                        }
                    },
                    None => match &f.source {
                        FileSource::Inline(text) => {
                            match text.render(|n| model.resolve(host, n, &|_| None)) {
                                Ok(rendered) => Arc::new(rendered.into_bytes()),
                                Err(missing) => {
                                    self.problems.push(
                                        Problem::at(f.span.clone(), format!("`${{{missing}}}` in `content` has no value on host {}", model.host(host).name))
                                            .label("in this file"),
                                    );
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
                        timeout_ms: s.timeout.map(|t| t.as_millis() as u64),
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
        for (&(element, host), &node) in &self.nodes {
            for dep in model.element_after(element) {
                let target_hosts = model.element_hosts(dep.element);
                let hosts: Vec<HostId> = match dep.scope {
                    DepScope::SameHostElseAll if target_hosts.contains(&host) => vec![host],
                    DepScope::SameHostElseAll | DepScope::AllHosts => target_hosts.to_vec(),
                    DepScope::Host(h) => {
                        if !target_hosts.contains(&h) {
                            self.problems.push(
                                Problem::at(
                                    dep.span.clone(),
                                    format!(
                                        "`{}` does not run on host {}",
                                        model.element_name(dep.element),
                                        model.host(h).name
                                    ),
                                )
                                .label("nothing to wait for there")
                                .help("name a host it runs on, or write `@*` for all of them"),
                            );
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

/// Kahn's algorithm, always taking the ready task added first. Tasks are
/// added in Clusterfile order (bundles, files, steps; hosts in file order),
/// so plans and runs list tasks in an order a reader can follow, the same
/// every time. Returns a node on a cycle if there is one.
fn file_order_toposort(graph: &DiGraph<Task, ()>) -> Result<Vec<NodeIndex>, NodeIndex> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut waiting: Vec<usize> = graph
        .node_indices()
        .map(|n| {
            graph
                .edges_directed(n, petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<NodeIndex>> = graph
        .node_indices()
        .filter(|n| waiting[n.index()] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(graph.node_count());
    while let Some(Reverse(node)) = ready.pop() {
        order.push(node);
        for down in graph.neighbors_directed(node, petgraph::Direction::Outgoing) {
            waiting[down.index()] -= 1;
            if waiting[down.index()] == 0 {
                ready.push(Reverse(down));
            }
        }
    }
    if order.len() < graph.node_count() {
        let stuck = graph
            .node_indices()
            .find(|n| waiting[n.index()] > 0)
            .expect("some node is left");
        return Err(stuck);
    }
    Ok(order)
}
