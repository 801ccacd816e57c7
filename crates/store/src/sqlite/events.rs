//! Interactions in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, params};
use serde_json::{Map, Value};
use tracklog_domain::ids::{ContactId, InteractionId, OrgId, PortalId, SessionId};
use tracklog_domain::interaction::Interaction;
use tracklog_domain::time::UtcMillis;

use super::writer::Dictionary;
use super::{SqliteStore, sql_error};
use crate::{AppendSummary, Cursor, EventStore, Page, StoreError, TimelineQuery};

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_interactions(
        &self,
        org: OrgId,
        items: Vec<Interaction>,
    ) -> Result<AppendSummary, StoreError> {
        if items.is_empty() {
            return Ok(AppendSummary::default());
        }
        self.write(items.len(), move |ctx| {
            let mut summary = AppendSummary::default();
            for item in &items {
                let type_id = ctx.dict.intern(
                    ctx.conn,
                    Dictionary::INTERACTION_TYPE,
                    &item.interaction_type,
                )?;
                let portal_id =
                    ctx.dict
                        .intern(ctx.conn, Dictionary::PORTAL, item.portal_id.as_str())?;
                let fields = serde_json::to_string(&item.fields)
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                let inserted = ctx
                    .conn
                    .prepare_cached(
                        "INSERT INTO interactions
                            (org_id, id, type_id, portal_id, contact_id, session_id, ts, fields)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT (org_id, id) DO NOTHING",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            org.0,
                            item.id.as_str(),
                            type_id,
                            portal_id,
                            item.contact_id.as_ref().map(ContactId::as_str),
                            item.session_id.as_ref().map(SessionId::as_str),
                            item.timestamp.as_millis(),
                            fields,
                        ])
                    })
                    .map_err(sql_error)?;
                if inserted == 1 {
                    summary.inserted += 1;
                } else {
                    summary.duplicates += 1;
                }
            }
            Ok(summary)
        })
        .await
    }

    async fn contact_interactions(
        &self,
        org: OrgId,
        contact: &ContactId,
        query: TimelineQuery,
    ) -> Result<Page<Interaction>, StoreError> {
        let contact = contact.clone();
        self.read(move |conn| timeline(conn, org, &contact, &query))
            .await
    }
}

const SELECT_INTERACTION: &str =
    "SELECT i.seq, i.id, t.text, p.text, i.contact_id, i.session_id, i.ts, i.fields
     FROM interactions i
     JOIN dict t ON t.id = i.type_id
     JOIN dict p ON p.id = i.portal_id";

fn timeline(
    conn: &Connection,
    org: OrgId,
    contact: &ContactId,
    query: &TimelineQuery,
) -> Result<Page<Interaction>, StoreError> {
    let (after_ts, after_seq) = query
        .cursor
        .map_or((i64::MIN, i64::MIN), |c| (c.time, c.seq));
    let from = query.from.map_or(i64::MIN, UtcMillis::as_millis);
    let to = query.to.map_or(i64::MAX, UtcMillis::as_millis);
    let limit = query.limit.max(1);
    let sql = format!(
        "{SELECT_INTERACTION}
         WHERE i.org_id = ?1 AND i.contact_id = ?2 AND i.ts >= ?3 AND i.ts < ?4
           AND (i.ts > ?5 OR (i.ts = ?5 AND i.seq > ?6))
         ORDER BY i.ts, i.seq
         LIMIT ?7"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let mut rows = stmt
        .query(params![
            org.0,
            contact.as_str(),
            from,
            to,
            after_ts,
            after_seq,
            (limit + 1) as i64
        ])
        .map_err(sql_error)?;
    let mut items = Vec::with_capacity(limit.min(1024));
    let mut last = None;
    let mut more = false;
    while let Some(row) = rows.next().map_err(sql_error)? {
        if items.len() == limit {
            more = true;
            break;
        }
        let (seq, interaction) = row_to_interaction(row)?;
        last = Some(Cursor {
            time: interaction.timestamp.as_millis(),
            seq,
        });
        items.push(interaction);
    }
    Ok(Page {
        items,
        next_cursor: if more { last } else { None },
    })
}

fn row_to_interaction(row: &rusqlite::Row<'_>) -> Result<(i64, Interaction), StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("stored interaction has a bad {what}"));
    let seq: i64 = row.get(0).map_err(sql_error)?;
    let id: String = row.get(1).map_err(sql_error)?;
    let interaction_type: String = row.get(2).map_err(sql_error)?;
    let portal: String = row.get(3).map_err(sql_error)?;
    let contact: Option<String> = row.get(4).map_err(sql_error)?;
    let session: Option<String> = row.get(5).map_err(sql_error)?;
    let ts: i64 = row.get(6).map_err(sql_error)?;
    let fields: String = row.get(7).map_err(sql_error)?;
    let fields: Map<String, Value> =
        serde_json::from_str(&fields).map_err(|_| corrupt("fields"))?;
    Ok((
        seq,
        Interaction {
            id: InteractionId::parse(id).map_err(|_| corrupt("id"))?,
            interaction_type,
            contact_id: contact
                .map(ContactId::parse)
                .transpose()
                .map_err(|_| corrupt("contact"))?,
            timestamp: UtcMillis::from_millis(ts),
            portal_id: PortalId::parse(portal).map_err(|_| corrupt("portal"))?,
            session_id: session
                .map(SessionId::parse)
                .transpose()
                .map_err(|_| corrupt("session"))?,
            fields,
        },
    ))
}
