//! What `cairn exec` and `cairn cp` print: each host's result whole, as it
//! arrives, then a closing line; or one JSON object per host and line.
//!
//! A host's result is rendered into one string and written at once, so two
//! hosts' output never interleave. Text shows a header per host (name,
//! address, exit code or why it failed, time) and then what the command
//! printed, stdout before stderr; `--json` gives the same fields with stdout
//! and stderr apart. What reaches here is already scrubbed of secrets.

use std::fmt::Write as _;

use serde::Serialize;

use super::Style;
use super::lines::plural;
use super::stamp::stamped;
use crate::adhoc::{CopyResult, ExecResult};

/// One host's `exec` result, as a line of `--json`.
#[derive(Serialize)]
struct ExecJson<'a> {
    host: &'a str,
    address: &'a str,
    exit_code: Option<i32>,
    stdout: &'a str,
    stderr: &'a str,
    duration_ms: u64,
    error: Option<&'a str>,
}

/// One host's `cp` result, as a line of `--json`.
#[derive(Serialize)]
struct CopyJson<'a> {
    host: &'a str,
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    dest: Option<&'a str>,
    files: usize,
    bytes: u64,
    duration_ms: u64,
    error: Option<&'a str>,
}

pub(super) fn exec_json(r: &ExecResult) -> String {
    let json = ExecJson {
        host: &r.host,
        address: &r.address,
        exit_code: r.exit_code,
        stdout: &r.stdout,
        stderr: &r.stderr,
        duration_ms: r.duration_ms,
        error: r.error.as_deref(),
    };
    format!(
        "{}\n",
        serde_json::to_string(&stamped(&json)).expect("serializes")
    )
}

pub(super) fn copy_json(r: &CopyResult, source: Option<&str>) -> String {
    let json = CopyJson {
        host: &r.host,
        address: &r.address,
        source,
        dest: r.dest.as_deref(),
        files: r.files,
        bytes: r.bytes,
        duration_ms: r.duration_ms,
        error: r.error.as_deref(),
    };
    format!(
        "{}\n",
        serde_json::to_string(&stamped(&json)).expect("serializes")
    )
}

fn ms(d: u64) -> String {
    if d >= 1000 {
        format!("{:.1}s", std::time::Duration::from_millis(d).as_secs_f64())
    } else {
        format!("{d}ms")
    }
}

/// Bytes, the way people read them.
pub(super) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[expect(clippy::cast_precision_loss, reason = "a size shown to one decimal")]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How a host's command ended, in a word or two.
fn exec_outcome(r: &ExecResult) -> String {
    if r.unreachable {
        "unreachable".to_string()
    } else if let Some(error) = &r.error {
        // The first line says it (a timeout, a lost connection); the rest follows below.
        error.lines().next().unwrap_or("failed").to_string()
    } else {
        match r.exit_code {
            Some(code) => format!("exit {code}"),
            None => "killed".to_string(),
        }
    }
}

/// One host's `exec` result: its header, then its output, whole.
pub(super) fn exec_text(r: &ExecResult, style: Style) -> String {
    let mut out = String::new();
    let outcome = exec_outcome(r);
    let outcome = if r.succeeded() {
        style.green(&outcome)
    } else {
        style.red(&outcome)
    };
    let _ = writeln!(
        out,
        "{} {outcome} {}",
        style.bold(&format!("── {} ({})", r.host, r.address)),
        style.dim(&format!("[{}]", ms(r.duration_ms)))
    );
    for text in [&r.stdout, &r.stderr] {
        out.push_str(text);
        if !text.is_empty() && !text.ends_with('\n') {
            out.push('\n');
        }
    }
    if let Some(error) = &r.error
        && (r.unreachable || error.lines().nth(1).is_some())
    {
        let _ = writeln!(out, "{error}");
    }
    out
}

/// One host's `cp` result, on one line.
pub(super) fn copy_text(r: &CopyResult, source: Option<&str>, style: Style) -> String {
    let head = format!("{} ({})", r.host, r.address);
    match (&r.error, &r.dest) {
        (None, Some(dest)) => format!(
            "{} {head}: {}{dest}: {} file{}, {} {}\n",
            style.green("✓"),
            source.map(|s| format!("{s} → ")).unwrap_or_default(),
            r.files,
            plural(r.files),
            size(r.bytes),
            style.dim(&format!("[{}]", ms(r.duration_ms)))
        ),
        (error, _) => format!(
            "{} {head}: {}{}\n",
            style.red("✗"),
            if r.unreachable { "unreachable: " } else { "" },
            error.as_deref().unwrap_or("failed")
        ),
    }
}

/// The closing line: every host succeeded, or which did not.
pub(super) fn summary_text(
    verb: &str,
    failures: &[(String, String)],
    hosts: usize,
    style: Style,
) -> String {
    if failures.is_empty() {
        return format!(
            "\n{} {verb} {hosts} host{}\n",
            style.green("✓"),
            plural(hosts)
        );
    }
    let list: Vec<String> = failures
        .iter()
        .map(|(host, why)| format!("{host} ({why})"))
        .collect();
    format!(
        "\n{} {} of {hosts} host{} failed: {}\n",
        style.red("✗"),
        failures.len(),
        plural(hosts),
        list.join(", ")
    )
}

/// What a failed `exec` host is listed with in the summary.
pub(super) fn exec_failure(r: &ExecResult) -> Option<(String, String)> {
    (!r.succeeded()).then(|| (r.host.clone(), exec_outcome(r)))
}

/// What a failed `cp` host is listed with in the summary.
pub(super) fn copy_failure(r: &CopyResult) -> Option<(String, String)> {
    (!r.succeeded()).then(|| {
        (
            r.host.clone(),
            if r.unreachable {
                "unreachable"
            } else {
                "failed"
            }
            .to_string(),
        )
    })
}

/// Shows an `exec` or `cp` run host by host, and closes it with a summary.
pub struct AdhocReport {
    style: Style,
    json: bool,
    /// What the summary says was done: `ran on`, `copied to`, `fetched from`.
    verb: &'static str,
    /// `cp --from`: the path fetched, shown beside where it landed.
    source: Option<String>,
    hosts: usize,
    failures: Vec<(String, String)>,
}

impl AdhocReport {
    pub(super) fn new(
        style: Style,
        json: bool,
        verb: &'static str,
        source: Option<String>,
    ) -> AdhocReport {
        AdhocReport {
            style,
            json,
            verb,
            source,
            hosts: 0,
            failures: Vec::new(),
        }
    }

    /// One host's `exec` result, whole.
    pub fn exec(&mut self, result: &ExecResult) {
        self.hosts += 1;
        self.failures.extend(exec_failure(result));
        write_whole(&if self.json {
            exec_json(result)
        } else {
            exec_text(result, self.style)
        });
    }

    /// One host's `cp` result.
    pub fn copy(&mut self, result: &CopyResult) {
        self.hosts += 1;
        self.failures.extend(copy_failure(result));
        let source = self.source.as_deref();
        write_whole(&if self.json {
            copy_json(result, source)
        } else {
            copy_text(result, source, self.style)
        });
    }

    /// The closing line (not with `--json`, whose lines are the results only).
    pub fn finish(self) {
        if !self.json {
            write_whole(&summary_text(
                self.verb,
                &self.failures,
                self.hosts,
                self.style,
            ));
        }
    }
}

/// Writes `text` in one go and flushes it, so it is never cut by another host's.
fn write_whole(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: Option<i32>, stdout: &str, stderr: &str, error: Option<&str>) -> ExecResult {
        ExecResult {
            host: "web0".into(),
            address: "10.0.0.2".into(),
            exit_code: code,
            stdout: stdout.into(),
            stderr: stderr.into(),
            duration_ms: 12,
            error: error.map(String::from),
            unreachable: false,
        }
    }

    #[test]
    fn a_host_is_one_block_headed_by_its_name_and_exit_code() {
        let text = exec_text(&result(Some(3), "out\n", "err", None), Style::plain());
        assert_eq!(text, "── web0 (10.0.0.2) exit 3 [12ms]\nout\nerr\n");
        let text = exec_text(
            &result(None, "", "", Some("timed out after 1s")),
            Style::plain(),
        );
        assert_eq!(text, "── web0 (10.0.0.2) timed out after 1s [12ms]\n");
    }

    #[test]
    fn json_has_every_field_and_null_for_what_is_not_there() {
        let line = exec_json(&result(Some(0), "hi\n", "", None));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["host"], "web0");
        assert_eq!(value["exit_code"], 0);
        assert_eq!(value["stdout"], "hi\n");
        assert!(value["error"].is_null());
        assert_eq!(value["duration_ms"], 12);
    }

    #[test]
    fn sizes_read_like_sizes() {
        assert_eq!(size(12), "12 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }
}
