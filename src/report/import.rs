//! What `cairn import` says: each field it left out or changed (warnings,
//! on stderr, so that the Clusterfile on stdout stays clean), where the
//! result went, and what to do before using it (the environment variables
//! its secrets read, the image archives its bundles read).

use std::fmt::Write as _;
use std::path::Path;

use crate::import::{ImportWarning, Imported};
use crate::words::count;

/// One line per warning: `warning: FIELD: MESSAGE`.
pub(super) fn import_warnings_text(warnings: &[ImportWarning]) -> String {
    let mut text = String::new();
    for warning in warnings {
        let _ = writeln!(text, "warning: {}: {}", warning.field, warning.message);
    }
    text
}

/// What was written (when `written` names the file) and the steps left
/// before `cairn plan` can use it.
pub(super) fn imported_text(imported: &Imported, written: Option<&Path>) -> String {
    let mut text = String::new();
    if let Some(path) = written {
        let _ = writeln!(
            text,
            "Wrote {}: {}, {}, {}{}.",
            path.display(),
            count(imported.hosts, "host"),
            count(imported.archives.len(), "bundle"),
            count(imported.configs, "config patch"),
            match imported.warnings.len() {
                0 => String::new(),
                n => format!(" ({} not imported as written, above)", count(n, "field")),
            }
        );
    }
    if !imported.secrets.is_empty() {
        let _ = writeln!(text, "Set these environment variables before cairn runs:");
        for secret in &imported.secrets {
            let _ = writeln!(
                text,
                "  {}  (the value of {})",
                secret.variable, secret.holds
            );
        }
    }
    if !imported.archives.is_empty() {
        let _ = writeln!(
            text,
            "Save the images beside the Clusterfile{}:",
            written
                .and_then(Path::parent)
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| format!(" (in {})", p.display()))
                .unwrap_or_default()
        );
        for archive in &imported.archives {
            let _ = writeln!(
                text,
                "  sealos save -o {} {}",
                archive.source, archive.image
            );
        }
    }
    text
}
