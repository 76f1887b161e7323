//! Receipts: what a finished task leaves on its host.
//!
//! A receipt is a one-line JSON file under the host's cairn folder (over
//! SSH `/var/lib/cairn/<cluster>/receipts/`, for this machine the state
//! folder's `receipts/<host>/`), written when the task succeeds, so a second
//! operator, or one whose local state was lost, still sees what was done
//! there: refresh reads them back and the plan adopts a task whose receipt
//! matches instead of running it again (a `once` step is never run twice).

use serde::{Deserialize, Serialize};

use crate::ids::{TaskId, TaskKey};

/// What a receipt says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptInfo {
    pub task: TaskId,
    pub key: TaskKey,
    pub finished_at: String,
    /// `user@machine` of the cairn that did it.
    pub by: String,
    /// The value a `capture` step printed, unless it held a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<String>,
}

/// A receipt ready to write: its info and that info as one JSON line.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub info: ReceiptInfo,
    pub json: String,
}

impl Receipt {
    pub fn new(info: ReceiptInfo) -> Receipt {
        let json = serde_json::to_string(&info).expect("receipts serialize");
        Receipt { info, json }
    }

    pub fn file_name(&self) -> String {
        receipt_file_name(&self.info.task)
    }
}

/// The file name of a task's receipt.
pub(super) fn receipt_file_name(task: &TaskId) -> String {
    format!("{}.json", task.file_safe())
}
