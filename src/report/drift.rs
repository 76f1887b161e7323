//! The drift report as people read it (`cairn drift`): which hosts no
//! longer match, by name and address; each out-of-sync task with why; under
//! a drifted task, each shipped file that changed and how (with `--diff`,
//! the diff against what cairn shipped); a host that holds none of its
//! receipts; and the hosts that could not be checked.

use std::fmt::Write as _;

use super::Style;
use super::file_diff::paint;
use crate::plan::DriftReport;
use crate::plan::drift::{
    ContentDiff, DIFF_LIMIT_BYTES, DiffStatus, FileChange, FileDrift, HostDrift,
};
use crate::words::{agrees, count, plural};

/// The report as text, one line per out-of-sync task.
pub(super) fn drift_text(report: &DriftReport, style: Style) -> String {
    let mut out = String::new();
    let checked = report.hosts.len();
    let out_of_sync = report.out_of_sync();
    if out_of_sync == 0 {
        let _ = writeln!(
            out,
            "{} {} the Clusterfile.",
            style.green("✓"),
            match checked {
                1 => "The checked host matches".to_string(),
                n => format!("All {n} checked hosts match"),
            }
        );
    } else {
        let _ = writeln!(
            out,
            "{} {} the Clusterfile:",
            style.yellow("!"),
            match checked {
                // "does not", not "no longer": a host never applied has not drifted.
                1 => "The checked host does not match".to_string(),
                n => format!(
                    "{out_of_sync} of {n} checked hosts {} not match",
                    agrees(out_of_sync, "does", "do")
                ),
            }
        );
    }
    for host in report.hosts.iter().filter(|h| !h.in_sync) {
        host_text(&mut out, host, style);
    }
    if !report.unchecked.is_empty() {
        let _ = write!(
            out,
            "\n{} {} could not be checked:\n",
            style.red("✗"),
            count(report.unchecked.len(), "host")
        );
        for host in &report.unchecked {
            // The error usually names the host already: say it once.
            let why = host
                .error
                .strip_prefix(&format!("host {}: ", host.host))
                .unwrap_or(&host.error);
            let _ = writeln!(out, "  {}: {why}", named(&host.host, &host.address));
        }
    }
    let repairable = report
        .hosts
        .iter()
        .any(|h| !h.drifted.is_empty() || !h.pending.is_empty());
    if repairable {
        out.push_str("\nRun `cairn plan` to see the changes, `cairn apply` to repair them.\n");
    }
    out
}

/// `web1 (10.0.0.4)`, or just the address when it is the name.
fn named(host: &str, address: &str) -> String {
    if host == address || address.is_empty() {
        host.to_string()
    } else {
        format!("{host} ({address})")
    }
}

fn host_text(out: &mut String, host: &HostDrift, style: Style) {
    let _ = write!(
        out,
        "\n  {}\n",
        style.bold(&named(&host.host, &host.address))
    );
    for (label, tasks) in [("drifted", &host.drifted), ("pending", &host.pending)] {
        for task in tasks {
            let _ = writeln!(
                out,
                "    {label:<8} {}: {}",
                task.task,
                task.reasons.join("; ")
            );
            for file in host.files.iter().filter(|f| f.task == task.task) {
                file_text(out, file, style);
            }
        }
    }
    if !host.missing_receipts.is_empty() {
        let n = host.missing_receipts.len();
        let _ = writeln!(
            out,
            "    {} the host holds none of the receipts of the {n} task{} cairn recorded here: reimaged or wiped?\n    {}",
            style.yellow("receipts missing:"),
            plural(n),
            style.dim(
                "an apply does its tasks there again; `once` steps only when `--replace` names them"
            )
        );
    }
}

fn file_text(out: &mut String, file: &FileDrift, style: Style) {
    let label = match file.change {
        FileChange::Modified => "modified",
        FileChange::Deleted => "deleted",
        FileChange::Mode => "mode",
        FileChange::Owner => "owner",
        FileChange::NotAFile => "not a file",
    };
    let change = match (&file.was, &file.now) {
        (Some(was), Some(now)) => format!(" ({was} -> {now})"),
        (None, Some(now)) => format!(" (now {now})"),
        _ => String::new(),
    };
    let _ = writeln!(out, "             {label:<10} {}{change}", file.path);
    if let Some(diff) = &file.diff {
        diff_text(out, diff, style);
    }
}

fn diff_text(out: &mut String, diff: &ContentDiff, style: Style) {
    const INDENT: &str = "               ";
    let note = match diff.status {
        DiffStatus::Differs => {
            out.push_str(&paint(diff.unified.as_deref().unwrap_or(""), INDENT, style));
            return;
        }
        DiffStatus::Same => "content as shipped".to_string(),
        DiffStatus::Binary => "binary file differs".to_string(),
        DiffStatus::TooLarge => format!(
            "file differs (over {} KiB: not shown)",
            DIFF_LIMIT_BYTES / 1024
        ),
        DiffStatus::ShippedUnavailable => {
            "what cairn shipped is no longer available (the Clusterfile or bundle changed since): no diff".to_string()
        }
        DiffStatus::Unreadable => "could not be read back from the host: no diff".to_string(),
    };
    let _ = writeln!(out, "{INDENT}{}", style.dim(&note));
}
