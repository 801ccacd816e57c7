//! Durability off the writer's critical path.
//!
//! With `durability = fsync`, the writer commits with `synchronous=NORMAL` —
//! COMMIT writes the group's WAL frames but does not wait for the disk — and
//! hands the group's replies to this thread, which `fdatasync`s the WAL file
//! and only then answers. While the disk flushes group N, the writer already
//! inserts group N+1, and one flush covers every group that committed in the
//! meantime. No reply is sent before the frames it depends on are on stable
//! storage, so a power cut after a 2xx loses nothing.
//!
//! A failed flush trips the database's [`FaultLatch`]: this group and every
//! later one are answered with the fault, even if a later flush succeeds,
//! until the writer has re-established the database (see
//! [`crate::fault`]).
//!
//! On Linux, fsync on any descriptor of a file flushes all of that file's
//! dirty pages, so this thread's own read-only descriptor suffices. Checkpoints
//! keep the WAL file in place (it is reset, not replaced), and SQLite itself
//! syncs the WAL before copying frames out of it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::writer::Delivery;
use crate::fault::FaultLatch;
use crate::{StoreError, StoreMetrics};

/// A committed group waiting for its flush.
pub(crate) struct Committed {
    pub deliveries: Vec<Delivery>,
    pub started: Instant,
    pub items: usize,
}

/// The WAL file of a database.
pub(crate) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The flushing thread's body: returns once the writer has gone and every
/// committed group is answered.
pub(crate) fn run_syncer(
    wal: PathBuf,
    groups: Receiver<Committed>,
    metrics: StoreMetrics,
    fault: Arc<FaultLatch>,
) {
    let mut file: Option<File> = None;
    while let Ok(first) = groups.recv() {
        let mut pending = vec![first];
        pending.extend(groups.try_iter());
        let _span = tracing::debug_span!("wal_sync", groups = pending.len()).entered();
        let flushed = match fault.refusal() {
            Some(refusal) => Err(refusal),
            None => flush(&mut file, &wal).inspect_err(|error| {
                tracing::error!(%error, "fsync of the WAL failed; the writes it covered are reported as failed");
                fault.trip(crate::fault::cause_of(error));
                // After recovery the WAL is opened again.
                file = None;
            }),
        };
        for group in pending {
            metrics
                .commit_seconds
                .observe(group.started.elapsed().as_secs_f64());
            metrics.commit_items.observe(group.items as f64);
            for deliver in group.deliveries {
                deliver(flushed.clone());
            }
        }
    }
}

fn flush(file: &mut Option<File>, wal: &Path) -> Result<(), StoreError> {
    let unavailable =
        |e: std::io::Error| StoreError::Unavailable(format!("fsync {}: {e}", wal.display()));
    if file.is_none() {
        *file = Some(File::open(wal).map_err(unavailable)?);
    }
    file.as_ref()
        .expect("opened above")
        .sync_data()
        .map_err(unavailable)
}
