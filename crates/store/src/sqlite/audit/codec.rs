//! Compressed storage of audit records.
//!
//! A record's stored bytes are its JSON, which is what the chain hashes.
//! Records of one org repeat the same keys and many of the same values, and
//! are each too small (a few hundred bytes) for zstd to find much to share
//! within one. So each org gets a zstd dictionary, trained from its first
//! records (`audit.compress_after_records`, 2,000 by default) and kept in
//! `audit_dicts`. The samples are read back from `audit_log` when the org's
//! chain reaches that sequence, so nothing is held in memory while an org
//! grows, and a restart changes nothing. Every later record is stored as
//!
//! ```text
//! 0x00 ‖ dictionary id (8 bytes, big-endian) ‖ zstd frame of the JSON
//! ```
//!
//! which shrinks a typical record about sixfold. The JSON always begins with
//! `{`, so the first byte tells the two forms apart, and records stored
//! before the dictionary (or where compressing would not shrink them) stay
//! as they were. Split records (see `split`) are never compressed.
//!
//! A dictionary's id is derived from its org and bytes ([`dictionary_id`]),
//! so a dictionary can be added in the transaction that first uses it with
//! `INSERT OR IGNORE`, again in every batch (a rolled-back batch cannot leave
//! records whose dictionary is gone), and an edited dictionary row no longer
//! matches its id: reads refuse it, and the records it would decode fail
//! verification. Dictionaries are never deleted; each is a few kilobytes.
//!
//! Reads decode through the SQL functions `tl_audit_json` and
//! `tl_audit_text` (see `audit_integrity`), which keep a [`Decoder`] per
//! connection, so search, export, verification and the free-text index's
//! content view all see the JSON the chain covers.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::audit::split::sha256;
use zstd::zstd_safe::{self, CCtx, CDict, CParameter, DCtx, DDict};

use super::super::sql_error;
use crate::StoreError;

/// The first byte of a compressed record.
const COMPRESSED: u8 = 0x00;
/// The header before the zstd frame: the marker and the dictionary id.
const HEADER: usize = 9;
/// The size dictionaries are trained to.
const DICTIONARY_BYTES: usize = 16 * 1024;
/// The most sample bytes a dictionary is trained from.
const MAX_SAMPLE_BYTES: i64 = 4 * 1024 * 1024;
/// zstd's level for records. With a dictionary, level 1 ("fast") left the
/// bench's records 2 % larger than level 3, whose "double fast" search took
/// about a tenth of the writer's time, and level 19 no smaller than 3.
const LEVEL: i32 = 1;
/// The most a record may decompress to; larger claims are refused.
const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

/// The id of org `org`'s dictionary `bytes`: the first 8 bytes of a
/// SHA-256 over both, so that an edit of either is seen.
pub(crate) fn dictionary_id(org: i64, bytes: &[u8]) -> i64 {
    let mut input = Vec::with_capacity(bytes.len() + 32);
    input.extend_from_slice(b"tracklog-audit-dictionary\0");
    input.extend_from_slice(&org.to_le_bytes());
    input.extend_from_slice(bytes);
    let digest = sha256(&input);
    i64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// An org's dictionary, ready to compress with.
struct Dictionary {
    id: i64,
    bytes: Vec<u8>,
    prepared: CDict<'static>,
}

enum OrgState {
    /// No dictionary yet: the org's records are stored as they are until
    /// its chain reaches this sequence.
    Waiting {
        until: i64,
    },
    Ready(Arc<Dictionary>),
}

struct Compressing {
    context: CCtx<'static>,
    orgs: HashMap<i64, OrgState>,
    /// Orgs whose dictionary this batch has made sure is stored.
    stored_this_batch: HashSet<i64>,
}

/// The writer's side: picks each org's dictionary, trains it when the org
/// has enough records, and compresses. One per store, used by whichever
/// thread writes audit records.
pub(crate) struct Compressor {
    /// Records sampled before an org's dictionary is trained; 0 stores
    /// every record uncompressed.
    train_after: usize,
    state: Mutex<Compressing>,
}

impl Compressor {
    pub fn new(train_after: usize) -> Self {
        let mut context = CCtx::create();
        // The frame needs its content size (to size the output), not a
        // checksum (the chain is one) nor zstd's own dictionary id (the
        // header carries ours).
        for parameter in [
            CParameter::ContentSizeFlag(true),
            CParameter::ChecksumFlag(false),
            CParameter::DictIdFlag(false),
        ] {
            let _ = context.set_parameter(parameter);
        }
        Self {
            train_after,
            state: Mutex::new(Compressing {
                context,
                orgs: HashMap::new(),
                stored_this_batch: HashSet::new(),
            }),
        }
    }

    /// Starts a batch: the dictionaries it uses are stored again (a no-op
    /// when they are) in its transaction.
    pub fn batch(&self) -> Batch<'_> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stored_this_batch.clear();
        Batch {
            train_after: self.train_after,
            state,
        }
    }
}

/// The compressor, held for one batch of records.
pub(crate) struct Batch<'a> {
    train_after: usize,
    state: std::sync::MutexGuard<'a, Compressing>,
}

impl Batch<'_> {
    /// The bytes to store for `json`, `org`'s record `sequence`.
    pub fn store(
        &mut self,
        conn: &Connection,
        org: i64,
        sequence: i64,
        json: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        if self.train_after == 0 {
            return Ok(json);
        }
        let train_after = self.train_after as i64;
        let state = &mut *self.state;
        if let std::collections::hash_map::Entry::Vacant(vacant) = state.orgs.entry(org) {
            vacant.insert(match newest_dictionary(conn, org)? {
                Some(dictionary) => OrgState::Ready(Arc::new(dictionary)),
                None => OrgState::Waiting { until: train_after },
            });
        }
        let dictionary = match state.orgs.get(&org) {
            Some(OrgState::Ready(dictionary)) => dictionary.clone(),
            Some(OrgState::Waiting { until }) if sequence < *until => return Ok(json),
            Some(OrgState::Waiting { .. }) => {
                let samples = first_records(conn, org, self.train_after)?;
                if samples.is_empty() {
                    // Every record so far was split (or purged): try again
                    // after as many more.
                    let until = sequence.saturating_add(train_after);
                    state.orgs.insert(org, OrgState::Waiting { until });
                    return Ok(json);
                }
                let dictionary = Arc::new(train(org, &samples)?);
                state.orgs.insert(org, OrgState::Ready(dictionary.clone()));
                dictionary
            }
            None => return Ok(json),
        };
        if state.stored_this_batch.insert(org) {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO audit_dicts (id, org_id, dict) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![dictionary.id, org, dictionary.bytes]))
            .map_err(sql_error)?;
        }
        let mut out = vec![0u8; HEADER + zstd_safe::compress_bound(json.len())];
        out[0] = COMPRESSED;
        out[1..HEADER].copy_from_slice(&dictionary.id.to_be_bytes());
        let context = &mut state.context;
        context
            .ref_cdict(&dictionary.prepared)
            .map_err(|code| zstd_error("selecting the dictionary", code))?;
        let written = context
            .compress2(&mut out[HEADER..], &json)
            .map_err(|code| zstd_error("compressing a record", code))?;
        out.truncate(HEADER + written);
        Ok(if out.len() < json.len() { out } else { json })
    }
}

fn zstd_error(what: &str, code: usize) -> StoreError {
    StoreError::Internal(format!("zstd, {what}: {}", zstd_safe::get_error_name(code)))
}

/// Trains a dictionary from an org's first records. When zstd's trainer
/// finds too little to work with (a handful of records), the records
/// themselves become a raw-content dictionary, which zstd also accepts.
fn train(org: i64, samples: &[Vec<u8>]) -> Result<Dictionary, StoreError> {
    let bytes = match zstd::dict::from_samples(samples, DICTIONARY_BYTES) {
        Ok(trained) if !trained.is_empty() => trained,
        _ => {
            let mut raw = Vec::with_capacity(DICTIONARY_BYTES);
            for sample in samples.iter().rev() {
                if raw.len() + sample.len() > DICTIONARY_BYTES {
                    break;
                }
                raw.extend_from_slice(sample);
            }
            raw
        }
    };
    prepare(dictionary_id(org, &bytes), bytes)
}

fn prepare(id: i64, bytes: Vec<u8>) -> Result<Dictionary, StoreError> {
    let prepared = CDict::try_create(&bytes, LEVEL)
        .ok_or_else(|| StoreError::Internal("zstd refused a dictionary".into()))?;
    Ok(Dictionary {
        id,
        bytes,
        prepared,
    })
}

/// The org's oldest whole records still stored as they were sent, at most
/// `count` of them and [`MAX_SAMPLE_BYTES`] in all.
fn first_records(conn: &Connection, org: i64, count: usize) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT record FROM audit_log WHERE org_id = ?1 AND parts = 0
             AND CAST(substr(record, 1, 1) AS BLOB) = x'7B' ORDER BY seq LIMIT ?2",
        )
        .map_err(sql_error)?;
    let mut rows = statement
        .query(params![org, count as i64])
        .map_err(sql_error)?;
    let (mut samples, mut bytes) = (Vec::new(), 0);
    while let Some(row) = rows.next().map_err(sql_error)? {
        let sample: Vec<u8> = row.get(0).map_err(sql_error)?;
        bytes += sample.len() as i64;
        if bytes > MAX_SAMPLE_BYTES {
            break;
        }
        samples.push(sample);
    }
    Ok(samples)
}

/// The org's newest stored dictionary whose id matches its bytes.
fn newest_dictionary(conn: &Connection, org: i64) -> Result<Option<Dictionary>, StoreError> {
    let found: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT id, dict FROM audit_dicts WHERE org_id = ?1 ORDER BY rowid DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row([org], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql_error)?;
    match found {
        Some((id, bytes)) if dictionary_id(org, &bytes) == id => prepare(id, bytes).map(Some),
        // An edited dictionary is not used for new records; verification
        // reports it through the records it decoded.
        _ => Ok(None),
    }
}

/// A connection's side: decodes stored bytes, loading dictionaries from
/// the connection as they are first met.
pub(crate) struct Decoder {
    context: DCtx<'static>,
    dictionaries: HashMap<i64, DDict<'static>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            context: DCtx::create(),
            dictionaries: HashMap::new(),
        }
    }
}

impl Decoder {
    /// The record's JSON from its stored bytes; an error when they are
    /// compressed and cannot be decoded (a missing or edited dictionary,
    /// or damaged bytes).
    pub fn decode<'a>(
        &mut self,
        conn: &Connection,
        stored: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, String> {
        if stored.first() != Some(&COMPRESSED) {
            return Ok(Cow::Borrowed(stored));
        }
        let header: [u8; 8] = stored
            .get(1..HEADER)
            .and_then(|h| h.try_into().ok())
            .ok_or("a compressed record shorter than its header")?;
        let id = i64::from_be_bytes(header);
        if let std::collections::hash_map::Entry::Vacant(vacant) = self.dictionaries.entry(id) {
            let found: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT org_id, dict FROM audit_dicts WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| e.to_string())?;
            let (org, bytes) = found.ok_or_else(|| format!("dictionary {id} is missing"))?;
            if dictionary_id(org, &bytes) != id {
                return Err(format!("dictionary {id} does not match its id"));
            }
            let prepared = DDict::try_create(&bytes).ok_or("zstd refused a dictionary")?;
            vacant.insert(prepared);
        }
        let frame = &stored[HEADER..];
        let size = zstd_safe::get_frame_content_size(frame)
            .ok()
            .flatten()
            .filter(|size| *size <= MAX_RECORD_BYTES)
            .ok_or("a compressed record without a valid size")?;
        let mut out = Vec::with_capacity(size as usize);
        let dictionary = &self.dictionaries[&id];
        self.context
            .decompress_using_ddict(&mut out, frame, dictionary)
            .map_err(|code| zstd_safe::get_error_name(code).to_string())?;
        if out.len() as u64 != size {
            return Err("a compressed record shorter than its stated size".into());
        }
        Ok(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE audit_dicts (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL,
                dict BLOB NOT NULL);
             CREATE TABLE audit_log (org_id INTEGER, seq INTEGER, parts INTEGER, record BLOB);",
        )
        .unwrap();
        conn
    }

    fn record(i: i64) -> Vec<u8> {
        format!(
            r#"{{"Id":"r{i}","Operation":"Update","User":"user{}@example.com","Fields":{{"n":{i}}}}}"#,
            i % 7
        )
        .into_bytes()
    }

    fn dictionaries(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM audit_dicts", [], |r| r.get(0))
            .unwrap()
    }

    /// Stores org 1's records `sequences` as the writer does, returning
    /// what each became.
    fn write(
        conn: &Connection,
        compressor: &Compressor,
        sequences: std::ops::Range<i64>,
    ) -> Vec<Vec<u8>> {
        let mut batch = compressor.batch();
        sequences
            .map(|sequence| {
                let stored = batch.store(conn, 1, sequence, record(sequence)).unwrap();
                conn.execute(
                    "INSERT INTO audit_log VALUES (1, ?1, 0, ?2)",
                    params![sequence, stored],
                )
                .unwrap();
                stored
            })
            .collect()
    }

    #[test]
    fn records_after_the_samples_round_trip_smaller_and_earlier_ones_stay_as_sent() {
        let conn = db();
        let compressor = Compressor::new(50);
        let mut decoder = Decoder::default();
        for (sequence, stored) in (1..).zip(write(&conn, &compressor, 1..200)) {
            let json = record(sequence);
            if sequence < 50 {
                assert_eq!(stored, json, "record {sequence} is stored as sent");
            } else {
                assert_eq!(stored[0], COMPRESSED, "record {sequence} is compressed");
                assert!(stored.len() < json.len());
            }
            assert_eq!(decoder.decode(&conn, &stored).unwrap(), json);
        }
        assert_eq!(dictionaries(&conn), 1);
    }

    #[test]
    fn a_new_process_finds_the_dictionary_or_trains_from_the_stored_records() {
        let conn = db();
        write(&conn, &Compressor::new(20), 1..10);
        // A restart before the org reached the sequence: the next process
        // trains when it does, from the records in the table.
        let stored = write(&conn, &Compressor::new(20), 10..30);
        assert_eq!(stored[9], record(19));
        assert_eq!(stored[10][0], COMPRESSED);
        // A restart after: the stored dictionary is used again.
        let stored = write(&conn, &Compressor::new(20), 30..31);
        assert_eq!(stored[0][0], COMPRESSED);
        assert_eq!(dictionaries(&conn), 1);
    }

    #[test]
    fn an_edited_or_missing_dictionary_is_refused_not_guessed() {
        let conn = db();
        let stored = write(&conn, &Compressor::new(5), 1..10);
        let last = stored.last().unwrap();
        assert_eq!(last[0], COMPRESSED);
        conn.execute("UPDATE audit_dicts SET org_id = 2", [])
            .unwrap();
        assert!(Decoder::default().decode(&conn, last).is_err());
        conn.execute("DELETE FROM audit_dicts", []).unwrap();
        assert!(Decoder::default().decode(&conn, last).is_err());
        // Damaged bytes are an error too, never other JSON.
        let mut damaged = last.clone();
        damaged.truncate(damaged.len() - 2);
        assert!(Decoder::default().decode(&conn, &damaged).is_err());
    }

    #[test]
    fn a_dictionary_lost_with_a_rolled_back_batch_is_stored_again_by_the_next() {
        let conn = db();
        let compressor = Compressor::new(5);
        write(&conn, &compressor, 1..5);
        conn.execute_batch("BEGIN").unwrap();
        write(&conn, &compressor, 5..10);
        conn.execute_batch("ROLLBACK").unwrap();
        let stored = write(&conn, &compressor, 5..6);
        assert_eq!(stored[0][0], COMPRESSED);
        assert_eq!(
            Decoder::default().decode(&conn, &stored[0]).unwrap(),
            record(5)
        );
    }

    #[test]
    fn zero_turns_compression_off() {
        let conn = db();
        let stored = write(&conn, &Compressor::new(0), 1..10);
        assert!((1..).zip(stored).all(|(i, s)| s == record(i)));
    }
}
