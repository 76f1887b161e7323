//! Task keys: the sha256 of an explicit struct naming every input of a task.
//!
//! [`KeyInputs`] lists them all: a format version, the action and its spec,
//! the host's identity, the variables the task reads (secrets as salted
//! hashes, so the key changes with the secret but never reveals it), and the
//! keys of the tasks it waits for (which is how a change flows downstream,
//! as in make and Bazel). The encoding is `serde_json` of that struct, whose
//! maps are all `BTreeMap`s, so it is canonical. The struct itself is stored
//! in the state beside the key, as cargo stores its fingerprints, so the next
//! plan can say *which* input changed and from what to what.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{TaskId, TaskKey};

/// Bumped whenever the meaning or encoding of [`KeyInputs`] changes.
pub const KEY_FORMAT: u32 = 1;

/// Who the task runs on, as far as its effect is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub transport: crate::model::TransportKind,
}

/// What the task does; text fields are as written in the Clusterfile (the
/// values of their variables are in [`KeyInputs::vars`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ActionSpec {
    Bundle {
        name: String,
        kind: crate::model::BundleKind,
        /// Destination, resolved.
        dest: String,
        /// Merkle root of the shared files.
        base_root: String,
        /// Rendered templates: path → sha256.
        rendered: BTreeMap<String, String>,
        /// Paths left to an overlaying patch bundle.
        excluded: Vec<String>,
    },
    File {
        name: String,
        dest: String,
        mode: u32,
        owner: Option<String>,
        /// sha256 of the content as shipped (rendered, for templates).
        content: String,
    },
    Step {
        name: String,
        run: String,
        cwd: Option<String>,
        check: Option<String>,
        undo: Option<String>,
        capture: Option<String>,
        /// `capture_secret`; left out when false, so the keys of steps
        /// written before it existed do not change.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        capture_secret: bool,
        timeout_ms: Option<u64>,
        retries: u32,
        once: bool,
    },
}

/// Every input of a task's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    pub format: u32,
    pub action: ActionSpec,
    pub host: HostIdentity,
    /// Variables read: name → value, or `secret:<salted sha256>`.
    pub vars: BTreeMap<String, String>,
    /// Upstream task id → its key.
    pub deps: BTreeMap<TaskId, TaskKey>,
}

impl KeyInputs {
    pub fn key(&self) -> TaskKey {
        let bytes = serde_json::to_vec(self).expect("KeyInputs always serializes");
        TaskKey::from_digest(Sha256::digest(&bytes).into())
    }
}

/// How a secret appears in a key: a salted hash, never the value.
pub fn secret_fingerprint(salt: &str, value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update([0]);
    hasher.update(value.as_bytes());
    format!("secret:{}", hex::encode(&hasher.finalize()[..16]))
}

/// The reason a file's content differs; `plan` says a template's was
/// rendered differently instead.
pub const CONTENT_CHANGED: &str = "content changed";

/// Why a task's key changed: each differing input, in words.
pub fn explain(old: &KeyInputs, new: &KeyInputs) -> Vec<String> {
    let mut reasons = Vec::new();
    if old.format != new.format {
        reasons.push(format!(
            "cairn's key format changed ({} -> {})",
            old.format, new.format
        ));
        return reasons;
    }
    if old.host != new.host {
        let (o, n) = (&old.host, &new.host);
        if o.address != n.address || o.port != n.port {
            reasons.push(format!(
                "host address changed ({}:{} -> {}:{})",
                o.address, o.port, n.address, n.port
            ));
        }
        if o.user != n.user {
            reasons.push(format!("ssh user changed ({} -> {})", o.user, n.user));
        }
        if o.transport != n.transport {
            reasons.push("host transport changed".to_string());
        }
    }
    explain_action(&old.action, &new.action, &mut reasons);
    for (name, value) in &new.vars {
        match old.vars.get(name) {
            None => reasons.push(format!("var {name} now used")),
            Some(o) if o != value => {
                if value.starts_with("secret:") || o.starts_with("secret:") {
                    reasons.push(format!("secret {name} changed"));
                } else {
                    reasons.push(format!(
                        "var {name} changed ({} -> {})",
                        quote(o),
                        quote(value)
                    ));
                }
            }
            Some(_) => {}
        }
    }
    for name in old.vars.keys().filter(|n| !new.vars.contains_key(*n)) {
        reasons.push(format!("var {name} no longer used"));
    }
    // An edge added is said as such, not as a change of the task it
    // now waits for (which may well be unchanged).
    let changed_deps: Vec<&str> = new
        .deps
        .iter()
        .filter(|(id, key)| old.deps.get(*id).is_some_and(|old| old != *key))
        .map(|(id, _)| id.as_str())
        .collect();
    if !changed_deps.is_empty() {
        reasons.push(format!("upstream task changed ({})", list(&changed_deps)));
    }
    let added: Vec<&str> = new
        .deps
        .keys()
        .filter(|id| !old.deps.contains_key(*id))
        .map(TaskId::as_str)
        .collect();
    if !added.is_empty() {
        reasons.push(format!("now waits for {}", list(&added)));
    }
    let dropped: Vec<&str> = old
        .deps
        .keys()
        .filter(|id| !new.deps.contains_key(*id))
        .map(TaskId::as_str)
        .collect();
    if !dropped.is_empty() {
        reasons.push(format!("no longer waits for {}", list(&dropped)));
    }
    reasons
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per task kind, every field of the spec compared in plain sight"
)]
fn explain_action(old: &ActionSpec, new: &ActionSpec, reasons: &mut Vec<String>) {
    use ActionSpec::{Bundle, File, Step};
    match (old, new) {
        (
            Bundle {
                dest: od,
                kind: ok,
                excluded: oe,
                ..
            },
            Bundle {
                dest: nd,
                kind: nk,
                excluded: ne,
                ..
            },
        ) => {
            if od != nd {
                reasons.push(format!("dest changed ({od} -> {nd})"));
            }
            if ok != nk {
                reasons.push("bundle kind changed".into());
            }
            if oe != ne {
                reasons.push("files overlaid by patch bundles changed".into());
            }
            // Content differences are explained by the caller, which has the manifests.
        }
        (
            File {
                dest: od,
                mode: om,
                owner: oo,
                content: oc,
                ..
            },
            File {
                dest: nd,
                mode: nm,
                owner: no,
                content: nc,
                ..
            },
        ) => {
            if od != nd {
                reasons.push(format!("dest changed ({od} -> {nd})"));
            }
            if oc != nc {
                reasons.push(CONTENT_CHANGED.into());
            }
            if om != nm {
                reasons.push(format!("mode changed ({om:04o} -> {nm:04o})"));
            }
            if oo != no {
                reasons.push(format!(
                    "owner changed ({} -> {})",
                    oo.as_deref().unwrap_or("-"),
                    no.as_deref().unwrap_or("-")
                ));
            }
        }
        (
            Step {
                run: or,
                cwd: oc,
                check: ok,
                undo: ou,
                capture: ocap,
                capture_secret: osec,
                timeout_ms: ot,
                retries: ore,
                once: oo,
                ..
            },
            Step {
                run: nr,
                cwd: nc,
                check: nk,
                undo: nu,
                capture: ncap,
                capture_secret: nsec,
                timeout_ms: nt,
                retries: nre,
                once: no,
                ..
            },
        ) => {
            let texts = [
                ("run", Some(or), Some(nr)),
                ("cwd", oc.as_ref(), nc.as_ref()),
                ("check", ok.as_ref(), nk.as_ref()),
                ("undo", ou.as_ref(), nu.as_ref()),
                ("capture", ocap.as_ref(), ncap.as_ref()),
            ];
            for (field, old, new) in texts {
                if old != new {
                    reasons.push(format!("{field} changed{}", text_change(old, new)));
                }
            }
            let others = [
                ("timeout", ot != nt),
                ("retries", ore != nre),
                ("once", oo != no),
                ("capture_secret", osec != nsec),
            ];
            for (field, changed) in others {
                if changed {
                    reasons.push(format!("{field} changed"));
                }
            }
        }
        _ => reasons.push("the task's kind changed".into()),
    }
}

/// ` ("old" -> "new")` when both sides are short single lines, else nothing:
/// long scripts are not worth repeating in a plan line.
fn text_change(old: Option<&String>, new: Option<&String>) -> String {
    let short = |t: Option<&String>| t.is_none_or(|t| !t.contains('\n') && t.chars().count() <= 40);
    if !short(old) || !short(new) {
        return String::new();
    }
    let show = |t: Option<&String>| t.map_or_else(|| "(none)".to_string(), |t| quote(t));
    format!(" ({} -> {})", show(old), show(new))
}

fn quote(value: &str) -> String {
    let shown: String = value.chars().take(40).collect();
    if shown.len() < value.len() {
        format!("\"{shown}...\"")
    } else {
        format!("\"{shown}\"")
    }
}

fn list(items: &[&str]) -> String {
    if items.len() <= 3 {
        items.join(", ")
    } else {
        format!("{}, +{} more", items[..3].join(", "), items.len() - 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> KeyInputs {
        KeyInputs {
            format: KEY_FORMAT,
            action: ActionSpec::Step {
                name: "init".into(),
                run: "echo ${x}".into(),
                cwd: None,
                check: None,
                undo: None,
                capture: None,
                capture_secret: false,
                timeout_ms: None,
                retries: 0,
                once: false,
            },
            host: HostIdentity {
                name: "m0".into(),
                address: "10.0.0.1".into(),
                port: 22,
                user: "root".into(),
                transport: crate::model::TransportKind::Ssh,
            },
            vars: BTreeMap::from([("x".into(), "1".into())]),
            deps: BTreeMap::new(),
        }
    }

    #[test]
    fn key_is_stable_and_sensitive() {
        let a = inputs();
        assert_eq!(a.key(), inputs().key());
        let mut b = inputs();
        b.vars.insert("x".into(), "2".into());
        assert_ne!(a.key(), b.key());
        assert_eq!(explain(&a, &b), vec!["var x changed (\"1\" -> \"2\")"]);
    }

    #[test]
    fn short_command_changes_show_both_sides() {
        let a = inputs();
        let mut b = inputs();
        if let ActionSpec::Step { run, .. } = &mut b.action {
            *run = "echo ${x} again".into();
        }
        assert_eq!(
            explain(&a, &b),
            vec!["run changed (\"echo ${x}\" -> \"echo ${x} again\")"]
        );
        if let ActionSpec::Step { run, .. } = &mut b.action {
            *run = "set -e\necho long".into();
        }
        assert_eq!(
            explain(&a, &b),
            vec!["run changed"],
            "multi-line scripts are not repeated"
        );
    }

    #[test]
    fn upstream_change_is_named() {
        let mut a = inputs();
        let upstream = TaskId::parse("step.a@m0").unwrap();
        a.deps
            .insert(upstream.clone(), TaskKey::from_digest([1; 32]));
        let mut b = a.clone();
        b.deps.insert(upstream, TaskKey::from_digest([2; 32]));
        assert_eq!(explain(&a, &b), vec!["upstream task changed (step.a@m0)"]);
    }

    #[test]
    fn an_edge_added_or_removed_is_named_as_such() {
        let a = inputs();
        let mut b = a.clone();
        b.deps.insert(
            TaskId::parse("file.motd@m0").unwrap(),
            TaskKey::from_digest([1; 32]),
        );
        assert_eq!(explain(&a, &b), vec!["now waits for file.motd@m0"]);
        assert_eq!(explain(&b, &a), vec!["no longer waits for file.motd@m0"]);
    }

    #[test]
    fn secrets_are_salted_and_explained_without_values() {
        let f1 = secret_fingerprint("salt", "hunter2");
        assert!(!f1.contains("hunter2"));
        assert_ne!(f1, secret_fingerprint("other", "hunter2"));
        let mut a = inputs();
        a.vars.insert("token".into(), f1);
        let mut b = a.clone();
        b.vars
            .insert("token".into(), secret_fingerprint("salt", "hunter3"));
        assert_eq!(explain(&a, &b), vec!["secret token changed"]);
    }
}
