//! A fleet's plan, grouped: the same change on many hosts is shown once.
//!
//! Two changes are the same when they have the same action, the same
//! element (`step.install`, the task id without its host) and the same
//! reasons once each host's own name is taken out of them
//! (`upstream task changed (bundle.web@worker3)` on worker3 reads
//! `upstream task changed (bundle.web)`). Such a change on
//! [`GROUP_AT_LEAST`] hosts or more becomes one [`Group`], shown where its
//! first task was, with its host count and a compact host list
//! (`worker0..worker46`, or the first names and "+N more"); the rest stay
//! one line per task, so a host that differs still shows on its own.

use std::collections::HashMap;

use crate::plan::{Change, ChangeKind};

/// Hosts sharing a change before it is shown once for all of them.
pub(super) const GROUP_AT_LEAST: usize = 3;

/// Parts of a compact host list (a name, or a run like `web1..web9`)
/// shown before "+N more".
const LIST_PARTS: usize = 3;

/// One entry of the plan's list of changes.
pub(super) enum Shown<'a> {
    Task(&'a Change),
    Group(Group),
}

impl Shown<'_> {
    /// What names the entry: the task id, or the element of a group.
    pub(super) fn label(&self) -> &str {
        match self {
            Shown::Task(c) => c.id.as_str(),
            Shown::Group(g) => &g.element,
        }
    }
}

/// One change made on several hosts.
pub(super) struct Group {
    pub kind: ChangeKind,
    pub element: String,
    /// The reasons, with no host's name in them.
    pub reasons: Vec<String>,
    /// In plan order.
    pub hosts: Vec<String>,
}

impl Group {
    /// `48 hosts (worker0..worker46, worker48)`.
    pub(super) fn hosts_text(&self) -> String {
        format!(
            "{} hosts ({})",
            self.hosts.len(),
            compact_host_list(&self.hosts)
        )
    }
}

/// `shown`'s changes, those shared by `at_least` hosts or more grouped.
pub(super) fn group_changes<'a>(shown: &[&'a Change], at_least: usize) -> Vec<Shown<'a>> {
    type Same = (&'static str, String, Vec<String>);
    let same = |c: &Change| -> Same {
        (
            action_name(c.kind),
            c.id.element_part().to_string(),
            c.reasons.iter().map(|r| without_host(r, &c.host)).collect(),
        )
    };
    let mut members: HashMap<Same, Vec<usize>> = HashMap::new();
    for (i, c) in shown.iter().enumerate() {
        members.entry(same(c)).or_default().push(i);
    }
    let mut entries = Vec::new();
    for (i, c) in shown.iter().enumerate() {
        let key = same(c);
        let group = &members[&key];
        if group.len() < at_least {
            entries.push(Shown::Task(c));
        } else if group[0] == i {
            let (_, element, reasons) = key;
            entries.push(Shown::Group(Group {
                kind: c.kind,
                element,
                reasons,
                hosts: group.iter().map(|&m| shown[m].host.clone()).collect(),
            }));
        }
    }
    entries
}

fn action_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Create => "create",
        ChangeKind::Update => "update",
        ChangeKind::Replace => "replace",
        ChangeKind::Destroy => "destroy",
        ChangeKind::Noop => "noop",
    }
}

/// `reason` with `@HOST` (a task of this host) cut to the element alone.
fn without_host(reason: &str, host: &str) -> String {
    let needle = format!("@{host}");
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        // `@web1` is not in `@web10` nor in `@web1:2222`.
        let whole = !after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        out.push_str(&rest[..at]);
        if !whole {
            out.push_str(&needle);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// A name split into its prefix and numeric suffix: `worker12` → (`worker`,
/// 12), and the suffix's width when it is zero-padded (`w07` → 2), so that
/// `w00..w39` is one run and `web01` never joins `web2`.
fn numbered(name: &str) -> (&str, Option<Numbered>) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, suffix) = name.split_at(name.len() - digits);
    let Ok(n) = suffix.parse() else {
        return (name, None);
    };
    let padded = suffix.len() > 1 && suffix.starts_with('0');
    (
        prefix,
        Some(Numbered {
            n,
            width: suffix.len(),
            padded,
        }),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Numbered {
    n: u64,
    width: usize,
    padded: bool,
}

impl Numbered {
    /// Whether `self` comes right after `before` in one naming scheme:
    /// padded names keep their width, plain ones grow it (`w9`, `w10`).
    fn follows(self, before: Numbered) -> bool {
        self.n == before.n + 1 && (self.width == before.width || (!self.padded && !before.padded))
    }
}

/// Hosts in a few words: runs of numbered names as `web0..web46` (three
/// or more in a row), other names as they are, sorted; past
/// [`LIST_PARTS`] parts, "+N more".
pub(super) fn compact_host_list(hosts: &[String]) -> String {
    let mut sorted: Vec<(&str, Option<Numbered>, &str)> = hosts
        .iter()
        .map(|h| {
            let (prefix, n) = numbered(h);
            (prefix, n, h.as_str())
        })
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    // Each part: the names it covers, first to last.
    let mut parts: Vec<Vec<&str>> = Vec::new();
    let mut previous: Option<(&str, Numbered)> = None;
    for (prefix, n, name) in sorted {
        let follows =
            matches!((previous, n), (Some((p, m)), Some(n)) if p == prefix && n.follows(m));
        match parts.last_mut() {
            Some(run) if follows => run.push(name),
            _ => parts.push(vec![name]),
        }
        previous = n.map(|n| (prefix, n));
    }
    // A run of two reads better as two names.
    let parts: Vec<String> = parts
        .into_iter()
        .flat_map(|run| match run.as_slice() {
            [first, .., last] if run.len() >= 3 => vec![format!("{first}..{last}")],
            _ => run.iter().map(|n| (*n).to_string()).collect(),
        })
        .collect();
    if parts.len() <= LIST_PARTS {
        return parts.join(", ");
    }
    let listed = &parts[..LIST_PARTS];
    let covered: usize = listed.iter().map(|p| covered_by(p)).sum();
    format!(
        "{}, +{} more",
        listed.join(", "),
        hosts.len().saturating_sub(covered)
    )
}

/// How many names a part of the list stands for.
fn covered_by(part: &str) -> usize {
    let Some((first, last)) = part.split_once("..") else {
        return 1;
    };
    match (numbered(first).1, numbered(last).1) {
        (Some(a), Some(b)) => usize::try_from(b.n - a.n + 1).unwrap_or(usize::MAX),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::{compact_host_list, without_host};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn numbered_names_in_a_row_read_as_a_range() {
        let hosts: Vec<String> = (0..47).map(|i| format!("worker{i}")).collect();
        assert_eq!(compact_host_list(&hosts), "worker0..worker46");
        let mut gap: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
        gap.retain(|h| h != "w4");
        assert_eq!(compact_host_list(&gap), "w0..w3, w5..w9");
        assert_eq!(compact_host_list(&names(&["w1", "w2", "db"])), "db, w1, w2");
    }

    #[test]
    fn many_parts_end_in_how_many_more() {
        let hosts = names(&["a", "b", "c", "d", "e"]);
        assert_eq!(compact_host_list(&hosts), "a, b, c, +2 more");
        let mut hosts: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
        hosts.extend(names(&["x", "y", "z", "q"]));
        assert_eq!(compact_host_list(&hosts), "q, w0..w9, x, +2 more");
    }

    #[test]
    fn zero_padded_names_make_runs_of_their_own_width() {
        let hosts = names(&["web01", "web02", "web03"]);
        assert_eq!(compact_host_list(&hosts), "web01..web03");
        let hosts: Vec<String> = (0..40).map(|i| format!("w{i:02}")).collect();
        assert_eq!(compact_host_list(&hosts), "w00..w39");
        let mut gap: Vec<String> = (0..10).map(|i| format!("w{i:02}")).collect();
        gap.retain(|h| h != "w05");
        assert_eq!(compact_host_list(&gap), "w00..w04, w06..w09");
        assert_eq!(
            compact_host_list(&names(&["web01", "web2", "web3"])),
            "web01, web2, web3"
        );
    }

    #[test]
    fn only_the_hosts_own_name_is_taken_out_of_a_reason() {
        assert_eq!(
            without_host("upstream task changed (bundle.web@w1)", "w1"),
            "upstream task changed (bundle.web)"
        );
        assert_eq!(
            without_host("upstream task changed (step.a@w10, step.b@w1)", "w1"),
            "upstream task changed (step.a@w10, step.b)"
        );
    }
}
