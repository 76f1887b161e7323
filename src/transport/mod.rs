//! How cairn reaches a host: run a script, ship files, probe what is there,
//! take the host's lock.
//!
//! [`Transport`] is one host, reached over SSH (`ssh/`) or on this machine
//! (`local/`); the rest of cairn only ever sees `Transport`, [`Fleet`] (the
//! open transports of one run) and the neutral vocabulary beside them:
//! [`ProbeRequest`]/[`ProbeReport`] for refresh, [`Receipt`]s, a
//! [`HostLock`], a [`CommandOutput`]. Every script is fed to `sh` on stdin
//! by a fixed runner, so neither a script nor a secret in it ever appears
//! on a command line that `ps` could show. File shipping stages files beside
//! their destination and renames each into place, so a reader never sees a
//! half-written file, and it never deletes a file cairn did not ship.

mod command;
mod copy;
mod dispatch;
mod error;
mod fleet;
mod local;
mod lock;
mod probe;
mod read;
mod receipt;
mod ssh;
mod turns;

pub use command::{CommandOutput, shell_quote, target_path};
pub use copy::{CopySource, PathKind, replace_conflict};
pub use dispatch::{Shipped, Transport};
pub use error::TransportError;
pub use fleet::Fleet;
pub use lock::{BrokenLock, HeldLock, HostLock, HostLockStatus};
pub use probe::{CheckProbe, CheckResult, Facts, Observed, Prestage, ProbeReport, ProbeRequest};
pub use read::FileRead;
pub use receipt::{Receipt, ReceiptInfo};
pub use ssh::answer_prompt as askpass_answer;
pub use turns::{StreamTurn, TurnPass};
