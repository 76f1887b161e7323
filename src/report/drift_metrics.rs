//! The drift report as Prometheus metrics (`cairn drift --prometheus FILE`),
//! in the text exposition format that `node_exporter`'s textfile collector
//! reads.
//!
//! Every metric is a gauge (a reading taken by this run, not a count that
//! only grows, so no name ends in `_total`), named `cairn_drift_...` with its
//! unit in the name (`_seconds`, `_tasks`, `_files`), and has a `# HELP` and
//! a `# TYPE` line before its samples. Per-host series carry `cluster`,
//! `host` and `address` labels; the overall ones `cluster`. A host that
//! could not be checked has only `reachable` (0) and the time it was last
//! checked, carried over from the file this run replaces, so an alert can
//! say how long it has been out of sight.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::plan::DriftReport;
use crate::plan::drift::HostDrift;

/// The per-host series of when a host was last checked.
const LAST_CHECKED: &str = "cairn_drift_host_last_checked_timestamp_seconds";

/// One metric family: its name, help text, and samples (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }
}

/// The per-host readings of a checked host: name, help, value.
type HostReading = (&'static str, &'static str, fn(&HostDrift) -> f64);

const HOST_READINGS: &[HostReading] = &[
    (
        "cairn_drift_host_in_sync",
        "Whether the checked host matches the Clusterfile (1) or not (0).",
        |h| flag(h.in_sync),
    ),
    (
        "cairn_drift_host_drifted_tasks",
        "Tasks whose result was changed on the host since cairn recorded it (files edited, checks failing).",
        |h| count(h.drifted.len()),
    ),
    (
        "cairn_drift_host_pending_tasks",
        "Tasks the Clusterfile asks for that were not applied to the host yet.",
        |h| count(h.pending.len()),
    ),
    (
        "cairn_drift_host_changed_files",
        "Files cairn shipped that are modified, deleted, or have another mode or owner on the host.",
        |h| count(h.files.len()),
    ),
    (
        "cairn_drift_host_failing_checks",
        "Recorded steps whose check command fails on the host.",
        |h| count(h.failing_checks.len()),
    ),
    (
        "cairn_drift_host_receipts_missing",
        "Whether the host holds none of the receipts of the tasks cairn recorded there (1: reimaged or wiped).",
        |h| flag(!h.missing_receipts.is_empty()),
    ),
];

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn count(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The metrics of `report`, checked at `now` (Unix seconds). `previous`:
/// the metrics file this run replaces, if any, for when unreachable hosts
/// were last checked.
pub fn drift_metrics(report: &DriftReport, now: i64, previous: Option<&str>) -> String {
    let cluster = escape(&report.cluster);
    let host_labels = |host: &str, address: &str| {
        format!(
            "cluster=\"{cluster}\",host=\"{}\",address=\"{}\"",
            escape(host),
            escape(address)
        )
    };
    #[expect(
        clippy::cast_precision_loss,
        reason = "Unix seconds fit a double's 53 bits for millions of years"
    )]
    let now = now as f64;
    let carried = previous
        .map(|text| last_checked(text, &report.cluster))
        .unwrap_or_default();

    let mut reachable = Family::new(
        "cairn_drift_host_reachable",
        "Whether cairn could check the host on its last drift run (1) or not (0).",
    );
    let mut readings: Vec<Family> = HOST_READINGS
        .iter()
        .map(|(name, help, _)| Family::new(name, help))
        .collect();
    let mut last = Family::new(
        LAST_CHECKED,
        "Unix time the host was last checked; kept from earlier runs while it is unreachable.",
    );
    for host in &report.hosts {
        let labels = host_labels(&host.host, &host.address);
        reachable.samples.push((labels.clone(), 1.0));
        for (family, (_, _, read)) in readings.iter_mut().zip(HOST_READINGS) {
            family.samples.push((labels.clone(), read(host)));
        }
        last.samples.push((labels, now));
    }
    for host in &report.unchecked {
        let labels = host_labels(&host.host, &host.address);
        reachable.samples.push((labels.clone(), 0.0));
        if let Some(value) = carried.get(&host.host) {
            last.samples.push((labels, *value));
        }
    }

    let overall = format!("cluster=\"{cluster}\"");
    let mut hosts = Family::new(
        "cairn_drift_hosts",
        "Hosts by what the last drift run found: in_sync, out_of_sync, or unreachable.",
    );
    for (state, n) in [
        ("in_sync", report.hosts.len() - report.out_of_sync()),
        ("out_of_sync", report.out_of_sync()),
        ("unreachable", report.unchecked.len()),
    ] {
        hosts
            .samples
            .push((format!("{overall},state=\"{state}\""), count(n)));
    }
    let mut overall_families = [
        (
            Family::new(
                "cairn_drift_drifted_tasks",
                "Tasks changed on their hosts since cairn recorded them, over all checked hosts.",
            ),
            count(report.hosts.iter().map(|h| h.drifted.len()).sum()),
        ),
        (
            Family::new(
                "cairn_drift_in_sync",
                "Whether every host was checked and matches the Clusterfile (1) or not (0).",
            ),
            flag(report.in_sync),
        ),
        (
            Family::new(
                "cairn_drift_last_run_timestamp_seconds",
                "Unix time of the drift run that wrote these metrics.",
            ),
            now,
        ),
    ];
    for (family, value) in &mut overall_families {
        family.samples.push((overall.clone(), *value));
    }

    let mut out = String::new();
    let families = std::iter::once(reachable)
        .chain(readings)
        .chain([last, hosts])
        .chain(overall_families.into_iter().map(|(f, _)| f));
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, value) in f.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", f.name);
        }
    }
    out
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// When each host of `cluster` was last checked, as an earlier run wrote it.
/// Lines that are not ours, or not understood, are skipped: this is only a
/// memory.
fn last_checked(text: &str, cluster: &str) -> BTreeMap<String, f64> {
    let mut found = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line
            .strip_prefix(LAST_CHECKED)
            .and_then(|r| r.strip_prefix('{'))
        else {
            continue;
        };
        let Some((labels, value)) = parse_labels(rest) else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        if labels.get("cluster").map(String::as_str) == Some(cluster)
            && let Some(host) = labels.get("host")
        {
            found.insert(host.clone(), value);
        }
    }
    found
}

/// `name="value",...}` → the labels, and what follows the `}`.
fn parse_labels(mut rest: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(name.to_string(), value);
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_read_back() {
        let odd = "a\"b\\c\nd";
        let line = format!(
            "{LAST_CHECKED}{{cluster=\"prod\",host=\"{}\",address=\"x\"}} 1700000000\n",
            escape(odd)
        );
        let found = last_checked(&line, "prod");
        assert_eq!(found.get(odd), Some(&1_700_000_000.0));
        assert!(last_checked(&line, "other").is_empty());
        assert!(last_checked("garbage{\n# HELP x\n", "prod").is_empty());
    }
}
