//! What `cairn validate` says: a valid Clusterfile in one sentence or one
//! JSON line, and with `--json` an invalid one as JSON diagnostics (file,
//! 1-based line and column, message, label, help), so an editor or a CI
//! job can point at each problem without parsing miette's drawing.

use std::path::Path;

use serde::Serialize;

use super::Style;
use super::lines::plural;
use super::stamp::stamped;
use crate::diagnostic::InvalidClusterfile;

/// A valid Clusterfile, in numbers (`validate --json`). Fields in
/// alphabetical order: the keys have always come out sorted; a new field
/// goes in its sorted place.
#[derive(Debug, Serialize)]
pub(super) struct Validated<'a> {
    pub cluster: &'a str,
    /// Always empty here: the same key as an invalid file's, for one parser.
    pub diagnostics: [JsonDiagnostic; 0],
    pub hosts: usize,
    pub tasks: usize,
    pub valid: bool,
}

impl<'a> Validated<'a> {
    pub(super) fn new(cluster: &'a str, hosts: usize, tasks: usize) -> Self {
        Validated {
            cluster,
            diagnostics: [],
            hosts,
            tasks,
            valid: true,
        }
    }
}

/// An invalid Clusterfile (`validate --json`): every problem, in file order.
#[derive(Debug, Serialize)]
struct Invalid {
    diagnostics: Vec<JsonDiagnostic>,
    valid: bool,
}

/// One problem: where (1-based line and column, in characters; the end is
/// exclusive; all `null` for a problem about the whole file), what, and
/// how to fix it.
#[derive(Debug, Serialize)]
pub(super) struct JsonDiagnostic {
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    severity: &'static str,
    message: String,
    label: String,
    help: Option<String>,
}

/// `validate --json`: one line.
pub(super) fn validated_json(validated: &Validated<'_>) -> String {
    format!(
        "{}\n",
        serde_json::to_string(&stamped(validated)).expect("serializes")
    )
}

/// `validate --json` of an invalid Clusterfile: one line.
pub(super) fn invalid_json(invalid: &InvalidClusterfile) -> String {
    let source = &invalid.source_file;
    let file = source.path.display().to_string();
    let diagnostics = invalid
        .problems
        .iter()
        .map(|report| {
            let problem = &report.problem;
            let start = problem.span.as_ref().map(|s| source.line_column(s.start));
            let end = problem.span.as_ref().map(|s| source.line_column(s.end));
            JsonDiagnostic {
                file: file.clone(),
                line: start.map(|(line, _)| line),
                column: start.map(|(_, column)| column),
                end_line: end.map(|(line, _)| line),
                end_column: end.map(|(_, column)| column),
                severity: "error",
                message: problem.message.clone(),
                label: problem.label.clone(),
                help: problem.help.clone(),
            }
        })
        .collect();
    let document = Invalid {
        diagnostics,
        valid: false,
    };
    format!(
        "{}\n",
        serde_json::to_string(&stamped(&document)).expect("serializes")
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
