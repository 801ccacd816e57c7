//! `/healthz`, `/readyz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Serving", body = Object)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// No storage fault is latched, the store accepts a durable write, and no materialiser is further behind
/// the write-ahead log than `ingest.ready_max_lag_ms`.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "A storage fault stops writes, the store is not writable, or a materialiser is behind", body = super::ErrorEnvelope),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if let Some(fault) = state.stores.lifecycle.fault() {
        return Err(ApiError::Unavailable(format!(
            "storage fault: {}; writes are refused until the file is re-established",
            fault.cause
        )));
    }
    state.stores.meta.check_writable().await?;
    let bound = state.config.ingest.ready_max_lag_ms as f64 / 1000.0;
    if let Some(behind) = state
        .stores
        .lifecycle
        .materialisers()
        .into_iter()
        .find(|m| m.lag_seconds > bound)
    {
        return Err(ApiError::Unavailable(format!(
            "the {} materialiser is {:.1} s ({} items) behind the log, over ingest.ready_max_lag_ms",
            behind.name, behind.lag_seconds, behind.lag_items
        )));
    }
    Ok(Json(json!({ "status": "ready" })))
}

/// Prometheus text exposition of every `tracklog_` metric.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.observe_store(&state.stores);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
