//! A session's facts and contributions re-derived from its raw records,
//! and an agent's signed-in time from their presence events. Each moves
//! the rollups by the difference from what the session or agent
//! contributed before, so re-deriving is idempotent and order-free.

use rusqlite::{Connection, params};
use tracklog_domain::channel::facts::{self};
use tracklog_domain::channel::metrics::{self, Dims, presence_contributions};
use tracklog_domain::channel::payload::KpiEvent;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::super::rollups::{Pending, apply_contributions};
use super::super::sql_error;
use super::{
    load_conversation, load_events, load_participants, load_records, load_session, thresholds,
    to_json,
};
use crate::StoreError;

fn session_owner(id: &str) -> String {
    format!("s:{id}")
}

fn agent_owner(id: &str) -> String {
    format!("a:{id}")
}

/// The events of a session that the caller already holds: those the
/// materialiser's batch inserted, in insertion order, every one stored with
/// a `rid` greater than `stored_upto`.
pub(super) struct Held {
    pub stored_upto: i64,
    pub events: Vec<KpiEvent>,
}

/// A session's events in `(ts, rid)` order: all of them from the table, or
/// those stored before the batch from the table and the batch's own from
/// `held`, which spares parsing again what the batch just wrote.
fn session_events(
    conn: &Connection,
    org: OrgId,
    id: &str,
    held: Option<Held>,
) -> Result<Vec<KpiEvent>, StoreError> {
    let Some(held) = held else {
        return load_events(conn, org, id);
    };
    let mut events: Vec<KpiEvent> = load_records(
        conn,
        "SELECT record FROM ch_events WHERE org_id = ?1 AND session_id = ?2 AND rid <= ?3
         ORDER BY ts, rid",
        params![org.0, id, held.stored_upto],
        "KPI event",
    )?;
    events.extend(held.events);
    // Stable: the held events' rids are greater than every stored one's and
    // follow their order, so ties on the time keep `rid` order.
    events.sort_by_key(|e| e.event_timestamp);
    Ok(events)
}

/// Re-derives one session's facts and contributions from its raw records;
/// the rollups move when `pending` is flushed.
pub(super) fn rederive_session(
    conn: &Connection,
    org: OrgId,
    id: &str,
    held: Option<Held>,
    pending: &mut Pending,
) -> Result<usize, StoreError> {
    let Some(session) = load_session(conn, org, id)? else {
        return Ok(0);
    };
    let conversation = load_conversation(conn, org, &session.conversation_id)?;
    let participants = load_participants(conn, org, id)?;
    let events = session_events(conn, org, id, held)?;
    let queue = session
        .queue_id
        .clone()
        .or_else(|| session.queue_name.clone());
    let thresholds = thresholds(conn, org, queue.as_deref())?;
    let facts = facts::derive(
        &session,
        conversation.as_ref(),
        &participants,
        &events,
        thresholds,
    );
    let dims = Dims::of(&facts);
    let facts_json = to_json(&facts)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO ch_facts (org_id, session_id, queue, channel, agent, provider,
            queued_at, answered_at, closed_at, status, last_activity, facts, sentiment_band,
            dissatisfied)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )
    .and_then(|mut s| {
        s.execute(params![
            org.0,
            id,
            dims.queue,
            dims.channel,
            dims.agent,
            dims.provider,
            facts.queued_at.map(UtcMillis::as_millis),
            facts.answered_at.map(UtcMillis::as_millis),
            facts.closed_at.map(UtcMillis::as_millis),
            facts.status.code(),
            facts.last_activity.as_millis(),
            facts_json,
            dims.band,
            facts.dissatisfied(),
        ])
    })
    .map_err(sql_error)?;
    let contributions = metrics::session_contributions(&facts, &events);
    apply_contributions(conn, org, &session_owner(id), &contributions, pending)
}

pub(super) fn presence_events(
    conn: &Connection,
    org: OrgId,
    agent: &str,
) -> Result<Vec<KpiEvent>, StoreError> {
    load_records(
        conn,
        "SELECT record FROM ch_events WHERE org_id = ?1 AND participant_id = ?2
           AND name IN ('AgentSignedIn', 'AgentSignedOut') ORDER BY ts",
        params![org.0, agent],
        "KPI event",
    )
}

/// Re-derives one agent's signed-in time; the rollups move when `pending`
/// is flushed.
pub(super) fn rederive_agent(
    conn: &Connection,
    org: OrgId,
    agent: &str,
    pending: &mut Pending,
) -> Result<usize, StoreError> {
    let events = presence_events(conn, org, agent)?;
    let spans = facts::signed_in_spans(&events);
    let contributions = presence_contributions(agent, &spans, None);
    apply_contributions(conn, org, &agent_owner(agent), &contributions, pending)
}
