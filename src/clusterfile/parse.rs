//! Parsing a Clusterfile: TOML text → [`RawClusterfile`], with spans.
//!
//! The document is parsed once into toml's spanned tree (`DeTable`), with
//! error recovery so several syntax errors show at once. Each top-level key,
//! and each item of the `[[hosts]]`, `[[bundles]]`, ... arrays, is then
//! deserialized on its own: serde stops at the first error of a value, so
//! going item by item is what lets one run report a wrong type in one host and
//! an unknown key in one step together. Meaning is checked later, by
//! `model::validate`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::raw::{RawClusterfile, RawVar};
use crate::diagnostic::{Problem, Problems, SourceFile};
use crate::words::closest;

const TOP_LEVEL_KEYS: &[&str] = &[
    "version", "name", "ssh", "vars", "hosts", "bundles", "files", "configs", "steps", "state",
];

/// What was lost with the items that failed to deserialize: their names,
/// roles and the variables they defined, and whole sections that were not
/// even a table or array. Validation still runs on the rest, and skips
/// every check about these (an unknown role, host, element or variable):
/// the real error is already reported in the item itself, and a second
/// report about it would only mislead. One mistake, one error.
#[derive(Debug, Default, Clone)]
pub struct Recovered {
    /// Names of elements and hosts, and host addresses.
    pub names: HashSet<String>,
    pub roles: HashSet<String>,
    /// Variables whose definition failed: a `[vars]` entry, a host's vars, a step's `capture`.
    pub vars: HashSet<String>,
    /// Top-level keys lost whole (`hosts = 5`): nothing of theirs is known.
    pub sections: HashSet<&'static str>,
}

impl Recovered {
    /// A selector (`role`, `role[i]`, host name or address) that may have
    /// named something lost. A role lost because it was written wrong
    /// (`"we b"`) hides the selectors close to it too (`web`).
    pub fn hides_selector(&self, selector: &str) -> bool {
        let role = selector.split_once('[').map_or(selector, |(role, _)| role);
        self.sections.contains("hosts")
            || self.names.contains(selector)
            || self.roles.contains(role)
            || self.names.contains(role)
            || closest(role, self.roles.iter()).is_some()
    }

    /// A host (name or address) that may have been lost.
    pub fn hides_host(&self, host: &str) -> bool {
        self.sections.contains("hosts") || self.names.contains(host)
    }

    /// A step, bundle or file that may have been lost.
    pub fn hides_element(&self, name: &str) -> bool {
        ["bundles", "files", "steps"]
            .iter()
            .any(|s| self.sections.contains(s))
            || self.names.contains(name)
    }

    /// A variable whose definition may have been lost.
    pub fn hides_var(&self, name: &str) -> bool {
        ["vars", "hosts", "steps"]
            .iter()
            .any(|s| self.sections.contains(s))
            || self.vars.contains(name)
    }
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
    // Top-level keys an unknown key is taken to have meant.
    let mut meant: BTreeSet<&str> = BTreeSet::new();
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
        state: None,
    };
    for (key, value) in root {
        let key_span = key.span();
        match key.get_ref().as_ref() {
            // Present but invalid is `Some(None)`: its error is already recorded.
            "version" => version = Some(decode(&source.text, value, problems)),
            "name" => name = Some(decode(&source.text, value, problems)),
            "ssh" => out.ssh = decode(&source.text, value, problems),
            "state" => out.state = decode(&source.text, value, problems),
            "vars" => out.vars = decode_vars(&source.text, value, problems, &mut recovered),
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
            other => {
                let mut help = format!("top-level keys are: {}", TOP_LEVEL_KEYS.join(", "));
                if let Some(close) = closest(other, TOP_LEVEL_KEYS.iter()) {
                    help = format!("did you mean `{close}`? {help}");
                    // `[[step]]` holds the steps meant: references to them are not errors too.
                    if let Some(section) = TOP_LEVEL_KEYS.iter().find(|k| **k == close) {
                        recovered.sections.insert(section);
                        meant.insert(*section);
                    }
                }
                problems.push(
                    Problem::at(key_span, format!("unknown key `{other}`"))
                        .label("not a Clusterfile key")
                        .help(help),
                );
            }
        }
    }
    let start = root_span.start..root_span.start;
    // `nme = "x"` is one mistake: its "did you mean `name`" says it all.
    match version {
        Some(Some(v)) => out.version = v,
        Some(None) => {}
        None if meant.contains("version") => {}
        None => problems.push(
            Problem::at(start.clone(), "missing key `version`")
                .label("the file starts here")
                .help("add `version = 1` at the top"),
        ),
    }
    match name {
        Some(Some(n)) => out.name = n,
        Some(None) => {}
        None if meant.contains("name") => {}
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

/// `[vars]` entry by entry, so that one bad value (`{ secret = 5 }`) loses
/// only its own variable, which is then remembered as recovered.
fn decode_vars(
    text: &str,
    value: Spanned<DeValue<'_>>,
    problems: &mut Problems,
    recovered: &mut Recovered,
) -> BTreeMap<String, Spanned<RawVar>> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        problems.push(
            Problem::at(span, "wrong type for `vars`: expected a table")
                .label("expected a table")
                .help("write the variables as a table: `[vars]` then `name = \"value\"` lines"),
        );
        recovered.sections.insert("vars");
        return BTreeMap::new();
    };
    let mut vars = BTreeMap::new();
    for (key, value) in table {
        let name = key.get_ref().to_string();
        match decode::<Spanned<RawVar>>(text, value, problems) {
            Some(var) => {
                vars.insert(name, var);
            }
            None => {
                recovered.vars.insert(name);
            }
        }
    }
    vars
}

/// Deserializes each item of an array of tables on its own, so that errors
/// in several items are all reported.
fn decode_items<T: for<'de> Deserialize<'de>>(
    text: &str,
    value: Spanned<DeValue<'_>>,
    section: &'static str,
    problems: &mut Problems,
    recovered: &mut Recovered,
) -> Vec<T> {
    let span = value.span();
    if let DeValue::Array(items) = value.into_inner() {
        items
            .into_iter()
            .filter_map(|item| {
                let mut lost = Recovered::default();
                recover(&item, section, &mut lost);
                let decoded = decode(text, item, problems);
                if decoded.is_none() {
                    recovered.names.extend(lost.names);
                    recovered.roles.extend(lost.roles);
                    recovered.vars.extend(lost.vars);
                    recovered.sections.extend(lost.sections);
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
        recovered.sections.insert(section);
        Vec::new()
    }
}

/// What an item of `section` defines for others to refer to, read
/// leniently from the TOML whatever its types: its `name`, `dest` or
/// `address`, its roles (a list, or one string written where a list
/// belongs), its variables and its capture. What cannot be read at all (a
/// name that is a table or missing, `vars = 5`) loses its whole kind: any
/// of them may be the one a reference meant.
fn recover(item: &Spanned<DeValue<'_>>, section: &'static str, into: &mut Recovered) {
    let DeValue::Table(table) = item.get_ref() else {
        into.sections.insert(section);
        return;
    };
    // The keys that name an item of this section (a file is named by its dest, a host by its address).
    let naming: &[&str] = match section {
        "files" => &["name", "dest"],
        "hosts" => &["name", "address"],
        _ => &["name"],
    };
    let named = table
        .iter()
        .any(|(key, _)| naming.contains(&key.get_ref().as_ref()));
    if !named {
        into.sections.insert(section);
    }
    for (key, value) in table {
        match (key.get_ref().as_ref(), value.get_ref()) {
            (key, DeValue::String(name)) if naming.contains(&key) => {
                into.names.insert(name.to_string());
            }
            ("roles", DeValue::Array(items)) => {
                for role in items {
                    match role.get_ref() {
                        DeValue::String(role) => {
                            into.roles.insert(role.to_string());
                        }
                        _ => {
                            into.sections.insert(section);
                        }
                    }
                }
            }
            ("roles", DeValue::String(role)) => {
                into.roles.insert(role.to_string());
            }
            (key, _) if key == "roles" || naming.contains(&key) => {
                into.sections.insert(section);
            }
            ("vars", DeValue::Table(vars)) => {
                into.vars
                    .extend(vars.iter().map(|(name, _)| name.get_ref().to_string()));
            }
            ("capture", DeValue::String(name)) => {
                into.vars.insert(name.to_string());
            }
            ("vars" | "capture", _) => {
                into.sections.insert("vars");
            }
            _ => {}
        }
    }
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
            let known = expected.replace("one of ", "");
            let keys: Vec<&str> = known.split(", ").map(|k| k.trim_matches('`')).collect();
            let guess = closest(field, keys.iter())
                .map(|close| format!("did you mean `{close}`? "))
                .unwrap_or_default();
            problem = problem.help(format!("{guess}expected one of: {known}"));
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
        let key = key_before(text, span.start);
        let problem = Problem::at(
            span.clone(),
            format!(
                "wrong type{}: expected {}, found {found}",
                key.map(|k| format!(" for `{k}`")).unwrap_or_default(),
                plain_type(expected)
            ),
        )
        .label(format!("expected {}", plain_type(expected)));
        let written = text.get(span).unwrap_or_default().trim();
        return match right_form(key, expected, written) {
            Some(help) => problem.help(help),
            None => problem,
        };
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

/// How a value of the wrong type would be written right, when the fix is
/// plain: a lone string where a list belongs, a quoted number, an unquoted
/// string. `written` is the value as it stands in the file.
fn right_form(key: Option<&str>, expected: &str, written: &str) -> Option<String> {
    let key = key?;
    let unquoted = written.trim_matches(|c| c == '"' || c == '\'');
    let is_string = written.starts_with('"') || written.starts_with('\'');
    let fix = match plain_type(expected).as_str() {
        "a list" if is_string => format!("`{key} = [{written}]`"),
        "a list" => format!("`{key} = [\"{unquoted}\"]`"),
        "an integer" if is_string && unquoted.parse::<i64>().is_ok() => {
            format!("`{key} = {unquoted}` (without quotes)")
        }
        "true or false" if matches!(unquoted, "true" | "false") => format!("`{key} = {unquoted}`"),
        "true or false" => format!("`{key} = true` or `{key} = false`"),
        "a string" if !is_string && !written.starts_with(['[', '{']) => {
            format!("`{key} = \"{written}\"` (in quotes)")
        }
        "a selector string or a list of them" if !written.starts_with(['[', '{']) => {
            format!("`{key} = \"{unquoted}\"` or `{key} = [\"{unquoted}\"]`")
        }
        _ => return None,
    };
    Some(format!("write it as {fix}"))
}

/// serde's type names in words.
fn plain_type(expected: &str) -> String {
    match expected {
        "a sequence" => "a list".into(),
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
