//! The local transport: this machine, no SSH.
//!
//! Scripts run as `sh -c RUNNER` in their own process group (see
//! `process`), so a timeout kills the script and everything it started.
//! Files are staged and renamed into place (see `files`), on tokio's
//! blocking pool. Receipts live in the cluster's state folder, under
//! `receipts/<host>/` (see `receipts`): this machine is the operator's own,
//! so its record of what was done belongs with the rest of the state, and a
//! plan that lost `state.json` still adopts what was done instead of
//! running it again, as it does over SSH. The scripts running for an apply
//! are recorded there too (`in_flight`), so that the next apply waits for
//! what a killed one left running, as it does for a host's lock.

mod adhoc;
mod files;
mod host;
mod in_flight;
mod process;
mod read;
mod receipts;

pub(super) use host::{LocalTransport, in_flight_dir};
pub(super) use process::RunningGroups;
