//! cairn's tables in their schema, and the schema's version.
//!
//! `<schema>.schema_version` holds one row: the version of the tables. A
//! connection reads it first. No table yet: cairn creates the schema and
//! its tables (when its role may; otherwise it says what to ask for), under
//! a transaction-scoped advisory lock of that schema so that two cairns
//! starting at once do not both create them. An older version is upgraded
//! forward, step by step, under the same lock; a newer one is refused by
//! name. A role that may only read and write the tables never needs more
//! than the version check.
//!
//! Tables (all keyed by cluster):
//! - `clusters`: one row per cluster, made the first time it is used.
//! - `journal`: one row per journal entry (`seq`, the run's id, the entry's JSON).
//! - `snapshots`: the whole state as of `seq`; reading is the newest
//!   snapshot and the journal rows after it.
//! - `lock_holders`: who holds (or last held) each cluster's lock, and
//!   its database session.

use postgres::Client;

/// The version of the tables this cairn reads and writes.
pub const SCHEMA_VERSION: i32 = 1;

/// The statements that bring a schema from version `n` to `n + 1`,
/// `{s}` standing for the schema's name; index 0 creates it.
const UPGRADES: &[&str] = &[r"
CREATE TABLE IF NOT EXISTS {s}.clusters (
    name text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {s}.journal (
    cluster text NOT NULL,
    seq bigint NOT NULL,
    run_id text NOT NULL,
    entry text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, seq)
);
CREATE TABLE IF NOT EXISTS {s}.snapshots (
    cluster text NOT NULL,
    seq bigint NOT NULL,
    serial bigint NOT NULL,
    state text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, seq)
);
CREATE TABLE IF NOT EXISTS {s}.lock_holders (
    cluster text PRIMARY KEY,
    holder text NOT NULL,
    backend_pid integer NOT NULL,
    since timestamptz NOT NULL DEFAULT now()
);
"];

/// Makes sure `schema` holds this cairn's tables, at this version.
pub(super) fn ensure(client: &mut Client, schema: &str, url: &str) -> Result<(), String> {
    if version(client, schema, url)? == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    let mut tx = client
        .transaction()
        .map_err(|e| super::connect::describe(&e, url))?;
    // Whoever creates or upgrades the schema does it alone; the lock ends with the transaction.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&super::lock_key(schema, "")],
    )
    .map_err(|e| super::connect::describe(&e, url))?;
    let create = tx
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.schema_version (version integer NOT NULL)"
        ))
        .map_err(|e| refused_creation(&e, schema, url));
    create?;
    let found: Option<i32> = tx
        .query_opt(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .map_err(|e| super::connect::describe(&e, url))?
        .map(|row| row.get(0));
    let from = match found {
        Some(v) if v > SCHEMA_VERSION => return Err(too_new(schema, v)),
        Some(v) => v,
        None => 0,
    };
    for sql in UPGRADES.iter().skip(usize::try_from(from).unwrap_or(0)) {
        tx.batch_execute(&sql.replace("{s}", schema))
            .map_err(|e| refused_creation(&e, schema, url))?;
    }
    if found.is_none() {
        tx.execute(
            &format!("INSERT INTO {schema}.schema_version (version) VALUES ($1)"),
            &[&SCHEMA_VERSION],
        )
    } else {
        tx.execute(
            &format!("UPDATE {schema}.schema_version SET version = $1"),
            &[&SCHEMA_VERSION],
        )
    }
    .map_err(|e| super::connect::describe(&e, url))?;
    tx.commit().map_err(|e| super::connect::describe(&e, url))
}

/// The schema's version; `None` when it has no tables yet.
fn version(client: &mut Client, schema: &str, url: &str) -> Result<Option<i32>, String> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{schema}.schema_version")],
        )
        .map_err(|e| super::connect::describe(&e, url))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let found: Option<i32> = client
        .query_opt(&format!("SELECT version FROM {schema}.schema_version"), &[])
        .map_err(|e| super::connect::describe(&e, url))?
        .map(|row| row.get(0));
    match found {
        Some(v) if v > SCHEMA_VERSION => Err(too_new(schema, v)),
        other => Ok(other),
    }
}

fn too_new(schema: &str, found: i32) -> String {
    format!(
        "schema `{schema}` holds cairn's tables at version {found}, written by a newer cairn (this one reads version {SCHEMA_VERSION}); upgrade cairn on this machine"
    )
}

fn refused_creation(error: &postgres::Error, schema: &str, url: &str) -> String {
    let why = super::connect::describe(error, url);
    if error.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
        format!(
            "{why}: this role may not create cairn's tables in schema `{schema}`; have an owner run cairn once (or create them as docs/state.md shows), then grant this role SELECT, INSERT, UPDATE, DELETE on them"
        )
    } else {
        why
    }
}
