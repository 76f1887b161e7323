//! `cairn output [NAME]`: values captured by steps, as the state recorded
//! them; all of them, or one by name for scripts (`$(cairn output NAME)`).
//! Nothing recorded yet, or a name nothing captures, is an error (exit 1)
//! that says what to do.

use std::path::Path;

use crate::cli::OutputArgs;
use crate::error::{CairnError, Success};
use crate::model::Model;
use crate::report::{CapturedValues, Output, captured_values};
use crate::words::closest;

pub(super) fn run(file: &Path, args: &OutputArgs, out: Output) -> Result<Success, CairnError> {
    let recorded = super::recorded::read(file, out, "values read from the state alone")?;
    let values = captured_values(&recorded.state, &recorded.scrubber);
    let model = recorded.model.as_deref();
    let declared: Vec<&String> = model
        .map(|m| m.captures.keys().collect())
        .unwrap_or_default();
    let cluster = model.map_or(&recorded.state.cluster, |m| &m.name);
    show(&values, args, cluster, &declared, model, file, out)
}

/// Prints what `args` asks for, or says why there is nothing.
fn show(
    values: &CapturedValues,
    args: &OutputArgs,
    cluster: &str,
    declared: &[&String],
    model: Option<&Model>,
    file: &Path,
    out: Output,
) -> Result<Success, CairnError> {
    let apply = super::edited::apply_command(file);
    let json = out.is_json();
    let Some(name) = &args.name else {
        if values.is_empty() {
            return Err(CairnError::usage(
                format!("no captured values recorded for cluster `{cluster}` yet"),
                if model.is_none() {
                    format!("steps record what they capture when they run: run `{apply}`")
                } else if declared.is_empty() {
                    "no step of this Clusterfile captures anything: give a step `capture = \"NAME\"` to keep its output".to_string()
                } else {
                    format!(
                        "steps record what they capture ({}) when they run: run `{apply}`",
                        join(declared)
                    )
                },
            ));
        }
        out.outputs(values);
        return Ok(Success::Ok);
    };
    if let Some(hosts) = values.get(name) {
        // `$(cairn output NAME)` must not quietly hand a script `***`.
        if !json && hosts.values().any(|v| v.masked) {
            return Err(CairnError::usage(
                format!("`{name}` holds a secret, which cairn output does not print"),
                "read the secret from where the Clusterfile takes it (its env: or file: source); `--json` shows the value masked, with \"masked\": true",
            ));
        }
        out.output_value(name, hosts);
        return Ok(Success::Ok);
    }
    if let Some(model) = model
        && let Some(&step) = model.captures.get(name)
    {
        return Err(CairnError::usage(
            format!("no value of `{name}` recorded yet"),
            format!(
                "step {} captures it when it runs: run `{apply}`",
                model.steps[step].name
            ),
        ));
    }
    let known: Vec<&String> = {
        let mut k: Vec<&String> = values.keys().chain(declared.iter().copied()).collect();
        k.sort();
        k.dedup();
        k
    };
    let listed = if known.is_empty() {
        "nothing is captured".to_string()
    } else {
        format!("captured values: {}", join(&known))
    };
    Err(CairnError::usage(
        format!("no captured value `{name}`"),
        match closest(name, known.iter().copied()) {
            Some(close) => format!("did you mean `{close}`? {listed}"),
            None => listed,
        },
    ))
}

fn join(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
