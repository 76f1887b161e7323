//! Editing the Clusterfile's hosts in place, for `cairn add` and `cairn
//! delete`: text in, text out, and everything the edit does not touch
//! (comments, blank lines, key order, quoting, the other tables) left
//! byte for byte as the operator wrote it.
//!
//! The text goes through `toml_edit`, which keeps the formatting of every
//! item. Hosts may be `[[hosts]]` tables or an inline array
//! (`hosts = [{ address = "..." }]`); each is edited in its own form. An
//! entry is named by its index among the hosts entries (the caller finds it
//! from a span of the validated model with [`address_spans`]).
//!
//! - Adding writes one new entry per [`NewHost`], after the last entry,
//!   spaced like it.
//! - Removing a host whose entry holds only it removes the entry, with the
//!   comments above it (they were about it). Removing addresses from a
//!   range (`10.0.0.2-5`) narrows it: what is left is written as runs of
//!   consecutive addresses in the range's own form (`10.0.0.2-3`, or
//!   `10.0.0.2-10.0.0.3` when the range spelt its end out), the first run
//!   in the entry itself, which keeps its comments, and each other run as a
//!   copy of the entry (every other key kept: roles, vars, ssh, ...;
//!   comments dropped) right after it.
//!
//! Address syntax is read with `clusterfile::address`, the one parser of it.
//! Nothing here judges meaning: the caller validates the edited text as a
//! whole before writing it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;

use serde::Serialize;
use toml_edit::visit_mut::{self, VisitMut};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, KeyMut, Table, Value};

use super::address::{self, Address};

/// Why the hosts could not be edited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("failed to edit the Clusterfile: it is not valid TOML: {0}")]
    Syntax(String),
    #[error(
        "failed to edit the hosts: `hosts` is neither `[[hosts]]` tables nor an array of inline tables"
    )]
    HostsShape,
    #[error("failed to edit the hosts: there is no hosts entry number {}", entry + 1)]
    NoEntry { entry: usize },
    #[error("failed to edit the hosts: hosts entry number {} does not hold the address {address}", entry + 1)]
    NotInEntry { entry: usize, address: String },
}

/// A host to add, as one new entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHost {
    /// As it is written: `addr`, `user@addr:port`, or a range.
    pub address: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

/// One address to remove: the entry that holds it (its index among the
/// hosts entries) and the address itself, as a range expands to it
/// (`10.0.0.3`: no user, no port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub entry: usize,
    pub address: String,
}

/// What an edit did to one entry, addresses as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum EntryChange {
    /// A new entry.
    Added { address: String },
    /// An entry removed whole.
    Removed { address: String },
    /// A range narrowed to what is left, in one entry or several.
    Split { from: String, into: Vec<String> },
}

/// The edited text and what changed, entry by entry, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub text: String,
    pub changes: Vec<EntryChange>,
}

/// Adds one entry per host, after the last entry (or as the first
/// `[[hosts]]`, at the end of the file, when there is none).
pub fn add_hosts(text: &str, hosts: &[NewHost]) -> Result<Edited, EditError> {
    let mut doc = parse(text)?;
    if doc.get("hosts").is_none() {
        doc.insert("hosts", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let mut entries = Entries::of(&mut doc, text)?.ok_or(EditError::HostsShape)?;
    let mut changes = Vec::new();
    for host in hosts {
        entries.push(host);
        changes.push(EntryChange::Added {
            address: host.address.clone(),
        });
    }
    Ok(Edited {
        text: doc.to_string(),
        changes,
    })
}

/// Removes addresses from their entries: an entry left empty goes, a range
/// is narrowed to what is left (see the module doc).
pub fn remove_hosts(text: &str, removals: &[Removal]) -> Result<Edited, EditError> {
    let mut doc = parse(text)?;
    let mut by_entry: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for removal in removals {
        let gone = by_entry.entry(removal.entry).or_default();
        if !gone.contains(&removal.address.as_str()) {
            gone.push(&removal.address);
        }
    }
    let Some(&first) = by_entry.keys().next() else {
        return Ok(Edited {
            text: text.to_string(),
            changes: Vec::new(),
        });
    };
    let mut entries = Entries::of(&mut doc, text)?.ok_or(EditError::NoEntry { entry: first })?;
    let mut changes = Vec::new();
    // Last entry first, so the copies a split inserts do not move the
    // entries still to edit.
    for (&entry, gone) in by_entry.iter().rev() {
        let written = entries
            .address(entry)
            .ok_or(EditError::NoEntry { entry })?
            .to_string();
        let not_in_entry = |address: &str| EditError::NotInEntry {
            entry,
            address: address.to_string(),
        };
        let held = address::parse(&written).map_err(|_| not_in_entry(gone[0]))?;
        if let Some(missing) = gone.iter().find(|g| !held.iter().any(|h| h.host == **g)) {
            return Err(not_in_entry(missing));
        }
        let left: Vec<Address> = held
            .into_iter()
            .filter(|h| !gone.contains(&h.host.as_str()))
            .collect();
        if left.is_empty() {
            entries.remove(entry);
            changes.push(EntryChange::Removed { address: written });
            continue;
        }
        let pieces = runs(&written, &left);
        entries.set_address(entry, &pieces[0]);
        for (offset, piece) in pieces.iter().enumerate().skip(1) {
            entries.insert_copy(entry + offset, entry, piece);
        }
        changes.push(EntryChange::Split {
            from: written,
            into: pieces,
        });
    }
    changes.reverse();
    Ok(Edited {
        text: doc.to_string(),
        changes,
    })
}

/// Where each hosts entry's `address` value is in `text`, entry by entry
/// (empty for an entry without one): the model's host spans point there,
/// so the entry of a host is the one whose span holds its span's start.
pub fn address_spans(text: &str) -> Vec<Range<usize>> {
    let Ok(doc) = toml_edit::Document::parse(text) else {
        return Vec::new();
    };
    let span = |item: Option<Range<usize>>| item.unwrap_or(0..0);
    match doc.get("hosts") {
        Some(Item::ArrayOfTables(tables)) => tables
            .iter()
            .map(|t| span(t.get("address").and_then(Item::span)))
            .collect(),
        Some(Item::Value(Value::Array(array))) => array
            .iter()
            .map(|v| {
                span(
                    v.as_inline_table()
                        .and_then(|t| t.get("address"))
                        .and_then(Value::span),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The port `[ssh]` gives hosts that do not name theirs, if it names one.
pub fn default_ssh_port(text: &str) -> Option<u16> {
    let doc = parse(text).ok()?;
    let port = doc.get("ssh")?.get("port")?.as_integer()?;
    u16::try_from(port).ok()
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>()
        .map_err(|e| EditError::Syntax(e.message().to_string()))
}

/// The hosts entries, in whichever form the file writes them.
enum Entries<'a> {
    Tables {
        tables: &'a mut ArrayOfTables,
        /// What goes before the header of a new `[[hosts]]`: nothing when
        /// the file packs its tables, else a blank line.
        spacing: &'static str,
    },
    Inline(&'a mut Array),
}

impl<'a> Entries<'a> {
    /// `None` when the file has no `hosts` at all.
    fn of(doc: &'a mut DocumentMut, text: &str) -> Result<Option<Entries<'a>>, EditError> {
        let packed = text.contains("\n[") && !text.contains("\n\n[");
        let spacing = if packed { "" } else { "\n" };
        match doc.get_mut("hosts") {
            None => Ok(None),
            Some(Item::ArrayOfTables(tables)) => Ok(Some(Entries::Tables { tables, spacing })),
            Some(Item::Value(Value::Array(array)))
                if array.iter().all(|v| v.as_inline_table().is_some()) =>
            {
                Ok(Some(Entries::Inline(array)))
            }
            Some(_) => Err(EditError::HostsShape),
        }
    }

    fn address(&self, entry: usize) -> Option<&str> {
        match self {
            Entries::Tables { tables, .. } => tables.get(entry)?.get("address")?.as_str(),
            Entries::Inline(array) => array
                .get(entry)?
                .as_inline_table()?
                .get("address")?
                .as_str(),
        }
    }

    fn address_mut(&mut self, entry: usize) -> Option<&mut Value> {
        match self {
            Entries::Tables { tables, .. } => {
                tables.get_mut(entry)?.get_mut("address")?.as_value_mut()
            }
            Entries::Inline(array) => array
                .get_mut(entry)?
                .as_inline_table_mut()?
                .get_mut("address"),
        }
    }

    fn set_address(&mut self, entry: usize, text: &str) {
        if let Some(value) = self.address_mut(entry) {
            replace_string(value, text);
        }
    }

    fn remove(&mut self, entry: usize) {
        match self {
            Entries::Tables { tables, .. } => {
                tables.remove(entry);
            }
            Entries::Inline(array) => {
                // The gap before an element starts with the rest of the
                // line before it: the comment there is the previous
                // element's (or the `[` line's), so it takes the removed
                // element's place; the removed element's own comment goes.
                let removed = decor_text(array.remove(entry).decor().prefix());
                let after = gap_after(array, entry.checked_sub(1));
                let (head, _) = first_line(&removed);
                let (_, rest) = first_line(&after);
                let gap = if removed.contains('\n') || after.contains('\n') {
                    format!("{head}{rest}")
                } else if entry == 0 {
                    removed
                } else {
                    after
                };
                set_gap_after(array, entry.checked_sub(1), gap);
            }
        }
    }

    /// Inserts at `at` a copy of entry `of`, comments dropped, with this
    /// address. Copies go right after `of`, so `at` is `of + 1` for the
    /// first, `of + 2` for the next, and so on.
    fn insert_copy(&mut self, at: usize, of: usize, address: &str) {
        match self {
            Entries::Tables { tables, spacing } => {
                let Some(original) = tables.get(of) else {
                    return;
                };
                let mut copy = original.clone();
                DropComments::default().visit_table_mut(&mut copy);
                copy.decor_mut().set_prefix(*spacing);
                tables.insert(at, copy);
            }
            Entries::Inline(array) => {
                let Some(original) = array.get(of) else {
                    return;
                };
                let mut copy = original.clone();
                DropComments::default().visit_value_mut(&mut copy);
                *copy.decor_mut() = follower_decor(array, of);
                array.insert_formatted(at, copy);
                // The comment that ended `of`'s line now follows the copy:
                // it goes back to `of`'s line.
                let after_copy = gap_after(array, Some(at));
                let (head, rest) = first_line(&after_copy);
                if head.contains('#') {
                    let head = head.to_string();
                    set_gap_after(array, Some(at), format!("\n{rest}"));
                    let after_of = gap_after(array, Some(of));
                    let (_, rest) = first_line(&after_of);
                    set_gap_after(array, Some(of), format!("{head}{rest}"));
                }
            }
        }
        self.set_address(at, address);
    }

    fn push(&mut self, host: &NewHost) {
        let roles: Array = host.roles.iter().map(String::as_str).collect();
        match self {
            Entries::Tables { tables, spacing } => {
                let mut table = Table::new();
                table.insert("address", toml_edit::value(host.address.as_str()));
                if let Some(name) = &host.name {
                    table.insert("name", toml_edit::value(name.as_str()));
                }
                table.insert("roles", toml_edit::value(roles));
                table.decor_mut().set_prefix(*spacing);
                tables.push(table);
            }
            Entries::Inline(array) => {
                let mut table = InlineTable::new();
                table.insert("address", Value::from(host.address.as_str()));
                if let Some(name) = &host.name {
                    table.insert("name", Value::from(name.as_str()));
                }
                table.insert("roles", Value::Array(roles));
                let mut value = Value::InlineTable(table);
                if array.is_empty() {
                    array.push(value);
                } else {
                    *value.decor_mut() = follower_decor(array, array.len() - 1);
                    array.push_formatted(value);
                }
            }
        }
    }
}

/// The text between element `before` of an inline array (`None`: the
/// `[`) and what follows it: the next element's prefix, or the array's
/// trailing text after the last element.
fn gap_after(array: &Array, before: Option<usize>) -> String {
    let next = before.map_or(0, |b| b + 1);
    match array.get(next) {
        Some(value) => decor_text(value.decor().prefix()),
        None => array.trailing().as_str().unwrap_or("").to_string(),
    }
}

fn set_gap_after(array: &mut Array, before: Option<usize>, gap: String) {
    let next = before.map_or(0, |b| b + 1);
    match array.get_mut(next) {
        Some(value) => value.decor_mut().set_prefix(gap),
        None => array.set_trailing(gap),
    }
}

fn decor_text(raw: Option<&toml_edit::RawString>) -> String {
    raw.and_then(|r| r.as_str()).unwrap_or("").to_string()
}

/// `text` up to and with its first line break, and the rest; no break:
/// nothing, and all of it.
fn first_line(text: &str) -> (&str, &str) {
    match text.find('\n') {
        Some(end) => text.split_at(end + 1),
        None => ("", text),
    }
}

/// The spacing of an element that follows element `of` of an inline
/// array: the lines it starts on, as the elements after the first do, or
/// one space in an array on one line.
fn follower_decor(array: &Array, of: usize) -> toml_edit::Decor {
    let like = if of == 0 && array.len() > 1 { 1 } else { of };
    let prefix = decor_text(array.get(like).and_then(|v| v.decor().prefix()));
    if prefix.contains('\n') {
        let (_, own_lines) = first_line(&prefix);
        toml_edit::Decor::new(format!("\n{}", without_comments(own_lines, false)), "")
    } else {
        toml_edit::Decor::new(" ", "")
    }
}

/// Replaces a string value, keeping its spacing and trailing comment, and
/// its quotes when they were single and still can be.
fn replace_string(value: &mut Value, text: &str) {
    let literal = matches!(value, Value::String(s)
        if s.as_repr().and_then(|r| r.as_raw().as_str()).is_some_and(|r| r.starts_with('\'')));
    let decor = value.decor().clone();
    *value = if literal && !text.contains(['\'', '\n']) {
        format!("'{text}'")
            .parse::<Value>()
            .unwrap_or_else(|_| Value::from(text))
    } else {
        Value::from(text)
    };
    *value.decor_mut() = decor;
}

/// The addresses left of an entry, as the entry would write them: runs of
/// consecutive IPv4 addresses in the range's own form, single addresses
/// alone, each with the entry's user and port.
fn runs(written: &str, left: &[Address]) -> Vec<String> {
    let spelt_out = range_end_spelt_out(written);
    let user = left[0]
        .user
        .as_ref()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let port = left[0].port.map(|p| format!(":{p}")).unwrap_or_default();
    let mut pieces: Vec<(String, String)> = Vec::new();
    let mut run: Option<(Ipv4Addr, Ipv4Addr)> = None;
    let flush = |run: Option<(Ipv4Addr, Ipv4Addr)>, pieces: &mut Vec<(String, String)>| {
        if let Some((first, last)) = run {
            let end = if first == last {
                String::new()
            } else if spelt_out {
                format!("-{last}")
            } else {
                format!("-{}", last.octets()[3])
            };
            pieces.push((first.to_string(), end));
        }
    };
    for address in left {
        let Ok(ip) = address.host.parse::<Ipv4Addr>() else {
            // Not from a range (a range is IPv4): written as it is.
            flush(run.take(), &mut pieces);
            pieces.push((address.host.clone(), String::new()));
            continue;
        };
        run = match run {
            Some((first, last)) if u32::from(last).checked_add(1) == Some(u32::from(ip)) => {
                Some((first, ip))
            }
            other => {
                flush(other, &mut pieces);
                Some((ip, ip))
            }
        };
    }
    flush(run, &mut pieces);
    pieces
        .into_iter()
        .map(|(first, end)| format!("{user}{first}{end}{port}"))
        .collect()
}

/// Whether a range writes its last address whole (`10.0.0.2-10.0.0.5`)
/// rather than its last octet (`10.0.0.2-5`).
fn range_end_spelt_out(written: &str) -> bool {
    let host = written.rsplit_once('@').map_or(written, |(_, rest)| rest);
    host.split_once('-')
        .is_some_and(|(_, end)| end.split(':').next().unwrap_or("").contains('.'))
}

/// Decor text (only blanks and comments) without its comments. With
/// `mid_line`, the text starts in the middle of a line (after a value, a
/// `[` or a `,`): a comment on that first line goes but its line break
/// stays. Every other comment is a line of its own, and goes whole.
fn without_comments(decor: &str, mid_line: bool) -> String {
    let (head, rest) = if mid_line {
        first_line(decor)
    } else {
        ("", decor)
    };
    let head = match head.find('#') {
        Some(_) => "\n",
        None => head,
    };
    let mut text = head.to_string();
    text.extend(
        rest.split_inclusive('\n')
            .filter(|line| !line.trim_start().starts_with('#')),
    );
    text
}

/// Makes a copy of an entry plain: every comment dropped, spacing kept,
/// and its tables' places in the file forgotten so they print where the
/// copy is, not where the original was.
#[derive(Default)]
struct DropComments {
    /// Inside an inline table or array, where a key or value may follow a
    /// `{`, `[` or `,` on the same line.
    nested: usize,
}

impl DropComments {
    fn decor(decor: &mut toml_edit::Decor, prefix_mid_line: bool) {
        let prefix = decor_text(decor.prefix());
        if prefix.contains('#') {
            decor.set_prefix(without_comments(&prefix, prefix_mid_line));
        }
        let suffix = decor_text(decor.suffix());
        if suffix.contains('#') {
            decor.set_suffix(without_comments(&suffix, true));
        }
    }

    fn trailing(text: Option<&str>) -> Option<String> {
        text.filter(|t| t.contains('#'))
            .map(|t| without_comments(t, true))
    }
}

impl VisitMut for DropComments {
    fn visit_table_mut(&mut self, node: &mut Table) {
        node.set_position(None);
        Self::decor(node.decor_mut(), false);
        visit_mut::visit_table_mut(self, node);
    }

    fn visit_table_like_kv_mut(&mut self, mut key: KeyMut<'_>, node: &mut Item) {
        Self::decor(key.leaf_decor_mut(), self.nested > 0);
        Self::decor(key.dotted_decor_mut(), true);
        visit_mut::visit_table_like_kv_mut(self, key, node);
    }

    fn visit_value_mut(&mut self, node: &mut Value) {
        Self::decor(node.decor_mut(), true);
        visit_mut::visit_value_mut(self, node);
    }

    fn visit_array_mut(&mut self, node: &mut Array) {
        if let Some(trailing) = Self::trailing(node.trailing().as_str()) {
            node.set_trailing(trailing);
        }
        self.nested += 1;
        visit_mut::visit_array_mut(self, node);
        self.nested -= 1;
    }

    fn visit_inline_table_mut(&mut self, node: &mut InlineTable) {
        if let Some(trailing) = Self::trailing(node.trailing().as_str()) {
            node.set_trailing(trailing);
        }
        self.nested += 1;
        visit_mut::visit_inline_table_mut(self, node);
        self.nested -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removal(entry: usize, address: &str) -> Removal {
        Removal {
            entry,
            address: address.to_string(),
        }
    }

    fn remove(text: &str, removals: &[(usize, &str)]) -> String {
        let removals: Vec<Removal> = removals.iter().map(|(e, a)| removal(*e, a)).collect();
        let edited = remove_hosts(text, &removals).unwrap();
        // Whatever the edit, the result is TOML.
        edited.text.parse::<toml::Table>().unwrap();
        edited.text
    }

    fn new_host(address: &str, name: Option<&str>, roles: &[&str]) -> NewHost {
        NewHost {
            address: address.to_string(),
            name: name.map(str::to_string),
            roles: roles.iter().map(|r| (*r).to_string()).collect(),
        }
    }

    fn add(text: &str, hosts: &[NewHost]) -> String {
        let edited = add_hosts(text, hosts).unwrap();
        edited.text.parse::<toml::Table>().unwrap();
        edited.text
    }

    const FLEET: &str = r#"# The fleet.
version = 1
name = "prod"

[ssh]
user = "root"   # everyone

# The first master: kubeadm init runs here.
[[hosts]]
address = "10.0.0.1"
name = "master0"
roles = ["master"]

# Workers, one rack.
[[hosts]]
address = "10.0.0.2-5"   # rack 1
roles = ["worker"]
vars = { rack = "r1" }
ssh = { port = 2222 }

[[steps]]
name = "init"   # keep me
on = "master[0]"
run = "true"
"#;

    #[test]
    fn nothing_to_do_leaves_the_text_as_it_was() {
        assert_eq!(remove(FLEET, &[]), FLEET);
        assert_eq!(add(FLEET, &[]), FLEET);
    }

    #[test]
    fn removing_the_only_host_of_an_entry_removes_the_entry_and_its_comments() {
        let edited = remove_hosts(FLEET, &[removal(0, "10.0.0.1")]).unwrap();
        assert_eq!(
            edited.text,
            FLEET.replace(
                "# The first master: kubeadm init runs here.\n[[hosts]]\naddress = \"10.0.0.1\"\nname = \"master0\"\nroles = [\"master\"]\n\n",
                ""
            )
        );
        assert_eq!(
            edited.changes,
            [EntryChange::Removed {
                address: "10.0.0.1".into()
            }]
        );
    }

    #[test]
    fn removing_from_the_middle_of_a_range_splits_it_after_itself() {
        let edited = remove_hosts(FLEET, &[removal(1, "10.0.0.4")]).unwrap();
        assert_eq!(
            edited.text,
            FLEET.replace(
                "address = \"10.0.0.2-5\"   # rack 1\nroles = [\"worker\"]\nvars = { rack = \"r1\" }\nssh = { port = 2222 }\n",
                "address = \"10.0.0.2-3\"   # rack 1\nroles = [\"worker\"]\nvars = { rack = \"r1\" }\nssh = { port = 2222 }\n\
                 \n[[hosts]]\naddress = \"10.0.0.5\"\nroles = [\"worker\"]\nvars = { rack = \"r1\" }\nssh = { port = 2222 }\n"
            )
        );
        assert_eq!(
            edited.changes,
            [EntryChange::Split {
                from: "10.0.0.2-5".into(),
                into: vec!["10.0.0.2-3".into(), "10.0.0.5".into()]
            }]
        );
    }

    #[test]
    fn a_range_that_spells_its_end_out_keeps_doing_so() {
        let text = "[[hosts]]\naddress = \"10.0.0.2-10.0.0.5\"\n";
        assert_eq!(
            remove(text, &[(0, "10.0.0.4")]),
            "[[hosts]]\naddress = \"10.0.0.2-10.0.0.3\"\n\n[[hosts]]\naddress = \"10.0.0.5\"\n"
        );
        // Across an octet boundary.
        let text = "[[hosts]]\naddress = \"10.0.0.254-10.0.1.2\"\n";
        assert_eq!(
            remove(text, &[(0, "10.0.0.255")]),
            "[[hosts]]\naddress = \"10.0.0.254\"\n\n[[hosts]]\naddress = \"10.0.1.0-10.0.1.2\"\n"
        );
    }

    #[test]
    fn removing_an_end_of_a_range_narrows_it_in_place() {
        let text = "[[hosts]]\naddress = \"10.0.0.2-5\"\n";
        assert_eq!(
            remove(text, &[(0, "10.0.0.2")]),
            "[[hosts]]\naddress = \"10.0.0.3-5\"\n"
        );
        assert_eq!(
            remove(text, &[(0, "10.0.0.5")]),
            "[[hosts]]\naddress = \"10.0.0.2-4\"\n"
        );
        assert_eq!(
            remove(text, &[(0, "10.0.0.5"), (0, "10.0.0.4"), (0, "10.0.0.3")]),
            "[[hosts]]\naddress = \"10.0.0.2\"\n"
        );
    }

    #[test]
    fn several_addresses_out_of_one_range_leave_one_entry_per_run() {
        let edited = remove_hosts(
            "[[hosts]]\naddress = \"10.0.0.2-8\"\nroles = [\"w\"]\n",
            &[
                removal(0, "10.0.0.3"),
                removal(0, "10.0.0.6"),
                removal(0, "10.0.0.3"),
            ],
        )
        .unwrap();
        assert_eq!(
            edited.text,
            "[[hosts]]\naddress = \"10.0.0.2\"\nroles = [\"w\"]\n\
             \n[[hosts]]\naddress = \"10.0.0.4-5\"\nroles = [\"w\"]\n\
             \n[[hosts]]\naddress = \"10.0.0.7-8\"\nroles = [\"w\"]\n"
        );
        assert_eq!(
            edited.changes,
            [EntryChange::Split {
                from: "10.0.0.2-8".into(),
                into: vec!["10.0.0.2".into(), "10.0.0.4-5".into(), "10.0.0.7-8".into()]
            }]
        );
    }

    #[test]
    fn the_pieces_of_a_range_keep_its_user_and_port() {
        let text = "[[hosts]]\naddress = \"ops@10.0.0.2-4:2222\"\n";
        assert_eq!(
            remove(text, &[(0, "10.0.0.3")]),
            "[[hosts]]\naddress = \"ops@10.0.0.2:2222\"\n\n[[hosts]]\naddress = \"ops@10.0.0.4:2222\"\n"
        );
    }

    #[test]
    fn removing_every_address_of_a_range_removes_the_entry() {
        let edited = remove_hosts(
            FLEET,
            &[
                removal(1, "10.0.0.2"),
                removal(1, "10.0.0.3"),
                removal(1, "10.0.0.4"),
                removal(1, "10.0.0.5"),
            ],
        )
        .unwrap();
        assert!(!edited.text.contains("10.0.0.2"), "{}", edited.text);
        assert!(!edited.text.contains("rack"), "{}", edited.text);
        assert!(edited.text.contains("# The first master"));
        assert!(edited.text.contains("name = \"init\"   # keep me"));
        assert_eq!(
            edited.changes,
            [EntryChange::Removed {
                address: "10.0.0.2-5".into()
            }]
        );
    }

    #[test]
    fn removals_in_several_entries_at_once() {
        let edited =
            remove_hosts(FLEET, &[removal(1, "10.0.0.3"), removal(0, "10.0.0.1")]).unwrap();
        assert!(!edited.text.contains("master0"), "{}", edited.text);
        let hosts: Vec<String> = edited.text.parse::<toml::Table>().unwrap()["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["address"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(hosts, ["10.0.0.2", "10.0.0.4-5"]);
        assert_eq!(
            edited.changes,
            [
                EntryChange::Removed {
                    address: "10.0.0.1".into()
                },
                EntryChange::Split {
                    from: "10.0.0.2-5".into(),
                    into: vec!["10.0.0.2".into(), "10.0.0.4-5".into()]
                }
            ]
        );
    }

    #[test]
    fn copies_of_an_entry_take_its_subtables_and_leave_its_comments() {
        let text = "\
[[hosts]]
address = \"10.0.0.2-4\"
roles = [\"worker\"]

# this rack's variables
[hosts.vars]
rack = \"r1\"   # the rack

[hosts.ssh]
port = 2222

# next
[[hosts]]
address = \"10.0.0.9\"
";
        assert_eq!(
            remove(text, &[(0, "10.0.0.3")]),
            "\
[[hosts]]
address = \"10.0.0.2\"
roles = [\"worker\"]

# this rack's variables
[hosts.vars]
rack = \"r1\"   # the rack

[hosts.ssh]
port = 2222

[[hosts]]
address = \"10.0.0.4\"
roles = [\"worker\"]

[hosts.vars]
rack = \"r1\"

[hosts.ssh]
port = 2222

# next
[[hosts]]
address = \"10.0.0.9\"
"
        );
    }

    #[test]
    fn comments_inside_an_entry_stay_on_the_first_piece_only() {
        let text = "\
[[hosts]]
# the workers
address = \"10.0.0.2-3\"  # two of them
roles = [
  \"worker\",  # the role
]
";
        assert_eq!(
            remove(text, &[(0, "10.0.0.2")]),
            "\
[[hosts]]
# the workers
address = \"10.0.0.3\"  # two of them
roles = [
  \"worker\",  # the role
]
"
        );
        let split = remove(
            &text.replace("10.0.0.2-3", "10.0.0.2-4"),
            &[(0, "10.0.0.3")],
        );
        assert_eq!(
            split,
            "\
[[hosts]]
# the workers
address = \"10.0.0.2\"  # two of them
roles = [
  \"worker\",  # the role
]

[[hosts]]
address = \"10.0.0.4\"
roles = [
  \"worker\",
]
"
        );
    }

    #[test]
    fn single_quotes_are_kept() {
        let text = "[[hosts]]\naddress = '10.0.0.2-4'\n";
        assert_eq!(
            remove(text, &[(0, "10.0.0.2")]),
            "[[hosts]]\naddress = '10.0.0.3-4'\n"
        );
    }

    const INLINE: &str = r#"version = 1
hosts = [
  # masters
  { address = "10.0.0.1", roles = ["master"] },
  { address = "10.0.0.2-4", roles = ["worker"], ssh = { port = 2222 } },  # rack 1
  { address = "10.0.0.9", roles = ["worker"] },
]
"#;

    #[test]
    fn inline_hosts_are_edited_inline() {
        assert_eq!(
            remove(INLINE, &[(1, "10.0.0.3")]),
            r#"version = 1
hosts = [
  # masters
  { address = "10.0.0.1", roles = ["master"] },
  { address = "10.0.0.2", roles = ["worker"], ssh = { port = 2222 } },  # rack 1
  { address = "10.0.0.4", roles = ["worker"], ssh = { port = 2222 } },
  { address = "10.0.0.9", roles = ["worker"] },
]
"#
        );
        assert_eq!(
            remove(INLINE, &[(0, "10.0.0.1"), (2, "10.0.0.9")]),
            r#"version = 1
hosts = [
  { address = "10.0.0.2-4", roles = ["worker"], ssh = { port = 2222 } },  # rack 1
]
"#
        );
        assert_eq!(
            add(INLINE, &[new_host("10.0.0.10", Some("w10"), &["worker"])]),
            INLINE.replace(
                "  { address = \"10.0.0.9\", roles = [\"worker\"] },\n",
                "  { address = \"10.0.0.9\", roles = [\"worker\"] },\n  { address = \"10.0.0.10\", name = \"w10\", roles = [\"worker\"] },\n"
            )
        );
    }

    #[test]
    fn the_comment_on_the_bracket_line_stays_there() {
        let text = "hosts = [  # all of them\n  { address = \"a\" },  # first\n  { address = \"b\" },\n]\n";
        assert_eq!(
            remove(text, &[(0, "a")]),
            "hosts = [  # all of them\n  { address = \"b\" },\n]\n"
        );
        assert_eq!(
            remove(text, &[(1, "b")]),
            "hosts = [  # all of them\n  { address = \"a\" },  # first\n]\n"
        );
    }

    #[test]
    fn dotted_keys_and_multi_line_inline_tables_are_copied_without_comments() {
        let text = "\
[[hosts]]
address = \"10.0.0.2-4\"
ssh.port = 2222  # odd port
vars = {
  rack = \"r1\",  # the rack
  # spare
  row = 2,
}
";
        let edited = remove(text, &[(0, "10.0.0.3")]);
        assert_eq!(
            edited,
            format!(
                "{}\n[[hosts]]\naddress = \"10.0.0.4\"\nssh.port = 2222\nvars = {{\n  rack = \"r1\",\n  row = 2,\n}}\n",
                text.replace("10.0.0.2-4", "10.0.0.2")
            )
        );
        let hosts = edited.parse::<toml::Table>().unwrap()["hosts"].clone();
        assert_eq!(hosts[1]["ssh"]["port"].as_integer(), Some(2222));
        assert_eq!(hosts[1]["vars"]["row"].as_integer(), Some(2));
    }

    #[test]
    fn one_line_inline_hosts_stay_on_one_line() {
        let text = "hosts = [{ address = \"a\" }, { address = \"b\" }]\n";
        assert_eq!(remove(text, &[(0, "a")]), "hosts = [{ address = \"b\" }]\n");
        assert_eq!(
            add(text, &[new_host("c", None, &["r"])]),
            "hosts = [{ address = \"a\" }, { address = \"b\" }, { address = \"c\", roles = [\"r\"] }]\n"
        );
    }

    #[test]
    fn added_hosts_go_after_the_last_entry_spaced_like_it() {
        let edited = add_hosts(
            FLEET,
            &[
                new_host("10.0.0.7", Some("w7"), &["worker"]),
                new_host("ops@10.0.0.8-9:2200", None, &["worker", "edge"]),
            ],
        )
        .unwrap();
        assert_eq!(
            edited.text,
            FLEET.replace(
                "ssh = { port = 2222 }\n",
                "ssh = { port = 2222 }\n\
                 \n[[hosts]]\naddress = \"10.0.0.7\"\nname = \"w7\"\nroles = [\"worker\"]\n\
                 \n[[hosts]]\naddress = \"ops@10.0.0.8-9:2200\"\nroles = [\"worker\", \"edge\"]\n"
            )
        );
        assert_eq!(
            edited.changes,
            [
                EntryChange::Added {
                    address: "10.0.0.7".into()
                },
                EntryChange::Added {
                    address: "ops@10.0.0.8-9:2200".into()
                }
            ]
        );
        let dense = "[[hosts]]\naddress = \"a\"\n[[steps]]\nname = \"s\"\n";
        assert_eq!(
            add(dense, &[new_host("b", None, &["r"])]),
            "[[hosts]]\naddress = \"a\"\n[[hosts]]\naddress = \"b\"\nroles = [\"r\"]\n[[steps]]\nname = \"s\"\n"
        );
    }

    #[test]
    fn added_hosts_go_after_the_subtables_of_the_last_entry() {
        let text = "[[hosts]]\naddress = \"a\"\n\n[hosts.vars]\nx = 1\n\n[[steps]]\nname = \"s\"\n";
        assert_eq!(
            add(text, &[new_host("b", None, &["r"])]),
            "[[hosts]]\naddress = \"a\"\n\n[hosts.vars]\nx = 1\n\n[[hosts]]\naddress = \"b\"\nroles = [\"r\"]\n\n[[steps]]\nname = \"s\"\n"
        );
    }

    #[test]
    fn the_first_host_of_a_file_without_hosts() {
        let text = "version = 1\nname = \"x\"\n";
        assert_eq!(
            add(text, &[new_host("10.0.0.1", None, &["master"])]),
            "version = 1\nname = \"x\"\n\n[[hosts]]\naddress = \"10.0.0.1\"\nroles = [\"master\"]\n"
        );
    }

    #[test]
    fn what_cannot_be_edited_is_an_error() {
        assert!(matches!(
            remove_hosts("version = ", &[removal(0, "a")]),
            Err(EditError::Syntax(_))
        ));
        assert_eq!(
            remove_hosts("[hosts]\naddress = \"a\"\n", &[removal(0, "a")]),
            Err(EditError::HostsShape)
        );
        assert_eq!(
            add_hosts("hosts = [1]\n", &[new_host("a", None, &[])]),
            Err(EditError::HostsShape)
        );
        assert_eq!(
            remove_hosts(FLEET, &[removal(2, "10.0.0.1")]),
            Err(EditError::NoEntry { entry: 2 })
        );
        assert_eq!(
            remove_hosts("version = 1\n", &[removal(0, "a")]),
            Err(EditError::NoEntry { entry: 0 })
        );
        let not_in = remove_hosts(FLEET, &[removal(1, "10.0.0.1")]).unwrap_err();
        assert_eq!(
            not_in,
            EditError::NotInEntry {
                entry: 1,
                address: "10.0.0.1".into()
            }
        );
        assert_eq!(
            not_in.to_string(),
            "failed to edit the hosts: hosts entry number 2 does not hold the address 10.0.0.1"
        );
    }

    #[test]
    fn entries_are_found_by_their_address_span() {
        let at = |needle: &str, text: &str| {
            let offset = text.find(needle).unwrap();
            address_spans(text).iter().position(|s| s.contains(&offset))
        };
        assert_eq!(at("\"10.0.0.1\"", FLEET), Some(0));
        assert_eq!(at("\"10.0.0.2-5\"", FLEET), Some(1));
        assert_eq!(at("10.0.0.2-5", FLEET), Some(1));
        assert_eq!(at("roles", FLEET), None);
        assert_eq!(at("\"10.0.0.9\"", INLINE), Some(2));
        assert!(address_spans("version = 1\n").is_empty());
        assert_eq!(address_spans("[[hosts]]\nname = \"x\"\n"), vec![0..0]);
    }

    #[test]
    fn the_default_port() {
        assert_eq!(default_ssh_port(FLEET), None);
        assert_eq!(default_ssh_port("[ssh]\nport = 2222\n"), Some(2222));
        assert_eq!(default_ssh_port("[ssh]\nport = 99999\n"), None);
    }
}
