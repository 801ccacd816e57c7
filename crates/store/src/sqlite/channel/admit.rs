//! Channel admission, in front of the log: it runs on the log thread, in
//! log order, so that every item gets its outcome before the 2xx.
//!
//! A KPI event is refused when its conversation's provider is disabled or
//! outside the credential's scope, and is a duplicate when its id is stored
//! or already in the log. An init is refused likewise, and is a duplicate
//! when merging it into what is stored and what the log holds changes
//! nothing. [`ChannelState`] keeps the merged conversations, sessions and
//! participants of the frames not yet applied; the tables hold the rest,
//! read by a probe before the append.

use std::collections::HashMap;
use std::hash::Hash;

use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::channel::payload::{
    Conversation, Init, KpiEvent, Merge, Participant, Session,
};
use tracklog_domain::ids::OrgId;
use tracklog_domain::ingest::Reason;

use super::super::sql_error;
use super::{load_conversation, load_record, load_session};
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

pub(super) fn load_participant(
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

pub(super) fn merged<T: Merge + Clone + PartialEq>(before: Option<&T>, newer: T) -> (T, bool) {
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
