//! Parsing a Clusterfile: TOML text → [`RawClusterfile`], with spans.
//!
//! The document is parsed once into toml's spanned tree (`DeTable`), with
//! error recovery so several syntax errors show at once. Each top-level key,
//! and each item of the `[[hosts]]`, `[[bundles]]`, ... arrays, is then
//! deserialized on its own: serde stops at the first error of a value, so
//! going item by item is what lets one run report a wrong type in one host and
//! an unknown key in one step together. Meaning is checked later, by
//! `model::validate`.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::raw::RawClusterfile;
use crate::diagnostic::{Problem, Problems, SourceFile};

const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "name", "ssh", "vars", "hosts", "bundles", "files", "configs", "steps",
];

/// Names and roles of items that failed to deserialize. Validation still
/// runs on the rest; references to these are not reported as unknown, since
/// the real error is already in the item itself.
#[derive(Debug, Default)]
pub struct Recovered {
    pub names: HashSet<String>,
    pub roles: HashSet<String>,
}

/// Parses the text into raw types, pushing every problem found. Returns
/// `None` when the document is too broken to go on (syntax errors).
pub fn parse(source: &SourceFile, problems: &mut Problems) -> Option<(RawClusterfile, Recovered)> {
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
    let mut recovered = Recovered::default();

    let mut version = None;
    let mut name = None;
    let mut out = RawClusterfile {
        version: Spanned::new(0..0, 0),
        name: Spanned::new(0..0, String::new()),
        ssh: None,
        vars: BTreeMap::new(),
        hosts: Vec::new(),
        bundles: Vec::new(),
        files: Vec::new(),
        configs: Vec::new(),
        steps: Vec::new(),
    };
    for (key, value) in root {
        let key_span = key.span();
        match key.get_ref().as_ref() {
            // Present but invalid is `Some(None)`: its error is already recorded.
            "version" => version = Some(decode(&source.text, value, problems)),
            "name" => name = Some(decode(&source.text, value, problems)),
            "ssh" => out.ssh = decode(&source.text, value, problems),
            "vars" => out.vars = decode(&source.text, value, problems).unwrap_or_default(),
            "hosts" => {
                out.hosts = decode_items(&source.text, value, "hosts", problems, &mut recovered);
            }
            "bundles" => {
                out.bundles =
                    decode_items(&source.text, value, "bundles", problems, &mut recovered);
            }
            "files" => {
                out.files = decode_items(&source.text, value, "files", problems, &mut recovered);
            }
            "configs" => {
                out.configs =
                    decode_items(&source.text, value, "configs", problems, &mut recovered);
            }
            "steps" => {
                out.steps = decode_items(&source.text, value, "steps", problems, &mut recovered);
            }
            other => problems.push(
                Problem::at(key_span, format!("unknown key `{other}`"))
                    .label("not a Clusterfile key")
                    .help(format!("top-level keys are: {}", TOP_LEVEL_KEYS.join(", "))),
            ),
        }
    }
    let start = root_span.start..root_span.start;
    match version {
        Some(Some(v)) => out.version = v,
        Some(None) => {}
        None => problems.push(
            Problem::at(start.clone(), "missing key `version`")
                .label("the file starts here")
                .help("add `version = 1` at the top"),
        ),
    }
    match name {
        Some(Some(n)) => out.name = n,
        Some(None) => {}
        None => problems.push(
            Problem::at(start, "missing key `name`")
                .label("the file starts here")
                .help("add `name = \"my-cluster\"`: it names the cluster and its state folder"),
        ),
    }
    Some((out, recovered))
}

/// Deserializes one value; on failure pushes the error at its span.
fn decode<T: for<'de> Deserialize<'de>>(
    text: &str,
    value: Spanned<DeValue<'_>>,
    problems: &mut Problems,
) -> Option<T> {
    let span = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(error) => {
            problems.push(serde_problem(text, &error, span));
            None
        }
    }
}

/// Deserializes each item of an array of tables on its own, so that errors
/// in several items are all reported.
fn decode_items<T: for<'de> Deserialize<'de>>(
    text: &str,
    value: Spanned<DeValue<'_>>,
    section: &str,
    problems: &mut Problems,
    recovered: &mut Recovered,
) -> Vec<T> {
    let span = value.span();
    if let DeValue::Array(items) = value.into_inner() {
        items
            .into_iter()
            .filter_map(|item| {
                let (names, roles) = names_in(&item);
                let decoded = decode(text, item, problems);
                if decoded.is_none() {
                    recovered.names.extend(names);
                    recovered.roles.extend(roles);
                }
                decoded
            })
            .collect()
    } else {
        problems.push(
            Problem::at(span, format!("`{section}` must be an array of tables"))
                .label(format!("expected [[{section}]] entries"))
                .help(format!("write each entry as a `[[{section}]]` table")),
        );
        Vec::new()
    }
}

/// The `name`, `dest` and `roles` strings of an item, read leniently.
fn names_in(item: &Spanned<DeValue<'_>>) -> (Vec<String>, Vec<String>) {
    let DeValue::Table(table) = item.get_ref() else {
        return (Vec::new(), Vec::new());
    };
    let mut names = Vec::new();
    let mut roles = Vec::new();
    for (key, value) in table {
        match (key.get_ref().as_ref(), value.get_ref()) {
            ("name" | "dest" | "address", DeValue::String(s)) => names.push(s.to_string()),
            ("roles", DeValue::Array(items)) => {
                roles.extend(items.iter().filter_map(|r| match r.get_ref() {
                    DeValue::String(s) => Some(s.to_string()),
                    _ => None,
                }));
            }
            _ => {}
        }
    }
    (names, roles)
}

/// Turns a serde error from toml into a problem, with a help line for the
/// common cases (unknown field, wrong type, missing field).
fn serde_problem(text: &str, error: &toml::de::Error, fallback: std::ops::Range<usize>) -> Problem {
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
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        let key = key_before(text, span.start)
            .map(|k| format!(" for `{k}`"))
            .unwrap_or_default();
        return Problem::at(
            span,
            format!(
                "wrong type{key}: expected {}, found {found}",
                plain_type(expected)
            ),
        )
        .label(format!("expected {}", plain_type(expected)));
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let key = key_before(text, span.start)
            .map(|k| format!(" for `{k}`"))
            .unwrap_or_default();
        return Problem::at(span, format!("invalid value{key}: {rest}")).label("invalid value");
    }
    if message.starts_with("unknown variant") {
        return Problem::at(span, message.replace("unknown variant", "unknown value"))
            .label("not a valid value");
    }
    Problem::at(span, message).label("invalid value")
}

/// The key of a `key = value` line, given an offset in its value.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |p| p + 1);
    let (key, _) = text[line_start..offset.min(text.len())].split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    .then_some(key)
}

/// serde's type names in words.
fn plain_type(expected: &str) -> String {
    match expected {
        "i64" | "u32" | "u16" | "u64" | "i32" => "an integer".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" => "a string".into(),
        other => other.to_string(),
    }
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message).trim()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clusterfile::raw::RawVar;

    fn parse_text(text: &str) -> (Option<RawClusterfile>, Vec<Problem>) {
        let source = SourceFile {
            path: "Clusterfile".into(),
            text: Arc::new(text.to_string()),
        };
        let mut problems = Problems::default();
        let raw = parse(&source, &mut problems).map(|(raw, _)| raw);
        (raw, problems.0)
    }

    #[test]
    fn one_element_arrays_are_values_not_secrets() {
        let (raw, problems) = parse_text(
            "version = 1\nname = \"x\"\n[vars]\npeers = [\"a\"]\ntoken = { secret = \"env:T\" }\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let raw = raw.unwrap();
        assert!(matches!(
            raw.vars["peers"].get_ref(),
            RawVar::Value(toml::Value::Array(_))
        ));
        assert!(matches!(raw.vars["token"].get_ref(), RawVar::Secret(s) if s.secret == "env:T"));
    }

    #[test]
    fn errors_in_several_items_are_all_reported() {
        let (_, problems) = parse_text(
            "version = 1\nname = \"x\"\n[[steps]]\nname = \"a\"\nrun = \"x\"\nbogus = 1\n[[steps]]\nname = \"b\"\nrun = 5\n",
        );
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown key `bogus`",
                "wrong type for `run`: expected a string, found integer `5`"
            ]
        );
    }

    #[test]
    fn a_present_but_invalid_version_is_not_also_missing() {
        let (_, problems) = parse_text("version = \"1\"\nname = \"x\"\n");
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
