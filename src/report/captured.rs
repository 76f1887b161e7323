//! Values captured by steps, as the state recorded them (`cairn output`,
//! and the captured values `cairn show` lists per host).
//!
//! A step with `capture = NAME` records its stdout with its task; this reads
//! them back by name and host, every value passed through the Scrubber (a
//! value that held a secret was stored masked already; the Scrubber also
//! masks one a secret of the Clusterfile appears in now). Where every host
//! recorded the same value, `cairn output NAME` prints it alone, for
//! `$(cairn output NAME)`; where they differ, one `HOST<TAB>VALUE` line per
//! host.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::Style;
use super::stamp::stamped;
use crate::hash::ActionSpec;
use crate::model::Scrubber;
use crate::state::{RecordDetail, State};

/// One captured value on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapturedValue {
    pub value: String,
    /// The value held a secret, now `***`.
    pub masked: bool,
}

/// Captured values: capture name → host → value.
pub type CapturedValues = BTreeMap<String, BTreeMap<String, CapturedValue>>;

/// Every value the state holds a capture of, scrubbed.
pub fn captured_values(state: &State, scrubber: &Scrubber) -> CapturedValues {
    let mut out = CapturedValues::new();
    for record in state.tasks.values() {
        let (
            ActionSpec::Step {
                capture: Some(name),
                ..
            },
            RecordDetail::Step {
                captured: Some(value),
                captured_masked,
                ..
            },
        ) = (&record.inputs.action, &record.detail)
        else {
            continue;
        };
        let shown = scrubber.scrub(value);
        let masked = *captured_masked || shown != *value;
        out.entry(name.clone()).or_default().insert(
            record.host().name.clone(),
            CapturedValue {
                value: shown,
                masked,
            },
        );
    }
    out
}

/// The one value every host recorded, if they agree.
fn same_everywhere(hosts: &BTreeMap<String, CapturedValue>) -> Option<&CapturedValue> {
    let mut values = hosts.values();
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

/// One capture in `output --json`: `value` when every host has the same.
#[derive(Serialize)]
struct OutputJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    masked: bool,
    hosts: BTreeMap<&'a str, &'a str>,
}

fn output_json<'a>(
    name: Option<&'a str>,
    hosts: &'a BTreeMap<String, CapturedValue>,
) -> OutputJson<'a> {
    OutputJson {
        name,
        value: same_everywhere(hosts).map(|v| v.value.as_str()),
        masked: hosts.values().any(|v| v.masked),
        hosts: hosts
            .iter()
            .map(|(h, v)| (h.as_str(), v.value.as_str()))
            .collect(),
    }
}

/// `cairn output`: each capture, `NAME = VALUE` when every host agrees,
/// else the name and one indented line per host.
pub(super) fn outputs_text(values: &CapturedValues, style: Style) -> String {
    let mut out = String::new();
    for (name, hosts) in values {
        if let Some(v) = same_everywhere(hosts) {
            let _ = writeln!(out, "{} = {}", style.bold(name), v.value);
        } else {
            let _ = writeln!(
                out,
                "{} {}",
                style.bold(name),
                style.dim("(differs per host)")
            );
            let width = hosts.keys().map(String::len).max().unwrap_or(0);
            for (host, v) in hosts {
                let _ = writeln!(out, "  {host:<width$}  {}", v.value);
            }
        }
    }
    out
}

/// `cairn output --json`: `outputs`, capture name → its values (under a
/// key of their own, so that no capture name meets the stamp's fields).
pub(super) fn outputs_json(values: &CapturedValues) -> String {
    #[derive(Serialize)]
    struct Outputs<'a> {
        outputs: BTreeMap<&'a str, OutputJson<'a>>,
    }
    let outputs = values
        .iter()
        .map(|(name, hosts)| (name.as_str(), output_json(None, hosts)))
        .collect();
    serde_json::to_string_pretty(&stamped(&Outputs { outputs })).expect("serializes")
}

/// `cairn output NAME`: the value alone when every host agrees, else
/// `HOST<TAB>VALUE` per host.
pub(super) fn output_text(hosts: &BTreeMap<String, CapturedValue>) -> String {
    if let Some(v) = same_everywhere(hosts) {
        return format!("{}\n", v.value);
    }
    let mut out = String::new();
    for (host, v) in hosts {
        let _ = writeln!(out, "{host}\t{}", v.value);
    }
    out
}

/// `cairn output NAME --json`.
pub(super) fn output_json_text(name: &str, hosts: &BTreeMap<String, CapturedValue>) -> String {
    serde_json::to_string_pretty(&stamped(&output_json(Some(name), hosts))).expect("serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &str) -> CapturedValue {
        CapturedValue {
            value: v.into(),
            masked: v.contains("***"),
        }
    }

    #[test]
    fn one_value_alone_or_one_line_per_host() {
        let same = BTreeMap::from([("a".to_string(), value("x")), ("b".to_string(), value("x"))]);
        assert_eq!(output_text(&same), "x\n");
        let differ = BTreeMap::from([("a".to_string(), value("x")), ("b".to_string(), value("y"))]);
        assert_eq!(output_text(&differ), "a\tx\nb\ty\n");
        let all =
            CapturedValues::from([("same".to_string(), same), ("differ".to_string(), differ)]);
        assert_eq!(
            outputs_text(&all, Style::plain()),
            "differ (differs per host)\n  a  x\n  b  y\nsame = x\n"
        );
        let json: serde_json::Value = serde_json::from_str(&outputs_json(&all)).unwrap();
        assert_eq!(json["outputs"]["same"]["value"], "x");
        assert!(json["outputs"]["differ"].get("value").is_none());
        assert_eq!(json["outputs"]["differ"]["hosts"]["b"], "y");
    }
}
