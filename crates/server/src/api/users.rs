//! People who sign in to the web UI: `GET/POST /api/v1/users`,
//! `GET/PATCH/DELETE /api/v1/users/{name}` and
//! `POST /api/v1/users/{name}/password`. A disabled or removed user's
//! sessions end at once; every change is audited.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tracklog_domain::auth::Right;
use tracklog_domain::ids::UserName;
use tracklog_domain::user::Role;
use tracklog_store::User;
use utoipa::ToSchema;

use super::extract::{ApiJson, ClientAddr};
use super::policies::api_actor;
use crate::auth::{Authorized, Principal, need};
use crate::error::ApiError;
use crate::services::users::{self, UserError, UserUpdate};
use crate::state::AppState;

/// A user as the API shows one: never the password hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub name: String,
    /// `admin`, `supervisor`, `agent` or `auditor`.
    pub role: String,
    /// A disabled user cannot sign in.
    pub disabled: bool,
    /// When the user last signed in, if ever.
    pub last_sign_in: Option<String>,
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            name: user.name.to_string(),
            role: user.role.as_str().to_owned(),
            disabled: user.disabled,
            last_sign_in: user.last_sign_in.map(|t| t.to_rfc3339()),
            created_at: user.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1 to 64 letters, digits, `.`, `_` or `-`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    #[schema(value_type = UserRole)]
    pub role: String,
    /// At least 10 characters; generated and answered once when left out.
    #[schema(min_length = 10)]
    pub password: Option<String>,
}

/// A new user, with the password generated for them when none was sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: UserView,
    /// Only when generated; shown only now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[schema(value_type = Option<UserRole>)]
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

/// A web UI role.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Documents the roles, which are read as text.
pub enum UserRole {
    Admin,
    Supervisor,
    Agent,
    Auditor,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// At least 10 characters; generated when left out.
    #[schema(min_length = 10)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordReset {
    pub name: String,
    /// The generated password, shown only now; absent when one was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

fn user_name(text: &str) -> Result<UserName, ApiError> {
    UserName::parse(text).map_err(|e| ApiError::bad_field("name", format!("user name {e}")))
}

fn role(text: &str) -> Result<Role, ApiError> {
    text.parse::<Role>()
        .map_err(|e: String| ApiError::bad_field("role", e))
}

/// The org's users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = UserList), (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<UserList>, ApiError> {
    principal.require(Right::Manage)?;
    let users = state.stores.meta.list_users(principal.org).await?;
    Ok(Json(UserList {
        items: users.iter().map(UserView::from).collect(),
    }))
}

/// Adds a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    request_body = CreateUser,
    responses(
        (status = 201, body = CreatedUser),
        (status = 400, body = super::ErrorEnvelope),
        (status = 409, description = "The name is taken", body = super::ErrorEnvelope),
        (status = 422, description = "The password is too short", body = super::ErrorEnvelope),
    ),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Manage>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    principal.require(Right::Manage)?;
    let name = user_name(&request.name)?;
    let role = role(&request.role)?;
    let generated = request.password.is_none();
    let password = request.password.unwrap_or_else(users::generate_password);
    let actor = api_actor(&principal, &headers, peer);
    let user = users::add(
        &state.stores,
        principal.org,
        &actor,
        name,
        role,
        password.clone(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: (&user).into(),
            password: generated.then_some(password),
        }),
    ))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "users",
    params(("name" = tracklog_domain::ids::UserName, Path)),
    responses((status = 200, body = UserView), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    principal.require(Right::Manage)?;
    let name = user_name(&name)?;
    let user = state
        .stores
        .meta
        .user(&name)
        .await?
        .filter(|u| u.org == principal.org)
        .ok_or_else(|| ApiError::from(UserError::NotFound(name.to_string())))?;
    Ok(Json((&user).into()))
}

/// Changes a user's role, or disables or enables them. Disabling ends their
/// sessions at once. The org's last enabled admin cannot be disabled or
/// demoted (409).
#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "users",
    params(("name" = tracklog_domain::ids::UserName, Path)),
    request_body = PatchUser,
    responses(
        (status = 200, body = UserView),
        (status = 404, body = super::ErrorEnvelope),
        (status = 409, description = "The last enabled admin", body = super::ErrorEnvelope),
    ),
    security(("sas" = []), ("basic" = [])))]
pub async fn patch_user(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Manage>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Path(name): Path<String>,
    ApiJson(request): ApiJson<PatchUser>,
) -> Result<Json<UserView>, ApiError> {
    principal.require(Right::Manage)?;
    let name = user_name(&name)?;
    let update = UserUpdate {
        role: request.role.as_deref().map(role).transpose()?,
        disabled: request.disabled,
    };
    let actor = api_actor(&principal, &headers, peer);
    let user = users::update(&state.stores, principal.org, &actor, &name, update).await?;
    Ok(Json((&user).into()))
}

/// Removes a user; their sessions end at once. The org's last enabled
/// admin cannot be removed (409).
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users",
    params(("name" = tracklog_domain::ids::UserName, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = super::ErrorEnvelope),
        (status = 409, description = "The last enabled admin", body = super::ErrorEnvelope),
    ),
    security(("sas" = []), ("basic" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    principal: Principal,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Right::Manage)?;
    let name = user_name(&name)?;
    let actor = api_actor(&principal, &headers, peer);
    users::remove(&state.stores, principal.org, &actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a user's password, or generates one, and ends their sessions.
#[utoipa::path(post, path = "/api/v1/users/{name}/password", tag = "users",
    params(("name" = tracklog_domain::ids::UserName, Path)),
    request_body(content = Option<ResetPassword>, description = "Optional; none or `{}` generates a password"),
    responses(
        (status = 200, body = PasswordReset),
        (status = 404, body = super::ErrorEnvelope),
        (status = 422, description = "The password is too short", body = super::ErrorEnvelope),
    ),
    security(("sas" = []), ("basic" = [])))]
pub async fn reset_password(
    State(state): State<AppState>,
    principal: Principal,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<PasswordReset>, ApiError> {
    principal.require(Right::Manage)?;
    let name = user_name(&name)?;
    let request: ResetPassword = super::extract::optional_body(&body, "password")?;
    let actor = api_actor(&principal, &headers, peer);
    let password = users::reset_password(
        &state.stores,
        principal.org,
        &actor,
        &name,
        request.password,
    )
    .await?;
    Ok(Json(PasswordReset {
        name: name.to_string(),
        password,
    }))
}
