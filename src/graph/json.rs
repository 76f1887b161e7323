//! The task graph as JSON (`cairn graph --json`): the same tasks and edges
//! the DOT drawing shows, for scripts that would rather not parse DOT.
//!
//! The report stamps it like cairn's other JSON documents (version, time,
//! run: docs/json.md).

use serde::Serialize;

use super::{TaskGraph, Work};
use crate::model::Model;

#[derive(Debug, Serialize)]
pub struct GraphDocument {
    pub cluster: String,
    /// In topological order: every task after the tasks it waits for.
    pub tasks: Vec<GraphTask>,
}

#[derive(Debug, Serialize)]
pub struct GraphTask {
    pub id: String,
    pub host: String,
    /// `bundle.NAME`, `file.NAME` or `step.NAME`.
    pub element: String,
    pub kind: &'static str,
    /// A `once` step: runs on one host of its selection, once.
    pub once: bool,
    /// Ids of the tasks this one waits for.
    pub after: Vec<String>,
}

impl TaskGraph {
    /// The graph as a JSON document.
    pub fn to_json(&self, model: &Model) -> GraphDocument {
        let tasks = self
            .order
            .iter()
            .map(|&n| {
                let task = &self.graph[n];
                let mut after: Vec<String> = self
                    .upstream(n)
                    .map(|u| self.graph[u].id.as_str().to_string())
                    .collect();
                after.sort();
                GraphTask {
                    id: task.id.as_str().to_string(),
                    host: model.host(task.host).name.clone(),
                    element: task.id.element_part().to_string(),
                    kind: match task.work {
                        Work::Bundle { .. } => "bundle",
                        Work::File { .. } => "file",
                        Work::Step { step } if model.steps[step].hook.is_some() => "hook",
                        Work::Step { .. } => "step",
                    },
                    once: task.once,
                    after,
                }
            })
            .collect();
        GraphDocument {
            cluster: model.name.clone(),
            tasks,
        }
    }
}
