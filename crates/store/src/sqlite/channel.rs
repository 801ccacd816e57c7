//! Channel analytics in SQLite.
//!
//! Raw records (conversations, sessions, participants, KPI events) are the
//! truth. In the same transaction as each write, the writer re-derives the
//! facts of every session the write touched ([`facts::derive`]) and moves
//! the pre-aggregates ([`super::rollups`]) by the difference between the
//! session's old contributions (kept in `ch_contrib`) and its new ones. A
//! dashboard query therefore reads buckets, never events, and the buckets
//! always equal what [`ChannelStore::rebuild_analytics`] would compute from
//! scratch — whatever order the events came in.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use tracklog_domain::channel::definitions::{Definition, names};
use tracklog_domain::channel::facts::{self, SessionFacts, Thresholds};
use tracklog_domain::channel::metrics::{self, Dimension, Dims, Row, presence_contributions};
use tracklog_domain::channel::payload::{
    Conversation, Init, KpiEvent, Merge, Participant, Session,
};
use tracklog_domain::ids::OrgId;
use tracklog_domain::ingest::Reason;
use tracklog_domain::time::UtcMillis;

use super::rollups::{self, apply_contributions, dimension_column};
use super::{SqliteStore, sql_error};
use tracklog_domain::channel::alerts::AlertRule;

use crate::{
    AggregateQuery, Alert, ChannelFilter, ChannelList, ChannelRules, ChannelStore, Cursor,
    FactTime, FactsQuery, ItemOutcome, Page, Provider, QueueSettings, RebuildProgress,
    RebuildSummary, SessionDetail, StoreError,
};

/// Sessions re-derived per write job during a rebuild or a threshold change.
const REBUILD_CHUNK: usize = 500;

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} is not valid"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

fn fact_column(time: FactTime) -> &'static str {
    match time {
        FactTime::Queued => "queued_at",
        FactTime::Answered => "answered_at",
        FactTime::Closed => "closed_at",
    }
}

// ---- reads inside a connection -------------------------------------------

fn load_record<T: serde::de::DeserializeOwned>(
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

fn load_records<T: serde::de::DeserializeOwned>(
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

fn load_conversation(
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

fn load_session(conn: &Connection, org: OrgId, id: &str) -> Result<Option<Session>, StoreError> {
    load_record(
        conn,
        "SELECT record FROM ch_sessions WHERE org_id = ?1 AND id = ?2",
        params![org.0, id],
        "session",
    )
}

fn load_participants(
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

fn load_events(conn: &Connection, org: OrgId, session: &str) -> Result<Vec<KpiEvent>, StoreError> {
    load_records(
        conn,
        "SELECT record FROM ch_events WHERE org_id = ?1 AND session_id = ?2 ORDER BY ts, rid",
        params![org.0, session],
        "KPI event",
    )
}

fn load_facts(
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

fn thresholds(
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

// ---- derived state ----------------------------------------------------------

fn session_owner(id: &str) -> String {
    format!("s:{id}")
}

fn agent_owner(id: &str) -> String {
    format!("a:{id}")
}

/// Re-derives one session's facts and contributions from its raw records.
fn rederive_session(conn: &Connection, org: OrgId, id: &str) -> Result<usize, StoreError> {
    let Some(session) = load_session(conn, org, id)? else {
        return Ok(0);
    };
    let conversation = load_conversation(conn, org, &session.conversation_id)?;
    let participants = load_participants(conn, org, id)?;
    let events = load_events(conn, org, id)?;
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
            queued_at, answered_at, closed_at, status, last_activity, facts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
        ])
    })
    .map_err(sql_error)?;
    let contributions = metrics::session_contributions(&facts, &events);
    apply_contributions(conn, org, &session_owner(id), &contributions)
}

fn presence_events(
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

/// Re-derives one agent's signed-in time.
fn rederive_agent(conn: &Connection, org: OrgId, agent: &str) -> Result<usize, StoreError> {
    let events = presence_events(conn, org, agent)?;
    let spans = facts::signed_in_spans(&events);
    let contributions = presence_contributions(agent, &spans, None);
    apply_contributions(conn, org, &agent_owner(agent), &contributions)
}

// ---- writes -------------------------------------------------------------------

fn provider_of(
    conn: &Connection,
    org: OrgId,
    conversation: &str,
) -> Result<Option<String>, StoreError> {
    let provider: Option<Option<String>> = conn
        .prepare_cached("SELECT provider_id FROM ch_conversations WHERE org_id = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![org.0, conversation], |r| r.get(0))
                .optional()
        })
        .map_err(sql_error)?;
    Ok(provider.flatten())
}

/// Whether the rules let `provider` write; the refusal otherwise.
fn check_provider(rules: &ChannelRules, provider: Option<&str>) -> Option<ItemOutcome> {
    if let Some(scope) = &rules.provider_scope
        && provider != Some(scope.as_str())
    {
        return Some(ItemOutcome::Refused {
            reason: Reason::ProviderOutOfScope,
            field: Some("providerId".into()),
            message: format!(
                "the credential is limited to provider {scope}; this item is for {}",
                provider.unwrap_or("no provider")
            ),
        });
    }
    if let Some(provider) = provider
        && rules.disabled_providers.contains(provider)
    {
        return Some(ItemOutcome::Refused {
            reason: Reason::AnalyticsDisabled,
            field: None,
            message: format!("provider {provider} has enable_analytics = false"),
        });
    }
    None
}

fn write_init(
    conn: &Connection,
    org: OrgId,
    init: Init,
    rules: &ChannelRules,
    now: UtcMillis,
) -> Result<ItemOutcome, StoreError> {
    let id = init.conversation.conversation_id.clone();
    let stored = load_conversation(conn, org, &id)?;
    let provider = init
        .conversation
        .provider_id
        .clone()
        .or_else(|| stored.as_ref().and_then(|c| c.provider_id.clone()));
    if let Some(refusal) = check_provider(rules, provider.as_deref()) {
        return Ok(refusal);
    }
    if let Some(provider) = &provider {
        let name = init
            .conversation
            .provider_name
            .clone()
            .unwrap_or_else(|| provider.clone());
        // A provider seen for the first time is registered, enabled.
        conn.prepare_cached(
            "INSERT OR IGNORE INTO ch_providers (org_id, id, name, enable_analytics, created_at, updated_at)
             VALUES (?1, ?2, ?3, 1, ?4, ?4)",
        )
        .and_then(|mut s| s.execute(params![org.0, provider, name, now.as_millis()]))
        .map_err(sql_error)?;
    }
    let mut changed = false;
    let conversation = match stored.clone() {
        Some(old) => old.merge(init.conversation),
        None => init.conversation,
    };
    let mut rederive: BTreeSet<String> = BTreeSet::new();
    if stored.as_ref() != Some(&conversation) {
        changed = true;
        let at = conversation.created_timestamp.unwrap_or(now).as_millis();
        let conversation_json = to_json(&conversation)?;
        conn.prepare_cached(
            "INSERT INTO ch_conversations (org_id, id, provider_id, channel, at, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (org_id, id) DO UPDATE SET provider_id = excluded.provider_id,
                channel = excluded.channel, at = excluded.at, record = excluded.record",
        )
        .and_then(|mut s| {
            s.execute(params![
                org.0,
                id,
                conversation.provider_id,
                conversation.channel,
                at,
                conversation_json
            ])
        })
        .map_err(sql_error)?;
        if stored.is_some() {
            // Provider or channel may have changed for every session.
            let mut statement = conn
                .prepare_cached(
                    "SELECT id FROM ch_sessions WHERE org_id = ?1 AND conversation_id = ?2",
                )
                .map_err(sql_error)?;
            let ids = statement
                .query_map(params![org.0, id], |r| r.get::<_, String>(0))
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)?;
            rederive.extend(ids);
        }
    }
    if let Some(session) = init.session {
        let session_id = session.provider_session_id.clone();
        let stored_session = load_session(conn, org, &session_id)?;
        let merged = match stored_session.clone() {
            Some(old) => old.merge(session),
            None => session,
        };
        if stored_session.as_ref() != Some(&merged) {
            changed = true;
            let at = merged
                .created_timestamp
                .or(merged.queue_assigned_timestamp)
                .unwrap_or(now)
                .as_millis();
            let queue = merged
                .queue_id
                .clone()
                .or_else(|| merged.queue_name.clone());
            let merged_json = to_json(&merged)?;
            conn.prepare_cached(
                "INSERT INTO ch_sessions (org_id, id, conversation_id, queue, channel, at, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (org_id, id) DO UPDATE SET conversation_id = excluded.conversation_id,
                    queue = excluded.queue, channel = excluded.channel, at = excluded.at,
                    record = excluded.record",
            )
            .and_then(|mut s| {
                s.execute(params![
                    org.0,
                    session_id,
                    merged.conversation_id,
                    queue,
                    merged.channel,
                    at,
                    merged_json
                ])
            })
            .map_err(sql_error)?;
        }
        for participant in init.participants {
            let stored: Option<Participant> = load_record(
                conn,
                "SELECT record FROM ch_participants WHERE org_id = ?1 AND session_id = ?2 AND id = ?3",
                params![org.0, session_id, participant.participant_id],
                "participant",
            )?;
            let merged = match stored.clone() {
                Some(old) => old.merge(participant),
                None => participant,
            };
            if stored.as_ref() == Some(&merged) {
                continue;
            }
            changed = true;
            let merged_json = to_json(&merged)?;
            conn.prepare_cached(
                "INSERT INTO ch_participants (org_id, session_id, id, conversation_id, kind, at, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (org_id, session_id, id) DO UPDATE SET kind = excluded.kind,
                    at = excluded.at, record = excluded.record",
            )
            .and_then(|mut s| {
                s.execute(params![
                    org.0,
                    session_id,
                    merged.participant_id,
                    merged.conversation_id,
                    merged.kind,
                    merged.added_timestamp.unwrap_or(now).as_millis(),
                    merged_json
                ])
            })
            .map_err(sql_error)?;
        }
        if changed {
            rederive.insert(session_id);
        }
    }
    for session in rederive {
        rederive_session(conn, org, &session)?;
    }
    Ok(if changed {
        ItemOutcome::Accepted
    } else {
        ItemOutcome::Duplicate
    })
}

fn write_events(
    conn: &Connection,
    org: OrgId,
    events: Vec<KpiEvent>,
    rules: &ChannelRules,
) -> Result<Vec<ItemOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(events.len());
    let mut sessions: BTreeSet<String> = BTreeSet::new();
    let mut agents: BTreeSet<String> = BTreeSet::new();
    let mut providers: HashMap<String, Option<String>> = HashMap::new();
    for event in events {
        // An event for a conversation not initialised yet has no known
        // provider: it is kept, and counts once the init (which is checked)
        // arrives.
        let provider = match &event.conversation_id {
            Some(conversation) => match providers.get(conversation) {
                Some(provider) => provider.clone(),
                None => {
                    let provider = provider_of(conn, org, conversation)?;
                    providers.insert(conversation.clone(), provider.clone());
                    provider
                }
            },
            None => None,
        };
        if provider.is_some()
            && let Some(refusal) = check_provider(rules, provider.as_deref())
        {
            outcomes.push(refusal);
            continue;
        }
        let event_json = to_json(&event)?;
        let inserted = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO ch_events (org_id, event_id, conversation_id, session_id,
                    participant_id, name, ts, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    org.0,
                    event.event_id,
                    event.conversation_id,
                    event.provider_session_id,
                    event.participant_id,
                    event.kpi_event_name,
                    event.event_timestamp.as_millis(),
                    event_json
                ])
            })
            .map_err(sql_error)?;
        if inserted == 0 {
            outcomes.push(ItemOutcome::Duplicate);
            continue;
        }
        outcomes.push(ItemOutcome::Accepted);
        if let Some(session) = &event.provider_session_id {
            sessions.insert(session.clone());
        }
        if matches!(
            event.kpi_event_name.as_str(),
            names::AGENT_SIGNED_IN | names::AGENT_SIGNED_OUT
        ) && let Some(agent) = &event.participant_id
        {
            agents.insert(agent.clone());
        }
    }
    for session in sessions {
        rederive_session(conn, org, &session)?;
    }
    for agent in agents {
        rederive_agent(conn, org, &agent)?;
    }
    Ok(outcomes)
}

// ---- list queries ---------------------------------------------------------------

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

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn put_provider(&self, org: OrgId, provider: Provider) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT INTO ch_providers (org_id, id, name, enable_analytics, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (org_id, id) DO UPDATE SET name = excluded.name,
                        enable_analytics = excluded.enable_analytics, updated_at = excluded.updated_at",
                    params![
                        org.0,
                        provider.id,
                        provider.name,
                        provider.enable_analytics,
                        provider.created_at.as_millis(),
                        provider.updated_at.as_millis()
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn provider(&self, org: OrgId, id: &str) -> Result<Option<Provider>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, name, enable_analytics, created_at, updated_at FROM ch_providers
                 WHERE org_id = ?1 AND id = ?2",
                params![org.0, id],
                row_to_provider,
            )
            .optional()
            .map_err(sql_error)
        })
        .await
    }

    async fn providers(&self, org: OrgId) -> Result<Vec<Provider>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn
                .prepare(
                    "SELECT id, name, enable_analytics, created_at, updated_at FROM ch_providers
                     WHERE org_id = ?1 ORDER BY id",
                )
                .map_err(sql_error)?;
            statement
                .query_map(params![org.0], row_to_provider)
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)
        })
        .await
    }

    async fn delete_provider(&self, org: OrgId, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(1, move |ctx| {
            let n = ctx
                .conn
                .execute(
                    "DELETE FROM ch_providers WHERE org_id = ?1 AND id = ?2",
                    params![org.0, id],
                )
                .map_err(sql_error)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_definition(&self, org: OrgId, definition: Definition) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT OR REPLACE INTO ch_definitions (org_id, name, display_name, description, enabled)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        org.0,
                        definition.name,
                        definition.display_name,
                        definition.description,
                        definition.enabled
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn custom_definitions(&self, org: OrgId) -> Result<Vec<Definition>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn
                .prepare(
                    "SELECT name, display_name, description, enabled FROM ch_definitions
                     WHERE org_id = ?1 ORDER BY name",
                )
                .map_err(sql_error)?;
            statement
                .query_map(params![org.0], |r| {
                    Ok(Definition {
                        name: r.get(0)?,
                        display_name: r.get(1)?,
                        description: r.get(2)?,
                        builtin: false,
                        enabled: r.get(3)?,
                    })
                })
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)
        })
        .await
    }

    async fn delete_definition(&self, org: OrgId, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(1, move |ctx| {
            let n = ctx
                .conn
                .execute(
                    "DELETE FROM ch_definitions WHERE org_id = ?1 AND name = ?2",
                    params![org.0, name],
                )
                .map_err(sql_error)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_queue(&self, org: OrgId, queue: QueueSettings) -> Result<(), StoreError> {
        let name = queue.queue.clone();
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT OR REPLACE INTO ch_queues (org_id, queue, service_level_seconds,
                        short_abandon_seconds, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        org.0,
                        queue.queue,
                        queue.service_level_seconds,
                        queue.short_abandon_seconds,
                        queue.updated_at.as_millis()
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await?;
        let ids: Vec<String> = self
            .read(move |conn| {
                let mut statement = conn
                    .prepare("SELECT id FROM ch_sessions WHERE org_id = ?1 AND queue = ?2")
                    .map_err(sql_error)?;
                statement
                    .query_map(params![org.0, name], |r| r.get(0))
                    .map_err(sql_error)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_error)
            })
            .await?;
        for chunk in ids.chunks(REBUILD_CHUNK) {
            let chunk = chunk.to_vec();
            self.write(chunk.len(), move |ctx| {
                for id in &chunk {
                    rederive_session(ctx.conn, org, id)?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn queues(&self, org: OrgId) -> Result<Vec<QueueSettings>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn
                .prepare(
                    "SELECT queue, service_level_seconds, short_abandon_seconds, updated_at
                     FROM ch_queues WHERE org_id = ?1 ORDER BY queue",
                )
                .map_err(sql_error)?;
            statement
                .query_map(params![org.0], |r| {
                    Ok(QueueSettings {
                        queue: r.get(0)?,
                        service_level_seconds: r.get(1)?,
                        short_abandon_seconds: r.get(2)?,
                        updated_at: UtcMillis::from_millis(r.get(3)?),
                    })
                })
                .map_err(sql_error)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_error)
        })
        .await
    }

    async fn ingest_init(
        &self,
        org: OrgId,
        items: Vec<Init>,
        rules: ChannelRules,
    ) -> Result<Vec<ItemOutcome>, StoreError> {
        let now = UtcMillis::now();
        self.write(items.len(), move |ctx| {
            items
                .into_iter()
                .map(|init| write_init(ctx.conn, org, init, &rules, now))
                .collect()
        })
        .await
    }

    async fn ingest_events(
        &self,
        org: OrgId,
        events: Vec<KpiEvent>,
        rules: ChannelRules,
    ) -> Result<Vec<ItemOutcome>, StoreError> {
        self.write(events.len(), move |ctx| {
            write_events(ctx.conn, org, events, &rules)
        })
        .await
    }

    async fn conversations(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<Conversation>, StoreError> {
        self.read(move |conn| {
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
        })
        .await
    }

    async fn conversation(&self, org: OrgId, id: &str) -> Result<Option<Conversation>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| load_conversation(conn, org, &id))
            .await
    }

    async fn sessions(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<(Session, Option<SessionFacts>)>, StoreError> {
        self.read(move |conn| {
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
        })
        .await
    }

    async fn session(&self, org: OrgId, id: &str) -> Result<Option<SessionDetail>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn| {
            let Some(session) = load_session(conn, org, &id)? else {
                return Ok(None);
            };
            Ok(Some(SessionDetail {
                conversation: load_conversation(conn, org, &session.conversation_id)?,
                participants: load_participants(conn, org, &id)?,
                facts: load_facts(conn, org, &id)?,
                events: load_events(conn, org, &id)?,
                session,
            }))
        })
        .await
    }

    async fn participants(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<Participant>, StoreError> {
        self.read(move |conn| {
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
        })
        .await
    }

    async fn kpi_events(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<KpiEvent>, StoreError> {
        self.read(move |conn| {
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
        })
        .await
    }

    async fn aggregate(&self, org: OrgId, query: AggregateQuery) -> Result<Vec<Row>, StoreError> {
        self.read(move |conn| rollups::aggregate(conn, org, &query))
            .await
    }

    async fn facts(&self, org: OrgId, query: FactsQuery) -> Result<Vec<SessionFacts>, StoreError> {
        self.read(move |conn| {
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
        })
        .await
    }

    async fn facts_with_events(
        &self,
        org: OrgId,
        names: Vec<String>,
        query: FactsQuery,
    ) -> Result<Vec<SessionFacts>, StoreError> {
        self.read(move |conn| {
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
        })
        .await
    }

    async fn live_sessions(
        &self,
        org: OrgId,
        since: UtcMillis,
    ) -> Result<Vec<SessionFacts>, StoreError> {
        self.read(move |conn| {
            load_records(
                conn,
                "SELECT facts FROM ch_facts WHERE org_id = ?1 AND status != 'closed'
                   AND last_activity >= ?2 ORDER BY last_activity LIMIT 100000",
                params![org.0, since.as_millis()],
                "session facts",
            )
        })
        .await
    }

    async fn agent_spans(
        &self,
        org: OrgId,
        since: UtcMillis,
    ) -> Result<Vec<(String, Vec<(UtcMillis, Option<UtcMillis>)>)>, StoreError> {
        self.read(move |conn| {
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
        })
        .await
    }

    async fn put_alert_rule(&self, org: OrgId, rule: AlertRule) -> Result<(), StoreError> {
        let text = to_json(&StoredRule(&rule))?;
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT OR REPLACE INTO ch_alert_rules (org_id, id, rule) VALUES (?1, ?2, ?3)",
                    params![org.0, rule.id, text],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn alert_rules(&self, org: OrgId) -> Result<Vec<AlertRule>, StoreError> {
        self.read(move |conn| {
            let stored: Vec<serde_json::Value> = load_records(
                conn,
                "SELECT rule FROM ch_alert_rules WHERE org_id = ?1 ORDER BY id",
                params![org.0],
                "alert rule",
            )?;
            stored
                .into_iter()
                .map(|mut value| {
                    let secret = value
                        .get("webhook_secret")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned);
                    if let Some(object) = value.as_object_mut() {
                        object.remove("webhook_secret");
                    }
                    let mut rule: AlertRule =
                        serde_json::from_value(value).map_err(|_| corrupt("alert rule"))?;
                    rule.webhook_secret = secret;
                    Ok(rule)
                })
                .collect()
        })
        .await
    }

    async fn delete_alert_rule(&self, org: OrgId, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(1, move |ctx| {
            let n = ctx
                .conn
                .execute(
                    "DELETE FROM ch_alert_rules WHERE org_id = ?1 AND id = ?2",
                    params![org.0, id],
                )
                .map_err(sql_error)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_alert(&self, org: OrgId, alert: Alert) -> Result<(), StoreError> {
        let text = to_json(&alert)?;
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT OR REPLACE INTO ch_alerts (org_id, id, rule_id, state, started_at, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        org.0,
                        alert.id,
                        alert.rule_id,
                        alert.state,
                        alert.started_at.as_millis(),
                        text
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn alerts(
        &self,
        org: OrgId,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError> {
        self.read(move |conn| {
            let sql = if open_only {
                "SELECT record FROM ch_alerts WHERE org_id = ?1 AND state != 'resolved'
                 ORDER BY started_at DESC, id LIMIT ?2"
            } else {
                "SELECT record FROM ch_alerts WHERE org_id = ?1 ORDER BY started_at DESC, id LIMIT ?2"
            };
            load_records(conn, sql, params![org.0, limit as i64], "alert")
        })
        .await
    }

    async fn rebuild_analytics(
        &self,
        org: OrgId,
        progress: RebuildProgress,
    ) -> Result<RebuildSummary, StoreError> {
        self.write(1, move |ctx| {
            for table in rollups::TABLES.iter().chain(&["ch_contrib", "ch_facts"]) {
                ctx.conn
                    .execute(
                        &format!("DELETE FROM {table} WHERE org_id = ?1"),
                        params![org.0],
                    )
                    .map_err(sql_error)?;
            }
            Ok(())
        })
        .await?;
        let (sessions, agents): (Vec<String>, Vec<String>) = self
            .read(move |conn| {
                let ids = |sql: &str| -> Result<Vec<String>, StoreError> {
                    let mut statement = conn.prepare(sql).map_err(sql_error)?;
                    statement
                        .query_map(params![org.0], |r| r.get(0))
                        .map_err(sql_error)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(sql_error)
                };
                Ok((
                    ids("SELECT id FROM ch_sessions WHERE org_id = ?1 ORDER BY rid")?,
                    ids(
                        "SELECT DISTINCT participant_id FROM ch_events WHERE org_id = ?1
                           AND name IN ('AgentSignedIn', 'AgentSignedOut')
                           AND participant_id IS NOT NULL",
                    )?,
                ))
            })
            .await?;
        let total = sessions.len() + agents.len();
        let mut done = 0;
        progress(0, total);
        for chunk in sessions.chunks(REBUILD_CHUNK) {
            let chunk = chunk.to_vec();
            let count = chunk.len();
            self.write(count, move |ctx| {
                for id in &chunk {
                    rederive_session(ctx.conn, org, id)?;
                }
                Ok(())
            })
            .await?;
            done += count;
            progress(done, total);
        }
        for chunk in agents.chunks(REBUILD_CHUNK) {
            let chunk = chunk.to_vec();
            let count = chunk.len();
            self.write(count, move |ctx| {
                for agent in &chunk {
                    rederive_agent(ctx.conn, org, agent)?;
                }
                Ok(())
            })
            .await?;
            done += count;
            progress(done, total);
        }
        let buckets: i64 = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT COUNT(*) FROM ch_agg WHERE org_id = ?1",
                    params![org.0],
                    |r| r.get(0),
                )
                .map_err(sql_error)
            })
            .await?;
        Ok(RebuildSummary {
            sessions: sessions.len(),
            agents: agents.len(),
            buckets: buckets as usize,
        })
    }
}

/// A rule as stored: with its webhook secret, which the API never shows.
struct StoredRule<'a>(&'a AlertRule);

impl serde::Serialize for StoredRule<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
        if let (Some(object), Some(secret)) = (value.as_object_mut(), &self.0.webhook_secret) {
            object.insert("webhook_secret".into(), secret.clone().into());
        }
        value.serialize(serializer)
    }
}

fn row_to_provider(r: &rusqlite::Row<'_>) -> rusqlite::Result<Provider> {
    Ok(Provider {
        id: r.get(0)?,
        name: r.get(1)?,
        enable_analytics: r.get(2)?,
        created_at: UtcMillis::from_millis(r.get(3)?),
        updated_at: UtcMillis::from_millis(r.get(4)?),
    })
}
