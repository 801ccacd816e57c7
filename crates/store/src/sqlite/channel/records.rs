//! Reading channel records back from the tables: the JSON each row keeps,
//! parsed into the domain's types, and a queue's thresholds.

use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::channel::facts::{SessionFacts, Thresholds};
use tracklog_domain::channel::payload::{Conversation, KpiEvent, Participant, Session};
use tracklog_domain::ids::OrgId;

use super::super::sql_error;
use crate::{FactTime, StoreError};

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} is not valid"))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(e.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

pub(crate) fn fact_column(time: FactTime) -> &'static str {
    match time {
        FactTime::Queued => "queued_at",
        FactTime::Answered => "answered_at",
        FactTime::Closed => "closed_at",
    }
}

// ---- reads inside a connection -------------------------------------------

pub(crate) fn load_record<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: &str,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get(0)).optional())
        .map_err(sql_error)?;
    text.map(|t| from_json(&t, what)).transpose()
}

pub(crate) fn load_records<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(sql_error)?;
    let texts = statement
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    texts.iter().map(|t| from_json(t, what)).collect()
}

pub(crate) fn load_conversation(
    conn: &Connection,
    org: OrgId,
    id: &str,
) -> Result<Option<Conversation>, StoreError> {
    load_record(
        conn,
        "SELECT record FROM ch_conversations WHERE org_id = ?1 AND id = ?2",
        params![org.0, id],
        "conversation",
    )
}

pub(crate) fn load_session(
    conn: &Connection,
    org: OrgId,
    id: &str,
) -> Result<Option<Session>, StoreError> {
    load_record(
        conn,
        "SELECT record FROM ch_sessions WHERE org_id = ?1 AND id = ?2",
        params![org.0, id],
        "session",
    )
}

pub(crate) fn load_participants(
    conn: &Connection,
    org: OrgId,
    session: &str,
) -> Result<Vec<Participant>, StoreError> {
    load_records(
        conn,
        "SELECT record FROM ch_participants WHERE org_id = ?1 AND session_id = ?2 ORDER BY rid",
        params![org.0, session],
        "participant",
    )
}

pub(crate) fn load_events(
    conn: &Connection,
    org: OrgId,
    session: &str,
) -> Result<Vec<KpiEvent>, StoreError> {
    load_records(
        conn,
        "SELECT record FROM ch_events WHERE org_id = ?1 AND session_id = ?2 ORDER BY ts, rid",
        params![org.0, session],
        "KPI event",
    )
}

pub(crate) fn load_facts(
    conn: &Connection,
    org: OrgId,
    session: &str,
) -> Result<Option<SessionFacts>, StoreError> {
    load_record(
        conn,
        "SELECT facts FROM ch_facts WHERE org_id = ?1 AND session_id = ?2",
        params![org.0, session],
        "session facts",
    )
}

pub(crate) fn thresholds(
    conn: &Connection,
    org: OrgId,
    queue: Option<&str>,
) -> Result<Thresholds, StoreError> {
    let Some(queue) = queue else {
        return Ok(Thresholds::default());
    };
    let row: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT service_level_seconds, short_abandon_seconds FROM ch_queues
             WHERE org_id = ?1 AND queue = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![org.0, queue], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql_error)?;
    Ok(
        row.map_or_else(Thresholds::default, |(sl, short)| Thresholds {
            service_level_ms: sl * 1000,
            short_abandon_ms: short * 1000,
        }),
    )
}
