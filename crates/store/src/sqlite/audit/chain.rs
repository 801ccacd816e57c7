//! The activity log's chain as verification and retention see it: links
//! in sequence order with each record's searchable columns checked against
//! its bytes, the head, the signed checkpoints, and the purge that removes
//! a prefix of the chain and keeps its last link as the anchor.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::audit::chain::{ChainRow, Checkpoint};
use tracklog_domain::audit::columns::ColumnMismatch;
use tracklog_domain::audit::split::sha256;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::super::audit_integrity::{CHAIN_COLUMNS, column_mismatch, stored_columns};
use super::super::{is_unique_violation, sql_error};
use super::{hash32, read_parts};
use crate::{Anchor, CheckpointDraft, PurgeSigner, StoreError};

pub(super) fn rows(
    conn: &Connection,
    org: OrgId,
    after: i64,
    until: i64,
    limit: usize,
) -> Result<Vec<ChainRow>, StoreError> {
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
            // The JSON the chain covers; stored bytes that cannot be
            // decoded are hashed as they are, and so fail their link.
            match row.get::<_, Option<Vec<u8>>>(17).map_err(sql_error)? {
                Some(json) => Some(json),
                None => match row.get_ref(4).map_err(sql_error)? {
                    ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Some(bytes.to_vec()),
                    _ => None,
                },
            }
        } else {
            read_parts(conn, org.0, sequence, parts as u32)?.ok()
        };
        let columns = match &bytes {
            // A split record's bytes are in its parts alone.
            Some(_) if parts > 0 && row.get_ref(4).map_err(sql_error)?.as_bytes().is_ok() => {
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
}

pub(super) fn link_at(
    conn: &Connection,
    org: OrgId,
    sequence: i64,
) -> Result<Option<[u8; 32]>, StoreError> {
    let found: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM audit_log WHERE org_id = ?1 AND seq = ?2")
        .and_then(|mut s| {
            s.query_row(params![org.0, sequence], |r| r.get(0))
                .optional()
        })
        .map_err(sql_error)?;
    found.map(hash32).transpose()
}

/// The newest record's sequence and link.
pub(super) fn newest(conn: &Connection, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError> {
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
}

pub(super) fn add_checkpoint(
    conn: &Connection,
    org: OrgId,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    conn.execute(
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
        if is_unique_violation(&e) {
            StoreError::Conflict(format!("checkpoint {}", checkpoint.number))
        } else {
            sql_error(e)
        }
    })?;
    Ok(())
}

/// Removes the prefix of the org's chain stored before `stored_before`,
/// keeping its last link as the anchor.
pub(super) fn purge(
    conn: &Connection,
    org: OrgId,
    stored_before: UtcMillis,
) -> Result<Option<Anchor>, StoreError> {
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
}

/// Writes the checkpoint of a purge that left `anchor`: it signs the head
/// as applied now (the anchor itself when nothing is left).
pub(super) fn sign_purge(
    conn: &Connection,
    org: OrgId,
    anchor: Anchor,
    signer: PurgeSigner,
) -> Result<(), StoreError> {
    let (sequence, hash) = newest(conn, org)?.unwrap_or(anchor);
    let number = read_checkpoints(conn, org, Checkpoints::Latest)?
        .pop()
        .map_or(1, |c| c.number + 1);
    let checkpoint = signer(CheckpointDraft {
        number,
        sequence,
        hash,
        anchor_sequence: anchor.0,
        anchor_hash: anchor.1,
    });
    add_checkpoint(conn, org, &checkpoint)
}

/// The org's checkpoints by number, or only the newest.
/// Which of an org's checkpoints to read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Checkpoints {
    /// Every one, by number.
    All,
    /// The newest alone.
    Latest,
    /// Those numbered above the first, by number, at most the second.
    After(i64, i64),
}

pub(super) fn read_checkpoints(
    conn: &Connection,
    org: OrgId,
    which: Checkpoints,
) -> Result<Vec<Checkpoint>, StoreError> {
    const COLUMNS: &str = "SELECT number, seq, hash, anchor_seq, anchor_hash, created_at, signature
         FROM audit_checkpoints WHERE org_id = ?1";
    let (sql, after, limit) = match which {
        Checkpoints::All => (
            format!("{COLUMNS} AND number > ?2 ORDER BY number LIMIT ?3"),
            i64::MIN,
            -1,
        ),
        Checkpoints::Latest => (
            format!("{COLUMNS} AND number > ?2 ORDER BY number DESC LIMIT ?3"),
            i64::MIN,
            1,
        ),
        Checkpoints::After(number, limit) => (
            format!("{COLUMNS} AND number > ?2 ORDER BY number LIMIT ?3"),
            number,
            limit,
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let rows = stmt
        .query_map([org.0, after, limit], |r| {
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
