//! The embedded backend: one SQLite file in WAL mode.
//!
//! - One writer thread ([`writer`]) owns the write connection. Every write, from
//!   ingestion to a policy change, is a job on its bounded queue; jobs are
//!   committed in groups. With [`Durability::Fsync`] a flushing thread
//!   ([`sync`]) fsyncs the WAL after each commit and only then answers, while
//!   the writer goes on with the next group; with [`Durability::Os`] the
//!   answer follows COMMIT, the data in the OS's buffers, which survives a
//!   crash of the process but not a power cut.
//! - A small r2d2 pool of read-only connections serves queries on the blocking
//!   thread pool; WAL lets them run beside the writer.
//! - Other processes (the `tracklog` CLI) may open the same file: SQLite's own
//!   locking orders their writes with the server's.

mod apply;
mod audit;
mod audit_integrity;
mod channel;
mod checkpoint;
mod compact;
mod connection;
pub mod doctor;
mod events;
mod journeys;
mod meta;
mod pipeline;
mod portals;
mod queue_hours;
mod rollups;
mod schema;
mod sync;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use crossbeam_channel::{Sender, TrySendError};
use rusqlite::Connection;
use tokio::sync::{Semaphore, oneshot};
use tracklog_domain::ids::OrgName;
use tracklog_domain::time::UtcMillis;

use crate::log::{Kind, Log, LogOptions};
use crate::{Durability, Lifecycle, StoreError, StoreMetrics, Stores};
use connection::{ReadConnections, open_pipeline, open_write_connection};
use pipeline::{MATERIALISERS, Pending};
use writer::{ClosureJob, GroupPolicy, Message, WriteContext};

pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

/// Registers on `conn` the SQL functions Tracklog's schema calls (the
/// activity log's free-text view reads through one), for a connection that
/// a tool other than the store opens on the database file.
pub fn register_sql_functions(conn: &Connection) -> Result<(), StoreError> {
    audit_integrity::register_functions(conn).map_err(sql_error)
}

/// The database file inside the data directory.
pub const DB_FILE: &str = "tracklog.db";
/// The write-ahead log's directory inside the data directory.
pub const LOG_DIR: &str = "log";

/// Tuning of the embedded backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// A group commit closes at this many items...
    pub batch_max_items: usize,
    /// ...or this long after its first job arrived.
    pub batch_linger: Duration,
    /// Items that may wait for the writer; past this, writes fail with
    /// [`StoreError::Overloaded`].
    pub queue_max_items: usize,
    pub read_connections: u32,
    /// How long a write waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// WAL pages before the writer checkpoints on its own: a backstop, since a
    /// separate thread checkpoints every `checkpoint_interval`.
    pub wal_autocheckpoint_pages: u32,
    /// How often the background thread runs a PASSIVE checkpoint.
    pub checkpoint_interval: Duration,
    /// Audit records whose JSON is longer than this are stored as parts.
    pub audit_split_threshold_bytes: usize,
    /// An org's first this many audit records train its zstd dictionary;
    /// later ones are stored compressed with it. 0 compresses nothing.
    pub audit_compress_after_records: usize,
    /// Free-text searches with fewer matches than this start from the FTS
    /// index; the others walk the log in time order (see `audit::Source`).
    pub audit_fts_driven_below: i64,
    /// The write-ahead log in front of the tables.
    pub log: LogOptions,
    /// How long a read waits for the materialisers to apply the writes of
    /// its org that were acknowledged before it started; past this it
    /// fails with [`StoreError::Unavailable`] (503).
    pub settle_timeout: Duration,
    /// Run SQLite's quick check before opening, and refuse a damaged
    /// database ([`doctor`]).
    pub check_at_start: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            batch_max_items: 20_000,
            batch_linger: Duration::from_millis(1),
            queue_max_items: 200_000,
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            wal_autocheckpoint_pages: 131_072,
            checkpoint_interval: Duration::from_millis(500),
            audit_split_threshold_bytes: 3072,
            audit_compress_after_records: 2_000,
            audit_fts_driven_below: 20_000,
            log: LogOptions::default(),
            settle_timeout: Duration::from_secs(10),
            check_at_start: false,
        }
    }
}

/// The embedded store. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: Sender<Message>,
    budget: Arc<Semaphore>,
    queue_max_items: usize,
    readers: r2d2::Pool<ReadConnections>,
    writer: Mutex<Option<JoinHandle<()>>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<checkpoint::Checkpointer>,
    metrics: StoreMetrics,
    audit_split_threshold: usize,
    audit_codec: Arc<audit::Compressor>,
    audit_fts_driven_below: i64,
    /// `None` when another process owns this data directory's log (a CLI
    /// beside a running server): items cannot be appended here.
    pipeline: Option<Pipeline>,
    /// Set when a flush of the WAL failed, until the writer re-established
    /// the database ([`crate::fault`]).
    fault: Arc<crate::fault::FaultLatch>,
}

/// The log and its materialisers, in the process that owns the log.
struct Pipeline {
    log: Log<Pending>,
    progress: Arc<pipeline::Progress>,
    /// Materialisers stop once they have caught up...
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    settle_timeout: Duration,
    /// Held for the process's life: one log writer per data directory.
    _lock: std::fs::File,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, applies migrations,
    /// creates the `default` org and starts the writer.
    pub fn open(
        data_dir: &Path,
        options: SqliteOptions,
        metrics: StoreMetrics,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(DB_FILE);
        if options.check_at_start {
            doctor::refuse_if_damaged(data_dir)?;
        }
        let mut conn = open_write_connection(&path, &options)?;
        schema::migrate(&mut conn).map_err(StoreError::Internal)?;
        ensure_org_sync(&conn, "default")?;
        audit::backfill(&conn)?;

        let readers = r2d2::Pool::builder()
            .max_size(options.read_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(ReadConnections {
                path: path.clone(),
                busy_timeout: options.busy_timeout,
            })
            .map_err(|e| StoreError::Unavailable(format!("read pool: {e}")))?;

        // The channel is bounded in jobs; the semaphore bounds queued items.
        let (jobs, receiver) = crossbeam_channel::bounded(65_536);
        let policy = GroupPolicy {
            max_items: options.batch_max_items.max(1),
            linger: options.batch_linger,
        };
        let checkpointer = checkpoint::Checkpointer::start(
            &path,
            options.checkpoint_interval,
            options.busy_timeout,
        )
        .map_err(|e| StoreError::Internal(format!("cannot start the checkpointer: {e}")))?;
        let fault = Arc::new(crate::fault::FaultLatch::default());
        let (acknowledge, syncer) = match options.durability {
            Durability::Os => (writer::Acknowledge::AtCommit, None),
            Durability::Fsync => {
                let (to_syncer, committed) = crossbeam_channel::unbounded();
                let wal = sync::wal_path(&path);
                let sync_metrics = metrics.clone();
                let sync_fault = fault.clone();
                let handle = std::thread::Builder::new()
                    .name("tracklog-wal-sync".into())
                    .spawn(move || sync::run_syncer(wal, committed, sync_metrics, sync_fault))
                    .map_err(|e| {
                        StoreError::Internal(format!("cannot start the WAL flusher: {e}"))
                    })?;
                (writer::Acknowledge::AfterSync(to_syncer), Some(handle))
            }
        };
        let watermarks = pipeline::load_watermarks(&conn)?;
        let writer_metrics = metrics.clone();
        let writer_fault = fault.clone();
        let writer = std::thread::Builder::new()
            .name("tracklog-writer".into())
            .spawn(move || {
                writer::run_writer(
                    conn,
                    receiver,
                    policy,
                    acknowledge,
                    writer_metrics,
                    writer_fault,
                )
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the writer: {e}")))?;
        let pipeline = open_pipeline(data_dir, &path, &options, &watermarks, &metrics)?;
        let store = Self {
            inner: Arc::new(Inner {
                path,
                jobs,
                budget: Arc::new(Semaphore::new(options.queue_max_items)),
                queue_max_items: options.queue_max_items,
                readers,
                writer: Mutex::new(Some(writer)),
                syncer: Mutex::new(syncer),
                checkpointer: Mutex::new(checkpointer),
                metrics,
                audit_split_threshold: options.audit_split_threshold_bytes.max(64),
                audit_codec: Arc::new(audit::Compressor::new(options.audit_compress_after_records)),
                audit_fts_driven_below: options.audit_fts_driven_below,
                pipeline,
                fault,
            }),
        };
        store.start_materialisers()?;
        Ok(store)
    }

    fn start_materialisers(&self) -> Result<(), StoreError> {
        let Some(pipeline) = &self.inner.pipeline else {
            return Ok(());
        };
        fn start<M: pipeline::Materialise>(
            store: &SqliteStore,
            pipeline: &Pipeline,
            materialiser: M,
            index: usize,
        ) -> Result<JoinHandle<()>, StoreError> {
            let (store, log) = (store.clone(), pipeline.log.clone());
            let (progress, stop) = (pipeline.progress.clone(), pipeline.stop.clone());
            let materialiser = Arc::new(materialiser);
            std::thread::Builder::new()
                .name(format!("tracklog-materialise-{}", MATERIALISERS[index].0))
                .spawn(move || {
                    pipeline::run_materialiser(materialiser, index, store, log, progress, stop)
                })
                .map_err(|e| StoreError::Internal(format!("cannot start a materialiser: {e}")))
        }
        let audit = audit::AuditRecords {
            threshold: self.inner.audit_split_threshold,
            codec: self.inner.audit_codec.clone(),
        };
        let threads = vec![
            start(self, pipeline, events::Interactions, 0)?,
            start(self, pipeline, audit, 1)?,
            start(self, pipeline, channel::Channel, 2)?,
        ];
        if let Ok(mut held) = pipeline.threads.lock() {
            held.extend(threads);
        }
        Ok(())
    }

    /// The log, when this process owns it.
    pub(crate) fn log(&self) -> Result<&Log<Pending>, StoreError> {
        self.inner
            .pipeline
            .as_ref()
            .map(|p| &p.log)
            .ok_or_else(|| {
                StoreError::Unavailable(
                    "another Tracklog process owns this data directory's log; send items through its API".into(),
                )
            })
    }

    /// The durable watermark of the materialiser that applies `kind`.
    pub(crate) fn materialised(&self, kind: Kind) -> u64 {
        self.inner.pipeline.as_ref().map_or(0, |p| {
            *p.progress.watermarks[pipeline::materialiser_of(kind)].borrow()
        })
    }

    /// Waits until every write of `kind` for `org` acknowledged before this
    /// call is in the tables, so that a read sees its own writes.
    pub(crate) async fn settle(
        &self,
        kind: Kind,
        org: tracklog_domain::ids::OrgId,
    ) -> Result<(), StoreError> {
        let Some(pipeline) = &self.inner.pipeline else {
            return Ok(());
        };
        // Every kind its materialiser applies: those are applied in log
        // order, so a read of one must wait for the frames of the others.
        let index = pipeline::materialiser_of(kind);
        let target = MATERIALISERS[index]
            .1
            .iter()
            .map(|kind| pipeline.log.latest(*kind, org.0))
            .max()
            .unwrap_or(0);
        let mut watermark = pipeline.progress.watermarks[index].subscribe();
        let reached = tokio::time::timeout(
            pipeline.settle_timeout,
            watermark.wait_for(|w| *w >= target),
        )
        .await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Unavailable("the store is closing".into())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the {} materialiser is more than {} s behind; retry shortly",
                MATERIALISERS[index].0,
                pipeline.settle_timeout.as_secs()
            ))),
        }
    }

    /// Waits, after a restart, until every materialiser has applied the
    /// frames recovered from the log. Admission knows the keys and channel
    /// records of the frames it admitted itself, not of those it found at
    /// open: until they are in the tables, where the probe before each
    /// append sees them, a retry of a recovered item would be taken for
    /// new. Past the read bound it fails with [`StoreError::Unavailable`]
    /// (503, to be retried).
    pub(crate) async fn await_recovery(&self) -> Result<(), StoreError> {
        let Some(pipeline) = &self.inner.pipeline else {
            return Ok(());
        };
        let recovered = pipeline.log.recovered();
        if recovered == 0 {
            return Ok(());
        }
        for (index, (name, _)) in MATERIALISERS.iter().enumerate() {
            let mut watermark = pipeline.progress.watermarks[index].subscribe();
            let reached = tokio::time::timeout(
                pipeline.settle_timeout,
                watermark.wait_for(|w| *w >= recovered),
            )
            .await;
            match reached {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Err(StoreError::Unavailable("the store is closing".into())),
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "the {name} materialiser is still applying the log recovered at start; retry shortly"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Each materialiser's name with how many items and seconds it is
    /// behind the log.
    pub fn materialiser_lag(&self) -> Vec<(&'static str, usize, f64)> {
        let Some(pipeline) = &self.inner.pipeline else {
            return Vec::new();
        };
        (0..MATERIALISERS.len())
            .map(|index| {
                let (items, seconds) = pipeline.progress.lag(index, &pipeline.log);
                (MATERIALISERS[index].0, items, seconds)
            })
            .collect()
    }

    /// Bytes the log holds on disk (0 when another process owns it).
    pub fn log_bytes(&self) -> u64 {
        self.inner.pipeline.as_ref().map_or(0, |p| p.log.bytes())
    }

    /// Queues `work` for the writer from a thread outside the async
    /// runtime, and blocks until its group is durable. Used by the
    /// materialisers: their items are already counted by the log, so they
    /// do not take from the queue's budget.
    pub(crate) fn write_blocking<T, F>(&self, items: usize, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteContext<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = ClosureJob {
            items: items.max(1),
            isolated: false,
            work,
            reply,
        };
        self.inner
            .jobs
            .send(Message::Job(Box::new(job)))
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        answer
            .blocking_recv()
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the writer stopped".into())))
    }

    /// Opens the store and wraps it as the full set of [`Stores`].
    pub fn open_stores(data_dir: &Path, options: SqliteOptions) -> Result<Stores, StoreError> {
        let metrics = StoreMetrics::default();
        let store = Self::open(data_dir, options, metrics.clone())?;
        Ok(Stores::single(store, metrics))
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` on a pooled read connection, off the async threads.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.inner.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .get()
                .map_err(|e| StoreError::Unavailable(format!("no read connection: {e}")))?;
            work(&conn)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }

    /// Queues `work` for the writer and waits until its group is durable.
    /// `items` counts against the queue bound. The work runs in its own
    /// savepoint: if it fails, only it is undone.
    pub(crate) async fn write<T, F>(&self, items: usize, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteContext<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(items, true, work).await
    }

    async fn enqueue<T, F>(&self, items: usize, isolated: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteContext<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = &self.inner;
        let items = items.clamp(1, inner.queue_max_items);
        let permit = inner
            .budget
            .clone()
            .try_acquire_many_owned(items as u32)
            .map_err(|_| StoreError::Overloaded)?;
        self.update_queue_depth();
        let (reply, answer) = oneshot::channel();
        let job = ClosureJob {
            items,
            isolated,
            work,
            reply,
        };
        let sent = inner.jobs.try_send(Message::Job(Box::new(job)));
        let result = match sent {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("the writer stopped".into()))),
            Err(TrySendError::Full(_)) => Err(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => {
                Err(StoreError::Unavailable("the store is closed".into()))
            }
        };
        drop(permit);
        self.update_queue_depth();
        result
    }

    fn update_queue_depth(&self) {
        let waiting = self.inner.queue_max_items - self.inner.budget.available_permits();
        self.inner.metrics.queue_depth.set(waiting as i64);
    }
}

#[async_trait]
impl Lifecycle for SqliteStore {
    fn materialisers(&self) -> Vec<crate::MaterialiserStatus> {
        self.materialiser_lag()
            .into_iter()
            .map(|(name, lag_items, lag_seconds)| crate::MaterialiserStatus {
                name,
                lag_items,
                lag_seconds,
            })
            .collect()
    }

    fn log_bytes(&self) -> u64 {
        SqliteStore::log_bytes(self)
    }

    fn fault(&self) -> Option<crate::fault::Fault> {
        let log = self.inner.pipeline.as_ref().and_then(|p| p.log.fault());
        log.or_else(|| self.inner.fault.current())
    }

    fn faults_tripped(&self) -> u64 {
        let log = self
            .inner
            .pipeline
            .as_ref()
            .map_or(0, |p| p.log.faults_tripped());
        log + self.inner.fault.tripped()
    }

    async fn close(&self) {
        if let Some(pipeline) = &self.inner.pipeline {
            // No more appends; then the materialisers catch up and stop.
            let log = pipeline.log.clone();
            let _ = tokio::task::spawn_blocking(move || log.close()).await;
            pipeline.stop.store(true, Ordering::Release);
            let threads: Vec<JoinHandle<()>> = pipeline
                .threads
                .lock()
                .map(|mut t| t.drain(..).collect())
                .unwrap_or_default();
            let _ = tokio::task::spawn_blocking(move || {
                for thread in threads {
                    let _ = thread.join();
                }
            })
            .await;
        }
        let _ = self.inner.jobs.send(Message::Stop);
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        // The writer is gone, so the flusher's channel is closed: it answers
        // what it holds and exits.
        let syncer = self.inner.syncer.lock().ok().and_then(|mut s| s.take());
        if let Some(handle) = syncer {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(mut checkpointer) = inner.checkpointer.lock() {
                checkpointer.stop();
            }
        })
        .await;
    }
}

fn ensure_org_sync(conn: &Connection, name: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO orgs (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
        rusqlite::params![name, UtcMillis::now().as_millis()],
    )
    .map_err(sql_error)?;
    Ok(())
}

/// Maps an engine error to the storage boundary's error.
pub(crate) fn sql_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!("the database is locked: {error}"))
        }
        Some(ErrorCode::DiskFull) => StoreError::Unavailable(format!("the disk is full: {error}")),
        Some(ErrorCode::SystemIoFailure) => {
            StoreError::Unavailable(format!("the disk failed: {error}"))
        }
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen) => {
            StoreError::Unavailable(error.to_string())
        }
        // What the disk returned is not a database page: a storage fault
        // (a failing or stopped disk reads like this too), not a fault of
        // the request. `tracklog doctor` tells which it is.
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Unavailable(
            format!("the database cannot be read ({error}); `tracklog doctor` checks it"),
        ),
        _ => StoreError::Internal(error.to_string()),
    }
}

/// Whether an error is a UNIQUE or PRIMARY KEY violation.
pub(crate) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// The org name, as stored, for an org that must exist.
pub(crate) fn org_name_of(name: String) -> Result<OrgName, StoreError> {
    OrgName::parse(name).map_err(|e| StoreError::Internal(format!("stored org name: {e}")))
}
