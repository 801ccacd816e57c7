//! Channel analytics read over HTTP: the metric catalogue, metrics
//! queries, drill-down, the real-time stream, rebuilds, forecasts, and
//! alert rules and alerts.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tracklog_domain::auth::Right;
use tracklog_domain::time::UtcMillis;
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiQuery, Caller};
use super::interactions::limit_param;
use crate::auth::{Authorized, Principal, need};
use crate::error::ApiError;
use crate::services::analytics::{self as service, DrilldownRequest, MetricsQuery, MetricsRequest};
use crate::services::{alerts, forecast, realtime};
use crate::state::AppState;

/// The metric catalogue: name, formula, unit, and which time places a value
/// in an interval.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "analytics",
    responses((status = 200, description = "`{\"items\": [metric]}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_metrics(principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    Ok(Json(
        json!({ "items": tracklog_domain::channel::metrics::catalogue() }),
    ))
}

/// Metrics over intervals aligned in a time zone, grouped and filtered.
/// Reads the 15-minute pre-aggregates: its cost grows with buckets, not
/// events.
#[utoipa::path(post, path = "/api/v1/metrics/query", tag = "analytics",
    request_body = MetricsRequest,
    responses((status = 200, description = "`{\"series\": [{metric, group, points: [{start, value, count}]}]}`", body = Object),
        (status = 422, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn query_metrics(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Read>,
    ApiJson(body): ApiJson<MetricsRequest>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Right::Read)?;
    let query =
        MetricsQuery::parse(body, UtcMillis::now()).map_err(crate::services::ServiceError::from)?;
    // Written straight from the typed answer: a dashboard holds tens of
    // thousands of points.
    let answer = service::query_metrics(&state.stores, principal.org, &query).await?;
    let body = answer
        .to_json()
        .map_err(|e| ApiError::Internal(format!("serializing the answer: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}

/// The sessions behind one figure of a metrics query, each marked with
/// whether it counts in the numerator.
#[utoipa::path(post, path = "/api/v1/metrics/drilldown", tag = "analytics",
    request_body = DrilldownRequest,
    responses((status = 200, description = "`{\"metric\", \"start\", \"end\", \"count\", \"sessions\": [facts]}`", body = Object),
        (status = 422, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn drilldown(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Read>,
    ApiJson(body): ApiJson<DrilldownRequest>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    Ok(Json(
        service::drilldown(&state.stores, principal.org, body).await?,
    ))
}

/// Parameters of the real-time stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RealtimeParams {
    /// Metric names, comma-separated; every metric by default.
    #[param(value_type = Option<tracklog_domain::channel::query_schema::MetricNameList>)]
    pub metrics: Option<String>,
    /// The interval of the current and previous figures: 15m by default.
    #[param(value_type = Option<tracklog_domain::channel::query_schema::IntervalName>)]
    pub interval: Option<String>,
    #[param(value_type = Option<tracklog_domain::channel::query_schema::TimeZoneName>)]
    pub timezone: Option<String>,
    pub queue: Option<String>,
    /// Milliseconds between updates, 200 to 10000; 1000 by default.
    #[param(minimum = 200, maximum = 10000)]
    pub every_ms: Option<u64>,
}

/// Server-Sent Events: a `snapshot` event at least once a second with
/// waiting, active and wrapping-up sessions, the longest wait, busy
/// agents, and the current and last closed interval's metrics.
#[utoipa::path(get, path = "/api/v1/realtime", tag = "analytics",
    params(RealtimeParams),
    responses((status = 200, description = "text/event-stream of `snapshot` events", content_type = "text/event-stream")),
    security(("sas" = []), ("basic" = [])))]
pub async fn realtime(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RealtimeParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal.require(Right::Read)?;
    let request = MetricsRequest {
        metrics: params
            .metrics
            .map(|m| service::OneOrMany::Many(m.split(',').map(|s| s.trim().to_owned()).collect())),
        interval: Some(params.interval.unwrap_or_else(|| "15m".into())),
        timezone: params.timezone,
        filters: params.queue.map(|q| {
            [("queue".to_owned(), service::OneOrMany::One(q))]
                .into_iter()
                .collect()
        }),
        ..MetricsRequest::default()
    };
    // Every part of this query arrived as a query parameter: a bad one is a
    // 400 naming it, as for every other query parameter.
    let base = MetricsQuery::parse(request, UtcMillis::now())
        .map_err(|e| ApiError::bad_field(&e.field, format!("{}: {}", e.field, e.message)))?;
    let every_ms = params.every_ms.unwrap_or(1000);
    if !(200..=10_000).contains(&every_ms) {
        return Err(ApiError::bad_field(
            "every_ms",
            "every_ms must be from 200 to 10000",
        ));
    }
    let every = Duration::from_millis(every_ms);
    let org = principal.org;
    let stream = futures::stream::unfold(
        (state, base, tokio::time::interval(every)),
        move |(state, base, mut ticker)| async move {
            ticker.tick().await;
            let event = match realtime::snapshot(&state.stores, org, &base, UtcMillis::now()).await
            {
                Ok(snapshot) => Event::default()
                    .event("snapshot")
                    .json_data(&snapshot)
                    .unwrap_or_else(|e| Event::default().event("error").data(e.to_string())),
                Err(e) => Event::default().event("error").data(e.to_string()),
            };
            Some((Ok(event), (state, base, ticker)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Re-derives every session's facts and the pre-aggregates from the raw
/// records (also `tracklog analytics rebuild`).
#[utoipa::path(post, path = "/api/v1/analytics/rebuild", tag = "analytics",
    responses((status = 200, description = "`{\"sessions\", \"agents\", \"buckets\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn rebuild(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Manage)?;
    let summary = state
        .stores
        .channel
        .rebuild_analytics(principal.org, Box::new(|_, _| {}))
        .await?;
    Ok(Json(json!(summary)))
}

/// A seven-day volume forecast per interval (double-seasonal Holt-Winters,
/// daily and weekly), its backtest on the last week of history (MAPE), and
/// the agents Erlang C needs per interval for the service-level target.
#[utoipa::path(get, path = "/api/v1/forecast", tag = "analytics",
    params(forecast::ForecastParams),
    responses((status = 200, description = "`{model, backtest, points: [{start, forecast, lower, upper, agents, service_level}]}`", body = Object),
        (status = 422, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn forecast(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<forecast::ForecastParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    Ok(Json(
        forecast::forecast(&state.stores, principal.org, params, UtcMillis::now()).await?,
    ))
}

/// Every alert rule of the org.
#[utoipa::path(get, path = "/api/v1/alert-rules", tag = "analytics",
    responses((status = 200, description = "`{\"items\": [rule]}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_alert_rules(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let rules = state.stores.channel.alert_rules(principal.org).await?;
    Ok(Json(json!({ "items": rules })))
}

/// Creates or replaces a rule: `{id, metric, comparison: above|below,
/// threshold, window_minutes, filters?, predictive?, webhook_url?,
/// webhook_secret?, enabled?}`.
#[utoipa::path(post, path = "/api/v1/alert-rules", tag = "analytics",
    request_body(content = tracklog_domain::channel::alerts::AlertRule, description = "An alert rule"),
    responses((status = 200, body = Object), (status = 422, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn put_alert_rule(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    ApiJson(rule): ApiJson<tracklog_domain::channel::alerts::AlertRule>,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Manage)?;
    let rule =
        alerts::put_alert_rule(&state.stores, caller.principal.org, &caller.actor, rule).await?;
    Ok(Json(json!(rule)))
}

/// Deletes a rule; its past alerts stay.
#[utoipa::path(delete, path = "/api/v1/alert-rules/{id}", tag = "analytics",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn delete_alert_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.principal.require(Right::Manage)?;
    alerts::delete_alert_rule(&state.stores, caller.principal.org, &caller.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which alerts a listing shows.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStateFilter {
    Open,
    All,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// `open` (predicted or firing) or `all`; `all` by default.
    #[param(inline)]
    pub state: Option<AlertStateFilter>,
    /// 1 to 1000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "analytics",
    params(AlertParams),
    responses((status = 200, description = "`{\"items\": [alert]}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_alerts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<AlertParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let open_only = matches!(params.state, Some(AlertStateFilter::Open));
    let limit = limit_param(params.limit, 100, 1000)?;
    let alerts = state
        .stores
        .channel
        .alerts(principal.org, open_only, limit)
        .await?;
    Ok(Json(json!({ "items": alerts })))
}

/// Evaluates the rules now (they are also evaluated every
/// `channel.alert_interval_seconds`) and answers what each found.
#[utoipa::path(post, path = "/api/v1/alerts/evaluate", tag = "analytics",
    responses((status = 200, description = "`{\"checks\": [{rule_id, state, value, projected, alert}]}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn evaluate_alerts(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Manage)?;
    let checks =
        alerts::evaluate_alerts(&state.stores, principal.org, UtcMillis::now(), &state.http)
            .await?;
    Ok(Json(json!({ "checks": checks })))
}
