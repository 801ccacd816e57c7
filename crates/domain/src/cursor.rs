//! Opaque paging cursors: the text a listing hands out for its next page and
//! reads back when a client passes it in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A position in an ordered listing: a time and a tie-breaking sequence.
/// Clients see it as opaque text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub seq: i64,
}

/// Text that no listing issued as a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not valid")]
pub struct BadCursor;

impl Cursor {
    /// The cursor as the text clients pass back.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", self.time, self.seq))
    }

    /// Reads a cursor produced by [`Cursor::encode`]. Only the canonical
    /// text of a cursor is accepted, so each cursor has exactly one spelling.
    pub fn decode(text_in: &str) -> Result<Self, BadCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text_in).map_err(|_| BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| BadCursor)?;
        let (time, seq) = text.split_once('.').ok_or(BadCursor)?;
        let cursor = Self {
            time: time.parse().map_err(|_| BadCursor)?,
            seq: seq.parse().map_err(|_| BadCursor)?,
        };
        // "+1.007" reads as the same position as "1.7"; refusing every
        // spelling but the one issued keeps a cursor a single value.
        if cursor.encode() != text_in {
            return Err(BadCursor);
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let cursor = Cursor { time: -5, seq: 99 };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        assert_eq!(Cursor::decode("%%%"), Err(BadCursor));
        assert_eq!(
            Cursor::decode(&URL_SAFE_NO_PAD.encode("1-2")),
            Err(BadCursor)
        );
        assert_eq!(Cursor::decode(""), Err(BadCursor));
        assert_eq!(
            Cursor::decode(&URL_SAFE_NO_PAD.encode("+1.007")),
            Err(BadCursor)
        );
    }

    proptest! {
        #[test]
        fn every_cursor_round_trips(time in any::<i64>(), seq in any::<i64>()) {
            let cursor = Cursor { time, seq };
            prop_assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        }

        #[test]
        fn any_text_decodes_or_is_refused(text in ".{0,40}") {
            if let Ok(cursor) = Cursor::decode(&text) {
                prop_assert_eq!(cursor.encode(), text);
            }
        }
    }
}
