//! Variables: their values, the built-ins, and how a host sees them.
//!
//! A host reads its own `vars` first, then `[vars]`, then the built-ins
//! (`cluster`, `host.*`) and, while applying, values captured by steps. The
//! two readers are `${}` interpolation ([`Model::resolve`], one name at a
//! time) and templates ([`Model::template_context`], everything at once).
//! Secret values resolve like any other, marked as secret so the caller
//! keeps them out of anything shown or stored.

use std::collections::BTreeMap;

use super::interp::Resolved;
use super::{HostId, Model, Secret};

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

/// Names of the built-in variables, for help texts.
pub const BUILTINS: &[&str] = &[
    "cluster",
    "host.address",
    "host.name",
    "host.roles",
    "host.index",
];

impl Model {
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
