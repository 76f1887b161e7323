//! The two names that cross every room: a task's id and a task's key.
//!
//! A [`TaskId`] (`step.init@master0`) names one action on one host; the
//! graph makes them, the state and the hosts' receipts are keyed by them,
//! the plan and the events show them. A [`TaskKey`] is the sha256 of
//! everything a task depends on (see `hash`). Both are newtypes with private
//! fields: the only ways in are constructors that check the form, and their
//! serde goes through the same checks (`try_from`), so a state file, a
//! receipt or a saved plan holding a malformed id is refused when it is read
//! instead of wandering through the code as a string. On disk and in JSON
//! both stay plain strings.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of element a task comes from: the part of its id before the first `.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKind {
    Bundle,
    File,
    Step,
    /// A bundle's hook (`hook.<bundle>.<hook>@host`): a step its bundle brings.
    Hook,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Bundle => "bundle",
            TaskKind::File => "file",
            TaskKind::Step => "step",
            TaskKind::Hook => "hook",
        }
    }

    fn parse(text: &str) -> Option<TaskKind> {
        match text {
            "bundle" => Some(TaskKind::Bundle),
            "file" => Some(TaskKind::File),
            "step" => Some(TaskKind::Step),
            "hook" => Some(TaskKind::Hook),
            _ => None,
        }
    }
}

/// Why a text is not a task id or a task key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "`{0}` is not a task id: expected KIND.NAME@HOST, KIND one of bundle, file, step, hook"
    )]
    TaskId(String),
    #[error("`{0}` is not a task key: expected 64 lowercase hex digits (a sha256)")]
    TaskKey(String),
}

/// `step.init@master0`: the kind, the element's name, the host's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

impl TaskId {
    /// The id of `kind` element `name` on host `host`. Validation guarantees
    /// neither name holds an `@`, so the id splits back unambiguously.
    pub fn new(kind: TaskKind, name: &str, host: &str) -> TaskId {
        // Validation guarantees it; checked anyway, since a bad id would make
        // the next load of the whole state fail.
        assert!(
            !name.is_empty() && !name.contains('@') && !host.is_empty() && !host.contains('@'),
            "task id parts `{name}` @ `{host}`"
        );
        TaskId(format!("{}.{name}@{host}", kind.as_str()))
    }

    /// Reads an id as `cairn state list` or a plan prints it.
    pub fn parse(text: &str) -> Result<TaskId, IdError> {
        let bad = || IdError::TaskId(text.to_string());
        let (element, host) = text.split_once('@').ok_or_else(bad)?;
        let (kind, name) = element.split_once('.').ok_or_else(bad)?;
        if TaskKind::parse(kind).is_none() || name.is_empty() || host.is_empty() {
            return Err(bad());
        }
        if host.contains('@') || host.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        Ok(TaskId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`: `step.init`, what `--replace step.init` names on every host.
    pub fn element_part(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(e, _)| e)
    }

    /// The id as a file name (run logs, receipts): anything but
    /// `[A-Za-z0-9.-_@]` becomes `_`.
    pub fn file_safe(&self) -> String {
        self.0
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

impl TryFrom<String> for TaskId {
    type Error = IdError;
    fn try_from(text: String) -> Result<TaskId, IdError> {
        TaskId::parse(&text)
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> String {
        id.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so `{:<width$}` lines ids up in tables.
        f.pad(&self.0)
    }
}

/// A task's content key: a sha256, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskKey(String);

impl TaskKey {
    /// The key of a sha256 digest.
    pub fn from_digest(digest: [u8; 32]) -> TaskKey {
        TaskKey(hex::encode(digest))
    }

    pub fn parse(text: &str) -> Result<TaskKey, IdError> {
        if text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(TaskKey(text.to_string()))
        } else {
            Err(IdError::TaskKey(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, as `state list` shows them.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl TryFrom<String> for TaskKey {
    type Error = IdError;
    fn try_from(text: String) -> Result<TaskKey, IdError> {
        TaskKey::parse(&text)
    }
}

impl From<TaskKey> for String {
    fn from(key: TaskKey) -> String {
        key.0
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_split_and_refuse_bad_forms() {
        let id = TaskId::new(TaskKind::File, "/etc/app.conf", "node1");
        assert_eq!(id.as_str(), "file./etc/app.conf@node1");
        assert_eq!(id.element_part(), "file./etc/app.conf");
        assert_eq!(TaskId::parse(id.as_str()), Ok(id));
        for bad in [
            "step.init",
            "init@m0",
            "task.init@m0",
            "step.@m0",
            "step.a@",
            "step.a@b@c",
        ] {
            assert!(TaskId::parse(bad).is_err(), "{bad} accepted");
        }
        let json: Result<TaskId, _> = serde_json::from_str("\"nope\"");
        assert!(json.is_err(), "deserializing checks the form too");
        assert_eq!(
            serde_json::to_string(&TaskId::parse("step.a@m0").unwrap()).unwrap(),
            "\"step.a@m0\"",
            "a plain string on disk"
        );
    }

    #[test]
    fn task_keys_are_sha256_hex() {
        let key = TaskKey::from_digest([0xab; 32]);
        assert_eq!(key.short(), "abababababab");
        assert_eq!(TaskKey::parse(key.as_str()), Ok(key));
        assert!(TaskKey::parse("k1").is_err());
        assert!(TaskKey::parse(&"A".repeat(64)).is_err(), "lowercase only");
    }

    #[test]
    fn file_safe_names_keep_ids_readable() {
        let id = TaskId::new(TaskKind::File, "/etc/a b", "m0");
        assert_eq!(id.file_safe(), "file._etc_a_b@m0");
    }
}
