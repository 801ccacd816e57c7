//! Checkpoints off the write path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT of whichever
//! connection crosses the threshold: here, the single writer, which would then
//! stall every queued write while pages are copied back and fsynced. A
//! separate thread with its own connection runs PASSIVE checkpoints instead,
//! which proceed beside the writer; the writer's own automatic checkpoint stays
//! as a distant backstop should this thread fall behind.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// A running checkpointer; dropping the handle does not stop it, [`stop`] does.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The longest the TRUNCATE step waits for the writer and readers.
const TRUNCATE_WAIT: Duration = Duration::from_millis(100);
/// How long after a TRUNCATE that could not finish the next one is tried.
const TRUNCATE_BACKOFF: Duration = Duration::from_secs(2);

impl Checkpointer {
    pub fn start(path: &Path, every: Duration, busy_timeout: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("tracklog-checkpoint".into())
            .spawn(move || {
                let conn = match Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                ) {
                    Ok(conn) => conn,
                    Err(error) => {
                        tracing::error!(%error, "the checkpointer cannot open the database");
                        return;
                    }
                };
                let _ = conn.busy_timeout(busy_timeout);
                let truncate_wait = TRUNCATE_WAIT.min(busy_timeout / 4);
                // A TRUNCATE that had to give up (a reader stays on the WAL)
                // is not tried again for a while: each try holds the write
                // lock for up to `truncate_wait`.
                let mut truncate_after = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(every);
                    let _span = tracing::debug_span!("checkpoint").entered();
                    let result: rusqlite::Result<(i64, i64, i64)> =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        });
                    match result {
                        Ok((busy, wal_pages, copied)) => {
                            tracing::debug!(wal_pages, copied, "checkpointed");
                            // Everything is back in the database and nobody
                            // is writing: shrink the WAL file to nothing, so an
                            // idle data directory holds only the database.
                            //
                            // TRUNCATE takes the write lock and then waits for
                            // readers still on the WAL, so its busy wait is kept
                            // short: behind a long search it would otherwise hold
                            // the writer off past the writer's busy timeout.
                            // Under steady ingest it still gets its turn between
                            // two commits, which keeps the WAL small rather than
                            // leaving the writer to checkpoint in its commit.
                            if busy == 0
                                && wal_pages > 0
                                && wal_pages == copied
                                && Instant::now() >= truncate_after
                            {
                                let _ = conn.busy_timeout(truncate_wait);
                                let blocked = !conn
                                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                                        r.get::<_, i64>(0)
                                    })
                                    .is_ok_and(|busy| busy == 0);
                                let _ = conn.busy_timeout(busy_timeout);
                                if blocked {
                                    truncate_after = Instant::now() + TRUNCATE_BACKOFF;
                                }
                            }
                        }
                        Err(error) => tracing::warn!(%error, "checkpoint failed"),
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::Connection;

    use super::Checkpointer;

    /// A long read (a search over millions of records, say) must not let the
    /// checkpointer hold the writer off. Here the checkpointer may wait far
    /// longer than the writer (2 s against 1 s, which leaves room for a
    /// loaded machine's scheduling) and a reader sits on the newest
    /// snapshot: the writer must still get in.
    #[test]
    fn a_reader_on_the_wal_never_makes_the_checkpointer_lock_the_writer_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        writer.busy_timeout(Duration::from_millis(1000)).unwrap();
        // The reader's snapshot is the newest, so a PASSIVE checkpoint copies
        // every frame and the checkpointer goes on to truncate the WAL.
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        let mut checkpointer =
            Checkpointer::start(&path, Duration::from_millis(5), Duration::from_secs(2)).unwrap();
        for i in 0..20 {
            std::thread::sleep(Duration::from_millis(20));
            writer
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE; INSERT INTO t VALUES ({i}); COMMIT;"
                ))
                .unwrap_or_else(|e| panic!("write {i} locked out: {e}"));
        }
        reader.execute_batch("COMMIT").unwrap();
        checkpointer.stop();
    }
}
