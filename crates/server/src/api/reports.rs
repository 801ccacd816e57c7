//! Reports over channel analytics for supervisors and managers:
//! `GET /api/v1/reports/dissatisfied`, the conversations that closed with a
//! low CSAT or a negative sentiment, as JSON pages or as one CSV; and
//! `GET /api/v1/providers/health`, each provider's channel health.

use axum::Json;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use tracklog_domain::auth::Right;
use tracklog_domain::time::UtcMillis;

use super::extract::{ApiQuery, Caller};
use crate::channel_health::ProviderHealth;
use crate::error::ApiError;
use crate::services::reports::{self, DissatisfiedParams, DissatisfiedReport, DissatisfiedRequest};
use crate::state::AppState;

/// Sessions that closed in the period with a CSAT of 2 or less or a
/// sentiment below neutral at close, for a queue or an agent, oldest
/// closed first, each with its facts, why it is in the report and a link
/// to its timeline. `format=csv` gives the whole report as CSV, one row
/// per session. Opening it is recorded in the activity log.
#[utoipa::path(get, path = "/api/v1/reports/dissatisfied", tag = "analytics",
    params(DissatisfiedParams),
    responses(
        (status = 200, description = "A page of the report as JSON, or with `format=csv` the whole report, one row per session",
            content((DissatisfiedReport = "application/json"), (String = "text/csv"))),
        (status = 400, body = super::ErrorEnvelope),
        (status = 401, body = super::ErrorEnvelope),
        (status = 403, body = super::ErrorEnvelope),
        (status = 503, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn dissatisfied(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<DissatisfiedParams>,
) -> Result<Response, ApiError> {
    caller.principal.require(Right::Read)?;
    let request = DissatisfiedRequest::parse(&params, UtcMillis::now())
        .map_err(|e| ApiError::bad_field(&e.field, format!("{} {}", e.field, e.message)))?;
    let org = caller.principal.org;
    match params.format.as_deref().unwrap_or("json") {
        "json" => {
            let report = reports::dissatisfied(&state.stores, org, &caller.actor, &request).await?;
            Ok(Json(report).into_response())
        }
        "csv" => {
            let csv =
                reports::dissatisfied_csv(&state.stores, org, &caller.actor, &request).await?;
            Ok((
                [
                    (CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        CONTENT_DISPOSITION,
                        "attachment; filename=\"dissatisfied-conversations.csv\"",
                    ),
                ],
                csv,
            )
                .into_response())
        }
        other => Err(ApiError::bad_field(
            "format",
            format!("{other:?} is not a format: json or csv"),
        )),
    }
}

/// Each provider's channel health, by id.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    /// `channel.provider_silence_seconds`: past it a provider is silent.
    pub silence_threshold_seconds: u64,
    pub items: Vec<ProviderHealth>,
}

/// Per provider: seconds since its last event, events a minute over the
/// last five minutes, rejected events by reason, notification timeouts,
/// and the p50/p99 of the lag from `eventTimestamp` to arrival, as this
/// server has seen them since it started.
#[utoipa::path(get, path = "/api/v1/providers/health", tag = "analytics",
    responses((status = 200, body = HealthReport),
        (status = 401, body = super::ErrorEnvelope),
        (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn provider_health(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<HealthReport>, ApiError> {
    caller.principal.require(Right::Read)?;
    let silence = state.config.channel.provider_silence_seconds;
    Ok(Json(HealthReport {
        silence_threshold_seconds: silence,
        items: state.channel_health.providers(
            caller.principal.org,
            UtcMillis::now(),
            silence as i64 * 1000,
        ),
    }))
}
