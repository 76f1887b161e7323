//! The `Validator`: the file's text, where problems go, and the helpers
//! every pass shares; and [`validate`], which runs the passes in the order
//! the Clusterfile reads.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::clusterfile::Recovered;
use crate::clusterfile::raw::RawClusterfile;
use crate::diagnostic::{Problem, Problems, SourceFile};
use crate::model::bundle_toml::SourceReader;
use crate::model::interp::{Interp, sub_span};
use crate::model::{HostId, Model, VarValue};

/// Builds the model; every problem found goes to `problems`, and `None` is
/// returned when there was any.
pub fn validate(
    source: &SourceFile,
    raw: &RawClusterfile,
    recovered: &Recovered,
    problems: &mut Problems,
) -> Option<Model> {
    let sources = crate::model::bundle_toml::FoldersAndArchives;
    validate_with(source, raw, recovered, &BTreeMap::new(), &sources, problems)
}

/// [`validate`], with `overrides` (values given from outside, already
/// checked against `[vars]`: see `OuterVars::resolve`) put over `[vars]`
/// before anything reads them, and bundle sources read by `sources` (the
/// bundle room's `Sources`; [`validate`] reads folders and `.tar.zst` only).
pub fn validate_with(
    source: &SourceFile,
    raw: &RawClusterfile,
    recovered: &Recovered,
    overrides: &BTreeMap<String, VarValue>,
    sources: &dyn SourceReader,
    problems: &mut Problems,
) -> Option<Model> {
    let base_dir = absolute_dir(&source.path);
    let mut v = Validator {
        text: &source.text,
        sources,
        base_dir: base_dir.clone(),
        problems,
        recovered: recovered.clone(),
        unresolved_vars: BTreeSet::new(),
        positions: BTreeMap::new(),
    };
    let name = v.header(raw);
    let defaults = v.ssh_defaults(raw.ssh.as_ref());
    // Bundle defaults < `[vars]` < `--var`; host vars win over all three (`Model::var`).
    let metadata = v.bundle_metadata(raw);
    let mut vars = v.bundle_var_defaults(raw, &metadata);
    vars.extend(v.vars(&raw.vars));
    vars.extend(overrides.iter().map(|(n, v)| (n.clone(), v.clone())));
    let mut hosts = v.hosts(&raw.hosts, &defaults);
    crate::model::ssh_config::resolve_aliases(&mut hosts);
    let state = v.state_settings(raw.state.as_ref());
    let mut model = Model {
        name,
        path: source.path.clone(),
        base_dir,
        vars,
        hosts,
        ssh_defaults: defaults.settings.clone(),
        bundles: Vec::new(),
        files: Vec::new(),
        steps: Vec::new(),
        captures: BTreeMap::new(),
        positions: BTreeMap::new(),
        state,
    };
    let names = v.element_names(raw);
    v.bundles(raw, &mut model, &names, &metadata);
    v.configs(raw, &mut model);
    v.files(raw, &mut model, &names);
    v.steps(raw, &mut model, &names);
    v.hooks(raw, &mut model, &metadata);
    // Every deserialized element is in the model (invalid parts replaced by
    // neutral values, their problems recorded), so these whole-file checks
    // can run alongside everything else.
    v.cycles(&model);
    v.var_references(&model);
    model.positions = std::mem::take(&mut v.positions);
    v.problems.is_empty().then_some(model)
}

/// The Clusterfile's folder made absolute, so sources resolve the same
/// wherever cairn runs from later (the model outlives the working directory).
fn absolute_dir(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// What every pass shares: the text (for spans and line numbers), where
/// relative paths start, and where problems go.
pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
    /// What each bundle's source is, and where its `bundle.toml` is.
    pub(super) sources: &'a dyn SourceReader,
    pub(super) base_dir: PathBuf,
    pub(super) problems: &'a mut Problems,
    /// What items that failed to deserialize, or hosts that could not be
    /// built, defined: not reported again as unknown references.
    pub(super) recovered: Recovered,
    /// Variables defined but not resolved (a secret that could not be
    /// loaded, an invalid capture name), as reported: reading one is not
    /// also "undefined".
    pub(super) unresolved_vars: BTreeSet<String>,
    /// Positional selectors met (`master[0]`) and the host each resolved to.
    pub(super) positions: BTreeMap<String, HostId>,
}

impl Validator<'_> {
    pub(super) fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// A `"30s"`-style duration. Zero is refused: it would mean "no time at
    /// all", and leaving the key out already means "no limit".
    pub(super) fn duration(&mut self, value: &Spanned<String>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref().trim()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.push(
                    Problem::at(value.span(), format!("{what} must be longer than zero"))
                        .label("zero")
                        .help("leave the key out for no limit"),
                );
                None
            }
            Err(_) => {
                self.push(
                    Problem::at(
                        value.span(),
                        format!("invalid duration `{}` for {what}", value.get_ref()),
                    )
                    .label("not a duration")
                    .help("write a number with a unit, e.g. \"30s\", \"5m\", \"1h 30m\""),
                );
                None
            }
        }
    }

    /// Finds the span of a table key just before its value, for messages about the name.
    pub(super) fn key_span(&self, name: &str, value_span: &Range<usize>) -> Range<usize> {
        let before = &self.text[..value_span.start.min(self.text.len())];
        match before.rfind(name) {
            Some(pos) if value_span.start - pos < name.len() + 16 => pos..pos + name.len(),
            _ => value_span.clone(),
        }
    }

    /// The 1-based line of a byte offset, for help texts that point at an
    /// earlier occurrence ("the first is at line 4").
    pub(super) fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// Parses a string's `${}` references; a syntax error is reported at its
    /// place inside the string, not at the whole value.
    pub(super) fn interp(&mut self, value: &Spanned<String>) -> Option<Interp> {
        match Interp::parse(value.get_ref()) {
            Ok(i) => Some(i),
            Err(error) => {
                let span = sub_span(self.text, &value.span(), value.get_ref(), error.offset, 2);
                self.push(Problem::at(span, error.message).label("here"));
                None
            }
        }
    }
}

pub(super) use crate::model::expand_home;
