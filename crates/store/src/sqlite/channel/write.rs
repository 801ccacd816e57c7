//! Channel analytics behind the log: how its items are encoded, and the
//! materialiser that applies them (admission, in front of the log, is in
//! [`super::admit`]).
//!
//! The materialiser ([`Channel`]) applies a batch in log order: inits are
//! merged into the stored records, events inserted, and then every session
//! the batch touched is re-derived once (facts, contributions and the
//! rollups), however many of its events the batch held. The batch's own
//! events are handed to the derivation as they are, and only the session's
//! earlier events are read back from the table.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{Connection, params};
use tracklog_domain::channel::definitions::names;
use tracklog_domain::channel::payload::{Init, KpiEvent};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::super::pipeline::{KeyHasher, Materialise};
use super::super::sql_error;
use super::super::writer::WriteContext;
use super::admit::{load_participant, merged};
use super::derive::{Held, rederive_agent, rederive_session};
use super::{load_conversation, load_session, to_json};
use crate::StoreError;
use crate::log::item::{ItemError, ItemReader, ItemWriter};
use crate::log::{Frame, Kind};
use crate::sqlite::rollups::Pending;

// ---- log items ------------------------------------------------------------

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("a logged {what}: {e}"))
}

/// An init as the log carries it: when it arrived (the time of records
/// that carry none), the conversation, the session if any, and its
/// participants, each as the JSON the tables keep.
pub(crate) fn encode_init(at: UtcMillis, init: &Init) -> Vec<u8> {
    let session = init.session.as_ref().map(json);
    let mut item = ItemWriter::with_capacity(512);
    item.i64(at.as_millis())
        .bytes(&json(&init.conversation))
        .i64(i64::from(session.is_some()))
        .bytes(session.as_deref().unwrap_or_default())
        .bytes(&json(&init.participants));
    item.finish()
}

fn decode_init(bytes: &[u8]) -> Result<(UtcMillis, Init), String> {
    let read = |e: ItemError| e.to_string();
    let mut item = ItemReader::new(bytes);
    let at = UtcMillis::from_millis(item.i64().map_err(read)?);
    let conversation = parse(item.bytes().map_err(read)?, "conversation")?;
    let has_session = item.i64().map_err(read)? == 1;
    let session = item.bytes().map_err(read)?;
    let session = if has_session {
        Some(parse(session, "session")?)
    } else {
        None
    };
    let participants = parse(item.bytes().map_err(read)?, "participant list")?;
    item.end().map_err(read)?;
    Ok((
        at,
        Init {
            conversation,
            session,
            participants,
        },
    ))
}

/// A KPI event as the log carries it: its JSON.
pub(crate) fn encode_event(event: &KpiEvent) -> Vec<u8> {
    json(event)
}

/// The idempotency key of an event: its id in its org.
pub(crate) fn event_key(hasher: &KeyHasher, org: OrgId, event: &KpiEvent) -> u128 {
    hasher.digest(&[&org.0.to_le_bytes(), event.event_id.as_bytes()])
}

// ---- the materialiser -------------------------------------------------------

/// One item of the channel materialiser, in log order.
pub(crate) enum Item {
    Init {
        org: OrgId,
        at: UtcMillis,
        init: Box<Init>,
    },
    Event {
        org: OrgId,
        event: Box<KpiEvent>,
        /// The event's JSON as the log carries it, which is what the table
        /// keeps: [`encode_event`] wrote it from the parsed event.
        record: String,
    },
}

/// The channel materialiser: raw records, then the facts and rollups of
/// every session they touched.
pub(crate) struct Channel;

impl Materialise for Channel {
    type Item = Item;

    fn decode(&self, frame: &Frame) -> Result<Vec<Item>, String> {
        let org = OrgId(frame.org);
        frame
            .items
            .iter()
            .map(|bytes| match frame.kind {
                Kind::ChannelInit => decode_init(bytes).map(|(at, init)| Item::Init {
                    org,
                    at,
                    init: Box::new(init),
                }),
                Kind::ChannelEvents => {
                    let event = parse(bytes, "KPI event")?;
                    let record = String::from_utf8(bytes.clone())
                        .map_err(|_| "a logged KPI event is not UTF-8".to_owned())?;
                    Ok(Item::Event {
                        org,
                        event: Box::new(event),
                        record,
                    })
                }
                other => Err(format!(
                    "a {} frame reached the channel materialiser",
                    other.name()
                )),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| format!("channel frame {}: {e}", frame.seq))
    }

    fn apply(&self, ctx: &mut WriteContext<'_>, items: Vec<Item>) -> Result<(), StoreError> {
        let conn = ctx.conn;
        // Every event this batch inserts gets a greater rid than this.
        let stored_upto: i64 = conn
            .query_row("SELECT COALESCE(MAX(rid), 0) FROM ch_events", [], |r| {
                r.get(0)
            })
            .map_err(sql_error)?;
        let mut sessions: BTreeSet<(i64, String)> = BTreeSet::new();
        let mut held: HashMap<(i64, String), Vec<KpiEvent>> = HashMap::new();
        let mut agents: BTreeSet<(i64, String)> = BTreeSet::new();
        for item in items {
            match item {
                Item::Init { org, at, init } => apply_init(conn, org, *init, at, &mut sessions)?,
                Item::Event { org, event, record } => {
                    if !insert_event(conn, org, &event, &record)? {
                        continue;
                    }
                    if matches!(
                        event.kpi_event_name.as_str(),
                        names::AGENT_SIGNED_IN | names::AGENT_SIGNED_OUT
                    ) && let Some(agent) = &event.participant_id
                    {
                        agents.insert((org.0, agent.clone()));
                    }
                    if let Some(session) = &event.provider_session_id {
                        let key = (org.0, session.clone());
                        sessions.insert(key.clone());
                        held.entry(key).or_default().push(*event);
                    }
                }
            }
        }
        let mut pending = Pending::default();
        for key in sessions {
            let events = held.remove(&key).unwrap_or_default();
            let held = Held {
                stored_upto,
                events,
            };
            rederive_session(conn, OrgId(key.0), &key.1, Some(held), &mut pending)?;
        }
        for (org, agent) in agents {
            rederive_agent(conn, OrgId(org), &agent, &mut pending)?;
        }
        pending.flush(conn)
    }
}

/// Stores an event, as `record`, unless its id is stored; whether it was new.
fn insert_event(
    conn: &Connection,
    org: OrgId,
    event: &KpiEvent,
    record: &str,
) -> Result<bool, StoreError> {
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
                record
            ])
        })
        .map_err(sql_error)?;
    Ok(inserted > 0)
}

/// Merges an accepted init into the stored records, registers a provider
/// seen for the first time, and notes the sessions whose facts it changes.
/// Applying it again changes nothing.
fn apply_init(
    conn: &Connection,
    org: OrgId,
    init: Init,
    now: UtcMillis,
    rederive: &mut BTreeSet<(i64, String)>,
) -> Result<(), StoreError> {
    let id = init.conversation.conversation_id.clone();
    let stored = load_conversation(conn, org, &id)?;
    let provider = init
        .conversation
        .provider_id
        .clone()
        .or_else(|| stored.as_ref().and_then(|c| c.provider_id.clone()));
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
    let (conversation, conversation_changed) = merged(stored.as_ref(), init.conversation);
    if conversation_changed {
        let at = conversation.created_timestamp.unwrap_or(now).as_millis();
        let record = to_json(&conversation)?;
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
                record
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
            rederive.extend(ids.into_iter().map(|s| (org.0, s)));
        }
    }
    let Some(session) = init.session else {
        return Ok(());
    };
    let session_id = session.provider_session_id.clone();
    let mut session_changed = conversation_changed;
    let stored_session = load_session(conn, org, &session_id)?;
    let (merged_session, changed) = merged(stored_session.as_ref(), session);
    if changed {
        session_changed = true;
        let at = merged_session
            .created_timestamp
            .or(merged_session.queue_assigned_timestamp)
            .unwrap_or(now)
            .as_millis();
        let queue = merged_session
            .queue_id
            .clone()
            .or_else(|| merged_session.queue_name.clone());
        let record = to_json(&merged_session)?;
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
                merged_session.conversation_id,
                queue,
                merged_session.channel,
                at,
                record
            ])
        })
        .map_err(sql_error)?;
    }
    for participant in init.participants {
        let stored = load_participant(conn, org, &session_id, &participant.participant_id)?;
        let (merged_participant, changed) = merged(stored.as_ref(), participant);
        if !changed {
            continue;
        }
        session_changed = true;
        let record = to_json(&merged_participant)?;
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
                merged_participant.participant_id,
                merged_participant.conversation_id,
                merged_participant.kind,
                merged_participant.added_timestamp.unwrap_or(now).as_millis(),
                record
            ])
        })
        .map_err(sql_error)?;
    }
    if session_changed {
        rederive.insert((org.0, session_id));
    }
    Ok(())
}
