//! What the state knows of each host it ran tasks on: how to reach it
//! ([`HostRecord`]), so that a host that left the Clusterfile can still be
//! reached to undo what cairn did there, and renaming a host's records
//! (the migration of a version-2 state, whose unnamed hosts were named by
//! their position).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{State, TaskRecord};
use crate::ids::{TaskId, TaskKey};
use crate::model::{HostKeyPolicy, TransportKind};

/// How a host was reached when cairn last applied to it: its address and
/// the SSH settings in force then. A sudo password is kept as its secret's
/// reference (`env:NAME`, `file:PATH`), never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub address: String,
    pub port: u16,
    pub user: String,
    pub transport: TransportKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Jump hosts, nearest first, as OpenSSH's `ProxyJump` writes them (`a,b`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump: Option<String>,
    /// The login password's secret reference, never its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The identity passphrase's secret reference, never its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_passphrase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ca: Option<String>,
    /// The ssh config file read instead of `~/.ssh/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default)]
    pub sudo: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_password: Option<String>,
    pub host_keys: HostKeyPolicy,
    pub connect_timeout_ms: u64,
}

impl State {
    /// How to reach the host `name` as recorded: its own record, or for a
    /// state written before hosts had one, what its tasks' key inputs say
    /// (address, port, user) over `fallback`'s SSH settings.
    pub fn host_record(&self, name: &str, fallback: &HostRecord) -> Option<HostRecord> {
        if let Some(record) = self.hosts.get(name) {
            return Some(record.clone());
        }
        let identity = self
            .tasks
            .values()
            .map(TaskRecord::host)
            .find(|h| h.name == name)?;
        Some(HostRecord {
            address: identity.address.clone(),
            port: identity.port,
            user: identity.user.clone(),
            transport: identity.transport,
            ..fallback.clone()
        })
    }

    /// Names of every host some record ran on, or that has a host record.
    pub fn known_hosts(&self) -> std::collections::BTreeSet<String> {
        self.tasks
            .values()
            .map(|r| r.host().name.clone())
            .chain(self.hosts.keys().cloned())
            .collect()
    }

    /// Where the records of host `name` say it is: address and port.
    pub fn recorded_address(&self, name: &str) -> Option<(String, u16)> {
        if let Some(h) = self.hosts.get(name) {
            return Some((h.address.clone(), h.port));
        }
        self.tasks
            .values()
            .map(TaskRecord::host)
            .find(|h| h.name == name)
            .map(|h| (h.address.clone(), h.port))
    }

    /// Renames hosts (old name → new name) in every record: task ids, the
    /// host identity in key inputs, the ids of dependencies, and the keys,
    /// recomputed so that a task whose inputs only differ by the rename is
    /// unchanged. A renamed key is passed on to the records that depend on it.
    pub fn rename_hosts(&mut self, renames: &BTreeMap<String, String>) {
        if renames.is_empty() {
            return;
        }
        let rename_id = |id: &TaskId| -> TaskId {
            let (element, host) = id.as_str().split_once('@').expect("task ids hold an `@`");
            match renames.get(host) {
                Some(new) => {
                    TaskId::parse(&format!("{element}@{new}")).expect("a renamed id parses")
                }
                None => id.clone(),
            }
        };
        let old_tasks = std::mem::take(&mut self.tasks);
        // Only a record whose key was made from its inputs is rehashed; one
        // that disagrees (never written by cairn) keeps its key, and reruns.
        let consistent: std::collections::HashSet<TaskId> = old_tasks
            .iter()
            .filter(|(_, r)| r.inputs.key() == r.key)
            .map(|(id, _)| rename_id(id))
            .collect();
        let mut new_keys: HashMap<TaskKey, TaskKey> = HashMap::new();
        let mut pending: Vec<(TaskId, super::TaskRecord)> = old_tasks
            .into_iter()
            .map(|(id, mut record)| {
                if let Some(new) = renames.get(&record.inputs.host.name) {
                    record.inputs.host.name.clone_from(new);
                }
                record.inputs.deps = std::mem::take(&mut record.inputs.deps)
                    .into_iter()
                    .map(|(dep, key)| (rename_id(&dep), key))
                    .collect();
                (rename_id(&id), record)
            })
            .collect();
        // Upstream records first, so a dependency's new key is known when its
        // dependents are rehashed: a record is ready once none of its deps is
        // still pending. Deps on tasks no longer recorded are ready at once.
        while !pending.is_empty() {
            let waiting: std::collections::HashSet<TaskId> =
                pending.iter().map(|(id, _)| id.clone()).collect();
            let (ready, rest): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|(_, r)| r.inputs.deps.keys().all(|d| !waiting.contains(d)));
            // A cycle cannot be recorded (the graph is acyclic); if one were,
            // its records are rehashed as they are rather than looping.
            let (ready, rest) = if ready.is_empty() {
                (rest, Vec::new())
            } else {
                (ready, rest)
            };
            for (id, mut record) in ready {
                for key in record.inputs.deps.values_mut() {
                    if let Some(new) = new_keys.get(key) {
                        *key = new.clone();
                    }
                }
                let old_key = record.key.clone();
                if consistent.contains(&id) {
                    record.key = record.inputs.key();
                    new_keys.insert(old_key, record.key.clone());
                }
                self.tasks.insert(id, record);
            }
            pending = rest;
        }
        self.hosts = std::mem::take(&mut self.hosts)
            .into_iter()
            .map(|(name, record)| (renames.get(&name).cloned().unwrap_or(name), record))
            .collect();
        for host in self.positions.values_mut() {
            if let Some(new) = renames.get(host) {
                host.clone_from(new);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::hash::{ActionSpec, HostIdentity, KEY_FORMAT, KeyInputs};
    use crate::ids::TaskId;
    use crate::model::TransportKind;
    use crate::state::{RecordDetail, State, TaskRecord};

    fn step(name: &str, host: &str, deps: &[(&TaskId, &TaskRecord)]) -> (TaskId, TaskRecord) {
        let inputs = KeyInputs {
            format: KEY_FORMAT,
            action: ActionSpec::Step {
                name: name.into(),
                run: "true".into(),
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
                name: host.into(),
                address: "10.0.0.2".into(),
                port: 22,
                user: "root".into(),
                transport: TransportKind::Ssh,
            },
            vars: BTreeMap::new(),
            deps: deps
                .iter()
                .map(|(id, r)| ((*id).clone(), r.key.clone()))
                .collect(),
        };
        let id = TaskId::parse(&format!("step.{name}@{host}")).unwrap();
        let record = TaskRecord {
            key: inputs.key(),
            inputs,
            detail: RecordDetail::Step {
                captured: None,
                captured_masked: false,
                undo: None,
                undo_vars: BTreeMap::new(),
                cwd: None,
            },
            finished_at: "2026-01-01T00:00:00Z".into(),
            seq: 0,
        };
        (id, record)
    }

    /// Renaming is exactly what recording under the new name would have
    /// given: ids, host identity, dependency ids and keys all agree.
    #[test]
    fn renamed_records_equal_records_made_under_the_new_name() {
        let (a_id, a) = step("a", "node0", &[]);
        let (b_id, b) = step("b", "node0", &[(&a_id, &a)]);
        let mut state = State::new("c");
        state.tasks.insert(a_id, a);
        state.tasks.insert(b_id, b);
        state.rename_hosts(&BTreeMap::from([(
            "node0".to_string(),
            "10.0.0.2".to_string(),
        )]));

        let (first_id, first) = step("a", "10.0.0.2", &[]);
        let (second_id, second) = step("b", "10.0.0.2", &[(&first_id, &first)]);
        assert_eq!(state.tasks.get(&first_id), Some(&first));
        assert_eq!(state.tasks.get(&second_id), Some(&second));
        assert_eq!(state.tasks.len(), 2);
    }
}
