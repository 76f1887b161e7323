//! A task: one action on one host, and what it does when it runs.
//!
//! The builder makes one [`Task`] per (element, host) pair; its [`Work`]
//! holds what running it needs (the files to ship, or which step to run),
//! and its [`KeyInputs`] everything its key depends on except the keys of
//! what it waits for, which the plan fills in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::bundle::{PreparedBundle, ShipFile};
use crate::hash::KeyInputs;
use crate::ids::{TaskId, TaskKind};
use crate::model::{ElementRef, HostId, Model};

/// The id of `element`'s task on `host`: `step.init@master0`, and for a
/// bundle's hook `hook.kubernetes.init@master0`.
pub fn task_id(model: &Model, element: ElementRef, host: HostId) -> TaskId {
    let kind = match element {
        ElementRef::Bundle(_) => TaskKind::Bundle,
        ElementRef::File(_) => TaskKind::File,
        ElementRef::Step(i) if model.steps[i].hook.is_some() => TaskKind::Hook,
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
