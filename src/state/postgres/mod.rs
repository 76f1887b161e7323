//! The PostgreSQL state backend: the journal as rows, the cluster lock as
//! a session-level advisory lock, in a schema of an existing database.
//!
//! **Reading** a cluster's state is one repeatable-read transaction: the
//! newest row of `snapshots`, then the `journal` rows after its `seq`,
//! replayed over it as the local backend replays its journal.
//!
//! **The lock** is `pg_try_advisory_lock(key)` on a connection of its own
//! (never a pool: a session-level lock belongs to the session), tried
//! until `--lock-timeout` runs out. The key is a hash of the schema and the
//! cluster, so two schemas in one database never contend. Once it holds
//! the lock, the session writes who it is into `lock_holders` (user,
//! machine, pid, command, start, and its database session's pid), which a
//! refused cairn shows, checked against `pg_locks` so a stale row is never
//! taken for the holder. The session asks the server to look for a vanished
//! client every second while a query runs (`client_connection_check_interval`)
//! and to probe an idle one with TCP keepalives, so a killed or cut-off
//! cairn frees the lock within seconds.
//!
//! **Writing** happens only on that session. Each batch of journal entries
//! is one transaction of `INSERT … SELECT … WHERE EXISTS (the lock in
//! pg_locks held by pg_backend_pid())`: a session that lost its lock (the
//! server restarted, an operator ended it, a pooler handed the statement to
//! another session) inserts nothing, and the write fails — a task counts as
//! recorded only once its row is committed. After the first failure the
//! session is treated as lost for good: nothing later is written by it.
//! Compaction writes a snapshot (the same check) and deletes the journal
//! rows it covers, keeping the newest three snapshots.
//!
//! **Creating** a cluster needs no lock: its first snapshot is inserted
//! with `ON CONFLICT DO NOTHING` (and only where the cluster has no rows),
//! so two cairns starting a new cluster at once end with exactly one.

mod connect;
mod schema;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::Client;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use schema::SCHEMA_VERSION;

use super::lock::{LockError, LockHolder, LockNotice, LockPolicy, LockScope};
use super::{JournalEntry, STATE_VERSION, State, StateError, run_id};
use crate::model::state_settings::PgSettings;

/// How often a refused lock is tried again while waiting.
const RETRY: Duration = Duration::from_millis(250);

/// Snapshots kept per cluster: the newest, and two before it to look back at.
const SNAPSHOTS_KEPT: i64 = 3;

/// The advisory lock key of `cluster` in `schema`: the first 62 bits of a
/// SHA-256 of both (positive, so `pg_locks` shows it as two plain halves).
pub fn lock_key(schema: &str, cluster: &str) -> i64 {
    let digest = Sha256::digest(format!("cairn\0{schema}\0{cluster}").as_bytes());
    let bits = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 2;
    i64::try_from(bits).expect("62 bits fit")
}

/// SQL that is true when this session holds the advisory lock `$key`
/// (the parameter's number given as `key`).
fn lock_held(key: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND pid = pg_backend_pid() \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid::bigint = ({key}::bigint >> 32) AND objid::bigint = ({key}::bigint & 4294967295) \
         AND objsubid = 1)"
    )
}

/// One cluster's state in one schema.
#[derive(Debug)]
pub struct PgStore {
    settings: PgSettings,
    cluster: String,
    key: i64,
    /// The lock's session while this process holds the cluster lock: the
    /// only connection that writes.
    session: Arc<Mutex<Option<Session>>>,
}

/// The connection that holds the cluster lock.
struct Session {
    client: Client,
    /// The `seq` the next row gets.
    next_seq: i64,
    /// Why this session can no longer write, once it cannot.
    lost: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("next_seq", &self.next_seq)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

/// Who holds a cluster's lock, as the database sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgHolder {
    /// The holder as the operator reads it.
    pub description: String,
    /// Its database session (`pg_terminate_backend` ends it).
    pub backend_pid: i32,
}

/// The held cluster lock; dropping it ends the session, which frees it.
#[derive(Debug)]
pub struct PgLock {
    session: Arc<Mutex<Option<Session>>>,
    cluster: String,
    schema: String,
}

impl Drop for PgLock {
    fn drop(&mut self) {
        let taken = self.session.lock().map(|mut s| s.take());
        if let Ok(Some(mut session)) = taken {
            // Tidy: the row would be told stale anyway once the lock is free.
            let _ = session.client.execute(
                &format!(
                    "DELETE FROM {}.lock_holders WHERE cluster = $1 AND backend_pid = pg_backend_pid()",
                    self.schema
                ),
                &[&self.cluster],
            );
        }
    }
}

/// The holder row's JSON: the holder and its database session.
#[derive(serde::Serialize, Deserialize)]
struct HolderRow {
    #[serde(flatten)]
    holder: LockHolder,
}

impl PgStore {
    pub fn new(settings: PgSettings, cluster: &str) -> PgStore {
        PgStore {
            key: lock_key(&settings.schema, cluster),
            settings,
            cluster: cluster.to_string(),
            session: Arc::new(Mutex::new(None)),
        }
    }

    pub fn schema(&self) -> &str {
        &self.settings.schema
    }

    /// How long a lock is waited for when `--lock-timeout` says nothing.
    pub fn lock_timeout(&self) -> Option<Duration> {
        self.settings.lock_timeout
    }

    fn failed(&self, action: &str, why: &str) -> StateError {
        StateError::Backend(format!(
            "failed to {action} the state of cluster `{}` in PostgreSQL (schema `{}`): {why}",
            self.cluster, self.settings.schema
        ))
    }

    /// A new connection, its schema checked (created or upgraded if need be).
    fn open(&self, purpose: &str) -> Result<Client, String> {
        let mut client = connect::open(&self.settings, &format!("{purpose} {}", self.cluster))?;
        schema::ensure(
            &mut client,
            &self.settings.schema,
            self.settings.url.expose(),
        )?;
        Ok(client)
    }

    fn describe(&self, error: &postgres::Error) -> String {
        connect::describe(error, self.settings.url.expose())
    }

    /// Runs `work` on the lock's session when this process holds the lock,
    /// else (or when that session is lost: reading needs no lock) on a
    /// connection of its own.
    fn with_client<T>(
        &self,
        purpose: &str,
        work: impl FnOnce(&mut Client) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut guard = self.session.lock().expect("session lock is not poisoned");
        if let Some(session) = guard.as_mut()
            && session.lost.is_none()
        {
            return work(&mut session.client);
        }
        drop(guard);
        let mut client = self.open(purpose)?;
        work(&mut client)
    }

    /// The newest snapshot with the journal after it replayed over it; a
    /// fresh state when the cluster has none.
    pub fn load(&self) -> Result<State, StateError> {
        let s = self.settings.schema.clone();
        let cluster = self.cluster.clone();
        let (snapshot, rows) = self
            .with_client("read", |client| {
                let mut tx = client
                    .build_transaction()
                    .isolation_level(postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .map_err(|e| self.describe(&e))?;
                let snapshot: Option<(i64, String)> = tx
                    .query_opt(
                        &format!(
                            "SELECT seq, state FROM {s}.snapshots WHERE cluster = $1 ORDER BY seq DESC LIMIT 1"
                        ),
                        &[&cluster],
                    )
                    .map_err(|e| self.describe(&e))?
                    .map(|row| (row.get(0), row.get(1)));
                let after = snapshot.as_ref().map_or(-1, |(seq, _)| *seq);
                let rows: Vec<(i64, String)> = tx
                    .query(
                        &format!(
                            "SELECT seq, entry FROM {s}.journal WHERE cluster = $1 AND seq > $2 ORDER BY seq"
                        ),
                        &[&cluster, &after],
                    )
                    .map_err(|e| self.describe(&e))?
                    .into_iter()
                    .map(|row| (row.get(0), row.get(1)))
                    .collect();
                tx.commit().map_err(|e| self.describe(&e))?;
                Ok((snapshot, rows))
            })
            .map_err(|why| self.failed("read", &why))?;
        let mut state = match snapshot {
            Some((seq, text)) => self.parse_state(seq, &text)?,
            None => State::new(&self.cluster),
        };
        for (seq, text) in rows {
            let entry: JournalEntry = serde_json::from_str(&text).map_err(|e| {
                self.failed("read", &format!("journal row {seq} is not valid: {e}"))
            })?;
            state.apply(entry);
        }
        Ok(state)
    }

    fn parse_state(&self, seq: i64, text: &str) -> Result<State, StateError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let corrupt = |e: serde_json::Error| {
            self.failed("read", &format!("snapshot {seq} is not valid: {e}"))
        };
        let v: Version = serde_json::from_str(text).map_err(corrupt)?;
        if v.version > STATE_VERSION {
            return Err(self.failed(
                "read",
                &format!(
                    "snapshot {seq} was written by a newer cairn (format {}, this cairn reads {STATE_VERSION}); upgrade cairn",
                    v.version
                ),
            ));
        }
        serde_json::from_str(text).map_err(corrupt)
    }

    /// Makes the cluster's first rows if it has none: its name and an
    /// empty state (whose salt keys secrets from now on). Needs no lock:
    /// of two cairns doing this at once, one inserts and the other nothing.
    pub fn ensure(&self) -> Result<(), StateError> {
        self.with_client("create", |client| self.create_rows(client))
            .map_err(|why| self.failed("create", &why))
    }

    /// [`PgStore::ensure`] on `client`.
    fn create_rows(&self, client: &mut Client) -> Result<(), String> {
        let s = &self.settings.schema;
        let cluster = &self.cluster;
        let fresh = serde_json::to_string(&State::new(&self.cluster)).expect("state serializes");
        {
            client
                .execute(
                    &format!("INSERT INTO {s}.clusters (name) VALUES ($1) ON CONFLICT DO NOTHING"),
                    &[&cluster],
                )
                .map_err(|e| self.describe(&e))?;
            client
                .execute(
                    &format!(
                        "INSERT INTO {s}.snapshots (cluster, seq, serial, state) \
                         SELECT $1, 0, 0, $2 \
                         WHERE NOT EXISTS (SELECT 1 FROM {s}.snapshots WHERE cluster = $1) \
                         AND NOT EXISTS (SELECT 1 FROM {s}.journal WHERE cluster = $1) \
                         ON CONFLICT DO NOTHING"
                    ),
                    &[&cluster, &fresh],
                )
                .map_err(|e| self.describe(&e))?;
            Ok(())
        }
    }

    /// Takes the cluster lock on a session of its own, waiting up to the
    /// policy's `--lock-timeout` (or `[state] lock_timeout` when that is
    /// zero), then naming the holder.
    pub fn lock(&self, policy: &LockPolicy) -> Result<PgLock, LockError> {
        let backend = |why: String| {
            LockError::Backend(format!(
                "failed to take the lock of cluster `{}` in PostgreSQL (schema `{}`): {why}",
                self.cluster, self.settings.schema
            ))
        };
        let mut client = self.open("lock").map_err(backend)?;
        let wait = if policy.wait_for_live.is_zero() {
            self.settings.lock_timeout.unwrap_or_default()
        } else {
            policy.wait_for_live
        };
        let started = Instant::now();
        let mut told = false;
        let mut vanished = 0;
        loop {
            let taken: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&self.key])
                .map_err(|e| backend(self.describe(&e)))?
                .get(0);
            if taken {
                break;
            }
            let Some(holder) = self.holder_on(&mut client).map_err(backend)? else {
                // Freed between the two statements: try again soon (a
                // few times; then it is waited for like any holder).
                vanished += 1;
                if vanished < 20 {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                return Err(LockError::Held {
                    cluster: self.cluster.clone(),
                    holder: "a session that takes and lets go of it again and again".into(),
                    waited: started.elapsed(),
                });
            };
            let waited = started.elapsed();
            if waited >= wait {
                return Err(LockError::Held {
                    cluster: self.cluster.clone(),
                    holder: holder.description,
                    waited: wait,
                });
            }
            if !told {
                told = true;
                policy.notify(&LockNotice::WaitingForHolder {
                    scope: LockScope::Cluster(self.cluster.clone()),
                    holder: holder.description,
                    heartbeat_age: None,
                    wait,
                });
            }
            std::thread::sleep(RETRY.min(wait.saturating_sub(waited)));
        }
        if told {
            policy.notify(&LockNotice::Acquired {
                scope: LockScope::Cluster(self.cluster.clone()),
                waited: started.elapsed(),
            });
        }
        let s = &self.settings.schema;
        let holder = serde_json::to_string(&HolderRow {
            holder: policy.holder.clone(),
        })
        .expect("holder serializes");
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.lock_holders (cluster, holder, backend_pid, since) \
                     SELECT $1, $2, pg_backend_pid(), now() WHERE {held} \
                     ON CONFLICT (cluster) DO UPDATE SET holder = EXCLUDED.holder, \
                     backend_pid = EXCLUDED.backend_pid, since = EXCLUDED.since",
                    held = lock_held("$3")
                ),
                &[&self.cluster, &holder, &self.key],
            )
            .map_err(|e| backend(self.describe(&e)))?;
        // The first rows before the first seq is counted: the journal goes after them.
        self.create_rows(&mut client).map_err(backend)?;
        let next_seq: i64 = client
            .query_one(
                &format!(
                    "SELECT GREATEST((SELECT max(seq) FROM {s}.journal WHERE cluster = $1), \
                     (SELECT max(seq) FROM {s}.snapshots WHERE cluster = $1), -1) + 1"
                ),
                &[&self.cluster],
            )
            .map_err(|e| backend(self.describe(&e)))?
            .get(0);
        *self.session.lock().expect("session lock is not poisoned") = Some(Session {
            client,
            next_seq,
            lost: None,
        });
        Ok(PgLock {
            session: self.session.clone(),
            cluster: self.cluster.clone(),
            schema: self.settings.schema.clone(),
        })
    }

    /// Who holds the cluster lock now, without taking it: `None` when free.
    pub fn holder(&self) -> Result<Option<PgHolder>, StateError> {
        let mut client = self
            .open("unlock")
            .map_err(|why| self.failed("read the lock of", &why))?;
        self.holder_on(&mut client)
            .map_err(|why| self.failed("read the lock of", &why))
    }

    /// The lock's holder as `pg_locks` has it, described from its
    /// `lock_holders` row when that row is the holder's own.
    fn holder_on(&self, client: &mut Client) -> Result<Option<PgHolder>, String> {
        let s = &self.settings.schema;
        let row = client
            .query_opt(
                &format!(
                    "SELECT l.pid, h.holder, h.backend_pid, a.usename::text, a.client_addr::text, \
                     a.application_name, a.backend_start::text \
                     FROM pg_locks l \
                     LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
                     LEFT JOIN {s}.lock_holders h ON h.cluster = $2 \
                     WHERE l.locktype = 'advisory' AND l.granted \
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     AND l.classid::bigint = ($1::bigint >> 32) AND l.objid::bigint = ($1::bigint & 4294967295) \
                     AND l.objsubid = 1 LIMIT 1"
                ),
                &[&self.key, &self.cluster],
            )
            .map_err(|e| self.describe(&e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let pid: i32 = row.get(0);
        let recorded: Option<String> = row.get(1);
        let recorded_pid: Option<i32> = row.get(2);
        let own_row = recorded
            .filter(|_| recorded_pid == Some(pid))
            .and_then(|text| serde_json::from_str::<HolderRow>(&text).ok());
        let description = if let Some(row) = own_row {
            format!("{} (database session {pid})", row.holder)
        } else {
            let user: Option<String> = row.get(3);
            let addr: Option<String> = row.get(4);
            let app: Option<String> = row.get(5);
            let since: Option<String> = row.get(6);
            format!(
                "database session {pid} (role {}, from {}, `{}`, connected {}; it has not said who it is)",
                user.as_deref().unwrap_or("?"),
                addr.as_deref().unwrap_or("a local socket"),
                app.as_deref().unwrap_or(""),
                since.as_deref().unwrap_or("?"),
            )
        };
        Ok(Some(PgHolder {
            description,
            backend_pid: pid,
        }))
    }

    /// Ends the database session `pid` (`pg_terminate_backend`), if it
    /// still holds this cluster's lock: `Ok(false)` when it no longer does.
    pub fn terminate(&self, pid: i32) -> Result<bool, StateError> {
        let mut client = self
            .open("unlock")
            .map_err(|why| self.failed("end the holder of", &why))?;
        match self.holder_on(&mut client) {
            Ok(Some(holder)) if holder.backend_pid == pid => {}
            Ok(_) => return Ok(false),
            Err(why) => return Err(self.failed("end the holder of", &why)),
        }
        let ended = client.query_one("SELECT pg_terminate_backend($1)", &[&pid]);
        match ended {
            Ok(row) => Ok(row.get(0)),
            Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                Err(self.failed(
                    "end the holder of",
                    &format!(
                        "this role may not end session {pid} (a superuser, a member of pg_signal_backend, or the holder's own role may): ask one to run `SELECT pg_terminate_backend({pid});`"
                    ),
                ))
            }
            Err(e) => Err(self.failed("end the holder of", &self.describe(&e))),
        }
    }

    /// How many journal rows follow the newest snapshot: what a read replays.
    pub fn tail_len(&self) -> Result<i64, StateError> {
        let s = &self.settings.schema;
        self.with_client("read", |client| {
            client
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {s}.journal WHERE cluster = $1 AND seq > \
                         COALESCE((SELECT max(seq) FROM {s}.snapshots WHERE cluster = $1), -1)"
                    ),
                    &[&self.cluster],
                )
                .map(|row| row.get(0))
                .map_err(|e| self.describe(&e))
        })
        .map_err(|why| self.failed("read", &why))
    }

    /// Appends journal entries on the lock's session, in one transaction,
    /// each row inserted only while the session holds the lock.
    pub fn append(&self, entries: &[JournalEntry]) -> Result<(), String> {
        let mut guard = self.session.lock().expect("session lock is not poisoned");
        let Some(session) = guard.as_mut() else {
            return Err("this run does not hold the cluster lock".into());
        };
        if let Some(why) = &session.lost {
            return Err(why.clone());
        }
        let s = &self.settings.schema;
        let sql = format!(
            "INSERT INTO {s}.journal (cluster, seq, run_id, entry) SELECT $1, $2, $3, $4 WHERE {}",
            lock_held("$5")
        );
        let result = (|| {
            let mut tx = session
                .client
                .transaction()
                .map_err(|e| self.describe(&e))?;
            let mut seq = session.next_seq;
            for entry in entries {
                let text = serde_json::to_string(entry).expect("journal entries serialize");
                let inserted = tx
                    .execute(&sql, &[&self.cluster, &seq, &run_id(), &text, &self.key])
                    .map_err(|e| self.describe(&e))?;
                if inserted != 1 {
                    return Err(
                        "this session no longer holds the cluster lock (was the connection handed to another session by a pooler?)"
                            .to_string(),
                    );
                }
                seq += 1;
            }
            tx.commit().map_err(|e| self.describe(&e))?;
            Ok(seq)
        })();
        match result {
            Ok(seq) => {
                session.next_seq = seq;
                Ok(())
            }
            Err(why) => {
                let lost = format!(
                    "the cluster lock in PostgreSQL is lost ({why}); what was recorded before stays, nothing more is written by this run"
                );
                session.lost = Some(lost.clone());
                Err(lost)
            }
        }
    }

    /// Writes `state` as the newest snapshot and drops the journal rows
    /// and older snapshots it makes needless; under the lock only. A run
    /// that lost its lock leaves it to the next: its rows are all there,
    /// and the failure that lost them was already told.
    pub fn compact(&self, state: &State) -> Result<(), StateError> {
        let mut guard = self.session.lock().expect("session lock is not poisoned");
        let Some(session) = guard.as_mut() else {
            return Err(self.failed("compact", "this process does not hold the cluster lock"));
        };
        if session.lost.is_some() {
            return Ok(());
        }
        let s = &self.settings.schema;
        let text = serde_json::to_string(state).expect("state serializes");
        let serial = i64::try_from(state.serial).unwrap_or(i64::MAX);
        let seq = session.next_seq;
        let result = (|| {
            let mut tx = session
                .client
                .transaction()
                .map_err(|e| self.describe(&e))?;
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO {s}.snapshots (cluster, seq, serial, state) SELECT $1, $2, $3, $4 WHERE {}",
                        lock_held("$5")
                    ),
                    &[&self.cluster, &seq, &serial, &text, &self.key],
                )
                .map_err(|e| self.describe(&e))?;
            if inserted != 1 {
                return Err("this session no longer holds the cluster lock".to_string());
            }
            tx.execute(
                &format!("DELETE FROM {s}.journal WHERE cluster = $1 AND seq < $2"),
                &[&self.cluster, &seq],
            )
            .map_err(|e| self.describe(&e))?;
            tx.execute(
                &format!(
                    "DELETE FROM {s}.snapshots WHERE cluster = $1 AND seq < \
                     (SELECT seq FROM {s}.snapshots WHERE cluster = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1)"
                ),
                &[&self.cluster, &(SNAPSHOTS_KEPT - 1)],
            )
            .map_err(|e| self.describe(&e))?;
            tx.commit().map_err(|e| self.describe(&e))
        })();
        match result {
            Ok(()) => {
                session.next_seq = seq + 1;
                Ok(())
            }
            Err(why) => {
                session.lost = Some(why.clone());
                Err(self.failed("compact", &why))
            }
        }
    }

    /// `cairn state migrate`: `state` as the cluster's first snapshot, in
    /// one transaction, under the cluster lock; refused when the cluster
    /// already has rows (an empty first state made by a plan excepted).
    /// Read back and compared before it returns.
    pub fn import(&self, state: &State) -> Result<(), StateError> {
        let fail = |why: String| self.failed("migrate", &why);
        let mut client = self.open("migrate").map_err(fail)?;
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.key])
            .map_err(|e| fail(self.describe(&e)))?
            .get(0);
        if !taken {
            let holder = self
                .holder_on(&mut client)
                .map_err(fail)?
                .map_or_else(|| "another session".to_string(), |h| h.description);
            return Err(fail(format!("the cluster is locked by {holder}")));
        }
        let s = &self.settings.schema;
        let text = serde_json::to_string(state).expect("state serializes");
        let serial = i64::try_from(state.serial).unwrap_or(i64::MAX);
        let result = (|| {
            let mut tx = client.transaction().map_err(|e| self.describe(&e))?;
            tx.execute(
                &format!("INSERT INTO {s}.clusters (name) VALUES ($1) ON CONFLICT DO NOTHING"),
                &[&self.cluster],
            )
            .map_err(|e| self.describe(&e))?;
            let rows: i64 = tx
                .query_one(
                    &format!("SELECT count(*) FROM {s}.journal WHERE cluster = $1"),
                    &[&self.cluster],
                )
                .map_err(|e| self.describe(&e))?
                .get(0);
            let newest: Option<String> = tx
                .query_opt(
                    &format!(
                        "SELECT state FROM {s}.snapshots WHERE cluster = $1 ORDER BY seq DESC LIMIT 1"
                    ),
                    &[&self.cluster],
                )
                .map_err(|e| self.describe(&e))?
                .map(|row| row.get(0));
            // A plan of the cluster may have made its empty first state: that is not a state to keep.
            let snapshot_holds = newest.as_deref().is_some_and(|t| {
                serde_json::from_str::<State>(t).map_or(true, |st| {
                    st.serial > 0 || !st.tasks.is_empty() || !st.hosts.is_empty()
                })
            });
            let holds_something = rows > 0 || snapshot_holds;
            if holds_something {
                return Err(format!(
                    "schema `{s}` already holds a state for cluster `{}`: nothing was copied (pull it with `cairn state pull` to look at it, or migrate to another schema)",
                    self.cluster
                ));
            }
            tx.execute(
                &format!("DELETE FROM {s}.snapshots WHERE cluster = $1"),
                &[&self.cluster],
            )
            .map_err(|e| self.describe(&e))?;
            tx.execute(
                &format!(
                    "INSERT INTO {s}.snapshots (cluster, seq, serial, state) VALUES ($1, 0, $2, $3)"
                ),
                &[&self.cluster, &serial, &text],
            )
            .map_err(|e| self.describe(&e))?;
            tx.commit().map_err(|e| self.describe(&e))
        })();
        result.map_err(fail)?;
        drop(client);
        let back = self.load()?;
        let same = serde_json::to_value(&back).expect("serializes")
            == serde_json::to_value(state).expect("serializes");
        if same {
            Ok(())
        } else {
            Err(fail(
                "the state read back differs from the one copied; the local state is left in use"
                    .into(),
            ))
        }
    }
}
