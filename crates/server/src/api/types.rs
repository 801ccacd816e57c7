//! Interaction types: `/api/v1/interaction-types`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tracklog_domain::auth::Right;
use tracklog_domain::portal::TypeState;
use utoipa::ToSchema;

use super::extract::{ApiJson, Caller};
use crate::auth::{Principal, need};
use crate::error::ApiError;
use crate::services::portals::{self, TypeChange};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewType {
    /// 1 to 64 letters, digits, `_`, `-` or `.`; not starting with `portal_`.
    #[schema(pattern = r"^(?!portal_)[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    pub display_name: Option<String>,
    /// A JSON Schema for the type's fields, checked at ingest.
    #[schema(value_type = Option<Object>)]
    pub fields_schema: Option<Value>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypePatch {
    /// `false` disables capture; `true` enables it (and restores a deleted type).
    pub enabled: Option<bool>,
    pub display_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub fields_schema: Option<Value>,
}

/// Every type of the org: the four built-ins, then custom types.
#[utoipa::path(get, path = "/api/v1/interaction-types", tag = "interaction-types",
    responses((status = 200, description = "`{\"items\": [type]}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_types(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let types = portals::list_types(&state.stores, principal.org).await?;
    Ok(Json(
        json!({"items": types.iter().map(|t| t.to_json()).collect::<Vec<_>>()}),
    ))
}

/// Creates a custom type whose fields are described by a JSON Schema.
#[utoipa::path(post, path = "/api/v1/interaction-types", tag = "interaction-types",
    request_body = NewType,
    responses((status = 201, body = Object), (status = 409, body = super::ErrorEnvelope),
        (status = 422, description = "A bad name or schema", body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_type(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    ApiJson(body): ApiJson<NewType>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.principal.require(Right::Manage)?;
    let def = portals::create_type(
        &state.stores,
        &state.catalogues,
        caller.principal.org,
        &caller.actor,
        &body.name,
        body.display_name,
        body.fields_schema,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(def.to_json())))
}

/// One type.
#[utoipa::path(get, path = "/api/v1/interaction-types/{name}", tag = "interaction-types",
    params(("name" = tracklog_domain::ids::TypeName, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_type(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let def = portals::find_type(&state.stores, principal.org, &name).await?;
    Ok(Json(def.to_json()))
}

async fn change<N>(
    state: &AppState,
    caller: &Caller<N>,
    name: &str,
    change: TypeChange,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Manage)?;
    let def = portals::change_type(
        &state.stores,
        &state.catalogues,
        caller.principal.org,
        &caller.actor,
        name,
        change,
    )
    .await?;
    Ok(Json(def.to_json()))
}

/// Enables or disables a type, or changes a custom type's name or schema.
/// `{"enabled": false}` stops its capture: items of the type are then
/// refused with `interaction_type_not_captured`.
#[utoipa::path(patch, path = "/api/v1/interaction-types/{name}", tag = "interaction-types",
    params(("name" = tracklog_domain::ids::TypeName, Path)), request_body = TypePatch,
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope),
        (status = 422, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn patch_type(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<TypePatch>,
) -> Result<Json<Value>, ApiError> {
    let state_change = body.enabled.map(|enabled| {
        if enabled {
            TypeState::Enabled
        } else {
            TypeState::Disabled
        }
    });
    change(
        &state,
        &caller,
        &name,
        TypeChange {
            state: state_change,
            display_name: body.display_name,
            fields_schema: body.fields_schema,
        },
    )
    .await
}

/// Deletes a type: capture stops, and the definition is kept so that it can
/// be restored.
#[utoipa::path(delete, path = "/api/v1/interaction-types/{name}", tag = "interaction-types",
    params(("name" = tracklog_domain::ids::TypeName, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn delete_type(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(
        &state,
        &caller,
        &name,
        TypeChange {
            state: Some(TypeState::Deleted),
            ..TypeChange::default()
        },
    )
    .await
}

/// Restores a deleted or disabled type.
#[utoipa::path(post, path = "/api/v1/interaction-types/{name}/restore", tag = "interaction-types",
    params(("name" = tracklog_domain::ids::TypeName, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn restore_type(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(
        &state,
        &caller,
        &name,
        TypeChange {
            state: Some(TypeState::Enabled),
            ..TypeChange::default()
        },
    )
    .await
}
