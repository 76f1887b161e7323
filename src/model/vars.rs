//! Variables: their values, the built-ins, and how a host sees them.
//!
//! A host reads its own `vars` first, then `[vars]`, then the built-ins
//! (`cluster`, `host.*`, the hosts of each role as `roles.ROLE.*`, where
//! each bundle lands as `bundle.NAME.dest`) and, while applying, values captured by steps. The
//! two readers are `${}` interpolation ([`Model::resolve`], one name at a
//! time) and templates ([`Model::template_context`], everything at once).
//! Secret values resolve like any other, marked as secret so the caller
//! keeps them out of anything shown or stored.
//!
//! Values may also come from outside the Clusterfile ([`OuterVars`]:
//! `--var-file`, then `--var` over it). They replace `[vars]` values before
//! validation, so every check sees them, and lose to a host's own `vars`.
//! Only names `[vars]` declares can be set so (a typo is an error, not a
//! variable nobody reads), never a secret, and a `--var` takes the type of
//! its declaration, as Terraform's typed variables do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::interp::Resolved;
use super::{HostId, Model, Secret};
use crate::clusterfile::raw::RawVar;

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
            VarValue::Plain(toml::Value::Array(_) | toml::Value::Table(_)) => None,
        }
    }
}

/// Names of the built-in variables, for help texts (`ROLE` stands for any
/// role a host has).
pub const BUILTINS: &[&str] = &[
    "cluster",
    "host.address",
    "host.name",
    "host.roles",
    "host.index",
    "roles.ROLE.addresses",
    "roles.ROLE.names",
    "bundle.NAME.dest",
];

impl Model {
    /// Built-in variables of a host.
    pub fn builtin(&self, host: HostId, name: &str) -> Option<String> {
        if let Some(list) = self.role_list(name) {
            return Some(list);
        }
        if let Some(bundle) = name
            .strip_prefix("bundle.")
            .and_then(|n| n.strip_suffix(".dest"))
        {
            return self.bundle_dest(host, bundle);
        }
        let host = self.host(host);
        Some(match name {
            "cluster" => self.name.clone(),
            "host.address" => host.reached_at().to_string(),
            "host.name" => host.name.clone(),
            "host.roles" => host.roles.join(","),
            "host.index" => host.index.to_string(),
            _ => return None,
        })
    }

    /// `roles.ROLE.addresses` / `roles.ROLE.names`: the hosts that have the
    /// role, in file order, comma-separated (the masters' addresses for a
    /// load balancer). `None` for another name, or a role no host has. A
    /// task that reads one is keyed by its value, so a host that joins or
    /// leaves the role reruns just the tasks that read it.
    pub fn role_list(&self, name: &str) -> Option<String> {
        let (role, what) = name.strip_prefix("roles.")?.rsplit_once('.')?;
        let hosts: Vec<&super::Host> = self
            .hosts
            .iter()
            .filter(|h| h.roles.iter().any(|r| r == role))
            .collect();
        if hosts.is_empty() {
            return None;
        }
        let each: Vec<&str> = match what {
            "addresses" => hosts.iter().map(|h| h.reached_at()).collect(),
            "names" => hosts.iter().map(|h| h.name.as_str()).collect(),
            _ => return None,
        };
        Some(each.join(","))
    }

    /// `bundle.NAME.dest`: where bundle NAME lands on `host`, its `dest`
    /// interpolated there (a Helm chart's folder, read by the step that
    /// installs it). A dest cannot itself read a bundle's dest.
    pub fn bundle_dest(&self, host: HostId, bundle: &str) -> Option<String> {
        let bundle = self.bundles.iter().find(|b| b.name == bundle)?;
        bundle
            .dest
            .render(|name| {
                if name.starts_with("bundle.") {
                    Resolved::Unknown
                } else {
                    self.resolve(host, name, &|_| None)
                }
            })
            .ok()
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

    /// The template context of a host for minijinja: `[vars]`, the host's vars,
    /// and the built-ins (`cluster`, `host.{address,name,roles,index}`, and
    /// `roles.ROLE`: the hosts of each role, each with `name`, `address`
    /// and `index`, in file order).
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
            ("address", h.reached_at().to_string().into()),
            ("name", h.name.clone().into()),
            ("roles", minijinja::Value::from_serialize(&h.roles)),
            ("index", h.index.into()),
        ]);
        map.insert("host".into(), minijinja::Value::from_serialize(&host_map));
        let mut roles: BTreeMap<&str, Vec<BTreeMap<&str, minijinja::Value>>> = BTreeMap::new();
        for other in &self.hosts {
            for role in &other.roles {
                roles.entry(role).or_default().push(BTreeMap::from([
                    ("address", other.reached_at().to_string().into()),
                    ("name", other.name.clone().into()),
                    ("index", other.index.into()),
                ]));
            }
        }
        map.insert("roles".into(), minijinja::Value::from_serialize(&roles));
        minijinja::Value::from_serialize(&map)
    }

    /// Where host `host` gets the captured value `name` from: the capturing
    /// step on the same host if it runs there, else on its only host
    /// (validation guarantees one of the two).
    /// Whether `${name}` is a value captured with `capture_secret`.
    pub fn is_secret_capture(&self, name: &str) -> bool {
        self.captures
            .get(name)
            .is_some_and(|&step| self.steps[step].capture_secret)
    }

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

/// Where a value given from outside the Clusterfile came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum VarOrigin {
    /// `--var-file PATH` (absolute, so a saved plan can name it from anywhere).
    VarFile { path: PathBuf },
    /// `--var NAME=VALUE`.
    Var,
}

impl std::fmt::Display for VarOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The file's name: enough to recognise it in a plan's reasons.
            VarOrigin::VarFile { path } => write!(
                f,
                "--var-file {}",
                path.file_name().unwrap_or(path.as_os_str()).display()
            ),
            VarOrigin::Var => f.write_str("--var"),
        }
    }
}

/// One value given from outside: as given (a `--var` is text until
/// [`OuterVars::resolve`] types it), and where from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OuterVar {
    pub value: toml::Value,
    #[serde(flatten)]
    pub origin: VarOrigin,
}

/// Values for `[vars]` given on the command line, the last given of each
/// name kept: var files in order, then `--var`s in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OuterVars(pub BTreeMap<String, OuterVar>);

/// Why values given from outside cannot be used, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OuterVarError {
    pub message: String,
    pub help: String,
}

impl OuterVarError {
    fn new(message: impl Into<String>, help: impl Into<String>) -> OuterVarError {
        OuterVarError {
            message: message.into(),
            help: help.into(),
        }
    }
}

impl OuterVars {
    /// Reads the var files (in order, later ones win) and the `--var NAME=VALUE`
    /// arguments over them.
    pub fn read(var_files: &[PathBuf], vars: &[String]) -> Result<OuterVars, OuterVarError> {
        let mut out = BTreeMap::new();
        for path in var_files {
            for (name, value) in read_var_file(path)? {
                let origin = VarOrigin::VarFile {
                    path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
                };
                out.insert(name, OuterVar { value, origin });
            }
        }
        for arg in vars {
            let Some((name, value)) = arg.split_once('=') else {
                return Err(OuterVarError::new(
                    format!("--var {arg}: expected NAME=VALUE"),
                    format!(
                        "write it as `--var {arg}=VALUE` (quote it for the shell if the value has spaces)"
                    ),
                ));
            };
            let name = name.trim();
            if !super::interp::is_var_name(name) {
                return Err(OuterVarError::new(
                    format!("--var {arg}: `{name}` is not a variable name"),
                    "write it as `--var NAME=VALUE`, NAME as declared in [vars]",
                ));
            }
            out.insert(
                name.to_string(),
                OuterVar {
                    value: toml::Value::String(value.to_string()),
                    origin: VarOrigin::Var,
                },
            );
        }
        Ok(OuterVars(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Where each value came from, by name.
    pub fn origins(&self) -> BTreeMap<String, VarOrigin> {
        self.0
            .iter()
            .map(|(name, v)| (name.clone(), v.origin.clone()))
            .collect()
    }

    /// The values to put over `declared` (the Clusterfile's `[vars]`): each
    /// name must be declared there, and not as a secret; a `--var` takes
    /// the declared type when its text is one (`8080` for an integer).
    /// `host_vars`: names some host declares, for a better help text.
    pub fn resolve<'a>(
        &self,
        declared: &BTreeMap<String, Spanned<RawVar>>,
        host_vars: impl Iterator<Item = &'a String>,
    ) -> Result<BTreeMap<String, VarValue>, OuterVarError> {
        let host_vars: Vec<&String> = host_vars.collect();
        let mut out = BTreeMap::new();
        for (name, given) in &self.0 {
            let Some(declaration) = declared.get(name) else {
                return Err(undeclared(name, &given.origin, declared, &host_vars));
            };
            let value = match (declaration.get_ref(), &given.origin, &given.value) {
                (RawVar::Secret(secret), _, _) => {
                    return Err(OuterVarError::new(
                        format!(
                            "{} sets `{name}`, a secret in [vars] (read from {})",
                            given.origin, secret.secret
                        ),
                        "values given on the command line are not secret: set the secret through its source (env: or file:), or declare a plain variable",
                    ));
                }
                (RawVar::Value(declared), VarOrigin::Var, toml::Value::String(text)) => typed_like(
                    declared, text,
                )
                .map_err(|expected| {
                    OuterVarError::new(
                        format!("--var {name}={text}: `{name}` is {expected} in [vars]"),
                        format!(
                            "give it as TOML, e.g. --var '{name}={}', or put it in a --var-file",
                            example(declared)
                        ),
                    )
                })?,
                (RawVar::Value(_), _, value) => value.clone(),
            };
            out.insert(name.clone(), VarValue::Plain(value));
        }
        Ok(out)
    }
}

/// A var file: a TOML table of `name = value`. A `{ secret = ... }` table
/// is refused: secrets stay in the Clusterfile, read from their source.
fn read_var_file(path: &Path) -> Result<toml::Table, OuterVarError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        OuterVarError::new(
            format!("failed to read the var file {}: {e}", path.display()),
            "check the path given to --var-file",
        )
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        OuterVarError::new(
            format!(
                "the var file {} is not valid TOML: {}",
                path.display(),
                e.message()
            ),
            format!(
                "{}write one `name = value` per line, e.g. app_version = \"1.2.3\"",
                e.span()
                    .map(|span| format!(
                        "at line {}; ",
                        text[..span.start].matches('\n').count() + 1
                    ))
                    .unwrap_or_default()
            ),
        )
    })?;
    for (name, value) in &table {
        if let toml::Value::Table(t) = value
            && t.contains_key("secret")
            && t.len() == 1
        {
            return Err(OuterVarError::new(
                format!(
                    "the var file {} declares `{name}` as a secret",
                    path.display()
                ),
                "secrets are declared in the Clusterfile's [vars] (`{ secret = \"env:NAME\" }`); a var file only gives plain values",
            ));
        }
    }
    Ok(table)
}

/// The error for a name `[vars]` does not declare: the closest declared
/// name, or why a host's var cannot be set so.
fn undeclared(
    name: &str,
    origin: &VarOrigin,
    declared: &BTreeMap<String, Spanned<RawVar>>,
    host_vars: &[&String],
) -> OuterVarError {
    let message = format!("{origin} sets `{name}`, which [vars] does not declare");
    let names: Vec<&String> = declared.keys().collect();
    let known = if names.is_empty() {
        "[vars] declares none".to_string()
    } else {
        format!(
            "[vars] declares {}",
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let help = if let Some(close) = crate::words::closest(name, names.iter().copied()) {
        format!("did you mean `{close}`? {known}")
    } else if host_vars.iter().any(|h| h.as_str() == name) {
        format!(
            "`{name}` is only a host's own var, which wins over values given from outside: declare it in [vars] to set it so"
        )
    } else {
        format!("declare it in the Clusterfile's [vars] first; {known}")
    };
    OuterVarError::new(message, help)
}

/// `text` as the type of `declared`: strings stay text; numbers and
/// booleans parse as such; lists and tables as TOML. `Err` names the type.
fn typed_like(declared: &toml::Value, text: &str) -> Result<toml::Value, &'static str> {
    use toml::Value;
    let parsed = || {
        toml::from_str::<toml::Table>(&format!("v = {text}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
    };
    match declared {
        Value::String(_) => Ok(Value::String(text.to_string())),
        Value::Integer(_) => text
            .trim()
            .parse()
            .map(Value::Integer)
            .map_err(|_| "an integer"),
        Value::Float(_) => text.trim().parse().map(Value::Float).map_err(|_| "a float"),
        Value::Boolean(_) => text
            .trim()
            .parse()
            .map(Value::Boolean)
            .map_err(|_| "a boolean"),
        Value::Datetime(_) => text
            .trim()
            .parse()
            .map(Value::Datetime)
            .map_err(|_| "a date-time"),
        Value::Array(_) => match parsed() {
            Some(v @ Value::Array(_)) => Ok(v),
            _ => Err("a list"),
        },
        Value::Table(_) => match parsed() {
            Some(v @ Value::Table(_)) => Ok(v),
            _ => Err("a table"),
        },
    }
}

/// A value of `declared`'s type, for a help text.
fn example(declared: &toml::Value) -> &'static str {
    match declared {
        toml::Value::String(_) => "text",
        toml::Value::Integer(_) => "42",
        toml::Value::Float(_) => "1.5",
        toml::Value::Boolean(_) => "true",
        toml::Value::Datetime(_) => "2026-01-01T00:00:00Z",
        toml::Value::Array(_) => "[\"a\", \"b\"]",
        toml::Value::Table(_) => "{ key = \"value\" }",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(toml_text: &str) -> BTreeMap<String, Spanned<RawVar>> {
        #[derive(serde::Deserialize)]
        struct Vars {
            vars: BTreeMap<String, Spanned<RawVar>>,
        }
        toml::from_str::<Vars>(&format!("[vars]\n{toml_text}"))
            .unwrap()
            .vars
    }

    fn resolve(text: &str, vars: &[&str]) -> Result<BTreeMap<String, toml::Value>, OuterVarError> {
        let args: Vec<String> = vars.iter().map(|s| (*s).to_string()).collect();
        let outer = OuterVars::read(&[], &args)?;
        Ok(outer
            .resolve(&declared(text), std::iter::empty())?
            .into_iter()
            .map(|(n, v)| match v {
                VarValue::Plain(v) => (n, v),
                VarValue::Secret { .. } => panic!("never a secret"),
            })
            .collect())
    }

    #[test]
    fn a_var_takes_its_declared_type() {
        let got = resolve(
            "port = 1\nname = \"a\"\nhosts = [\"x\"]\non = false",
            &["port=8080", "name=42", "hosts=[\"y\", \"z\"]", "on=true"],
        )
        .unwrap();
        assert_eq!(got["port"], toml::Value::Integer(8080));
        assert_eq!(got["name"], toml::Value::String("42".into()));
        assert_eq!(got["on"], toml::Value::Boolean(true));
        assert_eq!(got["hosts"].as_array().unwrap().len(), 2);
        let err = resolve("port = 1", &["port=eighty"]).unwrap_err();
        assert!(err.message.contains("is an integer"), "{err:?}");
    }

    #[test]
    fn an_undeclared_or_malformed_var_is_refused_with_a_suggestion() {
        let err = resolve("app_version = \"1\"", &["app_verison=2"]).unwrap_err();
        assert_eq!(
            err.message,
            "--var sets `app_verison`, which [vars] does not declare"
        );
        assert!(
            err.help.starts_with("did you mean `app_version`?"),
            "{err:?}"
        );
        let err = resolve("a = \"1\"", &["a"]).unwrap_err();
        assert!(err.message.contains("expected NAME=VALUE"), "{err:?}");
        let err = resolve("t = { secret = \"env:T\" }", &["t=x"]).unwrap_err();
        assert!(err.message.contains("a secret"), "{err:?}");
    }

    #[test]
    fn the_last_value_given_wins_and_keeps_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vars.toml");
        std::fs::write(&file, "a = 1\nb = \"file\"\n").unwrap();
        let outer = OuterVars::read(std::slice::from_ref(&file), &["b=cli".into()]).unwrap();
        assert_eq!(outer.0["a"].value, toml::Value::Integer(1));
        assert_eq!(outer.0["a"].origin, VarOrigin::VarFile { path: file });
        assert_eq!(outer.0["a"].origin.to_string(), "--var-file vars.toml");
        assert_eq!(outer.0["b"].value, toml::Value::String("cli".into()));
        assert_eq!(outer.0["b"].origin, VarOrigin::Var);
        let json = serde_json::to_string(&outer).unwrap();
        assert_eq!(serde_json::from_str::<OuterVars>(&json).unwrap(), outer);
    }
}
