//! The log thread: it takes every append waiting, admits each in order,
//! writes the group with one system call, fdatasyncs once and answers the
//! group; it also re-establishes the newest segment after a failed write
//! or sync, rotates segments and deletes the ones every consumer passed.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use super::segment::{self, SegmentMeta};
use super::{Admission, Append, Durability, Kind, LogOptions, Message, Reply, Shared, frame, io};
use crate::StoreError;

pub(super) struct Writer<A: Admission> {
    pub(super) dir: PathBuf,
    pub(super) file: File,
    pub(super) options: LogOptions,
    pub(super) next_seq: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) state: A,
    pub(super) buffer: Vec<u8>,
}

impl<A: Admission> Writer<A> {
    pub(super) fn run(mut self, jobs: Receiver<Message<A>>) {
        let mut stopping = false;
        while !stopping {
            let received = if self.shared.fault.is_set() {
                // Faulted: try to recover even when no append arrives.
                match jobs.recv_timeout(crate::fault::RECOVERY_INTERVAL) {
                    Ok(message) => Ok(message),
                    Err(RecvTimeoutError::Timeout) => {
                        self.recover_if_due();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                }
            } else {
                jobs.recv().map_err(|_| ())
            };
            let first = match received {
                Ok(Message::Append(append)) => append,
                Ok(Message::Tidy) => {
                    self.tidy();
                    continue;
                }
                Ok(Message::Stop) | Err(()) => break,
            };
            let (group, stop) = self.collect(first, &jobs);
            stopping = stop;
            self.commit(group);
            self.tidy();
        }
        // Answer what is still queued, then stop.
        let mut rest = Vec::new();
        while let Ok(message) = jobs.try_recv() {
            if let Message::Append(append) = message {
                rest.push(append);
            }
        }
        if !rest.is_empty() {
            self.commit(rest);
        }
        tracing::info!("log stopped");
    }

    fn collect(&self, first: Append<A>, jobs: &Receiver<Message<A>>) -> (Vec<Append<A>>, bool) {
        let deadline = Instant::now() + self.options.linger;
        let mut group = vec![first];
        let mut items = group[0].items;
        while items < self.options.queue_max_items
            && group.len() < 4096
            && items * 64 < self.options.group_max_bytes
        {
            let next = match jobs.try_recv() {
                Ok(message) => message,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => match jobs.recv_deadline(deadline) {
                    Ok(message) => message,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                },
            };
            match next {
                Message::Append(append) => {
                    items += append.items;
                    group.push(append);
                }
                Message::Tidy => {}
                Message::Stop => return (group, true),
            }
        }
        (group, false)
    }

    /// Admits, writes and syncs one group, then answers it.
    fn commit(&mut self, group: Vec<Append<A>>) {
        let durable = self.next_seq - 1;
        let mut replies: Vec<(Box<dyn Reply>, Option<u64>)> = Vec::with_capacity(group.len());
        let mut written: Vec<(Kind, i64, u64, usize)> = Vec::new();
        self.buffer.clear();
        for append in group {
            let seq = self.next_seq;
            match (append.admit)(&mut self.state, seq) {
                Some(admitted) if admitted.items.is_empty() => {
                    // Nothing new to write (every item a duplicate): the
                    // answer still waits for this group's sync, which makes
                    // the earlier frames it refers to durable too.
                    replies.push((admitted.answer, None));
                }
                Some(admitted) => {
                    frame::encode(
                        seq,
                        append.kind,
                        append.org,
                        &admitted.items,
                        &mut self.buffer,
                    );
                    self.next_seq += 1;
                    written.push((append.kind, append.org, seq, admitted.items.len()));
                    replies.push((admitted.answer, Some(seq)));
                }
                // Admission refused the append and answered it.
                None => {}
            }
        }
        if replies.is_empty() {
            return;
        }
        self.recover_if_due();
        let result = match self.shared.fault.refusal() {
            Some(refusal) => Err(refusal),
            None => self.write_and_sync(),
        };
        match result {
            Ok(()) => {
                let head = self.next_seq - 1;
                if let Ok(mut latest) = self.shared.latest.lock() {
                    for (kind, org, seq, _) in &written {
                        latest.insert((*kind, *org), *seq);
                    }
                }
                if let Ok(mut recent) = self.shared.recent.lock() {
                    let now = Instant::now();
                    for (kind, _, seq, items) in &written {
                        recent.push_back((*seq, now, *kind, *items));
                    }
                }
                self.shared.heads.send_replace(head);
                self.shared.moved.notify_all();
                for (reply, seq) in replies {
                    reply.deliver(Ok(seq.unwrap_or(head)));
                }
                self.rotate_if_full();
            }
            Err(error) => {
                tracing::warn!(%error, "the log could not write a group; it is undone");
                self.next_seq = durable + 1;
                self.state.rollback(durable);
                for (reply, _) in replies {
                    reply.deliver(Err(error.clone()));
                }
            }
        }
    }

    fn write_and_sync(&mut self) -> Result<(), StoreError> {
        // Only duplicates: what they refer to was synced with an earlier
        // group, which finished before this one began.
        if self.buffer.is_empty() {
            return Ok(());
        }
        let path = self.active_path();
        let before = self.active_len();
        let outcome = match self.file.write_all(&self.buffer) {
            // A full disk refuses the write before any of it is in the
            // page cache as acknowledged: nothing to distrust later.
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                Err((io("cannot write", &path, error), false))
            }
            Err(error) => Err((io("cannot write", &path, error), true)),
            Ok(()) if self.options.durability == Durability::Fsync => {
                let started = Instant::now();
                let synced = self.file.sync_data();
                if let Some(metrics) = &self.options.metrics {
                    metrics
                        .sync_seconds
                        .observe(started.elapsed().as_secs_f64());
                }
                synced.map_err(|error| (io("cannot sync", &path, error), true))
            }
            Ok(()) => Ok(()),
        };
        if let Err((error, latch)) = outcome {
            // Cut the file back to its durable end, so that a half-written
            // group is never read; a later group starts from there.
            let _ = self
                .file
                .set_len(before)
                .and_then(|()| self.file.sync_data());
            if latch {
                self.shared.fault.trip(crate::fault::cause_of(&error));
            }
            return Err(error);
        }
        let added = self.buffer.len() as u64;
        if let Ok(mut tail) = self.shared.tail.lock() {
            let last = tail.segments.last_mut().expect("one segment");
            last.len += added;
            last.last_seq = self.next_seq - 1;
            tail.head = self.next_seq - 1;
        }
        self.shared
            .bytes
            .fetch_add(added, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Once a write or sync failed, nothing is appended until the newest
    /// segment is cut back to its durable end through a new descriptor,
    /// synced, and read back frame by frame ([`segment::reestablish`]):
    /// whether the failed pages reached the disk is never assumed.
    fn recover_if_due(&mut self) {
        if !self.shared.fault.due() {
            return;
        }
        let newest = self
            .shared
            .tail
            .lock()
            .ok()
            .and_then(|tail| tail.segments.last().cloned());
        let Some(newest) = newest else { return };
        match segment::reestablish(&newest) {
            Ok(file) => {
                self.file = file;
                self.shared.fault.clear();
            }
            Err(error) => {
                tracing::warn!(%error, "the log is still faulted; it tries again shortly")
            }
        }
    }

    fn active_path(&self) -> PathBuf {
        self.shared
            .tail
            .lock()
            .map(|t| {
                t.segments
                    .last()
                    .map(|s| s.path.clone())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    fn active_len(&self) -> u64 {
        self.shared
            .tail
            .lock()
            .map(|t| t.segments.last().map_or(0, |s| s.len))
            .unwrap_or(0)
    }

    fn rotate_if_full(&mut self) {
        if self.active_len() < self.options.segment_bytes {
            return;
        }
        match segment::create(&self.dir, self.next_seq) {
            Ok((file, meta)) => {
                self.file = file;
                if let Ok(mut tail) = self.shared.tail.lock() {
                    tail.segments.push(meta);
                }
                self.shared.bytes.fetch_add(
                    segment::MAGIC.len() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            // The current segment simply grows; the next group tries again.
            Err(error) => tracing::warn!(%error, "could not start a new log segment"),
        }
    }

    /// Deletes the segments every consumer has passed.
    fn tidy(&mut self) {
        let passed = self
            .shared
            .consumers
            .lock()
            .ok()
            .and_then(|c| c.values().min().copied())
            .unwrap_or(0);
        self.state.passed(passed);
        if let Ok(mut recent) = self.shared.recent.lock() {
            while recent.front().is_some_and(|(seq, ..)| *seq <= passed) {
                recent.pop_front();
            }
        }
        let doomed: Vec<SegmentMeta> = match self.shared.tail.lock() {
            Ok(mut tail) => {
                let keep_from = tail
                    .segments
                    .iter()
                    .position(|s| s.last_seq > passed)
                    .unwrap_or(tail.segments.len() - 1);
                tail.segments.drain(..keep_from).collect()
            }
            Err(_) => Vec::new(),
        };
        if doomed.is_empty() {
            return;
        }
        for meta in &doomed {
            match std::fs::remove_file(&meta.path) {
                Ok(()) => {
                    self.shared
                        .bytes
                        .fetch_sub(meta.len, std::sync::atomic::Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::warn!(%error, segment = %meta.path.display(), "could not delete a log segment")
                }
            }
        }
        let _ = segment::sync_dir(&self.dir);
    }
}
