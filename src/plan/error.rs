//! Why a plan cannot be made, saved or applied as asked.

use std::path::PathBuf;

/// A plan that cannot go on, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("--replace {pattern}: no such task")]
    UnknownReplace { pattern: String },
    #[error("failed to write {}: {source}", path.display())]
    WriteSaved {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read the saved plan {}: {source}", path.display())]
    ReadSaved {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a saved cairn plan: {source}", path.display())]
    NotASavedPlan {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the saved plan {} no longer matches: {differences}", path.display())]
    Stale { path: PathBuf, differences: String },
}

impl PlanError {
    /// How to fix it, in one line.
    pub fn help(&self) -> String {
        match self {
            PlanError::UnknownReplace { .. } => "name a task as `cairn state list` or `cairn plan` prints it (step.init@master0), or its element (step.init)".into(),
            PlanError::WriteSaved { .. } => "check the path".into(),
            PlanError::ReadSaved { .. } | PlanError::NotASavedPlan { .. } => {
                "make one with `cairn plan -o FILE`".into()
            }
            PlanError::Stale { path, .. } => format!(
                "run `cairn plan -o {}` again, review it, and apply the new plan",
                path.display()
            ),
        }
    }
}
