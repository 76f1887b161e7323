//! The validated model: what the rest of cairn sees of a Clusterfile.
//!
//! `validate` builds it from the raw types and reports every problem at
//! once; once a `Model` exists, hosts are expanded and named, selectors are
//! resolved to host lists, `after` references point at real elements, the
//! element graph has no cycle, every `${var}` is defined for every host that
//! reads it, and secrets are loaded (wrapped so they never print). Spans are
//! kept on elements so later stages (compile, plan) can still point into the
//! file.
//!
//! The types live one concern to a file and are all re-exported here, so
//! the rest of cairn names them `crate::model::X`:
//!
//! - `cluster`: the [`Model`] itself and its element lookups
//! - `host`: [`Host`], [`HostId`], [`SshSettings`]
//! - `element`: bundles, config patches, files, steps and their dependencies
//! - `vars`: variable values, the built-ins, and how a host resolves a name
//! - `secret`: [`Secret`] and the [`Scrubber`] that keeps secrets out of output
//! - `ssh_config`: what the user's ssh config makes of an address that is an alias there
//! - [`validate`]: raw Clusterfile → `Model`; [`closest`], its "did you mean"
//! - [`selection`]: the hosts a `--limit` leaves out
//! - [`selector`]: the hosts an `on` selector given on the command line names (`exec`, `cp`)
//! - [`image_ref`]: image references compared as a registry resolves them
//! - [`bundle_toml`]: a bundle's `bundle.toml`, read through a [`bundle_toml::SourceReader`]
//!   that the bundle room implements (so the model never imports it)
//! - [`state_settings`]: `[state]`, where the state and the cluster lock live
//! - [`interp`]: `${}` in strings; [`address`]: host addresses and ranges
//!   (the Clusterfile's syntax, parsed in `clusterfile`, re-exported here)

pub use crate::clusterfile::address;
pub mod bundle_toml;
mod cluster;
mod element;
mod host;
pub mod image_ref;
pub mod interp;
mod secret;
pub mod selection;
pub mod selector;
mod ssh_config;
pub mod state_settings;
mod validate;
mod vars;

pub use crate::clusterfile::raw::{BundleKind, ConfigStrategy, HostKeyPolicy, TransportKind};
pub use cluster::Model;
pub use element::{
    Bundle, ConfigFormat, ConfigPatch, Dep, DepScope, ElementRef, FileSource, FileSpec, Hook,
    PatchStrategy, SourceKind, Step,
};
pub use host::{Host, HostId, LoginSecret, SshAlias, SshSettings};
pub use secret::{Scrubber, Secret, UnloadableSecret, load_secret};
pub(crate) use ssh_config::resolve_aliases;
pub use validate::{validate, validate_with};
pub use vars::{BUILTINS, OuterVar, OuterVarError, OuterVars, VarOrigin, VarValue};

/// `~/x` → `$HOME/x`; anything else unchanged.
pub fn expand_home(path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => std::path::PathBuf::from(path),
    }
}

/// The model of a Clusterfile `text` that must be valid (for unit tests).
#[cfg(test)]
pub(crate) fn test_model(text: &str) -> Model {
    let source = crate::diagnostic::SourceFile {
        path: "Clusterfile".into(),
        text: std::sync::Arc::new(text.to_string()),
    };
    let mut problems = crate::diagnostic::Problems::default();
    let (raw, recovered) = crate::clusterfile::parse(&source, &mut problems).expect("parses");
    let model = validate(&source, &raw, &recovered, &mut problems);
    model.unwrap_or_else(|| panic!("valid: {:?}", problems.0))
}
