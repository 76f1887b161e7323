//! The [`Model`]: a whole valid Clusterfile, and finding things in it.
//!
//! Elements refer to each other by [`ElementRef`] (kind and index) and to
//! hosts by [`HostId`], rather than by name or reference, so the model is
//! plain data that later stages share behind an `Arc`; these lookups turn
//! the indexes back into what they name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Bundle, Dep, ElementRef, FileSpec, Host, HostId, SshSettings, Step, VarValue};

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
    /// `[ssh]` over the built-in defaults: how a host cairn only knows from
    /// an older state (one that recorded no SSH settings) is reached.
    pub ssh_defaults: SshSettings,
    pub bundles: Vec<Bundle>,
    pub files: Vec<FileSpec>,
    pub steps: Vec<Step>,
    /// Capture name → the step that captures it.
    pub captures: BTreeMap<String, usize>,
    /// Positional selectors (`master[0]`) → the host each points at now:
    /// recorded at each apply, so a plan can warn when one moves.
    pub positions: BTreeMap<String, HostId>,
    /// `[state]`: where the state and the cluster lock live.
    pub state: crate::model::state_settings::StateSettings,
}

impl Model {
    pub fn host(&self, id: HostId) -> &Host {
        &self.hosts[id.index()]
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
}
