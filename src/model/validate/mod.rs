//! Raw Clusterfile → [`Model`], checking meaning and collecting every problem.
//!
//! The passes run in the order the Clusterfile reads: header, `[ssh]`,
//! `[vars]`, hosts (addresses expanded, names given, duplicates found), then
//! the elements (bundles, files, steps) with their selectors and `after`
//! references, then whole-file checks that need everything: dependency
//! cycles, and every `${var}` defined on every host that reads it. A pass
//! never stops at a problem; it records it and carries on with what it can,
//! so one `cairn validate` lists all that is wrong.
//!
//! [`validate`] runs the passes in that order, which is also the order the
//! problems are reported in. Each pass is a method of one `Validator`,
//! which holds the file's text (for spans and line numbers) and the list
//! the problems go to; the passes live in one file per concern:
//!
//! - `header`: version, name, secrets, `[ssh]` defaults and overlays, `[vars]`
//! - `hosts`: addresses expanded into hosts, names given, duplicates found
//! - `references`: element names, `on` selectors, `after` references
//! - `elements`: bundles and their configs, files, steps
//! - `hooks`: each bundle's `bundle.toml` (default vars, kind, default configs) and its hooks, made steps
//! - `state`: `[state]`, where the state and the cluster lock live
//! - `whole_file`: dependency cycles and `${var}` definitions, once all is known

mod elements;
mod header;
mod hooks;
mod hosts;
mod references;
mod state;
mod validator;
mod whole_file;

use validator::{Validator, expand_home};
pub use validator::{validate, validate_with};
