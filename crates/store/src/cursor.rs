//! Opaque paging cursors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::StoreError;

/// A position in an ordered listing: a time and a tie-breaking sequence.
/// Clients see it as opaque text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub seq: i64,
}

impl Cursor {
    /// The cursor as the text clients pass back.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.time, self.seq))
    }

    /// Reads a cursor produced by [`Cursor::encode`].
    pub fn decode(text: &str) -> Result<Self, StoreError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| StoreError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::BadCursor)?;
        let (time, seq) = text.split_once('.').ok_or(StoreError::BadCursor)?;
        Ok(Self {
            time: time.parse().map_err(|_| StoreError::BadCursor)?,
            seq: seq.parse().map_err(|_| StoreError::BadCursor)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let cursor = Cursor { time: -5, seq: 99 };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(Cursor::decode("%%%").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1-2")).is_err());
    }
}
