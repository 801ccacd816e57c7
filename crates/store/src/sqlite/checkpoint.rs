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
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// A running checkpointer; dropping the handle does not stop it, [`stop`] does.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

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
                            if busy == 0 && wal_pages > 0 && wal_pages == copied {
                                let _ =
                                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| {
                                        Ok(())
                                    });
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
