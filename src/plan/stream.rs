//! A plan made host by host as probes come back, for an apply that needs
//! no confirmation: a task's change is known, and can run, as soon as its
//! own host's probe is in and everything it waits for is known, without
//! waiting for the slowest host's refresh.
//!
//! It is the same diff as [`super::diff`], walked in another order
//! ([`DiffWalk`]): a task's change depends on its own host's probe and on
//! the keys of what it waits for, nothing else, so it comes out the same
//! whichever host answers first. The one exception is a step that captures
//! a secret: one that would not run may have to run again for a task that
//! reads it (a secret capture is never stored), so it is held until the
//! whole plan is known. When the last host is in, [`PlanStream::finish`]
//! gives the plan exactly as `diff` would, for the operator and the journal.
//!
//! Only plans with nothing to undo are streamed (the caller checks): undoing
//! comes before everything else, and a `once` step that would move refuses
//! the whole plan.

use std::collections::HashSet;
use std::sync::Arc;

use petgraph::graph::NodeIndex;

use super::diff::{DiffWalk, Differ};
use super::{Change, ChangeKind, DiffOptions, Plan, Refresh};
use crate::graph::TaskGraph;
use crate::model::{HostId, Model};
use crate::state::State;

/// One task whose change is final: what the executor may act on.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub node: NodeIndex,
    /// `None`: not touched this run (its host is left out or unreachable).
    pub change: Option<Change>,
}

/// The plan of one apply, growing host by host.
pub struct PlanStream {
    model: Arc<Model>,
    graph: Arc<TaskGraph>,
    state: Arc<State>,
    options: DiffOptions,
    walk: DiffWalk,
    /// Hosts whose probe is in (or that could not be probed).
    hosts_in: HashSet<HostId>,
    /// Tasks not visited yet, in dependency order.
    unvisited: Vec<NodeIndex>,
    /// Secret captures that would not run, held until the plan is whole.
    held: Vec<NodeIndex>,
}

impl PlanStream {
    /// A plan with no host in yet. Tasks on hosts `options` leaves out
    /// need no probe; they are resolved by the first [`PlanStream::host_in`].
    pub fn new(
        model: Arc<Model>,
        graph: Arc<TaskGraph>,
        state: Arc<State>,
        options: DiffOptions,
    ) -> PlanStream {
        let hosts_in = model
            .hosts
            .iter()
            .filter(|h| options.excluded_hosts.contains(&h.name))
            .map(|h| h.id)
            .collect();
        PlanStream {
            walk: DiffWalk::new(graph.len()),
            unvisited: graph.topological().to_vec(),
            model,
            graph,
            state,
            options,
            hosts_in,
            held: Vec::new(),
        }
    }

    /// `host`'s probe is in `refresh` (or it is listed there as
    /// unreachable); `None` only resolves what needs no probe. Returns every
    /// task that became final.
    pub fn host_in(&mut self, refresh: &Refresh, host: Option<HostId>) -> Vec<Resolved> {
        if let Some(host) = host {
            self.hosts_in.insert(host);
        }
        let differ = Differ::new(
            &self.model,
            &self.graph,
            &self.state,
            refresh,
            &self.options,
        );
        let mut resolved = Vec::new();
        let mut still = Vec::with_capacity(self.unvisited.len());
        // In dependency order, so one pass visits a chain whose hosts are all in.
        for node in std::mem::take(&mut self.unvisited) {
            let ready = self.hosts_in.contains(&self.graph.task(node).host)
                && self.graph.upstream(node).all(|up| self.walk.visited(up));
            if !ready {
                still.push(node);
                continue;
            }
            let change = self.walk.visit(&differ, node).cloned();
            let runs = change
                .as_ref()
                .is_some_and(|c| c.kind != ChangeKind::Noop && !c.adopt);
            if differ.captures_secret(node) && change.is_some() && !runs {
                self.held.push(node);
            } else {
                resolved.push(Resolved { node, change });
            }
        }
        self.unvisited = still;
        resolved
    }

    /// The whole plan, once every host is in, and the held tasks it resolves.
    pub fn finish(self, refresh: &Refresh) -> (Plan, Vec<Resolved>) {
        debug_assert!(self.unvisited.is_empty(), "every host is in");
        let PlanStream {
            model,
            graph,
            state,
            options,
            walk,
            held,
            ..
        } = self;
        let plan = walk.into_plan(&Differ::new(&model, &graph, &state, refresh, &options));
        let resolved = held
            .iter()
            .map(|&node| Resolved {
                node,
                change: plan.changes.iter().find(|c| c.node == Some(node)).cloned(),
            })
            .collect();
        (plan, resolved)
    }
}
