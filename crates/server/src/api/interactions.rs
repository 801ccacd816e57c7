//! `POST /api/v1/interactions` and `GET /api/v1/contacts/{id}/interactions`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracklog_domain::auth::Right;
use tracklog_domain::ids::{ContactId, OrgId};
use tracklog_domain::ingest::{BodyError, IngestReport};
use tracklog_domain::interaction::{Catalogue, DecodeContext, DecodedBatch, decode_batch};
use tracklog_domain::time::UtcMillis;
use tracklog_store::{AppendSummary, Cursor, TimelineQuery};
use utoipa::{IntoParams, ToSchema};

use super::extract::ApiQuery;
use crate::auth::Principal;
use crate::edge;
use crate::error::ApiError;
use crate::metrics::{KindLabel, ReasonLabel};
use crate::state::AppState;

const KIND: &str = "interaction";

/// Capture portal interactions: one object, an array, or NDJSON, optionally
/// gzip-compressed. Every item gets one outcome; a 2xx means every accepted
/// item is durable.
#[utoipa::path(post, path = "/api/v1/interactions", tag = "interactions",
    request_body(content = super::ItemsBody, description = "An interaction (PRODUCT.md §4.1), an array of them, or NDJSON",
        content_type = "application/json"),
    responses(
        (status = 200, description = "Per-item outcomes", body = IngestReport),
        (status = 400, description = "The body is not JSON", body = super::ErrorEnvelope),
        (status = 401, description = "No valid credential", body = super::ErrorEnvelope),
        (status = 403, description = "The policy lacks the write right", body = super::ErrorEnvelope),
        (status = 413, description = "Body or batch over its limit", body = super::ErrorEnvelope),
        (status = 503, description = "Overloaded; see Retry-After", body = super::ErrorEnvelope),
    ),
    security(("sas" = []), ("basic" = [])))]
pub async fn post_interactions(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let bytes = read_ingest_body(&state, &headers, body).await?;
    let catalogue = state.catalogues.get(&state.stores, principal.org).await?;
    let ctx = decode_context(&state, &principal, catalogue.as_ref());
    let batch = decode_batch(&bytes, edge::is_ndjson(&headers), &ctx)
        .map_err(|e| refuse_body(&state, e))?;
    append_batch(&state, principal.org, batch).await.map(Json)
}

/// How every interaction ingestion route decodes: the limits, the
/// credential's portal scope, and the org's catalogue of captured types.
pub(crate) fn decode_context<'a>(
    state: &'a AppState,
    principal: &'a Principal,
    catalogue: &'a dyn Catalogue,
) -> DecodeContext<'a> {
    DecodeContext {
        limits: &state.limits,
        portal_scope: principal.portal.as_ref(),
        catalogue,
    }
}

/// Counts an ingestion request refused before its items were read.
pub(crate) fn refuse(state: &AppState, reason: &'static str) {
    state
        .metrics
        .refused_requests
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

/// Reads an ingestion body within the limits (inflating gzip), counting a
/// refusal by its reason.
pub(crate) async fn read_ingest_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    edge::read_body(headers, body, &state.limits)
        .await
        .inspect_err(|e| {
            refuse(
                state,
                if e.status() == 413 {
                    "body_too_large"
                } else {
                    "invalid_body"
                },
            )
        })
}

/// Counts a body that could not be split into items and turns it into the reply.
pub(crate) fn refuse_body(state: &AppState, error: BodyError) -> ApiError {
    refuse(
        state,
        match error {
            BodyError::TooManyItems { .. } => "too_many_items",
            _ => "invalid_body",
        },
    );
    ApiError::from(error)
}

/// The shared end of every interaction ingestion route: counts each rejection
/// by its reason, appends the decoded interactions, and reports every item's
/// outcome (rejections in request order).
pub(crate) async fn append_batch(
    state: &AppState,
    org: OrgId,
    mut batch: DecodedBatch,
) -> Result<IngestReport, ApiError> {
    let metrics = &state.metrics;
    for rejection in &batch.rejected {
        metrics.reject(KIND, rejection.reason.code(), 1);
    }
    let count = batch.interactions.len();
    let summary = if count == 0 {
        AppendSummary::default()
    } else {
        state
            .stores
            .events
            .append_interactions(org, batch.interactions)
            .await
            .inspect_err(|e| {
                let reason = match e {
                    tracklog_store::StoreError::Overloaded => "overloaded",
                    _ => "store_unavailable",
                };
                metrics.reject(KIND, reason, count);
            })?
    };
    let accepted = summary.inserted + summary.duplicates;
    metrics
        .ingested
        .get_or_create(&KindLabel { kind: KIND })
        .inc_by(accepted as u64);
    metrics
        .duplicates
        .get_or_create(&KindLabel { kind: KIND })
        .inc_by(summary.duplicates as u64);
    batch.rejected.sort_by_key(|r| r.index);
    Ok(IngestReport {
        accepted,
        duplicates: summary.duplicates,
        rejected: batch.rejected,
    })
}

/// Query parameters of a contact timeline.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// Inclusive lower bound, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Exclusive upper bound, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Page size, 1 to 1000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of a contact's interactions.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePage {
    /// Interactions in their stored shape (§4.1), oldest first.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Parses an optional RFC 3339 query parameter, naming it when it is wrong.
pub fn time_param(name: &str, value: Option<&str>) -> Result<Option<UtcMillis>, ApiError> {
    value
        .map(|text| {
            UtcMillis::parse_rfc3339(text)
                .map_err(|_| ApiError::bad_field(name, format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

/// Parses `limit` within 1..=max.
pub fn limit_param(value: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_field(
            "limit",
            format!("limit must be between 1 and {max}"),
        )),
    }
}

/// A contact's interactions, oldest first.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/interactions", tag = "interactions",
    params(("id" = tracklog_domain::ids::ContactId, Path, description = "The CRM contact id"), TimelineParams),
    responses(
        (status = 200, description = "A page of interactions", body = TimelinePage),
        (status = 400, description = "A bad parameter", body = super::ErrorEnvelope),
        (status = 401, description = "No valid credential", body = super::ErrorEnvelope),
        (status = 403, description = "The policy lacks the read right", body = super::ErrorEnvelope),
    ),
    security(("sas" = []), ("basic" = [])))]
pub async fn contact_interactions(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<TimelineParams>,
) -> Result<Json<TimelinePage>, ApiError> {
    principal.require(Right::Read)?;
    let contact =
        ContactId::parse(id).map_err(|e| ApiError::bad_field("id", format!("contact id {e}")))?;
    let query = TimelineQuery {
        from: time_param("from", params.from.as_deref())?,
        to: time_param("to", params.to.as_deref())?,
        limit: limit_param(params.limit, 100, 1000)?,
        cursor: params.cursor.as_deref().map(Cursor::decode).transpose()?,
    };
    let page = state
        .stores
        .events
        .contact_interactions(principal.org, &contact, query)
        .await?;
    Ok(Json(TimelinePage {
        items: page.items.iter().map(|i| i.to_json()).collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}
