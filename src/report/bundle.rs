//! What `cairn bundle pack` and `cairn bundle inspect` say: the archive
//! written, and what a bundle source holds (its kind, hooks, vars, cmd,
//! configs, files and digest), as text or as one stamped JSON document.

use std::fmt::Write;

use super::Style;
use super::adhoc::size;
use super::stamp::stamped;
use crate::bundle::image::Inspection;
use crate::bundle::pack::Packed;
use crate::words::count;

/// `bundle inspect`, as text.
pub(super) fn inspection_text(inspection: &Inspection, style: Style) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} ({})",
        style.bold(&inspection.source.display().to_string()),
        inspection.source_kind.name()
    );
    let field = |text: &mut String, name: &str, value: &str| {
        let _ = writeln!(text, "  {:<8} {value}", style.dim(name));
    };
    field(
        &mut text,
        "kind",
        inspection
            .kind
            .as_deref()
            .unwrap_or("(not said: the Clusterfile's)"),
    );
    field(&mut text, "digest", &inspection.digest);
    field(
        &mut text,
        "files",
        &format!(
            "{}, {}",
            count(inspection.files, "file"),
            size(inspection.size)
        ),
    );
    field(
        &mut text,
        "cmd",
        inspection.cmd.as_deref().unwrap_or("(none)"),
    );
    field(&mut text, "configs", &inspection.configs.to_string());
    for (title, map) in [("hooks", &inspection.hooks), ("vars", &inspection.vars)] {
        if map.is_empty() {
            field(&mut text, title, "(none)");
            continue;
        }
        let _ = writeln!(text, "  {}", style.dim(title));
        for (name, value) in map {
            let _ = writeln!(text, "    {name} = {value}");
        }
    }
    text
}

/// `bundle inspect --json`.
pub(super) fn inspection_json(inspection: &Inspection) -> String {
    serde_json::to_string_pretty(&stamped(inspection)).expect("an inspection serializes")
}

/// `bundle pack`, as text.
pub(super) fn packed_text(packed: &Packed) -> String {
    format!(
        "Packed {} into {} ({}, sha256 {})\n",
        count(packed.files, "file"),
        packed.output.display(),
        size(packed.size),
        packed.sha256
    )
}

/// `bundle pack --json`.
pub(super) fn packed_json(packed: &Packed) -> String {
    serde_json::to_string_pretty(&stamped(packed)).expect("a pack serializes")
}
