//! The activity log in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::audit::{AuditRecord, categorise};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::{SqliteStore, sql_error};
use crate::{AuditStore, StoreError};

fn next_sequence(conn: &Connection, org: OrgId) -> Result<i64, StoreError> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM audit_records WHERE org_id = ?1")
        .and_then(|mut s| s.query_row([org.0], |r| r.get(0)))
        .map_err(sql_error)?;
    Ok(last.unwrap_or(0) + 1)
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(
        &self,
        org: OrgId,
        records: Vec<AuditRecord>,
    ) -> Result<Vec<Option<AuditRecord>>, StoreError> {
        self.write(records.len(), move |ctx| {
            let mut sequence = next_sequence(ctx.conn, org)?;
            let mut stored = Vec::with_capacity(records.len());
            for mut record in records {
                let exists: Option<i64> = ctx
                    .conn
                    .prepare_cached("SELECT seq FROM audit_records WHERE org_id = ?1 AND id = ?2")
                    .and_then(|mut s| {
                        s.query_row(params![org.0, record.id], |r| r.get(0))
                            .optional()
                    })
                    .map_err(sql_error)?;
                if exists.is_some() {
                    stored.push(None);
                    continue;
                }
                let category = categorise(&record.operation);
                record.category = Some(category);
                record.sequence = Some(sequence);
                let creation = UtcMillis::parse_rfc3339(&record.creation_time)
                    .unwrap_or_else(|_| UtcMillis::now());
                let json = serde_json::to_string(&record)
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                ctx.conn
                    .prepare_cached(
                        "INSERT INTO audit_records
                           (org_id, seq, id, creation_time, operation, category, user_name, record)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            org.0,
                            sequence,
                            record.id,
                            creation.as_millis(),
                            record.operation,
                            category.as_str(),
                            record.user,
                            json
                        ])
                    })
                    .map_err(sql_error)?;
                sequence += 1;
                stored.push(Some(record));
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
                .prepare_cached(
                    "SELECT record FROM audit_records WHERE org_id = ?1 AND seq < ?2
                     ORDER BY seq DESC LIMIT ?3",
                )
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(
                    params![org.0, before.unwrap_or(i64::MAX), limit as i64],
                    |r| r.get::<_, String>(0),
                )
                .map_err(sql_error)?;
            rows.map(|row| {
                let text = row.map_err(sql_error)?;
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::Internal(format!("stored audit record: {e}")))
            })
            .collect()
        })
        .await
    }
}
