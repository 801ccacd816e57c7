//! Versioned schema migrations, applied in order at start-up.
//!
//! The version lives in SQLite's `user_version`. A small hand-written runner is
//! used because the migration crates pin their own rusqlite version, and the
//! whole workspace must link exactly one SQLite.

use rusqlite::{Connection, TransactionBehavior};

/// Each entry moves the schema one version forward. Never edit a released entry;
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: orgs, access policies, users, web sessions, interactions, audit log.
    r#"
    CREATE TABLE orgs (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE policies (
        name          TEXT PRIMARY KEY,
        org_id        INTEGER NOT NULL REFERENCES orgs(id),
        rights        INTEGER NOT NULL,
        primary_key   TEXT NOT NULL,
        secondary_key TEXT NOT NULL,
        portal_id     TEXT,
        provider_id   TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE INDEX policies_org ON policies(org_id);
    CREATE TABLE users (
        name          TEXT PRIMARY KEY,
        org_id        INTEGER NOT NULL REFERENCES orgs(id),
        role          TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE web_sessions (
        token_hash  TEXT PRIMARY KEY,
        org_id      INTEGER NOT NULL,
        user_name   TEXT NOT NULL,
        csrf_token  TEXT NOT NULL,
        expires_at  INTEGER NOT NULL
    );
    -- Interactions: the rowid is the arrival sequence. Small dictionary ids keep
    -- repeated strings (type, portal) out of every row.
    --
    -- Both indexes lead with time so that ingestion, which arrives roughly in
    -- time order, touches only a small, hot region of each B-tree: random-order
    -- index pages rewritten on every commit are what limits SQLite's insert
    -- rate. `day` (UTC day number) buckets the contact index; a timeline query
    -- seeks once per day of its window.
    CREATE TABLE dict (
        id    INTEGER PRIMARY KEY,
        kind  INTEGER NOT NULL,
        text  TEXT NOT NULL,
        UNIQUE (kind, text)
    );
    CREATE TABLE interactions (
        seq         INTEGER PRIMARY KEY,
        org_id      INTEGER NOT NULL,
        day         INTEGER NOT NULL,
        ts          INTEGER NOT NULL,
        id          TEXT NOT NULL,
        type_id     INTEGER NOT NULL,
        portal_id   INTEGER NOT NULL,
        contact_id  TEXT,
        session_id  TEXT,
        fields      TEXT NOT NULL
    );
    -- Idempotency: an interaction is its id at its time; a retry resends both.
    CREATE UNIQUE INDEX interactions_by_time ON interactions(org_id, ts, id);
    CREATE INDEX interactions_by_contact ON interactions(day, org_id, contact_id, ts)
        WHERE contact_id IS NOT NULL;
    CREATE TABLE audit_records (
        org_id         INTEGER NOT NULL,
        seq            INTEGER NOT NULL,
        id             TEXT NOT NULL,
        creation_time  INTEGER NOT NULL,
        operation      TEXT NOT NULL,
        category       TEXT NOT NULL,
        user_name      TEXT,
        record         TEXT NOT NULL,
        PRIMARY KEY (org_id, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX audit_records_by_id ON audit_records(org_id, id);
    "#,
    // 2: portals, interaction types, contacts, cases, and session stitching.
    r#"
    CREATE TABLE portals (
        org_id          INTEGER NOT NULL REFERENCES orgs(id),
        id              TEXT NOT NULL,
        name            TEXT NOT NULL,
        allowed_origins TEXT NOT NULL,
        policy          TEXT,
        retention_days  INTEGER,
        public_key      TEXT NOT NULL UNIQUE,
        deleted         INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        PRIMARY KEY (org_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE interaction_types (
        org_id        INTEGER NOT NULL REFERENCES orgs(id),
        name          TEXT NOT NULL,
        display_name  TEXT NOT NULL,
        fields_schema TEXT,
        state         TEXT NOT NULL,
        builtin       INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        PRIMARY KEY (org_id, name)
    ) WITHOUT ROWID;
    -- Contact ids are stored in the compact form the interactions use, so
    -- cases join to interactions without decoding.
    CREATE TABLE contacts (
        org_id      INTEGER NOT NULL REFERENCES orgs(id),
        id          BLOB NOT NULL,
        name        TEXT,
        email       TEXT,
        attributes  TEXT NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (org_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE cases (
        org_id      INTEGER NOT NULL REFERENCES orgs(id),
        id          TEXT NOT NULL,
        contact_id  BLOB NOT NULL,
        title       TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        status      TEXT NOT NULL,
        PRIMARY KEY (org_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX cases_by_contact ON cases(org_id, contact_id, created_at);
    CREATE INDEX cases_by_time ON cases(org_id, created_at);
    -- The contact an anonymous session turned out to belong to. The first
    -- interaction of a session that carries a contact id links it; earlier
    -- anonymous interactions of the session are then given the contact.
    CREATE TABLE session_contacts (
        org_id      INTEGER NOT NULL,
        session_id  BLOB NOT NULL,
        contact_id  BLOB NOT NULL,
        PRIMARY KEY (org_id, session_id)
    ) WITHOUT ROWID;
    CREATE INDEX session_contacts_by_contact ON session_contacts(org_id, contact_id);
    CREATE INDEX interactions_anonymous ON interactions(org_id, session_id)
        WHERE contact_id IS NULL AND session_id IS NOT NULL;
    "#,
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`CURRENT_VERSION`]. Refuses a database written by
/// a newer Tracklog rather than guessing at its layout.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    // Each step re-reads the version inside an IMMEDIATE transaction, so a
    // server and a CLI starting together on one data directory cannot both
    // apply the same step.
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        if version > CURRENT_VERSION {
            return Err(format!(
                "the data directory has schema version {version}, newer than this build's {CURRENT_VERSION}; use a newer tracklog"
            ));
        }
        if version == CURRENT_VERSION {
            return Ok(());
        }
        let target = version + 1;
        tx.execute_batch(MIGRATIONS[version as usize])
            .map_err(|e| format!("migration to schema version {target} failed: {e}"))?;
        tx.pragma_update(None, "user_version", target)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        tracing::info!(version = target, "applied schema migration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, CURRENT_VERSION);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        assert!(migrate(&mut conn).unwrap_err().contains("newer"));
    }
}
