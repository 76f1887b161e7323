//! Receipts on a host, under its cairn folder (see `transport::receipt`).

use std::fmt::Write as _;

use super::SshTransport;
use super::shells::OWN_WAIT;
use crate::ids::TaskId;
use crate::transport::receipt::{output_file_name, receipt_file_name};
use crate::transport::{Receipt, TransportError, shell_quote};

/// Shell that makes the host's receipts folder, only when it is not there
/// (`mkdir` is a process, and the folder nearly always is); it succeeds
/// when the folder is there afterwards.
pub(super) const MAKE_RECEIPTS_DIR: &str =
    "{ [ -d \"$cairn_d/receipts\" ] || mkdir -p \"$cairn_d/receipts\"; }";

impl SshTransport {
    /// Shell lines that write a receipt under the host's cairn folder (see
    /// [`MAKE_RECEIPTS_DIR`]), in place: one `printf` (a builtin) of one
    /// line, where a temporary file and `mv` would cost a process per task.
    /// A receipt cut short (the host lost power mid-write) does not parse,
    /// so refresh takes it as missing and the task runs again: idempotent,
    /// it loses nothing. Unless the receipt keeps a step's
    /// output, one kept by an earlier run of the task goes (a test first: no
    /// process when there is none).
    pub(super) fn receipt_snippet(&self, receipt: &Receipt) -> String {
        let mut snippet = format!(
            "{dir}{MAKE_RECEIPTS_DIR} && printf '%s\\n' {json} > \"$cairn_d/receipts/{file}\" || echo 'cairn: could not write the receipt in '\"$cairn_d\" >&2\n",
            dir = state_dir_snippet(&self.cluster),
            json = shell_quote(&receipt.json),
            file = receipt.file_name(),
        );
        if !receipt.keep_output {
            let _ = writeln!(
                snippet,
                "[ ! -e \"$cairn_d/receipts/{out}\" ] || rm -f \"$cairn_d/receipts/{out}\"",
                out = receipt.output_file_name()
            );
        }
        snippet
    }

    /// Writes a receipt on its own, for a task that needed no other command.
    pub(crate) async fn write_receipt(&self, receipt: &Receipt) -> Result<(), TransportError> {
        let out = self
            .exec_own(&self.receipt_snippet(receipt), None, OWN_WAIT)
            .await?;
        if out.success() && out.stderr.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!(
                "failed to write the receipt: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    pub(crate) async fn forget_receipt(&self, task: &TaskId) -> Result<(), TransportError> {
        let script = format!(
            "{}rm -f \"$cairn_d/receipts/\"{} \"$cairn_d/receipts/\"{}\n",
            state_dir_snippet(&self.cluster),
            shell_quote(&receipt_file_name(task)),
            shell_quote(&output_file_name(task))
        );
        let out = self.exec_own(&script, None, OWN_WAIT).await?;
        if out.success() {
            Ok(())
        } else {
            Err(self.error(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }
}

impl SshTransport {
    /// Removes the host's cairn folder for this cluster (receipts, lock
    /// files), and `/var/lib/cairn` or its user-level twin when that leaves
    /// it empty. The lock's `flock` is on an open file, so it holds until
    /// this run ends even once the file is gone.
    pub(crate) async fn forget_host(&self) -> Result<(), TransportError> {
        let script = format!(
            "{}rm -rf \"$cairn_d\" && {{ rmdir \"${{cairn_d%/*}}\" 2>/dev/null; true; }}\n",
            state_dir_snippet(&self.cluster)
        );
        let out = self.exec_own(&script, None, OWN_WAIT).await?;
        if out.success() {
            Ok(())
        } else {
            Err(self.error(format!(
                "failed to remove cairn's folder: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

/// Shell lines setting `$cairn_d`, the host's cairn folder for this cluster:
/// `/var/lib/cairn/<cluster>` for root (or whoever may write `/var/lib`),
/// else under the user's state folder. A test, not `id -u`: no process.
pub(super) fn state_dir_snippet(cluster: &str) -> String {
    format!(
        "if [ -w /var/lib ]; then cairn_d=/var/lib/cairn/{c}; else cairn_d=\"${{XDG_STATE_HOME:-$HOME/.local/state}}/cairn/\"{c}; fi\n",
        c = shell_quote(cluster)
    )
}
