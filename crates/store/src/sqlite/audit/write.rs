//! The activity log's write side: records taken from the log (or, in a
//! process that does not own the log, straight from the caller) are given
//! their `Sequence`, linked into their org's hash chain, split when large,
//! and indexed for search and free text, all in the writer's transaction.
//!
//! The chain is computed here, behind the log, rather than on the log's
//! thread before the acknowledgement. The log fixes each record's place
//! before the 2xx: records are chained in log order, so an acknowledged
//! record's link follows from the log alone. Computing it here lets a
//! second process (the CLI beside a running server, which cannot append
//! to the server's log) write its own records under SQLite's lock: both
//! take the org's head from `audit_heads` inside the transaction that
//! moves it.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::audit::chain::{GENESIS, link};
use tracklog_domain::audit::columns::SearchColumns;
use tracklog_domain::audit::split::{self, sha256};
use tracklog_domain::audit::{AuditRecord, categorise};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::super::pipeline::{KeyHasher, Materialise};
use super::super::sql_error;
use super::super::writer::WriteContext;
use super::codec::{Batch, Compressor};
use super::hash32;
use crate::log::Frame;
use crate::log::item::{ItemError, ItemReader, ItemWriter};
use crate::{Anchor, StoreError};

/// A record accepted for an org, as the log carries it: the time it was
/// accepted (the time it is stored under, which retention purges by) and
/// the record with its `Category` set and `CreationTime` valid.
pub(crate) struct Accepted {
    pub org: OrgId,
    pub stored_at: i64,
    pub record: AuditRecord,
}

impl Accepted {
    /// Readies a record from the edge: the server assigns `Category` and
    /// `Sequence` (the latter when it is linked), and a record whose
    /// `CreationTime` cannot be read gets the time it arrived.
    pub fn new(org: OrgId, mut record: AuditRecord, now: UtcMillis) -> Self {
        record.category = Some(categorise(&record.operation));
        record.sequence = None;
        if UtcMillis::parse_rfc3339(&record.creation_time).is_err() {
            record.creation_time = now.to_rfc3339();
        }
        Self {
            org,
            stored_at: now.as_millis(),
            record,
        }
    }

    /// The log item: the time, then the record's JSON.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(&self.record).unwrap_or_default();
        let mut item = ItemWriter::with_capacity(16 + json.len());
        item.i64(self.stored_at).bytes(&json);
        item.finish()
    }

    fn decode(org: OrgId, bytes: &[u8]) -> Result<Self, String> {
        let mut item = ItemReader::new(bytes);
        let read = |e: ItemError| e.to_string();
        let stored_at = item.i64().map_err(read)?;
        let json = item.bytes().map_err(read)?;
        item.end().map_err(read)?;
        let record =
            serde_json::from_slice(json).map_err(|e| format!("a logged audit record: {e}"))?;
        Ok(Self {
            org,
            stored_at,
            record,
        })
    }

    /// The idempotency key: the record's `Id` in its org.
    pub fn key(&self, hasher: &KeyHasher) -> u128 {
        hasher.digest(&[&self.org.0.to_le_bytes(), self.record.id.as_bytes()])
    }
}

/// Which of `ids` the org's log holds already.
pub(crate) fn stored_ids(
    conn: &Connection,
    org: OrgId,
    ids: &[&str],
) -> Result<Vec<bool>, StoreError> {
    let mut probe = conn
        .prepare_cached("SELECT 1 FROM audit_log WHERE org_id = ?1 AND id = ?2")
        .map_err(sql_error)?;
    ids.iter()
        .map(|id| probe.exists(params![org.0, id]).map_err(sql_error))
        .collect()
}

/// Links and stores records in the order given, each org's after its
/// written head. A record whose `Id` its org holds already is skipped, so
/// that applying a batch again changes nothing. Returns, for each record,
/// whether it was stored.
pub(crate) fn apply_records(
    conn: &Connection,
    items: Vec<Accepted>,
    threshold: usize,
    codec: &Compressor,
) -> Result<Vec<bool>, StoreError> {
    let mut codec = codec.batch();
    let mut heads: HashMap<i64, (i64, [u8; 32], bool)> = HashMap::new();
    let mut stored = Vec::with_capacity(items.len());
    for Accepted {
        org,
        stored_at,
        mut record,
    } in items
    {
        let head = match heads.entry(org.0) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let (sequence, hash) = head(conn, org)?;
                entry.insert((sequence, hash, false))
            }
        };
        record.sequence = Some(head.0 + 1);
        // The insert itself finds an `Id` the org holds already, and then
        // the head does not move.
        let placed = Placed {
            previous: &head.1,
            threshold,
            now: stored_at,
        };
        match insert(conn, org, &mut record, placed, &mut codec)? {
            Some(hash) => {
                *head = (head.0 + 1, hash, true);
                stored.push(true);
            }
            None => stored.push(false),
        }
    }
    for (org, (sequence, hash, moved)) in heads {
        if moved {
            set_written_head(conn, OrgId(org), sequence, &hash)?;
        }
    }
    Ok(stored)
}

/// The activity log's materialiser.
pub(crate) struct AuditRecords {
    /// Records whose JSON is longer than this are stored as parts.
    pub threshold: usize,
    /// Compresses records with their org's dictionary.
    pub codec: Arc<Compressor>,
}

impl Materialise for AuditRecords {
    type Item = Accepted;

    fn decode(&self, frame: &Frame) -> Result<Vec<Accepted>, String> {
        frame
            .items
            .iter()
            .map(|item| Accepted::decode(OrgId(frame.org), item))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("audit frame {}: {e}", frame.seq))
    }

    fn apply(&self, ctx: &mut WriteContext<'_>, items: Vec<Accepted>) -> Result<(), StoreError> {
        apply_records(ctx.conn, items, self.threshold, &self.codec).map(|_| ())
    }
}

pub(super) fn head(conn: &Connection, org: OrgId) -> Result<(i64, [u8; 32]), StoreError> {
    if let Some(head) = written_head(conn, org)? {
        return Ok(head);
    }
    let last: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT seq, hash FROM audit_log WHERE org_id = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row([org.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql_error)?;
    match last {
        Some((seq, hash)) => Ok((seq, hash32(hash)?)),
        None => anchor(conn, org),
    }
}

pub(super) fn written_head(
    conn: &Connection,
    org: OrgId,
) -> Result<Option<(i64, [u8; 32])>, StoreError> {
    let found: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_heads WHERE org_id = ?1")
        .and_then(|mut s| {
            s.query_row([org.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql_error)?;
    found
        .map(|(seq, hash)| Ok((seq, hash32(hash)?)))
        .transpose()
}

/// Moves the written head; called in the transaction that wrote the records.
fn set_written_head(
    conn: &Connection,
    org: OrgId,
    sequence: i64,
    hash: &[u8; 32],
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit_heads (org_id, seq, hash) VALUES (?1, ?2, ?3)
         ON CONFLICT(org_id) DO UPDATE SET seq = ?2, hash = ?3",
    )
    .and_then(|mut s| s.execute(params![org.0, sequence, hash.as_slice()]))
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn anchor(conn: &Connection, org: OrgId) -> Result<Anchor, StoreError> {
    let found: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_anchors WHERE org_id = ?1")
        .and_then(|mut s| {
            s.query_row([org.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql_error)?;
    match found {
        Some((seq, hash)) => Ok((seq, hash32(hash)?)),
        None => Ok((0, GENESIS)),
    }
}

/// Where a record goes: after the link `previous`, split when longer than
/// `threshold`, stored at `now`.
struct Placed<'a> {
    previous: &'a [u8; 32],
    threshold: usize,
    now: i64,
}

/// Inserts one record (already given its sequence and category) and links
/// it; `None`, and nothing written, when the org holds its `Id` already.
fn insert(
    conn: &Connection,
    org: OrgId,
    record: &mut AuditRecord,
    placed: Placed<'_>,
    codec: &mut Batch<'_>,
) -> Result<Option<[u8; 32]>, StoreError> {
    let Placed {
        previous,
        threshold,
        now,
    } = placed;
    let sequence = record.sequence.unwrap_or_default();
    let mut json = record.stored_json_at(now);
    if json.len() > threshold && record.correlation_id.is_none() {
        // The parts share the record's CorrelationId; give it one.
        record.correlation_id = Some(uuid_like(previous, sequence, now));
        json = record.stored_json_at(now);
    }
    let digest = sha256(&json);
    let hash = link(previous, sequence, &digest);
    let parts = split::split(&json, threshold);
    let columns = SearchColumns::of(record, Some(now));
    // A split record's bytes are its parts'; a whole one's are compressed
    // with its org's dictionary once it has one.
    let stored = match parts {
        Some(_) => None,
        None => Some(codec.store(conn, org.0, sequence, json)?),
    };
    conn.prepare_cached(
        "INSERT INTO audit_log (org_id, seq, id, creation_time, stored_at, operation, category,
            user_name, entity_name, entity_id, result_status, client_ip, service_name,
            correlation_id, parts, record, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (org_id, id) DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(params![
            org.0,
            sequence,
            columns.id,
            columns.creation_time,
            now,
            columns.operation,
            columns.category,
            columns.user,
            columns.entity_name,
            columns.entity_id,
            columns.result_status,
            columns.client_ip,
            columns.service_name,
            columns.correlation_id,
            parts.as_ref().map_or(0, Vec::len) as i64,
            stored,
            previous.as_slice(),
            hash.as_slice(),
        ])
    })
    .map_err(sql_error)?;
    if conn.changes() == 0 {
        return Ok(None);
    }
    let rid = conn.last_insert_rowid();
    if let Some(parts) = parts {
        let correlation = record.correlation_id.clone().unwrap_or_default();
        let mut statement = conn
            .prepare_cached(
                "INSERT INTO audit_parts (org_id, seq, part, total, correlation_id, whole_sha256, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(sql_error)?;
        for part in parts {
            statement
                .execute(params![
                    org.0,
                    sequence,
                    part.index,
                    part.total,
                    correlation,
                    part.whole_sha256.as_slice(),
                    part.bytes
                ])
                .map_err(sql_error)?;
        }
    }
    // The words as `audit_text` derives them from the stored bytes (a test
    // holds the two equal), without parsing the bytes again.
    conn.prepare_cached("INSERT INTO audit_fts (rowid, body) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![rid, record.search_text()]))
        .map_err(sql_error)?;
    Ok(Some(hash))
}

/// Adds a record's text to the free-text index, from its stored bytes and
/// through the same function as the index's content view (`audit_text`),
/// so that the index is exactly what its integrity check expects. Every
/// record gets a row, even without text.
fn index_text(conn: &Connection, rid: i64, stored: &[u8]) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO audit_fts (rowid, body) VALUES (?1, tl_audit_text(?2))")
        .and_then(|mut s| s.execute(params![rid, stored]))
        .map_err(sql_error)?;
    Ok(())
}

/// A stable UUID-shaped id derived from the chain position, for records that
/// need a `CorrelationId` and came without one.
fn uuid_like(previous: &[u8; 32], sequence: i64, now: i64) -> String {
    let mut seed = previous.to_vec();
    seed.extend_from_slice(&sequence.to_be_bytes());
    seed.extend_from_slice(&now.to_be_bytes());
    let d = sha256(&seed);
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Links rows that came from schema version 1 (their links are zero) and
/// indexes their text. Runs at start-up, before the writer.
pub(crate) fn backfill(conn: &Connection) -> Result<(), StoreError> {
    let orgs: Vec<i64> = conn
        .prepare("SELECT DISTINCT org_id FROM audit_log WHERE hash = zeroblob(32)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sql_error)?;
    for org in orgs {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_error)?;
        let result = (|| {
            let rows: Vec<(i64, i64, Vec<u8>)> = conn
                .prepare("SELECT rid, seq, record FROM audit_log WHERE org_id = ?1 ORDER BY seq")
                .and_then(|mut s| {
                    s.query_map([org], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect()
                })
                .map_err(sql_error)?;
            let mut previous = GENESIS;
            let mut last = None;
            for (rid, seq, bytes) in rows {
                let hash = link(&previous, seq, &sha256(&bytes));
                conn.execute(
                    "UPDATE audit_log SET prev_hash = ?1, hash = ?2 WHERE rid = ?3",
                    params![previous.as_slice(), hash.as_slice(), rid],
                )
                .map_err(sql_error)?;
                index_text(conn, rid, &bytes)?;
                previous = hash;
                last = Some(seq);
            }
            if let Some(seq) = last {
                set_written_head(conn, OrgId(org), seq, &previous)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => conn.execute_batch("COMMIT").map_err(sql_error)?,
            Err(error) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(error);
            }
        }
    }
    Ok(())
}
