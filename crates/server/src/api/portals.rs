//! Portals: `/api/v1/portals`, their keys, and their insights.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tracklog_domain::auth::Right;
use tracklog_domain::ids::{PolicyName, PortalId};
use tracklog_domain::portal::{check_retention, parse_origins};
use tracklog_domain::time::UtcMillis;
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiQuery, Caller};
use super::interactions::time_param;
use super::policies::PolicyWithKeys;
use crate::auth::{Principal, need};
use crate::error::ApiError;
use crate::services::ServiceError;
use crate::services::portals::{self, PortalSettings};
use crate::state::AppState;

/// A portal as sent by a client (PRODUCT.md §8).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalBody {
    /// Must match the path when given.
    #[schema(value_type = Option<tracklog_domain::ids::PortalId>)]
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Browser origins, such as `https://help.example.com`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The access policy the portal's servers send with.
    #[schema(value_type = Option<tracklog_domain::ids::PolicyName>)]
    pub policy: Option<String>,
    /// Interactions older than this many days are purged.
    #[schema(minimum = 1, maximum = 36500)]
    pub retention_days: Option<u32>,
}

/// A portal to register: [`PortalBody`] with its id required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPortal {
    #[schema(value_type = tracklog_domain::ids::PortalId)]
    pub id: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Browser origins, such as `https://help.example.com`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The access policy the portal's servers send with.
    #[schema(value_type = Option<tracklog_domain::ids::PolicyName>)]
    pub policy: Option<String>,
    /// Interactions older than this many days are purged.
    #[schema(minimum = 1, maximum = 36500)]
    pub retention_days: Option<u32>,
}

impl From<NewPortal> for PortalBody {
    fn from(new: NewPortal) -> Self {
        PortalBody {
            id: Some(new.id),
            name: new.name,
            allowed_origins: new.allowed_origins,
            policy: new.policy,
            retention_days: new.retention_days,
        }
    }
}

fn portal_id(text: &str) -> Result<PortalId, ApiError> {
    PortalId::parse(text).map_err(|e| ApiError::bad_field("id", format!("portal id {e}")))
}

fn settings(body: PortalBody) -> Result<PortalSettings, ServiceError> {
    Ok(PortalSettings {
        name: body.name,
        allowed_origins: parse_origins(&body.allowed_origins)?,
        policy: body
            .policy
            .map(PolicyName::parse)
            .transpose()
            .map_err(|e| {
                tracklog_domain::contact::RecordError::new("policy", format!("policy name {e}"))
            })?,
        retention_days: check_retention(body.retention_days)?,
    })
}

/// The org's portals, with their public ingest keys.
#[utoipa::path(get, path = "/api/v1/portals", tag = "portals",
    responses((status = 200, description = "`{\"items\": [portal]}`", body = Object),
        (status = 401, body = super::ErrorEnvelope), (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_portals(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Manage)?;
    let items = state.stores.portals.list_portals(principal.org).await?;
    Ok(Json(
        json!({"items": items.iter().map(|p| p.to_json()).collect::<Vec<_>>()}),
    ))
}

/// Registers a portal. The answer holds its public ingest key for browsers.
#[utoipa::path(post, path = "/api/v1/portals", tag = "portals", request_body = NewPortal,
    responses((status = 201, description = "The portal", body = Object),
        (status = 409, description = "The id is taken", body = super::ErrorEnvelope),
        (status = 422, description = "A bad field", body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_portal(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    ApiJson(new): ApiJson<NewPortal>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.principal.require(Right::Manage)?;
    let id = portal_id(&new.id)?;
    let body = PortalBody::from(new);
    let portal = portals::create_portal(
        &state.stores,
        caller.principal.org,
        &caller.actor,
        id,
        settings(body)?,
    )
    .await?;
    state.catalogues.invalidate(caller.principal.org);
    Ok((StatusCode::CREATED, Json(portal.to_json())))
}

/// One portal.
#[utoipa::path(get, path = "/api/v1/portals/{id}", tag = "portals", params(("id" = tracklog_domain::ids::PortalId, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_portal(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Manage)?;
    let id = portal_id(&id)?;
    let portal = state
        .stores
        .portals
        .portal(principal.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("portal {id} was not found")))?;
    Ok(Json(portal.to_json()))
}

/// Replaces a portal's settings; its keys stay as they are.
#[utoipa::path(put, path = "/api/v1/portals/{id}", tag = "portals", params(("id" = tracklog_domain::ids::PortalId, Path)),
    request_body = PortalBody,
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope),
        (status = 422, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn update_portal(
    State(state): State<AppState>,
    caller: Caller<need::Manage>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PortalBody>,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Manage)?;
    let id = portal_id(&id)?;
    if body.id.as_deref().is_some_and(|b| b != id.as_str()) {
        return Err(ApiError::bad_field(
            "id",
            "the id in the body differs from the URL",
        ));
    }
    let portal = portals::update_portal(
        &state.stores,
        caller.principal.org,
        &caller.actor,
        &id,
        settings(body)?,
    )
    .await?;
    Ok(Json(portal.to_json()))
}

/// "Update configuration": replaces the public ingest key and, when the
/// portal sends with a policy, that policy's primary key. The answer holds
/// the new keys.
#[utoipa::path(post, path = "/api/v1/portals/{id}/update-configuration", tag = "portals",
    params(("id" = tracklog_domain::ids::PortalId, Path)),
    responses((status = 200, description = "`{\"portal\": portal, \"policy\": policy with keys | null}`", body = Object),
        (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn update_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Manage)?;
    let id = portal_id(&id)?;
    let (portal, policy) =
        portals::update_configuration(&state.stores, caller.principal.org, &caller.actor, &id)
            .await?;
    Ok(Json(json!({
        "portal": portal.to_json(),
        "policy": policy.as_ref().map(PolicyWithKeys::from),
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// `keep` (default) leaves the portal's interactions in place; `purge`
    /// deletes them in the background.
    pub data: Option<String>,
}

/// "Delete integration": capture from the portal stops at once, and its
/// interactions are kept or purged.
#[utoipa::path(delete, path = "/api/v1/portals/{id}", tag = "portals",
    params(("id" = tracklog_domain::ids::PortalId, Path), DeleteParams),
    responses((status = 202, description = "Deleted; a purge continues in the background"),
        (status = 204, description = "Deleted; data kept"),
        (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn delete_portal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    caller.principal.require(Right::Manage)?;
    let id = portal_id(&id)?;
    let purge = match params.data.as_deref() {
        None | Some("keep") => false,
        Some("purge") => true,
        Some(_) => return Err(ApiError::bad_field("data", "data must be keep or purge")),
    };
    portals::delete_portal(
        &state.stores,
        &state.catalogues,
        caller.principal.org,
        &caller.actor,
        &id,
        purge,
    )
    .await?;
    Ok(if purge {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NO_CONTENT
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InsightParams {
    /// RFC 3339; 30 days before `to` by default.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339, exclusive; now by default.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
}

/// A portal's activity: interactions per day by type, top articles, top
/// searches, and searches the same contact followed with a case within 24 h.
#[utoipa::path(get, path = "/api/v1/portals/{id}/insights", tag = "portals",
    params(("id" = tracklog_domain::ids::PortalId, Path), InsightParams),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn portal_insights(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<InsightParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let id = portal_id(&id)?;
    let to = time_param("to", params.to.as_deref())?.unwrap_or_else(UtcMillis::now);
    let from = time_param("from", params.from.as_deref())?
        .unwrap_or_else(|| to.saturating_add_millis(-30 * 86_400_000));
    if from >= to {
        return Err(ApiError::bad_field("from", "from must be before to"));
    }
    let insights = state
        .stores
        .events
        .portal_insights(principal.org, &id, from, to)
        .await?;
    Ok(Json(insights_json(&id, from, to, &insights)))
}

/// The insights as JSON, days as RFC 3339 dates.
pub fn insights_json(
    portal: &PortalId,
    from: UtcMillis,
    to: UtcMillis,
    insights: &tracklog_store::PortalInsights,
) -> Value {
    json!({
        "portal_id": portal,
        "from": from.to_rfc3339(),
        "to": to.to_rfc3339(),
        "daily": insights.daily.iter().map(|(day, kind, count)| json!({
            "day": UtcMillis::from_millis(day * 86_400_000).to_rfc3339()[..10].to_owned(),
            "type": kind,
            "count": count,
        })).collect::<Vec<_>>(),
        "top_articles": insights.top_articles,
        "top_searches": insights.top_searches,
        "searches_before_case": insights.searches_before_case,
    })
}
