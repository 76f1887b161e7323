//! Raw Clusterfile → [`Model`], checking meaning and collecting every problem.
//!
//! The passes run in the order the Clusterfile reads: header, `[ssh]`,
//! `[vars]`, hosts (addresses expanded, names given, duplicates found), then
//! the elements (bundles, files, steps) with their selectors and `after`
//! references, then whole-file checks that need everything: dependency
//! cycles, and every `${var}` defined on every host that reads it. A pass
//! never stops at a problem; it records it and carries on with what it can,
//! so one `cairn validate` lists all that is wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use petgraph::graph::{DiGraph, NodeIndex};
use toml::Spanned;

use super::interp::{Interp, Piece, sub_span};
use super::*;
use crate::clusterfile::Recovered;
use crate::clusterfile::raw::{self, RawClusterfile, RawSsh, RawVar, selector_items};
use crate::diagnostic::{Problem, Problems, SourceFile};

/// The only Clusterfile format this cairn reads.
pub const FORMAT_VERSION: i64 = 1;

/// Builds the model; every problem found goes to `problems`, and `None` is
/// returned when there was any.
pub fn validate(
    source: &SourceFile,
    raw: RawClusterfile,
    recovered: &Recovered,
    problems: &mut Problems,
) -> Option<Model> {
    let base_dir = absolute_dir(&source.path);
    let mut v = Validator {
        text: &source.text,
        base_dir: base_dir.clone(),
        problems,
        recovered,
    };
    let name = v.header(&raw);
    let defaults = v.ssh_defaults(raw.ssh.as_ref());
    let vars = v.vars(&raw.vars);
    let hosts = v.hosts(&raw.hosts, &defaults);
    let mut model = Model {
        name,
        path: source.path.clone(),
        base_dir,
        vars,
        hosts,
        bundles: Vec::new(),
        files: Vec::new(),
        steps: Vec::new(),
        captures: BTreeMap::new(),
    };
    let names = v.element_names(&raw);
    v.bundles(&raw, &mut model, &names);
    v.files(&raw, &mut model, &names);
    v.steps(&raw, &mut model, &names);
    // Every deserialized element is in the model (invalid parts replaced by
    // neutral values, their problems recorded), so these whole-file checks
    // can run alongside everything else.
    v.cycles(&model);
    v.var_references(&model);
    v.problems.is_empty().then_some(model)
}

fn absolute_dir(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

struct Validator<'a> {
    text: &'a str,
    base_dir: PathBuf,
    problems: &'a mut Problems,
    /// Items that failed to deserialize: not reported again as unknown references.
    recovered: &'a Recovered,
}

/// Resolved defaults from `[ssh]`.
struct SshDefaults {
    user: String,
    port: u16,
    settings: SshSettings,
}

/// Name → element, built before the elements so `after` can refer forward.
type Names = HashMap<String, ElementRef>;

impl Validator<'_> {
    fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    fn header(&mut self, raw: &RawClusterfile) -> String {
        if *raw.version.get_ref() != FORMAT_VERSION && raw.version.span() != (0..0) {
            self.push(
                Problem::at(
                    raw.version.span(),
                    format!("unsupported version {}", raw.version.get_ref()),
                )
                .label("this cairn reads version 1")
                .help("set `version = 1`; a newer Clusterfile needs a newer cairn"),
            );
        }
        let name = raw.name.get_ref().clone();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !name.starts_with('.');
        if !valid && raw.name.span() != (0..0) {
            self.push(
                Problem::at(raw.name.span(), format!("invalid cluster name `{name}`"))
                    .label("not a valid name")
                    .help("use letters, digits, `-`, `_` and `.` (it names the folder .cairn/<name>/)"),
            );
        }
        name
    }

    fn duration(&mut self, value: &Spanned<String>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref().trim()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.push(
                    Problem::at(value.span(), format!("{what} must be longer than zero"))
                        .label("zero")
                        .help("leave the key out for no limit"),
                );
                None
            }
            Err(_) => {
                self.push(
                    Problem::at(
                        value.span(),
                        format!("invalid duration `{}` for {what}", value.get_ref()),
                    )
                    .label("not a duration")
                    .help("write a number with a unit, e.g. \"30s\", \"5m\", \"1h 30m\""),
                );
                None
            }
        }
    }

    fn secret(&mut self, reference: &str, span: Range<usize>, what: &str) -> Option<Secret> {
        if let Some(name) = reference.strip_prefix("env:") {
            return match std::env::var(name) {
                Ok(value) => Some(Secret::new(value)),
                Err(_) => {
                    self.push(
                        Problem::at(
                            span,
                            format!("secret {what}: environment variable `{name}` is not set"),
                        )
                        .label("read from here")
                        .help(format!("export {name}=... before running cairn")),
                    );
                    None
                }
            };
        }
        if let Some(path) = reference.strip_prefix("file:") {
            let path = expand_home(path);
            let full = self.base_dir.join(&path);
            return match std::fs::read_to_string(&full) {
                Ok(mut value) => {
                    if value.ends_with('\n') {
                        value.pop();
                        if value.ends_with('\r') {
                            value.pop();
                        }
                    }
                    Some(Secret::new(value))
                }
                Err(error) => {
                    self.push(
                        Problem::at(
                            span,
                            format!("secret {what}: cannot read {}: {error}", full.display()),
                        )
                        .label("read from here")
                        .help("check the path (relative paths start at the Clusterfile's folder)"),
                    );
                    None
                }
            };
        }
        self.push(
            Problem::at(span, format!("secret {what}: unknown source `{reference}`"))
                .label("not env: or file:")
                .help("write `env:NAME` for an environment variable or `file:PATH` for a file"),
        );
        None
    }

    fn ssh_defaults(&mut self, raw: Option<&RawSsh>) -> SshDefaults {
        let base = SshDefaults {
            user: "root".into(),
            port: 22,
            settings: SshSettings {
                identity: None,
                sudo: false,
                sudo_password: None,
                host_keys: HostKeyPolicy::AcceptNew,
                jump: None,
                connect_timeout: Duration::from_secs(10),
            },
        };
        match raw {
            Some(raw) => self.ssh_overlay(&base, raw),
            None => base,
        }
    }

    fn ssh_overlay(&mut self, base: &SshDefaults, raw: &RawSsh) -> SshDefaults {
        let mut out = SshDefaults {
            user: base.user.clone(),
            port: base.port,
            settings: base.settings.clone(),
        };
        if let Some(user) = &raw.user {
            if user.get_ref().is_empty() || user.get_ref().contains(char::is_whitespace) {
                self.push(Problem::at(user.span(), "invalid ssh user").label("not a user name"));
            }
            out.user = user.get_ref().clone();
        }
        if let Some(port) = &raw.port {
            match u16::try_from(*port.get_ref()) {
                Ok(p) if p > 0 => out.port = p,
                _ => self.push(
                    Problem::at(port.span(), format!("invalid port {}", port.get_ref()))
                        .label("not a port")
                        .help("ports run from 1 to 65535"),
                ),
            }
        }
        if let Some(identity) = &raw.identity {
            out.settings.identity = Some(identity.get_ref().clone());
        }
        if let Some(sudo) = raw.sudo {
            out.settings.sudo = sudo;
        }
        if let Some(password) = &raw.sudo_password {
            out.settings.sudo_password =
                self.secret(password.get_ref(), password.span(), "ssh.sudo_password");
        }
        if let Some(policy) = &raw.host_keys {
            out.settings.host_keys = *policy.get_ref();
        }
        if let Some(jump) = &raw.jump {
            if let Err(error) = address::parse(jump.get_ref()) {
                self.push(
                    Problem::at(jump.span(), format!("invalid jump host: {error}")).label("here"),
                );
            }
            out.settings.jump = Some(jump.get_ref().clone());
        }
        if let Some(timeout) = &raw.connect_timeout
            && let Some(d) = self.duration(timeout, "connect_timeout")
        {
            out.settings.connect_timeout = d;
        }
        out
    }

    fn vars(&mut self, raw: &BTreeMap<String, Spanned<RawVar>>) -> BTreeMap<String, VarValue> {
        let mut vars = BTreeMap::new();
        for (name, value) in raw {
            let span = value.span();
            let key_span = self.key_span(name, &span);
            if !interp::is_var_name(name) {
                self.push(
                    Problem::at(key_span, format!("invalid variable name `{name}`"))
                        .label("not a name")
                        .help("start with a letter or `_`; then letters, digits, `_`, `-`"),
                );
                continue;
            }
            if name == "cluster" || name == "host" || name.starts_with("host.") {
                self.push(
                    Problem::at(key_span, format!("variable `{name}` is built in"))
                        .label("reserved name")
                        .help(format!(
                            "choose another name; built-ins are {}",
                            BUILTINS.join(", ")
                        )),
                );
                continue;
            }
            let resolved = match value.get_ref() {
                RawVar::Secret(secret) => self
                    .secret(&secret.secret, span, &format!("`{name}`"))
                    .map(|value| VarValue::Secret {
                        reference: secret.secret.clone(),
                        value,
                    }),
                RawVar::Value(v) => Some(VarValue::Plain(v.clone())),
            };
            if let Some(resolved) = resolved {
                vars.insert(name.clone(), resolved);
            }
        }
        vars
    }

    /// Finds the span of a table key just before its value, for messages about the name.
    fn key_span(&self, name: &str, value_span: &Range<usize>) -> Range<usize> {
        let before = &self.text[..value_span.start.min(self.text.len())];
        match before.rfind(name) {
            Some(pos) if value_span.start - pos < name.len() + 16 => pos..pos + name.len(),
            _ => value_span.clone(),
        }
    }

    fn hosts(&mut self, raw: &[raw::RawHost], defaults: &SshDefaults) -> Vec<Host> {
        let mut hosts: Vec<Host> = Vec::new();
        let mut role_counts: HashMap<String, usize> = HashMap::new();
        let mut seen_names: HashMap<String, Range<usize>> = HashMap::new();
        let mut seen_addresses: HashMap<(String, u16), Range<usize>> = HashMap::new();
        for entry in raw {
            let span = entry.address.span();
            let addresses = match address::parse(entry.address.get_ref()) {
                Ok(a) => a,
                Err(error) => {
                    self.push(
                        Problem::at(
                            span,
                            format!("invalid address `{}`: {error}", entry.address.get_ref()),
                        )
                        .label("bad address")
                        .help(
                            "write `addr`, `user@addr:port`, or a range like `10.0.0.5-10.0.0.9`",
                        ),
                    );
                    continue;
                }
            };
            if let Some(name) = &entry.name
                && addresses.len() > 1
            {
                self.push(
                    Problem::at(name.span(), "a name cannot be given to a range of hosts")
                        .label("one name, many hosts")
                        .help("drop `name` (hosts are then named by role and index) or list the hosts one by one"),
                );
            }
            let mut roles = Vec::new();
            for role in &entry.roles {
                let r = role.get_ref();
                if !is_plain_name(r) {
                    self.push(
                        Problem::at(role.span(), format!("invalid role `{r}`"))
                            .label("not a role name")
                            .help("use letters, digits, `-`, `_` and `.`"),
                    );
                } else if !roles.contains(r) {
                    roles.push(r.clone());
                }
            }
            let ssh = match &entry.ssh {
                Some(raw_ssh) => self.ssh_overlay(defaults, raw_ssh),
                None => SshDefaults {
                    user: defaults.user.clone(),
                    port: defaults.port,
                    settings: defaults.settings.clone(),
                },
            };
            let vars = self.vars(&entry.vars);
            let transport = entry
                .transport
                .as_ref()
                .map(|t| *t.get_ref())
                .unwrap_or(TransportKind::Ssh);
            if let Some(name) = &entry.name
                && !is_plain_name(name.get_ref())
            {
                self.push(
                    Problem::at(name.span(), format!("invalid host name `{}`", name.get_ref()))
                        .label("not a host name")
                        .help("use letters, digits, `-`, `_` and `.` (`@` and `*` select hosts in `after`)"),
                );
            }
            for addr in addresses {
                let name = match &entry.name {
                    Some(name) => name.get_ref().clone(),
                    None => {
                        let prefix = roles.first().cloned().unwrap_or_else(|| "host".into());
                        let n = role_counts.entry(prefix.clone()).or_default();
                        *n += 1;
                        format!("{prefix}{}", *n - 1)
                    }
                };
                let name_span = entry
                    .name
                    .as_ref()
                    .map(|n| n.span())
                    .unwrap_or(span.clone());
                if let Some(first) = seen_names.insert(name.clone(), name_span.clone()) {
                    self.push(
                        Problem::at(name_span.clone(), format!("duplicate host name `{name}`"))
                            .label("second host with this name")
                            .help(format!(
                                "the first is at line {}; give one of them another `name`",
                                self.line(first.start)
                            )),
                    );
                }
                let port = addr.port.unwrap_or(ssh.port);
                if transport == TransportKind::Ssh
                    && let Some(first) =
                        seen_addresses.insert((addr.host.clone(), port), span.clone())
                {
                    self.push(
                        Problem::at(span.clone(), format!("duplicate host {}:{port}", addr.host))
                            .label("listed twice")
                            .help(format!(
                                "the first is at line {}; remove one of them",
                                self.line(first.start)
                            )),
                    );
                }
                hosts.push(Host {
                    id: HostId(hosts.len()),
                    name,
                    address: addr.host,
                    user: addr.user.unwrap_or_else(|| ssh.user.clone()),
                    port,
                    roles: roles.clone(),
                    vars: vars.clone(),
                    transport,
                    ssh: ssh.settings.clone(),
                    index: hosts.len(),
                    span: span.clone(),
                });
            }
        }
        hosts
    }

    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn element_names(&mut self, raw: &RawClusterfile) -> Names {
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
                        .map(|n| n.span())
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
    fn selectors(
        &mut self,
        on: Option<&Spanned<raw::RawSelectors>>,
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

    fn selector(&mut self, text: &str, span: Range<usize>, hosts: &[Host]) -> Vec<HostId> {
        let (role, index) = match text.strip_suffix(']').and_then(|t| t.split_once('[')) {
            Some((role, index)) => match index.trim().parse::<usize>() {
                Ok(i) => (role.trim(), Some(i)),
                Err(_) => {
                    self.push(
                        Problem::at(span, format!("invalid selector `{text}`"))
                            .label("bad index")
                            .help("write `role[0]` for the first host with that role"),
                    );
                    return Vec::new();
                }
            },
            None => (text, None),
        };
        let with_role: Vec<HostId> = hosts
            .iter()
            .filter(|h| h.roles.iter().any(|r| r == role))
            .map(|h| h.id)
            .collect();
        if let Some(i) = index {
            if with_role.is_empty() {
                self.unknown_selector(role, span, hosts);
                return Vec::new();
            }
            return match with_role.get(i) {
                Some(id) => vec![*id],
                None => {
                    self.push(
                        Problem::at(span, format!("selector `{text}` matches no host"))
                            .label("index out of range")
                            .help(format!(
                                "role `{role}` has {} host{}: indexes 0 to {}",
                                with_role.len(),
                                if with_role.len() == 1 { "" } else { "s" },
                                with_role.len() - 1
                            )),
                    );
                    Vec::new()
                }
            };
        }
        if !with_role.is_empty() {
            return with_role;
        }
        if let Some(host) = hosts.iter().find(|h| h.name == role || h.address == role) {
            return vec![host.id];
        }
        self.unknown_selector(role, span, hosts);
        Vec::new()
    }

    fn unknown_selector(&mut self, name: &str, span: Range<usize>, hosts: &[Host]) {
        if self.recovered.roles.contains(name) || self.recovered.names.contains(name) {
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

    fn interp(&mut self, value: &Spanned<String>) -> Option<Interp> {
        match Interp::parse(value.get_ref()) {
            Ok(i) => Some(i),
            Err(error) => {
                let span = sub_span(self.text, &value.span(), value.get_ref(), error.offset, 2);
                self.push(Problem::at(span, error.message).label("here"));
                None
            }
        }
    }

    fn after(
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
                if self.recovered.names.contains(name) {
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
                Some(host) => match hosts.iter().find(|h| h.name == host || h.address == host) {
                    Some(h) => DepScope::Host(h.id),
                    None => {
                        self.push(
                            Problem::at(item.span(), format!("unknown host `{host}` in `{text}`"))
                                .label("no such host")
                                .help("write `name@*` for all its hosts or `name@HOST` with a host name"),
                        );
                        continue;
                    }
                },
            };
            deps.push(Dep {
                element: *element,
                scope,
                span: item.span(),
            });
        }
        deps
    }

    fn source_path(&mut self, value: &Spanned<String>) -> Option<PathBuf> {
        let path = self.base_dir.join(expand_home(value.get_ref()));
        if path.exists() {
            Some(path)
        } else {
            self.push(
                Problem::at(
                    value.span(),
                    format!("source `{}` does not exist", value.get_ref()),
                )
                .label("not found")
                .help(format!(
                    "paths are relative to the Clusterfile's folder ({})",
                    self.base_dir.display()
                )),
            );
            None
        }
    }

    fn bundles(&mut self, raw: &RawClusterfile, model: &mut Model, names: &Names) {
        for b in &raw.bundles {
            let name = b.name.get_ref().clone();
            let hosts = self.selectors(b.on.as_ref(), &model.hosts);
            let kind = b
                .kind
                .as_ref()
                .map(|k| *k.get_ref())
                .unwrap_or(BundleKind::Rootfs);
            let hosts = if kind == BundleKind::App {
                hosts.into_iter().take(1).collect()
            } else {
                hosts
            };
            let source = self.source_path(&b.source);
            let mut archive = false;
            if let Some(path) = &source {
                let text = path.to_string_lossy();
                archive = text.ends_with(".tar.zst") || text.ends_with(".tzst");
                if !path.is_dir() && !archive {
                    self.push(
                        Problem::at(
                            b.source.span(),
                            format!(
                                "bundle source `{}` is neither a directory nor a .tar.zst",
                                b.source.get_ref()
                            ),
                        )
                        .label("not a bundle")
                        .help("point `source` at a folder of files or a .tar.zst archive of one"),
                    );
                }
            }
            let default_dest = match kind {
                BundleKind::App => format!("/var/lib/cairn/${{cluster}}/apps/{name}"),
                _ => "/var/lib/cairn/${cluster}/rootfs".to_string(),
            };
            let dest_raw = b
                .dest
                .clone()
                .unwrap_or_else(|| Spanned::new(b.name.span(), default_dest));
            let dest = self.interp(&dest_raw);
            let mut templates = Vec::new();
            for pattern in &b.templates {
                match globset::Glob::new(pattern.get_ref()) {
                    Ok(_) => templates.push(pattern.get_ref().clone()),
                    Err(error) => self.push(
                        Problem::at(
                            pattern.span(),
                            format!("invalid glob `{}`: {}", pattern.get_ref(), error.kind()),
                        )
                        .label("bad pattern")
                        .help("globs look like `etc/**/*.tmpl`"),
                    ),
                }
            }
            let after = self.after(&b.after, names, &model.hosts, &name);
            {
                let source = source.unwrap_or_else(|| self.base_dir.join(b.source.get_ref()));
                let dest = dest.unwrap_or_else(|| Interp::literal(dest_raw.get_ref()));
                model.bundles.push(Bundle {
                    name,
                    source,
                    archive,
                    kind,
                    hosts,
                    dest,
                    dest_span: dest_raw.span(),
                    templates,
                    configs: Vec::new(),
                    after,
                    span: b.name.span(),
                });
            }
        }
        for c in &raw.configs {
            let Some(bundle) = model
                .bundles
                .iter_mut()
                .find(|b| &b.name == c.bundle.get_ref())
            else {
                let mut help = "`bundle` names a [[bundles]] entry".to_string();
                if let Some(close) = closest(
                    c.bundle.get_ref(),
                    raw.bundles.iter().map(|b| b.name.get_ref()),
                ) {
                    help = format!("did you mean `{close}`? {help}");
                }
                if !raw
                    .bundles
                    .iter()
                    .any(|b| b.name.get_ref() == c.bundle.get_ref())
                {
                    self.push(
                        Problem::at(
                            c.bundle.span(),
                            format!("unknown bundle `{}`", c.bundle.get_ref()),
                        )
                        .label("not defined")
                        .help(help),
                    );
                }
                continue;
            };
            let path = c.path.get_ref().trim_start_matches("./").to_string();
            if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == "..") {
                self.push(
                    Problem::at(
                        c.path.span(),
                        format!("invalid config path `{}`", c.path.get_ref()),
                    )
                    .label("not a path inside the bundle")
                    .help(
                        "write the file's path relative to the bundle root, e.g. `etc/kubeadm.yml`",
                    ),
                );
                continue;
            }
            let strategy = c
                .strategy
                .as_ref()
                .map(|s| *s.get_ref())
                .unwrap_or(ConfigStrategy::Merge);
            if bundle.source.is_dir() && strategy != ConfigStrategy::Override {
                let plain = bundle.source.join(&path);
                let template = bundle.source.join(format!("{path}.tmpl"));
                if !plain.is_file() && !template.is_file() {
                    self.push(
                        Problem::at(c.path.span(), format!("bundle `{}` has no file `{path}`", bundle.name))
                            .label("not in the bundle")
                            .help("only `override` may create a file; check the path (templates are named without `.tmpl`)"),
                    );
                    continue;
                }
            }
            let strategy = match strategy {
                ConfigStrategy::Merge => match ConfigFormat::of_path(&path) {
                    Some(format) => PatchStrategy::Merge(format),
                    None => {
                        self.push(
                            Problem::at(c.path.span(), format!("cannot merge into `{path}`: unknown format"))
                                .label("not .yaml, .yml, .json or .toml")
                                .help("merge works on YAML, JSON and TOML files; use `override`, `insert` or `append` for others"),
                        );
                        continue;
                    }
                },
                ConfigStrategy::Override => PatchStrategy::Override,
                ConfigStrategy::Insert => PatchStrategy::Insert,
                ConfigStrategy::Append => PatchStrategy::Append,
            };
            bundle.configs.push(ConfigPatch {
                path,
                strategy,
                data: c.data.get_ref().clone(),
                span: c.data.span(),
            });
        }
    }

    fn files(&mut self, raw: &RawClusterfile, model: &mut Model, names: &Names) {
        for f in &raw.files {
            let name = f
                .name
                .as_ref()
                .map(|n| n.get_ref().clone())
                .unwrap_or_else(|| f.dest.get_ref().clone());
            let hosts = self.selectors(f.on.as_ref(), &model.hosts);
            let source = match (&f.source, &f.content) {
                (Some(path), None) => self.source_path(path).map(|p| {
                    if p.is_dir() {
                        self.problems.push(
                            Problem::at(
                                path.span(),
                                format!("`{}` is a directory", path.get_ref()),
                            )
                            .label("not a file")
                            .help("ship directories as a [[bundles]] entry"),
                        );
                    }
                    FileSource::Path(p)
                }),
                (None, Some(content)) if f.template => {
                    Some(FileSource::Inline(Interp::literal(content)))
                }
                (None, Some(content)) => {
                    let span = f.dest.span();
                    match Interp::parse(content) {
                        Ok(i) => Some(FileSource::Inline(i)),
                        Err(error) => {
                            self.push(
                                Problem::at(span, format!("in `content`: {}", error.message))
                                    .label("in this file's content"),
                            );
                            None
                        }
                    }
                }
                (Some(path), Some(_)) => {
                    self.push(
                        Problem::at(path.span(), "both `source` and `content` are set")
                            .label("one too many")
                            .help(
                                "keep `source` (a local file) or `content` (inline text), not both",
                            ),
                    );
                    None
                }
                (None, None) => {
                    self.push(
                        Problem::at(
                            f.dest.span(),
                            format!("file `{name}` has neither `source` nor `content`"),
                        )
                        .label("what goes here?")
                        .help("add `source = \"path/to/file\"` or `content = \"...\"`"),
                    );
                    None
                }
            };
            let mode = match &f.mode {
                None => Some(0o644),
                Some(m) => match u32::from_str_radix(m.get_ref().trim_start_matches("0o"), 8) {
                    Ok(mode) if mode <= 0o7777 => Some(mode),
                    _ => {
                        self.push(
                            Problem::at(m.span(), format!("invalid mode `{}`", m.get_ref()))
                                .label("not an octal mode")
                                .help("write the mode as an octal string, e.g. \"0640\""),
                        );
                        None
                    }
                },
            };
            if let Some(owner) = &f.owner {
                let o = owner.get_ref();
                let ok = !o.is_empty()
                    && o.split(':').count() <= 2
                    && o.split(':').all(|p| {
                        !p.is_empty()
                            && p.chars()
                                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    });
                if !ok {
                    self.push(
                        Problem::at(owner.span(), format!("invalid owner `{o}`"))
                            .label("not user[:group]")
                            .help("write `user` or `user:group`, e.g. \"root:root\""),
                    );
                }
            }
            let dest = self
                .interp(&f.dest)
                .unwrap_or_else(|| Interp::literal(f.dest.get_ref()));
            let after = self.after(&f.after, names, &model.hosts, &name);
            {
                let source = source.unwrap_or_else(|| FileSource::Inline(Interp::literal("")));
                let mode = mode.unwrap_or(0o644);
                model.files.push(FileSpec {
                    name,
                    source,
                    dest,
                    dest_span: f.dest.span(),
                    template: f.template,
                    mode,
                    owner: f.owner.as_ref().map(|o| o.get_ref().clone()),
                    hosts,
                    after,
                    span: f.name.as_ref().map(|n| n.span()).unwrap_or(f.dest.span()),
                });
            }
        }
    }

    fn steps(&mut self, raw: &RawClusterfile, model: &mut Model, names: &Names) {
        for s in &raw.steps {
            let name = s.name.get_ref().clone();
            let hosts = self.selectors(s.on.as_ref(), &model.hosts);
            let run = self.interp(&s.run);
            if s.run.get_ref().trim().is_empty() {
                self.push(
                    Problem::at(s.run.span(), "`run` is empty")
                        .label("nothing to run")
                        .help("write the shell command to run"),
                );
            }
            let cwd = s.cwd.as_ref().map(|c| self.interp(c));
            let check = s.check.as_ref().map(|c| self.interp(c));
            let undo = s.undo.as_ref().map(|c| self.interp(c));
            let timeout = s.timeout.as_ref().map(|t| self.duration(t, "timeout"));
            let retries = match &s.retries {
                None => Some(0),
                Some(r) => match u32::try_from(*r.get_ref()) {
                    Ok(n) if n <= 100 => Some(n),
                    _ => {
                        self.push(
                            Problem::at(r.span(), format!("invalid retries {}", r.get_ref()))
                                .label("out of range")
                                .help("retries is a count from 0 to 100"),
                        );
                        None
                    }
                },
            };
            let capture = s.capture.as_ref().and_then(|c| {
                let cname = c.get_ref();
                if !interp::is_var_name(cname) {
                    self.push(
                        Problem::at(c.span(), format!("invalid capture name `{cname}`"))
                            .label("not a variable name"),
                    );
                    return None;
                }
                if model.vars.contains_key(cname)
                    || model.hosts.iter().any(|h| h.vars.contains_key(cname))
                    || BUILTINS.contains(&cname.as_str())
                {
                    self.push(
                        Problem::at(
                            c.span(),
                            format!("capture `{cname}` has the name of a variable"),
                        )
                        .label("already a variable")
                        .help("give the capture a name no variable uses"),
                    );
                    return None;
                }
                if let Some(&other) = model.captures.get(cname) {
                    self.push(
                        Problem::at(c.span(), format!("`{cname}` is captured twice"))
                            .label("second capture")
                            .help(format!(
                                "step `{}` captures it already; use another name",
                                raw.steps[other].name.get_ref()
                            )),
                    );
                    return None;
                }
                Some(cname.clone())
            });
            let after = self.after(&s.after, names, &model.hosts, &name);
            if let Some(c) = &capture {
                model.captures.insert(c.clone(), model.steps.len());
            }
            // Invalid parts become neutral values: their problems are recorded,
            // and the step stays in place so indexes match `after` references.
            let run = run.unwrap_or_else(|| Interp::literal(s.run.get_ref()));
            let cwd = cwd.flatten();
            let check = check.flatten();
            let undo = undo.flatten();
            let timeout = timeout.flatten();
            let retries = retries.unwrap_or(0);
            model.steps.push(Step {
                name,
                hosts,
                run,
                cwd,
                check,
                undo,
                capture,
                timeout,
                retries,
                once: s.once,
                after,
                span: s.name.span(),
            });
        }
    }

    /// Element-level cycle check: `circular dependency a -> b -> a`.
    fn cycles(&mut self, model: &Model) {
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
                .map(|d| d.span.clone())
                .unwrap_or_else(|| element_span(model, first));
            self.push(
                Problem::at(span, format!("circular dependency {}", names.join(" -> ")))
                    .label("closes the loop")
                    .help("remove one of these `after` entries so the order has a start"),
            );
        }
    }

    /// Every `${var}` must be defined on every host that reads it; captures
    /// must come from an upstream step that decides the value for that host.
    fn var_references(&mut self, model: &Model) {
        let (graph, nodes) = element_graph(model);
        let index_of: HashMap<ElementRef, NodeIndex> = nodes
            .iter()
            .enumerate()
            .map(|(i, e)| (*e, NodeIndex::new(i)))
            .collect();
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
        let mut reported: BTreeSet<(String, usize)> = BTreeSet::new();
        for (element, interp, span, usage) in strings {
            let captures_allowed = matches!(usage, StringUse::Script | StringUse::WorkingDir);
            for piece in &interp.pieces {
                let Piece::Var { name, offset } = piece else {
                    continue;
                };
                let ref_span = sub_span(self.text, &span, &interp.source, *offset, name.len() + 3);
                if !reported.insert((name.clone(), ref_span.start)) {
                    continue;
                }
                if BUILTINS.contains(&name.as_str()) {
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
                    continue;
                }
                if let Some(&producer) = model.captures.get(name) {
                    if !captures_allowed {
                        self.push(
                            Problem::at(
                                ref_span,
                                format!("captured value `${{{name}}}` cannot be used here"),
                            )
                            .label("known only after apply")
                            .help("paths must be known at plan time; use a variable from [vars]"),
                        );
                        continue;
                    }
                    let producer_node = index_of[&ElementRef::Step(producer)];
                    let consumer_node = index_of[&element];
                    // Edges point from an element to what it waits for.
                    if producer_node == consumer_node
                        || !petgraph::algo::has_path_connecting(
                            &graph,
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
                        continue;
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
                    continue;
                }
                let missing: Vec<&str> = model
                    .element_hosts(element)
                    .iter()
                    .filter(|h| model.var(**h, name).is_none())
                    .map(|h| model.host(*h).name.as_str())
                    .collect();
                let defined_somewhere = model.vars.contains_key(name)
                    || model.hosts.iter().any(|h| h.vars.contains_key(name));
                if missing.is_empty()
                    && (defined_somewhere || !model.element_hosts(element).is_empty())
                {
                    if let Some(var) = model
                        .element_hosts(element)
                        .iter()
                        .filter_map(|h| model.var(*h, name))
                        .next()
                        && var.as_text().is_none()
                    {
                        self.push(
                            Problem::at(ref_span, format!("variable `{name}` is a list or table"))
                                .label("cannot be put in a string")
                                .help("only strings, numbers and booleans interpolate; lists and tables are for templates"),
                        );
                    }
                    continue;
                }
                let mut problem = if defined_somewhere {
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
        }
    }

    /// The span of a step's string value: searched after the step's name.
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

/// Letters, digits, `-`, `_` and `.`: what roles and host names may hold.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `~/x` → `$HOME/x`; anything else unchanged.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The candidate closest to `name` by edit distance, if close enough to be a typo.
fn closest<'a, S: AsRef<str> + 'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a S>,
) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for candidate in candidates {
        let c = candidate.as_ref();
        if c == name {
            continue;
        }
        let d = edit_distance(name, c);
        if d <= (name.len().max(2) / 3).max(1) && best.as_ref().is_none_or(|(bd, _)| d < *bd) {
            best = Some((d, c.to_string()));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names() {
        assert!(is_plain_name("master-0.a_b"));
        assert!(!is_plain_name("a@b"));
        assert!(!is_plain_name(""));
        assert!(!is_plain_name("x y"));
    }

    #[test]
    fn edit_distance_and_closest() {
        assert_eq!(edit_distance("node", "nod"), 1);
        assert_eq!(
            closest("nod", ["master", "node"].iter()),
            Some("node".into())
        );
        assert_eq!(closest("xyz", ["master", "node"].iter()), None);
    }
}
