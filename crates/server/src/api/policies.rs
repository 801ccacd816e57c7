//! Access policies: `GET/POST /api/v1/policies`, `GET/DELETE
//! /api/v1/policies/{name}` and `POST /api/v1/policies/{name}/rotate`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use tracklog_domain::audit::UserType;
use tracklog_domain::auth::{Right, Rights};
use tracklog_domain::ids::{PolicyName, PortalId};
use tracklog_store::{KeySlot, Policy};
use utoipa::ToSchema;

use super::extract::{ApiJson, ClientAddr};
use crate::auth::{Authorized, Principal, need};
use crate::error::ApiError;
use crate::services::{Actor, policies};
use crate::state::AppState;

/// A policy as listed: never its keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    pub name: String,
    /// `manage`, `write`, `read`.
    pub rights: Vec<String>,
    /// The one portal this policy may send for, if limited.
    pub portal: Option<String>,
    /// The one channel provider this policy may send for, if limited.
    pub provider: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A policy with its keys, answered only on creation and rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyWithKeys {
    #[serde(flatten)]
    pub policy: PolicyView,
    /// Base64 of 32 random bytes.
    pub primary_key: String,
    pub secondary_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    pub items: Vec<PolicyView>,
}

impl From<&Policy> for PolicyView {
    fn from(policy: &Policy) -> Self {
        Self {
            name: policy.name.to_string(),
            rights: policy
                .rights
                .to_vec()
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            portal: policy.portal.as_ref().map(|p| p.to_string()),
            provider: policy.provider.clone(),
            created_at: policy.created_at.to_rfc3339(),
            updated_at: policy.updated_at.to_rfc3339(),
        }
    }
}

impl From<&Policy> for PolicyWithKeys {
    fn from(policy: &Policy) -> Self {
        Self {
            policy: policy.into(),
            primary_key: policy.primary_key.expose().to_owned(),
            secondary_key: policy.secondary_key.expose().to_owned(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicy {
    /// 1 to 64 letters, digits, `.`, `_` or `-`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// Any of `manage`, `write`, `read`.
    #[schema(value_type = Vec<PolicyRight>, min_items = 1)]
    pub rights: Vec<String>,
    /// The one portal the policy may send for.
    #[schema(value_type = Option<tracklog_domain::ids::PortalId>)]
    pub portal: Option<String>,
    /// The one channel provider the policy may send for.
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]{1,256}$")]
    pub provider: Option<String>,
}

/// A right a policy holds.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Documents `CreatePolicy::rights`, which are read as text.
pub enum PolicyRight {
    Manage,
    Write,
    Read,
}

/// One of a policy's two keys.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Documents `KeySlot`, which the store crate defines without schemas.
pub enum KeySlotName {
    Primary,
    Secondary,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// `primary` (default) or `secondary`.
    #[schema(value_type = Option<KeySlotName>)]
    pub key: Option<KeySlot>,
}

/// The actor behind an API call, for the activity log.
pub fn api_actor(principal: &Principal, headers: &HeaderMap, peer: Option<SocketAddr>) -> Actor {
    Actor {
        name: format!("policy:{}", principal.policy),
        user_type: if principal.rights.allows(Right::Manage) {
            UserType::Admin
        } else {
            UserType::Regular
        },
        client_ip: peer.map(|p| p.ip().to_string()),
        user_agent: headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
    }
}

fn policy_name(text: &str) -> Result<PolicyName, ApiError> {
    PolicyName::parse(text).map_err(|e| ApiError::bad_field("name", format!("policy name {e}")))
}

/// The org's policies.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies",
    responses((status = 200, body = PolicyList), (status = 401, body = super::ErrorEnvelope), (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_policies(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<PolicyList>, ApiError> {
    principal.require(Right::Manage)?;
    let policies = state.stores.meta.list_policies(principal.org).await?;
    Ok(Json(PolicyList {
        items: policies.iter().map(PolicyView::from).collect(),
    }))
}

/// Creates a policy; the answer holds its two keys, shown only now.
#[utoipa::path(post, path = "/api/v1/policies", tag = "policies",
    request_body = CreatePolicy,
    responses(
        (status = 201, body = PolicyWithKeys),
        (status = 400, body = super::ErrorEnvelope),
        (status = 409, description = "The name is taken", body = super::ErrorEnvelope),
    ),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_policy(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Manage>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreatePolicy>,
) -> Result<(StatusCode, Json<PolicyWithKeys>), ApiError> {
    principal.require(Right::Manage)?;
    let name = policy_name(&request.name)?;
    let rights = Rights::parse_list(&request.rights.join(","))
        .map_err(|e| ApiError::bad_field("rights", e))?;
    let portal = request
        .portal
        .map(PortalId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_field("portal", format!("portal {e}")))?;
    if let Some(provider) = &request.provider {
        tracklog_domain::ids::check_text(provider, 256)
            .map_err(|e| ApiError::bad_field("provider", format!("provider {e}")))?;
    }
    let actor = api_actor(&principal, &headers, peer);
    let policy = policies::create(
        &state.stores,
        principal.org,
        &actor,
        policies::NewPolicy {
            name,
            rights,
            portal,
            provider: request.provider,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json((&policy).into())))
}

/// One policy, without its keys.
#[utoipa::path(get, path = "/api/v1/policies/{name}", tag = "policies",
    params(("name" = tracklog_domain::ids::PolicyName, Path)),
    responses((status = 200, body = PolicyView), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<PolicyView>, ApiError> {
    principal.require(Right::Manage)?;
    let name = policy_name(&name)?;
    let policy = state
        .stores
        .meta
        .policy(&name)
        .await?
        .filter(|p| p.org == principal.org)
        .ok_or_else(|| ApiError::NotFound(format!("policy {name} was not found")))?;
    Ok(Json((&policy).into()))
}

/// Deletes a policy: its credentials stop working at once.
#[utoipa::path(delete, path = "/api/v1/policies/{name}", tag = "policies",
    params(("name" = tracklog_domain::ids::PolicyName, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn delete_policy(
    State(state): State<AppState>,
    principal: Principal,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Right::Manage)?;
    let name = policy_name(&name)?;
    let actor = api_actor(&principal, &headers, peer);
    policies::delete(&state.stores, principal.org, &actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces one key (primary by default); the other keeps working.
#[utoipa::path(post, path = "/api/v1/policies/{name}/rotate", tag = "policies",
    params(("name" = tracklog_domain::ids::PolicyName, Path)),
    request_body(content = Option<RotateKey>, description = "Optional; none or `{}` rotates the primary key"),
    responses((status = 200, body = PolicyWithKeys), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn rotate_policy(
    State(state): State<AppState>,
    principal: Principal,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<PolicyWithKeys>, ApiError> {
    principal.require(Right::Manage)?;
    let name = policy_name(&name)?;
    let request: RotateKey = super::extract::optional_body(&body, "key")?;
    let actor = api_actor(&principal, &headers, peer);
    let policy = policies::rotate(
        &state.stores,
        principal.org,
        &actor,
        &name,
        request.key.unwrap_or(KeySlot::Primary),
    )
    .await?;
    Ok(Json((&policy).into()))
}
