//! The plan: what an apply would do to each task, and why.
//!
//! `refresh` reads what is really on each host (one probe per host, with
//! the apply's lock when there is one); `diff` compares every task's key and
//! record with what refresh saw and gives each a [`Change`] with its reasons
//! in words (`reasons`). `replace` checks `--replace` patterns against the
//! graph. The result is a [`Plan`] (`change`), which programs read as JSON
//! (`json`), `file_diffs` shows file by file with `--diff`, `plan -o` saves and `apply FILE` checks against a fresh one
//! (`saved`), and `drift` reads host by host. Nothing here prints: the
//! reporter renders plans and drift reports as text.

mod change;
mod diff;
pub mod drift;
mod error;
pub mod file_diffs;
pub mod former;
mod json;
mod reasons;
pub mod refresh;
mod replace;
pub mod saved;
pub mod stream;
pub mod undo_order;

/// The world the plan's unit tests plan in (tests only).
#[cfg(test)]
#[path = "tests/diff_world.rs"]
pub(crate) mod test_world;

pub use change::{Change, ChangeKind, Plan, Summary};
pub use diff::{DiffOptions, diff};
pub use drift::DriftReport;
pub use error::PlanError;
pub use file_diffs::{FileDiff, FileDiffKind, FileDiffs};
pub use json::{ChangeJson, PLAN_JSON_VERSION, PlanJson, UnreachableJson};
pub use reasons::{name_var_origins, name_var_origins_in};
pub use refresh::{Observation, Refresh};
pub use replace::Replacements;
