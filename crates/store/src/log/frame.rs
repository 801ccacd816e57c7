//! The log's unit of durability: one frame holds the items of one append
//! (one kind, one org), framed with its length and a CRC so that a torn
//! write at the tail is found and cut off on recovery.
//!
//! ```text
//! frame  = len:u32le  crc:u32le  body[len]          crc = CRC-32 (IEEE) of body
//! body   = seq:u64le  kind:u8  org:i64le  count:u32le  item*count
//! item   = len:u32le  bytes[len]
//! ```
//!
//! Written by hand: the layout is a handful of fixed-width fields, and a
//! serialisation crate would add a format of its own around them.

/// Bytes before a frame's body.
pub const HEADER_BYTES: usize = 8;
/// The fixed part of a body: sequence, kind, org and item count.
const BODY_FIXED: usize = 8 + 1 + 8 + 4;
/// The largest frame accepted: far above any append, and a bound that keeps
/// a corrupt length from making a reader allocate gigabytes.
pub const MAX_BODY_BYTES: usize = 256 << 20;

/// What kind of items a frame holds; each materialiser takes its kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Interactions,
    Audit,
    ChannelInit,
    ChannelEvents,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Interactions,
        Kind::Audit,
        Kind::ChannelInit,
        Kind::ChannelEvents,
    ];

    fn code(self) -> u8 {
        match self {
            Kind::Interactions => 1,
            Kind::Audit => 2,
            Kind::ChannelInit => 3,
            Kind::ChannelEvents => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The name used in metrics and errors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Interactions => "interactions",
            Kind::Audit => "audit",
            Kind::ChannelInit => "channel_init",
            Kind::ChannelEvents => "channel_events",
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 1, 2, 3... across the whole log, with no gaps.
    pub seq: u64,
    pub kind: Kind,
    pub org: i64,
    pub items: Vec<Vec<u8>>,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes end before the frame does: a torn write at the tail, or a
    /// reader ahead of the writer.
    #[error("the frame is incomplete")]
    Incomplete,
    #[error("the frame's checksum does not match")]
    Checksum,
    #[error("the frame is malformed: {0}")]
    Malformed(&'static str),
}

/// Appends the encoding of one frame to `out`.
pub fn encode(seq: u64, kind: Kind, org: i64, items: &[Vec<u8>], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind.code());
    out.extend_from_slice(&org.to_le_bytes());
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for item in items {
        out.extend_from_slice(&(item.len() as u32).to_le_bytes());
        out.extend_from_slice(item);
    }
    let body = &out[start + HEADER_BYTES..];
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The encoded size of a frame of `items`.
pub fn encoded_len(items: &[Vec<u8>]) -> usize {
    HEADER_BYTES + BODY_FIXED + items.iter().map(|i| 4 + i.len()).sum::<usize>()
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The frame at the start of `bytes` and how many bytes it takes, its
/// items left out: for a reader that skips frames of other kinds, without
/// checking or copying what it skips. The frame was checked when the log
/// was opened or written.
pub fn decode_header(bytes: &[u8]) -> Result<(Frame, usize), FrameError> {
    let len = u32_at(bytes, 0).ok_or(FrameError::Incomplete)? as usize;
    if !(BODY_FIXED..=MAX_BODY_BYTES).contains(&len) {
        return Err(FrameError::Malformed("impossible length"));
    }
    let body = bytes
        .get(HEADER_BYTES..HEADER_BYTES + len)
        .ok_or(FrameError::Incomplete)?;
    let seq = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let kind = Kind::from_code(body[8]).ok_or(FrameError::Malformed("unknown kind"))?;
    let org = i64::from_le_bytes(body[9..17].try_into().expect("8 bytes"));
    Ok((
        Frame {
            seq,
            kind,
            org,
            items: Vec::new(),
        },
        HEADER_BYTES + len,
    ))
}

/// The frame at the start of `bytes` and how many bytes it takes.
pub fn decode(bytes: &[u8]) -> Result<(Frame, usize), FrameError> {
    let len = u32_at(bytes, 0).ok_or(FrameError::Incomplete)? as usize;
    let crc = u32_at(bytes, 4).ok_or(FrameError::Incomplete)?;
    if !(BODY_FIXED..=MAX_BODY_BYTES).contains(&len) {
        return Err(FrameError::Malformed("impossible length"));
    }
    let body = bytes
        .get(HEADER_BYTES..HEADER_BYTES + len)
        .ok_or(FrameError::Incomplete)?;
    if crc32fast::hash(body) != crc {
        return Err(FrameError::Checksum);
    }
    let seq = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let kind = Kind::from_code(body[8]).ok_or(FrameError::Malformed("unknown kind"))?;
    let org = i64::from_le_bytes(body[9..17].try_into().expect("8 bytes"));
    let count = u32_at(body, 17).expect("within the fixed part") as usize;
    let mut items = Vec::with_capacity(count.min(len / 4));
    let mut at = BODY_FIXED;
    for _ in 0..count {
        let item_len = u32_at(body, at).ok_or(FrameError::Malformed("item past the end"))? as usize;
        at += 4;
        let item = body
            .get(at..at + item_len)
            .ok_or(FrameError::Malformed("item past the end"))?;
        items.push(item.to_vec());
        at += item_len;
    }
    if at != len {
        return Err(FrameError::Malformed("bytes after the last item"));
    }
    Ok((
        Frame {
            seq,
            kind,
            org,
            items,
        },
        HEADER_BYTES + len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = Kind> {
        prop::sample::select(Kind::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn frames_round_trip(
            seq in any::<u64>(),
            kind in kind(),
            org in any::<i64>(),
            items in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
        ) {
            let mut out = vec![7, 7];
            encode(seq, kind, org, &items, &mut out);
            prop_assert_eq!(out.len(), 2 + encoded_len(&items));
            let (frame, used) = decode(&out[2..]).unwrap();
            prop_assert_eq!(used, out.len() - 2);
            prop_assert_eq!(frame, Frame { seq, kind, org, items });
        }

        /// Any cut of a frame is incomplete, and any flipped bit is refused:
        /// recovery can tell a torn or damaged tail from a whole frame.
        #[test]
        fn a_torn_or_damaged_frame_is_never_read_as_a_frame(
            items in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 1..4),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut out = Vec::new();
            encode(9, Kind::Audit, 1, &items, &mut out);
            let cut = cut.index(out.len());
            prop_assert_eq!(decode(&out[..cut]).unwrap_err(), FrameError::Incomplete);
            let mut damaged = out.clone();
            let at = flip.index(out.len());
            damaged[at] ^= 1 << bit;
            prop_assert!(decode(&damaged).is_err(), "bit {} of byte {} flipped", bit, at);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}
