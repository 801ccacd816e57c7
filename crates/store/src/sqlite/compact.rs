//! Compact storage of identifiers.
//!
//! CRMs and portals mostly use UUIDs for contact, session and interaction ids.
//! As text a UUID takes 36 bytes; as a BLOB, 16. Each id is stored in a row
//! and again in an index, so this is the largest single saving on disk.
//! Only the canonical lowercase hyphenated form is converted, so that every id
//! reads back exactly as it was sent; anything else stays text. The encoding is
//! a pure function of the text, so lookups encode their argument the same way.
//! (Hand-written rather than through a UUID parser, because parsers accept
//! several spellings of one UUID, and an exact round trip is the point.)

use rusqlite::types::{Value, ValueRef};

/// The stored form of an id.
pub(crate) fn encode_id(text: &str) -> Value {
    match uuid_bytes(text) {
        Some(bytes) => Value::Blob(bytes.to_vec()),
        None => Value::Text(text.to_owned()),
    }
}

/// The id as it was sent, from its stored form.
pub(crate) fn decode_id(stored: ValueRef<'_>) -> Option<String> {
    match stored {
        ValueRef::Text(text) => String::from_utf8(text.to_vec()).ok(),
        ValueRef::Blob(bytes) if bytes.len() == 16 => Some(uuid_text(bytes)),
        _ => None,
    }
}

fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let raw = text.as_bytes();
    if raw.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibbles = 0;
    for (index, &byte) in raw.iter().enumerate() {
        if matches!(index, 8 | 13 | 18 | 23) {
            if byte != b'-' {
                return None;
            }
            continue;
        }
        let value = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        out[nibbles / 2] |= if nibbles % 2 == 0 { value << 4 } else { value };
        nibbles += 1;
    }
    Some(out)
}

fn uuid_text(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(HEX[usize::from(byte >> 4)] as char);
        text.push(HEX[usize::from(byte & 0xf)] as char);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(text: &str) -> Option<String> {
        match encode_id(text) {
            Value::Blob(b) => decode_id(ValueRef::Blob(&b)),
            Value::Text(t) => decode_id(ValueRef::Text(t.as_bytes())),
            _ => None,
        }
    }

    #[test]
    fn canonical_uuids_shrink_and_others_stay_text() {
        let uuid = "0a0d8709-711e-e811-a952-000d3a732d76";
        assert!(matches!(encode_id(uuid), Value::Blob(ref b) if b.len() == 16));
        assert_eq!(round_trip(uuid).as_deref(), Some(uuid));
        for other in [
            "0A0D8709-711E-E811-A952-000D3A732D76",
            "{0a0d8709-711e-e811-a952-000d3a732d76}",
            "0a0d8709711ee811a952000d3a732d76",
            "0a0d8709-711e-e811-a952-000d3a732d7g",
            "contact-42",
        ] {
            assert!(matches!(encode_id(other), Value::Text(_)), "{other}");
            assert_eq!(round_trip(other).as_deref(), Some(other));
        }
    }

    proptest! {
        #[test]
        fn every_id_reads_back_exactly(text in ".{0,40}") {
            prop_assert_eq!(round_trip(&text), Some(text.clone()));
        }

        #[test]
        fn every_canonical_uuid_is_compact(bytes in any::<[u8; 16]>()) {
            let text = uuid_text(&bytes);
            prop_assert_eq!(uuid_bytes(&text), Some(bytes));
        }
    }
}
