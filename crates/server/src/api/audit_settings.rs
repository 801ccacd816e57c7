//! What the activity log records (PRODUCT.md §5): the org's audit settings
//! and retention, and each entity's settings.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tracklog_domain::audit::settings::{EntityAuditSettings, OrgAuditSettings};
use tracklog_domain::auth::Right;
use utoipa::ToSchema;

use super::extract::{ApiJson, ClientAddr};
use super::policies::api_actor;
use crate::auth::{Authorized, Principal, need};
use crate::error::ApiError;
use crate::services::audit;
use crate::state::AppState;

/// The most days a retention may be set to (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// The org's audit settings and retention, as `GET/PUT
/// /api/v1/audit/settings` carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSettingsBody {
    /// Master switch: nothing sent by clients is recorded when false.
    pub auditing_enabled: bool,
    /// Records of people signing in and out.
    pub user_access_auditing: bool,
    /// Read and ReadMultiple records, subject also to the entity's settings.
    pub read_auditing: bool,
    /// Messages (operations) never recorded.
    #[schema(value_type = Vec<OperationName>)]
    pub excluded_messages: Vec<String>,
    /// Days the org keeps its records, 1 to 36500; the background purge
    /// removes older ones and the chain still verifies. Until set, the
    /// server's `audit.retention_days` (90 by default). On PUT, leaving it
    /// out keeps the current value.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub retention_days: Option<u32>,
    /// The org's own operations that record a sign-in or sign-out, beside
    /// the built-in names (`SignIn`, `UserLoggedIn`, `UserLoginFailed`...):
    /// governed by `user_access_auditing` and counted by the "Signed in or
    /// out" report. On PUT, leaving it out keeps the current list.
    #[serde(default)]
    #[schema(value_type = Option<Vec<OperationName>>)]
    pub sign_in_operations: Option<Vec<String>>,
}

/// An operation's name: 1 to 256 characters, no control characters.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^[^\x00-\x1F\x7F-\x9F]{1,256}$")]
#[allow(dead_code)] // Documents `sign_in_operations`, which are read as text.
pub struct OperationName(String);

impl AuditSettingsBody {
    fn new(settings: OrgAuditSettings, retention_days: u32) -> Self {
        Self {
            auditing_enabled: settings.auditing_enabled,
            user_access_auditing: settings.user_access_auditing,
            read_auditing: settings.read_auditing,
            excluded_messages: settings.excluded_messages,
            retention_days: Some(retention_days),
            sign_in_operations: Some(settings.sign_in_operations),
        }
    }

    /// The settings to store, keeping `current`'s sign-in operations when
    /// the body leaves them out, and the retention asked for.
    fn split(self, current: &OrgAuditSettings) -> (OrgAuditSettings, Option<u32>) {
        (
            OrgAuditSettings {
                auditing_enabled: self.auditing_enabled,
                user_access_auditing: self.user_access_auditing,
                read_auditing: self.read_auditing,
                excluded_messages: self.excluded_messages,
                sign_in_operations: self
                    .sign_in_operations
                    .unwrap_or_else(|| current.sign_in_operations.clone()),
            },
            self.retention_days,
        )
    }
}

/// The org's audit settings, with the days it keeps records.
#[utoipa::path(get, path = "/api/v1/audit/settings", tag = "audit",
    responses((status = 200, body = AuditSettingsBody), (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_settings(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<AuditSettingsBody>, ApiError> {
    principal.require(Right::Manage)?;
    let (settings, days) = audit::settings_with_retention(
        &state.stores,
        principal.org,
        state.config.audit.retention_days,
    )
    .await?;
    Ok(Json(AuditSettingsBody::new(settings, days)))
}

fn check_retention(days: Option<u32>) -> Result<(), ApiError> {
    match days {
        Some(days) if !(1..=MAX_RETENTION_DAYS).contains(&days) => Err(ApiError::bad_field(
            "retention_days",
            format!("retention_days must be 1 to {MAX_RETENTION_DAYS}"),
        )),
        _ => Ok(()),
    }
}

fn check_messages(settings: &OrgAuditSettings) -> Result<(), ApiError> {
    if settings.excluded_messages.len() > 10_000 {
        return Err(ApiError::bad_field(
            "excluded_messages",
            "at most 10000 excluded messages",
        ));
    }
    let bad = |m: &String| m.trim().is_empty() || m.len() > 256 || m.chars().any(char::is_control);
    if settings.excluded_messages.iter().any(bad) {
        return Err(ApiError::bad_field(
            "excluded_messages",
            "each excluded message must be 1 to 256 characters without control characters",
        ));
    }
    if settings.sign_in_operations.len() > 1_000 {
        return Err(ApiError::bad_field(
            "sign_in_operations",
            "at most 1000 sign-in operations",
        ));
    }
    if settings.sign_in_operations.iter().any(bad) {
        return Err(ApiError::bad_field(
            "sign_in_operations",
            "each sign-in operation must be 1 to 256 characters without control characters",
        ));
    }
    Ok(())
}

/// Replaces the org's audit settings, and its retention when
/// `retention_days` is given; the change is itself audited.
#[utoipa::path(put, path = "/api/v1/audit/settings", tag = "audit",
    request_body = AuditSettingsBody,
    responses((status = 200, body = AuditSettingsBody), (status = 400, body = super::ErrorEnvelope),
        (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn put_settings(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Manage>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AuditSettingsBody>,
) -> Result<Json<AuditSettingsBody>, ApiError> {
    principal.require(Right::Manage)?;
    let current = state.stores.audit.audit_settings(principal.org).await?;
    let (settings, retention_days) = body.split(&current);
    check_messages(&settings)?;
    check_retention(retention_days)?;
    let actor = api_actor(&principal, &headers, peer);
    let (saved, days) = audit::put_settings(
        &state.stores,
        principal.org,
        &actor,
        settings,
        retention_days,
        state.config.audit.retention_days,
    )
    .await?;
    Ok(Json(AuditSettingsBody::new(saved, days)))
}

fn entity_name(entity: &str) -> Result<String, ApiError> {
    if entity.is_empty() || entity.len() > 256 || entity.chars().any(char::is_control) {
        return Err(ApiError::bad_field(
            "entity",
            "the entity name must be 1 to 256 characters without control characters",
        ));
    }
    Ok(entity.to_lowercase())
}

/// One entity's audit settings (every switch on when never set).
#[utoipa::path(get, path = "/api/v1/audit/settings/entities/{entity}", tag = "audit",
    params(("entity" = String, Path, description = "The entity's logical name, such as account")),
    responses((status = 200, body = EntityAuditSettings), (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_entity_settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(entity): Path<String>,
) -> Result<Json<EntityAuditSettings>, ApiError> {
    principal.require(Right::Manage)?;
    let entity = entity_name(&entity)?;
    let found = state
        .stores
        .audit
        .entity_audit_settings(principal.org, vec![entity.clone()])
        .await?;
    Ok(Json(found.get(&entity).copied().unwrap_or_default()))
}

/// Replaces one entity's audit settings; the change is itself audited.
#[utoipa::path(put, path = "/api/v1/audit/settings/entities/{entity}", tag = "audit",
    params(("entity" = String, Path)),
    request_body = EntityAuditSettings,
    responses((status = 200, body = EntityAuditSettings), (status = 400, body = super::ErrorEnvelope),
        (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn put_entity_settings(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Manage>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Path(entity): Path<String>,
    ApiJson(settings): ApiJson<EntityAuditSettings>,
) -> Result<Json<EntityAuditSettings>, ApiError> {
    principal.require(Right::Manage)?;
    let entity = entity_name(&entity)?;
    let actor = api_actor(&principal, &headers, peer);
    let saved =
        audit::put_entity_settings(&state.stores, principal.org, &actor, &entity, settings).await?;
    Ok(Json(saved))
}
