//! The activity log in SQLite.
//!
//! One row of `audit_log` per record, with the searchable fields as columns
//! and the record's JSON bytes in `record`, or, for a record over the split
//! threshold, in rows of `audit_parts`. `audit_fts` indexes `Fields` and
//! `Query` for free text and is written in the same transaction. Each row
//! carries its link in the org's hash chain (`prev_hash`, `hash`).

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use tracklog_domain::audit::chain::{Break, ChainRow, Checkpoint, GENESIS, link};
use tracklog_domain::audit::columns::{ColumnMismatch, SearchColumns};
use tracklog_domain::audit::reports::{PRODUCT_PREFIXES, Predicate};
use tracklog_domain::audit::settings::{EntityAuditSettings, OrgAuditSettings};
use tracklog_domain::audit::split::{self, Part, ReassemblyError, sha256};
use tracklog_domain::audit::{AuditRecord, categorise};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::audit_integrity::{CHAIN_COLUMNS, column_mismatch, stored_columns};
use super::{SqliteStore, audit_integrity, sql_error};
use crate::{
    Anchor, AuditFilter, AuditHit, AuditPage, AuditStore, Cursor, PartsIntegrity, StoreError,
};

fn internal(error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(error.to_string())
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Internal("a stored hash is not 32 bytes".into()))
}

/// Where the org's next record goes: after the written head, which does not
/// move back when the tail is deleted, so records appended after such a
/// deletion leave a gap that verification reports. Before the first write,
/// after the last record or the purge anchor.
fn head(conn: &Connection, org: OrgId) -> Result<(i64, [u8; 32]), StoreError> {
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

fn written_head(conn: &Connection, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError> {
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

fn anchor(conn: &Connection, org: OrgId) -> Result<Anchor, StoreError> {
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

/// Inserts one record (already given its sequence and category) and links it.
fn insert(
    conn: &Connection,
    org: OrgId,
    record: &mut AuditRecord,
    previous: &[u8; 32],
    threshold: usize,
) -> Result<[u8; 32], StoreError> {
    let sequence = record.sequence.unwrap_or_default();
    let now = UtcMillis::now().as_millis();
    let mut json = record.stored_json_at(now);
    if json.len() > threshold && record.correlation_id.is_none() {
        // The parts share the record's CorrelationId; give it one.
        record.correlation_id = Some(uuid_like(previous, sequence));
        json = record.stored_json_at(now);
    }
    let digest = sha256(&json);
    let hash = link(previous, sequence, &digest);
    let parts = split::split(&json, threshold);
    let columns = SearchColumns::of(record, Some(now));
    conn.prepare_cached(
        "INSERT INTO audit_log (org_id, seq, id, creation_time, stored_at, operation, category,
            user_name, entity_name, entity_id, result_status, client_ip, service_name,
            correlation_id, parts, record, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
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
            if parts.is_some() { None } else { Some(&json) },
            previous.as_slice(),
            hash.as_slice(),
        ])
    })
    .map_err(sql_error)?;
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
    index_text(conn, rid, &json)?;
    Ok(hash)
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
fn uuid_like(previous: &[u8; 32], sequence: i64) -> String {
    let mut seed = previous.to_vec();
    seed.extend_from_slice(&sequence.to_be_bytes());
    seed.extend_from_slice(&UtcMillis::now().as_millis().to_be_bytes());
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

const HIT_COLUMNS: &str = "seq, id, creation_time, operation, category, user_name, entity_name,
    entity_id, result_status, client_ip, service_name, correlation_id, parts, record, org_id";

/// Reads a row of [`HIT_COLUMNS`] back into a record, reassembling parts.
fn hit_from_row(conn: &Connection, row: &Row<'_>) -> Result<AuditHit, StoreError> {
    let get_err = sql_error;
    let sequence: i64 = row.get(0).map_err(get_err)?;
    let parts: i64 = row.get(12).map_err(get_err)?;
    let org: i64 = row.get(14).map_err(get_err)?;
    let bytes: Result<Vec<u8>, PartsIntegrity> = if parts == 0 {
        Ok(row.get::<_, Vec<u8>>(13).map_err(get_err)?)
    } else {
        read_parts(conn, org, sequence, parts as u32)?
    };
    match bytes {
        Ok(bytes) => {
            let record: AuditRecord = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Internal(format!("stored audit record: {e}")))?;
            Ok(AuditHit {
                record,
                parts: parts as u32,
                integrity: None,
            })
        }
        Err(integrity) => {
            let text = |i: usize| row.get::<_, Option<String>>(i).map_err(get_err);
            let creation: i64 = row.get(2).map_err(get_err)?;
            let operation: String = row.get(3).map_err(get_err)?;
            let record = AuditRecord {
                id: row.get(1).map_err(get_err)?,
                creation_time: UtcMillis::from_millis(creation).to_rfc3339(),
                category: Some(categorise(&operation)),
                operation,
                user: text(5)?,
                entity_name: text(6)?,
                entity_id: text(7)?,
                result_status: text(8)?,
                client_ip: text(9)?,
                service_name: text(10)?,
                correlation_id: text(11)?,
                sequence: Some(sequence),
                ..AuditRecord::default()
            };
            Ok(AuditHit {
                record,
                parts: parts as u32,
                integrity: Some(integrity),
            })
        }
    }
}

/// The whole bytes of a split record, or what keeps them from being whole.
fn read_parts(
    conn: &Connection,
    org: i64,
    sequence: i64,
    total: u32,
) -> Result<Result<Vec<u8>, PartsIntegrity>, StoreError> {
    let parts: Vec<Part> = conn
        .prepare_cached(
            "SELECT part, total, whole_sha256, bytes FROM audit_parts
             WHERE org_id = ?1 AND seq = ?2 ORDER BY part",
        )
        .and_then(|mut s| {
            s.query_map(params![org, sequence], |r| {
                let digest: Vec<u8> = r.get(2)?;
                Ok(Part {
                    index: r.get(0)?,
                    total: r.get(1)?,
                    whole_sha256: digest.try_into().unwrap_or([0; 32]),
                    bytes: r.get(3)?,
                })
            })?
            .collect()
        })
        .map_err(sql_error)?;
    let present: Vec<u32> = parts.iter().map(|p| p.index).collect();
    let result = split::reassemble(parts);
    Ok(result.map_err(|error| PartsIntegrity {
        total_parts: total,
        // The row's count of parts is authoritative: with every part gone,
        // the parts themselves can no longer say how many there were.
        missing_parts: match error {
            ReassemblyError::MissingParts(missing) if !present.is_empty() => missing,
            _ => split::missing_indexes(&present, total),
        },
        digest_matches: false,
    }))
}

/// A WHERE clause and its bound values. User text is only ever bound.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    values: Vec<SqlValue>,
}

impl Where {
    fn push(&mut self, clause: &str, values: impl IntoIterator<Item = SqlValue>) {
        self.clauses.push(clause.to_owned());
        self.values.extend(values);
    }

    fn text(&mut self, column: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.push(&format!("{column} = ?"), [SqlValue::Text(value.clone())]);
        }
    }

    fn in_list(&mut self, expression: &str, negate: bool, items: &[&str]) {
        if items.is_empty() {
            return;
        }
        let marks = vec!["?"; items.len()].join(", ");
        let not = if negate { "NOT " } else { "" };
        self.push(
            &format!("{expression} {not}IN ({marks})"),
            items.iter().map(|i| SqlValue::Text(i.to_ascii_lowercase())),
        );
    }

    fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }
}

/// Quotes free text for FTS5 so that nothing the user types is query
/// syntax: each word becomes a quoted phrase, all of which must appear.
pub(crate) fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    if terms.is_empty() {
        None
    } else {
        Some(terms.join(" AND "))
    }
}

fn predicate_sql(predicate: &Predicate, org_sign_in: &[String], w: &mut Where) {
    let mut lower_ops: Vec<String> = predicate.operations.iter().map(|o| o.to_string()).collect();
    if predicate.org_sign_in_operations && !lower_ops.is_empty() {
        lower_ops.extend(org_sign_in.iter().cloned());
    }
    if !lower_ops.is_empty() {
        let marks = vec!["?"; lower_ops.len()].join(", ");
        w.push(
            &format!("operation IN ({marks})"),
            lower_ops.into_iter().map(SqlValue::Text),
        );
    }
    if !predicate.operation_prefixes.is_empty() {
        let ors: Vec<String> = predicate
            .operation_prefixes
            .iter()
            .map(|p| format!("substr(operation, 1, {}) = ?", p.chars().count()))
            .collect();
        w.push(
            &format!("({})", ors.join(" OR ")),
            predicate
                .operation_prefixes
                .iter()
                .map(|p| SqlValue::Text((*p).to_owned())),
        );
    }
    if predicate.has_entity {
        w.push("(entity_name IS NOT NULL AND entity_name <> '')", []);
    }
    w.in_list("lower(entity_name)", false, predicate.entities);
    if !predicate.not_entities.is_empty() {
        let marks = vec!["?"; predicate.not_entities.len()].join(", ");
        w.push(
            &format!("(entity_name IS NULL OR lower(entity_name) NOT IN ({marks}))"),
            predicate
                .not_entities
                .iter()
                .map(|e| SqlValue::Text(e.to_ascii_lowercase())),
        );
    }
    if let Some(custom) = predicate.custom_entity {
        // `reports::is_custom`: a publisher prefix that is not the product's.
        let product: Vec<String> = PRODUCT_PREFIXES
            .iter()
            .map(|p| format!("substr(lower(entity_name), 1, {}) = ?", p.chars().count()))
            .collect();
        w.push(
            &format!(
                "(entity_name IS NOT NULL AND (instr(entity_name, '_') > 0 AND NOT ({})) = ?)",
                product.join(" OR ")
            ),
            PRODUCT_PREFIXES
                .iter()
                .map(|p| SqlValue::Text(p.to_ascii_lowercase()))
                .chain([SqlValue::Integer(i64::from(custom))]),
        );
    }
    w.in_list("lower(service_name)", false, predicate.services);
}

/// Where the rows of a search come from. Below
/// [`SqliteOptions::audit_fts_driven_below`](super::SqliteOptions) free-text
/// matches (20,000 by default), a search starts from the FTS index: it looks
/// up each match, sorts, and takes the page. From that many on, it walks the
/// time-ordered index and keeps the rows that match, which reaches a page
/// after about `page × rows ÷ matches` rows. Either way the work is bounded
/// by about that many rows.
enum Source {
    /// `audit_log` alone, through whichever index suits the filter.
    Log,
    /// Free text with few matches: FTS5's matches joined to their rows.
    FtsDriven(String),
    /// Free text with many matches: `audit_log` in time order, each row
    /// checked against FTS5's matches.
    FtsFiltered(String),
}

impl Source {
    /// Where a count of `filter` reads from. A count visits every match
    /// whatever the plan, and visiting them in FTS5's rowid order (which is
    /// the table's) is cheaper than probing each row of the org against a
    /// list of them, so free text is always FTS-driven here.
    fn for_count(filter: &AuditFilter) -> Self {
        match filter.q.as_deref().and_then(fts_query) {
            Some(query) => Source::FtsDriven(query),
            None => Source::Log,
        }
    }

    /// Where a page of `filter` reads from, asking FTS5 for at most `below`
    /// matches to tell few from many.
    fn for_page(conn: &Connection, filter: &AuditFilter, below: i64) -> Result<Self, StoreError> {
        let Some(query) = filter.q.as_deref().and_then(fts_query) else {
            return Ok(Source::Log);
        };
        let matches: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM audit_fts WHERE audit_fts MATCH ?1 LIMIT ?2)",
            )
            .and_then(|mut s| s.query_row(params![query, below], |r| r.get(0)))
            .map_err(fts_or_sql)?;
        Ok(if matches < below {
            Source::FtsDriven(query)
        } else {
            Source::FtsFiltered(query)
        })
    }

    /// The FROM clause, and the match against FTS5 added to `w`. The
    /// CROSS JOIN fixes FTS5 as the outer loop; `audit_log`'s columns stay
    /// unqualified because FTS5's only column is `body`.
    fn from(&self, w: &mut Where) -> &'static str {
        match self {
            Source::Log => "audit_log",
            Source::FtsDriven(query) => {
                w.push("audit_fts MATCH ?", [SqlValue::Text(query.clone())]);
                "audit_fts CROSS JOIN audit_log ON audit_log.rid = audit_fts.rowid"
            }
            Source::FtsFiltered(query) => {
                w.push(
                    "rid IN (SELECT rowid FROM audit_fts WHERE audit_fts MATCH ?)",
                    [SqlValue::Text(query.clone())],
                );
                "audit_log"
            }
        }
    }
}

/// The filter as SQL over `audit_log`'s columns, without the free text,
/// which [`Source`] adds.
fn filter_sql(org: OrgId, filter: &AuditFilter) -> Where {
    let mut w = Where::default();
    w.push("org_id = ?", [SqlValue::Integer(org.0)]);
    if let Some(from) = filter.from {
        w.push("creation_time >= ?", [SqlValue::Integer(from.as_millis())]);
    }
    if let Some(to) = filter.to {
        w.push("creation_time < ?", [SqlValue::Integer(to.as_millis())]);
    }
    w.text("user_name", &filter.user);
    w.text("operation", &filter.operation);
    if let Some(category) = filter.category {
        w.push(
            "category = ?",
            [SqlValue::Text(category.as_str().to_owned())],
        );
    }
    w.text("entity_name", &filter.entity_name);
    w.text("entity_id", &filter.entity_id);
    w.text("result_status", &filter.result_status);
    w.text("client_ip", &filter.client_ip);
    if let Some(predicate) = &filter.report {
        predicate_sql(predicate, &filter.sign_in_operations, &mut w);
    }
    if let Some(until) = filter.until_sequence {
        w.push("seq <= ?", [SqlValue::Integer(until)]);
    }
    w
}

type SettingsRow = (bool, bool, bool, String, String);

fn settings_row(row: &Row<'_>) -> rusqlite::Result<SettingsRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(
        &self,
        org: OrgId,
        records: Vec<AuditRecord>,
    ) -> Result<Vec<Option<AuditRecord>>, StoreError> {
        let threshold = self.inner.audit_split_threshold;
        self.write(records.len(), move |ctx| {
            let (mut sequence, mut previous) = head(ctx.conn, org)?;
            let first = sequence;
            let mut stored = Vec::with_capacity(records.len());
            for mut record in records {
                let exists: Option<i64> = ctx
                    .conn
                    .prepare_cached("SELECT seq FROM audit_log WHERE org_id = ?1 AND id = ?2")
                    .and_then(|mut s| {
                        s.query_row(params![org.0, record.id], |r| r.get(0))
                            .optional()
                    })
                    .map_err(sql_error)?;
                if exists.is_some() {
                    stored.push(None);
                    continue;
                }
                sequence += 1;
                record.category = Some(categorise(&record.operation));
                record.sequence = Some(sequence);
                if UtcMillis::parse_rfc3339(&record.creation_time).is_err() {
                    record.creation_time = UtcMillis::now().to_rfc3339();
                }
                previous = insert(ctx.conn, org, &mut record, &previous, threshold)?;
                stored.push(Some(record));
            }
            if sequence > first {
                set_written_head(ctx.conn, org, sequence, &previous)?;
            }
            Ok(stored)
        })
        .await
    }

    async fn recent_audit(
        &self,
        org: OrgId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {HIT_COLUMNS} FROM audit_log WHERE org_id = ?1 AND seq < ?2
                     ORDER BY seq DESC LIMIT ?3"
                ))
                .map_err(sql_error)?;
            let mut rows = stmt
                .query(params![org.0, before.unwrap_or(i64::MAX), limit as i64])
                .map_err(sql_error)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sql_error)? {
                out.push(hit_from_row(conn, row)?.record);
            }
            Ok(out)
        })
        .await
    }

    async fn search_audit(
        &self,
        org: OrgId,
        filter: AuditFilter,
        limit: usize,
        cursor: Option<Cursor>,
        with_count: bool,
    ) -> Result<AuditPage, StoreError> {
        let below = self.inner.audit_fts_driven_below;
        self.read(move |conn| {
            let base = filter_sql(org, &filter);
            let count = if with_count {
                let mut w = Where {
                    clauses: base.clauses.clone(),
                    values: base.values.clone(),
                };
                let from = Source::for_count(&filter).from(&mut w);
                let sql = format!("SELECT count(*) FROM {from} WHERE {}", w.sql());
                let n: i64 = conn
                    .prepare_cached(&sql)
                    .and_then(|mut s| s.query_row(params_from_iter(w.values.iter()), |r| r.get(0)))
                    .map_err(fts_or_sql)?;
                Some(n as u64)
            } else {
                None
            };
            let mut page = base;
            let from = Source::for_page(conn, &filter, below)?.from(&mut page);
            if let Some(cursor) = cursor {
                // Spelled out rather than as the row value `(creation_time,
                // seq) < (?, ?)` so that the planner bounds the index range
                // on creation_time after any equality columns.
                page.push(
                    "creation_time <= ? AND (creation_time < ? OR seq < ?)",
                    [
                        SqlValue::Integer(cursor.time),
                        SqlValue::Integer(cursor.time),
                        SqlValue::Integer(cursor.seq),
                    ],
                );
            }
            page.values.push(SqlValue::Integer(limit as i64 + 1));
            let sql = format!(
                "SELECT {HIT_COLUMNS}, creation_time FROM {from} WHERE {}
                 ORDER BY creation_time DESC, seq DESC LIMIT ?",
                page.sql()
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
            let mut rows = stmt
                .query(params_from_iter(page.values.iter()))
                .map_err(fts_or_sql)?;
            let mut items = Vec::new();
            let mut positions = Vec::new();
            while let Some(row) = rows.next().map_err(fts_or_sql)? {
                positions.push(Cursor {
                    time: row.get(15).map_err(sql_error)?,
                    seq: row.get(0).map_err(sql_error)?,
                });
                items.push(hit_from_row(conn, row)?);
            }
            let next_cursor = if items.len() > limit {
                items.truncate(limit);
                positions.get(limit - 1).copied()
            } else {
                None
            };
            Ok(AuditPage {
                items,
                count,
                next_cursor,
            })
        })
        .await
    }

    async fn audit_record(&self, org: OrgId, id: String) -> Result<Option<AuditHit>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {HIT_COLUMNS} FROM audit_log WHERE org_id = ?1 AND id = ?2"
                ))
                .map_err(sql_error)?;
            let mut rows = stmt.query(params![org.0, id]).map_err(sql_error)?;
            match rows.next().map_err(sql_error)? {
                Some(row) => Ok(Some(hit_from_row(conn, row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn audit_histogram(
        &self,
        org: OrgId,
        filter: AuditFilter,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        let bucket_ms = bucket_ms.max(1);
        self.read(move |conn| {
            let mut w = filter_sql(org, &filter);
            let from = Source::for_count(&filter).from(&mut w);
            let sql = format!(
                "SELECT (creation_time - (creation_time % ?1 + ?1) % ?1) AS bucket, count(*)
                 FROM {from} WHERE {} GROUP BY bucket ORDER BY bucket",
                w.sql()
            );
            // ?1 is the bucket; the filter's values follow it.
            let mut values = vec![SqlValue::Integer(bucket_ms)];
            values.append(&mut w.values);
            let sql = renumber(&sql);
            let mut stmt = conn.prepare(&sql).map_err(sql_error)?;
            let rows = stmt
                .query_map(params_from_iter(values.iter()), |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
                })
                .map_err(fts_or_sql)?;
            rows.map(|r| r.map_err(fts_or_sql)).collect()
        })
        .await
    }

    async fn audit_settings(&self, org: OrgId) -> Result<OrgAuditSettings, StoreError> {
        self.read(move |conn| {
            let found = conn
                .prepare_cached(
                    "SELECT auditing_enabled, user_access_auditing, read_auditing, excluded_messages,
                        sign_in_operations
                     FROM audit_settings WHERE org_id = ?1",
                )
                .and_then(|mut s| s.query_row([org.0], settings_row).optional())
                .map_err(sql_error)?;
            match found {
                None => Ok(OrgAuditSettings::default()),
                Some((enabled, access, read, excluded, sign_in)) => Ok(OrgAuditSettings {
                    auditing_enabled: enabled,
                    user_access_auditing: access,
                    read_auditing: read,
                    excluded_messages: serde_json::from_str(&excluded).map_err(internal)?,
                    sign_in_operations: serde_json::from_str(&sign_in).map_err(internal)?,
                }),
            }
        })
        .await
    }

    async fn put_audit_settings(
        &self,
        org: OrgId,
        settings: OrgAuditSettings,
    ) -> Result<(), StoreError> {
        let excluded = serde_json::to_string(&settings.excluded_messages).map_err(internal)?;
        let sign_in = serde_json::to_string(&settings.sign_in_operations).map_err(internal)?;
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT INTO audit_settings
                       (org_id, auditing_enabled, user_access_auditing, read_auditing,
                        excluded_messages, sign_in_operations)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(org_id) DO UPDATE SET auditing_enabled = ?2,
                       user_access_auditing = ?3, read_auditing = ?4, excluded_messages = ?5,
                       sign_in_operations = ?6",
                    params![
                        org.0,
                        settings.auditing_enabled,
                        settings.user_access_auditing,
                        settings.read_auditing,
                        excluded,
                        sign_in
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn entity_audit_settings(
        &self,
        org: OrgId,
        entities: Vec<String>,
    ) -> Result<HashMap<String, EntityAuditSettings>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT auditing, single_record_read, multiple_record_read
                     FROM audit_entity_settings WHERE org_id = ?1 AND entity = ?2",
                )
                .map_err(sql_error)?;
            let mut out = HashMap::new();
            for entity in entities {
                let key = entity.to_lowercase();
                if out.contains_key(&key) {
                    continue;
                }
                let found = stmt
                    .query_row(params![org.0, key], |r| {
                        Ok(EntityAuditSettings {
                            auditing: r.get(0)?,
                            single_record_read: r.get(1)?,
                            multiple_record_read: r.get(2)?,
                        })
                    })
                    .optional()
                    .map_err(sql_error)?;
                if let Some(settings) = found {
                    out.insert(key, settings);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_entity_audit_settings(
        &self,
        org: OrgId,
        entity: String,
        settings: EntityAuditSettings,
    ) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT INTO audit_entity_settings
                       (org_id, entity, auditing, single_record_read, multiple_record_read)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(org_id, entity) DO UPDATE SET auditing = ?3,
                       single_record_read = ?4, multiple_record_read = ?5",
                    params![
                        org.0,
                        entity.to_lowercase(),
                        settings.auditing,
                        settings.single_record_read,
                        settings.multiple_record_read
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn chain_rows(
        &self,
        org: OrgId,
        after: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<ChainRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {CHAIN_COLUMNS} FROM audit_log
                     WHERE org_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4"
                ))
                .map_err(sql_error)?;
            let mut rows = stmt
                .query(params![org.0, after, until, limit as i64])
                .map_err(sql_error)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sql_error)? {
                let sequence: i64 = row.get(0).map_err(sql_error)?;
                let parts: i64 = row.get(3).map_err(sql_error)?;
                let bytes = if parts == 0 {
                    row.get::<_, Option<Vec<u8>>>(4).map_err(sql_error)?
                } else {
                    read_parts(conn, org.0, sequence, parts as u32)?.ok()
                };
                let columns = match &bytes {
                    // A split record's bytes are in its parts alone.
                    Some(_)
                        if parts > 0 && row.get_ref(4).map_err(sql_error)?.as_bytes().is_ok() =>
                    {
                        Some(ColumnMismatch {
                            column: "record",
                            expected: "NULL: the record is in its parts".into(),
                            found: "bytes".into(),
                        })
                    }
                    Some(bytes) => {
                        let stored = stored_columns(row).map_err(sql_error)?;
                        column_mismatch(conn, org, sequence, parts, bytes, &stored)?
                    }
                    None => None,
                };
                out.push(ChainRow {
                    sequence,
                    previous: hash32(row.get(1).map_err(sql_error)?)?,
                    hash: hash32(row.get(2).map_err(sql_error)?)?,
                    record_sha256: bytes.map(|b| sha256(&b)),
                    columns,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn audit_structure(&self, org: OrgId) -> Result<Option<Break>, StoreError> {
        let found = self
            .read(move |conn| {
                if let Some(found) = audit_integrity::check_schema(conn)? {
                    return Ok(Some(found));
                }
                if let Some(found) = audit_integrity::check_orphans(conn)? {
                    return Ok(Some(found));
                }
                audit_integrity::check_indexes(conn, org)
            })
            .await?;
        if found.is_some() {
            return Ok(found);
        }
        self.write(1, move |ctx| audit_integrity::check_free_text(ctx.conn))
            .await
    }

    async fn chain_link(&self, org: OrgId, sequence: i64) -> Result<Option<[u8; 32]>, StoreError> {
        self.read(move |conn| {
            let found: Option<Vec<u8>> = conn
                .prepare_cached("SELECT hash FROM audit_log WHERE org_id = ?1 AND seq = ?2")
                .and_then(|mut s| {
                    s.query_row(params![org.0, sequence], |r| r.get(0))
                        .optional()
                })
                .map_err(sql_error)?;
            found.map(hash32).transpose()
        })
        .await
    }

    async fn chain_head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.read(move |conn| {
            let found: Option<(i64, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT seq, hash FROM audit_log WHERE org_id = ?1 ORDER BY seq DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([org.0], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(sql_error)?;
            found.map(|(s, h)| Ok((s, hash32(h)?))).transpose()
        })
        .await
    }

    async fn written_head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.read(move |conn| written_head(conn, org)).await
    }

    async fn chain_anchor(&self, org: OrgId) -> Result<Anchor, StoreError> {
        self.read(move |conn| anchor(conn, org)).await
    }

    async fn checkpoints(&self, org: OrgId) -> Result<Vec<Checkpoint>, StoreError> {
        self.read(move |conn| read_checkpoints(conn, org, false))
            .await
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>, StoreError> {
        self.read(move |conn| Ok(read_checkpoints(conn, org, true)?.pop()))
            .await
    }

    async fn add_checkpoint(&self, org: OrgId, checkpoint: Checkpoint) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT INTO audit_checkpoints
                       (org_id, number, seq, hash, anchor_seq, anchor_hash, created_at, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        org.0,
                        checkpoint.number,
                        checkpoint.sequence,
                        checkpoint.hash.as_slice(),
                        checkpoint.anchor_sequence,
                        checkpoint.anchor_hash.as_slice(),
                        checkpoint.created_at_ms,
                        checkpoint.signature.as_slice()
                    ],
                )
                .map_err(|e| {
                    if super::is_unique_violation(&e) {
                        StoreError::Conflict(format!("checkpoint {}", checkpoint.number))
                    } else {
                        sql_error(e)
                    }
                })?;
            Ok(())
        })
        .await
    }

    async fn purge_audit(
        &self,
        org: OrgId,
        stored_before: UtcMillis,
    ) -> Result<Option<Anchor>, StoreError> {
        self.write(1, move |ctx| {
            let conn = ctx.conn;
            // A prefix of the chain: everything up to the first record
            // stored at or after the cut-off.
            let keep_from: Option<i64> = conn
                .query_row(
                    "SELECT min(seq) FROM audit_log WHERE org_id = ?1 AND stored_at >= ?2",
                    params![org.0, stored_before.as_millis()],
                    |r| r.get(0),
                )
                .map_err(sql_error)?;
            let last_purged: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT seq, hash FROM audit_log WHERE org_id = ?1 AND seq < ?2
                     ORDER BY seq DESC LIMIT 1",
                    params![org.0, keep_from.unwrap_or(i64::MAX)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sql_error)?;
            let Some((boundary, hash)) = last_purged else {
                return Ok(None);
            };
            conn.execute(
                "DELETE FROM audit_fts WHERE rowid IN
                   (SELECT rid FROM audit_log WHERE org_id = ?1 AND seq <= ?2)",
                params![org.0, boundary],
            )
            .map_err(sql_error)?;
            conn.execute(
                "DELETE FROM audit_parts WHERE org_id = ?1 AND seq <= ?2",
                params![org.0, boundary],
            )
            .map_err(sql_error)?;
            conn.execute(
                "DELETE FROM audit_log WHERE org_id = ?1 AND seq <= ?2",
                params![org.0, boundary],
            )
            .map_err(sql_error)?;
            conn.execute(
                "INSERT INTO audit_anchors (org_id, seq, hash) VALUES (?1, ?2, ?3)
                 ON CONFLICT(org_id) DO UPDATE SET seq = ?2, hash = ?3",
                params![org.0, boundary, hash],
            )
            .map_err(sql_error)?;
            Ok(Some((boundary, hash32(hash)?)))
        })
        .await
    }

    async fn retention_days(&self, org: OrgId) -> Result<Option<u32>, StoreError> {
        self.read(move |conn| {
            let found: Option<Option<u32>> = conn
                .query_row(
                    "SELECT retention_days FROM audit_settings WHERE org_id = ?1",
                    [org.0],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            Ok(found.flatten())
        })
        .await
    }

    async fn set_retention_days(&self, org: OrgId, days: Option<u32>) -> Result<(), StoreError> {
        let defaults = OrgAuditSettings::default();
        let excluded = serde_json::to_string(&defaults.excluded_messages).map_err(internal)?;
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT INTO audit_settings (org_id, auditing_enabled, user_access_auditing,
                       read_auditing, excluded_messages, retention_days)
                     VALUES (?1, 1, 1, 1, ?2, ?3)
                     ON CONFLICT(org_id) DO UPDATE SET retention_days = ?3",
                    params![org.0, excluded, days],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn audit_after(
        &self,
        org: OrgId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditHit>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {HIT_COLUMNS} FROM audit_log WHERE org_id = ?1 AND seq > ?2
                     ORDER BY seq LIMIT ?3"
                ))
                .map_err(sql_error)?;
            let mut rows = stmt
                .query(params![org.0, after, limit as i64])
                .map_err(sql_error)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sql_error)? {
                out.push(hit_from_row(conn, row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn forward_cursor(&self, forwarder: String, org: OrgId) -> Result<i64, StoreError> {
        self.read(move |conn| {
            let found: Option<i64> = conn
                .query_row(
                    "SELECT seq FROM audit_forward_cursors WHERE forwarder = ?1 AND org_id = ?2",
                    params![forwarder, org.0],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            Ok(found.unwrap_or(0))
        })
        .await
    }

    async fn save_forward_cursor(
        &self,
        forwarder: String,
        org: OrgId,
        sequence: i64,
    ) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT INTO audit_forward_cursors (forwarder, org_id, seq) VALUES (?1, ?2, ?3)
                     ON CONFLICT(forwarder, org_id) DO UPDATE SET seq = max(seq, ?3)",
                    params![forwarder, org.0, sequence],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }
}

/// The org's checkpoints by number, or only the newest.
fn read_checkpoints(
    conn: &Connection,
    org: OrgId,
    latest_only: bool,
) -> Result<Vec<Checkpoint>, StoreError> {
    let sql = if latest_only {
        "SELECT number, seq, hash, anchor_seq, anchor_hash, created_at, signature
         FROM audit_checkpoints WHERE org_id = ?1 ORDER BY number DESC LIMIT 1"
    } else {
        "SELECT number, seq, hash, anchor_seq, anchor_hash, created_at, signature
         FROM audit_checkpoints WHERE org_id = ?1 ORDER BY number"
    };
    let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
    let rows = stmt
        .query_map([org.0], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Vec<u8>>(6)?,
            ))
        })
        .map_err(sql_error)?;
    rows.map(|row| {
        let (number, sequence, hash, anchor_sequence, anchor_hash, created, signature) =
            row.map_err(sql_error)?;
        Ok(Checkpoint {
            number,
            sequence,
            hash: hash32(hash)?,
            anchor_sequence,
            anchor_hash: hash32(anchor_hash)?,
            created_at_ms: created,
            signature: signature
                .try_into()
                .map_err(|_| StoreError::Internal("a stored signature is not 64 bytes".into()))?,
        })
    })
    .collect()
}

/// Rewrites anonymous `?` placeholders after `?1` into numbered ones (`?2`,
/// `?3`, ...) so a statement can mix both.
fn renumber(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 2;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' {
            if chars.peek().is_some_and(char::is_ascii_digit) {
                out.push('?');
                continue;
            }
            out.push_str(&format!("?{next}"));
            next += 1;
        } else {
            out.push(c);
        }
    }
    out
}

/// An FTS5 syntax error cannot come from user text (it is quoted), but map
/// it to a client error rather than a 500 all the same.
fn fts_or_sql(error: rusqlite::Error) -> StoreError {
    let text = error.to_string();
    if text.contains("fts5") {
        StoreError::BadQuery(text)
    } else {
        sql_error(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_quoted() {
        assert_eq!(fts_query("  "), None);
        assert_eq!(
            fts_query(r#"ana "OR bea* NEAR("#).unwrap(),
            r#""ana" AND """OR" AND "bea*" AND "NEAR(""#
        );
    }

    #[tokio::test]
    async fn records_of_schema_version_1_are_linked_and_indexed_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::DB_FILE);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(super::super::schema::MIGRATIONS[0])
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO orgs (id, name, created_at) VALUES (1, 'default', 0)",
                [],
            )
            .unwrap();
            let record = r#"{"Id":"old","OrganizationId":"default","CreationTime":"2026-01-01T00:00:00.000Z","Operation":"Update","Fields":{"name":"legacy"},"Category":"Update","Sequence":1}"#;
            conn.execute(
                "INSERT INTO audit_records VALUES (1, 1, 'old', 0, 'Update', 'Update', NULL, ?1)",
                [record],
            )
            .unwrap();
        }
        let store = SqliteStore::open(
            dir.path(),
            super::super::SqliteOptions::default(),
            crate::StoreMetrics::default(),
        )
        .unwrap();
        let rows = store.chain_rows(OrgId(1), 0, i64::MAX, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].previous, GENESIS);
        assert_eq!(
            Some(rows[0].hash),
            rows[0].record_sha256.map(|d| link(&GENESIS, 1, &d))
        );
        let filter = AuditFilter {
            q: Some("legacy".into()),
            ..AuditFilter::default()
        };
        let page = store
            .search_audit(OrgId(1), filter, 10, None, true)
            .await
            .unwrap();
        assert_eq!(page.count, Some(1));
        let next = store
            .append_audit(
                OrgId(1),
                vec![AuditRecord {
                    id: "new".into(),
                    creation_time: "2026-01-02T00:00:00Z".into(),
                    operation: "Create".into(),
                    ..AuditRecord::default()
                }],
            )
            .await
            .unwrap();
        assert_eq!(next[0].as_ref().unwrap().sequence, Some(2));
        crate::Lifecycle::close(&store).await;
    }

    /// A free-text search answers the same whether it starts from the FTS
    /// index or walks the log in time order.
    #[tokio::test]
    async fn free_text_answers_the_same_from_either_side() {
        let words = ["amber", "birch", "cedar"];
        let records: Vec<AuditRecord> = (0..60)
            .map(|i| AuditRecord {
                id: format!("r{i}"),
                // Out of arrival order, with ties broken by sequence.
                creation_time: UtcMillis::from_millis(1_700_000_000_000 + (i * 7 % 20) * 60_000)
                    .to_rfc3339(),
                operation: if i % 2 == 0 { "Update" } else { "Retrieve" }.into(),
                user: Some(format!("u{}", i % 3)),
                fields: Some(serde_json::json!({ "note": words[(i % 3) as usize] })),
                query: (i % 5 == 0).then(|| "amber".to_owned()),
                ..AuditRecord::default()
            })
            .collect();
        let mut answers = Vec::new();
        for below in [0, i64::MAX] {
            let dir = tempfile::tempdir().unwrap();
            let options = super::super::SqliteOptions {
                audit_fts_driven_below: below,
                ..super::super::SqliteOptions::default()
            };
            let store =
                SqliteStore::open(dir.path(), options, crate::StoreMetrics::default()).unwrap();
            store.append_audit(OrgId(1), records.clone()).await.unwrap();
            let mut seen = Vec::new();
            for (q, user) in [("amber", None), ("birch", Some("u1")), ("cedar nope", None)] {
                let filter = AuditFilter {
                    q: Some(q.into()),
                    user: user.map(Into::into),
                    ..AuditFilter::default()
                };
                let mut cursor = None;
                let mut ids = Vec::new();
                let mut counts = Vec::new();
                loop {
                    let page = store
                        .search_audit(OrgId(1), filter.clone(), 4, cursor, true)
                        .await
                        .unwrap();
                    counts.push(page.count);
                    ids.extend(page.items.into_iter().map(|h| h.record.id));
                    cursor = page.next_cursor;
                    if cursor.is_none() {
                        break;
                    }
                }
                let histogram = store
                    .audit_histogram(OrgId(1), filter, 600_000)
                    .await
                    .unwrap();
                seen.push((q, ids, counts, histogram));
            }
            crate::Lifecycle::close(&store).await;
            answers.push(seen);
        }
        assert_eq!(answers[0], answers[1]);
        let amber = &answers[0][0];
        assert_eq!(amber.1.len(), 28, "every 3rd note and every 5th query");
        assert!(amber.2.iter().all(|c| *c == Some(28)));
        assert!(answers[0][2].1.is_empty());
    }

    proptest::proptest! {
        /// Whatever people type, the quoted query is valid FTS5 syntax.
        #[test]
        fn any_text_is_a_valid_match_expression(text in "\\PC{0,40}") {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(
                "CREATE VIRTUAL TABLE t USING fts5(body, content='', contentless_delete=1);
                 INSERT INTO t (rowid, body) VALUES (1, 'ana \"souza\" NEAR( x*');",
            )
            .unwrap();
            if let Some(query) = fts_query(&text) {
                let result: rusqlite::Result<i64> = conn.query_row(
                    "SELECT count(*) FROM t WHERE t MATCH ?1",
                    [query.as_str()],
                    |r| r.get(0),
                );
                proptest::prop_assert!(result.is_ok(), "{text:?} -> {query:?}: {result:?}");
            }
        }
    }

    #[test]
    fn placeholders_are_renumbered() {
        assert_eq!(renumber("a ?1 b ? c ? ?1"), "a ?1 b ?2 c ?3 ?1");
    }
}
