//! Splitting a large record into parts and putting it back together
//! (PRODUCT.md §5.4).
//!
//! A record's serialised bytes over the threshold are cut into chunks of at
//! most the threshold. Every part carries its index, the total and the SHA-256
//! of the whole, so that reassembly can prove it got every byte back, and a
//! missing part is named rather than papered over.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// What is wrong with a split record that could not be read back whole.
/// Reads, search, exports and forwarders carry it with the record rather
/// than paper over the gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartsIntegrity {
    pub total_parts: u32,
    /// 0-based indexes of the parts that are gone.
    pub missing_parts: Vec<u32>,
    /// False when every part is there but the bytes do not hash to the
    /// digest the parts carry.
    pub digest_matches: bool,
}

impl std::fmt::Display for PartsIntegrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.total_parts == 0 {
            // A whole record, stored compressed, whose bytes or dictionary
            // were damaged.
            write!(f, "corrupt: the stored record cannot be decoded")
        } else if self.missing_parts.is_empty() {
            write!(
                f,
                "corrupt: the {} parts do not hash to the record's SHA-256",
                self.total_parts
            )
        } else {
            let list: Vec<String> = self.missing_parts.iter().map(u32::to_string).collect();
            write!(
                f,
                "incomplete: {} of {} parts missing (index {})",
                list.len(),
                self.total_parts,
                list.join(", ")
            )
        }
    }
}

/// One part of a split record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 0-based.
    pub index: u32,
    pub total: u32,
    /// SHA-256 of the whole record's bytes.
    pub whole_sha256: [u8; 32],
    pub bytes: Vec<u8>,
}

/// The SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Cuts `whole` into parts of at most `threshold` bytes. A record of at most
/// `threshold` bytes is not split: it comes back as `None`.
pub fn split(whole: &[u8], threshold: usize) -> Option<Vec<Part>> {
    let threshold = threshold.max(1);
    if whole.len() <= threshold {
        return None;
    }
    let digest = sha256(whole);
    let total = whole.len().div_ceil(threshold) as u32;
    Some(
        whole
            .chunks(threshold)
            .enumerate()
            .map(|(index, chunk)| Part {
                index: index as u32,
                total,
                whole_sha256: digest,
                bytes: chunk.to_vec(),
            })
            .collect(),
    )
}

/// Why parts could not be put back together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    #[error("parts {0:?} are missing")]
    MissingParts(Vec<u32>),
    #[error("the parts disagree on the total or the digest")]
    Inconsistent,
    #[error("the reassembled bytes do not match the record's SHA-256")]
    DigestMismatch,
}

/// Puts parts (in any order) back together, checking that every index from 0
/// to `total - 1` is there exactly once and that the bytes hash to the digest.
pub fn reassemble(mut parts: Vec<Part>) -> Result<Vec<u8>, ReassemblyError> {
    let Some(first) = parts.first() else {
        return Err(ReassemblyError::MissingParts(vec![0]));
    };
    let (total, digest) = (first.total, first.whole_sha256);
    if parts
        .iter()
        .any(|p| p.total != total || p.whole_sha256 != digest || p.index >= total)
    {
        return Err(ReassemblyError::Inconsistent);
    }
    parts.sort_by_key(|p| p.index);
    parts.dedup_by_key(|p| p.index);
    let present: Vec<u32> = parts.iter().map(|p| p.index).collect();
    let missing = missing_indexes(&present, total);
    if !missing.is_empty() {
        return Err(ReassemblyError::MissingParts(missing));
    }
    let whole: Vec<u8> = parts.into_iter().flat_map(|p| p.bytes).collect();
    if sha256(&whole) != digest {
        return Err(ReassemblyError::DigestMismatch);
    }
    Ok(whole)
}

/// The indexes below `total` that `present` (sorted) lacks.
pub fn missing_indexes(present: &[u32], total: u32) -> Vec<u32> {
    (0..total)
        .filter(|i| present.binary_search(i).is_err())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_records_are_not_split() {
        assert_eq!(split(b"abc", 3), None);
        let parts = split(b"abcd", 3).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].bytes, b"d");
        assert_eq!(parts[0].total, 2);
    }

    #[test]
    fn a_missing_part_is_named() {
        let mut parts = split(&[7u8; 100], 10).unwrap();
        parts.remove(3);
        parts.remove(7);
        assert_eq!(
            reassemble(parts),
            Err(ReassemblyError::MissingParts(vec![3, 8]))
        );
    }

    #[test]
    fn an_edited_part_fails_the_digest() {
        let mut parts = split(&[7u8; 100], 10).unwrap();
        parts[2].bytes[0] = 8;
        assert_eq!(reassemble(parts), Err(ReassemblyError::DigestMismatch));
    }

    proptest! {
        #[test]
        fn split_then_reassemble_is_byte_exact(
            whole in proptest::collection::vec(any::<u8>(), 0..5000),
            threshold in 1usize..700,
            seed in any::<u64>(),
        ) {
            match split(&whole, threshold) {
                None => prop_assert!(whole.len() <= threshold),
                Some(mut parts) => {
                    prop_assert!(parts.iter().all(|p| p.bytes.len() <= threshold));
                    prop_assert_eq!(parts.len() as u32, parts[0].total);
                    // Any order.
                    let n = parts.len();
                    parts.rotate_left((seed as usize) % n);
                    prop_assert_eq!(reassemble(parts).unwrap(), whole);
                }
            }
        }

        #[test]
        fn unicode_text_survives_cuts_inside_characters(
            text in "\\PC{0,600}",
            threshold in 1usize..50,
        ) {
            if let Some(parts) = split(text.as_bytes(), threshold) {
                let back = String::from_utf8(reassemble(parts).unwrap()).unwrap();
                prop_assert_eq!(back, text);
            }
        }
    }
}
