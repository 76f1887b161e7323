//! Everything cairn prints: the only module that writes to the terminal.
//!
//! Commands hand their results to an [`Output`] (`output`), which renders
//! plans (`plan`, with a change shared by many hosts shown once:
//! `plan_groups`), drift reports (`drift`, and as Prometheus metrics:
//! `drift_metrics`), content diffs (`file_diff`), the state (`state`), `validate`'s
//! verdict (`validate`), the Clusterfile edits of `add` and `delete`
//! (`edit`), what `bundle pack` wrote and `bundle inspect` found (`bundle`), saved plans and the state per host (`show`), captured values
//! (`captured`), each host's result of `exec` and `cp` (`adhoc`), what
//! `import` wrote and left out (`import`), locks waited
//! for and broken (`locks`) and the confirmation prompt (`prompt`), as text
//! or JSON; a command's error, each cause said once (`failure`). During an
//! apply the executor's events go to a [`Reporter`]
//! (`reporter`): a thread that renders them as progress bars on a terminal
//! (`progress`, the only code that touches indicatif), plain lines
//! otherwise, or JSON lines, with the lines both displays share in `lines`;
//! while a streamed apply holds them until its plan is whole, `holding`
//! shows how far it is.
//! `style` decides colour; `stamp` puts the format version, the time and
//! the run id on every JSON line and document (docs/json.md); `stdout`
//! writes it all without panicking when a reader closes the pipe, and
//! `hints` completes every suggested `cairn …` command with this
//! invocation's `-f` and `--var`s.

#[macro_use]
mod stdout;
mod adhoc;
mod bundle;
mod captured;
mod drift;
mod drift_metrics;
mod edit;
mod failure;
mod file_diff;
mod hints;
mod holding;
mod import;
mod lines;
mod locks;
mod output;
mod plan;
mod plan_groups;
mod progress;
mod prompt;
mod reporter;
mod show;
mod stamp;
mod state;
pub mod style;
mod validate;

pub use adhoc::AdhocReport;
pub use captured::{CapturedValue, CapturedValues, captured_values};
pub use drift_metrics::drift_metrics;
pub use edit::{EditedHost, HostsEdited};
pub use failure::print_error;
pub use file_diff::unified_diff;
pub use hints::remember_invocation;
pub use holding::HoldStatus;
pub use locks::{ClusterSession, LockSurvey, Unlocked};
pub use output::Output;
pub use plan::plan_text;
pub use prompt::Confirmation;
pub use reporter::{Mode, Reporter};
pub use show::shell_word;
pub use state::{Forgotten, StateMoved};
pub use stdout::hand_to_ssh;
pub use style::Style;
