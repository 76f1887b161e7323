//! Checks that need the whole model: dependency cycles between elements,
//! and every `${var}` defined (and allowed) where it is read.
//!
//! Both work on the element graph (an edge from each element to what it
//! waits for), built from the model once every element is in it. A
//! `${var}` is checked per host that reads it: a variable may be defined in
//! `[vars]`, in some hosts' vars, or captured by a step, and what a string
//! may read depends on where it ends up ([`StringUse`]): paths are shown and
//! stored, so no secrets; plan-time values cannot wait for a capture.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use petgraph::graph::{DiGraph, NodeIndex};

use super::Validator;
use crate::diagnostic::Problem;
use crate::model::interp::{Interp, Piece, sub_span};
use crate::model::{BUILTINS, ElementRef, FileSource, Model, VarValue};
use crate::words::closest;

impl Validator<'_> {
    /// Element-level cycle check: `circular dependency a -> b -> a`.
    pub(super) fn cycles(&mut self, model: &Model) {
        let (graph, nodes) = element_graph(model);
        let sccs = petgraph::algo::tarjan_scc(&graph);
        for scc in sccs {
            if scc.len() < 2 && !graph.contains_edge(scc[0], scc[0]) {
                continue;
            }
            // Walk the cycle from its first element in file order.
            let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
            let start = *members
                .iter()
                .min_by_key(|n| nodes[n.index()])
                .expect("non-empty scc");
            let mut path = vec![start];
            let mut current = start;
            loop {
                let next = graph
                    .neighbors(current)
                    .filter(|n| members.contains(n))
                    .min_by_key(|n| (n != &start, nodes[n.index()]))
                    .expect("a member of a cycle has a successor in it");
                if next == start || path.contains(&next) {
                    path.push(next);
                    break;
                }
                path.push(next);
                current = next;
            }
            let names: Vec<&str> = path
                .iter()
                .map(|n| model.element_name(nodes[n.index()]))
                .collect();
            // Point at the `after` entry that closes the loop.
            // Edges point from an element to what it waits for, so the last
            // edge of the path is the `after` entry of the element before last.
            let first = nodes[path[0].index()];
            let before_last = nodes[path[path.len() - 2].index()];
            let last = nodes[path[path.len() - 1].index()];
            let span = model
                .element_after(before_last)
                .iter()
                .find(|d| d.element == last)
                .map_or_else(|| element_span(model, first), |d| d.span.clone());
            self.push(
                Problem::at(span, format!("circular dependency {}", names.join(" -> ")))
                    .label("closes the loop")
                    .help("remove one of these `after` entries so the order has a start"),
            );
        }
    }

    /// Every `${var}` must be defined on every host that reads it; captures
    /// must come from an upstream step that decides the value for that host.
    pub(super) fn var_references(&mut self, model: &Model) {
        let order = ElementOrder::of(model);
        let mut reported: BTreeSet<(String, usize)> = BTreeSet::new();
        for (element, interp, span, usage) in self.strings_of(model) {
            for piece in &interp.pieces {
                let Piece::Var { name, offset } = piece else {
                    continue;
                };
                let ref_span = sub_span(self.text, &span, &interp.source, *offset, name.len() + 3);
                if !reported.insert((name.clone(), ref_span.start))
                    || BUILTINS.contains(&name.as_str())
                    || model.role_list(name).is_some()
                    || bundle_dest_of(model, name).is_some()
                {
                    continue;
                }
                let is_secret = model
                    .element_hosts(element)
                    .iter()
                    .any(|h| matches!(model.var(*h, name), Some(VarValue::Secret { .. })));
                if matches!(usage, StringUse::Path | StringUse::WorkingDir) && is_secret {
                    self.push(
                        Problem::at(
                            ref_span,
                            format!("secret `{name}` cannot be part of a path"),
                        )
                        .label("a secret")
                        .help(
                            "paths are shown in plans and kept in the state; use a plain variable",
                        ),
                    );
                } else if let Some(&producer) = model.captures.get(name) {
                    if matches!(usage, StringUse::Script | StringUse::WorkingDir) {
                        self.captured_reference(model, &order, element, producer, name, ref_span);
                    } else {
                        self.push(
                            Problem::at(
                                ref_span,
                                format!("captured value `${{{name}}}` cannot be used here"),
                            )
                            .label("known only after apply")
                            .help("paths must be known at plan time; use a variable from [vars]"),
                        );
                    }
                } else {
                    self.variable_reference(model, element, name, ref_span);
                }
            }
        }
    }

    /// Every Clusterfile string of every element, with where it is and what it is for.
    fn strings_of<'m>(
        &self,
        model: &'m Model,
    ) -> Vec<(ElementRef, &'m Interp, Range<usize>, StringUse)> {
        let mut strings: Vec<(ElementRef, &Interp, Range<usize>, StringUse)> = Vec::new();
        for (i, b) in model.bundles.iter().enumerate() {
            strings.push((
                ElementRef::Bundle(i),
                &b.dest,
                b.dest_span.clone(),
                StringUse::Path,
            ));
        }
        for (i, f) in model.files.iter().enumerate() {
            strings.push((
                ElementRef::File(i),
                &f.dest,
                f.dest_span.clone(),
                StringUse::Path,
            ));
            if let FileSource::Inline(content) = &f.source {
                let span = self.find_string_span(&content.source, &f.span);
                strings.push((ElementRef::File(i), content, span, StringUse::Content));
            }
        }
        for (i, s) in model.steps.iter().enumerate() {
            for interp in s.strings() {
                let span = self.find_string_span(&interp.source, &s.span);
                let usage = if s.cwd.as_ref().is_some_and(|c| std::ptr::eq(c, interp)) {
                    StringUse::WorkingDir
                } else {
                    StringUse::Script
                };
                strings.push((ElementRef::Step(i), interp, span, usage));
            }
        }
        strings
    }

    /// `${name}` in a script, where `name` is captured by step `producer`:
    /// only after that step, and only where it decides one value.
    fn captured_reference(
        &mut self,
        model: &Model,
        order: &ElementOrder,
        element: ElementRef,
        producer: usize,
        name: &str,
        ref_span: Range<usize>,
    ) {
        let producer_node = order.index_of[&ElementRef::Step(producer)];
        let consumer_node = order.index_of[&element];
        // Edges point from an element to what it waits for.
        if producer_node == consumer_node
            || !petgraph::algo::has_path_connecting(
                &order.graph,
                consumer_node,
                producer_node,
                None,
            )
        {
            let producer_name = &model.steps[producer].name;
            self.push(
                    Problem::at(ref_span, format!("`${{{name}}}` is captured by step `{producer_name}`, which does not run before `{}`", model.element_name(element)))
                        .label("may not be known yet")
                        .help(format!("add `after = [\"{producer_name}\"]` so the value exists when this runs")),
                );
            return;
        }
        let producer_hosts = &model.steps[producer].hosts;
        for host in model.element_hosts(element) {
            if producer_hosts.len() > 1 && !producer_hosts.contains(host) {
                self.push(
                        Problem::at(ref_span.clone(), format!("`${{{name}}}` is ambiguous on host {}", model.host(*host).name))
                            .label("captured on several hosts")
                            .help(format!(
                                "step `{}` runs on {} hosts, not on {}; run it on one host (e.g. `on = \"master[0]\"`)",
                                model.steps[producer].name,
                                producer_hosts.len(),
                                model.host(*host).name
                            )),
                    );
                break;
            }
        }
    }

    /// `${name}` of a variable: defined for every host that reads it, and a
    /// scalar that can be put in a string.
    fn variable_reference(
        &mut self,
        model: &Model,
        element: ElementRef,
        name: &str,
        ref_span: Range<usize>,
    ) {
        let missing: Vec<&str> = model
            .element_hosts(element)
            .iter()
            .filter(|h| model.var(**h, name).is_none())
            .map(|h| model.host(*h).name.as_str())
            .collect();
        let defined_somewhere =
            model.vars.contains_key(name) || model.hosts.iter().any(|h| h.vars.contains_key(name));
        if missing.is_empty() && (defined_somewhere || !model.element_hosts(element).is_empty()) {
            if let Some(var) = model
                .element_hosts(element)
                .iter()
                .find_map(|h| model.var(*h, name))
                && var.as_text().is_none()
            {
                self.push(
                    Problem::at(ref_span, format!("variable `{name}` is a list or table"))
                        .label("cannot be put in a string")
                        .help("only strings, numbers and booleans interpolate; lists and tables are for templates"),
                );
            }
            return;
        }
        // Its definition failed and was reported there: one mistake, one error.
        if self.recovered.hides_var(name) || self.unresolved_vars.contains(name) {
            return;
        }
        // A bundle lost with its own error (a wrong key in it) is not named twice.
        if let Some(bundle) = name
            .strip_prefix("bundle.")
            .and_then(|rest| rest.strip_suffix(".dest"))
            && self.recovered.hides_element(bundle)
        {
            return;
        }
        let mut problem = if let Some(problem) = built_in_list_problem(model, name, &ref_span) {
            problem
        } else if defined_somewhere {
            Problem::at(
                ref_span,
                format!(
                    "variable `{name}` is not defined for host {}",
                    missing.join(", ")
                ),
            )
            .label("undefined on some hosts")
            .help(format!(
                "add `{name}` to [vars] or to the vars of {}",
                missing.join(", ")
            ))
        } else {
            let mut help = format!(
                "define it in [vars] or a host's vars, or capture it from a step; built-ins: {}",
                BUILTINS.join(", ")
            );
            let known = model
                .vars
                .keys()
                .chain(model.captures.keys())
                .chain(model.hosts.iter().flat_map(|h| h.vars.keys()));
            if let Some(close) = closest(
                name,
                known.chain(BUILTINS.iter().map(|_| &model.name).take(0)),
            ) {
                help = format!("did you mean `{close}`? {help}");
            } else if let Some(close) = closest(name, BUILTINS.iter()) {
                help = format!("did you mean `{close}`? {help}");
            }
            Problem::at(ref_span, format!("undefined variable `${{{name}}}`"))
                .label("not defined")
                .help(help)
        };
        if element_hosts_empty(model, element) {
            problem = problem.help("this element runs on no host");
        }
        self.push(problem);
    }

    /// The span of an element's string value (a step's script, a file's
    /// content): searched from the element's name on, since the raw
    /// value's own span is not kept in the model.
    fn find_string_span(&self, value: &str, after: &Range<usize>) -> Range<usize> {
        let first_line = value.lines().next().unwrap_or(value);
        if !first_line.is_empty()
            && let Some(pos) = self.text[after.start..].find(first_line)
        {
            let start = after.start + pos;
            return start..start + value.len().min(self.text.len() - start);
        }
        after.clone()
    }
}

/// Where a Clusterfile string ends up, which decides what it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringUse {
    /// A destination path: known at plan time, shown and stored, so no captures, no secrets.
    Path,
    /// Inline file content: no captures (it is hashed at plan time).
    Content,
    /// A step's `cwd`: kept in the state (its undo runs there), so no secrets.
    WorkingDir,
    /// A script (`run`, `check`, `undo`): anything, secrets travel on stdin.
    Script,
}

fn element_hosts_empty(model: &Model, element: ElementRef) -> bool {
    model.element_hosts(element).is_empty()
}

fn element_span(model: &Model, element: ElementRef) -> Range<usize> {
    match element {
        ElementRef::Bundle(i) => model.bundles[i].span.clone(),
        ElementRef::File(i) => model.files[i].span.clone(),
        ElementRef::Step(i) => model.steps[i].span.clone(),
    }
}

/// All elements, with an edge from each to what it waits for.
fn element_graph(model: &Model) -> (DiGraph<(), ()>, Vec<ElementRef>) {
    let mut nodes: Vec<ElementRef> = Vec::new();
    nodes.extend((0..model.bundles.len()).map(ElementRef::Bundle));
    nodes.extend((0..model.files.len()).map(ElementRef::File));
    nodes.extend((0..model.steps.len()).map(ElementRef::Step));
    let index: HashMap<ElementRef, usize> =
        nodes.iter().enumerate().map(|(i, e)| (*e, i)).collect();
    let mut graph = DiGraph::with_capacity(nodes.len(), nodes.len());
    for _ in &nodes {
        graph.add_node(());
    }
    for element in &nodes {
        for dep in model.element_after(*element) {
            graph.update_edge(
                NodeIndex::new(index[element]),
                NodeIndex::new(index[&dep.element]),
                (),
            );
        }
    }
    (graph, nodes)
}

/// The elements in a graph, each with an edge to what it waits for, to ask
/// whether one runs before another.
struct ElementOrder {
    graph: DiGraph<(), ()>,
    index_of: HashMap<ElementRef, NodeIndex>,
}

impl ElementOrder {
    fn of(model: &Model) -> ElementOrder {
        let (graph, nodes) = element_graph(model);
        let index_of = nodes
            .iter()
            .enumerate()
            .map(|(i, e)| (*e, NodeIndex::new(i)))
            .collect();
        ElementOrder { graph, index_of }
    }
}

/// The bundle a `bundle.NAME.dest` built-in names, if it is one.
fn bundle_dest_of<'m>(model: &'m Model, name: &str) -> Option<&'m crate::model::Bundle> {
    let bundle = name.strip_prefix("bundle.")?.strip_suffix(".dest")?;
    model.bundles.iter().find(|b| b.name == bundle)
}

/// The problem with a `bundle.NAME.dest` or `roles.ROLE.*` built-in that
/// names nothing (an unknown bundle or role, or another list); `None` for
/// other names.
fn built_in_list_problem(model: &Model, name: &str, ref_span: &Range<usize>) -> Option<Problem> {
    if let Some(rest) = name.strip_prefix("bundle.") {
        let bundle = rest.strip_suffix(".dest").unwrap_or(rest);
        let mut help = "write `bundle.NAME.dest` with a bundle's name".to_string();
        if let Some(close) = closest(bundle, model.bundles.iter().map(|b| &b.name)) {
            help = format!("did you mean `bundle.{close}.dest`? {help}");
        }
        return Some(
            Problem::at(
                ref_span.clone(),
                format!("`${{{name}}}` names no bundle's dest"),
            )
            .label("no such bundle")
            .help(help),
        );
    }
    let rest = name.strip_prefix("roles.")?;
    let (role, what) = rest.rsplit_once('.').unwrap_or((rest, ""));
    let roles: BTreeSet<&String> = model.hosts.iter().flat_map(|h| &h.roles).collect();
    if roles.iter().any(|r| *r == role) {
        return Some(
            Problem::at(
                ref_span.clone(),
                format!("`roles.{role}.{what}` is not a host list"),
            )
            .label("not a list")
            .help(format!(
                "write `roles.{role}.addresses` or `roles.{role}.names`"
            )),
        );
    }
    let listed: Vec<String> = roles.iter().map(|r| format!("`{r}`")).collect();
    let mut help = format!("roles are {}", listed.join(", "));
    if let Some(close) = closest(role, roles.iter().copied()) {
        help = format!("did you mean `{close}`? {help}");
    }
    Some(
        Problem::at(ref_span.clone(), format!("no host has the role `{role}`"))
            .label("unknown role")
            .help(help),
    )
}
