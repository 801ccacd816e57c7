//! The single writer: one thread owns the write connection and commits queued
//! jobs in groups.
//!
//! Group commit is what makes durable ingestion fast: one fsync covers every
//! job in the group. A group closes at `max_items` items, or `linger` after its
//! first job arrived, whichever comes first. Each job runs inside its own
//! savepoint, so one failing job does not undo the others; every job's caller
//! is answered only after the group's COMMIT returned.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::sync::Committed;
use crate::fault::FaultLatch;
use crate::{StoreError, StoreMetrics};

use super::sql_error;

/// What a job sees while it runs: the connection inside the open transaction,
/// and the dictionary of repeated strings.
pub(crate) struct WriteContext<'a> {
    pub conn: &'a Connection,
    pub dict: &'a mut Dictionary,
    /// Set when a job that ran without its own savepoint failed: the whole
    /// group is then rolled back and every job answered with the error.
    poisoned: Option<StoreError>,
}

/// Small integer ids for strings repeated on many rows (interaction types,
/// portal ids). The cache only ever holds ids that are committed or belong to
/// the open transaction; [`Dictionary::forget_fresh`] drops the latter when
/// the transaction is undone.
#[derive(Default)]
pub(crate) struct Dictionary {
    cache: [HashMap<String, i64>; 2],
    fresh: Vec<(u8, String)>,
    /// Sessions with anonymous interactions stored and not yet stitched
    /// (see `events::AnonymousSessions`): forgotten whenever a transaction
    /// rolls back, and read again from the table.
    pub anonymous: super::apply::AnonymousSessions,
}

impl Dictionary {
    pub const INTERACTION_TYPE: u8 = 1;
    pub const PORTAL: u8 = 2;

    fn slot(kind: u8) -> usize {
        usize::from(kind == Self::PORTAL)
    }

    pub fn intern(&mut self, conn: &Connection, kind: u8, text: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.cache[Self::slot(kind)].get(text) {
            return Ok(*id);
        }
        let existing: Option<i64> = conn
            .prepare_cached("SELECT id FROM dict WHERE kind = ?1 AND text = ?2")
            .and_then(|mut s| s.query_row(params![kind, text], |r| r.get(0)).optional())
            .map_err(sql_error)?;
        let id = match existing {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO dict (kind, text) VALUES (?1, ?2)")
                    .and_then(|mut s| s.execute(params![kind, text]))
                    .map_err(sql_error)?;
                self.fresh.push((kind, text.to_owned()));
                conn.last_insert_rowid()
            }
        };
        self.cache[Self::slot(kind)].insert(text.to_owned(), id);
        Ok(id)
    }

    pub(crate) fn mark(&self) -> usize {
        self.fresh.len()
    }

    pub(crate) fn forget_fresh(&mut self, since: usize) {
        self.anonymous.distrust();
        for (kind, text) in self.fresh.drain(since..) {
            self.cache[Self::slot(kind)].remove(&text);
        }
    }

    fn settle(&mut self) {
        self.fresh.clear();
    }
}

/// Delivers a job's result once the group's fate is known.
pub(crate) type Delivery = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A unit of work for the writer.
pub(crate) trait Job: Send {
    /// How many items it carries, for group sizing.
    fn items(&self) -> usize;
    /// Runs inside the open transaction and returns how to deliver the result.
    fn run(self: Box<Self>, ctx: &mut WriteContext<'_>) -> Delivery;
    /// Answers the caller without running.
    fn fail(self: Box<Self>, error: StoreError);
}

/// A job built from a closure, answered through a oneshot channel.
pub(crate) struct ClosureJob<T, F> {
    pub items: usize,
    /// Run inside its own savepoint, so that its failure undoes only itself.
    /// Bulk appends skip it: a savepoint copies every page the job touches
    /// into a statement journal, and an append fails only when the engine
    /// does, which dooms the whole group anyway.
    pub isolated: bool,
    pub work: F,
    pub reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for ClosureJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut WriteContext<'_>) -> Result<T, StoreError> + Send + 'static,
{
    fn items(&self) -> usize {
        self.items
    }

    fn run(self: Box<Self>, ctx: &mut WriteContext<'_>) -> Delivery {
        let ClosureJob {
            work,
            reply,
            isolated,
            ..
        } = *self;
        let result = if isolated {
            in_savepoint(ctx, work)
        } else {
            let result = work(ctx);
            if let Err(error) = &result {
                ctx.poisoned.get_or_insert_with(|| error.clone());
            }
            result
        };
        Box::new(move |commit| {
            let _ = reply.send(commit.and(result));
        })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

fn in_savepoint<T>(
    ctx: &mut WriteContext<'_>,
    work: impl FnOnce(&mut WriteContext<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    ctx.conn.execute_batch("SAVEPOINT job").map_err(sql_error)?;
    let mark = ctx.dict.mark();
    let result = work(ctx);
    match &result {
        Ok(_) => ctx.conn.execute_batch("RELEASE job").map_err(sql_error)?,
        Err(_) => {
            ctx.conn
                .execute_batch("ROLLBACK TO job; RELEASE job")
                .map_err(sql_error)?;
            ctx.dict.forget_fresh(mark);
        }
    }
    result
}

/// Messages to the writer thread.
pub(crate) enum Message {
    Job(Box<dyn Job>),
    /// Commit what is queued, then exit.
    Stop,
}

/// How the writer groups jobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupPolicy {
    pub max_items: usize,
    pub linger: Duration,
}

/// Where the writer sends a committed group's replies.
pub(crate) enum Acknowledge {
    /// COMMIT itself made the group as durable as configured: answer now.
    AtCommit,
    /// The flushing thread answers once the WAL is on stable storage.
    AfterSync(crossbeam_channel::Sender<Committed>),
}

/// The writer thread's body. Returns when told to stop or when every sender is gone.
pub(crate) fn run_writer(
    conn: Connection,
    jobs: Receiver<Message>,
    policy: GroupPolicy,
    acknowledge: Acknowledge,
    metrics: StoreMetrics,
    fault: Arc<FaultLatch>,
) {
    let mut dict = Dictionary::default();
    let mut stopping = false;
    // Faulted, the writer tries to re-establish the database on its own
    // every interval, not only when a write arrives: `/readyz` sends none
    // while a fault is latched.
    let recover = || {
        if fault.due() {
            match reestablish(&conn) {
                Ok(()) => fault.clear(),
                Err(error) => {
                    tracing::warn!(%error, "the database is still faulted; it tries again shortly")
                }
            }
        }
    };
    while !stopping {
        // Never a wait without a bound: the WAL flusher trips the latch
        // from its own thread, possibly while this one waits for a job, and
        // none may come (the materialisers wait for the log, `/readyz`
        // writes nothing) until the database is re-established.
        let received = match jobs.recv_timeout(crate::fault::RECOVERY_INTERVAL) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => {
                recover();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => None,
        };
        let first = match received {
            Some(Message::Job(job)) => job,
            Some(Message::Stop) | None => break,
        };
        let (group, stop) = collect_group(first, &jobs, policy);
        stopping = stop;
        recover();
        if let Some(refusal) = fault.refusal() {
            for job in group {
                job.fail(refusal.clone());
            }
            continue;
        }
        commit_group(&conn, &mut dict, group, &acknowledge, &metrics, &fault);
    }
    // Drain: whatever was queued before the stop is still committed.
    loop {
        let mut group = Vec::new();
        let mut items = 0;
        while items < policy.max_items {
            match jobs.try_recv() {
                Ok(Message::Job(job)) => {
                    items += job.items();
                    group.push(job);
                }
                Ok(Message::Stop) => {}
                Err(_) => break,
            }
        }
        if group.is_empty() {
            break;
        }
        commit_group(&conn, &mut dict, group, &acknowledge, &metrics, &fault);
    }
    tracing::info!("writer stopped");
}

/// After a failed WAL flush, whether the failed pages reached the disk is
/// not assumed: a checkpoint copies every committed frame into the main
/// file and syncs it (SQLite syncs after a checkpoint even with
/// `synchronous=NORMAL`), the WAL is truncated, and the database checks
/// itself before writes are acknowledged again.
fn reestablish(conn: &Connection) -> Result<(), StoreError> {
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .map_err(sql_error)?;
    if busy != 0 {
        return Err(StoreError::Unavailable(
            "the recovery checkpoint could not finish: readers hold the WAL".into(),
        ));
    }
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(sql_error)?;
    if check != "ok" {
        return Err(StoreError::Internal(format!(
            "the database fails its check after a storage fault: {check}"
        )));
    }
    Ok(())
}

fn collect_group(
    first: Box<dyn Job>,
    jobs: &Receiver<Message>,
    policy: GroupPolicy,
) -> (Vec<Box<dyn Job>>, bool) {
    let deadline = Instant::now() + policy.linger;
    let mut items = first.items();
    let mut group = vec![first];
    while items < policy.max_items {
        let next = match jobs.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => match jobs.recv_deadline(deadline) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            },
        };
        match next {
            Message::Job(job) => {
                items += job.items();
                group.push(job);
            }
            Message::Stop => return (group, true),
        }
    }
    (group, false)
}

fn commit_group(
    conn: &Connection,
    dict: &mut Dictionary,
    group: Vec<Box<dyn Job>>,
    acknowledge: &Acknowledge,
    metrics: &StoreMetrics,
    fault: &FaultLatch,
) {
    // An I/O error from SQLite itself (a sync inside BEGIN, COMMIT or a
    // spill) is a storage fault like a failed flush of the WAL.
    let io_fault = |error: &rusqlite::Error| {
        if error.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure) {
            fault.trip(format!("SQLite: {error}"));
        }
    };
    let _span = tracing::debug_span!("group_commit", jobs = group.len()).entered();
    let started = Instant::now();
    let items: usize = group.iter().map(|job| job.items()).sum();
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        io_fault(&error);
        let error = sql_error(error);
        tracing::error!(%error, "could not begin a write transaction");
        for job in group {
            job.fail(error.clone());
        }
        return;
    }
    let mut ctx = WriteContext {
        conn,
        dict,
        poisoned: None,
    };
    let deliveries: Vec<Delivery> = group.into_iter().map(|job| job.run(&mut ctx)).collect();
    let commit = match ctx.poisoned.take() {
        Some(error) => Err(error),
        None => conn.execute_batch("COMMIT").map_err(|error| {
            io_fault(&error);
            sql_error(error)
        }),
    };
    match &commit {
        Ok(()) => dict.settle(),
        Err(error) => {
            tracing::error!(%error, "group commit failed; rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            dict.forget_fresh(0);
        }
    }
    if let (Ok(()), Acknowledge::AfterSync(syncer)) = (&commit, acknowledge) {
        let committed = Committed {
            deliveries,
            started,
            items,
        };
        match syncer.send(committed) {
            Ok(()) => return,
            Err(unsent) => {
                // The flushing thread is gone: nothing can vouch for these.
                let error = StoreError::Unavailable("the WAL flusher stopped".into());
                for deliver in unsent.0.deliveries {
                    deliver(Err(error.clone()));
                }
                return;
            }
        }
    }
    metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics.commit_items.observe(items as f64);
    for deliver in deliveries {
        deliver(commit.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::{Lifecycle, StoreMetrics};

    /// The WAL flusher trips the latch from its own thread while the writer
    /// waits for jobs, and no job comes: the writer still re-establishes
    /// the database by itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fault_tripped_while_the_writer_is_idle_is_recovered_without_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            dir.path(),
            SqliteOptions::default(),
            StoreMetrics::default(),
        )
        .unwrap();
        // Let the writer settle into waiting for a job.
        tokio::time::sleep(Duration::from_millis(200)).await;
        store
            .inner
            .fault
            .trip("fsync tracklog.db-wal: EIO (a test)");
        assert!(store.fault().is_some());
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.fault().is_some() {
            assert!(
                Instant::now() < deadline,
                "still faulted 10 s after the trip, with the writer idle"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.close().await;
    }
}
