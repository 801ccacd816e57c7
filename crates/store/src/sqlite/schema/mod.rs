//! Versioned schema migrations, applied in order at start-up.
//!
//! The version lives in SQLite's `user_version`. A small hand-written runner is
//! used because the migration crates pin their own rusqlite version, and the
//! whole workspace must link exactly one SQLite.

use rusqlite::{Connection, TransactionBehavior};

mod migrations;

pub(crate) use migrations::MIGRATIONS;

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`CURRENT_VERSION`]. Refuses a database written by
/// a newer Tracklog rather than guessing at its layout.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    // The activity log's view calls these, and migration 8 reads it.
    super::audit_integrity::register_functions(conn).map_err(|e| e.to_string())?;
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

    /// An upgrade fills the journey summaries from the interactions a data
    /// directory already holds.
    #[test]
    fn journeys_are_filled_from_the_interactions_already_stored() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::audit_integrity::register_functions(&conn).unwrap();
        let before_journeys = 11;
        for (index, sql) in MIGRATIONS[..before_journeys].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", index as i64 + 1)
                .unwrap();
        }
        const HOUR: i64 = 3_600_000;
        let hour = 490_000 * HOUR;
        conn.execute_batch(&format!(
            "INSERT INTO dict (id, kind, text) VALUES
                (1, 1, 'portal_viewknowledgearticle'), (2, 1, 'portal_search'), (3, 2, 'help');
             INSERT INTO interactions
                (org_id, day, ts, id, type_id, portal_id, contact_id, session_id, fields) VALUES
                (1, {day}, {a}, 'i1', 1, 3, 'c1', 's1', '[\"KA-1\",\"Reset\"]'),
                (1, {day}, {b}, 'i2', 1, 3, 'c1', 's1', '[\"KA-1\"]'),
                (1, {day}, {c}, 'i3', 2, 3, 'c1', NULL, '[\"printer\"]'),
                (1, {day}, {c}, 'i4', 2, 3, NULL, 's9', '[\"anonymous\"]');",
            day = hour / 86_400_000,
            a = hour + 10,
            b = hour + 20,
            c = hour + 30,
        ))
        .unwrap();
        migrate(&mut conn).unwrap();
        let cells: Vec<(String, i64, i64, i64, i64)> = conn
            .prepare(
                "SELECT session_id, type_id, count, first_ts, last_ts FROM journey_hours
                 WHERE contact_id = 'c1' AND hour = ?1 ORDER BY type_id",
            )
            .unwrap()
            .query_map([hour], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            cells,
            [
                ("s1".to_owned(), 1, 2, hour + 10, hour + 20),
                (String::new(), 2, 1, hour + 30, hour + 30)
            ]
        );
        let article: (String, i64, Option<String>, Option<i64>) = conn
            .query_row(
                "SELECT article, count, title, title_ts FROM journey_articles",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            article,
            (
                "KA-1".to_owned(),
                2,
                Some("Reset".to_owned()),
                Some(hour + 10)
            )
        );
        let searches: Vec<String> = conn
            .prepare("SELECT text FROM journey_searches")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(searches, ["printer"], "anonymous rows are in no journey");
    }

    /// An upgrade fills the by-queue hourly rollups from the hourly ones.
    #[test]
    fn queue_hours_are_filled_from_the_hourly_rollups() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::audit_integrity::register_functions(&conn).unwrap();
        for (index, sql) in MIGRATIONS[..13].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", index as i64 + 1)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO ch_agg_h VALUES
                (1, 0, 3600000, 'billing', 'voice', 'a', 1.0, 1),
                (1, 0, 3600000, 'billing', 'chat', 'b', 2.0, 2),
                (1, 0, 3600000, 'sales', 'voice', 'a', 4.0, 1),
                (1, 1, 3600000, 'billing', 'voice', 'a', 8.0, 1);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(String, f64, i64, f64, i64, f64, i64)> = conn
            .prepare("SELECT queue, s0, c0, s1, c1, s2, c2 FROM ch_agg_hq ORDER BY queue")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("billing".to_owned(), 3.0, 3, 8.0, 1, 0.0, 0),
                ("sales".to_owned(), 4.0, 1, 0.0, 0, 0.0, 0)
            ]
        );
    }

    #[test]
    fn refuses_a_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        assert!(migrate(&mut conn).unwrap_err().contains("newer"));
    }
}
