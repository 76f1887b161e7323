//! Reading a Clusterfile: TOML text → [`RawClusterfile`], with spans.
//!
//! The document is parsed once into toml's spanned tree (`DeTable`), with
//! error recovery so several syntax errors show at once. Each top-level key,
//! and each item of the `[[hosts]]`, `[[bundles]]`, ... arrays, is then
//! deserialized on its own: serde stops at the first error of a value, so
//! going item by item is what lets one run report a wrong type in one host and
//! an unknown key in one step together. Meaning is checked later, by
//! `model::validate`.

pub mod raw;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::diagnostic::{Problem, Problems, SourceFile};
pub use raw::RawClusterfile;

/// Why a Clusterfile could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read Clusterfile {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "name", "ssh", "vars", "hosts", "bundles", "files", "configs", "steps",
];

/// Reads the file at `path`.
pub fn read(path: &Path) -> Result<SourceFile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(SourceFile {
        path: path.to_path_buf(),
        text: Arc::new(text),
    })
}

/// Parses the text into raw types, pushing every problem found. Returns
/// `None` when the document is too broken to go on (syntax errors, or a
/// missing `version`/`name`).
pub fn parse(source: &SourceFile, problems: &mut Problems) -> Option<RawClusterfile> {
    let (root, syntax_errors) = DeTable::parse_recoverable(&source.text);
    if !syntax_errors.is_empty() {
        for error in syntax_errors {
            problems.push(
                Problem::new(
                    error.span(),
                    format!("invalid TOML: {}", first_line(error.message())),
                )
                .label("TOML syntax error")
                .help("see https://toml.io for the syntax"),
            );
        }
        return None;
    }
    let root_span = root.span();
    let root = root.into_inner();

    let mut version = None;
    let mut name = None;
    let mut out = RawClusterfile {
        version: Spanned::new(0..0, 0),
        name: Spanned::new(0..0, String::new()),
        ssh: None,
        vars: Default::default(),
        hosts: Vec::new(),
        bundles: Vec::new(),
        files: Vec::new(),
        configs: Vec::new(),
        steps: Vec::new(),
    };
    for (key, value) in root {
        let key_span = key.span();
        match key.get_ref().as_ref() {
            "version" => version = decode(value, problems),
            "name" => name = decode(value, problems),
            "ssh" => out.ssh = decode(value, problems),
            "vars" => out.vars = decode(value, problems).unwrap_or_default(),
            "hosts" => out.hosts = decode_items(value, "hosts", problems),
            "bundles" => out.bundles = decode_items(value, "bundles", problems),
            "files" => out.files = decode_items(value, "files", problems),
            "configs" => out.configs = decode_items(value, "configs", problems),
            "steps" => out.steps = decode_items(value, "steps", problems),
            other => problems.push(
                Problem::at(key_span, format!("unknown key `{other}`"))
                    .label("not a Clusterfile key")
                    .help(format!("top-level keys are: {}", TOP_LEVEL_KEYS.join(", "))),
            ),
        }
    }
    let start = root_span.start..root_span.start;
    match version {
        Some(v) => out.version = v,
        None => problems.push(
            Problem::at(start.clone(), "missing key `version`")
                .label("the file starts here")
                .help("add `version = 1` at the top"),
        ),
    }
    match name {
        Some(n) => out.name = n,
        None => problems.push(
            Problem::at(start, "missing key `name`")
                .label("the file starts here")
                .help("add `name = \"my-cluster\"`: it names the cluster and its state folder"),
        ),
    }
    Some(out)
}

/// Deserializes one value; on failure pushes the error at its span.
fn decode<T: for<'de> Deserialize<'de>>(
    value: Spanned<DeValue<'_>>,
    problems: &mut Problems,
) -> Option<T> {
    let span = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(error) => {
            problems.push(serde_problem(&error, span));
            None
        }
    }
}

/// Deserializes each item of an array of tables on its own, so that errors
/// in several items are all reported.
fn decode_items<T: for<'de> Deserialize<'de>>(
    value: Spanned<DeValue<'_>>,
    section: &str,
    problems: &mut Problems,
) -> Vec<T> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items
            .into_iter()
            .filter_map(|item| decode(item, problems))
            .collect(),
        _ => {
            problems.push(
                Problem::at(span, format!("`{section}` must be an array of tables"))
                    .label("expected [[{section}]] entries")
                    .help(format!("write each entry as a `[[{section}]]` table")),
            );
            Vec::new()
        }
    }
}

/// Turns a serde error from toml into a problem, with a help line for the
/// common cases (unknown field, wrong type, missing field).
fn serde_problem(error: &toml::de::Error, fallback: std::ops::Range<usize>) -> Problem {
    let message = first_line(error.message()).to_string();
    let span = error.span().unwrap_or(fallback);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let field = field.trim_matches('`');
        let mut problem =
            Problem::at(span, format!("unknown key `{field}`")).label("not allowed here");
        if !expected.is_empty() {
            problem = problem.help(format!(
                "expected one of: {}",
                expected.replace("one of ", "")
            ));
        }
        return problem;
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return Problem::at(span, format!("missing key {rest}"))
            .label("in this table")
            .help(format!("add {rest}"));
    }
    if message.starts_with("invalid type") {
        return Problem::at(span, format!("wrong type: {message}")).label("wrong type");
    }
    if message.starts_with("unknown variant") {
        return Problem::at(span, message.replace("unknown variant", "unknown value"))
            .label("not a valid value");
    }
    Problem::at(span, message).label("invalid value")
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message).trim()
}
