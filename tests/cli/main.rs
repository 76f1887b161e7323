//! The real `cairn` binary against fixtures/local, copied into a temp dir
//! (a `Sandbox`, `tests/support/sandbox.rs`). Everything runs on the local
//! transport; nothing leaves the temp dir.
//!
//! One test binary, one module per command, so that a test is found where
//! its command is: `validate`, `plan` (exit codes, `--limit`, `--offline`,
//! saved plans), `plan_diff` (`plan --diff`, `apply --diff`), `apply`
//! (failures, the lock, kill and resume, Ctrl-C, timeouts, `once`,
//! `--replace`, undo), `replace` (what a replace reruns, and one that did
//! not finish), `drift` (hand edits), `graph`, `state` (and the JSON forms),
//! `contract` (exit codes for every command, the confirmation on stdin,
//! completions, the man page), `limit` (`--limit` globs), `hooks` (bundle.toml and its hooks), `hosts_edit` (`add` and `delete`), `import` (`import sealos`), `adhoc`
//! (`exec` and `cp`), and `secrets`, which cut across all of
//! them. The output of `validate` and `drift` is pinned whole by snapshots
//! (`snapshots/`), exit codes included. One binary rather than one per
//! command because each test binary links the whole crate.

#[path = "../support/mod.rs"]
#[expect(dead_code, reason = "the SSH helpers are for tests/ssh/")]
mod support;

mod adhoc;
mod apply;
mod bundle;
mod contract;
mod drift;
mod failures;
mod graph;
mod hooks;
mod hosts_edit;
mod import;
mod json;
mod limit;
mod output;
mod plan;
mod plan_diff;
mod plan_groups;
mod progress;
mod replace;
mod saved_plans;
mod secrets;
mod state;
mod validate;
mod vars;
