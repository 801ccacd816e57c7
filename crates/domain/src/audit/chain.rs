//! The integrity of an org's log (PRODUCT.md §5.6): a hash chain over
//! `Sequence`, signed checkpoints, and the verifier that finds the first
//! broken link.
//!
//! Each record's link is `SHA-256(tag ‖ previous link ‖ Sequence ‖ SHA-256 of
//! the record's stored bytes)`. The first record of an org links to
//! [`GENESIS`]. A retention purge removes a prefix of the chain and keeps its
//! last link as the *anchor*, which the next checkpoint signs, so the shorter
//! chain still verifies.
//!
//! The writer also keeps the org's *written head*, the sequence and link of
//! the last record it wrote, in the same transaction as the records, and
//! allocates the next sequence after it. Verification requires the log to
//! still hold that record with that link, so records deleted at the tail
//! after the newest checkpoint are found ([`BreakKind::HeadMismatch`]), and
//! records written after such a deletion leave a gap that is found too.
//!
//! # What someone with write access to the files can hide
//!
//! The chain and the head live in the same SQLite file as the records, and
//! the signing key in the same data directory, so this is tamper-evidence
//! against a careless or partial edit, not proof against a determined
//! attacker who can write the files:
//!
//! - **Found**: an edited byte, a deleted or reordered record anywhere in
//!   the chain, a deleted tail (whether or not a checkpoint covers it), a log
//!   truncated and appended to again, deleted checkpoints, a purge anchor
//!   moved by hand — as long as the attacker does not also rewrite the head
//!   row, the checkpoints or the key.
//! - **Found too**, though the chained bytes are untouched: a searchable
//!   column edited to hide a record from a search ([`BreakKind::ColumnAltered`],
//!   recomputed from the bytes, see [`super::columns`]), an index of the log
//!   that no longer holds exactly its rows ([`BreakKind::IndexAltered`]), a
//!   free-text index that no longer matches the records' text
//!   ([`BreakKind::FreeTextAltered`]), a changed or added table, index, view
//!   or trigger ([`BreakKind::SchemaAltered`]), and rows moved to no
//!   organisation ([`BreakKind::Orphaned`]). The store runs these checks.
//! - **Not found**: deleting the tail *after the newest checkpoint* and
//!   setting the head row back to the new last record; the head is a plain
//!   row, not signed. The window is at most one checkpoint interval
//!   (`audit.checkpoint_every_records` / `_seconds`).
//! - **Not found by this verifier alone**: rewriting everything and
//!   re-signing, when the key is read from the data directory. The server
//!   can take its key from outside the data directory and publish every
//!   checkpoint outside it (a file, the SIEM forwarders);
//!   [`super::standalone`] then checks an export against those kept
//!   checkpoints, and a checkpoint signed earlier names a link the rewritten
//!   log cannot reproduce.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::columns::ColumnMismatch;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The link before an org's first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// The link of record `sequence` whose stored bytes hash to `record_sha256`.
pub fn link(previous: &[u8; 32], sequence: i64, record_sha256: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"tracklog-audit-link-v1");
    hasher.update(previous);
    hasher.update(sequence.to_be_bytes());
    hasher.update(record_sha256);
    hasher.finalize().into()
}

/// A signed statement that an org's chain reached `sequence` with link `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// 1, 2, 3... per org: a gap means checkpoints were deleted.
    pub number: i64,
    pub sequence: i64,
    pub hash: [u8; 32],
    /// The retention anchor in force: chain starts after this sequence
    /// with this link (0 and [`GENESIS`] before any purge).
    pub anchor_sequence: i64,
    pub anchor_hash: [u8; 32],
    pub created_at_ms: i64,
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// The exact bytes signed. `org` is the org's name, so a checkpoint cannot
    /// be moved to another org.
    pub fn message(
        org: &str,
        number: i64,
        sequence: i64,
        hash: &[u8; 32],
        anchor_sequence: i64,
        anchor_hash: &[u8; 32],
        created_at_ms: i64,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"tracklog-audit-checkpoint-v1\n");
        out.extend_from_slice(org.as_bytes());
        out.push(b'\n');
        for n in [number, sequence, anchor_sequence, created_at_ms] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(hash);
        out.extend_from_slice(anchor_hash);
        out
    }

    /// Signs a new checkpoint.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &SigningKey,
        org: &str,
        number: i64,
        sequence: i64,
        hash: [u8; 32],
        anchor_sequence: i64,
        anchor_hash: [u8; 32],
        created_at_ms: i64,
    ) -> Self {
        let message = Self::message(
            org,
            number,
            sequence,
            &hash,
            anchor_sequence,
            &anchor_hash,
            created_at_ms,
        );
        Self {
            number,
            sequence,
            hash,
            anchor_sequence,
            anchor_hash,
            created_at_ms,
            signature: key.sign(&message).to_bytes(),
        }
    }

    /// Whether the signature is good for `org` under `key`.
    pub fn verify(&self, key: &VerifyingKey, org: &str) -> bool {
        let message = Self::message(
            org,
            self.number,
            self.sequence,
            &self.hash,
            self.anchor_sequence,
            &self.anchor_hash,
            self.created_at_ms,
        );
        key.verify(&message, &Signature::from_bytes(&self.signature))
            .is_ok()
    }
}

/// One stored record as the verifier sees it. `record_sha256` is computed by
/// the reader from the bytes actually stored; `None` when they could not be
/// read back whole (a missing part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    pub sequence: i64,
    pub previous: [u8; 32],
    pub hash: [u8; 32],
    pub record_sha256: Option<[u8; 32]>,
    /// A searchable column that differs from what the record's bytes
    /// imply (see [`super::columns`]); `None` when they agree or the bytes
    /// could not be read.
    pub columns: Option<ColumnMismatch>,
}

/// What kind of damage was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// A record's bytes no longer match its link.
    RecordAltered,
    /// A record does not point at the record before it.
    BrokenLink,
    /// One or more sequence numbers are absent.
    RecordsMissing,
    /// A split record lacks parts.
    PartsMissing,
    /// A checkpoint's signature does not verify.
    BadCheckpointSignature,
    /// Checkpoint numbers have a gap.
    CheckpointsMissing,
    /// A checkpoint names a link the log no longer has (truncated and
    /// re-appended, or records deleted at the tail).
    CheckpointMismatch,
    /// The log starts after a purge that no checkpoint signed.
    UnsignedAnchor,
    /// The last record the writer wrote is gone or differs: records were
    /// deleted or rewritten at the tail.
    HeadMismatch,
    /// A column that search, reports or export read differs from the
    /// chained record: searches by that column would miss or misfile it.
    ColumnAltered,
    /// An index of the log does not hold exactly the log's rows: searches
    /// through it would miss records or find others.
    IndexAltered,
    /// The free-text index does not match the chained records' text.
    FreeTextAltered,
    /// The definition of a table, index or view of the log differs from
    /// the one this build creates, or something was added to them.
    SchemaAltered,
    /// Records, parts or checkpoints that belong to no organisation.
    Orphaned,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Break {
    pub kind: BreakKind,
    /// The sequence where it was found.
    pub sequence: i64,
    /// The checkpoint involved, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<i64>,
    /// The column, index or table involved, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub message: String,
}

impl Break {
    /// Damage to what lies beside the chain (an index, the free-text index,
    /// the schema), not tied to one record: its `sequence` is 0.
    pub fn structural(kind: BreakKind, object: impl Into<String>, message: String) -> Self {
        Self {
            kind,
            sequence: 0,
            checkpoint: None,
            object: Some(object.into()),
            message,
        }
    }
}

/// The verifier's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verification {
    pub ok: bool,
    /// Records whose links were checked.
    pub records_checked: u64,
    pub checkpoints_checked: u64,
    /// The last sequence checked.
    pub last_sequence: Option<i64>,
    pub first_break: Option<Break>,
}

impl Verification {
    /// Adds damage found beside the chain (see [`Break::structural`]),
    /// unless a break was already found.
    pub fn add(&mut self, found: Option<Break>) {
        if self.first_break.is_none()
            && let Some(found) = found
        {
            self.first_break = Some(found);
            self.ok = false;
        }
    }
}

/// Walks the chain. `rows` must be in sequence order and start at the first
/// stored record (or at `from`); `anchor` is the stored retention anchor.
/// Stops at the first break.
pub struct ChainVerifier<'a> {
    org: &'a str,
    key: &'a VerifyingKey,
    expected_sequence: i64,
    expected_previous: [u8; 32],
    /// Whether rows before the first one seen were skipped on purpose
    /// (`--from`): the first row's `previous` is then taken on trust.
    trust_first: bool,
    checked: u64,
    last: Option<i64>,
    first_break: Option<Break>,
    /// The written head to check, once [`ChainVerifier::expect_head`] gave it.
    head: Option<Option<(i64, [u8; 32])>>,
}

impl<'a> ChainVerifier<'a> {
    /// Starts after the anchor (`(0, GENESIS)` when nothing was purged).
    pub fn new(
        org: &'a str,
        key: &'a VerifyingKey,
        anchor: (i64, [u8; 32]),
        trust_first: bool,
    ) -> Self {
        Self {
            org,
            key,
            expected_sequence: anchor.0 + 1,
            expected_previous: anchor.1,
            trust_first,
            checked: 0,
            last: None,
            first_break: None,
            head: None,
        }
    }

    /// Also checks the org's written head (`None`: the store has none): the
    /// log must still hold that record with that link, or have purged
    /// exactly up to it.
    pub fn expect_head(&mut self, head: Option<(i64, [u8; 32])>) {
        self.head = Some(head);
    }

    /// The written head's break, if any; `links` as in [`Self::finish`].
    fn head_break(
        &self,
        anchor: (i64, [u8; 32]),
        links: &impl Fn(i64) -> Option<[u8; 32]>,
    ) -> Option<Break> {
        let head = self.head?;
        let fail = |sequence: i64, message: String| Break {
            kind: BreakKind::HeadMismatch,
            sequence,
            checkpoint: None,
            object: None,
            message,
        };
        let Some((sequence, hash)) = head else {
            // No head, yet the org has records or purged some.
            let sequence = self.last.unwrap_or(anchor.0);
            return (sequence > 0).then(|| {
                fail(
                    sequence,
                    "the log has records but no written head: the head was deleted".into(),
                )
            });
        };
        if sequence <= anchor.0 {
            // Everything the writer wrote was purged: the head is the anchor.
            return ((sequence, hash) != anchor).then(|| {
                fail(
                    sequence,
                    format!(
                        "the writer last wrote record {sequence}, which does not match the purge anchor at record {}",
                        anchor.0
                    ),
                )
            });
        }
        match links(sequence) {
            Some(found) if found == hash => None,
            Some(_) => Some(fail(
                sequence,
                format!(
                    "record {sequence} differs from the one the writer last wrote: the tail was rewritten"
                ),
            )),
            None => Some(fail(
                sequence,
                format!(
                    "the writer last wrote record {sequence}, which is gone: records were deleted at the tail"
                ),
            )),
        }
    }

    fn broken(&mut self, kind: BreakKind, sequence: i64, message: String) {
        if self.first_break.is_none() {
            self.first_break = Some(Break {
                kind,
                sequence,
                checkpoint: None,
                object: None,
                message,
            });
        }
    }

    /// Whether the walk already found a break.
    pub fn is_broken(&self) -> bool {
        self.first_break.is_some()
    }

    /// Checks the next row.
    pub fn push(&mut self, row: &ChainRow) {
        if self.is_broken() {
            return;
        }
        if self.trust_first && self.checked == 0 {
            self.expected_sequence = row.sequence;
            self.expected_previous = row.previous;
        }
        if row.sequence != self.expected_sequence {
            let message = if row.sequence > self.expected_sequence {
                format!(
                    "records {} to {} are missing",
                    self.expected_sequence,
                    row.sequence - 1
                )
            } else {
                format!(
                    "sequence {} appears out of order after {}",
                    row.sequence,
                    self.expected_sequence - 1
                )
            };
            return self.broken(BreakKind::RecordsMissing, self.expected_sequence, message);
        }
        if row.previous != self.expected_previous {
            return self.broken(
                BreakKind::BrokenLink,
                row.sequence,
                format!(
                    "record {} does not link to record {}",
                    row.sequence,
                    row.sequence - 1
                ),
            );
        }
        let Some(digest) = row.record_sha256 else {
            return self.broken(
                BreakKind::PartsMissing,
                row.sequence,
                format!("record {} is split and lacks parts", row.sequence),
            );
        };
        if link(&row.previous, row.sequence, &digest) != row.hash {
            return self.broken(
                BreakKind::RecordAltered,
                row.sequence,
                format!("record {} was altered after it was written", row.sequence),
            );
        }
        if let Some(mismatch) = &row.columns {
            self.broken(
                BreakKind::ColumnAltered,
                row.sequence,
                format!(
                    "record {}: its {} column holds {:?}, but the chained record says {:?}",
                    row.sequence, mismatch.column, mismatch.found, mismatch.expected
                ),
            );
            if let Some(found) = &mut self.first_break {
                found.object = Some(mismatch.column.to_owned());
            }
            return;
        }
        self.expected_previous = row.hash;
        self.expected_sequence += 1;
        self.checked += 1;
        self.last = Some(row.sequence);
    }

    /// Checks the checkpoints against the chain walked, and answers.
    /// `links` gives the stored link at a sequence, if that record exists.
    pub fn finish(
        mut self,
        checkpoints: &[Checkpoint],
        anchor: (i64, [u8; 32]),
        links: impl Fn(i64) -> Option<[u8; 32]>,
    ) -> Verification {
        let mut checked = 0;
        let mut found: Option<Break> = None;
        let mut anchor_signed = anchor.0 == 0;
        for (expected_number, checkpoint) in (1..).zip(checkpoints) {
            let fail = |kind, message: String| Break {
                kind,
                sequence: checkpoint.sequence,
                checkpoint: Some(checkpoint.number),
                object: None,
                message,
            };
            if checkpoint.number != expected_number {
                found = Some(fail(
                    BreakKind::CheckpointsMissing,
                    format!(
                        "checkpoints {} to {} are missing",
                        expected_number,
                        checkpoint.number - 1
                    ),
                ));
                break;
            }
            if !checkpoint.verify(self.key, self.org) {
                found = Some(fail(
                    BreakKind::BadCheckpointSignature,
                    format!("checkpoint {} has a bad signature", checkpoint.number),
                ));
                break;
            }
            if (checkpoint.anchor_sequence, checkpoint.anchor_hash) == anchor {
                anchor_signed = true;
            }
            if checkpoint.sequence > anchor.0 {
                match links(checkpoint.sequence) {
                    Some(hash) if hash == checkpoint.hash => {}
                    Some(_) => {
                        found = Some(fail(
                            BreakKind::CheckpointMismatch,
                            format!(
                                "record {} differs from what checkpoint {} signed: the log was rewritten from there or earlier",
                                checkpoint.sequence, checkpoint.number
                            ),
                        ));
                        break;
                    }
                    None => {
                        found = Some(fail(
                            BreakKind::CheckpointMismatch,
                            format!(
                                "checkpoint {} signed record {}, which is gone: records were deleted at the tail",
                                checkpoint.number, checkpoint.sequence
                            ),
                        ));
                        break;
                    }
                }
            }
            checked += 1;
        }
        if found.is_none() && !anchor_signed {
            found = Some(Break {
                kind: BreakKind::UnsignedAnchor,
                sequence: anchor.0,
                checkpoint: None,
                object: None,
                message: format!(
                    "the log starts after record {}, but no checkpoint signed that purge",
                    anchor.0
                ),
            });
        }
        if found.is_none() {
            found = self.head_break(anchor, &links);
        }
        // The chain's own break comes first in the log's order.
        let first_break = match (self.first_break.take(), found) {
            (Some(chain), Some(other)) if other.sequence < chain.sequence => Some(other),
            (Some(chain), _) => Some(chain),
            (None, other) => other,
        };
        Verification {
            ok: first_break.is_none(),
            records_checked: self.checked,
            checkpoints_checked: checked,
            last_sequence: self.last,
            first_break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn chain(n: i64) -> Vec<ChainRow> {
        let mut previous = GENESIS;
        (1..=n)
            .map(|sequence| {
                let digest = crate::audit::split::sha256(format!("record {sequence}").as_bytes());
                let hash = link(&previous, sequence, &digest);
                let row = ChainRow {
                    sequence,
                    previous,
                    hash,
                    record_sha256: Some(digest),
                    columns: None,
                };
                previous = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[ChainRow], checkpoints: &[Checkpoint]) -> Verification {
        let key = key();
        let public = key.verifying_key();
        let mut verifier = ChainVerifier::new("default", &public, (0, GENESIS), false);
        for row in rows {
            verifier.push(row);
        }
        verifier.finish(checkpoints, (0, GENESIS), |s| {
            rows.iter().find(|r| r.sequence == s).map(|r| r.hash)
        })
    }

    fn checkpoint(number: i64, rows: &[ChainRow], sequence: i64) -> Checkpoint {
        let hash = rows[(sequence - 1) as usize].hash;
        Checkpoint::sign(&key(), "default", number, sequence, hash, 0, GENESIS, 1)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let rows = chain(10);
        let checkpoints = [checkpoint(1, &rows, 5), checkpoint(2, &rows, 10)];
        let result = verify(&rows, &checkpoints);
        assert!(result.ok, "{result:?}");
        assert_eq!(result.records_checked, 10);
        assert_eq!(result.checkpoints_checked, 2);
    }

    #[test]
    fn each_kind_of_damage_is_found_where_it_is() {
        let rows = chain(10);
        let checkpoints = [
            checkpoint(1, &rows, 3),
            checkpoint(2, &rows, 6),
            checkpoint(3, &rows, 9),
        ];

        let mut altered = rows.clone();
        altered[4].record_sha256 = Some([1; 32]);
        let found = verify(&altered, &checkpoints).first_break.unwrap();
        assert_eq!((found.kind, found.sequence), (BreakKind::RecordAltered, 5));

        let mut middle = rows.clone();
        middle.remove(6);
        let found = verify(&middle, &checkpoints).first_break.unwrap();
        assert_eq!((found.kind, found.sequence), (BreakKind::RecordsMissing, 7));

        let tail = &rows[..7];
        let found = verify(tail, &checkpoints).first_break.unwrap();
        assert_eq!(
            (found.kind, found.checkpoint),
            (BreakKind::CheckpointMismatch, Some(3))
        );

        let found = verify(&rows, &[checkpoints[0].clone()][..])
            .first_break
            .is_none();
        assert!(found, "the newest checkpoints may simply not exist yet");
        let gap = [checkpoints[0].clone(), checkpoint(4, &rows, 10)];
        let found = verify(&rows, &gap).first_break.unwrap();
        assert_eq!(found.kind, BreakKind::CheckpointsMissing);

        let mut forged = checkpoints.clone();
        forged[1].sequence = 7;
        let found = verify(&rows, &forged).first_break.unwrap();
        assert_eq!(found.kind, BreakKind::BadCheckpointSignature);
    }

    fn verify_with_head(rows: &[ChainRow], head: Option<(i64, [u8; 32])>) -> Verification {
        let key = key();
        let public = key.verifying_key();
        let mut verifier = ChainVerifier::new("default", &public, (0, GENESIS), false);
        verifier.expect_head(head);
        for row in rows {
            verifier.push(row);
        }
        verifier.finish(&[], (0, GENESIS), |s| {
            rows.iter().find(|r| r.sequence == s).map(|r| r.hash)
        })
    }

    #[test]
    fn a_tail_deleted_after_the_last_checkpoint_is_found_by_the_head() {
        let rows = chain(10);
        let head = Some((10, rows[9].hash));
        assert!(verify_with_head(&rows, head).ok);
        assert!(verify_with_head(&[], None).ok, "an empty log has no head");

        let found = verify_with_head(&rows[..8], head).first_break.unwrap();
        assert_eq!((found.kind, found.sequence), (BreakKind::HeadMismatch, 10));
        assert!(found.message.contains("deleted at the tail"), "{found:?}");

        // The tail rewritten: record 10 is there with another link.
        let mut rewritten = rows.clone();
        rewritten[9].hash = [9; 32];
        let found = verify_with_head(&rewritten, head).first_break.unwrap();
        assert_eq!(found.sequence, 10);

        let found = verify_with_head(&rows, None).first_break.unwrap();
        assert_eq!(found.kind, BreakKind::HeadMismatch, "the head row deleted");

        // Without the head, the same deletion goes unnoticed.
        assert!(verify(&rows[..8], &[]).ok);
    }

    #[test]
    fn a_head_purged_with_everything_is_the_anchor() {
        let rows = chain(4);
        let anchor = (4, rows[3].hash);
        let key = key();
        let public = key.verifying_key();
        let signed = Checkpoint::sign(&key, "default", 1, 4, rows[3].hash, 4, anchor.1, 1);
        for (head, ok) in [
            (anchor, true),
            ((3, rows[2].hash), false),
            ((4, [1; 32]), false),
        ] {
            let mut verifier = ChainVerifier::new("default", &public, anchor, false);
            verifier.expect_head(Some(head));
            let result = verifier.finish(std::slice::from_ref(&signed), anchor, |_| None);
            assert_eq!(result.ok, ok, "{head:?}: {result:?}");
        }
    }

    #[test]
    fn a_purged_prefix_verifies_from_its_signed_anchor() {
        let rows = chain(10);
        let anchor = (4, rows[3].hash);
        let key = key();
        let public = key.verifying_key();
        let signed = Checkpoint::sign(&key, "default", 1, 10, rows[9].hash, 4, anchor.1, 1);
        let mut verifier = ChainVerifier::new("default", &public, anchor, false);
        for row in &rows[4..] {
            verifier.push(row);
        }
        let result = verifier.finish(&[signed], anchor, |s| {
            rows.iter().find(|r| r.sequence == s).map(|r| r.hash)
        });
        assert!(result.ok, "{result:?}");

        let mut verifier = ChainVerifier::new("default", &public, anchor, false);
        for row in &rows[4..] {
            verifier.push(row);
        }
        let result = verifier.finish(&[], anchor, |_| None);
        assert_eq!(result.first_break.unwrap().kind, BreakKind::UnsignedAnchor);
    }
}
