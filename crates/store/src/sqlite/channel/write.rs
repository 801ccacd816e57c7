//! Channel analytics ingestion: admission in front of the log, and the
//! materialiser behind it.
//!
//! - **Admission** runs on the log thread, in log order, so that every item
//!   gets its outcome before the 2xx. A KPI event is refused when its
//!   conversation's provider is disabled or outside the credential's scope,
//!   and is a duplicate when its id is stored or already in the log. An init
//!   is refused likewise, and is a duplicate when merging it into what is
//!   stored and what the log holds changes nothing. [`ChannelState`] keeps
//!   the merged conversations, sessions and participants of the frames not
//!   yet applied; the tables hold the rest, read by a probe before the
//!   append.
//! - **The materialiser** ([`Channel`]) applies a batch in log order: inits
//!   are merged into the stored records, events inserted, and then every
//!   session the batch touched is re-derived once (facts, contributions and
//!   the rollups), however many of its events the batch held. The batch's
//!   own events are handed to the derivation as they are, and only the
//!   session's earlier events are read back from the table.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::channel::definitions::names;
use tracklog_domain::channel::payload::{
    Conversation, Init, KpiEvent, Merge, Participant, Session,
};
use tracklog_domain::ids::OrgId;
use tracklog_domain::ingest::Reason;
use tracklog_domain::time::UtcMillis;

use super::super::pipeline::{KeyHasher, Materialise};
use super::super::sql_error;
use super::super::writer::WriteContext;
use super::derive::{Held, rederive_agent, rederive_session};
use super::{load_conversation, load_record, load_session, to_json};
use crate::log::item::{ItemError, ItemReader, ItemWriter};
use crate::log::{Frame, Kind};
use crate::sqlite::rollups::Pending;
use crate::{ChannelRules, ItemOutcome, StoreError};

/// Whether the rules let `provider` write; the refusal otherwise.
pub(super) fn check_provider(rules: &ChannelRules, provider: Option<&str>) -> Option<ItemOutcome> {
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

// ---- admission --------------------------------------------------------------

/// Values by key, each with the frame that wrote it, newest last.
struct Versions<K, V>(HashMap<K, Vec<(u64, V)>>);

impl<K: Eq + Hash, V> Default for Versions<K, V> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Eq + Hash, V> Versions<K, V> {
    fn latest(&self, key: &K) -> Option<&V> {
        self.0
            .get(key)
            .and_then(|v| v.last())
            .map(|(_, value)| value)
    }

    fn push(&mut self, key: K, seq: u64, value: V) {
        self.0.entry(key).or_default().push((seq, value));
    }

    /// Forgets the versions of frames after `durable`, which were not written.
    fn rollback(&mut self, durable: u64) {
        self.0.retain(|_, versions| {
            versions.retain(|(seq, _)| *seq <= durable);
            !versions.is_empty()
        });
    }

    /// Forgets the versions the tables hold now: those of frames up to `upto`.
    fn passed(&mut self, upto: u64) {
        self.0.retain(|_, versions| {
            versions.retain(|(seq, _)| *seq > upto);
            !versions.is_empty()
        });
    }
}

/// The channel records of the frames in the log that the materialiser has
/// not applied, merged as admission merged them.
#[derive(Default)]
pub(crate) struct ChannelState {
    conversations: Versions<(i64, String), Conversation>,
    sessions: Versions<(i64, String), Session>,
    participants: Versions<(i64, String, String), Participant>,
}

impl ChannelState {
    pub fn rollback(&mut self, durable: u64) {
        self.conversations.rollback(durable);
        self.sessions.rollback(durable);
        self.participants.rollback(durable);
    }

    pub fn passed(&mut self, upto: u64) {
        self.conversations.passed(upto);
        self.sessions.passed(upto);
        self.participants.passed(upto);
    }
}

/// What the tables held of an init's records when probed.
pub(crate) struct StoredInit {
    conversation: Option<Conversation>,
    session: Option<Session>,
    /// In the order of the init's participants.
    participants: Vec<Option<Participant>>,
}

fn load_participant(
    conn: &Connection,
    org: OrgId,
    session: &str,
    id: &str,
) -> Result<Option<Participant>, StoreError> {
    load_record(
        conn,
        "SELECT record FROM ch_participants WHERE org_id = ?1 AND session_id = ?2 AND id = ?3",
        params![org.0, session, id],
        "participant",
    )
}

/// Reads what the tables hold of each init's records.
pub(crate) fn probe_inits(
    conn: &Connection,
    org: OrgId,
    inits: &[Init],
) -> Result<Vec<StoredInit>, StoreError> {
    inits
        .iter()
        .map(|init| {
            let session = init.session.as_ref().map(|s| &s.provider_session_id);
            Ok(StoredInit {
                conversation: load_conversation(conn, org, &init.conversation.conversation_id)?,
                session: match session {
                    Some(id) => load_session(conn, org, id)?,
                    None => None,
                },
                participants: match session {
                    Some(id) => init
                        .participants
                        .iter()
                        .map(|p| load_participant(conn, org, id, &p.participant_id))
                        .collect::<Result<_, _>>()?,
                    None => Vec::new(),
                },
            })
        })
        .collect()
}

fn merged<T: Merge + Clone + PartialEq>(before: Option<&T>, newer: T) -> (T, bool) {
    let merged = match before {
        Some(old) => old.clone().merge(newer),
        None => newer,
    };
    let changed = before != Some(&merged);
    (merged, changed)
}

/// Decides an init's outcome against the records as they will stand when
/// it is applied: what the log holds for them, else what the tables held.
/// An accepted init's merged records become what the log holds.
pub(crate) fn admit_init(
    state: &mut ChannelState,
    org: OrgId,
    init: &Init,
    stored: StoredInit,
    rules: &ChannelRules,
    seq: u64,
) -> ItemOutcome {
    let conversation_key = (org.0, init.conversation.conversation_id.clone());
    let before = state
        .conversations
        .latest(&conversation_key)
        .or(stored.conversation.as_ref());
    let provider = init
        .conversation
        .provider_id
        .as_deref()
        .or_else(|| before.and_then(|c| c.provider_id.as_deref()));
    if let Some(refusal) = check_provider(rules, provider) {
        return refusal;
    }
    let (conversation, mut changed) = merged(before, init.conversation.clone());
    let conversation_changed = changed;
    let mut session_update = None;
    let mut participant_updates = Vec::new();
    if let Some(session) = &init.session {
        let key = (org.0, session.provider_session_id.clone());
        let before = state.sessions.latest(&key).or(stored.session.as_ref());
        let (merged_session, session_changed) = merged(before, session.clone());
        changed |= session_changed;
        if session_changed {
            session_update = Some((key, merged_session));
        }
        for (participant, stored) in init.participants.iter().zip(&stored.participants) {
            let key = (
                org.0,
                session.provider_session_id.clone(),
                participant.participant_id.clone(),
            );
            // An earlier participant of this same init may have been merged.
            let before = participant_updates
                .iter()
                .rev()
                .find(|(k, _)| k == &key)
                .map(|(_, p)| p)
                .or_else(|| state.participants.latest(&key))
                .or(stored.as_ref());
            let (merged_participant, participant_changed) = merged(before, participant.clone());
            changed |= participant_changed;
            if participant_changed {
                participant_updates.push((key, merged_participant));
            }
        }
    }
    if !changed {
        return ItemOutcome::Duplicate;
    }
    if conversation_changed {
        state
            .conversations
            .push(conversation_key, seq, conversation);
    }
    if let Some((key, session)) = session_update {
        state.sessions.push(key, seq, session);
    }
    for (key, participant) in participant_updates {
        state.participants.push(key, seq, participant);
    }
    ItemOutcome::Accepted
}

/// What the tables held for a batch of events when probed.
pub(crate) struct StoredEvents {
    /// Whether each event's id is stored.
    pub exists: Vec<bool>,
    /// The provider of each conversation the events name.
    pub providers: HashMap<String, Option<String>>,
}

/// Reads which events are stored and their conversations' providers.
pub(crate) fn probe_events(
    conn: &Connection,
    org: OrgId,
    events: &[KpiEvent],
) -> Result<StoredEvents, StoreError> {
    let mut exists = conn
        .prepare_cached("SELECT 1 FROM ch_events WHERE org_id = ?1 AND event_id = ?2")
        .map_err(sql_error)?;
    let mut provider = conn
        .prepare_cached("SELECT provider_id FROM ch_conversations WHERE org_id = ?1 AND id = ?2")
        .map_err(sql_error)?;
    let mut stored = StoredEvents {
        exists: Vec::with_capacity(events.len()),
        providers: HashMap::new(),
    };
    for event in events {
        stored.exists.push(
            exists
                .exists(params![org.0, event.event_id])
                .map_err(sql_error)?,
        );
        if let Some(conversation) = &event.conversation_id
            && !stored.providers.contains_key(conversation)
        {
            let found: Option<Option<String>> = provider
                .query_row(params![org.0, conversation], |r| r.get(0))
                .optional()
                .map_err(sql_error)?;
            stored
                .providers
                .insert(conversation.clone(), found.flatten());
        }
    }
    Ok(stored)
}

/// The provider an event's conversation has as it will stand when the
/// event is applied. An event of a conversation not initialised yet has
/// none: it is kept, and counts once the init (which is checked) arrives.
pub(crate) fn event_provider<'a>(
    state: &'a ChannelState,
    stored: &'a StoredEvents,
    org: OrgId,
    event: &KpiEvent,
) -> Option<&'a str> {
    let conversation = event.conversation_id.as_ref()?;
    match state.conversations.latest(&(org.0, conversation.clone())) {
        Some(pending) => pending.provider_id.as_deref(),
        None => stored
            .providers
            .get(conversation)
            .and_then(|p| p.as_deref()),
    }
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
