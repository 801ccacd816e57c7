//! The channel records as lists and the reads behind figures: pages of
//! conversations, sessions, participants and events, and session facts by
//! one of their times.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params, params_from_iter};
use tracklog_domain::channel::facts::{self, SessionFacts};
use tracklog_domain::channel::metrics::Dimension;
use tracklog_domain::channel::payload::{Conversation, KpiEvent, Participant, Session};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::super::rollups::dimension_column;
use super::super::sql_error;
use super::derive::presence_events;
use super::{
    fact_column, from_json, load_conversation, load_events, load_facts, load_participants,
    load_records, load_session,
};
use crate::{
    ChannelFilter, ChannelList, Cursor, DissatisfiedPage, DissatisfiedQuery, FactsQuery, Page,
    SessionDetail, StoreError,
};

/// A WHERE clause built from fixed column names and bound values only.
struct Where {
    clauses: Vec<String>,
    values: Vec<SqlValue>,
}

impl Where {
    fn new(org: OrgId, column: &str) -> Self {
        Self {
            clauses: vec![format!("{column} = ?1")],
            values: vec![SqlValue::Integer(org.0)],
        }
    }

    fn push(&mut self, clause: &str, value: SqlValue) {
        self.values.push(value);
        self.clauses
            .push(clause.replace('?', &format!("?{}", self.values.len())));
    }

    fn eq(&mut self, column: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.push(&format!("{column} = ?"), SqlValue::Text(value.clone()));
        }
    }

    fn range(&mut self, column: &str, filter: &ChannelFilter) {
        if let Some(from) = filter.from {
            self.push(
                &format!("{column} >= ?"),
                SqlValue::Integer(from.as_millis()),
            );
        }
        if let Some(to) = filter.to {
            self.push(&format!("{column} < ?"), SqlValue::Integer(to.as_millis()));
        }
    }

    fn after(&mut self, time: &str, rid: &str, cursor: Option<Cursor>) {
        if let Some(cursor) = cursor {
            self.values.push(SqlValue::Integer(cursor.time));
            let t = self.values.len();
            self.values.push(SqlValue::Integer(cursor.seq));
            let r = self.values.len();
            self.clauses.push(format!(
                "({time} > ?{t} OR ({time} = ?{t} AND {rid} > ?{r}))"
            ));
        }
    }

    fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }
}

/// Runs a list query whose first three columns are (time, rid, text), and
/// pages it.
fn page_of<T>(
    conn: &Connection,
    sql: &str,
    values: Vec<SqlValue>,
    limit: usize,
    map: impl Fn(&str, Option<&str>) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let mut statement = conn.prepare(sql).map_err(sql_error)?;
    let rows = statement
        .query_map(params_from_iter(values), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3).unwrap_or(None),
            ))
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    let more = rows.len() > limit;
    let mut items = Vec::with_capacity(limit.min(rows.len()));
    let mut last = None;
    for (time, rid, text, extra) in rows.into_iter().take(limit) {
        items.push(map(&text, extra.as_deref())?);
        last = Some(Cursor { time, seq: rid });
    }
    Ok(Page {
        items,
        next_cursor: if more { last } else { None },
    })
}

pub(super) fn conversations(
    conn: &Connection,
    org: OrgId,
    list: ChannelList,
) -> Result<Page<Conversation>, StoreError> {
    let mut w = Where::new(org, "org_id");
    w.eq("provider_id", &list.filter.provider);
    w.eq("channel", &list.filter.channel);
    w.eq("id", &list.filter.conversation);
    w.range("at", &list.filter);
    w.after("at", "rid", list.cursor);
    let sql = format!(
        "SELECT at, rid, record FROM ch_conversations WHERE {} ORDER BY at, rid LIMIT {}",
        w.sql(),
        list.limit + 1
    );
    page_of(conn, &sql, w.values, list.limit, |text, _| {
        from_json(text, "conversation")
    })
}

pub(super) fn sessions(
    conn: &Connection,
    org: OrgId,
    list: ChannelList,
) -> Result<Page<(Session, Option<SessionFacts>)>, StoreError> {
    let mut w = Where::new(org, "s.org_id");
    w.eq("s.conversation_id", &list.filter.conversation);
    w.eq("s.queue", &list.filter.queue);
    w.eq("s.channel", &list.filter.channel);
    w.eq("s.id", &list.filter.session);
    w.eq("f.agent", &list.filter.participant);
    w.eq("f.provider", &list.filter.provider);
    w.range("s.at", &list.filter);
    w.after("s.at", "s.rid", list.cursor);
    let sql = format!(
        "SELECT s.at, s.rid, s.record, f.facts FROM ch_sessions s
         LEFT JOIN ch_facts f ON f.org_id = s.org_id AND f.session_id = s.id
         WHERE {} ORDER BY s.at, s.rid LIMIT {}",
        w.sql(),
        list.limit + 1
    );
    page_of(conn, &sql, w.values, list.limit, |text, facts| {
        Ok((
            from_json(text, "session")?,
            facts.map(|f| from_json(f, "session facts")).transpose()?,
        ))
    })
}

pub(super) fn session(
    conn: &Connection,
    org: OrgId,
    id: &str,
) -> Result<Option<SessionDetail>, StoreError> {
    let Some(session) = load_session(conn, org, id)? else {
        return Ok(None);
    };
    Ok(Some(SessionDetail {
        conversation: load_conversation(conn, org, &session.conversation_id)?,
        participants: load_participants(conn, org, id)?,
        facts: load_facts(conn, org, id)?,
        events: load_events(conn, org, id)?,
        session,
    }))
}

pub(super) fn participants(
    conn: &Connection,
    org: OrgId,
    list: ChannelList,
) -> Result<Page<Participant>, StoreError> {
    let mut w = Where::new(org, "org_id");
    w.eq("session_id", &list.filter.session);
    w.eq("conversation_id", &list.filter.conversation);
    w.eq("id", &list.filter.participant);
    w.eq("kind", &list.filter.name);
    w.range("at", &list.filter);
    w.after("at", "rid", list.cursor);
    let sql = format!(
        "SELECT at, rid, record FROM ch_participants WHERE {} ORDER BY at, rid LIMIT {}",
        w.sql(),
        list.limit + 1
    );
    page_of(conn, &sql, w.values, list.limit, |text, _| {
        from_json(text, "participant")
    })
}

pub(super) fn kpi_events(
    conn: &Connection,
    org: OrgId,
    list: ChannelList,
) -> Result<Page<KpiEvent>, StoreError> {
    let mut w = Where::new(org, "org_id");
    w.eq("session_id", &list.filter.session);
    w.eq("conversation_id", &list.filter.conversation);
    w.eq("participant_id", &list.filter.participant);
    w.eq("name", &list.filter.name);
    w.range("ts", &list.filter);
    w.after("ts", "rid", list.cursor);
    let sql = format!(
        "SELECT ts, rid, record FROM ch_events WHERE {} ORDER BY ts, rid LIMIT {}",
        w.sql(),
        list.limit + 1
    );
    page_of(conn, &sql, w.values, list.limit, |text, _| {
        from_json(text, "KPI event")
    })
}

pub(super) fn facts(
    conn: &Connection,
    org: OrgId,
    query: FactsQuery,
) -> Result<Vec<SessionFacts>, StoreError> {
    let column = fact_column(query.time);
    let mut w = Where::new(org, "org_id");
    w.push(
        &format!("{column} >= ?"),
        SqlValue::Integer(query.from.as_millis()),
    );
    w.push(
        &format!("{column} < ?"),
        SqlValue::Integer(query.to.as_millis()),
    );
    for (dimension, value) in &query.filters {
        w.push(
            &format!("{} = ?", dimension_column(*dimension)),
            SqlValue::Text(value.clone()),
        );
    }
    let sql = format!(
        "SELECT facts FROM ch_facts WHERE {} ORDER BY {column}, session_id LIMIT {}",
        w.sql(),
        query.limit
    );
    load_records(conn, &sql, params_from_iter(w.values), "session facts")
}

/// The report of dissatisfied conversations, through the partial index of
/// dissatisfied sessions by closed time. Pages are ordered by (closed,
/// session); a cursor holds the last page's closed time and how many
/// sessions closed at that very time it already gave.
pub(super) fn dissatisfied(
    conn: &Connection,
    org: OrgId,
    query: DissatisfiedQuery,
) -> Result<DissatisfiedPage, StoreError> {
    let mut w = Where::new(org, "org_id");
    // As the partial index's own term, so the planner can use it.
    w.clauses.push("dissatisfied".into());
    w.push("closed_at >= ?", SqlValue::Integer(query.from.as_millis()));
    w.push("closed_at < ?", SqlValue::Integer(query.to.as_millis()));
    for (dimension, value) in &query.filters {
        w.push(
            &format!("{} = ?", dimension_column(*dimension)),
            SqlValue::Text(value.clone()),
        );
    }
    let count: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM ch_facts WHERE {}", w.sql()))
        .and_then(|mut s| s.query_row(params_from_iter(w.values.iter()), |r| r.get(0)))
        .map_err(sql_error)?;
    let (skip, after) = match query.cursor {
        Some(cursor) => {
            w.push("closed_at >= ?", SqlValue::Integer(cursor.time));
            (cursor.seq.max(0) as usize, Some(cursor.time))
        }
        None => (0, None),
    };
    let sql = format!(
        "SELECT closed_at, facts FROM ch_facts WHERE {} ORDER BY closed_at, session_id LIMIT {}",
        w.sql(),
        skip + query.limit + 1
    );
    let mut statement = conn.prepare_cached(&sql).map_err(sql_error)?;
    let rows = statement
        .query_map(params_from_iter(w.values.iter()), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    // Skip the sessions of the cursor's closed time that were given before.
    let mut seen_at_cursor = 0;
    let rows: Vec<(i64, String)> = rows
        .into_iter()
        .filter(|(closed, _)| {
            if Some(*closed) == after && seen_at_cursor < skip {
                seen_at_cursor += 1;
                false
            } else {
                true
            }
        })
        .collect();
    let more = rows.len() > query.limit;
    let mut items = Vec::with_capacity(query.limit.min(rows.len()));
    for (_, text) in rows.iter().take(query.limit) {
        items.push(from_json(text, "session facts")?);
    }
    let next_cursor = if more {
        let last = rows[query.limit - 1].0;
        let tied = rows[..query.limit]
            .iter()
            .filter(|(c, _)| *c == last)
            .count();
        let before = if Some(last) == after { skip } else { 0 };
        Some(Cursor {
            time: last,
            seq: (tied + before) as i64,
        })
    } else {
        None
    };
    Ok(DissatisfiedPage {
        items,
        count: count as u64,
        next_cursor,
    })
}

pub(super) fn facts_with_events(
    conn: &Connection,
    org: OrgId,
    names: Vec<String>,
    query: FactsQuery,
) -> Result<Vec<SessionFacts>, StoreError> {
    let mut w = Where::new(org, "e.org_id");
    w.push("e.ts >= ?", SqlValue::Integer(query.from.as_millis()));
    w.push("e.ts < ?", SqlValue::Integer(query.to.as_millis()));
    let mut alternatives = Vec::new();
    for name in &names {
        w.values.push(SqlValue::Text(name.clone()));
        alternatives.push(format!("e.name = ?{}", w.values.len()));
    }
    w.clauses.push(format!("({})", alternatives.join(" OR ")));
    for (dimension, value) in &query.filters {
        if *dimension == Dimension::Agent {
            // Notification and CSAT figures carry the event's
            // participant as their agent.
            w.push("e.participant_id = ?", SqlValue::Text(value.clone()));
        } else {
            w.push(
                &format!("f.{} = ?", dimension_column(*dimension)),
                SqlValue::Text(value.clone()),
            );
        }
    }
    let sql = format!(
        "SELECT f.facts FROM ch_facts f WHERE f.org_id = ?1 AND f.session_id IN
           (SELECT e.session_id FROM ch_events e JOIN ch_facts f
              ON f.org_id = e.org_id AND f.session_id = e.session_id WHERE {})
         ORDER BY f.last_activity, f.session_id LIMIT {}",
        w.sql(),
        query.limit
    );
    load_records(conn, &sql, params_from_iter(w.values), "session facts")
}

pub(super) fn live_sessions(
    conn: &Connection,
    org: OrgId,
    since: UtcMillis,
) -> Result<Vec<SessionFacts>, StoreError> {
    load_records(
        conn,
        "SELECT facts FROM ch_facts WHERE org_id = ?1 AND status != 'closed'
           AND last_activity >= ?2 ORDER BY last_activity LIMIT 100000",
        params![org.0, since.as_millis()],
        "session facts",
    )
}

/// An agent and their signed-in spans: from, and until unless still open.
type AgentSpans = (String, Vec<(UtcMillis, Option<UtcMillis>)>);

/// Each agent with presence events since `since`, and their signed-in spans.
pub(super) fn agent_spans(
    conn: &Connection,
    org: OrgId,
    since: UtcMillis,
) -> Result<Vec<AgentSpans>, StoreError> {
    let mut statement = conn
        .prepare(
            "SELECT DISTINCT participant_id FROM ch_events WHERE org_id = ?1
               AND name IN ('AgentSignedIn', 'AgentSignedOut') AND ts >= ?2
               AND participant_id IS NOT NULL LIMIT 10000",
        )
        .map_err(sql_error)?;
    let agents = statement
        .query_map(params![org.0, since.as_millis()], |r| r.get::<_, String>(0))
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    agents
        .into_iter()
        .map(|agent| {
            let events = presence_events(conn, org, &agent)?;
            Ok((agent, facts::signed_in_spans(&events)))
        })
        .collect()
}
