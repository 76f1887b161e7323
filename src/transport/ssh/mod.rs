//! The SSH transport: one OpenSSH `ControlMaster` per host, one shell on it.
//!
//! A run opens one master connection per host (`connect`, `master`: an
//! `ssh -M -N` of cairn's own, attached to with the `openssh` crate's
//! `native-mux` client, so a channel is opened on the master's socket, not
//! by a new `ssh` process) and closes it at the end. Masters run in the
//! foreground as cairn's children with a parent-death signal, so every ssh
//! process cairn starts ends with it, however it ends.
//!
//! Every channel runs a fixed, secret-free command line that reads its
//! script from stdin (`channel`). A host's commands run on one long-lived
//! shell (`shells`); on apply that shell is the host lock's own channel
//! (`lock`), taken in the same round trip as the refresh probe (`probe`), so
//! a host costs one channel and one login shell per run. Files ship as one
//! tar stream per task (`ship`), and receipts record on the host what was
//! done there (`receipts`).

mod adhoc;
mod askpass;
mod channel;
mod connect;
mod host;
mod lock;
mod master;
mod probe;
mod read;
mod receipts;
mod run;
mod shells;
mod ship;
mod stat;

pub use askpass::answer_prompt;
pub(super) use host::SshTransport;
pub(super) use lock::SshLock;
pub(super) use run::SshRun;
