//! The validated model: what the rest of cairn sees of a Clusterfile.
//!
//! `validate` builds it from the raw types and reports every problem at
//! once; once a `Model` exists, hosts are expanded and named, selectors are
//! resolved to host lists, `after` references point at real elements, the
//! element graph has no cycle, every `${var}` is defined for every host that
//! reads it, and secrets are loaded (wrapped so they never print). Spans are
//! kept on elements so later stages (compile, plan) can still point into the
//! file.

pub mod address;
pub mod interp;
mod validate;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::clusterfile::raw::{BundleKind, ConfigStrategy, HostKeyPolicy, TransportKind};
use interp::{Interp, Resolved};
pub use validate::validate;

/// Index of a host in `Model::hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HostId(pub usize);

/// A secret value. Its `Debug` and `Display` never show it; only
/// [`Secret::expose`] does, at the few places that feed it to a host.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A variable's value.
#[derive(Debug, Clone)]
pub enum VarValue {
    Plain(toml::Value),
    /// `reference` is where it came from (`env:NAME`), safe to show.
    Secret {
        reference: String,
        value: Secret,
    },
}

impl VarValue {
    /// Text for `${}` interpolation, if the value is a scalar.
    pub fn as_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            VarValue::Plain(toml::Value::String(s)) => Some(s.as_str().into()),
            VarValue::Plain(toml::Value::Integer(i)) => Some(i.to_string().into()),
            VarValue::Plain(toml::Value::Float(f)) => Some(f.to_string().into()),
            VarValue::Plain(toml::Value::Boolean(b)) => Some(b.to_string().into()),
            VarValue::Plain(toml::Value::Datetime(d)) => Some(d.to_string().into()),
            VarValue::Secret { value, .. } => Some(value.expose().into()),
            _ => None,
        }
    }
}

/// SSH settings of one host, defaults and overrides merged.
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub identity: Option<String>,
    pub sudo: bool,
    pub sudo_password: Option<Secret>,
    pub host_keys: HostKeyPolicy,
    pub jump: Option<String>,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub id: HostId,
    pub name: String,
    pub address: String,
    pub user: String,
    pub port: u16,
    pub roles: Vec<String>,
    pub vars: BTreeMap<String, VarValue>,
    pub transport: TransportKind,
    pub ssh: SshSettings,
    /// Position among all hosts, in file order (`${host.index}`).
    pub index: usize,
    pub span: Range<usize>,
}

/// Something a task can wait for: bundles, files and steps share one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementRef {
    Bundle(usize),
    File(usize),
    Step(usize),
}

/// Which hosts' tasks of an element a dependency waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepScope {
    /// The same host where the element runs there, else all its hosts.
    SameHostElseAll,
    /// `x@*`: all its hosts.
    AllHosts,
    /// `x@NAME`: that host only.
    Host(HostId),
}

#[derive(Debug, Clone)]
pub struct Dep {
    pub element: ElementRef,
    pub scope: DepScope,
    pub span: Range<usize>,
}

/// A file format that `merge` understands, known from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    Yaml,
    Json,
    Toml,
}

impl ConfigFormat {
    /// The format of `path` by its extension, if `merge` understands it.
    pub fn of_path(path: &str) -> Option<ConfigFormat> {
        let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
        match ext.as_str() {
            "yaml" | "yml" => Some(ConfigFormat::Yaml),
            "json" => Some(ConfigFormat::Json),
            "toml" => Some(ConfigFormat::Toml),
            _ => None,
        }
    }
}

/// How a config patch changes its file; a merge carries the file's format,
/// resolved at validation, so nothing later has to guess it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    Merge(ConfigFormat),
    Override,
    Insert,
    Append,
}

#[derive(Debug, Clone)]
pub struct ConfigPatch {
    pub path: String,
    pub strategy: PatchStrategy,
    pub data: String,
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Bundle {
    pub name: String,
    /// Absolute path of the directory or `.tar.zst` archive.
    pub source: PathBuf,
    pub archive: bool,
    pub kind: BundleKind,
    pub hosts: Vec<HostId>,
    pub dest: Interp,
    pub dest_span: Range<usize>,
    /// Glob patterns of template files, relative to the bundle root.
    pub templates: Vec<String>,
    pub configs: Vec<ConfigPatch>,
    pub after: Vec<Dep>,
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub enum FileSource {
    Path(PathBuf),
    /// Inline `content`: `${}` interpolated, unless the file is a template.
    Inline(Interp),
}

#[derive(Debug, Clone)]
pub struct FileSpec {
    pub name: String,
    pub source: FileSource,
    pub dest: Interp,
    pub dest_span: Range<usize>,
    pub template: bool,
    pub mode: u32,
    pub owner: Option<String>,
    pub hosts: Vec<HostId>,
    pub after: Vec<Dep>,
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub hosts: Vec<HostId>,
    pub run: Interp,
    pub cwd: Option<Interp>,
    pub check: Option<Interp>,
    pub undo: Option<Interp>,
    pub capture: Option<String>,
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub once: bool,
    pub after: Vec<Dep>,
    pub span: Range<usize>,
}

impl Step {
    /// Every Clusterfile string of the step: `run`, then `cwd`, `check`, `undo` when set.
    pub fn strings(&self) -> impl Iterator<Item = &Interp> {
        [
            Some(&self.run),
            self.cwd.as_ref(),
            self.check.as_ref(),
            self.undo.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// A valid Clusterfile.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    /// The Clusterfile's path, as given.
    pub path: PathBuf,
    /// The Clusterfile's folder, absolute: relative sources and local dests resolve against it.
    pub base_dir: PathBuf,
    pub vars: BTreeMap<String, VarValue>,
    pub hosts: Vec<Host>,
    pub bundles: Vec<Bundle>,
    pub files: Vec<FileSpec>,
    pub steps: Vec<Step>,
    /// Capture name → the step that captures it.
    pub captures: BTreeMap<String, usize>,
}

/// Names of the built-in variables, for help texts.
pub const BUILTINS: &[&str] = &[
    "cluster",
    "host.address",
    "host.name",
    "host.roles",
    "host.index",
];

impl Model {
    pub fn host(&self, id: HostId) -> &Host {
        &self.hosts[id.0]
    }

    pub fn element_name(&self, element: ElementRef) -> &str {
        match element {
            ElementRef::Bundle(i) => &self.bundles[i].name,
            ElementRef::File(i) => &self.files[i].name,
            ElementRef::Step(i) => &self.steps[i].name,
        }
    }

    pub fn element_hosts(&self, element: ElementRef) -> &[HostId] {
        match element {
            ElementRef::Bundle(i) => &self.bundles[i].hosts,
            ElementRef::File(i) => &self.files[i].hosts,
            ElementRef::Step(i) => &self.steps[i].hosts,
        }
    }

    pub fn element_after(&self, element: ElementRef) -> &[Dep] {
        match element {
            ElementRef::Bundle(i) => &self.bundles[i].after,
            ElementRef::File(i) => &self.files[i].after,
            ElementRef::Step(i) => &self.steps[i].after,
        }
    }

    /// Built-in variables of a host.
    pub fn builtin(&self, host: HostId, name: &str) -> Option<String> {
        let host = self.host(host);
        Some(match name {
            "cluster" => self.name.clone(),
            "host.address" => host.address.clone(),
            "host.name" => host.name.clone(),
            "host.roles" => host.roles.join(","),
            "host.index" => host.index.to_string(),
            _ => return None,
        })
    }

    /// A user variable as a host sees it: its own vars first, then `[vars]`.
    pub fn var(&self, host: HostId, name: &str) -> Option<&VarValue> {
        self.host(host)
            .vars
            .get(name)
            .or_else(|| self.vars.get(name))
    }

    /// Resolves `${name}` on a host. `captured` gives values captured by steps
    /// (None while unknown, at plan time).
    pub fn resolve<'a>(
        &'a self,
        host: HostId,
        name: &str,
        captured: &dyn Fn(&str) -> Option<String>,
    ) -> Resolved<'a> {
        if let Some(value) = self.builtin(host, name) {
            return Resolved::Text(value.into());
        }
        match self.var(host, name) {
            Some(VarValue::Secret { value, .. }) => Resolved::Secret(value.expose()),
            Some(value) => Resolved::Text(value.as_text().unwrap_or_default()),
            None => match captured(name) {
                Some(value) => Resolved::Text(value.into()),
                None => Resolved::Unknown,
            },
        }
    }

    /// Every secret value in the model, so output can be scrubbed of them.
    pub fn secret_values(&self) -> Vec<String> {
        let mut values: Vec<String> = Vec::new();
        let all_vars = self
            .vars
            .values()
            .chain(self.hosts.iter().flat_map(|h| h.vars.values()));
        for var in all_vars {
            if let VarValue::Secret { value, .. } = var {
                values.push(value.expose().to_string());
            }
        }
        for host in &self.hosts {
            if let Some(password) = &host.ssh.sudo_password {
                values.push(password.expose().to_string());
            }
        }
        values.retain(|v| !v.is_empty());
        values.sort();
        values.dedup();
        values
    }

    /// The template context of a host for minijinja: `[vars]`, the host's vars,
    /// and the built-ins (`cluster`, `host.{address,name,roles,index}`).
    pub fn template_context(&self, host: HostId) -> minijinja::Value {
        let mut map: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        let h = self.host(host);
        for (name, value) in self.vars.iter().chain(h.vars.iter()) {
            let v = match value {
                VarValue::Plain(v) => minijinja::Value::from_serialize(v),
                VarValue::Secret { value, .. } => minijinja::Value::from(value.expose()),
            };
            map.insert(name.clone(), v);
        }
        map.insert("cluster".into(), self.name.clone().into());
        let host_map: BTreeMap<&str, minijinja::Value> = BTreeMap::from([
            ("address", h.address.clone().into()),
            ("name", h.name.clone().into()),
            ("roles", minijinja::Value::from_serialize(&h.roles)),
            ("index", h.index.into()),
        ]);
        map.insert("host".into(), minijinja::Value::from_serialize(&host_map));
        minijinja::Value::from_serialize(&map)
    }
}

impl Model {
    /// Where host `host` gets the captured value `name` from: the capturing
    /// step on the same host if it runs there, else on its only host
    /// (validation guarantees one of the two).
    pub fn capture_source(&self, host: HostId, name: &str) -> Option<(usize, HostId)> {
        let step = *self.captures.get(name)?;
        let hosts = &self.steps[step].hosts;
        if hosts.contains(&host) {
            Some((step, host))
        } else {
            hosts.first().map(|h| (step, *h))
        }
    }
}
