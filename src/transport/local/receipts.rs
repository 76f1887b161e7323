//! Receipts of this machine's tasks: one JSON file per task in the host's
//! receipts folder under the cluster's state folder (`local/mod.rs` says
//! why there).

use std::collections::BTreeMap;
use std::path::Path;

use crate::atomic_file::write_atomic;
use crate::ids::TaskId;
use crate::transport::receipt::receipt_file_name;
use crate::transport::{Receipt, ReceiptInfo};

pub(super) fn write(dir: &Path, receipt: &Receipt) -> Result<(), String> {
    let path = dir.join(receipt.file_name());
    write_atomic(&path, format!("{}\n", receipt.json).as_bytes(), false)
        .map_err(|e| format!("failed to write the receipt {}: {e}", path.display()))
}

pub(super) fn forget(dir: &Path, task: &TaskId) -> Result<(), String> {
    let path = dir.join(receipt_file_name(task));
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("failed to remove {}: {e}", path.display())),
    }
}

/// Every readable receipt in `dir`; none when there is no folder yet. A
/// file that is not a receipt (torn, foreign) is passed over, as on a host.
pub(super) fn read_all(dir: &Path) -> Result<BTreeMap<TaskId, ReceiptInfo>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("failed to read {}: {e}", dir.display())),
    };
    let mut receipts = BTreeMap::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(info) = serde_json::from_str::<ReceiptInfo>(text.trim_end()) {
            receipts.insert(info.task.clone(), info);
        }
    }
    Ok(receipts)
}
