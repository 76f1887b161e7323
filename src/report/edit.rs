//! What `cairn add` and `cairn delete` say about the Clusterfile they
//! edited: the hosts that came and went, then the lines of the file that
//! changed as a unified diff, so the operator sees exactly what was
//! written before anything is applied.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use super::Style;
use super::lines::plural;
use super::stamp::stamped;
use crate::clusterfile::edit::EntryChange;

/// Lines of context around each change of the file.
const DIFF_CONTEXT: usize = 2;

/// One host that came or went, as validation names it.
#[derive(Debug, Clone, Serialize)]
pub struct EditedHost {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub roles: Vec<String>,
}

/// An edit of the Clusterfile's hosts, written.
#[derive(Debug, Clone, Serialize)]
pub struct HostsEdited {
    /// The Clusterfile's path.
    pub file: String,
    pub added: Vec<EditedHost>,
    pub removed: Vec<EditedHost>,
    /// What happened to each `[[hosts]]` entry touched.
    pub entries: Vec<EntryChange>,
    #[serde(skip)]
    pub before: Arc<String>,
    #[serde(skip)]
    pub after: Arc<String>,
}

/// `--json`: one event line, before the apply's own.
pub(super) fn hosts_edited_json(edit: &HostsEdited) -> String {
    #[derive(Serialize)]
    struct Event<'a> {
        event: &'static str,
        #[serde(flatten)]
        edit: &'a HostsEdited,
    }
    let event = Event {
        event: "clusterfile_edited",
        edit,
    };
    format!(
        "{}\n",
        serde_json::to_string(&stamped(&event)).expect("serializes")
    )
}

/// The hosts, then the diff.
pub(super) fn hosts_edited_text(edit: &HostsEdited, style: Style) -> String {
    let mut text = String::new();
    let mut counts = Vec::new();
    if !edit.added.is_empty() {
        counts.push(format!(
            "{} host{} added",
            edit.added.len(),
            plural(edit.added.len())
        ));
    }
    if !edit.removed.is_empty() {
        counts.push(format!(
            "{} host{} removed",
            edit.removed.len(),
            plural(edit.removed.len())
        ));
    }
    let _ = writeln!(
        text,
        "{} {}: {}.",
        style.bold("Edited"),
        edit.file,
        counts.join(", ")
    );
    for (sign, hosts, paint) in [
        ("+", &edit.added, Style::green as fn(&Style, &str) -> String),
        ("-", &edit.removed, Style::red),
    ] {
        for host in hosts {
            let _ = writeln!(
                text,
                "  {} {}  {}:{}{}",
                paint(&style, sign),
                host.name,
                host.address,
                host.port,
                if host.roles.is_empty() {
                    String::new()
                } else {
                    format!("  roles: {}", host.roles.join(", "))
                }
            );
        }
    }
    for change in &edit.entries {
        if let EntryChange::Split { from, into } = change {
            let _ = writeln!(
                text,
                "  {} range {from} is now {}",
                style.yellow("~"),
                into.join(", ")
            );
        }
    }
    text.push('\n');
    text.push_str(&diff(&edit.before, &edit.after, &edit.file, style));
    text
}

/// A unified diff of the file, coloured like `git diff`.
fn diff(before: &str, after: &str, file: &str, style: Style) -> String {
    let diff = similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(DIFF_CONTEXT)
        .header(file, file)
        .to_string();
    let mut text = String::new();
    for line in diff.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let painted = if body.starts_with("+++") || body.starts_with("---") {
            style.bold(body)
        } else if body.starts_with("@@") {
            style.magenta(body)
        } else if body.starts_with('+') {
            style.green(body)
        } else if body.starts_with('-') {
            style.red(body)
        } else {
            body.to_string()
        };
        text.push_str(&painted);
        text.push_str(end);
    }
    text
}

/// After `--no-apply`, or when there is nothing more to do here.
pub(super) fn not_applied_text(apply: &str) -> String {
    format!("\nClusterfile updated; not applied; run `{apply}` to apply it.\n")
}

/// After a failed apply: the edit is not rolled back.
pub(super) fn edit_kept_text(apply: &str) -> String {
    format!(
        "note: the Clusterfile keeps the edit (it is the desired state): fix what failed and run `{apply}` to continue\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit() -> HostsEdited {
        HostsEdited {
            file: "Clusterfile".into(),
            added: Vec::new(),
            removed: vec![EditedHost {
                name: "w1".into(),
                address: "10.0.0.3".into(),
                port: 22,
                roles: vec!["worker".into()],
            }],
            entries: vec![EntryChange::Split {
                from: "10.0.0.2-4".into(),
                into: vec!["10.0.0.2".into(), "10.0.0.4".into()],
            }],
            before: Arc::new("[[hosts]]\naddress = \"10.0.0.2-4\"\nroles = [\"worker\"]\n".into()),
            after: Arc::new(
                "[[hosts]]\naddress = \"10.0.0.2\"\nroles = [\"worker\"]\n\n[[hosts]]\naddress = \"10.0.0.4\"\nroles = [\"worker\"]\n"
                    .into(),
            ),
        }
    }

    #[test]
    fn text_names_the_hosts_then_shows_the_lines() {
        assert_eq!(
            hosts_edited_text(&edit(), Style::plain()),
            "\
Edited Clusterfile: 1 host removed.
  - w1  10.0.0.3:22  roles: worker
  ~ range 10.0.0.2-4 is now 10.0.0.2, 10.0.0.4

--- Clusterfile
+++ Clusterfile
@@ -1,3 +1,7 @@
 [[hosts]]
-address = \"10.0.0.2-4\"
+address = \"10.0.0.2\"
+roles = [\"worker\"]
+
+[[hosts]]
+address = \"10.0.0.4\"
 roles = [\"worker\"]
"
        );
    }

    #[test]
    fn json_is_one_event_line() {
        let line = hosts_edited_json(&edit());
        assert_eq!(line.lines().count(), 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["event"], "clusterfile_edited");
        assert_eq!(value["removed"][0]["name"], "w1");
        assert_eq!(value["entries"][0]["change"], "split");
        assert_eq!(value["entries"][0]["into"][1], "10.0.0.4");
        assert!(value.get("before").is_none());
    }
}
