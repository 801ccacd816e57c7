//! What channel analytics are configured with over HTTP: providers, KPI
//! event definitions and queues.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tracklog_domain::auth::Right;

use super::extract::{ApiJson, Caller};
use crate::auth::{Principal, need};
use crate::error::ApiError;
use crate::services::channel::{self as service, DefinitionInput, ProviderInput, QueueInput};
use crate::state::AppState;

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
