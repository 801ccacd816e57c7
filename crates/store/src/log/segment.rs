//! Segment files: the log on disk is a directory of files named after the
//! sequence of their first frame, each a magic header and frames end to
//! end. Only the newest is written; older ones are deleted whole once every
//! consumer has passed them.
//!
//! Opening recovers from a crash: the newest segment is scanned and cut at
//! the first frame that is incomplete or fails its checksum (a write torn
//! by the crash, which was never acknowledged), and the sequence must run
//! on without a gap from one segment to the next.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::frame::{self, Frame, FrameError};
use crate::StoreError;

/// The first bytes of every segment.
pub const MAGIC: &[u8; 8] = b"TLKLOG01";

/// What is known about one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    pub path: PathBuf,
    /// The sequence of its first frame (the file's name).
    pub first_seq: u64,
    /// The sequence of its last whole frame; `first_seq - 1` when empty.
    pub last_seq: u64,
    /// Bytes up to the end of its last whole frame.
    pub len: u64,
}

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

fn io(what: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("log: {what} {}: {error}", path.display()))
}

/// Fsyncs a directory, so that a file created or deleted in it survives a
/// crash.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("cannot sync", dir, e))
}

/// Creates an empty segment whose first frame will be `first_seq`.
pub fn create(dir: &Path, first_seq: u64) -> Result<(File, SegmentMeta), StoreError> {
    let path = dir.join(file_name(first_seq));
    let mut file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(|e| io("cannot create", &path, e))?;
    file.write_all(MAGIC)
        .and_then(|()| file.sync_data())
        .map_err(|e| io("cannot write", &path, e))?;
    sync_dir(dir)?;
    let meta = SegmentMeta {
        path,
        first_seq,
        last_seq: first_seq - 1,
        len: MAGIC.len() as u64,
    };
    Ok((file, meta))
}

/// The segment files in `dir` with their first frames, oldest first.
fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let stem = path.file_name()?.to_str()?.strip_suffix(".log")?;
            Some((stem.parse().ok()?, path))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The segments in `dir`, oldest first, with the newest scanned and cut
/// back to its last whole frame.
pub fn recover(dir: &Path) -> Result<Vec<SegmentMeta>, StoreError> {
    let found = list(dir).map_err(|e| io("cannot list", dir, e))?;
    let mut segments = Vec::with_capacity(found.len());
    let count = found.len();
    for (index, (first_seq, path)) in found.into_iter().enumerate() {
        let newest = index + 1 == count;
        let meta = if newest {
            scan_and_cut(&path, first_seq)?
        } else {
            // Older segments were whole when the next one was started; they
            // are checked as they are read.
            let len = std::fs::metadata(&path)
                .map_err(|e| io("cannot read", &path, e))?
                .len();
            SegmentMeta {
                path,
                first_seq,
                last_seq: first_seq - 1,
                len,
            }
        };
        segments.push(meta);
    }
    // The sequence runs on across segments: each starts where the previous
    // one's successor would. An older segment's last frame is the next
    // one's first minus one.
    for index in 0..segments.len().saturating_sub(1) {
        let next_first = segments[index + 1].first_seq;
        if next_first <= segments[index].first_seq {
            return Err(StoreError::Internal(format!(
                "log: segment {} does not follow {}",
                segments[index + 1].path.display(),
                segments[index].path.display()
            )));
        }
        segments[index].last_seq = next_first - 1;
    }
    Ok(segments)
}

/// Reads a segment's frames to find its end, and cuts off a torn tail.
fn scan_and_cut(path: &Path, first_seq: u64) -> Result<SegmentMeta, StoreError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| io("cannot read", path, e))?;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
            // Created but its header never reached the disk: start it again.
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| io("cannot open", path, e))?;
            file.set_len(0)
                .map_err(|e| io("cannot truncate", path, e))?;
            let mut file = file;
            file.write_all(MAGIC)
                .and_then(|()| file.sync_data())
                .map_err(|e| io("cannot write", path, e))?;
            return Ok(SegmentMeta {
                path: path.to_owned(),
                first_seq,
                last_seq: first_seq - 1,
                len: MAGIC.len() as u64,
            });
        }
        return Err(StoreError::Internal(format!(
            "log: {} is not a Tracklog log segment",
            path.display()
        )));
    }
    let (whole, expected) = whole_frames(&bytes, path, first_seq)?;
    // A crash tears only the last write. A whole frame after the bad bytes
    // means the damage is not a torn tail but a damaged acknowledged frame:
    // refuse to cut it away.
    if let Some(later) = (whole + 1..bytes.len()).find(|&offset| {
        frame::decode(&bytes[offset..]).is_ok_and(|(frame, _)| frame.seq >= expected)
    }) {
        return Err(StoreError::Internal(format!(
            "log: {} is damaged at byte {whole}, before a whole frame at byte {later}: restore it from a backup",
            path.display()
        )));
    }
    if whole < bytes.len() {
        tracing::warn!(
            segment = %path.display(),
            kept = whole,
            cut = bytes.len() - whole,
            "cutting a torn tail off the log (never acknowledged)"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io("cannot open", path, e))?;
        file.set_len(whole as u64)
            .and_then(|()| file.sync_data())
            .map_err(|e| io("cannot truncate", path, e))?;
    }
    Ok(SegmentMeta {
        path: path.to_owned(),
        first_seq,
        last_seq: expected - 1,
        len: whole as u64,
    })
}

/// Walks the frames of a segment's bytes from its header: where the last
/// whole frame in sequence ends, and the sequence due after it.
fn whole_frames(bytes: &[u8], path: &Path, first_seq: u64) -> Result<(usize, u64), StoreError> {
    let mut at = MAGIC.len();
    let mut expected = first_seq;
    loop {
        match frame::decode(&bytes[at..]) {
            Ok((frame, used)) if frame.seq == expected => {
                at += used;
                expected += 1;
            }
            Ok((frame, _)) => {
                return Err(StoreError::Internal(format!(
                    "log: {} holds frame {} where {expected} was due",
                    path.display(),
                    frame.seq
                )));
            }
            Err(_) => return Ok((at, expected)),
        }
    }
}

/// Re-establishes the newest segment after a failed write or sync: cuts it
/// back to its durable end through a new descriptor, syncs it, then reads
/// every frame again and requires exactly the frames `meta` says were
/// acknowledged. Returns the segment opened for appending.
pub fn reestablish(meta: &SegmentMeta) -> Result<File, StoreError> {
    let path = &meta.path;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io("cannot open", path, e))?;
    file.set_len(meta.len)
        .and_then(|()| file.sync_data())
        .map_err(|e| io("cannot cut back and sync", path, e))?;
    drop(file);
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| io("cannot read", path, e))?;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(StoreError::Internal(format!(
            "log: {} lost its header",
            path.display()
        )));
    }
    let (whole, expected) = whole_frames(&bytes, path, meta.first_seq)?;
    if whole as u64 != meta.len || expected != meta.last_seq + 1 {
        return Err(StoreError::Internal(format!(
            "log: {} reads back {} whole frames in {whole} bytes, but {} frames in {} bytes were acknowledged",
            path.display(),
            expected - meta.first_seq,
            meta.last_seq + 1 - meta.first_seq,
            meta.len
        )));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    open_for_append(meta)
}

/// Reads every frame of every segment in `dir` without changing anything:
/// the problems found (a damaged frame, a gap in the sequence), and notes
/// (a torn tail of the newest segment, which was never acknowledged and is
/// cut at the next start). Returns the frames read and the last whole one.
pub fn check_dir(
    dir: &Path,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> (u64, Option<u64>) {
    let found = match list(dir) {
        Ok(found) => found,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return (0, None),
        Err(error) => {
            problems.push(format!("cannot list {}: {error}", dir.display()));
            return (0, None);
        }
    };
    let mut frames = 0;
    let mut due: Option<u64> = None;
    let count = found.len();
    for (index, (first_seq, path)) in found.into_iter().enumerate() {
        if let Some(due) = due.filter(|due| *due != first_seq) {
            problems.push(format!(
                "{} starts at frame {first_seq}, but frame {due} was due",
                path.display()
            ));
        }
        let mut bytes = Vec::new();
        if let Err(error) = File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)) {
            problems.push(format!("cannot read {}: {error}", path.display()));
            continue;
        }
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            problems.push(format!("{} is not a Tracklog log segment", path.display()));
            continue;
        }
        let (whole, expected) = match whole_frames(&bytes, &path, first_seq) {
            Ok(walked) => walked,
            Err(error) => {
                problems.push(error.to_string());
                continue;
            }
        };
        frames += expected - first_seq;
        due = Some(expected);
        if whole < bytes.len() {
            let later = (whole + 1..bytes.len()).any(|offset| {
                frame::decode(&bytes[offset..]).is_ok_and(|(frame, _)| frame.seq >= expected)
            });
            if index + 1 == count && !later {
                notes.push(format!(
                    "{} ends with a torn write of {} bytes, never acknowledged; the next start cuts it",
                    path.display(),
                    bytes.len() - whole
                ));
            } else {
                problems.push(format!(
                    "{} is damaged at byte {whole}, frame {expected}",
                    path.display()
                ));
            }
        }
    }
    (frames, due.map(|due| due - 1))
}

/// Opens the newest segment for appending.
pub fn open_for_append(meta: &SegmentMeta) -> Result<File, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(&meta.path)
        .map_err(|e| io("cannot open", &meta.path, e))?;
    file.seek(SeekFrom::End(0))
        .map_err(|e| io("cannot seek", &meta.path, e))?;
    Ok(file)
}

/// Reads whole frames of one segment from byte `at` up to `end`.
pub struct SegmentCursor {
    file: File,
    path: PathBuf,
    /// Bytes read but not yet decoded.
    buffer: Vec<u8>,
    /// Where `buffer` starts in the file.
    buffer_at: u64,
    /// Where the next frame starts.
    pub at: u64,
}

impl SegmentCursor {
    pub fn open(meta: &SegmentMeta, at: u64) -> Result<Self, StoreError> {
        let file = File::open(&meta.path).map_err(|e| io("cannot open", &meta.path, e))?;
        Ok(Self {
            file,
            path: meta.path.clone(),
            buffer: Vec::new(),
            buffer_at: at,
            at,
        })
    }

    /// The next frame, if one ends at or before `end`.
    pub fn next(&mut self, end: u64) -> Result<Option<Frame>, StoreError> {
        self.next_of(end, None)
    }

    /// The next frame, if one ends at or before `end`; a frame of a kind
    /// not in `wanted` (when given) comes without its items.
    pub fn next_of(
        &mut self,
        end: u64,
        wanted: Option<&[frame::Kind]>,
    ) -> Result<Option<Frame>, StoreError> {
        if self.at >= end {
            return Ok(None);
        }
        loop {
            let offset = (self.at - self.buffer_at) as usize;
            let bytes = &self.buffer[offset..];
            let decoded = match wanted {
                Some(kinds) => match frame::decode_header(bytes) {
                    Ok((header, _)) if kinds.contains(&header.kind) => frame::decode(bytes),
                    other => other,
                },
                None => frame::decode(bytes),
            };
            match decoded {
                Ok((frame, used)) => {
                    self.at += used as u64;
                    return Ok(Some(frame));
                }
                Err(FrameError::Incomplete) => {
                    // Keep the undecoded rest and read more, up to `end`.
                    self.buffer.drain(..offset);
                    self.buffer_at = self.at;
                    let have = self.buffer_at + self.buffer.len() as u64;
                    if have >= end {
                        return Err(StoreError::Internal(format!(
                            "log: {} ends inside a frame at byte {}",
                            self.path.display(),
                            self.at
                        )));
                    }
                    let want = ((end - have) as usize).min(4 << 20);
                    let start = self.buffer.len();
                    self.buffer.resize(start + want, 0);
                    self.file
                        .seek(SeekFrom::Start(have))
                        .and_then(|_| self.file.read_exact(&mut self.buffer[start..]))
                        .map_err(|e| io("cannot read", &self.path, e))?;
                }
                Err(error) => {
                    return Err(StoreError::Internal(format!(
                        "log: {} is damaged at byte {}: {error}",
                        self.path.display(),
                        self.at
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::frame::{Kind, encode};

    fn write_frames(dir: &Path, first: u64, count: u64) -> SegmentMeta {
        let (mut file, mut meta) = create(dir, first).unwrap();
        let mut bytes = Vec::new();
        for seq in first..first + count {
            encode(
                seq,
                Kind::Interactions,
                1,
                &[vec![seq as u8; 10]],
                &mut bytes,
            );
        }
        file.write_all(&bytes).unwrap();
        meta.len += bytes.len() as u64;
        meta.last_seq = first + count - 1;
        meta
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_whole_frames_stay() {
        let dir = tempfile::tempdir().unwrap();
        let whole = write_frames(dir.path(), 1, 5);
        // Half a frame more, as a crash mid-write leaves it.
        let mut half = Vec::new();
        encode(6, Kind::Audit, 1, &[vec![1; 100]], &mut half);
        let mut file = OpenOptions::new().append(true).open(&whole.path).unwrap();
        file.write_all(&half[..half.len() / 2]).unwrap();
        drop(file);
        let segments = recover(dir.path()).unwrap();
        assert_eq!(segments, vec![whole.clone()]);
        assert_eq!(std::fs::metadata(&whole.path).unwrap().len(), whole.len);
        let mut cursor = SegmentCursor::open(&whole, MAGIC.len() as u64).unwrap();
        let mut seqs = Vec::new();
        while let Some(frame) = cursor.next(whole.len).unwrap() {
            seqs.push(frame.seq);
        }
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_damaged_frame_before_whole_ones_is_refused_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let meta = write_frames(dir.path(), 1, 5);
        let mut bytes = std::fs::read(&meta.path).unwrap();
        bytes[MAGIC.len() + 30] ^= 0x40;
        std::fs::write(&meta.path, &bytes).unwrap();
        let error = recover(dir.path()).unwrap_err().to_string();
        assert!(error.contains("damaged"), "{error}");
        assert_eq!(std::fs::read(&meta.path).unwrap(), bytes, "nothing was cut");
    }

    #[test]
    fn the_check_reads_every_frame_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let older = write_frames(dir.path(), 1, 3);
        let newest = write_frames(dir.path(), 4, 2);
        let check = || {
            let (mut problems, mut notes) = (Vec::new(), Vec::new());
            let read = check_dir(dir.path(), &mut problems, &mut notes);
            (read, problems, notes)
        };
        assert_eq!(check(), ((5, Some(5)), vec![], vec![]));
        // A torn tail of the newest segment is a note, and stays.
        let mut half = Vec::new();
        encode(6, Kind::Audit, 1, &[vec![1; 100]], &mut half);
        let mut file = OpenOptions::new().append(true).open(&newest.path).unwrap();
        file.write_all(&half[..half.len() / 2]).unwrap();
        drop(file);
        let (read, problems, notes) = check();
        assert_eq!((read, problems.len(), notes.len()), ((5, Some(5)), 0, 1));
        assert!(notes[0].contains("torn"), "{notes:?}");
        assert_eq!(
            std::fs::metadata(&newest.path).unwrap().len(),
            newest.len + half.len() as u64 / 2
        );
        // A flipped byte in an older segment is a problem.
        let mut bytes = std::fs::read(&older.path).unwrap();
        bytes[MAGIC.len() + 30] ^= 0x40;
        std::fs::write(&older.path, &bytes).unwrap();
        let (_, problems, _) = check();
        assert!(
            problems.iter().any(|p| p.contains("damaged")),
            "{problems:?}"
        );
    }

    #[test]
    fn segments_chain_and_a_stray_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_frames(dir.path(), 1, 3);
        write_frames(dir.path(), 4, 2);
        let segments = recover(dir.path()).unwrap();
        assert_eq!(
            segments
                .iter()
                .map(|s| (s.first_seq, s.last_seq))
                .collect::<Vec<_>>(),
            [(1, 3), (4, 5)]
        );
        std::fs::write(dir.path().join(file_name(9)), b"not a log").unwrap();
        assert!(recover(dir.path()).is_err());
    }
}
