//! Names that point at something else: element names, `on` selectors and
//! `after` references, resolved to element indexes and host ids.
//!
//! Element names are collected from the raw file before any element is
//! built, so an `after` may name an element defined further down. A name
//! that does not resolve is reported with a "did you mean", unless it
//! belongs to an item that failed to deserialize: that item's own error is
//! the one to fix, and a second report about it would only mislead.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use toml::Spanned;

use super::Validator;
use crate::clusterfile::raw::{RawClusterfile, RawSelectors, selector_items};
use crate::diagnostic::Problem;
use crate::model::selector::{SelectorError, positional, resolve};
use crate::model::{Dep, DepScope, ElementRef, Host, HostId};
use crate::words::closest;

/// Name → element, built before the elements so `after` can refer forward.
pub(super) type Names = HashMap<String, ElementRef>;

impl Validator<'_> {
    /// Bundles, files and steps share one namespace; a file without a
    /// `name` is named by its `dest`.
    pub(super) fn element_names(&mut self, raw: &RawClusterfile) -> Names {
        let mut names: Names = HashMap::new();
        let mut spans: HashMap<String, Range<usize>> = HashMap::new();
        let mut add = |v: &mut Self, name: String, span: Range<usize>, element: ElementRef| {
            if let Some(first) = spans.get(&name) {
                let line = v.line(first.start);
                v.push(
                    Problem::at(span, format!("duplicate name `{name}`"))
                        .label("already used")
                        .help(format!(
                            "steps, bundles and files share one namespace; `{name}` is first used at line {line}"
                        )),
                );
            } else {
                spans.insert(name.clone(), span);
                names.insert(name, element);
            }
        };
        for (i, b) in raw.bundles.iter().enumerate() {
            add(
                self,
                b.name.get_ref().clone(),
                b.name.span(),
                ElementRef::Bundle(i),
            );
        }
        for (i, f) in raw.files.iter().enumerate() {
            let (name, span) = match &f.name {
                Some(n) => (n.get_ref().clone(), n.span()),
                None => (f.dest.get_ref().clone(), f.dest.span()),
            };
            add(self, name, span, ElementRef::File(i));
        }
        for (i, s) in raw.steps.iter().enumerate() {
            add(
                self,
                s.name.get_ref().clone(),
                s.name.span(),
                ElementRef::Step(i),
            );
        }
        for (name, element) in &names {
            if name.contains('@') || name.is_empty() {
                let span = match element {
                    ElementRef::Bundle(i) => raw.bundles[*i].name.span(),
                    ElementRef::File(i) => raw.files[*i]
                        .name
                        .as_ref()
                        .map(toml::Spanned::span)
                        .unwrap_or(raw.files[*i].dest.span()),
                    ElementRef::Step(i) => raw.steps[*i].name.span(),
                };
                self.problems.push(
                    Problem::at(span, format!("invalid name `{name}`"))
                        .label("not a valid name")
                        .help("names must be non-empty and cannot contain `@` (it selects a host in `after`)"),
                );
            }
        }
        names
    }

    /// Resolves `on` to hosts (file order, no repeats). Default: every host.
    pub(super) fn selectors(
        &mut self,
        on: Option<&Spanned<RawSelectors>>,
        hosts: &[Host],
    ) -> Vec<HostId> {
        let Some(on) = on else {
            return hosts.iter().map(|h| h.id).collect();
        };
        let items = selector_items(on);
        if items.is_empty() {
            self.push(
                Problem::at(on.span(), "selector matches no host")
                    .label("empty list")
                    .help("name at least one role or host, or leave `on` out to mean every host"),
            );
            return Vec::new();
        }
        let mut selected: BTreeSet<HostId> = BTreeSet::new();
        for item in items {
            let text = item.get_ref().trim();
            let matched = self.selector(text, item.span(), hosts);
            selected.extend(matched);
        }
        selected.into_iter().collect()
    }

    /// One selector: `role`, `role[i]` (the i-th host of that role in file
    /// order), `role[i:j]` (a range of them), or a host's name or address, resolved as on the command line
    /// (`model::selector`); a positional one is remembered with its host.
    fn selector(&mut self, text: &str, span: Range<usize>, hosts: &[Host]) -> Vec<HostId> {
        match resolve(hosts, text) {
            Ok(ids) => {
                if let (Some((role, index)), [id]) = (positional(text), ids.as_slice())
                    && !index.contains(':')
                {
                    self.positions.insert(format!("{role}[{index}]"), *id);
                }
                ids
            }
            Err(SelectorError::BadIndex { .. }) => {
                self.push(
                    Problem::at(span, format!("invalid selector `{text}`"))
                        .label("bad index")
                        .help("write `role[0]` for the first host with that role, `role[1:]` for all but the first"),
                );
                Vec::new()
            }
            Err(SelectorError::OutOfRange { role, .. }) if self.recovered.hides_selector(&role) => {
                // A host of that role was lost with its own error: the count is not the file's.
                Vec::new()
            }
            Err(SelectorError::OutOfRange { role, count, .. }) => {
                self.push(
                    Problem::at(span, format!("selector `{text}` matches no host"))
                        .label("index out of range")
                        .help(format!(
                            "role `{role}` has {}: indexes 0 to {}",
                            crate::words::count(count, "host"),
                            count - 1
                        )),
                );
                Vec::new()
            }
            Err(SelectorError::Unknown { selector }) => {
                self.unknown_selector(&selector, span, hosts);
                Vec::new()
            }
            // `resolve` takes no globs (only the command line does): unreachable here.
            Err(SelectorError::Empty | SelectorError::BadGlob { .. }) => {
                self.unknown_selector(text, span, hosts);
                Vec::new()
            }
        }
    }

    /// Reports a selector that matched nothing, listing what would have.
    fn unknown_selector(&mut self, name: &str, span: Range<usize>, hosts: &[Host]) {
        if self.recovered.hides_selector(name) {
            return;
        }
        let roles: BTreeSet<&str> = hosts
            .iter()
            .flat_map(|h| h.roles.iter().map(String::as_str))
            .collect();
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).take(8).collect();
        let mut help = format!(
            "roles: {}; hosts: {}{}",
            if roles.is_empty() {
                "(none)".to_string()
            } else {
                roles.into_iter().collect::<Vec<_>>().join(", ")
            },
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            },
            if hosts.len() > 8 { ", ..." } else { "" }
        );
        if let Some(close) = closest(
            name,
            hosts
                .iter()
                .flat_map(|h| h.roles.iter().chain(std::iter::once(&h.name))),
        ) {
            help = format!("did you mean `{close}`? {help}");
        }
        self.push(
            Problem::at(span, format!("unknown role or host `{name}`"))
                .label("no host has this role or name")
                .help(help),
        );
    }

    /// Resolves `after` entries: `name`, `name@*` or `name@HOST`.
    pub(super) fn after(
        &mut self,
        raw: &[Spanned<String>],
        names: &Names,
        hosts: &[Host],
        own: &str,
    ) -> Vec<Dep> {
        let mut deps = Vec::new();
        for item in raw {
            let text = item.get_ref().trim();
            let (name, scope_text) = match text.split_once('@') {
                Some((n, s)) => (n, Some(s)),
                None => (text, None),
            };
            let Some(element) = names.get(name) else {
                if self.recovered.hides_element(name) {
                    continue;
                }
                let mut help =
                    "`after` names a step, bundle or file, optionally with `@*` or `@HOST`"
                        .to_string();
                if let Some(close) = closest(name, names.keys()) {
                    help = format!("did you mean `{close}`? {help}");
                }
                self.push(
                    Problem::at(
                        item.span(),
                        format!("unknown step, bundle or file `{name}`"),
                    )
                    .label("not defined")
                    .help(help),
                );
                continue;
            };
            if name == own {
                self.push(
                    Problem::at(item.span(), format!("`{own}` cannot wait for itself"))
                        .label("here")
                        .help("remove it from `after`"),
                );
                continue;
            }
            let scope = match scope_text {
                None => DepScope::SameHostElseAll,
                Some("*") => DepScope::AllHosts,
                Some(host) => {
                    if let Some(h) = hosts.iter().find(|h| h.name == host || h.address == host) {
                        DepScope::Host(h.id)
                    } else if self.recovered.hides_host(host) {
                        continue;
                    } else {
                        self.push(
                        Problem::at(item.span(), format!("unknown host `{host}` in `{text}`"))
                            .label("no such host")
                            .help("write `name@*` for all its hosts or `name@HOST` with a host name"),
                    );
                        continue;
                    }
                }
            };
            deps.push(Dep {
                element: *element,
                scope,
                span: item.span(),
            });
        }
        deps
    }
}
