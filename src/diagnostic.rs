//! User-facing problems in a Clusterfile, collected rather than thrown.
//!
//! Parsing and validation push a [`Problem`] (span, message, label, help)
//! for everything wrong and carry on, so one run reports every error. At the
//! edge, [`InvalidClusterfile`] turns the list into one miette report whose
//! related diagnostics each underline their span in the file. The span is kept
//! apart from the kind of error, as `just` does, so the same problem can be
//! rendered as text, or asserted on in tests.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

/// One thing wrong with a Clusterfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte range in the Clusterfile; `None` when the problem is about the whole file.
    pub span: Option<Range<usize>>,
    /// What is wrong, lower case, no trailing period.
    pub message: String,
    /// Short text under the underline.
    pub label: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl Problem {
    pub fn new(span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Problem {
            span,
            message: message.into(),
            label: String::from("here"),
            help: None,
        }
    }

    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Self::new(Some(span), message)
    }

    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A growing list of problems; validation keeps going after each push.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The text of a Clusterfile with its path, shared by every diagnostic.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<String>,
}

impl SourceFile {
    /// The 1-based line and column (in characters) of a byte offset, as
    /// editors count them.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        (
            before.matches('\n').count() + 1,
            before[line_start..].chars().count() + 1,
        )
    }

    fn named(&self) -> NamedSource<Arc<String>> {
        NamedSource::new(self.path.display().to_string(), self.text.clone()).with_language("toml")
    }
}

/// Every problem found in one Clusterfile, as one report.
#[derive(Debug, thiserror::Error)]
#[error("{} has {}", source_file.path.display(), crate::words::count(problems.len(), "error"))]
pub struct InvalidClusterfile {
    pub source_file: SourceFile,
    pub problems: Vec<ProblemReport>,
}

impl InvalidClusterfile {
    pub fn new(source_file: SourceFile, mut problems: Vec<Problem>) -> Self {
        // In file order, as a reader goes through it.
        problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
        let problems = problems
            .into_iter()
            .map(|problem| ProblemReport {
                named: source_file.named(),
                problem,
            })
            .collect();
        InvalidClusterfile {
            source_file,
            problems,
        }
    }
}

impl Diagnostic for InvalidClusterfile {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("cairn::clusterfile"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(
            "nothing was run and nothing was written; fix the errors below and run `cairn validate` again",
        ))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}

/// One problem with the source it points into.
#[derive(Debug, thiserror::Error)]
#[error("{}", problem.message)]
pub struct ProblemReport {
    named: NamedSource<Arc<String>>,
    pub problem: Problem,
}

impl Diagnostic for ProblemReport {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.problem
            .span
            .as_ref()
            .map(|_| &self.named as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.problem.span.clone()?;
        let span = SourceSpan::from(span.start..span.end.max(span.start));
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some(self.problem.label.clone()), span),
        )))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

/// Renders a diagnostic as plain text (no colour, fixed width): what tests
/// snapshot and what `--no-color` prints.
pub fn render_plain(diagnostic: &dyn Diagnostic) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100)
            .with_links(false);
    let mut out = String::new();
    handler
        .render_report(&mut out, diagnostic)
        .expect("writing to a String cannot fail");
    out
}
