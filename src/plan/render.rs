//! The plan as people and programs read it.
//!
//! Text follows Terraform: one line per task that changes, its symbol
//! (`+` create, `~` update, `-/+` replace, `-` destroy), the task, and why;
//! changes a `once` step ignores listed apart; a closing summary line. The
//! JSON form (`--json`) is a stable, versioned document described in
//! docs/clusterfile.md ("Plan JSON"); saved plans (`plan -o FILE`) use it too.

use serde::{Deserialize, Serialize};

use super::{ChangeKind, Plan, Summary};
use crate::ids::{TaskId, TaskKey};
use crate::report::Style;

/// Version of the plan JSON document.
pub const PLAN_JSON_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanJson {
    pub format_version: u32,
    pub cluster: String,
    pub offline: bool,
    pub changes: Vec<ChangeJson>,
    pub unreachable: Vec<UnreachableJson>,
    pub summary: Summary,
    /// Facts each refreshed host reported (hostname, OS, arch, zstd).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub hosts: std::collections::BTreeMap<String, crate::transport::Facts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeJson {
    pub task: TaskId,
    pub host: String,
    pub action: ChangeKind,
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// The task's key after the apply (absent for destroys).
    pub key: Option<TaskKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachableJson {
    pub host: String,
    pub error: String,
}

impl Plan {
    pub fn to_json(&self) -> PlanJson {
        PlanJson {
            format_version: PLAN_JSON_VERSION,
            cluster: self.cluster.clone(),
            offline: self.offline,
            changes: self
                .changes
                .iter()
                .map(|c| ChangeJson {
                    task: c.id.clone(),
                    host: c.host.clone(),
                    action: c.kind,
                    reasons: c.reasons.clone(),
                    ignored: c.ignored.clone(),
                    key: c.key.clone(),
                })
                .collect(),
            unreachable: self
                .unreachable
                .iter()
                .map(|(h, e)| UnreachableJson {
                    host: h.clone(),
                    error: e.clone(),
                })
                .collect(),
            summary: self.summary(),
            hosts: self.facts.clone(),
        }
    }

    /// The plan as text, Terraform style.
    pub fn to_text(&self, style: &Style) -> String {
        let mut out = String::new();
        let shown: Vec<_> = self
            .changes
            .iter()
            .filter(|c| c.kind != ChangeKind::Noop)
            .collect();
        let width = shown
            .iter()
            .map(|c| c.id.as_str().len())
            .max()
            .unwrap_or(0)
            .min(48);
        if !shown.is_empty() {
            out.push_str("cairn will perform these actions:\n\n");
        }
        for c in &shown {
            let symbol = format!("{:>3}", c.kind.symbol());
            let colored = match c.kind {
                ChangeKind::Create => style.green(&symbol),
                ChangeKind::Update => style.yellow(&symbol),
                ChangeKind::Replace => style.magenta(&symbol),
                ChangeKind::Destroy => style.red(&symbol),
                ChangeKind::Noop => symbol,
            };
            let mut reasons = c.reasons.iter();
            let first = reasons.next().map(String::as_str).unwrap_or("");
            out.push_str(&format!(
                "  {colored} {:<width$}  {}\n",
                c.id,
                style.dim(first)
            ));
            for more in reasons {
                out.push_str(&format!("      {:<width$}  {}\n", "", style.dim(more)));
            }
        }
        let adopted: Vec<_> = self.changes.iter().filter(|c| c.adopt).collect();
        if !adopted.is_empty() {
            let gap = if out.is_empty() { "" } else { "\n" };
            out.push_str(&format!(
                "{gap}Already converged, recorded without running:\n\n"
            ));
            let width = adopted
                .iter()
                .map(|c| c.id.as_str().len())
                .max()
                .unwrap_or(0);
            for c in adopted {
                let why = c.reasons.first().map(String::as_str).unwrap_or_default();
                out.push_str(&format!("    = {:<width$}  {}\n", c.id, style.dim(why)));
            }
        }
        let ignored: Vec<_> = self
            .changes
            .iter()
            .filter(|c| !c.ignored.is_empty())
            .collect();
        if !ignored.is_empty() {
            out.push_str(
                "\nChanges ignored because the step has `once = true` (force with --replace):\n\n",
            );
            for c in ignored {
                out.push_str(&format!(
                    "      {}  {}\n",
                    c.id,
                    style.dim(&c.ignored.join("; "))
                ));
            }
        }
        if !self.unreachable.is_empty() {
            out.push_str("\nHosts not refreshed (their tasks are left out of this plan):\n\n");
            for (host, error) in &self.unreachable {
                out.push_str(&format!("  {} {host}: {error}\n", style.red("!")));
            }
        }
        if !self.excluded_hosts.is_empty() {
            let hosts: Vec<&str> = self.excluded_hosts.iter().map(String::as_str).collect();
            out.push_str(&format!("\nLeft out by --limit: {}\n", hosts.join(", ")));
        }
        let s = self.summary();
        if shown.is_empty() {
            out.push_str(&format!(
                "{}No changes. The {}hosts match the Clusterfile ({} task{} unchanged).\n",
                if out.is_empty() { "" } else { "\n" },
                if self.unreachable.is_empty() {
                    ""
                } else {
                    "reachable "
                },
                s.unchanged,
                if s.unchanged == 1 { "" } else { "s" }
            ));
        } else {
            out.push_str(&format!(
                "\n{} {} to add, {} to change, {} to destroy, {} unchanged.\n",
                style.bold("Plan:"),
                s.add,
                s.change,
                s.destroy,
                s.unchanged
            ));
        }
        if self.offline {
            out.push_str("(offline: the hosts were not refreshed; changes made on them by hand are not shown)\n");
        }
        out
    }
}
