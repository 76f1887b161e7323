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
    /// The receipt of a capturing step, left by the command that runs it:
    /// that command also keeps its output on the host beside the receipt
    /// (`<task>.out`, readable by its owner only), since the value cairn
    /// reads from it is not known until it has run. A refresh reads it as
    /// the receipt's captured value, so an apply that died before writing
    /// the receipt with the value loses nothing; cairn's next receipt for
    /// the task removes it.
    pub keep_output: bool,
}

impl Receipt {
    pub fn new(info: ReceiptInfo) -> Receipt {
        let json = serde_json::to_string(&info).expect("receipts serialize");
        Receipt {
            info,
            json,
            keep_output: false,
        }
    }

    /// This receipt, to be left by a capturing step's command with its output (see `keep_output`).
    #[must_use]
    pub fn keeping_output(&self) -> Receipt {
        Receipt {
            keep_output: true,
            ..self.clone()
        }
    }

    /// The file beside the receipt that keeps a capturing step's output.
    pub fn output_file_name(&self) -> String {
        output_file_name(&self.info.task)
    }

    pub fn file_name(&self) -> String {
        receipt_file_name(&self.info.task)
    }
}

/// The file name of a task's receipt.
pub(super) fn receipt_file_name(task: &TaskId) -> String {
    format!("{}.json", task.file_safe())
}

/// The file name of a capturing step's kept output (see [`Receipt::keep_output`]).
pub(super) fn output_file_name(task: &TaskId) -> String {
    format!("{}.out", task.file_safe())
}
