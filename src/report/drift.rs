//! The drift report as people read it (`cairn drift`): which hosts no
//! longer match, each out-of-sync task with why, and the hosts that could
//! not be checked.

use std::fmt::Write as _;

use super::Style;
use super::lines::plural;
use crate::plan::DriftReport;

/// The report as text, one line per out-of-sync task.
pub(super) fn drift_text(report: &DriftReport, style: Style) -> String {
    let mut out = String::new();
    let checked = report.hosts.len();
    let out_of_sync = report.out_of_sync();
    if out_of_sync == 0 {
        let _ = writeln!(
            out,
            "{} All {checked} checked host{} match the Clusterfile.",
            style.green("✓"),
            plural(checked)
        );
    } else {
        let _ = writeln!(
            out,
            "{} {out_of_sync} of {checked} checked host{} no longer match the Clusterfile:",
            style.yellow("!"),
            plural(checked)
        );
    }
    for host in report.hosts.iter().filter(|h| !h.in_sync) {
        let _ = write!(out, "\n  {}\n", style.bold(&host.host));
        for (label, tasks) in [("drifted", &host.drifted), ("pending", &host.pending)] {
            for task in tasks {
                let _ = writeln!(
                    out,
                    "    {label:<8} {}: {}",
                    task.task,
                    task.reasons.join("; ")
                );
            }
        }
    }
    if !report.unchecked.is_empty() {
        let _ = write!(
            out,
            "\n{} {} host{} could not be checked:\n",
            style.red("✗"),
            report.unchecked.len(),
            plural(report.unchecked.len())
        );
        for host in &report.unchecked {
            let _ = writeln!(out, "  {}", host.error);
        }
    }
    if out_of_sync > 0 {
        out.push_str("\nRun `cairn plan` to see the changes, `cairn apply` to repair them.\n");
    }
    out
}
