//! cairn: Terraform's plan and apply, for machines reached over SSH.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! Clusterfile ─clusterfile─▶ raw types ─model─▶ Model ─graph─▶ TaskGraph (+hash: keys)
//!   ─plan::refresh─▶ observations ─plan─▶ Plan ─exec─▶ events (report) + records (state)
//! ```
//!
//! `pipeline` holds those stages as types every command walks; `transport`
//! is how tasks reach hosts; `report` is everything a user reads; `cmd` is
//! one thin file per command; `cli` only defines arguments; `error` maps
//! outcomes to exit codes; `adhoc` runs `exec` and `cp` on hosts outside any
//! plan; `import` writes a Clusterfile from a sealos one; `words` counts
//! things in English. See docs/architecture.md.

pub mod adhoc;
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
pub mod import;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod schema;
pub mod state;
pub mod transport;
pub mod words;
