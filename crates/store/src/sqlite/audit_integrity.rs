//! Proof that what search can see of the activity log is what was chained.
//!
//! The chain covers each record's stored bytes. Search, reports and export
//! also read what lies beside them: the searchable columns of `audit_log`,
//! its b-tree indexes, the free-text index and the schema that defines
//! them. Someone who can write the database file could edit any of those
//! to hide a record while leaving its bytes, and so the chain, intact. The
//! checks here close that gap:
//!
//! - **Columns**: every searchable column is recomputed from the chained
//!   bytes ([`SearchColumns`]) during the chain walk, and a split record's
//!   parts must agree with its row (count and `CorrelationId`).
//! - **Indexes**: for each index of `audit_log`, the multiset of (key,
//!   rowid) read through the index must equal the one read from the table
//!   itself. Both sides are summed under a SipHash key drawn at random for
//!   each verification, so an edit cannot be shaped to keep the sums.
//! - **Free text**: `audit_fts` is an external-content FTS5 index over the
//!   view `audit_text`, which derives each record's text from its chained
//!   bytes with [`tl_audit_text`](register_functions). FTS5's own
//!   `integrity-check` with rank 1 re-tokenises every record and compares
//!   the result with the whole index, shadow tables included.
//! - **Schema**: the definitions of every table, index and view of the
//!   log, FTS5's settings row, and the absence of triggers, are compared
//!   with a database this build creates in memory.
//! - **Orphans**: log rows and checkpoints must belong to an organisation.
//!
//! FTS5 runs its integrity check only inside a write transaction, so that
//! check runs as a job on the writer; the others run on a read connection.

use rand::RngCore;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, params};
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::sync::{Arc, Mutex};
use tracklog_domain::audit::chain::{Break, BreakKind};
use tracklog_domain::audit::columns::{ColumnMismatch, SearchColumns};
use tracklog_domain::audit::search_text_of_stored;
use tracklog_domain::ids::OrgId;

use super::audit::Decoder;
use super::{schema, sql_error};
use crate::StoreError;

/// Registers the SQL functions the activity log's schema uses. Every
/// connection that reads `audit_text` (and so any FTS5 delete or check on
/// `audit_fts`) needs them.
///
/// - `tl_audit_text(bytes)`: the free-text body of a record's stored bytes.
/// - `tl_mix(k0, k1, v...)`: a keyed 32-bit SipHash of its values, summed
///   by the index check; 32 bits so that `sum()` cannot overflow.
pub(crate) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let deterministic = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    // One decoder per connection, shared by both functions; it loads each
    // dictionary from the connection the first time a record names it.
    let decoder = Arc::new(Mutex::new(Decoder::default()));
    let for_text = decoder.clone();
    conn.create_scalar_function("tl_audit_text", 1, deterministic, move |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                // Safety: the connection is only read, within this call.
                let conn = unsafe { ctx.get_connection() }?;
                let mut decoder = for_text.lock().unwrap_or_else(|e| e.into_inner());
                // Bytes that cannot be decoded have no words: the index
                // check then finds the record's words missing.
                decoder
                    .decode(&conn, bytes)
                    .map(|json| search_text_of_stored(&json))
                    .unwrap_or_default()
            }
            _ => String::new(),
        })
    })?;
    conn.create_scalar_function("tl_audit_json", 1, deterministic, move |ctx| {
        Ok(match ctx.get_raw(0) {
            // The bytes, whichever type they were stored as.
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => {
                // Safety: the connection is only read, within this call.
                let conn = unsafe { ctx.get_connection() }?;
                let mut decoder = decoder.lock().unwrap_or_else(|e| e.into_inner());
                // NULL for bytes that cannot be decoded: the chain walk then
                // hashes the stored bytes as they are, and fails.
                match decoder.decode(&conn, bytes) {
                    Ok(json) => Value::Blob(json.into_owned()),
                    Err(_) => Value::Null,
                }
            }
            _ => Value::Null,
        })
    })?;
    conn.create_scalar_function("tl_mix", -1, deterministic, |ctx| {
        let k0: i64 = ctx.get(0)?;
        let k1: i64 = ctx.get(1)?;
        let mut hasher = SipHasher13::new_with_keys(k0 as u64, k1 as u64);
        for index in 2..ctx.len() {
            match ctx.get_raw(index) {
                ValueRef::Null => hasher.write_u8(0),
                ValueRef::Integer(n) => {
                    hasher.write_u8(1);
                    hasher.write_i64(n);
                }
                ValueRef::Real(r) => {
                    hasher.write_u8(2);
                    hasher.write_u64(r.to_bits());
                }
                ValueRef::Text(t) => {
                    hasher.write_u8(3);
                    hasher.write_usize(t.len());
                    hasher.write(t);
                }
                ValueRef::Blob(b) => {
                    hasher.write_u8(4);
                    hasher.write_usize(b.len());
                    hasher.write(b);
                }
            }
        }
        Ok((hasher.finish() >> 32) as i64)
    })
}

/// The searchable columns of a chain row, in the order of
/// [`CHAIN_COLUMNS`] after its first five.
/// The last, `tl_audit_json(record)`, is the JSON the chain covers; `record`
/// is as stored (compressed or not).
pub(crate) const CHAIN_COLUMNS: &str = "seq, prev_hash, hash, parts, record, id, creation_time,
    operation, category, user_name, entity_name, entity_id, result_status, client_ip,
    service_name, correlation_id, stored_at, tl_audit_json(record)";

/// What the row's columns hold, from a row of [`CHAIN_COLUMNS`].
pub(crate) fn stored_columns(row: &rusqlite::Row<'_>) -> rusqlite::Result<SearchColumns> {
    Ok(SearchColumns {
        id: row.get(5)?,
        creation_time: row.get(6)?,
        operation: row.get(7)?,
        category: row.get(8)?,
        user: row.get(9)?,
        entity_name: row.get(10)?,
        entity_id: row.get(11)?,
        result_status: row.get(12)?,
        client_ip: row.get(13)?,
        service_name: row.get(14)?,
        correlation_id: row.get(15)?,
        stored_at: Some(row.get(16)?),
    })
}

/// The first disagreement between a row and the record its bytes hold:
/// a searchable column, or for a split record, its parts' count or
/// `CorrelationId`.
pub(crate) fn column_mismatch(
    conn: &Connection,
    org: OrgId,
    sequence: i64,
    parts: i64,
    bytes: &[u8],
    stored: &SearchColumns,
) -> Result<Option<ColumnMismatch>, StoreError> {
    let expected = match SearchColumns::from_stored(bytes) {
        Ok(expected) => expected,
        // Bytes that are not a record are the chain's to report (their
        // digest no longer matches) or were never a record.
        Err(_) => return Ok(None),
    };
    if let Some(found) = expected.first_difference(stored) {
        return Ok(Some(found));
    }
    if parts > 0 {
        let (count, low, high, correlation_low, correlation_high): (
            i64,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<String>,
        ) = conn
            .prepare_cached(
                "SELECT count(*), min(total), max(total), min(correlation_id), max(correlation_id)
                 FROM audit_parts WHERE org_id = ?1 AND seq = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![org.0, sequence], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
            })
            .map_err(sql_error)?;
        let totals = [Some(count), low, high];
        if totals.iter().any(|t| *t != Some(parts)) {
            return Ok(Some(ColumnMismatch {
                column: "parts",
                expected: format!("{parts} parts"),
                found: format!("{count} parts, totals {low:?} to {high:?}"),
            }));
        }
        let correlation = expected.correlation_id.clone();
        if correlation_low != correlation || correlation_high != correlation {
            return Ok(Some(ColumnMismatch {
                column: "audit_parts.correlation_id",
                expected: correlation.unwrap_or_default(),
                found: correlation_low.unwrap_or_default(),
            }));
        }
    }
    Ok(None)
}

/// Each index of `audit_log`, with the columns of its key.
const INDEXES: [(&str, &str); 6] = [
    ("audit_log_by_seq", "seq"),
    ("audit_log_by_id", "id"),
    ("audit_log_by_time", "creation_time, seq"),
    ("audit_log_by_user", "user_name, creation_time, seq"),
    ("audit_log_by_entity", "entity_name, creation_time, seq"),
    ("audit_log_by_operation", "operation, creation_time, seq"),
];

/// Whether every index of `audit_log` holds exactly the org's rows, with
/// the keys the rows have.
pub(crate) fn check_indexes(conn: &Connection, org: OrgId) -> Result<Option<Break>, StoreError> {
    let mut rng = rand::rng();
    let (k0, k1) = (rng.next_u64() as i64, rng.next_u64() as i64);
    let sums: Vec<String> = INDEXES
        .iter()
        .map(|(_, key)| format!("coalesce(sum(tl_mix(?1, ?2, {key}, rid)), 0)"))
        .collect();
    // The table itself, read without any index.
    let table: Vec<i64> = conn
        .query_row(
            &format!(
                "SELECT count(*), {} FROM audit_log NOT INDEXED WHERE org_id = ?3",
                sums.join(", ")
            ),
            params![k0, k1, org.0],
            |r| (0..=INDEXES.len()).map(|i| r.get(i)).collect(),
        )
        .map_err(sql_error)?;
    for (position, (index, key)) in INDEXES.iter().enumerate() {
        let (count, sum): (i64, i64) = conn
            .query_row(
                &format!(
                    "SELECT count(*), coalesce(sum(tl_mix(?1, ?2, {key}, rid)), 0)
                     FROM audit_log INDEXED BY {index} WHERE org_id = ?3"
                ),
                params![k0, k1, org.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql_error)?;
        if count != table[0] || sum != table[position + 1] {
            let message = if count != table[0] {
                format!(
                    "the index {index} holds {count} of the org's records, the log {}",
                    table[0]
                )
            } else {
                format!("the index {index} holds keys that differ from the records' columns")
            };
            return Ok(Some(Break::structural(
                BreakKind::IndexAltered,
                *index,
                message,
            )));
        }
    }
    Ok(None)
}

/// One schema object as `sqlite_master` describes it.
type SchemaRow = (String, String, String, Option<String>);

fn log_schema(conn: &Connection) -> rusqlite::Result<Vec<SchemaRow>> {
    conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_master
         WHERE name LIKE 'audit%' OR tbl_name LIKE 'audit%' OR type IN ('trigger', 'view')
         ORDER BY type, name",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
    .collect()
}

/// Whether the log's tables, indexes and views are the ones this build
/// creates, with no trigger anywhere.
pub(crate) fn check_schema(conn: &Connection) -> Result<Option<Break>, StoreError> {
    let mut reference = Connection::open_in_memory().map_err(sql_error)?;
    schema::migrate(&mut reference).map_err(StoreError::Internal)?;
    let expected = log_schema(&reference).map_err(sql_error)?;
    let found = log_schema(conn).map_err(sql_error)?;
    if expected == found {
        // FTS5's settings row: a valid but different format version or
        // option changes how the index is read.
        let config = |conn: &Connection| -> rusqlite::Result<Vec<(String, String)>> {
            conn.prepare("SELECT k, CAST(v AS TEXT) FROM audit_fts_config ORDER BY k")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        };
        if config(&reference).map_err(sql_error)? != config(conn).map_err(sql_error)? {
            return Ok(Some(Break::structural(
                BreakKind::SchemaAltered,
                "audit_fts_config",
                "the free-text index's settings were changed".into(),
            )));
        }
        return Ok(None);
    }
    let extra = found.iter().find(|row| !expected.contains(row));
    let missing = expected.iter().find(|row| !found.contains(row));
    let (object, message) = match (extra, missing) {
        (Some(row), _) if !expected.iter().any(|e| e.1 == row.1) => (
            row.1.clone(),
            format!("the {} {} was added to the log's schema", row.0, row.1),
        ),
        (Some(row), _) => (
            row.1.clone(),
            format!("the definition of the {} {} was changed", row.0, row.1),
        ),
        (None, Some(row)) => (
            row.1.clone(),
            format!("the {} {} is missing from the log's schema", row.0, row.1),
        ),
        (None, None) => ("schema".into(), "the log's schema was reordered".into()),
    };
    Ok(Some(Break::structural(
        BreakKind::SchemaAltered,
        object,
        message,
    )))
}

/// Whether any log row, part, checkpoint, head or anchor belongs to no
/// organisation (moved away from the org it was written for).
pub(crate) fn check_orphans(conn: &Connection) -> Result<Option<Break>, StoreError> {
    for table in [
        "audit_log",
        "audit_parts",
        "audit_checkpoints",
        "audit_heads",
        "audit_anchors",
        "audit_dicts",
    ] {
        let orphans: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE org_id NOT IN (SELECT id FROM orgs)"),
                [],
                |r| r.get(0),
            )
            .map_err(sql_error)?;
        if orphans > 0 {
            return Ok(Some(Break::structural(
                BreakKind::Orphaned,
                table,
                format!("{orphans} rows of {table} belong to no organisation"),
            )));
        }
    }
    Ok(None)
}

/// FTS5's check of the whole free-text index against every record's text.
/// Needs the write lock: run it on the writer.
pub(crate) fn check_free_text(conn: &Connection) -> Result<Option<Break>, StoreError> {
    match conn.execute(
        "INSERT INTO audit_fts (audit_fts, rank) VALUES ('integrity-check', 1)",
        [],
    ) {
        Ok(_) => Ok(None),
        Err(error) => {
            use rusqlite::ErrorCode;
            match error.sqlite_error_code() {
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Err(sql_error(error)),
                _ => Ok(Some(Break::structural(
                    BreakKind::FreeTextAltered,
                    "audit_fts",
                    format!(
                        "the free-text index does not match the records' text, so free-text searches would miss or misreport records ({error})"
                    ),
                ))),
            }
        }
    }
}
