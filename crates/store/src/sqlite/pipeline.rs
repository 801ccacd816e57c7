//! The log in front of the SQLite backend: what the log thread admits, the
//! materialisers that build the tables behind it, and the wait that gives a
//! read its own writes.
//!
//! - **Admission** ([`Pending`]) runs on the log thread, in log order. It
//!   knows every key still in the log and not yet materialised, so that a
//!   retry is a duplicate whether its first copy is in the tables (found by
//!   a probe before the append) or still in the log.
//! - **Materialisers** each read the whole log from their own watermark on
//!   a thread of their own, decode the frames of their kinds, and apply
//!   thousands of items in one job on the SQLite writer, which also moves
//!   their watermark in `materialised`: a crash replays at most the batch
//!   that was in flight, and every apply is idempotent. Once that job is
//!   durable the log may delete the segments every materialiser has passed.
//! - **Reads** wait until the materialiser of their kind has passed the
//!   newest frame of their org that was durable when they started
//!   ([`SqliteStore::settle`]), up to a bound, and answer 503 past it.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use siphasher::sip128::{Hasher128, SipHasher13};
use tokio::sync::watch;

use super::writer::WriteContext;
use super::{SqliteStore, sql_error};
use crate::StoreError;
use crate::log::{Admission, Frame, Kind, Log};

/// Each materialiser: its name (its row in `materialised`) and the kinds
/// of frames it applies. The channel materialiser takes both of its kinds,
/// so that inits and events are applied in the order they were accepted.
pub(crate) const MATERIALISERS: [(&str, &[Kind]); 3] = [
    ("interactions", &[Kind::Interactions]),
    ("audit", &[Kind::Audit]),
    ("channel", &[Kind::ChannelInit, Kind::ChannelEvents]),
];

/// The materialiser that applies `kind`.
pub(crate) fn materialiser_of(kind: Kind) -> usize {
    MATERIALISERS
        .iter()
        .position(|(_, kinds)| kinds.contains(&kind))
        .expect("every kind has a materialiser")
}

/// A 128-bit keyed digest of an idempotency key, so that the keys still in
/// the log take 16 bytes each whatever their length. Collisions are out of
/// reach (2⁻⁶⁴ at four billion keys).
#[derive(Clone, Copy)]
pub(crate) struct KeyHasher {
    k0: u64,
    k1: u64,
}

impl KeyHasher {
    fn random() -> Self {
        let mut rng = rand::rng();
        Self {
            k0: rng.next_u64(),
            k1: rng.next_u64(),
        }
    }

    pub fn digest(&self, parts: &[&[u8]]) -> u128 {
        let mut hasher = SipHasher13::new_with_keys(self.k0, self.k1);
        for part in parts {
            hasher.write_usize(part.len());
            hasher.write(part);
        }
        hasher.finish128().as_u128()
    }
}

/// What the log thread knows beyond the tables.
pub(crate) struct Pending {
    pub hasher: KeyHasher,
    /// Keys of items in frames not yet passed by every consumer, with
    /// their frame.
    keys: [HashMap<u128, u64>; 4],
    /// Keys of frames up to here were dropped: a probe of the tables made
    /// before they were applied may have missed them.
    pub floor: u64,
    /// A connection for probing the tables again, when a request's probe
    /// is older than `floor`.
    pub probe: Connection,
    /// The channel records of frames not yet applied, as admission merged
    /// them.
    pub channel: super::channel::ChannelState,
}

fn slot(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).expect("a kind")
}

impl Pending {
    pub fn new(probe: Connection) -> Self {
        Self {
            hasher: KeyHasher::random(),
            keys: Default::default(),
            floor: 0,
            probe,
            channel: Default::default(),
        }
    }

    /// Whether `key` is in the log already.
    pub fn contains(&self, kind: Kind, key: u128) -> bool {
        self.keys[slot(kind)].contains_key(&key)
    }

    /// Notes `key` as written in frame `seq`.
    pub fn insert(&mut self, kind: Kind, key: u128, seq: u64) {
        self.keys[slot(kind)].insert(key, seq);
    }
}

impl Admission for Pending {
    fn rollback(&mut self, durable: u64) {
        for keys in &mut self.keys {
            keys.retain(|_, seq| *seq <= durable);
        }
        self.channel.rollback(durable);
    }

    fn passed(&mut self, upto: u64) {
        if upto <= self.floor {
            return;
        }
        for keys in &mut self.keys {
            keys.retain(|_, seq| *seq > upto);
        }
        self.channel.passed(upto);
        self.floor = upto;
    }
}

/// The frames one materialiser applies in one job, decoded.
pub(crate) struct Batch {
    pub frames: Vec<Frame>,
    pub items: usize,
    /// The newest frame read (of any kind): the watermark once applied.
    pub upto: u64,
}

/// What one materialiser does with its frames.
pub(crate) trait Materialise: Send + Sync + 'static {
    /// One decoded item, with its org.
    type Item: Send + 'static;
    /// The items of one frame, or why it cannot be read. Runs on the
    /// materialiser's thread; a frame that fails is kept in `dead_letters`
    /// instead of being applied.
    fn decode(&self, frame: &Frame) -> Result<Vec<Self::Item>, String>;
    /// Applies a batch, in log order, inside the writer's transaction. It
    /// must be idempotent: after a crash the same items come again.
    fn apply(&self, ctx: &mut WriteContext<'_>, items: Vec<Self::Item>) -> Result<(), StoreError>;
}

/// Each materialiser's durable watermark.
pub(crate) struct Progress {
    pub watermarks: Vec<watch::Sender<u64>>,
}

impl Progress {
    pub fn new(start: &[u64]) -> Self {
        Self {
            watermarks: start.iter().map(|w| watch::Sender::new(*w)).collect(),
        }
    }

    /// Items and seconds materialiser `index` is behind the log.
    pub fn lag(&self, index: usize, log: &Log<Pending>) -> (usize, f64) {
        log.lag(*self.watermarks[index].borrow(), MATERIALISERS[index].1)
    }
}

/// Reads each materialiser's watermark. One that has never run starts
/// where the slowest of the others is: the frames before that were
/// written when no materialiser of its kinds existed, so none is of its
/// kinds, and the log has deleted them.
pub(crate) fn load_watermarks(conn: &Connection) -> Result<Vec<u64>, StoreError> {
    let found: Vec<Option<u64>> = MATERIALISERS
        .iter()
        .map(|(name, _)| watermark_of(conn, name))
        .collect::<Result<_, StoreError>>()?;
    let slowest = found.iter().flatten().min().copied().unwrap_or(0);
    Ok(found.into_iter().map(|f| f.unwrap_or(slowest)).collect())
}

/// One materialiser's stored watermark, if it has one.
fn watermark_of(conn: &Connection, name: &str) -> Result<Option<u64>, StoreError> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT frame FROM materialised WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    Ok(found.map(|f| f as u64))
}

/// The watermark as committed, read beside the writer.
fn stored_watermark(store: &SqliteStore, name: &str) -> Option<u64> {
    let conn = store.inner.readers.get().ok()?;
    watermark_of(&conn, name).ok().flatten()
}

fn save_watermark(conn: &Connection, name: &str, upto: u64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO materialised (name, frame) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET frame = max(frame, ?2)",
    )
    .and_then(|mut s| s.execute(params![name, upto as i64]))
    .map_err(sql_error)?;
    Ok(())
}

/// Keeps a frame the materialiser cannot read (a bug, or a layout from
/// another version) instead of blocking every frame behind it.
fn dead_letter(
    conn: &Connection,
    name: &str,
    frame: &Frame,
    error: &str,
) -> Result<(), StoreError> {
    tracing::error!(materialiser = name, frame = frame.seq, %error, "a log frame cannot be applied; it is kept in dead_letters");
    let mut bytes = Vec::new();
    crate::log::frame::encode(frame.seq, frame.kind, frame.org, &frame.items, &mut bytes);
    conn.execute(
        "INSERT INTO dead_letters (materialiser, frame, error, bytes, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            name,
            frame.seq as i64,
            error,
            bytes,
            tracklog_domain::time::UtcMillis::now().as_millis()
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

/// The most items one materialiser job applies.
const BATCH_ITEMS: usize = 50_000;

/// Runs one materialiser until `stop` is set and it has caught up.
pub(crate) fn run_materialiser<M: Materialise>(
    materialiser: Arc<M>,
    index: usize,
    store: SqliteStore,
    log: Log<Pending>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) {
    let (name, kinds) = MATERIALISERS[index];
    let mut watermark = *progress.watermarks[index].borrow();
    let mut reader = log.reader(watermark);
    let mut backoff = Duration::from_millis(10);
    loop {
        let batch = match read_batch(&mut reader, kinds) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(materialiser = name, %error, "cannot read the log");
                if stop.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                reader = log.reader(watermark);
                continue;
            }
        };
        let Some(batch) = batch else {
            if stop.load(Ordering::Acquire) {
                break;
            }
            log.wait_past(watermark, Duration::from_millis(50));
            continue;
        };
        let upto = batch.upto;
        let mut items = Vec::with_capacity(batch.items);
        let mut unreadable = Vec::new();
        for frame in batch.frames {
            match materialiser.decode(&frame) {
                Ok(decoded) => items.extend(decoded),
                Err(error) => unreadable.push((frame, error)),
            }
        }
        let apply = materialiser.clone();
        let outcome = store.write_blocking(batch.items, move |ctx| {
            for (frame, error) in &unreadable {
                dead_letter(ctx.conn, name, frame, error)?;
            }
            if !items.is_empty() {
                apply.apply(ctx, items)?;
            }
            save_watermark(ctx.conn, name, upto)
        });
        match outcome {
            Ok(()) => {
                watermark = upto;
                progress.watermarks[index].send_replace(upto);
                log.release(name, upto);
                backoff = Duration::from_millis(10);
            }
            Err(error) => {
                // The writer is overloaded or the disk failed: the batch is
                // read again and applied again once it can be. A flush that
                // failed after COMMIT leaves the batch applied (and made
                // durable by the recovery checkpoint): the watermark it
                // stored says so, and what it covers is not applied twice.
                // Its segments stay until a later batch is durable.
                tracing::warn!(materialiser = name, %error, "could not apply a batch; retrying");
                if let Some(stored) = stored_watermark(&store, name).filter(|s| *s > watermark) {
                    watermark = stored;
                    progress.watermarks[index].send_replace(stored);
                }
                if stop.load(Ordering::Acquire) && backoff >= Duration::from_secs(1) {
                    // Closing, and the store cannot take the batch: it
                    // stays in the log for the next start.
                    break;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                reader = log.reader(watermark);
            }
        }
    }
    tracing::info!(materialiser = name, watermark, "materialiser stopped");
}

/// Up to [`BATCH_ITEMS`] items of `kinds` from the reader, or `None` when
/// it is at the head.
fn read_batch(
    reader: &mut crate::log::LogReader,
    kinds: &[Kind],
) -> Result<Option<Batch>, StoreError> {
    let start = reader.position();
    let mut batch = Batch {
        frames: Vec::new(),
        items: 0,
        upto: start - 1,
    };
    while batch.items < BATCH_ITEMS {
        let Some(frame) = reader.next_frame_of(Some(kinds))? else {
            break;
        };
        batch.upto = frame.seq;
        if kinds.contains(&frame.kind) {
            batch.items += frame.items.len();
            batch.frames.push(frame);
        }
    }
    Ok((reader.position() > start).then_some(batch))
}
