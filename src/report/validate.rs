//! What `cairn validate` says about a valid Clusterfile.

use std::path::Path;

use serde::Serialize;

use super::Style;
use super::lines::plural;

/// A valid Clusterfile, in numbers (`validate --json`). Fields in
/// alphabetical order: the keys have always come out sorted; a new field
/// goes in its sorted place.
#[derive(Debug, Serialize)]
pub(super) struct Validated<'a> {
    pub cluster: &'a str,
    pub hosts: usize,
    pub tasks: usize,
    pub valid: bool,
}

/// `validate --json`: one line.
pub(super) fn validated_json(validated: &Validated<'_>) -> String {
    format!(
        "{}\n",
        serde_json::to_string(validated).expect("serializes")
    )
}

/// `validate`: one sentence.
pub(super) fn validated_text(file: &Path, v: &Validated<'_>, style: Style) -> String {
    format!(
        "{} {} is valid: cluster `{}`, {} host{}, {} task{}.\n",
        style.green("✓"),
        file.display(),
        v.cluster,
        v.hosts,
        plural(v.hosts),
        v.tasks,
        plural(v.tasks)
    )
}
