//! Building the task graph from the model.
//!
//! [`compile`] prepares every bundle once (scan, patch; in parallel on
//! rayon), then makes a task for each (element, host) pair: a bundle synced,
//! a file shipped, or a step run, with its key inputs. Edges follow `after`:
//! `x` waits for x on the same host where x runs there, else on all its
//! hosts; `x@*` on all; `x@HOST` on that one; waiting for a bundle also
//! waits for its hooks (a bundle is ready once they ran). A patch bundle
//! also waits for the rootfs bundles it overlays, and their hooks for it. Every problem found is collected, and
//! only a graph without any is sealed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use rayon::prelude::*;

use super::{CompileError, Task, TaskGraph, Work, task_id};
use crate::bundle::manifest::HashCache;
use crate::bundle::{self, PreparedBundle, ShipFile};
use crate::hash::{ActionSpec, HostIdentity, KEY_FORMAT, KeyInputs, secret_fingerprint};
use crate::model::interp::Interp;
use crate::model::{
    BundleKind, Dep, DepScope, ElementRef, FileSource, HostId, Model, TransportKind, VarValue,
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
                let content = ShipFile::from_bytes(bytes, f.mode);
                let hash = content.entry.hash.clone();
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
            // A hook's key names its command; the lines exporting its
            // variables are known from their names, which are in `vars`.
            let (run, undo) = match &s.hook {
                Some(hook) => (hook.command.clone(), hook.undo_command.clone()),
                None => (
                    s.run.source.clone(),
                    s.undo.as_ref().map(|c| c.source.clone()),
                ),
            };
            for &host in &s.hosts {
                let inputs = KeyInputs {
                    format: KEY_FORMAT,
                    action: ActionSpec::Step {
                        name: s.name.clone(),
                        run: run.clone(),
                        cwd: s.cwd.as_ref().map(|c| c.source.clone()),
                        check: s.check.as_ref().map(|c| c.source.clone()),
                        undo: undo.clone(),
                        capture: s.capture.clone(),
                        capture_secret: s.capture_secret,
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
            for dep in waits_of(model, element) {
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
                self.ready_edges(element, host, node, dep, &mut edges);
            }
            self.overlay_edges(element, host, node, &mut edges);
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

/// What `element`'s tasks wait for: its `after` entries, where an entry
/// naming an element with no task (a step on `master[1:]` with one master)
/// stands for what that element waits for, so order still runs through it.
fn waits_of(model: &Model, element: ElementRef) -> Vec<&Dep> {
    let mut waits = Vec::new();
    let mut seen = HashSet::new();
    let mut pending: Vec<&Dep> = model.element_after(element).iter().rev().collect();
    while let Some(dep) = pending.pop() {
        if model.element_hosts(dep.element).is_empty() {
            if seen.insert(dep.element) {
                pending.extend(model.element_after(dep.element).iter().rev());
            }
        } else {
            waits.push(dep);
        }
    }
    waits
}

impl Builder<'_> {
    /// A bundle is ready once its hooks ran: what waits for bundle `x`
    /// waits for each of x's hooks too, by the same rule applied to the
    /// hook's own hosts (the same host where it runs there, else all its
    /// hosts, so `init-registry` on the registry host; `x@*` all; `x@HOST`
    /// that host, where it runs there). A bundle's own hooks are left out:
    /// they are what makes it ready.
    fn ready_edges(
        &self,
        element: ElementRef,
        host: HostId,
        node: NodeIndex,
        dep: &crate::model::Dep,
        edges: &mut Vec<(NodeIndex, NodeIndex)>,
    ) {
        let model = self.model;
        let ElementRef::Bundle(b) = dep.element else {
            return;
        };
        if let ElementRef::Step(s) = element
            && model.steps[s].hook.as_ref().is_some_and(|h| h.bundle == b)
        {
            return;
        }
        for &hook in &model.bundles[b].hooks {
            let hook_hosts = &model.steps[hook].hosts;
            let hosts: Vec<HostId> = match dep.scope {
                DepScope::SameHostElseAll if hook_hosts.contains(&host) => vec![host],
                DepScope::SameHostElseAll | DepScope::AllHosts => hook_hosts.clone(),
                DepScope::Host(h) if hook_hosts.contains(&h) => vec![h],
                DepScope::Host(_) => Vec::new(),
            };
            for h in hosts {
                if let Some(&upstream) = self.nodes.get(&(ElementRef::Step(hook), h)) {
                    edges.push((upstream, node));
                }
            }
        }
    }

    /// A hook of a rootfs bundle runs once the patch bundles overlaying it
    /// (same host, same dest) landed too: sealos runs an image's scripts
    /// on the merged rootfs.
    fn overlay_edges(
        &self,
        element: ElementRef,
        host: HostId,
        node: NodeIndex,
        edges: &mut Vec<(NodeIndex, NodeIndex)>,
    ) {
        let model = self.model;
        let ElementRef::Step(s) = element else {
            return;
        };
        let Some(hook) = &model.steps[s].hook else {
            return;
        };
        if model.bundles[hook.bundle].kind == BundleKind::Patch {
            return;
        }
        let Some(&own) = self.nodes.get(&(ElementRef::Bundle(hook.bundle), host)) else {
            return;
        };
        let Work::Bundle { dest, .. } = &self.graph[own].work else {
            return;
        };
        for (j, other) in model.bundles.iter().enumerate() {
            if other.kind != BundleKind::Patch {
                continue;
            }
            if let Some(&patch) = self.nodes.get(&(ElementRef::Bundle(j), host))
                && matches!(&self.graph[patch].work, Work::Bundle { dest: d, .. } if d == dest)
            {
                edges.push((patch, node));
            }
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
#[path = "tests/build.rs"]
mod tests;
