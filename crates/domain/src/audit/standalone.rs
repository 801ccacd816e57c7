//! Verification that trusts nothing from the server or its data directory:
//! an export of an org's log, checked against checkpoints that someone else
//! kept, under a public key that someone else kept.
//!
//! The server publishes every checkpoint it signs as one JSON line
//! ([`PublishedCheckpoint`]) to an append-only file and to the SIEM
//! forwarders. Whoever keeps those lines and the public key can later take
//! any export in JSON lines and run [`verify_export`]:
//!
//! - every checkpoint line must carry a good signature under the given key,
//!   and no two may differ under one number (a server that signs two
//!   histories is caught);
//! - each exported record's chained bytes are rebuilt from the record
//!   itself (a JSON-lines export carries the time it was stored, which the
//!   bytes hold), and the chain is recomputed from the start of the export,
//!   which must be the org's first record or a link a checkpoint vouches
//!   for;
//! - every sequence from there to the last must be present, once;
//! - every checkpoint inside the export must match the recomputed link, and
//!   a checkpoint beyond the export's end means the export was truncated.
//!
//! Nothing the export says about itself is believed: not a hash, not a
//! count, not an integrity flag. What a forged page, a forged checkpoint or
//! a truncated export looks like is in the tests of `tracklog audit verify`.

use std::collections::BTreeMap;
use std::io::BufRead;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AuditRecord;
use super::chain::{Checkpoint, GENESIS, link};
use super::columns::STORED_AT_KEY;

/// The `type` of a published checkpoint line.
pub const CHECKPOINT_TYPE: &str = "tracklog.audit.checkpoint";

/// One checkpoint as published: everything its signature covers, the
/// signature, and the public key's fingerprint for the reader's bookkeeping
/// (never trusted: the verifier uses the key it is given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedCheckpoint {
    #[serde(rename = "type")]
    pub kind: String,
    pub org: String,
    pub number: i64,
    pub sequence: i64,
    /// Base64 of the 32-byte link at `sequence`.
    pub hash: String,
    pub anchor_sequence: i64,
    pub anchor_hash: String,
    pub created_at_ms: i64,
    /// Base64 of the 64-byte Ed25519 signature.
    pub signature: String,
}

impl PublishedCheckpoint {
    pub fn new(org: &str, checkpoint: &Checkpoint) -> Self {
        Self {
            kind: CHECKPOINT_TYPE.into(),
            org: org.into(),
            number: checkpoint.number,
            sequence: checkpoint.sequence,
            hash: STANDARD.encode(checkpoint.hash),
            anchor_sequence: checkpoint.anchor_sequence,
            anchor_hash: STANDARD.encode(checkpoint.anchor_hash),
            created_at_ms: checkpoint.created_at_ms,
            signature: STANDARD.encode(checkpoint.signature),
        }
    }

    /// The line written to the file and the forwarders, without its `\n`.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The checkpoint, if its fields decode.
    pub fn checkpoint(&self) -> Result<Checkpoint, String> {
        fn bytes<const N: usize>(name: &str, text: &str) -> Result<[u8; N], String> {
            STANDARD
                .decode(text)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("{name} is not {N} bytes of base64"))
        }
        Ok(Checkpoint {
            number: self.number,
            sequence: self.sequence,
            hash: bytes("hash", &self.hash)?,
            anchor_sequence: self.anchor_sequence,
            anchor_hash: bytes("anchor_hash", &self.anchor_hash)?,
            created_at_ms: self.created_at_ms,
            signature: bytes("signature", &self.signature)?,
        })
    }
}

/// Reads a public key: the JSON of `GET /api/v1/audit/public-key`, its
/// base64 alone, or the 32 raw bytes.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey, String> {
    let raw: Vec<u8> = if let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let text = json["public_key"]
            .as_str()
            .ok_or("the JSON has no \"public_key\"")?;
        STANDARD
            .decode(text)
            .map_err(|e| format!("public_key: {e}"))?
    } else if let Ok(decoded) = STANDARD.decode(String::from_utf8_lossy(bytes).trim()) {
        decoded
    } else {
        bytes.to_vec()
    };
    let raw: [u8; 32] = raw
        .try_into()
        .map_err(|_| "a public key is 32 bytes (raw, base64, or the API's JSON)".to_owned())?;
    VerifyingKey::from_bytes(&raw).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandaloneReport {
    pub org: String,
    pub records: u64,
    pub first_sequence: i64,
    pub last_sequence: i64,
    /// Checkpoints that fell inside the export and matched.
    pub checkpoints_matched: u64,
    /// Good checkpoint lines read for the org, in all.
    pub checkpoints_read: u64,
    /// The last sequence a matched checkpoint vouches for.
    pub covered_to: i64,
    /// Records after `covered_to`: chained, but signed by no checkpoint yet.
    pub uncovered_tail: u64,
    /// Checkpoint numbers missing from the kept lines (a lost delivery, or
    /// lines removed): a note, since each checkpoint stands on its own.
    pub missing_checkpoint_numbers: Vec<i64>,
    /// Lines of the kept file that are not JSON at all, such as one torn by
    /// a crash mid-append (the server appends the checkpoint again after
    /// it): skipped, and named here.
    pub unreadable_lines: Vec<usize>,
    /// Checkpoints signed after the export was taken that vouch for records
    /// beyond its end: not held against it.
    pub checkpoints_after_export: u64,
}

/// Why a verification failed, with the line or sequence it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StandaloneError(pub String);

fn fail<T>(message: String) -> Result<T, StandaloneError> {
    Err(StandaloneError(message))
}

/// Reads the org's checkpoints from the kept lines, each verified under
/// `key`, and the numbers of lines that name a checkpoint but are not whole
/// JSON. Lines of other orgs, and lines that are no checkpoint, are skipped.
fn read_checkpoints(
    key: &VerifyingKey,
    org: &str,
    lines: impl BufRead,
) -> Result<(BTreeMap<i64, Checkpoint>, Vec<usize>), StandaloneError> {
    let mut found: BTreeMap<i64, Checkpoint> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for (index, line) in lines.split(b'\n').enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| StandaloneError(format!("checkpoints: {e}")))?;
        // A SIEM's file may hold anything beside the checkpoints.
        let line = String::from_utf8_lossy(&line);
        if line.trim().is_empty() {
            continue;
        }
        // A line as a SIEM keeps it (a syslog message with the published
        // line as its message, a webhook body) is read from its JSON on;
        // lines of anything else (the records beside them) are passed over.
        let json = line.find('{').map_or(&*line, |at| &line[at..]);
        let value = match serde_json::from_str::<serde_json::Value>(json) {
            Ok(value) if value["type"] == CHECKPOINT_TYPE => value,
            Ok(_) => continue,
            Err(_) if line.contains(CHECKPOINT_TYPE) => {
                unreadable.push(number);
                continue;
            }
            Err(_) => continue,
        };
        let published: PublishedCheckpoint = serde_json::from_value(value).map_err(|e| {
            StandaloneError(format!(
                "checkpoints line {number}: not a published checkpoint: {e}"
            ))
        })?;
        if published.kind != CHECKPOINT_TYPE || published.org != org {
            continue;
        }
        let checkpoint = published
            .checkpoint()
            .map_err(|e| StandaloneError(format!("checkpoints line {number}: {e}")))?;
        if !checkpoint.verify(key, org) {
            return fail(format!(
                "checkpoints line {number}: checkpoint #{} is not signed by the given public key",
                checkpoint.number
            ));
        }
        match found.get(&checkpoint.number) {
            Some(earlier) if earlier != &checkpoint => {
                return fail(format!(
                    "checkpoints line {number}: two different checkpoints #{} are both signed: \
                     the server signed two histories",
                    checkpoint.number
                ));
            }
            _ => {
                found.insert(checkpoint.number, checkpoint);
            }
        }
    }
    Ok((found, unreadable))
}

/// Reads the export: one record per line, each with its `Sequence`. A
/// record the server marked as damaged is refused: its bytes are not whole.
fn read_export(lines: impl BufRead) -> Result<BTreeMap<i64, [u8; 32]>, StandaloneError> {
    let mut digests = BTreeMap::new();
    for (index, line) in lines.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| StandaloneError(format!("export: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            StandaloneError(format!("export line {number}: not a JSON record: {e}"))
        })?;
        if value.get("integrity").is_some() {
            return fail(format!(
                "export line {number}: the record could not be read back whole"
            ));
        }
        let Some(stored_at) = value.get(STORED_AT_KEY).and_then(serde_json::Value::as_i64) else {
            return fail(format!(
                "export line {number}: the record has no {STORED_AT_KEY}, which its chained \
                 bytes hold: export with format=jsonl and no other tool in between"
            ));
        };
        let record: AuditRecord = serde_json::from_value(value).map_err(|e| {
            StandaloneError(format!("export line {number}: not an activity record: {e}"))
        })?;
        let Some(sequence) = record.sequence else {
            return fail(format!("export line {number}: the record has no Sequence"));
        };
        let digest: [u8; 32] = Sha256::digest(record.stored_json_at(stored_at)).into();
        if digests.insert(sequence, digest).is_some() {
            return fail(format!(
                "export line {number}: sequence {sequence} appears twice"
            ));
        }
    }
    Ok(digests)
}

/// Verifies an export in JSON lines (the `jsonl` format, unfiltered)
/// against independently kept checkpoint lines, under `key`, for the org
/// named `org`; every checkpoint counts, so the export must be at least as
/// new as the newest.
pub fn verify_export(
    key: &VerifyingKey,
    org: &str,
    checkpoints: impl BufRead,
    export: impl BufRead,
) -> Result<StandaloneReport, StandaloneError> {
    verify_export_as_of(key, org, checkpoints, export, None)
}

/// [`verify_export`] for an export taken at `as_of_ms` (the verifier's own
/// note of when it asked, never the server's word): checkpoints signed after
/// it may vouch for records the export could not hold yet, such as the
/// record of the export itself, so they do not make it truncated. Those
/// that fall inside it must still match.
pub fn verify_export_as_of(
    key: &VerifyingKey,
    org: &str,
    checkpoints: impl BufRead,
    export: impl BufRead,
    as_of_ms: Option<i64>,
) -> Result<StandaloneReport, StandaloneError> {
    let (checkpoints, unreadable_lines) = read_checkpoints(key, org, checkpoints)?;
    if checkpoints.is_empty() {
        return fail(format!(
            "no checkpoint of org {org:?} signed by the given key: nothing vouches for the export"
        ));
    }
    let digests = read_export(export)?;
    let (Some((&first, _)), Some((&last, _))) =
        (digests.first_key_value(), digests.last_key_value())
    else {
        return fail("the export holds no records".into());
    };

    // Where the chain starts: the org's first record, or a link that a
    // checkpoint signed (as the anchor of a purge, or as its head).
    let start = if first == 1 {
        Some(GENESIS)
    } else {
        checkpoints.values().find_map(|c| {
            if c.anchor_sequence == first - 1 {
                Some(c.anchor_hash)
            } else if c.sequence == first - 1 {
                Some(c.hash)
            } else {
                None
            }
        })
    };
    let Some(mut previous) = start else {
        return fail(format!(
            "the export starts at sequence {first}, and no checkpoint vouches for the link \
             before it: export the whole log"
        ));
    };

    let mut links = BTreeMap::new();
    for sequence in first..=last {
        let Some(digest) = digests.get(&sequence) else {
            return fail(format!(
                "sequence {sequence} is missing from the export (it holds {first} to {last})"
            ));
        };
        previous = link(&previous, sequence, digest);
        links.insert(sequence, previous);
    }

    let mut matched = 0u64;
    let mut later = 0u64;
    let mut covered_to = first - 1;
    for checkpoint in checkpoints.values() {
        if checkpoint.sequence > last {
            if as_of_ms.is_some_and(|as_of| checkpoint.created_at_ms > as_of) {
                later += 1;
                continue;
            }
            let hint = if as_of_ms.is_none() {
                " (if the export is older than that checkpoint, give the time it was taken)"
            } else {
                ""
            };
            return fail(format!(
                "the export ends at sequence {last}, but checkpoint #{} vouches for records up \
                 to {}: the export is truncated{hint}",
                checkpoint.number, checkpoint.sequence
            ));
        }
        for (what, sequence, signed) in [
            ("link", checkpoint.sequence, checkpoint.hash),
            ("anchor", checkpoint.anchor_sequence, checkpoint.anchor_hash),
        ] {
            if let Some(computed) = links.get(&sequence)
                && computed != &signed
            {
                return fail(format!(
                    "the export does not match checkpoint #{}: the {what} it signed at sequence \
                     {sequence} differs from the one the exported records give; a record at or \
                     before {sequence} was changed, added or removed",
                    checkpoint.number
                ));
            }
        }
        if links.contains_key(&checkpoint.sequence) {
            matched += 1;
            covered_to = covered_to.max(checkpoint.sequence);
        }
    }
    if matched == 0 {
        return fail(format!(
            "no checkpoint falls inside the export ({first} to {last}): nothing vouches for it"
        ));
    }
    let numbers: Vec<i64> = checkpoints.keys().copied().collect();
    let missing = numbers
        .windows(2)
        .flat_map(|pair| (pair[0] + 1)..pair[1])
        .collect();
    Ok(StandaloneReport {
        org: org.into(),
        records: digests.len() as u64,
        first_sequence: first,
        last_sequence: last,
        checkpoints_matched: matched,
        checkpoints_read: checkpoints.len() as u64,
        covered_to,
        uncovered_tail: (last - covered_to).max(0) as u64,
        missing_checkpoint_numbers: missing,
        unreadable_lines,
        checkpoints_after_export: later,
    })
}
