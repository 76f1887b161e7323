//! cairn: Terraform's plan and apply, for machines reached over SSH.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! Clusterfile ─clusterfile─▶ raw types ─model─▶ Model ─graph─▶ TaskGraph (+hash: keys)
//!   ─plan::refresh─▶ observations ─plan─▶ Plan ─exec─▶ events (report) + records (state)
//! ```
//!
//! `transport` is how tasks reach hosts; `cmd` wires the stages into the
//! commands; `cli` only defines arguments. See docs/architecture.md.

pub mod atomic_file;
pub mod bundle;
pub mod cli;
pub mod clusterfile;
pub mod cmd;
pub mod diagnostic;
pub mod error;
pub mod exec;
pub mod graph;
pub mod hash;
pub mod ids;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod schema;
pub mod state;
pub mod transport;
