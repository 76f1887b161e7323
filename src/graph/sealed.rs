//! [`TaskGraph`]: the task DAG once it is sealed.
//!
//! Only a sealed graph can be planned or executed: sealing checks that it is
//! acyclic and fixes its topological order, once, in Clusterfile order (so
//! plans and runs list tasks the same way every time, in an order a reader
//! can follow). Nothing can add a task or an edge after that.

use std::collections::HashMap;
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use super::{CompileError, Task};
use crate::bundle::PreparedBundle;
use crate::ids::TaskId;

/// A sealed, acyclic task graph. Edges point from a task to the tasks that wait for it.
#[derive(Debug)]
pub struct TaskGraph {
    pub(super) graph: DiGraph<Task, ()>,
    pub(super) order: Vec<NodeIndex>,
    by_id: HashMap<TaskId, NodeIndex>,
    /// Prepared bundles, by bundle index, for explaining content changes.
    pub bundles: Vec<Arc<PreparedBundle>>,
}

impl TaskGraph {
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn task(&self, node: NodeIndex) -> &Task {
        &self.graph[node]
    }

    pub fn find(&self, id: &TaskId) -> Option<NodeIndex> {
        self.by_id.get(id).copied()
    }

    /// Nodes in dependency order: every task after all it waits for.
    pub fn topological(&self) -> &[NodeIndex] {
        &self.order
    }

    /// What `node` waits for.
    pub fn upstream(&self, node: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph
            .edges_directed(node, petgraph::Direction::Incoming)
            .map(|e| e.source())
    }

    /// What waits for `node`.
    pub fn downstream(&self, node: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph
            .edges_directed(node, petgraph::Direction::Outgoing)
            .map(|e| e.target())
    }

    /// For every task, how many tasks the longest chain from it to the end
    /// of the graph holds, itself included: a task nothing waits for has 1,
    /// one that a chain of three waits on has 4. What the scheduler starts
    /// first, and which hosts a run keeps connected longest.
    pub fn chain_lengths(&self) -> HashMap<NodeIndex, usize> {
        let mut lengths: HashMap<NodeIndex, usize> = HashMap::with_capacity(self.len());
        for &node in self.order.iter().rev() {
            let longest_after = self
                .downstream(node)
                .map(|d| lengths.get(&d).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            lengths.insert(node, longest_after + 1);
        }
        lengths
    }

    /// Seals a built graph: refused if it has a cycle.
    pub(super) fn seal(
        graph: DiGraph<Task, ()>,
        bundles: Vec<Arc<PreparedBundle>>,
    ) -> Result<TaskGraph, CompileError> {
        let order = file_order_toposort(&graph).map_err(|node| CompileError::TaskCycle {
            task: graph[node].id.clone(),
        })?;
        let by_id = graph
            .node_indices()
            .map(|n| (graph[n].id.clone(), n))
            .collect();
        Ok(TaskGraph {
            graph,
            order,
            by_id,
            bundles,
        })
    }
}

/// Kahn's algorithm, always taking the ready task added first. Tasks are
/// added in Clusterfile order (bundles, files, steps; hosts in file order),
/// so plans and runs list tasks in an order a reader can follow, the same
/// every time. Returns a node on a cycle if there is one.
fn file_order_toposort(graph: &DiGraph<Task, ()>) -> Result<Vec<NodeIndex>, NodeIndex> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut waiting: Vec<usize> = graph
        .node_indices()
        .map(|n| {
            graph
                .edges_directed(n, petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<NodeIndex>> = graph
        .node_indices()
        .filter(|n| waiting[n.index()] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(graph.node_count());
    while let Some(Reverse(node)) = ready.pop() {
        order.push(node);
        for down in graph.neighbors_directed(node, petgraph::Direction::Outgoing) {
            waiting[down.index()] -= 1;
            if waiting[down.index()] == 0 {
                ready.push(Reverse(down));
            }
        }
    }
    if order.len() < graph.node_count() {
        let stuck = graph
            .node_indices()
            .find(|n| waiting[n.index()] > 0)
            .expect("some node is left");
        return Err(stuck);
    }
    Ok(order)
}
