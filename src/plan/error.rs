//! Why a plan cannot be made, saved or applied as asked.

use std::path::PathBuf;

/// A plan that cannot go on, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("--replace {pattern}: no such task")]
    UnknownReplace {
        pattern: String,
        /// The closest task or element there is.
        suggestion: Option<String>,
    },
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
    #[error("cannot write the plan to {}: the folder {} does not exist", path.display(), folder.display())]
    SavedFolderMissing { path: PathBuf, folder: PathBuf },
    #[error("cannot save the plan as {}: it is a folder", path.display())]
    SavedIsFolder { path: PathBuf },
    #[error("{} is a saved plan of format {version}, which this cairn cannot apply", path.display())]
    SavedVersion { path: PathBuf, version: String },
    #[error("the Clusterfile changed since the plan {} was made ({})", path.display(), clusterfile.display())]
    ClusterfileChanged { path: PathBuf, clusterfile: PathBuf },
    #[error("the plan {} was made from {}, not {}", path.display(), clusterfile.display(), given.display())]
    OtherClusterfile {
        path: PathBuf,
        clusterfile: PathBuf,
        given: PathBuf,
    },
    #[error("{what} cannot be given with a saved plan: the plan {} applies what it was made with{}", path.display(), if recorded.is_empty() { String::new() } else { format!(" ({recorded})") })]
    SavedPlanArgs {
        path: PathBuf,
        what: String,
        recorded: String,
    },
}

impl PlanError {
    /// How to fix it, in one line.
    pub fn help(&self) -> String {
        match self {
            PlanError::UnknownReplace { suggestion, .. } => format!(
                "{}name a task as `cairn plan` prints it (step.init@master0), or its element (step.init)",
                suggestion
                    .as_ref()
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default()
            ),
            PlanError::WriteSaved { .. } => "check the path".into(),
            PlanError::ReadSaved { .. } | PlanError::NotASavedPlan { .. } => {
                "make one with `cairn plan -o FILE`".into()
            }
            PlanError::Stale { path, .. } => format!(
                "run `cairn plan -o {}` again, review it, and apply the new plan",
                path.display()
            ),
            PlanError::SavedIsFolder { path } => format!(
                "nothing was written: name a file, e.g. -o {}",
                path.join("tonight.plan").display()
            ),
            PlanError::SavedFolderMissing { folder, .. } => format!(
                "nothing was written: create {} first, or save the plan elsewhere",
                folder.display()
            ),
            PlanError::SavedVersion { version, .. } if version == "1" => "it was saved by an older cairn and does not record its Clusterfile: make it again with `cairn plan -o FILE`".into(),
            PlanError::SavedVersion { .. } => "it was saved by a newer cairn: apply it with that cairn, or make it again with `cairn plan -o FILE`".into(),
            PlanError::ClusterfileChanged { clusterfile, .. } => format!(
                "run `cairn plan -f {} -o FILE` again, review it, and apply the new plan",
                clusterfile.display()
            ),
            PlanError::OtherClusterfile { path, .. } => format!(
                "leave out -f: `cairn apply {}` reads the Clusterfile the plan names",
                path.display()
            ),
            PlanError::SavedPlanArgs { .. } => "leave them out, or make a new plan with them: `cairn plan -o FILE ...`".into(),
        }
    }
}
