//! Paging cursors: the text a listing hands out for its next page and reads
//! back when a client passes it in.
//!
//! A cursor is a position, `TIME.SEQ`: two integers in their one canonical
//! spelling. The language is regular ([`Cursor::PATTERN`]), so the API
//! document states exactly which texts are cursors. Clients pass cursors
//! back as they got them; a cursor reveals nothing a page did not show.

/// A position in an ordered listing: a time and a tie-breaking sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub seq: i64,
}

/// Text that no listing issued as a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not valid")]
pub struct BadCursor;

/// Digits a part may have: 18 always fit an `i64`, and a time in
/// milliseconds or a sequence number never needs more.
const MAX_DIGITS: usize = 18;

impl Cursor {
    /// Every text [`Cursor::decode`] accepts, and nothing else.
    pub const PATTERN: &'static str = "^(0|-?[1-9][0-9]{0,17})\\.(0|-?[1-9][0-9]{0,17})$";

    /// The cursor as the text clients pass back. A part beyond 18 digits
    /// (never a real time or sequence) is clamped, so that every cursor
    /// issued decodes.
    pub fn encode(&self) -> String {
        const LIMIT: i64 = 999_999_999_999_999_999;
        format!(
            "{}.{}",
            self.time.clamp(-LIMIT, LIMIT),
            self.seq.clamp(-LIMIT, LIMIT)
        )
    }

    /// Reads a cursor produced by [`Cursor::encode`]: only the canonical
    /// spelling of each part is accepted, so a cursor has one text.
    pub fn decode(text: &str) -> Result<Self, BadCursor> {
        let (time, seq) = text.split_once('.').ok_or(BadCursor)?;
        Ok(Self {
            time: part(time)?,
            seq: part(seq)?,
        })
    }
}

/// `0`, or an optional `-`, a digit other than 0 and at most 17 more digits.
fn part(text: &str) -> Result<i64, BadCursor> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = text == "0"
        || (!digits.is_empty()
            && digits.len() <= MAX_DIGITS
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit()));
    if !canonical {
        return Err(BadCursor);
    }
    text.parse().map_err(|_| BadCursor)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let cursor = Cursor { time: -5, seq: 99 };
        assert_eq!(cursor.encode(), "-5.99");
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in [
            "%%%", "1-2", "", ".", "1.", ".1", "+1.7", "01.7", "1.007", "-0.1", "1.2.3",
        ] {
            assert_eq!(Cursor::decode(bad), Err(BadCursor), "{bad:?}");
        }
        assert_eq!(Cursor::decode("1234567890123456789.0"), Err(BadCursor));
        assert!(Cursor::decode("999999999999999999.-999999999999999999").is_ok());
    }

    proptest! {
        #[test]
        fn every_cursor_round_trips(time in -999_999_999_999_999_999i64..=999_999_999_999_999_999, seq in any::<u32>()) {
            let cursor = Cursor { time, seq: seq.into() };
            prop_assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        }

        #[test]
        fn every_issued_text_matches_the_pattern(time in any::<i64>(), seq in any::<i64>()) {
            let text = Cursor { time, seq }.encode();
            prop_assert!(Cursor::decode(&text).is_ok());
            prop_assert!(matches_pattern(&text), "{}", text);
        }

        #[test]
        fn the_pattern_and_the_decoder_agree(text in "-?[0-9]{0,20}\\.-?[0-9]{0,20}|.{0,12}") {
            prop_assert_eq!(Cursor::decode(&text).is_ok(), matches_pattern(&text));
            if let Ok(cursor) = Cursor::decode(&text) {
                prop_assert_eq!(cursor.encode(), text);
            }
        }
    }

    /// [`Cursor::PATTERN`], spelled out by hand so the test does not
    /// check the decoder against itself.
    fn matches_pattern(text: &str) -> bool {
        fn part(p: &str) -> bool {
            if p == "0" {
                return true;
            }
            let d = p.strip_prefix('-').unwrap_or(p);
            let bytes = d.as_bytes();
            (1..=18).contains(&bytes.len())
                && (b'1'..=b'9').contains(&bytes[0])
                && bytes.iter().all(u8::is_ascii_digit)
        }
        matches!(text.split_once('.'), Some((a, b)) if part(a) && part(b))
    }
}
