//! Channel analytics written over HTTP: `initLogAnalytics` /
//! `logAnalyticsEvent` ingestion. Providers, KPI event definitions and
//! queues are in [`super::channel_config`], the server-side records in
//! [`super::channel_records`], and what is read from them in `analytics.rs`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::Value;
use tracklog_domain::auth::Right;
use tracklog_domain::channel::payload::{self, KpiEvent};
use tracklog_domain::contact::RecordError;
use tracklog_domain::ingest::{IngestReport, RawItem, Reason, Rejection, split_items};
use tracklog_domain::time::UtcMillis;
use tracklog_store::{EventOutcome, ItemOutcome};

use super::interactions::{read_ingest_body, refuse_body};
use crate::auth::Principal;
use crate::channel_health::Arrival;
use crate::edge;
use crate::error::ApiError;
use crate::metrics::KindLabel;
use crate::services::channel::{self as service};
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
pub(super) async fn body_items(
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

pub(super) async fn ingest_init(
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
pub(super) async fn ingest_events(
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
