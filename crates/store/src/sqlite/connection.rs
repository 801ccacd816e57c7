//! Opening the store's connections (the writer's, the log's admission probe
//! and the read pool's, with the settings they share) and its log.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::pipeline::{self, MATERIALISERS, Pending};
use super::{LOG_DIR, Pipeline, SqliteOptions, audit_integrity, sql_error};
use crate::StoreError;
use crate::log::{Log, LogOptions};

/// Settings every connection of the store shares: the functions the audit
/// integrity checks call, and a planner that keeps its plans.
///
/// SQLite re-prepares a statement whose plan may depend on a bound value
/// each time that value changes, and it counts every `ORDER BY` query with
/// an equality on a parameter among them: reading one session's events,
/// `WHERE org_id = ?1 AND session_id = ?2 ORDER BY ts, rid`, was parsed and
/// planned again for every session, a tenth of the channel materialiser's
/// time. No query of the store depends on a bound value for its plan (no
/// `LIKE ?`, no statistics from `ANALYZE`, partial indexes matched by
/// literals), so the query planner stability guarantee costs nothing and
/// each cached statement is prepared once.
pub(super) fn configure_connection(conn: &Connection) -> Result<(), rusqlite::Error> {
    audit_integrity::register_functions(conn)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

pub(super) fn open_write_connection(
    path: &Path,
    options: &SqliteOptions,
) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    configure_connection(&conn).map_err(sql_error)?;
    conn.busy_timeout(options.busy_timeout).map_err(sql_error)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "{} cannot use WAL mode (got {mode})",
            path.display()
        )));
    }
    // COMMIT never waits for the disk: with `Durability::Fsync` the flushing
    // thread (see `sync`) fsyncs the WAL before any reply; with
    // `Durability::Os` the reply follows the write into the OS's buffers.
    let synchronous = "NORMAL";
    // A materialiser batch (up to 50,000 items) dirties tens of MiB of pages
    // in one transaction: a 256 MiB cache keeps them from spilling to the WAL
    // mid-transaction, and the automatic checkpoint (512 MiB of WAL by
    // default) stays a backstop that such a commit does not trip by itself,
    // leaving the copying to the checkpoint thread. Measured on the channel
    // bench: 64 MiB and 16,384 pages spent 14 % of the writer's time in its
    // own checkpoint and spills; this applies 30 % more events a second.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous};
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA wal_autocheckpoint = {};
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -262144;
         PRAGMA temp_store = MEMORY;",
        options.wal_autocheckpoint_pages
    ))
    .map_err(sql_error)?;
    Ok(conn)
}

/// Opens the log when this process can own it: the first to lock
/// `log/LOCK` does, and a second process (a CLI beside a running server)
/// works without one.
pub(super) fn open_pipeline(
    data_dir: &Path,
    db: &Path,
    options: &SqliteOptions,
    watermarks: &[u64],
    metrics: &crate::StoreMetrics,
) -> Result<Option<Pipeline>, StoreError> {
    let dir = data_dir.join(LOG_DIR);
    std::fs::create_dir_all(&dir)
        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    let lock_path = dir.join("LOCK");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", lock_path.display()))
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StoreError::Unavailable(format!(
                "cannot lock {}: {e}",
                lock_path.display()
            )));
        }
    }
    let probe = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql_error)?;
    configure_connection(&probe).map_err(sql_error)?;
    probe
        .busy_timeout(options.busy_timeout)
        .map_err(sql_error)?;
    probe
        .execute_batch("PRAGMA query_only = ON;")
        .map_err(sql_error)?;
    let consumers: Vec<(&str, u64)> = MATERIALISERS
        .iter()
        .zip(watermarks)
        .map(|((name, _), w)| (*name, *w))
        .collect();
    let log_options = LogOptions {
        durability: options.durability,
        metrics: Some(crate::log::LogMetrics {
            sync_seconds: metrics.log_sync_seconds.clone(),
            queue_depth: metrics.log_queue_depth.clone(),
        }),
        ..options.log.clone()
    };
    let log = Log::open(&dir, log_options, &consumers, Pending::new(probe))?;
    Ok(Some(Pipeline {
        log,
        progress: Arc::new(pipeline::Progress::new(watermarks)),
        stop: Arc::new(AtomicBool::new(false)),
        threads: Mutex::new(Vec::new()),
        settle_timeout: options.settle_timeout,
        _lock: lock,
    }))
}

/// Opens read-only connections for the pool.
pub(super) struct ReadConnections {
    pub(super) path: PathBuf,
    pub(super) busy_timeout: Duration,
}

impl r2d2::ManageConnection for ReadConnections {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure_connection(&conn)?;
        conn.busy_timeout(self.busy_timeout)?;
        // Reads through a memory map skip a copy and a system call per page,
        // which is most of a timeline's cost once the pages are cached.
        conn.execute_batch(
            "PRAGMA query_only = ON; PRAGMA cache_size = -32768; PRAGMA mmap_size = 1073741824;",
        )?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), rusqlite::Error> {
        conn.execute_batch("")
    }

    fn has_broken(&self, _conn: &mut Connection) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// A statement the materialisers run once per session must be planned
    /// once, not once per value bound to it.
    fn reprepares(conn: &Connection) -> i32 {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS t (rid INTEGER PRIMARY KEY, org_id INTEGER NOT NULL,
                session_id TEXT NOT NULL, ts INTEGER NOT NULL, record TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS t_by_session ON t(org_id, session_id, ts);",
        )
        .unwrap();
        let sql = "SELECT record FROM t WHERE org_id = ?1 AND session_id = ?2 ORDER BY ts, rid";
        for session in 0..50 {
            let mut statement = conn.prepare_cached(sql).unwrap();
            let rows = statement
                .query_map(rusqlite::params![1, format!("s{session}")], |r| {
                    r.get::<_, String>(0)
                })
                .unwrap()
                .count();
            assert_eq!(rows, 0);
        }
        conn.prepare_cached(sql)
            .unwrap()
            .get_status(StatementStatus::RePrepare)
    }

    #[test]
    fn a_cached_ordered_query_is_planned_once_whatever_is_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = open_write_connection(&path, &SqliteOptions::default()).unwrap();
        assert_eq!(reprepares(&writer), 0, "the writer's connection");
        let readers = ReadConnections {
            path,
            busy_timeout: Duration::from_secs(1),
        };
        let reader = r2d2::ManageConnection::connect(&readers).unwrap();
        reader.execute_batch("PRAGMA query_only = OFF;").unwrap();
        assert_eq!(reprepares(&reader), 0, "a reader's connection");
        // Without the guarantee SQLite plans it again for every session.
        let plain = Connection::open_in_memory().unwrap();
        assert_eq!(reprepares(&plain), 50, "the engine's default");
    }
}
