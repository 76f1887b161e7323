//! `--replace`: the tasks an apply forces to run even if unchanged.
//!
//! A pattern names a task as plans print it (`step.init@master0`), or its
//! element (`step.init`) for every host it runs on. Patterns are checked
//! against the graph when they are read, so a typo is refused before any
//! host is touched rather than silently replacing nothing.

use super::PlanError;
use crate::graph::TaskGraph;
use crate::ids::TaskId;

/// The `--replace` patterns of a run, each known to match a task.
#[derive(Debug, Clone, Default)]
pub struct Replacements {
    patterns: Vec<String>,
}

impl Replacements {
    /// Checks every pattern against `graph`; the first that names no task is refused.
    pub fn new(patterns: &[String], graph: &TaskGraph) -> Result<Replacements, PlanError> {
        for pattern in patterns {
            let known = graph
                .topological()
                .iter()
                .any(|&n| matches(pattern, &graph.task(n).id));
            if !known {
                let ids: Vec<&str> = graph
                    .topological()
                    .iter()
                    .map(|&n| graph.task(n).id.as_str())
                    .collect();
                let elements: Vec<&str> = ids
                    .iter()
                    .map(|id| id.split_once('@').map_or(*id, |(e, _)| e))
                    .collect();
                // `install` for `step.install`: the element's kind left out.
                let suggestion = elements
                    .iter()
                    .find(|e| e.split_once('.').is_some_and(|(_, name)| name == pattern))
                    .map(|e| (*e).to_string())
                    .or_else(|| crate::words::closest(pattern, elements.iter().chain(ids.iter())));
                return Err(PlanError::UnknownReplace {
                    pattern: pattern.clone(),
                    suggestion,
                });
            }
        }
        Ok(Replacements {
            patterns: patterns.to_vec(),
        })
    }

    /// Whether `--replace` forces this task.
    pub fn forces(&self, id: &TaskId) -> bool {
        self.patterns.iter().any(|p| matches(p, id))
    }
}

fn matches(pattern: &str, id: &TaskId) -> bool {
    pattern == id.as_str() || pattern == id.element_part()
}
