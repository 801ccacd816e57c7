//! The channel workload's data as it leaves the generator: the two API
//! request items of a conversation, an agent's presence item, and the raw
//! KPI event rows the peers load.

use serde_json::{Value, json};

use super::data::{
    Action, CHANNELS, ChannelData, Conversation, PROVIDERS, Presence, QUEUES, agent_id,
    conversation_id, session_id,
};

/// The `/api/v1/channel/init` item of a conversation.
pub fn init_item(c: &Conversation) -> Value {
    let (provider_id, provider_name) = PROVIDERS[usize::from(c.provider)];
    let mut participants = vec![json!({
        "participantId": format!("cust-{:07}", c.index),
        "type": "customer",
        "mode": "external",
        "addedTimestamp": c.created,
    })];
    if let (Some(agent), Some(answered)) = (c.agent, c.answered) {
        participants.push(json!({
            "participantId": agent_id(agent),
            "name": format!("Agent {agent}"),
            "type": "agent",
            "mode": "internal",
            "addedTimestamp": answered,
            "assignReason": "routed",
        }));
    }
    if let Some((agent, added)) = c.transfer_agent {
        participants.push(json!({
            "participantId": agent_id(agent),
            "type": "agent",
            "mode": "internal",
            "addedTimestamp": added,
            "assignReason": "transfer",
        }));
    }
    let queue = QUEUES[usize::from(c.queue)];
    let mut session = json!({
        "providerSessionId": session_id(c.index),
        "channel": CHANNELS[usize::from(c.channel)],
        "creationReason": "inbound",
        "createdTimestamp": c.created,
        "queueAssignedTimestamp": c.queued,
        "queueId": queue,
        "queueName": queue,
        "participants": participants,
    });
    if let Some(answered) = c.answered {
        session["agentAssignedTimestamp"] = json!(answered);
    }
    json!({
        "conversation": {
            "conversationId": conversation_id(c.index),
            "channel": CHANNELS[usize::from(c.channel)],
            "providerId": provider_id,
            "providerName": provider_name,
            "accountId": format!("acct-{}", c.index % 5_000),
            "contactId": format!("contact-{}", c.index % 40_000),
            "createdTimestamp": c.created,
            "session": session,
        },
        "correlationId": format!("corr-{:07}", c.index),
    })
}

/// The `/api/v1/channel/events` item with every event of a conversation.
pub fn events_item(c: &Conversation) -> Value {
    let events: Vec<Value> = c
        .events
        .iter()
        .map(|e| {
            let mut item = json!({"kpiEventName": e.kind.name(), "eventTimestamp": e.ts});
            if let Some(agent) = e.agent {
                item["participantId"] = json!(agent_id(agent));
            }
            if let Some(action) = e.action {
                item["notificationResponseAction"] = json!(action.name());
            }
            if let Some(score) = e.score {
                item["customData"] = json!({"score": score});
            }
            if let Some(score) = e.sentiment_score() {
                item["customData"] = json!({"score": score});
            }
            item
        })
        .collect();
    json!({
        "conversationId": conversation_id(c.index),
        "providerSessionId": session_id(c.index),
        "correlationId": format!("corr-{:07}", c.index),
        "events": events,
    })
}

/// The `/api/v1/channel/events` item with one agent's sign-ins and outs.
pub fn presence_item(agent: u16, presence: &[&Presence]) -> Value {
    let events: Vec<Value> = presence
        .iter()
        .map(|p| json!({"kpiEventName": p.kind.name(), "eventTimestamp": p.ts}))
        .collect();
    json!({"participantId": agent_id(agent), "events": events})
}

/// One raw KPI event as the peers store it. `session` and `participant` are
/// empty when the event has none; `action` too; `score` is 0 without one,
/// and `sentiment` `None`.
pub struct RawEvent<'a> {
    pub conversation: String,
    pub session: String,
    pub participant: String,
    pub name: &'a str,
    pub ts: i64,
    pub action: &'a str,
    pub score: u8,
    pub sentiment: Option<f64>,
}

impl ChannelData {
    /// Every KPI event as a peer row, session events then presence.
    pub fn raw_events(&self) -> impl Iterator<Item = RawEvent<'_>> {
        let sessions = self.conversations.iter().flat_map(|c| {
            c.events.iter().map(move |e| RawEvent {
                conversation: conversation_id(c.index),
                session: session_id(c.index),
                participant: e.agent.map(agent_id).unwrap_or_default(),
                name: e.kind.name(),
                ts: e.ts,
                action: e.action.map_or("", Action::name),
                score: e.score.unwrap_or(0),
                sentiment: e.sentiment_score(),
            })
        });
        let presence = self.presence.iter().map(|p| RawEvent {
            conversation: String::new(),
            session: String::new(),
            participant: agent_id(p.agent),
            name: p.kind.name(),
            ts: p.ts,
            action: "",
            score: 0,
            sentiment: None,
        });
        sessions.chain(presence)
    }
}
