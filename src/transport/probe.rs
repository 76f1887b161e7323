//! What refresh asks of a host, and what the host answers, in one round trip.
//!
//! Refresh (in `plan`) builds one [`ProbeRequest`] per host: the files cairn
//! shipped there (as recorded, with their stat) and the `check` of every step
//! that has one. A transport answers with a [`ProbeReport`] in the same
//! order, plus the host's facts and the receipts cairn left on it. These
//! types are the whole vocabulary between planning and a host: the plan
//! never learns how a transport gathered them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ReceiptInfo;
use crate::ids::TaskId;
use crate::state::ShippedFile;

/// What a host has at a path cairn shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Missing,
    /// Stat unchanged since cairn shipped it: the content is taken as shipped.
    Unchanged,
    /// Rehashed: the content's sha256 now.
    Hashed(String),
}

/// Facts a probe reads off a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    /// Whether `zstd` is there to unpack compressed file streams.
    pub zstd: bool,
}

/// A `check` command to run during a probe.
#[derive(Debug, Clone)]
pub struct CheckProbe {
    pub script: String,
    pub cwd: Option<String>,
    pub timeout: Duration,
}

/// Everything a refresh wants to know about one host, asked in one go.
#[derive(Debug, Clone, Default)]
pub struct ProbeRequest {
    /// Shipped files to look at: (destination, files as recorded).
    pub files: Vec<(String, BTreeMap<String, ShippedFile>)>,
    pub checks: Vec<CheckProbe>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckResult {
    /// Exit code; `None` when it timed out, was killed, or its working
    /// directory does not exist (the step has not set it up): the check
    /// does not pass.
    pub code: Option<i32>,
}

/// The answer to a [`ProbeRequest`], in the same order.
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    pub facts: Facts,
    pub files: Vec<BTreeMap<String, Observed>>,
    pub checks: Vec<CheckResult>,
    /// Receipts found on the host, by task id.
    pub receipts: BTreeMap<TaskId, ReceiptInfo>,
}
