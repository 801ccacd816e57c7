//! The activity log in SQLite.
//!
//! One row of `audit_log` per record, with the searchable fields as columns
//! and the record's JSON bytes in `record`, or, for a record over the split
//! threshold, in rows of `audit_parts`. `audit_fts` indexes `Fields` and
//! `Query` for free text. Each row carries its link in the org's hash chain
//! (`prev_hash`, `hash`).
//!
//! Records reach the tables through the log: [`write`] holds the
//! materialiser that links and indexes them, [`search`] turns a filter
//! into SQL, [`chain`] serves verification and retention, and
//! [`settings`] holds what each org records. Reads wait for the records
//! their org had acknowledged when they began.

mod chain;
mod codec;
mod search;
mod settings;
mod write;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row, params, params_from_iter};
use tracklog_domain::audit::chain::{Break, ChainRow, Checkpoint};
use tracklog_domain::audit::settings::{EntityAuditSettings, OrgAuditSettings};
use tracklog_domain::audit::split::{self, Part, ReassemblyError};
use tracklog_domain::audit::{AuditRecord, categorise};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::{SqliteStore, audit_integrity, sql_error};
use crate::log::{Admitted, Kind};
use crate::{
    Anchor, AuditFilter, AuditHit, AuditPage, AuditStore, Cursor, PartsIntegrity, PurgeSigner,
    StoreError,
};
pub(crate) use codec::{Compressor, Decoder};
use search::{Source, Where, filter_sql, fts_or_sql, renumber};
use write::Accepted;
pub(crate) use write::{AuditRecords, backfill};

fn internal(error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(error.to_string())
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Internal("a stored hash is not 32 bytes".into()))
}

const HIT_COLUMNS: &str = "seq, id, creation_time, operation, category, user_name, entity_name,
    entity_id, result_status, client_ip, service_name, correlation_id, parts,
    tl_audit_json(record), org_id";

/// Reads a row of [`HIT_COLUMNS`] back into a record, reassembling parts.
fn hit_from_row(conn: &Connection, row: &Row<'_>) -> Result<AuditHit, StoreError> {
    let get_err = sql_error;
    let sequence: i64 = row.get(0).map_err(get_err)?;
    let parts: i64 = row.get(12).map_err(get_err)?;
    let org: i64 = row.get(14).map_err(get_err)?;
    let bytes: Result<Vec<u8>, PartsIntegrity> = if parts == 0 {
        // NULL when the stored bytes cannot be decoded (see `codec`): the
        // record is served from its columns and marked, as a split one
        // with damaged parts is, never as if whole.
        let json: Option<Vec<u8>> = row.get(13).map_err(get_err)?;
        json.ok_or(PartsIntegrity {
            total_parts: 0,
            missing_parts: Vec::new(),
            digest_matches: false,
        })
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
                stored_at: tracklog_domain::audit::columns::stored_at(&bytes),
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
                stored_at: None,
            })
        }
    }
}

/// The whole bytes of a split record, or what keeps them from being whole.
pub(super) fn read_parts(
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

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(
        &self,
        org: OrgId,
        records: Vec<AuditRecord>,
    ) -> Result<Vec<bool>, StoreError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let now = UtcMillis::now();
        let accepted: Vec<Accepted> = records
            .into_iter()
            .map(|record| Accepted::new(org, record, now))
            .collect();
        let threshold = self.inner.audit_split_threshold;
        let codec = self.inner.audit_codec.clone();
        let Ok(log) = self.log() else {
            // Another process owns the log (the CLI beside a server): the
            // records are linked here, under SQLite's lock, as the server's
            // materialiser links its own.
            return self
                .write(accepted.len(), move |ctx| {
                    write::apply_records(ctx.conn, accepted, threshold, &codec)
                })
                .await;
        };
        let log = log.clone();
        self.await_recovery().await?;
        // Which Ids the tables hold already, as of a watermark read first:
        // every frame up to it is in what the probe sees.
        let probed_at = self.materialised(Kind::Audit);
        let (accepted, found) = self
            .read(move |conn| {
                let ids: Vec<&str> = accepted.iter().map(|a| a.record.id.as_str()).collect();
                let found = write::stored_ids(conn, org, &ids)?;
                Ok((accepted, found))
            })
            .await?;
        let count = accepted.len();
        let encoded: Vec<Vec<u8>> = accepted.iter().map(Accepted::encode).collect();
        let (fresh, _) = log
            .append(Kind::Audit, org.0, count, move |pending, seq| {
                let found = if probed_at < pending.floor {
                    let ids: Vec<&str> = accepted.iter().map(|a| a.record.id.as_str()).collect();
                    write::stored_ids(&pending.probe, org, &ids)?
                } else {
                    found
                };
                let mut fresh = Vec::with_capacity(count);
                let mut items = Vec::with_capacity(count);
                for ((item, bytes), stored) in accepted.iter().zip(encoded).zip(found) {
                    let key = item.key(&pending.hasher);
                    if stored || pending.contains(Kind::Audit, key) {
                        fresh.push(false);
                    } else {
                        pending.insert(Kind::Audit, key, seq);
                        fresh.push(true);
                        items.push(bytes);
                    }
                }
                Ok(Admitted {
                    items,
                    answer: fresh,
                })
            })
            .await?;
        Ok(fresh)
    }

    async fn recent_audit(
        &self,
        org: OrgId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.settle(Kind::Audit, org).await?;
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
        self.settle(Kind::Audit, org).await?;
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
        self.settle(Kind::Audit, org).await?;
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
        self.settle(Kind::Audit, org).await?;
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
        self.read(move |conn| settings::org_settings(conn, org))
            .await
    }

    async fn put_audit_settings(
        &self,
        org: OrgId,
        settings: OrgAuditSettings,
    ) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            settings::put_org_settings(ctx.conn, org, &settings)
        })
        .await
    }

    async fn entity_audit_settings(
        &self,
        org: OrgId,
        entities: Vec<String>,
    ) -> Result<HashMap<String, EntityAuditSettings>, StoreError> {
        self.read(move |conn| settings::entity_settings(conn, org, entities))
            .await
    }

    async fn put_entity_audit_settings(
        &self,
        org: OrgId,
        entity: String,
        settings: EntityAuditSettings,
    ) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            settings::put_entity_settings(ctx.conn, org, &entity, settings)
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
        self.settle(Kind::Audit, org).await?;
        self.read(move |conn| chain::rows(conn, org, after, until, limit))
            .await
    }

    async fn audit_structure(&self, org: OrgId) -> Result<Option<Break>, StoreError> {
        self.settle(Kind::Audit, org).await?;
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
        self.settle(Kind::Audit, org).await?;
        self.read(move |conn| chain::link_at(conn, org, sequence))
            .await
    }

    async fn chain_head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.settle(Kind::Audit, org).await?;
        self.read(move |conn| chain::newest(conn, org)).await
    }

    async fn applied_chain_head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.read(move |conn| chain::newest(conn, org)).await
    }

    async fn written_head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.settle(Kind::Audit, org).await?;
        self.read(move |conn| write::written_head(conn, org)).await
    }

    async fn chain_anchor(&self, org: OrgId) -> Result<Anchor, StoreError> {
        self.read(move |conn| write::anchor(conn, org)).await
    }

    async fn checkpoints(&self, org: OrgId) -> Result<Vec<Checkpoint>, StoreError> {
        self.read(move |conn| chain::read_checkpoints(conn, org, chain::Checkpoints::All))
            .await
    }

    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>, StoreError> {
        self.read(move |conn| {
            Ok(chain::read_checkpoints(conn, org, chain::Checkpoints::Latest)?.pop())
        })
        .await
    }

    async fn checkpoints_after(
        &self,
        org: OrgId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            chain::read_checkpoints(conn, org, chain::Checkpoints::After(after, limit))
        })
        .await
    }

    async fn add_checkpoint(&self, org: OrgId, checkpoint: Checkpoint) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            chain::add_checkpoint(ctx.conn, org, &checkpoint)
        })
        .await
    }

    async fn purge_audit(
        &self,
        org: OrgId,
        stored_before: UtcMillis,
        signer: Option<PurgeSigner>,
    ) -> Result<Option<Anchor>, StoreError> {
        // Every acknowledged record is in audit_log before the purge reads it,
        // so the checkpoint it signs covers the head the writer acknowledged.
        self.settle(Kind::Audit, org).await?;
        self.write(1, move |ctx| {
            let anchor = chain::purge(ctx.conn, org, stored_before)?;
            if let (Some(anchor), Some(signer)) = (anchor, signer) {
                chain::sign_purge(ctx.conn, org, anchor, signer)?;
            }
            Ok(anchor)
        })
        .await
    }

    async fn retention_days(&self, org: OrgId) -> Result<Option<u32>, StoreError> {
        self.read(move |conn| settings::retention_days(conn, org))
            .await
    }

    async fn set_retention_days(&self, org: OrgId, days: Option<u32>) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            settings::set_retention_days(ctx.conn, org, days)
        })
        .await
    }

    async fn audit_after(
        &self,
        org: OrgId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditHit>, StoreError> {
        self.settle(Kind::Audit, org).await?;
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
        self.read(move |conn| settings::forward_cursor(conn, &forwarder, org))
            .await
    }

    async fn save_forward_cursor(
        &self,
        forwarder: String,
        org: OrgId,
        sequence: i64,
    ) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            settings::save_forward_cursor(ctx.conn, &forwarder, org, sequence)
        })
        .await
    }
}
