//! The two payloads a channel provider sends (PRODUCT.md §4.2), parsed into
//! typed records.
//!
//! `initLogAnalytics` carries a conversation, its session and the session's
//! participants; `logAnalyticsEvent` carries KPI events for a session. Names
//! stay those of the payload (camelCase), so a record reads back the way it
//! was sent. Every field is checked for its type here, and an error names the
//! field by its path (`conversation.session.queueAssignedTimestamp`).
//! Timestamps are RFC 3339 strings or Unix milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::contact::RecordError;
use crate::time::UtcMillis;

/// Longest identifier accepted (conversation, session, participant ids).
pub const MAX_ID_BYTES: usize = 256;

/// A conversation: one customer contact through one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub conversation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_timestamp: Option<UtcMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// A session: one conversation's stay with the contact centre, queued and
/// then handled by an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub provider_session_id: String,
    pub conversation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_session_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_reason: Option<String>,
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_timestamp: Option<UtcMillis>,
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent_assigned_timestamp: Option<UtcMillis>,
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue_assigned_timestamp: Option<UtcMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Value>,
}

/// A participant of a session: the customer, an agent, a bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub participant_id: String,
    pub provider_session_id: String,
    pub conversation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub added_timestamp: Option<UtcMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assign_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Value>,
}

impl Participant {
    /// Whether this participant is the agent (type `agent`, any case).
    pub fn is_agent(&self) -> bool {
        self.kind
            .as_deref()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("agent"))
    }
}

/// One `initLogAnalytics` call: a conversation with at most one session.
#[derive(Debug, Clone, PartialEq)]
pub struct Init {
    pub conversation: Conversation,
    pub session: Option<Session>,
    pub participants: Vec<Participant>,
}

/// One KPI event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KpiEvent {
    /// A digest of what identifies the event, so that a retried or
    /// duplicated event is stored once.
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub kpi_event_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kpi_event_reason: Option<String>,
    #[serde(with = "crate::time::rfc3339")]
    pub event_timestamp: UtcMillis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_response_action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Value>,
}

impl KpiEvent {
    /// The CSAT score (1–5) in `customData`, as `{"score": n}` or as the
    /// `[{"attribute": "score", "value": n}]` list of the reference payload.
    pub fn score(&self) -> Option<u8> {
        custom_value(self.custom_data.as_ref()?, "score").and_then(score_of)
    }

    /// The sentiment score (−1 to 1) of a `SentimentUpdated`, in
    /// `customData` as `score`, like CSAT's.
    pub fn sentiment(&self) -> Option<f64> {
        custom_value(self.custom_data.as_ref()?, "score")
            .and_then(number_of)
            .filter(|score| (-1.0..=1.0).contains(score))
    }

    /// The provider's own word for the sentiment, when it gives one.
    pub fn sentiment_label(&self) -> Option<&str> {
        custom_value(self.custom_data.as_ref()?, "label")?.as_str()
    }

    /// The `Accept` / `Reject` / `Timeout` of a `NotificationResponse`.
    pub fn response_action(&self) -> Option<ResponseAction> {
        self.notification_response_action
            .as_deref()
            .and_then(ResponseAction::parse)
    }
}

/// How an agent answered a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseAction {
    Accept,
    Reject,
    Timeout,
}

impl ResponseAction {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "accept" | "accepted" => Some(Self::Accept),
            "reject" | "rejected" => Some(Self::Reject),
            "timeout" | "timedout" | "timed_out" => Some(Self::Timeout),
            _ => None,
        }
    }
}

/// The value of `attribute` in customData, given either as an object or as
/// a list of `{attribute, value}` pairs.
pub fn custom_value<'a>(custom: &'a Value, attribute: &str) -> Option<&'a Value> {
    match custom {
        Value::Object(map) => map.get(attribute),
        Value::Array(items) => items.iter().find_map(|item| {
            (item.get("attribute")?.as_str()? == attribute).then(|| item.get("value"))?
        }),
        _ => None,
    }
}

/// A number given as a JSON number or as a numeric string.
fn number_of(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

fn score_of(value: &Value) -> Option<u8> {
    let number = number_of(value)?;
    (number.fract() == 0.0 && (1.0..=5.0).contains(&number)).then_some(number as u8)
}

/// One `logAnalyticsEvent` call: shared ids and a list of events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBatch {
    /// Each event parsed, or the error that refused it.
    pub events: Vec<Result<KpiEvent, RecordError>>,
}

/// Reads fields of one JSON object, naming each by its path on error.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, path: &'a str) -> Result<Self, RecordError> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            _ => Err(RecordError::new(
                if path.is_empty() { "item" } else { path },
                "must be a JSON object",
            )),
        }
    }

    fn name(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    fn present(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|value| !value.is_null())
    }

    /// A string; numbers are accepted and kept as their decimal text, since
    /// providers send numeric ids either way.
    fn text(&self, field: &str) -> Result<Option<String>, RecordError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(RecordError::new(&self.name(field), "must be a string")),
        }
    }

    fn id(&self, field: &str) -> Result<Option<String>, RecordError> {
        let id = self.text(field)?;
        if let Some(id) = &id {
            if id.len() > MAX_ID_BYTES {
                return Err(RecordError::new(
                    &self.name(field),
                    format!("is longer than {MAX_ID_BYTES} bytes"),
                ));
            }
            if id.chars().any(char::is_control) {
                return Err(RecordError::new(
                    &self.name(field),
                    "must not contain control characters",
                ));
            }
        }
        Ok(id)
    }

    fn required_id(&self, field: &str) -> Result<String, RecordError> {
        self.id(field)?
            .ok_or_else(|| RecordError::new(&self.name(field), "is required"))
    }

    fn time(&self, field: &str) -> Result<Option<UtcMillis>, RecordError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => UtcMillis::parse_rfc3339(s).map(Some).map_err(|e| {
                RecordError::new(&self.name(field), format!("is not an RFC 3339 time: {e}"))
            }),
            Some(Value::Number(n)) => n
                .as_i64()
                .filter(|ms| (0..=253_402_300_799_999).contains(ms))
                .map(|ms| Some(UtcMillis::from_millis(ms)))
                .ok_or_else(|| {
                    RecordError::new(&self.name(field), "is not a time in Unix milliseconds")
                }),
            Some(_) => Err(RecordError::new(
                &self.name(field),
                "must be an RFC 3339 string or Unix milliseconds",
            )),
        }
    }

    /// Any JSON, kept as sent.
    fn json(&self, field: &str) -> Option<Value> {
        self.present(field).cloned()
    }

    fn object(&self, field: &str) -> Option<&'a Value> {
        self.present(field)
    }
}

/// Parses one `/api/v1/channel/init` item:
/// `{conversation: {..., session: {..., participants: [...]}}, correlationId}`.
/// A bare conversation object (without the `conversation` wrapper) is
/// accepted too.
pub fn parse_init(item: &Value) -> Result<Init, RecordError> {
    let top = Fields::of(item, "")?;
    let (conversation_value, path) = match top.object("conversation") {
        Some(value) => (value, "conversation"),
        None => (item, ""),
    };
    let c = Fields::of(conversation_value, path)?;
    let conversation_id = c.required_id("conversationId")?;
    let conversation = Conversation {
        conversation_id: conversation_id.clone(),
        channel: c.text("channel")?,
        provider_id: c.id("providerId")?,
        provider_name: c.text("providerName")?,
        account_id: c.id("accountId")?,
        contact_id: c.id("contactId")?,
        created_timestamp: c.time("createdTimestamp")?,
        region_data: c.json("regionData"),
        additional_data: c.json("additionalData"),
        external_correlation_id: c.text("externalCorrelationId")?,
        custom_data: c.json("customData"),
        correlation_id: top.text("correlationId")?.or(c.text("correlationId")?),
    };
    let Some(session_value) = c.object("session") else {
        return Ok(Init {
            conversation,
            session: None,
            participants: Vec::new(),
        });
    };
    let session_path = c.name("session");
    let s = Fields::of(session_value, &session_path)?;
    let session_id = s.required_id("providerSessionId")?;
    let session = Session {
        provider_session_id: session_id.clone(),
        conversation_id: conversation_id.clone(),
        client_session_id: s.id("clientSessionId")?,
        client_session_name: s.text("clientSessionName")?,
        channel: s.text("channel")?.or_else(|| conversation.channel.clone()),
        creation_reason: s.text("creationReason")?,
        created_timestamp: s.time("createdTimestamp")?,
        agent_assigned_timestamp: s.time("agentAssignedTimestamp")?,
        queue_assigned_timestamp: s.time("queueAssignedTimestamp")?,
        queue_id: s.id("queueId")?,
        queue_name: s.text("queueName")?,
        custom_data: s.json("customData"),
    };
    let mut participants = Vec::new();
    match s.present("participants") {
        None => {}
        Some(Value::Array(items)) => {
            for (index, value) in items.iter().enumerate() {
                let path = format!("{session_path}.participants[{index}]");
                let p = Fields::of(value, &path)?;
                participants.push(Participant {
                    participant_id: p.required_id("participantId")?,
                    provider_session_id: session_id.clone(),
                    conversation_id: conversation_id.clone(),
                    external_id: p.id("externalId")?,
                    name: p.text("name")?,
                    mode: p.text("mode")?,
                    kind: p.text("type")?,
                    added_timestamp: p.time("addedTimestamp")?,
                    assign_reason: p.text("assignReason")?,
                    custom_data: p.json("customData"),
                });
            }
        }
        Some(_) => {
            return Err(RecordError::new(
                &format!("{session_path}.participants"),
                "must be an array",
            ));
        }
    }
    Ok(Init {
        conversation,
        session: Some(session),
        participants,
    })
}

/// Parses one `/api/v1/channel/events` item. A problem with the shared ids
/// refuses the whole item; a problem with one event refuses that event.
/// `now` stands in for a missing `eventTimestamp`.
pub fn parse_events(item: &Value, now: UtcMillis) -> Result<EventBatch, RecordError> {
    let top = Fields::of(item, "")?;
    let conversation_id = top.id("conversationId")?;
    let session_id = top.id("providerSessionId")?;
    let client_session_id = top.id("clientSessionId")?;
    let participant_id = top.id("participantId")?;
    let correlation_id = top.text("correlationId")?;
    let values: Vec<&Value> = match top.present("events") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(_) => return Err(RecordError::new("events", "must be an array")),
        // A single event given at the top level.
        None if top.present("kpiEventName").is_some() => vec![item],
        None => return Err(RecordError::new("events", "is required")),
    };
    let events = values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let path = if std::ptr::eq(value, item) {
                String::new()
            } else {
                format!("events[{index}]")
            };
            let e = Fields::of(value, &path)?;
            let name = e.required_id("kpiEventName")?;
            let event_participant = e.id("participantId")?.or(participant_id.clone());
            let mut event = KpiEvent {
                event_id: String::new(),
                conversation_id: e.id("conversationId")?.or(conversation_id.clone()),
                provider_session_id: e.id("providerSessionId")?.or(session_id.clone()),
                client_session_id: client_session_id.clone(),
                participant_id: event_participant,
                correlation_id: correlation_id.clone(),
                kpi_event_name: name,
                kpi_event_reason: e.text("kpiEventReason")?,
                event_timestamp: e.time("eventTimestamp")?.unwrap_or(now),
                notification_response_action: e.text("notificationResponseAction")?,
                external_correlation_id: e.text("externalCorrelationId")?,
                additional_data: e.json("additionalData"),
                custom_data: e.json("customData"),
            };
            if let Some(action) = &event.notification_response_action
                && ResponseAction::parse(action).is_none()
            {
                return Err(RecordError::new(
                    &e.name("notificationResponseAction"),
                    "must be Accept, Reject or Timeout",
                ));
            }
            if event.kpi_event_name == super::definitions::names::SENTIMENT_UPDATED
                && event.sentiment().is_none()
            {
                let score = event
                    .custom_data
                    .as_ref()
                    .and_then(|custom| custom_value(custom, "score"));
                return Err(RecordError::new(
                    &format!("{}.score", e.name("customData")),
                    if score.is_none() {
                        "is required"
                    } else {
                        "must be a number from -1 to 1"
                    },
                ));
            }
            event.event_id = event_id(&event);
            Ok(event)
        })
        .collect();
    Ok(EventBatch { events })
}

/// What makes two events the same event: ids, name, reason, time and action.
fn event_id(event: &KpiEvent) -> String {
    let mut hash = Sha256::new();
    for part in [
        event.conversation_id.as_deref(),
        event.provider_session_id.as_deref(),
        event.participant_id.as_deref(),
        Some(event.kpi_event_name.as_str()),
        event.kpi_event_reason.as_deref(),
        event.notification_response_action.as_deref(),
        event.external_correlation_id.as_deref(),
    ] {
        // Length-prefixed, so that no two field lists hash alike.
        let bytes = part.unwrap_or("\u{0}").as_bytes();
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    hash.update(event.event_timestamp.as_millis().to_le_bytes());
    let digest = hash.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Merges a repeated init into the stored record: fields the new call
/// carries replace the old ones, the rest are kept.
pub trait Merge {
    fn merge(self, newer: Self) -> Self;
}

macro_rules! merge_fields {
    ($old:ident, $new:ident; $($field:ident),*) => {
        $( $new.$field = $new.$field.or($old.$field); )*
    };
}

impl Merge for Conversation {
    fn merge(self, mut newer: Self) -> Self {
        let old = self;
        merge_fields!(old, newer; channel, provider_id, provider_name, account_id, contact_id,
            created_timestamp, region_data, additional_data, external_correlation_id,
            custom_data, correlation_id);
        newer
    }
}

impl Merge for Session {
    fn merge(self, mut newer: Self) -> Self {
        let old = self;
        merge_fields!(old, newer; client_session_id, client_session_name, channel,
            creation_reason, created_timestamp, agent_assigned_timestamp,
            queue_assigned_timestamp, queue_id, queue_name, custom_data);
        newer
    }
}

impl Merge for Participant {
    fn merge(self, mut newer: Self) -> Self {
        let old = self;
        merge_fields!(old, newer; external_id, name, mode, kind, added_timestamp,
            assign_reason, custom_data);
        newer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn init_payload() -> Value {
        json!({
            "conversation": {
                "conversationId": "c1", "channel": "voice", "providerId": "p1",
                "providerName": "Contoso Phone", "createdTimestamp": "2026-03-01T10:00:00Z",
                "customData": [{"attribute": "vip", "value": "yes"}],
                "session": {
                    "providerSessionId": "s1", "queueId": "billing",
                    "queueAssignedTimestamp": "2026-03-01T10:00:01Z",
                    "agentAssignedTimestamp": 1772359215000i64,
                    "participants": [
                        {"participantId": "cust", "type": "customer"},
                        {"participantId": "agent-7", "type": "Agent", "name": "Ana"}
                    ]
                }
            },
            "correlationId": "corr-1"
        })
    }

    #[test]
    fn init_parses_every_level() {
        let init = parse_init(&init_payload()).unwrap();
        assert_eq!(init.conversation.conversation_id, "c1");
        assert_eq!(init.conversation.correlation_id.as_deref(), Some("corr-1"));
        let session = init.session.unwrap();
        assert_eq!(session.queue_id.as_deref(), Some("billing"));
        assert_eq!(session.channel.as_deref(), Some("voice"), "inherited");
        assert_eq!(
            session.agent_assigned_timestamp,
            Some(UtcMillis::from_millis(1_772_359_215_000))
        );
        assert_eq!(init.participants.len(), 2);
        assert!(init.participants[1].is_agent());
        assert!(!init.participants[0].is_agent());
    }

    #[test]
    fn init_errors_name_the_field() {
        let mut payload = init_payload();
        payload["conversation"]["session"]["queueAssignedTimestamp"] = json!("yesterday");
        let error = parse_init(&payload).unwrap_err();
        assert_eq!(error.field, "conversation.session.queueAssignedTimestamp");
        let mut payload = init_payload();
        payload["conversation"]["session"]
            .as_object_mut()
            .unwrap()
            .remove("providerSessionId");
        assert_eq!(
            parse_init(&payload).unwrap_err().field,
            "conversation.session.providerSessionId"
        );
        assert_eq!(
            parse_init(&json!({"conversation": {}})).unwrap_err().field,
            "conversation.conversationId"
        );
        let mut payload = init_payload();
        payload["conversation"]["session"]["participants"][1]["participantId"] = json!(true);
        assert_eq!(
            parse_init(&payload).unwrap_err().field,
            "conversation.session.participants[1].participantId"
        );
    }

    #[test]
    fn events_share_ids_and_fail_one_by_one() {
        let now = UtcMillis::from_millis(1_000);
        let batch = parse_events(
            &json!({
                "conversationId": "c1", "providerSessionId": "s1", "participantId": "agent-7",
                "events": [
                    {"kpiEventName": "HoldStarted", "eventTimestamp": "2026-03-01T10:01:00Z"},
                    {"kpiEventName": "NotificationResponse", "notificationResponseAction": "Maybe"},
                    {"kpiEventName": "CsatSubmitted", "customData": {"score": "4"}}
                ]
            }),
            now,
        )
        .unwrap();
        let first = batch.events[0].as_ref().unwrap();
        assert_eq!(first.provider_session_id.as_deref(), Some("s1"));
        assert_eq!(first.participant_id.as_deref(), Some("agent-7"));
        assert_eq!(
            batch.events[1].as_ref().unwrap_err().field,
            "events[1].notificationResponseAction"
        );
        let csat = batch.events[2].as_ref().unwrap();
        assert_eq!(csat.score(), Some(4));
        assert_eq!(csat.event_timestamp, now);
    }

    #[test]
    fn a_sentiment_score_out_of_range_refuses_its_event() {
        let batch = parse_events(
            &json!({
                "conversationId": "c1", "providerSessionId": "s1",
                "events": [
                    {"kpiEventName": "SentimentUpdated", "customData": {"score": -0.45, "label": "negative"}},
                    {"kpiEventName": "SentimentUpdated", "customData": [{"attribute": "score", "value": "0.8"}]},
                    {"kpiEventName": "SentimentUpdated", "customData": {"score": 1.5}},
                    {"kpiEventName": "SentimentUpdated", "customData": {"score": "high"}},
                    {"kpiEventName": "SentimentUpdated"}
                ]
            }),
            UtcMillis::from_millis(0),
        )
        .unwrap();
        let first = batch.events[0].as_ref().unwrap();
        assert_eq!(first.sentiment(), Some(-0.45));
        assert_eq!(first.sentiment_label(), Some("negative"));
        assert_eq!(batch.events[1].as_ref().unwrap().sentiment(), Some(0.8));
        for (index, message) in [
            (2, "must be a number from -1 to 1"),
            (3, "must be a number from -1 to 1"),
            (4, "is required"),
        ] {
            let error = batch.events[index].as_ref().unwrap_err();
            assert_eq!(error.field, format!("events[{index}].customData.score"));
            assert_eq!(error.message, message);
        }
    }

    #[test]
    fn the_same_event_has_the_same_id() {
        let body = json!({"conversationId": "c", "providerSessionId": "s",
            "events": [{"kpiEventName": "HoldStarted", "eventTimestamp": 5},
                       {"kpiEventName": "HoldStarted", "eventTimestamp": 5},
                       {"kpiEventName": "HoldStarted", "eventTimestamp": 6}]});
        let batch = parse_events(&body, UtcMillis::from_millis(0)).unwrap();
        let ids: Vec<&str> = batch
            .events
            .iter()
            .map(|e| e.as_ref().unwrap().event_id.as_str())
            .collect();
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
    }

    #[test]
    fn scores_in_both_custom_data_shapes() {
        let list = json!([{"attribute": "score", "value": 5}]);
        assert_eq!(custom_value(&list, "score"), Some(&json!(5)));
        assert_eq!(score_of(&json!(5)), Some(5));
        assert_eq!(score_of(&json!("3")), Some(3));
        assert_eq!(score_of(&json!(6)), None);
        assert_eq!(score_of(&json!(2.5)), None);
    }

    #[test]
    fn a_repeated_init_keeps_what_it_does_not_repeat() {
        let first = parse_init(&init_payload()).unwrap().session.unwrap();
        let again = parse_init(&json!({"conversation": {"conversationId": "c1",
            "session": {"providerSessionId": "s1", "queueId": "sales"}}}))
        .unwrap()
        .session
        .unwrap();
        let merged = first.clone().merge(again);
        assert_eq!(merged.queue_id.as_deref(), Some("sales"));
        assert_eq!(
            merged.agent_assigned_timestamp,
            first.agent_assigned_timestamp
        );
    }
}
