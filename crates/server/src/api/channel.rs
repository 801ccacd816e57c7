//! Channel analytics written over HTTP: providers, KPI event definitions,
//! queues, `initLogAnalytics` / `logAnalyticsEvent` ingestion and the
//! server-side records. What is read from them is in `analytics.rs`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tracklog_domain::auth::Right;
use tracklog_domain::channel::payload::{self, KpiEvent};
use tracklog_domain::contact::RecordError;
use tracklog_domain::ingest::{IngestReport, RawItem, Reason, Rejection, split_items};
use tracklog_domain::time::UtcMillis;
use tracklog_store::{ChannelFilter, ChannelList, Cursor, EventOutcome, ItemOutcome, Page};
use utoipa::IntoParams;

use super::extract::{ApiJson, ApiQuery, Caller};
use super::interactions::{limit_param, read_ingest_body, refuse_body, time_param};
use crate::auth::{Principal, need};
use crate::channel_health::Arrival;
use crate::edge;
use crate::error::ApiError;
use crate::metrics::KindLabel;
use crate::services::channel::{self as service, DefinitionInput, ProviderInput, QueueInput};
use crate::state::AppState;

fn refusal(index: usize, id: Option<String>, error: RecordError) -> Rejection {
    let reason = if error.message == "is required" {
        Reason::MissingField
    } else {
        Reason::InvalidField
    };
    let message = format!("{} {}", error.field, error.message);
    Rejection::field(reason, &error.field, message).at(index, id)
}

/// Turns store outcomes into a report, counting each in the metrics.
fn report(
    state: &AppState,
    kind: &'static str,
    mut rejected: Vec<Rejection>,
    outcomes: Vec<(usize, Option<String>, ItemOutcome)>,
) -> IngestReport {
    let mut accepted = 0;
    let mut duplicates = 0;
    for (index, id, outcome) in outcomes {
        match outcome {
            ItemOutcome::Accepted => accepted += 1,
            ItemOutcome::Duplicate => {
                accepted += 1;
                duplicates += 1;
            }
            ItemOutcome::Refused {
                reason,
                field,
                message,
            } => rejected.push(Rejection {
                index,
                id,
                reason,
                field,
                message,
            }),
        }
    }
    for rejection in &rejected {
        state.metrics.reject(kind, rejection.reason.code(), 1);
    }
    state
        .metrics
        .ingested
        .get_or_create(&KindLabel { kind })
        .inc_by(accepted as u64);
    state
        .metrics
        .duplicates
        .get_or_create(&KindLabel { kind })
        .inc_by(duplicates as u64);
    rejected.sort_by_key(|r| r.index);
    IngestReport {
        accepted,
        duplicates,
        rejected,
    }
}

/// Items of an ingestion body as JSON values, or their rejections.
async fn body_items(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<Result<Value, Rejection>>, ApiError> {
    let bytes = read_ingest_body(state, headers, body).await?;
    let items = split_items(&bytes, edge::is_ndjson(headers), &state.limits)
        .map_err(|e| refuse_body(state, e))?;
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            RawItem::Json(raw) => serde_json::from_str::<Value>(raw.get())
                .map_err(|e| Rejection::item(Reason::InvalidJson, e.to_string()).at(index, None)),
            RawItem::Unparsable(message) => {
                Err(Rejection::item(Reason::InvalidJson, message).at(index, None))
            }
        })
        .collect())
}

async fn ingest_init(
    state: &AppState,
    principal: &Principal,
    items: Vec<Result<Value, Rejection>>,
    wrap: fn(Value) -> Value,
) -> Result<IngestReport, ApiError> {
    let mut rejected = Vec::new();
    let mut good = Vec::new();
    let mut places = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let value = match item {
            Ok(value) => wrap(value),
            Err(rejection) => {
                rejected.push(rejection);
                continue;
            }
        };
        let id = value
            .pointer("/conversation/conversationId")
            .or_else(|| value.get("conversationId"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        match payload::parse_init(&value) {
            Ok(init) => {
                places.push((index, id));
                good.push(init);
            }
            Err(error) => rejected.push(refusal(index, id, error)),
        }
    }
    let rules = service::rules(&state.stores, principal.org, principal.provider.clone()).await?;
    let outcomes = if good.is_empty() {
        Vec::new()
    } else {
        state
            .stores
            .channel
            .ingest_init(principal.org, good, rules)
            .await?
    };
    let outcomes = places
        .into_iter()
        .zip(outcomes)
        .map(|((index, id), outcome)| (index, id, outcome))
        .collect();
    Ok(report(state, "channel_init", rejected, outcomes))
}

/// Checks event names against the org's definitions; parses every item.
async fn ingest_events(
    state: &AppState,
    principal: &Principal,
    items: Vec<Result<Value, Rejection>>,
) -> Result<IngestReport, ApiError> {
    let (captured, disabled) = service::captured_names(&state.stores, principal.org).await?;
    let now = UtcMillis::now();
    let mut rejected = Vec::new();
    let mut good: Vec<KpiEvent> = Vec::new();
    let mut places = Vec::new();
    // Events are numbered across the whole request, in order.
    let mut index = 0;
    for item in items {
        let value = match item {
            Ok(value) => value,
            Err(mut rejection) => {
                rejection.index = index;
                rejected.push(rejection);
                index += 1;
                continue;
            }
        };
        match payload::parse_events(&value, now) {
            Err(error) => {
                let events = value
                    .get("events")
                    .and_then(Value::as_array)
                    .map_or(1, |e| e.len().max(1));
                for _ in 0..events {
                    rejected.push(refusal(index, None, error.clone()));
                    index += 1;
                }
            }
            Ok(batch) => {
                for event in batch.events {
                    match event {
                        Err(error) => rejected.push(refusal(index, None, error)),
                        Ok(event) => {
                            let name = event.kpi_event_name.clone();
                            if disabled.contains(&name) {
                                rejected.push(
                                    Rejection::field(
                                        Reason::KpiEventNotCaptured,
                                        "kpiEventName",
                                        format!("the KPI event definition {name} is disabled"),
                                    )
                                    .at(index, Some(name)),
                                );
                            } else if !captured.contains(&name) {
                                rejected.push(
                                    Rejection::field(
                                        Reason::UnknownKpiEvent,
                                        "kpiEventName",
                                        format!(
                                            "{name} has no KPI event definition; create one at /api/v1/kpi-event-definitions"
                                        ),
                                    )
                                    .at(index, Some(name)),
                                );
                            } else {
                                places.push((index, Some(event.event_id.clone())));
                                good.push(event);
                            }
                        }
                    }
                    index += 1;
                }
            }
        }
    }
    let rules = service::rules(&state.stores, principal.org, principal.provider.clone()).await?;
    let arrivals: Vec<Arrival> = good.iter().map(Arrival::of).collect();
    let outcomes = if good.is_empty() {
        Vec::new()
    } else {
        state
            .stores
            .channel
            .ingest_events(principal.org, good, rules)
            .await?
    };
    record_health(state, principal, &rejected, &arrivals, &outcomes);
    let outcomes = places
        .into_iter()
        .zip(outcomes)
        .map(|((index, id), outcome)| (index, id, outcome.outcome))
        .collect();
    Ok(report(state, "kpi_event", rejected, outcomes))
}

/// Tells the providers' health what arrived: accepted events by provider,
/// and refusals by reason. An event refused at the edge is put down to the
/// credential's provider, or to the one provider the request's other
/// events had, when there is one.
fn record_health(
    state: &AppState,
    principal: &Principal,
    edge_rejections: &[Rejection],
    arrivals: &[Arrival],
    outcomes: &[EventOutcome],
) {
    let now = UtcMillis::now();
    let health = &state.channel_health;
    let mut by_provider: std::collections::BTreeMap<Option<&str>, Vec<Arrival>> =
        std::collections::BTreeMap::new();
    for (arrival, outcome) in arrivals.iter().zip(outcomes) {
        let provider = outcome.provider.as_deref();
        match &outcome.outcome {
            ItemOutcome::Refused { reason, .. } => {
                health.rejected(&state.metrics, principal.org, provider, reason.code());
            }
            ItemOutcome::Accepted | ItemOutcome::Duplicate => {
                by_provider.entry(provider).or_default().push(*arrival);
            }
        }
    }
    for (provider, arrived) in &by_provider {
        health.accepted(&state.metrics, principal.org, *provider, arrived, now);
    }
    let sole = (by_provider.len() == 1)
        .then(|| by_provider.keys().next().copied().flatten())
        .flatten();
    let blamed = principal.provider.as_deref().or(sole);
    for rejection in edge_rejections {
        health.rejected(
            &state.metrics,
            principal.org,
            blamed,
            rejection.reason.code(),
        );
    }
}

/// `initLogAnalytics`: a conversation with its session and participants
/// (PRODUCT.md §4.2). One object, an array, or NDJSON. Calling it again for
/// a known conversation or session updates the fields it carries.
#[utoipa::path(post, path = "/api/v1/channel/init", tag = "channel",
    request_body(content = super::ItemsBody, description = "`{conversation: {..., session: {..., participants: [...]}}, correlationId}`"),
    responses((status = 200, description = "Per-item outcomes", body = IngestReport),
        (status = 413, body = super::ErrorEnvelope), (status = 503, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn post_init(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(ingest_init(&state, &principal, items, |v| v).await?))
}

/// `logAnalyticsEvent`: KPI events of a session. Duplicates, late and
/// out-of-order events are safe. Outcomes are numbered by event, across the
/// request.
#[utoipa::path(post, path = "/api/v1/channel/events", tag = "channel",
    request_body(content = super::ItemsBody, description = "`{conversationId, providerSessionId, participantId, correlationId, events: [...]}`"),
    responses((status = 200, description = "Per-event outcomes", body = IngestReport),
        (status = 413, body = super::ErrorEnvelope), (status = 503, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn post_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(ingest_events(&state, &principal, items).await?))
}

// ---- providers, definitions, queues --------------------------------------------------

/// Every provider of the org.
#[utoipa::path(get, path = "/api/v1/providers", tag = "channel",
    responses((status = 200, description = "`{\"items\": [provider]}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_providers(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let providers = state.stores.channel.providers(principal.org).await?;
    Ok(Json(json!({ "items": providers })))
}

/// Creates or updates a provider: `{id, name?, enable_analytics?}`.
#[utoipa::path(post, path = "/api/v1/providers", tag = "channel",
    request_body = ProviderInput,
    responses((status = 200, body = Object), (status = 422, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn put_provider(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    ApiJson(body): ApiJson<ProviderInput>,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Manage)?;
    let provider =
        service::put_provider(&state.stores, caller.principal.org, &caller.actor, body).await?;
    Ok(Json(json!(provider)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    pub name: Option<String>,
    pub enable_analytics: Option<bool>,
}

/// One provider.
#[utoipa::path(get, path = "/api/v1/providers/{id}", tag = "channel",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_provider(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let provider = state
        .stores
        .channel
        .provider(principal.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("provider {id} was not found")))?;
    Ok(Json(json!(provider)))
}

/// Changes a provider, e.g. `{"enable_analytics": false}`.
#[utoipa::path(patch, path = "/api/v1/providers/{id}", tag = "channel",
    params(("id" = String, Path)), request_body = ProviderPatch,
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn patch_provider(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProviderPatch>,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Manage)?;
    if state
        .stores
        .channel
        .provider(caller.principal.org, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("provider {id} was not found")));
    }
    let provider = service::put_provider(
        &state.stores,
        caller.principal.org,
        &caller.actor,
        ProviderInput {
            id,
            name: body.name,
            enable_analytics: body.enable_analytics,
        },
    )
    .await?;
    Ok(Json(json!(provider)))
}

/// Removes a provider; its recorded conversations stay.
#[utoipa::path(delete, path = "/api/v1/providers/{id}", tag = "channel",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn delete_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.principal.require(Right::Manage)?;
    service::delete_provider(&state.stores, caller.principal.org, &caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The built-in KPI event definitions, then the custom ones.
#[utoipa::path(get, path = "/api/v1/kpi-event-definitions", tag = "channel",
    responses((status = 200, description = "`{\"items\": [definition]}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_definitions(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let all = service::definitions(&state.stores, principal.org).await?;
    Ok(Json(json!({ "items": all })))
}

/// Creates or updates a custom definition, such as `CallHold`.
#[utoipa::path(post, path = "/api/v1/kpi-event-definitions", tag = "channel",
    request_body = DefinitionInput,
    responses((status = 201, body = Object), (status = 422, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_definition(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    ApiJson(body): ApiJson<DefinitionInput>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.principal.require(Right::Manage)?;
    let definition =
        service::put_definition(&state.stores, caller.principal.org, &caller.actor, body).await?;
    Ok((StatusCode::CREATED, Json(json!(definition))))
}

/// One definition.
#[utoipa::path(get, path = "/api/v1/kpi-event-definitions/{name}", tag = "channel",
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_definition(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    service::definitions(&state.stores, principal.org)
        .await?
        .into_iter()
        .find(|d| d.name == name)
        .map(|d| Json(json!(d)))
        .ok_or_else(|| ApiError::NotFound(format!("KPI event definition {name} was not found")))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefinitionPatch {
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// `false` stops capture: its events are refused with `kpi_event_not_captured`.
    pub enabled: Option<bool>,
}

/// Changes a custom definition.
#[utoipa::path(patch, path = "/api/v1/kpi-event-definitions/{name}", tag = "channel",
    params(("name" = String, Path)), request_body = DefinitionPatch,
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope),
        (status = 422, description = "A built-in cannot be changed", body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn patch_definition(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DefinitionPatch>,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Manage)?;
    let exists = state
        .stores
        .channel
        .custom_definitions(caller.principal.org)
        .await?
        .iter()
        .any(|d| d.name == name);
    if !exists {
        return Err(ApiError::NotFound(format!(
            "custom KPI event definition {name} was not found"
        )));
    }
    let definition = service::put_definition(
        &state.stores,
        caller.principal.org,
        &caller.actor,
        DefinitionInput {
            name,
            display_name: body.display_name,
            description: body.description,
            enabled: body.enabled,
        },
    )
    .await?;
    Ok(Json(json!(definition)))
}

/// Deletes a custom definition; its events are refused from then on.
#[utoipa::path(delete, path = "/api/v1/kpi-event-definitions/{name}", tag = "channel",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn delete_definition(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.principal.require(Right::Manage)?;
    service::delete_definition(&state.stores, caller.principal.org, &caller.actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues with thresholds set; others use 20 s and 5 s.
#[utoipa::path(get, path = "/api/v1/queues", tag = "channel",
    responses((status = 200, description = "`{\"items\": [queue settings], \"defaults\": {...}}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_queues(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let queues = state.stores.channel.queues(principal.org).await?;
    Ok(Json(json!({
        "items": queues,
        "defaults": {"service_level_seconds": 20, "short_abandon_seconds": 5},
    })))
}

/// Sets a queue's service-level and short-abandon thresholds. Past figures
/// of the queue are recomputed with them.
#[utoipa::path(put, path = "/api/v1/queues/{queue}", tag = "channel",
    params(("queue" = String, Path)), request_body = QueueInput,
    responses((status = 200, body = Object), (status = 422, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn put_queue(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    Path(queue): Path<String>,
    ApiJson(body): ApiJson<QueueInput>,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Manage)?;
    let settings = service::put_queue(
        &state.stores,
        caller.principal.org,
        &caller.actor,
        &queue,
        body,
    )
    .await?;
    Ok(Json(json!(settings)))
}

// ---- server-side records ---------------------------------------------------------------

/// Filters and paging of the record lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordParams {
    pub conversation_id: Option<String>,
    pub session_id: Option<String>,
    /// Participant id; on sessions, the agent.
    pub participant_id: Option<String>,
    pub provider_id: Option<String>,
    pub channel: Option<String>,
    pub queue: Option<String>,
    /// KPI event name (kpi-events) or participant type (participants).
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Inclusive, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Exclusive, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// 1 to 1000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl RecordParams {
    fn list(self) -> Result<ChannelList, ApiError> {
        Ok(ChannelList {
            filter: ChannelFilter {
                conversation: self.conversation_id,
                session: self.session_id,
                participant: self.participant_id,
                provider: self.provider_id,
                channel: self.channel,
                queue: self.queue,
                name: self.name.or(self.kind),
                from: time_param("from", self.from.as_deref())?,
                to: time_param("to", self.to.as_deref())?,
            },
            limit: limit_param(self.limit, 100, 1000)?,
            cursor: self.cursor.as_deref().map(Cursor::decode).transpose()?,
        })
    }
}

fn page_json<T>(page: Page<T>, item: impl Fn(T) -> Value) -> Json<Value> {
    Json(json!({
        "items": page.items.into_iter().map(item).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor.map(|c| c.encode()),
    }))
}

/// Conversations, oldest first; filters `provider_id`, `channel`, `from`, `to`.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "channel",
    params(RecordParams),
    responses((status = 200, description = "`{\"items\", \"next_cursor\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_conversations(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RecordParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let page = state
        .stores
        .channel
        .conversations(principal.org, params.list()?)
        .await?;
    Ok(page_json(page, |c| json!(c)))
}

/// Creates or updates conversations (the conversation object of §4.2,
/// optionally with its `session`): the same path as `/api/v1/channel/init`.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "channel",
    request_body(content = super::ItemsBody, description = "A conversation, or an array"),
    responses((status = 200, description = "Per-item outcomes", body = IngestReport)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_conversations(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(
        ingest_init(
            &state,
            &principal,
            items,
            |conversation| json!({ "conversation": conversation }),
        )
        .await?,
    ))
}

/// One conversation and its sessions.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "channel",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_conversation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let conversation = state
        .stores
        .channel
        .conversation(principal.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("conversation {id} was not found")))?;
    let sessions = state
        .stores
        .channel
        .sessions(
            principal.org,
            ChannelList {
                filter: ChannelFilter {
                    conversation: Some(id),
                    ..ChannelFilter::default()
                },
                limit: 1000,
                cursor: None,
            },
        )
        .await?;
    let mut value = json!(conversation);
    value["sessions"] = json!(
        sessions
            .items
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>()
    );
    Ok(Json(value))
}

fn session_json(
    (session, facts): (
        payload::Session,
        Option<tracklog_domain::channel::facts::SessionFacts>,
    ),
) -> Value {
    let mut value = json!(session);
    value["facts"] = json!(facts);
    value
}

/// Sessions, oldest first, each with its derived facts; filters
/// `conversation_id`, `queue`, `channel`, `participant_id` (the agent),
/// `provider_id`, `from`, `to`.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "channel",
    params(RecordParams),
    responses((status = 200, description = "`{\"items\", \"next_cursor\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RecordParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let page = state
        .stores
        .channel
        .sessions(principal.org, params.list()?)
        .await?;
    Ok(page_json(page, session_json))
}

/// Creates or updates sessions: `{conversationId, providerSessionId, ...,
/// participants?}`.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "channel",
    request_body(content = super::ItemsBody, description = "A session with its conversationId, or an array"),
    responses((status = 200, description = "Per-item outcomes", body = IngestReport)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_sessions(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(
        ingest_init(&state, &principal, items, |session| {
            let conversation = session
                .get("conversationId")
                .cloned()
                .unwrap_or(Value::Null);
            json!({"conversation": {"conversationId": conversation, "session": session}})
        })
        .await?,
    ))
}

/// One session: its record, conversation, participants, facts and every
/// KPI event in time order — the drill-down's last step.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "channel",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_session(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let detail = state
        .stores
        .channel
        .session(principal.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("session {id} was not found")))?;
    let mut value = json!(detail.session);
    value["conversation"] = json!(detail.conversation);
    value["participants"] = json!(detail.participants);
    value["facts"] = json!(detail.facts);
    value["events"] = json!(tracklog_domain::channel::facts::sorted(&detail.events));
    Ok(Json(value))
}

/// Participants; filters `session_id`, `conversation_id`, `participant_id`,
/// `type`.
#[utoipa::path(get, path = "/api/v1/participants", tag = "channel",
    params(RecordParams),
    responses((status = 200, description = "`{\"items\", \"next_cursor\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_participants(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RecordParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let page = state
        .stores
        .channel
        .participants(principal.org, params.list()?)
        .await?;
    Ok(page_json(page, |p| json!(p)))
}

/// Creates or updates participants: `{conversationId, providerSessionId,
/// participantId, type, ...}`.
#[utoipa::path(post, path = "/api/v1/participants", tag = "channel",
    request_body(content = super::ItemsBody, description = "A participant with its session's ids, or an array"),
    responses((status = 200, description = "Per-item outcomes", body = IngestReport)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_participants(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(
        ingest_init(&state, &principal, items, |participant| {
            let conversation = participant
                .get("conversationId")
                .cloned()
                .unwrap_or(Value::Null);
            let session = participant
                .get("providerSessionId")
                .cloned()
                .unwrap_or(Value::Null);
            json!({"conversation": {"conversationId": conversation,
                "session": {"providerSessionId": session, "participants": [participant]}}})
        })
        .await?,
    ))
}

/// KPI events, in time order; filters `session_id`, `conversation_id`,
/// `participant_id`, `name`, `from`, `to`.
#[utoipa::path(get, path = "/api/v1/kpi-events", tag = "channel",
    params(RecordParams),
    responses((status = 200, description = "`{\"items\", \"next_cursor\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_kpi_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RecordParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let page = state
        .stores
        .channel
        .kpi_events(principal.org, params.list()?)
        .await?;
    Ok(page_json(page, |e| json!(e)))
}

/// Creates KPI events: each carries its own `conversationId`,
/// `providerSessionId` and `participantId`, or a logAnalyticsEvent payload.
#[utoipa::path(post, path = "/api/v1/kpi-events", tag = "channel",
    request_body(content = super::ItemsBody, description = "A KPI event, an array, or logAnalyticsEvent payloads"),
    responses((status = 200, description = "Per-event outcomes", body = IngestReport)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_kpi_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(ingest_events(&state, &principal, items).await?))
}
