//! How a command's error reaches the operator: miette's report, each cause
//! said once.
//!
//! Many errors carry their OS cause both in their message ("failed to read
//! Clusterfile x: No such file or directory (os error 2)") and as their
//! `source()`, and miette prints every source below the message: the same
//! words twice. Rather than strip the cause from messages (they are also
//! what JSON and logs show), the report skips a cause whose text the
//! message above it already holds.

use std::fmt;

use miette::Diagnostic;

use crate::error::CairnError;

/// Prints `error` to stderr with miette's handler (installed by `main`).
pub fn print_error(error: CairnError) {
    let rendered = format!("{:?}", miette::Report::new(SaidOnce(error)));
    eprintln!("{}", super::hints::runnable(&rendered));
}

/// `CairnError` as miette sees it, its causes deduplicated.
struct SaidOnce(CairnError);

impl fmt::Debug for SaidOnce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SaidOnce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SaidOnce {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        first_cause_not_already_said(&self.0.to_string(), self.0.source())
    }
}

/// The first cause in the chain starting at `cause` whose text `said` does
/// not already contain. The chain below that cause is still miette's to
/// walk: a cause that adds words keeps the ones under it.
fn first_cause_not_already_said<'a>(
    said: &str,
    mut cause: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    while let Some(error) = cause {
        if !said.contains(&error.to_string()) {
            return Some(error);
        }
        cause = error.source();
    }
    None
}

impl Diagnostic for SaidOnce {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.code()
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.0.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.help()
    }
    fn url<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.url()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.0.labels()
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        self.0.related()
    }
    fn diagnostic_source(&self) -> Option<&dyn Diagnostic> {
        self.0.diagnostic_source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_the_message_already_holds_is_not_repeated() {
        let error = CairnError::Load(crate::clusterfile::LoadError::Read {
            path: "Clusterfile".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        let said = error.to_string();
        assert!(said.contains("entity not found"), "{said}");
        assert!(first_cause_not_already_said(&said, std::error::Error::source(&error)).is_none());
    }

    #[test]
    fn a_cause_that_adds_words_is_kept() {
        let cause = std::io::Error::other("disk full");
        let kept = first_cause_not_already_said("failed to write x", Some(&cause));
        assert_eq!(kept.map(ToString::to_string).as_deref(), Some("disk full"));
    }
}
