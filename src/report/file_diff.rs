//! A file's two versions as people read them: a unified diff (the `similar`
//! crate, three lines of context, as `diff -u` and git print it), and that
//! diff indented and coloured for a terminal.
//!
//! Pure text in, text out, so every command that shows content changes uses
//! the same rendering: `drift --diff` (what cairn shipped against what a
//! host has now), and `plan --diff` (what a host has now against what an
//! apply would write: [`plan_diffs_text`], grouped per task). Deciding
//! *whether* two versions can be diffed (binary, too large, secrets masked)
//! is the caller's: this module only ever sees text that may be shown.

use std::fmt::Write as _;

use super::Style;
use crate::plan::drift::DIFF_LIMIT_BYTES;
use crate::plan::{FileDiffKind, FileDiffs};

/// The unified diff from `old` to `new`, with `--- old_label` and
/// `+++ new_label` headers; empty when they are equal. A last line without
/// a newline is marked as `diff -u` marks it.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// `diff` with every line indented by `indent`; on a terminal, removed
/// lines red, added lines green, hunk headers dim.
pub(super) fn paint(diff: &str, indent: &str, style: Style) -> String {
    let mut out = String::new();
    for line in diff.lines() {
        let shown = if line.starts_with("+++") || line.starts_with("---") {
            style.bold(line)
        } else if line.starts_with('+') {
            style.green(line)
        } else if line.starts_with('-') {
            style.red(line)
        } else if line.starts_with("@@") || line.starts_with('\\') {
            style.dim(line)
        } else {
            line.to_string()
        };
        let _ = writeln!(out, "{indent}{shown}");
    }
    out
}

/// `plan --diff`'s diffs, after the plan: each task that changes files,
/// then each file, a unified diff for text, a note otherwise.
pub(super) fn plan_diffs_text(diffs: &FileDiffs, style: Style) -> String {
    const INDENT: &str = "      ";
    let mut out = String::new();
    if diffs.is_empty() {
        return out;
    }
    let _ = write!(out, "\n{}\n", style.bold("Changes to files:"));
    for (task, files) in diffs.tasks() {
        let _ = write!(out, "\n  {}\n", style.bold(task.as_str()));
        for file in files {
            let note = match file.kind {
                FileDiffKind::Changed => None,
                FileDiffKind::New => Some("(new file)".to_string()),
                FileDiffKind::Removed => Some("(file will be removed)".to_string()),
                FileDiffKind::Binary => Some("binary file differs".to_string()),
                FileDiffKind::TooLarge => Some(format!(
                    "file differs (over {} KiB: not shown)",
                    DIFF_LIMIT_BYTES / 1024
                )),
                FileDiffKind::Unreadable => {
                    Some("could not be read from the host: no diff".to_string())
                }
            };
            match note {
                Some(note) => {
                    let _ = writeln!(out, "    {} {}", file.path, style.dim(&note));
                }
                None => {
                    let _ = writeln!(out, "    {}", file.path);
                }
            }
            if let Some(unified) = &file.unified {
                out.push_str(&paint(unified, INDENT, style));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unified_diff_as_diff_u_prints_it() {
        let old = "a\nb\nc\n";
        let new = "a\nB\nc\nd";
        assert_eq!(
            unified_diff(old, new, "x (shipped)", "x (on web1)"),
            "--- x (shipped)\n+++ x (on web1)\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n\\ No newline at end of file\n"
        );
        assert_eq!(unified_diff(old, old, "x", "y"), "");
    }

    #[test]
    fn painting_indents_every_line_and_colours_only_on_a_terminal() {
        let diff = unified_diff("a\n", "b\n", "old", "new");
        assert_eq!(
            paint(&diff, "  ", Style::plain()),
            "  --- old\n  +++ new\n  @@ -1 +1 @@\n  -a\n  +b\n"
        );
    }
}
