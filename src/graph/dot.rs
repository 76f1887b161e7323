//! The task graph in Graphviz DOT (`cairn graph`): tasks grouped by host,
//! shaped by kind, in topological order.

use std::fmt::Write as _;

use petgraph::graph::NodeIndex;

use super::{TaskGraph, Work};
use crate::model::Model;

impl TaskGraph {
    /// The graph in Graphviz DOT, tasks grouped by host.
    pub fn to_dot(&self, model: &Model) -> String {
        let mut out = String::from(
            "digraph cairn {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        for host in &model.hosts {
            let nodes: Vec<NodeIndex> = self
                .order
                .iter()
                .copied()
                .filter(|n| self.graph[*n].host == host.id)
                .collect();
            if nodes.is_empty() {
                continue;
            }
            let _ = write!(
                out,
                "  subgraph \"cluster_{}\" {{\n    label=\"{} ({})\";\n",
                escape(&host.name),
                escape(&host.name),
                escape(&host.address)
            );
            for n in nodes {
                let t = &self.graph[n];
                let shape = match t.work {
                    Work::Bundle { .. } => "folder",
                    Work::File { .. } => "note",
                    Work::Step { .. } => "box",
                };
                let _ = writeln!(
                    out,
                    "    \"{}\" [label=\"{}\", shape={shape}];",
                    escape(t.id.as_str()),
                    escape(t.id.element_part())
                );
            }
            out.push_str("  }\n");
        }
        for n in &self.order {
            for d in self.downstream(*n) {
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\";",
                    escape(self.graph[*n].id.as_str()),
                    escape(self.graph[d].id.as_str())
                );
            }
        }
        out.push_str("}\n");
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
