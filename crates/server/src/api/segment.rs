//! Segment-spec ingestion: `POST /v1/batch`, `/v1/track`, `/v1/page` and
//! `/v1/identify` (PRODUCT.md §4.1), for Segment's own server-side clients.
//!
//! The write key `<policy>:<key>` arrives as the Basic user name with an empty
//! password, so these routes authenticate like every other. Messages are
//! mapped by [`tracklog_domain::segment`], then interactions take the same
//! decoder and append path as `POST /api/v1/interactions`, and identifies
//! upsert their contact.
//!
//! The answer is what Segment's clients expect, a 200 with `"success": true`,
//! whenever the request was read, even if some messages were refused: those
//! clients retry only on 5xx and 429, and a refused message would be refused
//! again. Tracklog's per-item report rides along in the same object
//! (`accepted`, `duplicates`, `rejected`), and every refusal is counted in
//! `tracklog_events_rejected_total{reason}`. Body-level problems are the usual
//! 400/401/403/413, and overload is a 503 with Retry-After, which the clients
//! retry.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::{Map, Value};
use tracklog_domain::auth::Right;
use tracklog_domain::contact::Contact;
use tracklog_domain::ids::OrgId;
use tracklog_domain::ingest::{IngestReport, Reason, Rejection};
use tracklog_domain::interaction::{DecodeContext, DecodedBatch, decode_object};
use tracklog_domain::segment::{Endpoint, MappedBody, Message, Refused, map_body};
use tracklog_domain::time::UtcMillis;
use utoipa::ToSchema;

use super::interactions::{append_batch, decode_context, read_ingest_body, refuse_body};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::metrics::KindLabel;
use crate::state::AppState;

/// The metric kind of contacts upserted by `identify`.
const CONTACT: &str = "contact";

/// The reply of the Segment routes.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentReply {
    /// True whenever the request was read: Segment's clients look for this
    /// and a 2xx. Per-message outcomes follow.
    pub success: bool,
    #[serde(flatten)]
    pub report: IngestReport,
}

/// The body of `POST /v1/batch`, as Segment's clients send it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the body; `segment::map_body` reads it.
pub struct SegmentBatch {
    /// The messages: track, page, identify, each with its `type`. An item
    /// that is not a message is refused on its own, in `rejected`.
    #[schema(value_type = Vec<serde_json::Value>)]
    batch: Vec<Value>,
    /// When the client sent the batch, RFC 3339; corrects the clocks of
    /// the messages' timestamps.
    #[schema(rename = "sentAt")]
    sent_at: Option<String>,
}

async fn ingest(
    state: AppState,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Result<Json<SegmentReply>, ApiError> {
    principal.require(Right::Write)?;
    let bytes = read_ingest_body(&state, &headers, body).await?;
    let mapped = map_body(&bytes, endpoint, UtcMillis::now(), &state.limits)
        .map_err(|e| refuse_body(&state, e))?;
    let catalogue = state.catalogues.get(&state.stores, principal.org).await?;
    let (batch, contacts, refused_early) = decode_messages(
        mapped,
        &decode_context(&state, &principal, catalogue.as_ref()),
    );
    let (upserted, refused) =
        upsert_contacts(&state, principal.org, contacts, refused_early).await?;
    let mut report = append_batch(&state, principal.org, batch).await?;
    report.accepted += upserted;
    report.rejected.extend(refused);
    report.rejected.sort_by_key(|r| r.index);
    Ok(Json(SegmentReply {
        success: true,
        report,
    }))
}

/// The §8 contact of an `identify`, with its index in the request.
type Identified = (usize, Map<String, Value>);

/// Decodes the mapped interactions as `POST /api/v1/interactions` would, and
/// sets the contacts of `identify` messages, and their refusals, aside.
fn decode_messages(
    mapped: MappedBody,
    ctx: &DecodeContext<'_>,
) -> (DecodedBatch, Vec<Identified>, Vec<Rejection>) {
    let mut batch = DecodedBatch::default();
    let mut contacts = Vec::new();
    let mut refused_contacts = Vec::new();
    for (index, message) in mapped.into_iter().enumerate() {
        match message {
            Ok(Message::Interaction(object)) => match decode_object(object, ctx) {
                Ok(interaction) => {
                    batch.interactions.push(interaction);
                    batch.indexes.push(index);
                }
                Err(rejection) => batch.rejected.push(rejection.at(index, None)),
            },
            Ok(Message::Contact(contact)) => contacts.push((index, contact)),
            Err(Refused {
                rejection,
                identify: true,
            }) => refused_contacts.push(rejection),
            Err(Refused { rejection, .. }) => batch.rejected.push(rejection),
        }
    }
    (batch, contacts, refused_contacts)
}

/// Upserts the contacts of `identify` messages; returns how many were stored
/// and every refused identify (`refused` holds those the mapping refused),
/// each counted as a contact refusal. Traits merge into what is known: a
/// trait left out keeps its value.
async fn upsert_contacts(
    state: &AppState,
    org: OrgId,
    messages: Vec<Identified>,
    mut refused: Vec<Rejection>,
) -> Result<(usize, Vec<Rejection>), ApiError> {
    let now = UtcMillis::now();
    let mut contacts = Vec::with_capacity(messages.len());
    for (index, object) in messages {
        match Contact::from_json(Value::Object(object), now) {
            Ok(contact) => contacts.push(contact),
            Err(error) => {
                // The contact's `id` is the message's `userId`; other fields are traits.
                let field = match error.field.as_str() {
                    "id" => "userId".to_owned(),
                    other => format!("traits.{other}"),
                };
                let rejection = Rejection::field(Reason::InvalidField, &field, error.message);
                refused.push(rejection.at(index, None));
            }
        }
    }
    for rejection in &refused {
        state.metrics.reject(CONTACT, rejection.reason.code(), 1);
    }
    if contacts.is_empty() {
        return Ok((0, refused));
    }
    let count = contacts.len();
    state
        .stores
        .portals
        .upsert_contacts(org, contacts)
        .await
        .inspect_err(|_| state.metrics.reject(CONTACT, "store_unavailable", count))?;
    state
        .metrics
        .ingested
        .get_or_create(&KindLabel { kind: CONTACT })
        .inc_by(count as u64);
    Ok((count, refused))
}

/// A Segment batch: `{"batch": [message...], "sentAt"?}`, each message a
/// `track`, `page` or `identify`. JSON, optionally gzip-compressed.
#[utoipa::path(post, path = "/v1/batch", tag = "segment",
    request_body(content = SegmentBatch, description = "A Segment batch", content_type = "application/json"),
    responses(
        (status = 200, description = "Read; per-message outcomes", body = SegmentReply),
        (status = 400, description = "Not a Segment batch", body = super::ErrorEnvelope),
        (status = 401, description = "No valid write key", body = super::ErrorEnvelope),
        (status = 403, description = "The policy lacks the write right", body = super::ErrorEnvelope),
        (status = 413, description = "Body or batch over its limit", body = super::ErrorEnvelope),
        (status = 503, description = "Overloaded; see Retry-After", body = super::ErrorEnvelope),
    ),
    security(("basic" = []), ("sas" = [])))]
pub async fn batch(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SegmentReply>, ApiError> {
    ingest(state, principal, headers, body, Endpoint::Batch).await
}

/// One Segment `track` message: the event name is the interaction type.
#[utoipa::path(post, path = "/v1/track", tag = "segment",
    request_body(content = Object, description = "A Segment track message", content_type = "application/json"),
    responses(
        (status = 200, description = "Read; the message's outcome", body = SegmentReply),
        (status = 400, description = "Not JSON", body = super::ErrorEnvelope),
        (status = 401, description = "No valid write key", body = super::ErrorEnvelope),
        (status = 403, description = "The policy lacks the write right", body = super::ErrorEnvelope),
        (status = 413, description = "Body over its limit", body = super::ErrorEnvelope),
        (status = 503, description = "Overloaded; see Retry-After", body = super::ErrorEnvelope),
    ),
    security(("basic" = []), ("sas" = [])))]
pub async fn track(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SegmentReply>, ApiError> {
    ingest(state, principal, headers, body, Endpoint::Track).await
}

/// One Segment `page` message: the type comes from `properties.type`, else the
/// built-in whose id field is among the properties, else `page`.
#[utoipa::path(post, path = "/v1/page", tag = "segment",
    request_body(content = Object, description = "A Segment page message", content_type = "application/json"),
    responses(
        (status = 200, description = "Read; the message's outcome", body = SegmentReply),
        (status = 400, description = "Not JSON", body = super::ErrorEnvelope),
        (status = 401, description = "No valid write key", body = super::ErrorEnvelope),
        (status = 403, description = "The policy lacks the write right", body = super::ErrorEnvelope),
        (status = 413, description = "Body over its limit", body = super::ErrorEnvelope),
        (status = 503, description = "Overloaded; see Retry-After", body = super::ErrorEnvelope),
    ),
    security(("basic" = []), ("sas" = [])))]
pub async fn page(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SegmentReply>, ApiError> {
    ingest(state, principal, headers, body, Endpoint::Page).await
}

/// One Segment `identify` message: upserts the contact `userId` with its traits.
#[utoipa::path(post, path = "/v1/identify", tag = "segment",
    request_body(content = Object, description = "A Segment identify message", content_type = "application/json"),
    responses(
        (status = 200, description = "Read; the message's outcome", body = SegmentReply),
        (status = 400, description = "Not JSON", body = super::ErrorEnvelope),
        (status = 401, description = "No valid write key", body = super::ErrorEnvelope),
        (status = 403, description = "The policy lacks the write right", body = super::ErrorEnvelope),
        (status = 413, description = "Body over its limit", body = super::ErrorEnvelope),
        (status = 503, description = "Overloaded; see Retry-After", body = super::ErrorEnvelope),
    ),
    security(("basic" = []), ("sas" = [])))]
pub async fn identify(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SegmentReply>, ApiError> {
    ingest(state, principal, headers, body, Endpoint::Identify).await
}
