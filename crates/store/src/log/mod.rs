//! The write-ahead log every accepted item goes to first.
//!
//! An append is acknowledged once its frame is written and fdatasynced
//! (with [`Durability::Fsync`]): nothing else stands between a request and
//! its reply. Everything derived from the items (indexed rows, stitching,
//! search columns, free text, session facts, rollups) is built behind the
//! log by materialisers, each reading it from its own watermark, and a
//! cluster node ships the same log to ClickHouse.
//!
//! One thread ([`writer`]) owns the newest segment ([`segment`]). It takes every append
//! waiting, runs each one's *admission* in order against the state `A` that
//! the backend keeps on this thread (the keys still in the log, for
//! duplicates; each org's chain head, for the activity log), encodes the
//! admitted items as one frame per append ([`frame`]), writes them with one
//! system call, fdatasyncs once, and then answers them all: one fsync
//! covers every append of the group, and appends arriving meanwhile form the
//! next group.
//!
//! Written by hand rather than taken from a crate: the log is a few hundred
//! lines whose every byte and fsync the durability guarantee rests on, and
//! its admission step (duplicates and the audit chain decided in log
//! order) is not something a generic WAL crate offers.

pub mod frame;
pub mod item;
pub mod segment;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::{Semaphore, oneshot, watch};

pub use frame::{Frame, Kind};
use segment::{SegmentCursor, SegmentMeta};
use writer::Writer;

use crate::fault::{Fault, FaultLatch};
use crate::{Durability, StoreError};

/// Tuning of the log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub durability: Durability,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// A group closes at this many bytes of frames...
    pub group_max_bytes: usize,
    /// ...or this long after its first append arrived.
    pub linger: Duration,
    /// Items that may wait for the log thread; past this, appends fail with
    /// [`StoreError::Overloaded`].
    pub queue_max_items: usize,
    /// Bytes the log may hold before appends fail with
    /// [`StoreError::Overloaded`]: the backlog the materialisers (or, in a
    /// cluster, the shipper) have not passed yet.
    pub max_bytes: u64,
    /// Appends are refused while the filesystem holding the log has less
    /// than this free: the rest is kept for the materialisers to apply
    /// what was acknowledged, so that reads go on being served.
    pub min_free_bytes: u64,
    /// Where the log reports its fdatasync times and waiting items.
    pub metrics: Option<LogMetrics>,
}

/// The log's metrics, owned by whoever registers them.
#[derive(Debug, Clone)]
pub struct LogMetrics {
    pub sync_seconds: prometheus_client::metrics::histogram::Histogram,
    pub queue_depth: prometheus_client::metrics::gauge::Gauge,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            segment_bytes: 64 << 20,
            group_max_bytes: 16 << 20,
            linger: Duration::from_micros(200),
            queue_max_items: 400_000,
            max_bytes: 2 << 30,
            min_free_bytes: 256 << 20,
            metrics: None,
        }
    }
}

/// The state the log thread keeps for the backend and consults, in log
/// order, as each append is admitted.
pub trait Admission: Send + 'static {
    /// The frames after `durable` could not be written: undo what their
    /// admission did, so that the state is as if they were never offered.
    fn rollback(&mut self, durable: u64);
    /// Every consumer has passed `upto`: what admission keeps about those
    /// frames may go.
    fn passed(&mut self, upto: u64);
}

/// What admission decided for one append: the items to write, and what to
/// tell the caller once they are durable.
pub struct Admitted<T> {
    pub items: Vec<Vec<u8>>,
    pub answer: T,
}

/// Admission on the log thread: `None` when it refused the append (and has
/// already answered it).
type AdmitFn<A> = Box<dyn FnOnce(&mut A, u64) -> Option<Admitted<Box<dyn Reply>>> + Send>;

/// Delivers an append's answer once its group is durable (or failed).
pub trait Reply: Send {
    fn deliver(self: Box<Self>, result: Result<u64, StoreError>);
}

struct Append<A> {
    kind: Kind,
    org: i64,
    items: usize,
    admit: AdmitFn<A>,
}

enum Message<A> {
    Append(Append<A>),
    /// A consumer moved on: segments may go.
    Tidy,
    Stop,
}

/// The durable end of the log, as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tail {
    /// The newest durable frame (0 before the first).
    head: u64,
    /// Every segment, oldest first, with its durable length.
    segments: Vec<SegmentMeta>,
}

struct Shared {
    tail: Mutex<Tail>,
    /// Signalled whenever the durable head moves.
    moved: Condvar,
    /// (frame, when durable, kind, items) of the frames some consumer has
    /// not passed: what the lag figures are made of.
    recent: Mutex<VecDeque<(u64, Instant, Kind, usize)>>,
    heads: watch::Sender<u64>,
    /// Each consumer's durable position: segments before the slowest go.
    consumers: Mutex<HashMap<String, u64>>,
    /// The newest frame of each (kind, org), for reads that must see their
    /// org's writes.
    latest: Mutex<HashMap<(Kind, i64), u64>>,
    /// The head at open when a consumer had not passed it: the frames
    /// before it are recovered, not appended, so which org and kind each
    /// holds is not known, and a read of any of them waits for it.
    recovered: u64,
    bytes: std::sync::atomic::AtomicU64,
    /// Set when a write or sync of the newest segment failed, until the
    /// segment is re-established ([`crate::fault`]).
    fault: FaultLatch,
    /// Free bytes on the log's filesystem, and when they were last read.
    space: Mutex<(Option<Instant>, u64)>,
}

/// The log. Cheap to clone; every clone appends through the one thread.
pub struct Log<A: Admission> {
    dir: PathBuf,
    jobs: Sender<Message<A>>,
    budget: Arc<Semaphore>,
    queue_max_items: usize,
    max_bytes: u64,
    min_free_bytes: u64,
    metrics: Option<LogMetrics>,
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl<A: Admission> Clone for Log<A> {
    fn clone(&self) -> Self {
        Self {
            dir: self.dir.clone(),
            jobs: self.jobs.clone(),
            budget: self.budget.clone(),
            queue_max_items: self.queue_max_items,
            max_bytes: self.max_bytes,
            min_free_bytes: self.min_free_bytes,
            metrics: self.metrics.clone(),
            shared: self.shared.clone(),
            thread: self.thread.clone(),
        }
    }
}

fn io(what: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("log: {what} {}: {error}", path.display()))
}

impl<A: Admission> Log<A> {
    /// Opens (creating if needed) the log in `dir`, recovering from a
    /// crash, and starts its thread with `state`. `consumers` are every
    /// reader that must pass a frame before its segment may go, with the
    /// positions they have durably reached.
    pub fn open(
        dir: &Path,
        options: LogOptions,
        consumers: &[(&str, u64)],
        state: A,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        let mut segments = segment::recover(dir)?;
        if segments.is_empty() {
            // A new log starts after the slowest consumer, so that a log
            // removed by hand does not reuse positions already applied.
            let start = consumers.iter().map(|(_, seq)| *seq).max().unwrap_or(0) + 1;
            let (file, meta) = segment::create(dir, start)?;
            drop(file);
            segments.push(meta);
        }
        let newest = segments.last().expect("one segment").clone();
        let head = newest.last_seq;
        if let Some((name, seq)) = consumers.iter().find(|(_, seq)| *seq > head) {
            return Err(StoreError::Internal(format!(
                "log: {name} has applied frame {seq}, but the log ends at {head}: the log directory was replaced"
            )));
        }
        let file = segment::open_for_append(&newest)?;
        let bytes: u64 = segments.iter().map(|s| s.len).sum();
        let shared = Arc::new(Shared {
            tail: Mutex::new(Tail {
                head,
                segments: segments.clone(),
            }),
            moved: Condvar::new(),
            // Frames a consumer has not passed, written before this open:
            // their age counts from now, their items are unknown.
            recent: Mutex::new(if consumers.iter().any(|(_, seq)| *seq < head) {
                let now = Instant::now();
                Kind::ALL.iter().map(|kind| (head, now, *kind, 0)).collect()
            } else {
                VecDeque::new()
            }),
            heads: watch::Sender::new(head),
            consumers: Mutex::new(
                consumers
                    .iter()
                    .map(|(name, seq)| ((*name).to_owned(), *seq))
                    .collect(),
            ),
            latest: Mutex::new(HashMap::new()),
            recovered: if consumers.iter().any(|(_, seq)| *seq < head) {
                head
            } else {
                0
            },
            bytes: std::sync::atomic::AtomicU64::new(bytes),
            fault: FaultLatch::default(),
            space: Mutex::new((None, u64::MAX)),
        });
        let (jobs, receiver) = crossbeam_channel::bounded(65_536);
        let writer = Writer {
            dir: dir.to_owned(),
            file,
            options: options.clone(),
            next_seq: head + 1,
            shared: shared.clone(),
            state,
            buffer: Vec::with_capacity(1 << 20),
        };
        let thread = std::thread::Builder::new()
            .name("tracklog-log".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| StoreError::Internal(format!("cannot start the log thread: {e}")))?;
        Ok(Self {
            dir: dir.to_owned(),
            jobs,
            budget: Arc::new(Semaphore::new(options.queue_max_items)),
            queue_max_items: options.queue_max_items,
            max_bytes: options.max_bytes,
            min_free_bytes: options.min_free_bytes,
            metrics: options.metrics.clone(),
            shared,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Offers `items` items of `kind` for `org`: `admit` runs on the log
    /// thread, in log order, with the frame sequence the append will get,
    /// and decides what is written. The answer arrives once the frame is
    /// durable, with that sequence.
    pub async fn append<T, F>(
        &self,
        kind: Kind,
        org: i64,
        items: usize,
        admit: F,
    ) -> Result<(T, u64), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut A, u64) -> Result<Admitted<T>, StoreError> + Send + 'static,
    {
        if let Some(refusal) = self.shared.fault.refusal() {
            return Err(refusal);
        }
        if let Some(refusal) = self.space_refusal() {
            return Err(refusal);
        }
        if self.shared.bytes.load(std::sync::atomic::Ordering::Relaxed) > self.max_bytes {
            return Err(StoreError::Overloaded);
        }
        let items = items.clamp(1, self.queue_max_items);
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(items as u32)
            .map_err(|_| StoreError::Overloaded)?;
        self.report_queue_depth();
        let (tx, rx) = oneshot::channel::<Result<(T, u64), StoreError>>();
        struct OneShot<T> {
            answer: T,
            tx: oneshot::Sender<Result<(T, u64), StoreError>>,
        }
        impl<T: Send> Reply for OneShot<T> {
            fn deliver(self: Box<Self>, result: Result<u64, StoreError>) {
                let OneShot { answer, tx } = *self;
                let _ = tx.send(result.map(|seq| (answer, seq)));
            }
        }
        let admit: AdmitFn<A> = Box::new(move |state, seq| match admit(state, seq) {
            Ok(admitted) => Some(Admitted {
                items: admitted.items,
                answer: Box::new(OneShot {
                    answer: admitted.answer,
                    tx,
                }) as Box<dyn Reply>,
            }),
            Err(error) => {
                let _ = tx.send(Err(error));
                None
            }
        });
        let sent = self.jobs.try_send(Message::Append(Append {
            kind,
            org,
            items,
            admit,
        }));
        let result = match sent {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("the log stopped".into()))),
            Err(TrySendError::Full(_)) => Err(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => {
                Err(StoreError::Unavailable("the log is closed".into()))
            }
        };
        drop(permit);
        self.report_queue_depth();
        result
    }

    fn report_queue_depth(&self) {
        if let Some(metrics) = &self.metrics {
            let waiting = self.queue_max_items - self.budget.available_permits();
            metrics.queue_depth.set(waiting as i64);
        }
    }

    /// What stops appends: a write or sync that failed, until the segment
    /// is re-established, or a filesystem with less free space than
    /// [`LogOptions::min_free_bytes`].
    pub fn fault(&self) -> Option<Fault> {
        self.shared.fault.current().or_else(|| {
            self.space_refusal().map(|refusal| Fault {
                cause: crate::fault::cause_of(&refusal),
                since: std::time::SystemTime::now(),
            })
        })
    }

    /// The refusal while the log's filesystem is short of space. Free
    /// space is read at most every 100 ms.
    fn space_refusal(&self) -> Option<StoreError> {
        if self.min_free_bytes == 0 {
            return None;
        }
        let free = {
            let mut space = self.shared.space.lock().ok()?;
            let now = Instant::now();
            if space
                .0
                .is_none_or(|at| now.duration_since(at) >= Duration::from_millis(100))
            {
                if let Ok(stat) = rustix::fs::statvfs(&self.dir) {
                    space.1 = stat.f_bavail.saturating_mul(stat.f_frsize);
                }
                space.0 = Some(now);
            }
            space.1
        };
        (free < self.min_free_bytes).then(|| {
            StoreError::Unavailable(format!(
                "the disk is full: {} has {free} bytes free, under the {} kept for applying \
                 what was acknowledged (ingest.log_min_free_bytes); writes resume when space is freed",
                self.dir.display(),
                self.min_free_bytes
            ))
        })
    }

    /// Faults since start.
    pub fn faults_tripped(&self) -> u64 {
        self.shared.fault.tripped()
    }

    /// The newest durable frame.
    pub fn head(&self) -> u64 {
        *self.shared.heads.borrow()
    }

    /// The newest durable frame of `kind` for `org`: what a read of that
    /// org's data must wait for. After a restart that is at least the last
    /// frame recovered, until the consumers pass it, so that what was
    /// acknowledged before a crash is read after it.
    pub fn latest(&self, kind: Kind, org: i64) -> u64 {
        self.shared
            .latest
            .lock()
            .map(|m| m.get(&(kind, org)).copied().unwrap_or(0))
            .unwrap_or(0)
            .max(self.shared.recovered)
    }

    /// The newest frame recovered at open that some consumer had not
    /// passed then (0 when none): admission knows nothing of the frames up
    /// to it.
    pub fn recovered(&self) -> u64 {
        self.shared.recovered
    }

    /// Wakes on every new durable head.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.heads.subscribe()
    }

    /// Blocks until the durable head passes `after`, or `timeout` passes.
    pub fn wait_past(&self, after: u64, timeout: Duration) {
        let Ok(tail) = self.shared.tail.lock() else {
            return;
        };
        let _ = self
            .shared
            .moved
            .wait_timeout_while(tail, timeout, |t| t.head <= after);
    }

    /// How far a consumer at `watermark` that reads `kinds` is behind:
    /// the items in the durable frames of those kinds after it, and the age
    /// of the oldest of them in seconds. Frames written before the log was
    /// opened count from when it opened.
    pub fn lag(&self, watermark: u64, kinds: &[Kind]) -> (usize, f64) {
        let Ok(recent) = self.shared.recent.lock() else {
            return (0, 0.0);
        };
        let mut items = 0;
        let mut oldest: Option<Instant> = None;
        for (seq, at, kind, count) in recent.iter().rev() {
            if *seq <= watermark {
                break;
            }
            if kinds.contains(kind) {
                items += count;
                oldest = Some(*at);
            }
        }
        (items, oldest.map_or(0.0, |o| o.elapsed().as_secs_f64()))
    }

    /// Bytes the log holds on disk.
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A reader of the durable frames after `after`.
    pub fn reader(&self, after: u64) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
            next: after + 1,
            cursor: None,
        }
    }

    /// `consumer` has durably applied every frame up to `upto`; segments
    /// every consumer has passed are deleted by the log thread.
    pub fn release(&self, consumer: &str, upto: u64) {
        if let Ok(mut consumers) = self.shared.consumers.lock()
            && let Some(seq) = consumers.get_mut(consumer)
        {
            *seq = (*seq).max(upto);
        }
        let _ = self.jobs.try_send(Message::Tidy);
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the thread once every append already offered is answered.
    pub fn close(&self) {
        let _ = self.jobs.send(Message::Stop);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// Reads durable frames in order.
pub struct LogReader {
    shared: Arc<Shared>,
    next: u64,
    cursor: Option<(SegmentMeta, SegmentCursor)>,
}

impl LogReader {
    /// The sequence of the next frame this reader returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next durable frame, or `None` when the reader is at the head.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, StoreError> {
        self.next_frame_of(None)
    }

    /// The next durable frame, or `None` at the head; a frame of a kind
    /// not in `wanted` (when given) comes without its items, read past
    /// rather than decoded.
    pub fn next_frame_of(&mut self, wanted: Option<&[Kind]>) -> Result<Option<Frame>, StoreError> {
        let tail = self
            .shared
            .tail
            .lock()
            .map_err(|_| StoreError::Internal("log: poisoned".into()))?
            .clone();
        if self.next > tail.head {
            return Ok(None);
        }
        loop {
            let meta = tail
                .segments
                .iter()
                .rev()
                .find(|s| s.first_seq <= self.next)
                .ok_or_else(|| {
                    StoreError::Internal(format!(
                        "log: frame {} is in no segment (deleted before it was applied)",
                        self.next
                    ))
                })?
                .clone();
            let same = self
                .cursor
                .as_ref()
                .is_some_and(|(open, _)| open.path == meta.path);
            if !same {
                let cursor = SegmentCursor::open(&meta, segment::MAGIC.len() as u64)?;
                self.cursor = Some((meta.clone(), cursor));
            }
            let (_, cursor) = self.cursor.as_mut().expect("just opened");
            match cursor.next_of(meta.len, wanted)? {
                // Reading forward to the reader's position.
                Some(frame) if frame.seq < self.next => {}
                Some(frame) if frame.seq == self.next => {
                    self.next += 1;
                    return Ok(Some(frame));
                }
                Some(frame) => {
                    return Err(StoreError::Internal(format!(
                        "log: frame {} found where {} was due",
                        frame.seq, self.next
                    )));
                }
                None if self.next <= meta.last_seq => {
                    return Err(StoreError::Internal(format!(
                        "log: segment {} ends before frame {}",
                        meta.path.display(),
                        self.next
                    )));
                }
                // This segment is done; the next frame starts the next one.
                None => {
                    self.cursor = None;
                    if !tail.segments.iter().any(|s| s.first_seq == self.next) {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
