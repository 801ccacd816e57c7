//! The admin's page of users (`/ui/users`): add, change role, disable or
//! enable, reset the password and remove, each a CSRF-checked form that
//! calls the same service as the API and the CLI, so each change is
//! audited and a disabled or removed user's sessions end at once.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tracklog_domain::audit::UserType;
use tracklog_domain::ids::UserName;
use tracklog_domain::user::Role;
use tracklog_store::User;

use super::pages::render;
use super::session::{WebUser, tokens_match};
use super::{NavSection, navigation};
use crate::services::Actor;
use crate::services::users::{self, MIN_PASSWORD_CHARS, UserError, UserUpdate};
use crate::state::AppState;

const ROLES: [&str; 4] = ["admin", "supervisor", "agent", "auditor"];

struct UserRow {
    name: String,
    role: &'static str,
    disabled: bool,
    last_sign_in: String,
    created_at: String,
    /// The name as a path segment.
    href: String,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    rows: Vec<UserRow>,
    roles: [&'static str; 4],
    min_password: usize,
    notice: Option<String>,
    error: Option<String>,
    /// A generated password, shown once.
    password: Option<(String, String)>,
}

fn actor(user: &WebUser) -> Actor {
    Actor {
        name: user.name.to_string(),
        user_type: UserType::Admin,
        client_ip: None,
        user_agent: None,
    }
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "managing users is for admins; ask an admin of your organisation",
    )
        .into_response()
}

fn segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn row(user: &User, me: &WebUser) -> UserRow {
    UserRow {
        name: user.name.to_string(),
        role: user.role.as_str(),
        disabled: user.disabled,
        last_sign_in: user
            .last_sign_in
            .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339()),
        created_at: user.created_at.to_rfc3339(),
        href: segment(user.name.as_str()),
        is_me: user.name == me.name,
    }
}

/// What the page shows besides the list.
#[derive(Default)]
struct Outcome {
    notice: Option<String>,
    error: Option<String>,
    password: Option<(String, String)>,
}

async fn page(state: &AppState, user: &WebUser, status: StatusCode, outcome: Outcome) -> Response {
    let (org, users) = tokio::join!(
        state.stores.meta.org_by_id(user.org),
        state.stores.meta.list_users(user.org)
    );
    let (rows, error) = match users {
        Ok(list) => (list.iter().map(|u| row(u, user)).collect(), outcome.error),
        Err(problem) => (Vec::new(), Some(problem.to_string())),
    };
    let page = UsersPage {
        user: user.name.to_string(),
        role: user.role.as_str(),
        org: org
            .ok()
            .flatten()
            .map_or_else(String::new, |o| o.name.to_string()),
        csrf: user.csrf_token.clone(),
        nav: navigation(user.role, "/ui/users"),
        rows,
        roles: ROLES,
        min_password: MIN_PASSWORD_CHARS,
        notice: outcome.notice,
        error,
        password: outcome.password,
    };
    (status, render(&page)).into_response()
}

#[derive(Deserialize)]
pub struct UsersQuery {
    done: Option<String>,
}

/// The org's users, for admins.
#[utoipa::path(get, path = "/ui/users", tag = "ui",
    responses(
        (status = 200, description = "Users", content_type = "text/html"),
        (status = 403, description = "Not an admin"),
    ))]
pub async fn users_page(
    State(state): State<AppState>,
    user: WebUser,
    axum::extract::Query(query): axum::extract::Query<UsersQuery>,
) -> Response {
    if user.role != Role::Admin {
        return forbidden();
    }
    let notice = query.done.map(|d| d.chars().take(200).collect());
    let outcome = Outcome {
        notice,
        ..Outcome::default()
    };
    page(&state, &user, StatusCode::OK, outcome).await
}

/// The fields every form posts; the ones an action does not use are absent.
#[derive(Deserialize)]
pub struct UserForm {
    /// Absent counts as wrong: 403, as for any other token.
    #[serde(default)]
    csrf: String,
    name: Option<String>,
    role: Option<String>,
    password: Option<String>,
    confirm: Option<String>,
}

fn refused(error: &UserError) -> StatusCode {
    match error {
        UserError::WeakPassword | UserError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        UserError::NotFound(_) => StatusCode::NOT_FOUND,
        UserError::LastAdmin(_) => StatusCode::CONFLICT,
        UserError::Store(tracklog_store::StoreError::Conflict(_)) => StatusCode::CONFLICT,
        UserError::Hash(_) | UserError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Checks the admin and the CSRF token; `None` means go on.
fn guard(user: &WebUser, form: &UserForm) -> Option<Response> {
    if user.role != Role::Admin {
        return Some(forbidden());
    }
    if !tokens_match(&user.csrf_token, &form.csrf) {
        return Some((StatusCode::FORBIDDEN, "the form expired; reload the page").into_response());
    }
    None
}

fn done(message: String) -> Response {
    Redirect::to(&format!("/ui/users?done={}", segment(&message))).into_response()
}

async fn failed(state: &AppState, user: &WebUser, error: UserError) -> Response {
    let status = refused(&error);
    let error = match error {
        UserError::Store(tracklog_store::StoreError::Conflict(_)) => {
            "that name is taken, in this or another organisation".to_owned()
        }
        other => other.to_string(),
    };
    let outcome = Outcome {
        error: Some(error),
        ..Outcome::default()
    };
    page(state, user, status, outcome).await
}

/// Adds a user; a password left empty is generated and shown once.
#[utoipa::path(post, path = "/ui/users", tag = "ui",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "csrf, name, role, password (optional)"),
    responses((status = 200, description = "Added", content_type = "text/html")))]
pub async fn add_user(
    State(state): State<AppState>,
    user: WebUser,
    Form(form): Form<UserForm>,
) -> Response {
    if let Some(stop) = guard(&user, &form) {
        return stop;
    }
    let name = match UserName::parse(form.name.unwrap_or_default().trim()) {
        Ok(name) => name,
        Err(e) => return failed(&state, &user, UserError::Invalid(format!("user name {e}"))).await,
    };
    let Some(role) = form.role.as_deref().and_then(|r| r.parse::<Role>().ok()) else {
        let error = UserError::Invalid("choose a role".into());
        return failed(&state, &user, error).await;
    };
    let typed = form.password.filter(|p| !p.is_empty());
    let generated = typed.is_none();
    let password = typed.unwrap_or_else(users::generate_password);
    match users::add(
        &state.stores,
        user.org,
        &actor(&user),
        name.clone(),
        role,
        password.clone(),
    )
    .await
    {
        Ok(_) => {
            let outcome = Outcome {
                notice: Some(format!("Added {name} as {}.", role.as_str())),
                password: generated.then(|| (name.to_string(), password)),
                ..Outcome::default()
            };
            page(&state, &user, StatusCode::OK, outcome).await
        }
        Err(error) => failed(&state, &user, error).await,
    }
}

/// One action on one user: `role`, `disable`, `enable`, `password` or
/// `remove`.
#[utoipa::path(post, path = "/ui/users/{name}/{action}", tag = "ui",
    params(("name" = String, Path), ("action" = String, Path,
        description = "role, disable, enable, password or remove")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "csrf, and role for `role`, password (optional) for `password`, confirm for `remove`"),
    responses((status = 303, description = "Done: back to /ui/users")))]
pub async fn user_action(
    State(state): State<AppState>,
    user: WebUser,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<UserForm>,
) -> Response {
    if let Some(stop) = guard(&user, &form) {
        return stop;
    }
    let Ok(name) = UserName::parse(name) else {
        return (StatusCode::NOT_FOUND, "no such user").into_response();
    };
    let (stores, org, actor) = (&state.stores, user.org, actor(&user));
    let result = match action.as_str() {
        "role" => match form.role.as_deref().map(str::parse::<Role>) {
            Some(Ok(role)) => {
                let update = UserUpdate {
                    role: Some(role),
                    ..UserUpdate::default()
                };
                users::update(stores, org, &actor, &name, update)
                    .await
                    .map(|u| format!("{name} is now {}.", u.role.as_str()))
            }
            _ => Err(UserError::Invalid("choose a role".into())),
        },
        "disable" | "enable" => {
            let update = UserUpdate {
                disabled: Some(action == "disable"),
                ..UserUpdate::default()
            };
            users::update(stores, org, &actor, &name, update)
                .await
                .map(|u| {
                    if u.disabled {
                        format!("Disabled {name}; their sessions have ended.")
                    } else {
                        format!("Enabled {name}.")
                    }
                })
        }
        "password" => {
            let typed = form.password.filter(|p| !p.is_empty());
            match users::reset_password(stores, org, &actor, &name, typed).await {
                Ok(Some(password)) => {
                    let outcome = Outcome {
                        notice: Some(format!(
                            "Reset the password of {name}; their sessions have ended."
                        )),
                        password: Some((name.to_string(), password)),
                        ..Outcome::default()
                    };
                    return page(&state, &user, StatusCode::OK, outcome).await;
                }
                Ok(None) => Ok(format!(
                    "Set a new password for {name}; their sessions have ended."
                )),
                Err(error) => Err(error),
            }
        }
        "remove" if form.confirm.as_deref() == Some("yes") => {
            users::remove(stores, org, &actor, &name)
                .await
                .map(|()| format!("Removed {name}."))
        }
        "remove" => Err(UserError::Invalid(format!(
            "tick the box to confirm removing {name}"
        ))),
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    match result {
        Ok(message) => done(message),
        Err(error) => failed(&state, &user, error).await,
    }
}
