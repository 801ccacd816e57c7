//! Segment-spec messages (PRODUCT.md §4.1) mapped onto Tracklog's records.
//!
//! `POST /v1/batch`, `/v1/track`, `/v1/page` and `/v1/identify` take the
//! bodies Segment's own clients send. Each message is mapped here, without I/O,
//! into either the §4.1 interaction object (which then goes through
//! [`crate::interaction::decode_object`] like any other item) or the §8 contact
//! object that `identify` upserts.
//!
//! The mapping:
//!
//! | Segment | Tracklog |
//! |---|---|
//! | `track`'s `event` | `type` |
//! | `page` | `type` from `properties.type`, else the built-in whose id field is in `properties`, else `page` |
//! | `properties` | the fields, including `portal_portalid`, `session_id` and `portal_contactid` |
//! | `messageId` | `portal_interactionid` |
//! | `timestamp` | `portal_timestamp`, with the fallbacks of [`message_time`] |
//! | `userId` | `portal_contactid` (wins over `properties.portal_contactid`) |
//! | `anonymousId` | `session_id` when `properties.session_id` is absent |
//! | `identify`'s `userId` and `traits` | the contact's `id`, `name`, `email` and `attributes` |
//!
//! A property named `type`, `portal_interactionid` or `portal_timestamp` on a
//! `track` message would collide with the envelope, so it is dropped: the
//! envelope wins. Other message types (`screen`, `group`, `alias`) are refused
//! per item with `invalid_field` on `type`.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::ingest::{BodyError, Limits, Reason, Rejection};
use crate::interaction::Builtin;
use crate::time::UtcMillis;

/// The route a Segment body arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/batch`: `{"batch": [message...], "sentAt"?}`; each message names its `type`.
    Batch,
    /// `/v1/track`: one message; the route is its type.
    Track,
    /// `/v1/page`: one message; the route is its type.
    Page,
    /// `/v1/identify`: one message; the route is its type.
    Identify,
}

/// One mapped message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A `track` or `page`, as the §4.1 interaction object.
    Interaction(Map<String, Value>),
    /// An `identify`, as the §8 contact object `{"id", "name"?, "email"?, "attributes"?}`.
    Contact(Map<String, Value>),
}

/// A refused message: its rejection (with its index and id), and whether it
/// was an `identify`, whose refusals count as contacts rather than interactions.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub rejection: Rejection,
    pub identify: bool,
}

/// Every message of a body, in order: mapped, or refused.
pub type MappedBody = Vec<Result<Message, Refused>>;

#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(rename = "sentAt")]
    sent_at: Option<Value>,
}

/// Splits a Segment body into its messages and maps each one. A body that is
/// not a Segment body fails the request; a bad message is refused on its own.
///
/// `received_at` is the server's clock at arrival, the last fallback for a
/// message's time (see [`message_time`]).
pub fn map_body(
    body: &[u8],
    endpoint: Endpoint,
    received_at: UtcMillis,
    limits: &Limits,
) -> Result<MappedBody, BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| BodyError::InvalidJson(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    if text.trim().is_empty() {
        return Err(BodyError::Empty);
    }
    let (messages, batch_sent_at, kind) = match endpoint {
        Endpoint::Batch => {
            let parsed: BatchBody<'_> =
                serde_json::from_str(text).map_err(|e| BodyError::InvalidJson(e.to_string()))?;
            let batch = parsed.batch.ok_or_else(|| {
                BodyError::InvalidJson("a Segment batch is an object with a \"batch\" array".into())
            })?;
            if parsed
                .sent_at
                .as_ref()
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                return Err(BodyError::InvalidJson(
                    "sentAt must be an ISO 8601 time as a string".into(),
                ));
            }
            (batch, parsed.sent_at, None)
        }
        Endpoint::Track | Endpoint::Page | Endpoint::Identify => {
            let one: &RawValue =
                serde_json::from_str(text).map_err(|e| BodyError::InvalidJson(e.to_string()))?;
            let kind = match endpoint {
                Endpoint::Track => Kind::Track,
                Endpoint::Page => Kind::Page,
                _ => Kind::Identify,
            };
            if !one.get().trim_start().starts_with('{') {
                return Err(BodyError::InvalidJson(
                    "a Segment call is one JSON object (several go to /v1/batch)".into(),
                ));
            }
            (vec![one], None, Some(kind))
        }
    };
    if messages.len() > limits.max_batch_items {
        return Err(BodyError::TooManyItems {
            items: messages.len(),
            limit: limits.max_batch_items,
        });
    }
    let context = Context {
        kind,
        batch_sent_at: batch_sent_at.as_ref(),
        received_at,
    };
    Ok(messages
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            map_raw(raw.get(), &context, limits).map_err(|(kind, rejection)| Refused {
                rejection: rejection.at(index, None),
                identify: kind == Some(Kind::Identify),
            })
        })
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Track,
    Page,
    Identify,
}

struct Context<'a> {
    /// The route's message type; `None` on `/v1/batch`, where each message names its own.
    kind: Option<Kind>,
    batch_sent_at: Option<&'a Value>,
    received_at: UtcMillis,
}

/// A refusal, with the message's type when it was known.
type Refusal = (Option<Kind>, Rejection);

fn map_raw(raw: &str, context: &Context<'_>, limits: &Limits) -> Result<Message, Refusal> {
    let early = |rejection: Rejection| (context.kind, rejection);
    if raw.len() > limits.max_item_bytes {
        return Err(early(Rejection::item(
            Reason::ItemTooLarge,
            format!(
                "the message has {} bytes, over the limit max_item_bytes = {}",
                raw.len(),
                limits.max_item_bytes
            ),
        )));
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| early(Rejection::item(Reason::InvalidJson, e.to_string())))?;
    let Value::Object(message) = value else {
        return Err(early(Rejection::item(
            Reason::NotAnObject,
            "each Segment message must be a JSON object",
        )));
    };
    map_message(message, context)
}

fn map_message(mut message: Map<String, Value>, context: &Context<'_>) -> Result<Message, Refusal> {
    let message_id = message.get("messageId").and_then(id_text);
    let with_id = |r: Rejection| r.at(0, message_id.clone());
    let kind = match context.kind {
        Some(kind) => kind,
        None => match message.get("type").and_then(Value::as_str) {
            Some("track") => Kind::Track,
            Some("page") => Kind::Page,
            Some("identify") => Kind::Identify,
            Some(other) => {
                return Err((
                    None,
                    with_id(Rejection::field(
                        Reason::InvalidField,
                        "type",
                        format!(
                            "Segment messages of type {other:?} are not captured; send track, page or identify"
                        ),
                    )),
                ));
            }
            None => {
                return Err((
                    None,
                    with_id(Rejection::field(
                        Reason::MissingField,
                        "type",
                        "each message of a batch needs its type: track, page or identify",
                    )),
                ));
            }
        },
    };
    match kind {
        Kind::Identify => identify(&mut message).map(Message::Contact),
        Kind::Track | Kind::Page => {
            interaction(&mut message, kind, context).map(Message::Interaction)
        }
    }
    .map_err(|rejection| (Some(kind), with_id(rejection)))
}

/// An id as text: Segment allows numbers for `userId` and `anonymousId`.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn properties(
    message: &mut Map<String, Value>,
    name: &str,
) -> Result<Map<String, Value>, Rejection> {
    match message.remove(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err(Rejection::field(
            Reason::InvalidField,
            name,
            format!("{name} must be an object"),
        )),
    }
}

/// The time of a message: `timestamp`, else `originalTimestamp`, else the
/// message's `sentAt`, else the batch's `sentAt`, else `receivedAt`, else the
/// server's clock when the request arrived. A field counts as given when it
/// is present and not null; a given but malformed time is not skipped but
/// refused (as `portal_timestamp`), so a bad clock is seen rather than
/// silently replaced.
///
/// Segment's clients always set `timestamp`. The server-clock fallback makes
/// a retried message get a new time, and since a retry is recognised by the
/// same `portal_interactionid` at the same `portal_timestamp`, such messages
/// are not deduplicated.
pub fn message_time<'a>(
    message: &'a Map<String, Value>,
    batch_sent_at: Option<&'a Value>,
) -> Option<&'a Value> {
    let given = |value: Option<&'a Value>| value.filter(|v| !v.is_null());
    given(message.get("timestamp"))
        .or_else(|| given(message.get("originalTimestamp")))
        .or_else(|| given(message.get("sentAt")))
        .or_else(|| given(batch_sent_at))
        .or_else(|| given(message.get("receivedAt")))
}

/// The fields every interaction carries that the envelope, not `properties`, decides.
const ENVELOPE_FIELDS: [&str; 3] = ["type", "portal_interactionid", "portal_timestamp"];

fn interaction(
    message: &mut Map<String, Value>,
    kind: Kind,
    context: &Context<'_>,
) -> Result<Map<String, Value>, Rejection> {
    let mut fields = properties(message, "properties")?;
    let interaction_type = match kind {
        Kind::Track => match message.get("event") {
            Some(Value::String(event)) if !event.is_empty() => event.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(Rejection::field(
                    Reason::MissingField,
                    "event",
                    "a track message needs its event name, the interaction type",
                ));
            }
            Some(_) => {
                return Err(Rejection::field(
                    Reason::InvalidField,
                    "event",
                    "event must be a string",
                ));
            }
        },
        _ => page_type(&mut fields, message.get("name")),
    };
    for name in ENVELOPE_FIELDS {
        fields.remove(name);
    }
    fields.insert("type".into(), interaction_type.into());
    fields.insert(
        "portal_interactionid".into(),
        message.remove("messageId").unwrap_or(Value::Null),
    );
    let time = message_time(message, context.batch_sent_at)
        .cloned()
        .unwrap_or_else(|| context.received_at.to_rfc3339().into());
    fields.insert("portal_timestamp".into(), time);
    if let Some(user) = message.get("userId").and_then(id_text) {
        fields.insert("portal_contactid".into(), user.into());
    }
    let has_session = fields
        .get("session_id")
        .is_some_and(|v| !v.is_null() && v != "");
    if !has_session && let Some(anonymous) = message.get("anonymousId").and_then(id_text) {
        fields.insert("session_id".into(), anonymous.into());
    }
    Ok(fields)
}

/// The interaction type of a `page`: `properties.type` when it is a string;
/// else the built-in whose id field (`portal_knowledgearticleid`,
/// `portal_blogpostid`, `portal_forumthreadid`, `portal_searchstring`) is among
/// the properties; else `page`, which an org captures only if it defines a
/// custom type of that name (otherwise the message is refused with
/// `unknown_interaction_type`, and counted). For a built-in with a title
/// field, the page's `properties.title`, else its `name`, fills a missing title.
fn page_type(fields: &mut Map<String, Value>, name: Option<&Value>) -> String {
    if let Some(Value::String(given)) = fields.get("type")
        && !given.is_empty()
    {
        return given.clone();
    }
    let Some(builtin) = Builtin::ALL.into_iter().find(|builtin| {
        builtin
            .fields()
            .iter()
            .any(|spec| spec.required && fields.contains_key(spec.name))
    }) else {
        return "page".into();
    };
    let title_field = builtin
        .fields()
        .iter()
        .find(|spec| spec.name.ends_with("title"));
    if let Some(spec) = title_field
        && !fields.contains_key(spec.name)
    {
        let title = fields
            .get("title")
            .filter(|v| v.is_string())
            .or(name.filter(|v| v.is_string()))
            .cloned();
        if let Some(title) = title {
            fields.insert(spec.name.into(), title);
        }
    }
    builtin.name().into()
}

/// The §8 contact of an `identify`: `userId` is the id; the traits `name`
/// (else `firstName` and `lastName` joined) and `email` become those fields,
/// and every other trait goes to `attributes`. An identify without `userId`
/// (anonymous traits) has no contact to update and is refused.
fn identify(message: &mut Map<String, Value>) -> Result<Map<String, Value>, Rejection> {
    let Some(id) = message.get("userId").and_then(id_text) else {
        return Err(Rejection::field(
            Reason::MissingField,
            "userId",
            "identify needs a userId: the contact id to upsert",
        ));
    };
    let mut traits = properties(message, "traits")?;
    let mut contact = Map::new();
    contact.insert("id".into(), id.into());
    let name = match traits.remove("name") {
        Some(Value::String(name)) => Some(name),
        other => {
            if let Some(other) = other {
                traits.insert("name".into(), other);
            }
            let part = |key: &str| traits.get(key).and_then(Value::as_str).unwrap_or("");
            let joined = format!("{} {}", part("firstName"), part("lastName"));
            let joined = joined.trim();
            (!joined.is_empty()).then(|| joined.to_owned())
        }
    };
    if let Some(name) = name {
        contact.insert("name".into(), name.into());
    }
    match traits.remove("email") {
        Some(Value::String(email)) => {
            contact.insert("email".into(), email.into());
        }
        Some(other) => {
            traits.insert("email".into(), other);
        }
        None => {}
    }
    if !traits.is_empty() {
        contact.insert("attributes".into(), Value::Object(traits));
    }
    Ok(contact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PortalId;
    use crate::interaction::{Builtins, DecodeContext, decode_object};
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: UtcMillis = UtcMillis::from_millis(1_790_000_000_000);

    fn map(endpoint: Endpoint, body: Value) -> MappedBody {
        map_body(
            body.to_string().as_bytes(),
            endpoint,
            NOW,
            &Limits::default(),
        )
        .unwrap()
    }

    fn one(endpoint: Endpoint, body: Value) -> Result<Message, Refused> {
        map(endpoint, body).remove(0)
    }

    fn interaction_of(message: Result<Message, Refused>) -> Map<String, Value> {
        match message.unwrap() {
            Message::Interaction(object) => object,
            other => panic!("not an interaction: {other:?}"),
        }
    }

    fn track() -> Value {
        json!({
            "type": "track",
            "event": "portal_viewknowledgearticle",
            "messageId": "m-1",
            "timestamp": "2026-11-20T10:00:00.123+00:00",
            "userId": "c-1",
            "anonymousId": "anon-1",
            "properties": {
                "portal_knowledgearticleid": "KA-1",
                "portal_knowledgetitle": "Reset your password",
                "portal_portalid": "support",
            },
            "context": {"library": {"name": "analytics-python"}},
        })
    }

    #[test]
    fn a_track_becomes_the_interaction_object() {
        let object = interaction_of(one(Endpoint::Track, track()));
        assert_eq!(
            Value::Object(object),
            json!({
                "type": "portal_viewknowledgearticle",
                "portal_interactionid": "m-1",
                "portal_timestamp": "2026-11-20T10:00:00.123+00:00",
                "portal_contactid": "c-1",
                "session_id": "anon-1",
                "portal_knowledgearticleid": "KA-1",
                "portal_knowledgetitle": "Reset your password",
                "portal_portalid": "support",
            })
        );
    }

    #[test]
    fn the_mapped_object_decodes_with_the_portal_from_the_scope() {
        let mut message = track();
        message["properties"]
            .as_object_mut()
            .unwrap()
            .remove("portal_portalid");
        let object = interaction_of(one(Endpoint::Track, message));
        let limits = Limits::default();
        let scope = PortalId::parse("support").unwrap();
        let ctx = DecodeContext {
            limits: &limits,
            portal_scope: Some(&scope),
            catalogue: &Builtins,
        };
        let interaction = decode_object(object, &ctx).unwrap();
        assert_eq!(interaction.portal_id, scope);
        assert_eq!(interaction.id.as_str(), "m-1");
        assert_eq!(interaction.session_id.unwrap().as_str(), "anon-1");
        assert_eq!(
            interaction.timestamp.to_rfc3339(),
            "2026-11-20T10:00:00.123Z"
        );
    }

    #[test]
    fn session_id_in_properties_wins_over_anonymous_id() {
        let mut message = track();
        message["properties"]["session_id"] = json!("s-9");
        let object = interaction_of(one(Endpoint::Track, message));
        assert_eq!(object["session_id"], "s-9");
    }

    #[test]
    fn envelope_fields_win_over_properties() {
        let mut message = track();
        message["properties"]["type"] = json!("portal_search");
        message["properties"]["portal_interactionid"] = json!("forged");
        let object = interaction_of(one(Endpoint::Track, message));
        assert_eq!(object["type"], "portal_viewknowledgearticle");
        assert_eq!(object["portal_interactionid"], "m-1");
    }

    #[test]
    fn time_falls_back_in_order() {
        let mut message = track();
        message.as_object_mut().unwrap().remove("timestamp");
        message["sentAt"] = json!("2026-11-20T11:00:00Z");
        message["receivedAt"] = json!("2026-11-20T12:00:00Z");
        let body = json!({"batch": [message.clone()], "sentAt": "2026-11-20T13:00:00Z"});
        let object = interaction_of(map(Endpoint::Batch, body).remove(0));
        assert_eq!(object["portal_timestamp"], "2026-11-20T11:00:00Z");

        message.as_object_mut().unwrap().remove("sentAt");
        let body = json!({"batch": [message.clone()], "sentAt": "2026-11-20T13:00:00Z"});
        let object = interaction_of(map(Endpoint::Batch, body).remove(0));
        assert_eq!(object["portal_timestamp"], "2026-11-20T13:00:00Z");

        let object = interaction_of(one(Endpoint::Track, message.clone()));
        assert_eq!(object["portal_timestamp"], "2026-11-20T12:00:00Z");

        message.as_object_mut().unwrap().remove("receivedAt");
        let object = interaction_of(one(Endpoint::Track, message));
        assert_eq!(object["portal_timestamp"], NOW.to_rfc3339().as_str());
    }

    #[test]
    fn a_page_finds_its_builtin_and_title() {
        let page = json!({
            "messageId": "p-1", "timestamp": "2026-11-20T10:00:00Z", "anonymousId": "a",
            "name": "Printer jams",
            "properties": {"portal_forumthreadid": "T-7", "url": "https://x/forum/T-7"},
        });
        let object = interaction_of(one(Endpoint::Page, page.clone()));
        assert_eq!(object["type"], "portal_viewforumthread");
        assert_eq!(object["portal_forumthreadtitle"], "Printer jams");

        let mut typed = page.clone();
        typed["properties"] = json!({"type": "portal_search", "portal_searchstring": "jam"});
        assert_eq!(
            interaction_of(one(Endpoint::Page, typed))["type"],
            "portal_search"
        );

        let mut plain = page;
        plain["properties"] = json!({"url": "https://x/"});
        assert_eq!(interaction_of(one(Endpoint::Page, plain))["type"], "page");
    }

    #[test]
    fn identify_becomes_a_contact() {
        let message = json!({
            "type": "identify", "userId": 42, "messageId": "i-1",
            "traits": {"firstName": "Ana", "lastName": "Lima", "email": "ana@example.com", "plan": "gold"},
        });
        let body = json!({"batch": [message]});
        let Ok(Message::Contact(contact)) = map(Endpoint::Batch, body).remove(0) else {
            panic!("not a contact");
        };
        assert_eq!(
            Value::Object(contact),
            json!({"id": "42", "name": "Ana Lima", "email": "ana@example.com",
                   "attributes": {"firstName": "Ana", "lastName": "Lima", "plan": "gold"}})
        );
        let anonymous = one(
            Endpoint::Identify,
            json!({"anonymousId": "a", "traits": {}}),
        );
        let refused = anonymous.unwrap_err();
        assert!(refused.identify);
        let rejection = refused.rejection;
        assert_eq!(rejection.field.as_deref(), Some("userId"));
    }

    #[test]
    fn bad_messages_are_refused_on_their_own() {
        let body = json!({"batch": [
            {"type": "screen", "messageId": "s-1", "name": "Home"},
            {"messageId": "t-1", "event": "x"},
            42,
            {"type": "track", "messageId": "t-2", "properties": {}},
            {"type": "track", "messageId": "t-3", "event": "portal_search", "properties": "q"},
            track(),
        ]});
        let mapped = map(Endpoint::Batch, body);
        let reasons: Vec<_> = mapped
            .iter()
            .filter_map(|m| m.as_ref().err())
            .map(|refused| &refused.rejection)
            .map(|r| (r.index, r.id.clone(), r.reason, r.field.clone()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (
                    0,
                    Some("s-1".into()),
                    Reason::InvalidField,
                    Some("type".into())
                ),
                (
                    1,
                    Some("t-1".into()),
                    Reason::MissingField,
                    Some("type".into())
                ),
                (2, None, Reason::NotAnObject, None),
                (
                    3,
                    Some("t-2".into()),
                    Reason::MissingField,
                    Some("event".into())
                ),
                (
                    4,
                    Some("t-3".into()),
                    Reason::InvalidField,
                    Some("properties".into())
                ),
            ]
        );
        assert!(mapped[5].is_ok());
    }

    #[test]
    fn body_level_errors_and_limits() {
        let limits = Limits {
            max_batch_items: 1,
            max_item_bytes: 200,
            ..Limits::default()
        };
        let run = |body: &str| map_body(body.as_bytes(), Endpoint::Batch, NOW, &limits);
        assert_eq!(run(""), Err(BodyError::Empty));
        assert!(matches!(run("[1]"), Err(BodyError::InvalidJson(_))));
        assert!(matches!(run("{}"), Err(BodyError::InvalidJson(_))));
        assert_eq!(
            run(r#"{"batch":[{},{}]}"#),
            Err(BodyError::TooManyItems { items: 2, limit: 1 })
        );
        let big = json!({"batch": [track()]}).to_string();
        assert_eq!(
            run(&big).unwrap()[0].as_ref().unwrap_err().rejection.reason,
            Reason::ItemTooLarge
        );
    }

    proptest! {
        #[test]
        fn mapping_never_panics_and_keeps_the_envelope(
            event in ".{0,40}",
            message_id in proptest::option::of(".{0,40}"),
            user in proptest::option::of(prop_oneof![".{0,20}".prop_map(Value::from), any::<i64>().prop_map(Value::from)]),
            anonymous in proptest::option::of(".{0,20}"),
            keys in proptest::collection::btree_map("[a-z_]{1,12}", ".{0,12}", 0..5),
        ) {
            let message = json!({
                "type": "track", "event": event, "messageId": message_id,
                "userId": user, "anonymousId": anonymous, "properties": keys,
            });
            let body = json!({"batch": [message]});
            match map(Endpoint::Batch, body).remove(0) {
                Ok(Message::Interaction(object)) => {
                    prop_assert_eq!(&object["type"], &Value::from(event));
                    prop_assert_eq!(
                        &object["portal_interactionid"],
                        &message_id.map_or(Value::Null, Value::from)
                    );
                    prop_assert!(object["portal_timestamp"].is_string());
                    if let Some(user) = user.as_ref().and_then(id_text) {
                        prop_assert_eq!(&object["portal_contactid"], &Value::from(user));
                    }
                }
                Ok(other) => prop_assert!(false, "unexpected {:?}", other),
                Err(refused) => {
                    prop_assert!(!refused.identify);
                    prop_assert_eq!(refused.rejection.field.as_deref(), Some("event"));
                }
            }
        }

        #[test]
        fn arbitrary_bodies_never_panic(text in ".{0,200}") {
            for endpoint in [Endpoint::Batch, Endpoint::Track, Endpoint::Page, Endpoint::Identify] {
                let _ = map_body(text.as_bytes(), endpoint, NOW, &Limits::default());
            }
        }
    }
}
