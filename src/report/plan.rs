//! The plan as people read it, Terraform style: one line per task that
//! changes, its symbol (`+` create, `~` update, `-/+` replace, `-`
//! destroy), the task, and why; adopted tasks and changes a `once` step
//! ignores listed apart; a closing summary line.
//!
//! A fleet stays readable: the same change (action, element and reasons,
//! the host's own name aside) on [`GROUP_AT_LEAST`] hosts or more is one
//! line with the host count and a compact host list (`plan_groups`);
//! `expand` gives one line per task.

use std::fmt::Write as _;

use super::Style;
use super::lines::plural;
use super::plan_groups::{GROUP_AT_LEAST, Shown, group_changes};
use crate::plan::{ChangeKind, Plan};

/// The symbol of an action in the plan's text.
fn symbol(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Create => "+",
        ChangeKind::Update => "~",
        ChangeKind::Replace => "-/+",
        ChangeKind::Destroy => "-",
        ChangeKind::Noop => " ",
    }
}

/// The plan as text, Terraform style; `expand`: one line per task, even
/// where many hosts share a change.
pub fn plan_text(plan: &Plan, style: Style, expand: bool) -> String {
    let mut out = String::new();
    let shown: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Noop)
        .collect();
    let lines = group_changes(&shown, if expand { usize::MAX } else { GROUP_AT_LEAST });
    let width = lines
        .iter()
        .map(|line| line.label().len())
        .max()
        .unwrap_or(0)
        .min(48);
    if !shown.is_empty() {
        out.push_str("cairn will perform these actions:\n\n");
    }
    for line in &lines {
        write_change(&mut out, line, width, style);
    }
    let adopted: Vec<_> = plan.changes.iter().filter(|c| c.adopt).collect();
    if !adopted.is_empty() {
        let gap = if out.is_empty() { "" } else { "\n" };
        let _ = write!(out, "{gap}Already converged, recorded without running:\n\n");
        let width = adopted
            .iter()
            .map(|c| c.id.as_str().len())
            .max()
            .unwrap_or(0);
        for c in adopted {
            let why = c.reasons.first().map(String::as_str).unwrap_or_default();
            let _ = writeln!(out, "    = {:<width$}  {}", c.id, style.dim(why));
        }
    }
    let ignored: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| !c.ignored.is_empty())
        .collect();
    if !ignored.is_empty() {
        out.push_str(
            "\nChanges ignored because the step has `once = true` (force with --replace):\n\n",
        );
        for c in ignored {
            let _ = writeln!(out, "      {}  {}", c.id, style.dim(&c.ignored.join("; ")));
        }
    }
    if !plan.aliases.is_empty() {
        out.push_str("\nReached through the ssh config:\n\n");
        for (host, alias) in &plan.aliases {
            let _ = writeln!(out, "  {host}: {alias}");
        }
    }
    if !plan.unreachable.is_empty() {
        out.push_str("\nHosts not refreshed (their tasks are left out of this plan):\n\n");
        for (host, error) in &plan.unreachable {
            let _ = writeln!(out, "  {} {host}: {error}", style.red("!"));
        }
    }
    if !plan.excluded_hosts.is_empty() {
        let hosts: Vec<String> = plan.excluded_hosts.iter().cloned().collect();
        let _ = write!(
            out,
            "\nLeft out by --limit: {}\n",
            super::plan_groups::compact_host_list(&hosts)
        );
    }
    let s = plan.summary();
    if shown.is_empty() {
        let _ = writeln!(
            out,
            "{}No changes. The {}hosts match the Clusterfile ({} task{} unchanged).",
            if out.is_empty() { "" } else { "\n" },
            if plan.unreachable.is_empty() {
                ""
            } else {
                "reachable "
            },
            s.unchanged,
            plural(s.unchanged)
        );
    } else {
        let _ = write!(
            out,
            "\n{} {} to add, {} to change, {} to destroy, {} unchanged.\n",
            style.bold("Plan:"),
            s.add,
            s.change,
            s.destroy,
            s.unchanged
        );
    }
    if plan.offline {
        out.push_str(
            "(offline: the hosts were not refreshed; changes made on them by hand are not shown)\n",
        );
    }
    out
}

/// One entry of the list of changes: a task, or a change shared by many
/// hosts; its symbol, what changes, and why, one reason a line.
fn write_change(out: &mut String, line: &Shown<'_>, width: usize, style: Style) {
    let (kind, label, reasons, hosts) = match line {
        Shown::Task(c) => (c.kind, c.id.as_str(), &c.reasons, None),
        Shown::Group(g) => (g.kind, g.element.as_str(), &g.reasons, Some(g.hosts_text())),
    };
    let symbol = format!("{:>3}", symbol(kind));
    let colored = match kind {
        ChangeKind::Create => style.green(&symbol),
        ChangeKind::Update => style.yellow(&symbol),
        ChangeKind::Replace => style.magenta(&symbol),
        ChangeKind::Destroy => style.red(&symbol),
        ChangeKind::Noop => symbol,
    };
    let mut reasons = reasons.iter();
    let first = reasons.next().map_or("", String::as_str);
    let first = match &hosts {
        Some(hosts) => format!("{hosts}: {}", style.dim(first)),
        None => style.dim(first),
    };
    let _ = writeln!(out, "  {colored} {label:<width$}  {first}");
    for more in reasons {
        let _ = writeln!(out, "      {:<width$}  {}", "", style.dim(more));
    }
}
