//! The task DAG: one task per action per host, built from the model and sealed.
//!
//! `build` turns the model into tasks and edges ([`compile`]); each [`Task`]
//! (`task`) carries its key inputs minus the dependency keys, which `plan`
//! fills in topological order once it knows which upstream tasks keep their
//! recorded key (`once` steps). Only a sealed [`TaskGraph`] (`sealed`:
//! acyclic, with its topological order fixed) leaves this module; `dot`
//! draws it, `json` writes it down for scripts. What stops a graph from being built is a [`CompileError`]
//! (`error`), reported with the Clusterfile's other errors. `testing`
//! (tests only) compiles Clusterfile text written into a temp folder, for
//! the tests of this stage and the plan's.

mod build;
mod dot;
mod error;
mod json;
mod sealed;
mod task;
#[cfg(test)]
pub(crate) mod testing;

pub use build::{CompileOptions, compile};
pub use error::{CompileError, problems as compile_problems};
pub use sealed::TaskGraph;
pub use task::{Task, Work, task_id};
