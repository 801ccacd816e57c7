//! Sign-in, sign-out and the home page.

use std::net::SocketAddr;
use std::time::Instant;

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use serde_json::json;
use tracklog_domain::audit::UserType;
use tracklog_domain::audit::reports::TRACKLOG_MANAGEMENT;
use tracklog_domain::ids::{OrgId, OrgName, UserName};
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;
use tracklog_store::{AuditFilter, WebSession};

use super::session::{
    self, LOGIN_CSRF_COOKIE, SESSION_COOKIE, WebUser, random_token, safe_next, token_hash,
    tokens_match,
};
use super::throttle::{Key, Locked, Lockout};
use super::{NavSection, navigation};
use crate::api::extract::ClientAddr;
use crate::metrics::OutcomeLabel;
use crate::services::selfaudit::{self, Action, Actor};
use crate::services::users::{decoy_hash, verify_password};
use crate::state::AppState;

pub(crate) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    error: Option<String>,
    username: String,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The sign-in form.
#[utoipa::path(get, path = "/login", tag = "ui",
    responses((status = 200, description = "Sign-in form", content_type = "text/html")))]
pub async fn login_form(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    if WebUser::from_request_parts(&mut parts, &state)
        .await
        .is_ok()
    {
        return Redirect::to("/").into_response();
    }
    let next = axum::extract::Query::<LoginQuery>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|q| q.0.next);
    login_page(
        &state,
        &parts,
        safe_next(next.as_deref()),
        None,
        String::new(),
        StatusCode::OK,
    )
}

fn login_page(
    state: &AppState,
    parts: &Parts,
    next: String,
    error: Option<String>,
    username: String,
    status: StatusCode,
) -> Response {
    let csrf = random_token();
    let secure = session::secure_cookies(state, parts);
    let jar = CookieJar::new().add(session::cookie(
        LOGIN_CSRF_COOKIE,
        csrf.clone(),
        "/login",
        secure,
        1800,
    ));
    let page = LoginPage {
        csrf,
        next,
        error,
        username,
    };
    (status, jar, render(&page)).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

fn client_ip(peer: Option<SocketAddr>) -> Option<String> {
    peer.map(|p| p.ip().to_string())
}

/// What a failed sign-in counts against: the user name tried, and the
/// client's address.
fn throttle_keys(username: &str, peer: Option<SocketAddr>) -> Vec<Key> {
    let mut keys = vec![Key::user(username)];
    keys.extend(peer.map(|p| Key::address(p.ip())));
    keys
}

/// The sign-in form again, answered 429 with Retry-After.
fn locked_out(
    state: &AppState,
    parts: &Parts,
    next: String,
    username: String,
    locked: &Locked,
) -> Response {
    let seconds = locked.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let minutes = seconds.div_ceil(60);
    let whose = match locked.key {
        Key::User(_) => "for this user name",
        Key::Address(_) => "from this address",
    };
    let message = format!(
        "Too many failed sign-ins {whose}. Try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    );
    let mut response = login_page(
        state,
        parts,
        next,
        Some(message),
        username,
        StatusCode::TOO_MANY_REQUESTS,
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Records a lockout that a failed sign-in started.
async fn record_lockout(state: &AppState, org: OrgId, actor: &Actor, lockout: &Lockout) {
    let subject = lockout.key.subject();
    tracing::warn!(
        scope = lockout.key.scope(),
        subject,
        failures = lockout.failures,
        "sign-ins locked out"
    );
    selfaudit::record(
        &state.stores,
        org,
        actor,
        Action {
            operation: "SignInLockedOut",
            entity_name: match lockout.key {
                Key::User(_) => "user",
                Key::Address(_) => "client_address",
            },
            entity_id: &subject,
            success: false,
            fields: Some(json!({
                "scope": lockout.key.scope(),
                "failures": lockout.failures,
                "window_seconds": state.config.ui.sign_in.window_seconds,
                "lockout_seconds": lockout.duration.as_secs(),
            })),
        },
    )
    .await;
}

/// Checks the password, starts a session and goes where the person was going.
#[utoipa::path(post, path = "/login", tag = "ui",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "username, password, csrf, next"),
    responses(
        (status = 303, description = "Signed in"),
        (status = 401, description = "Wrong user name or password", content_type = "text/html"),
        (status = 403, description = "Missing or wrong CSRF token", content_type = "text/html"),
        (status = 429, description = "Too many failed sign-ins for this user name or from this address; \
            Retry-After gives the seconds until the lockout ends", content_type = "text/html"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let jar = CookieJar::from_headers(&parts.headers);
    let Ok(Form(form)) =
        Form::<LoginForm>::from_request(Request::from_parts(parts.clone(), body), &state).await
    else {
        return (StatusCode::BAD_REQUEST, "the sign-in form is incomplete").into_response();
    };
    let next = safe_next(form.next.as_deref());
    let csrf_ok = jar
        .get(LOGIN_CSRF_COOKIE)
        .is_some_and(|c| tokens_match(c.value(), &form.csrf));
    if !csrf_ok {
        let message = "The form expired. Please sign in again.".to_owned();
        return login_page(
            &state,
            &parts,
            next,
            Some(message),
            form.username,
            StatusCode::FORBIDDEN,
        );
    }

    let keys = throttle_keys(&form.username, peer);
    if let Some(locked) = state.sign_in.check(&keys, Instant::now()) {
        state
            .metrics
            .logins
            .get_or_create(&OutcomeLabel {
                outcome: "throttled",
            })
            .inc();
        return locked_out(&state, &parts, next, form.username, &locked);
    }

    let user = match UserName::parse(form.username.trim()) {
        Ok(name) => state.stores.meta.user(&name).await.ok().flatten(),
        Err(_) => None,
    };
    let hash = user
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |u| u.password_hash.clone());
    let password = form.password;
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let actor = Actor {
        name: form.username.chars().take(64).collect(),
        user_type: UserType::Regular,
        client_ip: client_ip(peer),
        user_agent: parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
    };

    // Only someone who knows the password learns that the account is
    // disabled.
    let disabled = verified && user.as_ref().is_some_and(|u| u.disabled);
    let known_org = user.as_ref().map(|u| u.org);
    let Some(user) = user.filter(|u| verified && !u.disabled) else {
        state
            .metrics
            .logins
            .get_or_create(&OutcomeLabel { outcome: "failed" })
            .inc();
        let org = match known_org {
            Some(org) if disabled => org,
            _ => match state
                .stores
                .meta
                .org_by_name(&OrgName::parse("default").expect("valid"))
                .await
            {
                Ok(Some(org)) => org.id,
                _ => {
                    return (StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable")
                        .into_response();
                }
            },
        };
        selfaudit::record(
            &state.stores,
            org,
            &actor,
            Action {
                operation: "SignInFailed",
                entity_name: "user",
                entity_id: &actor.name,
                success: false,
                fields: disabled.then(|| json!({ "reason": "disabled" })),
            },
        )
        .await;
        for lockout in state.sign_in.failed(&keys, Instant::now()) {
            record_lockout(&state, org, &actor, &lockout).await;
        }
        let message = if disabled {
            "This account is disabled. Ask an administrator to enable it.".to_owned()
        } else {
            "Wrong user name or password.".to_owned()
        };
        return login_page(
            &state,
            &parts,
            next,
            Some(message),
            actor.name.clone(),
            StatusCode::UNAUTHORIZED,
        );
    };

    state.sign_in.succeeded(&Key::user(&form.username));
    let token = random_token();
    let ttl_ms = state.config.ui.session_hours as i64 * 3_600_000;
    let stored = WebSession {
        token_hash: token_hash(&token),
        org: user.org,
        user: user.name.clone(),
        csrf_token: random_token(),
        expires_at: UtcMillis::now().saturating_add_millis(ttl_ms),
    };
    if let Err(error) = state.stores.meta.create_web_session(stored).await {
        tracing::warn!(%error, "could not start a session");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unavailable; try again",
        )
            .into_response();
    }
    state
        .metrics
        .logins
        .get_or_create(&OutcomeLabel {
            outcome: "succeeded",
        })
        .inc();
    if let Err(error) = state
        .stores
        .meta
        .record_sign_in(&user.name, UtcMillis::now())
        .await
    {
        tracing::warn!(%error, "could not note the sign-in time");
    }
    let actor = Actor {
        user_type: if user.role == Role::Admin {
            UserType::Admin
        } else {
            UserType::Regular
        },
        name: user.name.to_string(),
        ..actor
    };
    selfaudit::record(
        &state.stores,
        user.org,
        &actor,
        Action {
            operation: "SignIn",
            entity_name: "user",
            entity_id: user.name.as_str(),
            success: true,
            fields: Some(json!({ "role": user.role.as_str() })),
        },
    )
    .await;
    let secure = session::secure_cookies(&state, &parts);
    let jar = jar
        .remove(session::cookie(
            LOGIN_CSRF_COOKIE,
            String::new(),
            "/login",
            secure,
            0,
        ))
        .add(session::cookie(
            SESSION_COOKIE,
            token,
            "/",
            secure,
            ttl_ms / 1000,
        ));
    (jar, Redirect::to(&next)).into_response()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    /// Absent counts as wrong: 403, as for any other token.
    #[serde(default)]
    csrf: String,
}

/// Ends the session.
#[utoipa::path(post, path = "/logout", tag = "ui",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "csrf"),
    responses((status = 303, description = "Signed out"), (status = 403, description = "Wrong CSRF token")))]
pub async fn logout(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    user: WebUser,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !tokens_match(&user.csrf_token, &form.csrf) {
        return (StatusCode::FORBIDDEN, "wrong CSRF token").into_response();
    }
    if let Err(error) = state.stores.meta.delete_web_session(&user.token_hash).await {
        tracing::warn!(%error, "could not end a session");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unavailable; try again",
        )
            .into_response();
    }
    let actor = Actor {
        name: user.name.to_string(),
        user_type: if user.role == Role::Admin {
            UserType::Admin
        } else {
            UserType::Regular
        },
        client_ip: client_ip(peer),
        user_agent: None,
    };
    selfaudit::record(
        &state.stores,
        user.org,
        &actor,
        Action {
            operation: "SignOut",
            entity_name: "user",
            entity_id: user.name.as_str(),
            success: true,
            fields: None,
        },
    )
    .await;
    let jar = jar.remove(session::cookie(
        SESSION_COOKIE,
        String::new(),
        "/",
        false,
        0,
    ));
    (jar, Redirect::to("/login")).into_response()
}

/// One line of recent management activity on the home page.
struct ActivityRow {
    time: String,
    user: String,
    operation: String,
    entity: String,
    status: String,
    href: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    /// The administration figures, for admins only.
    counts: Option<(usize, usize)>,
    /// Tracklog's own management records, newest first, for the roles that
    /// may read the activity log; `None` for the others.
    activity: Option<Vec<ActivityRow>>,
}

/// The shell: navigation, the org at a glance and, for the roles that may
/// read the activity log, recent management activity. Each role sees only
/// what its own pages show.
#[utoipa::path(get, path = "/", tag = "ui",
    responses(
        (status = 200, description = "Home page", content_type = "text/html"),
        (status = 303, description = "Not signed in: to /login"),
    ))]
pub async fn home(State(state): State<AppState>, user: WebUser) -> Response {
    let stores = &state.stores;
    let org = stores.meta.org_by_id(user.org).await;
    let counts = if user.role == Role::Admin {
        let (policies, users) = tokio::join!(
            stores.meta.list_policies(user.org),
            stores.meta.list_users(user.org),
        );
        Some((
            policies.map(|p| p.len()).unwrap_or(0),
            users.map(|u| u.len()).unwrap_or(0),
        ))
    } else {
        None
    };
    let activity = if super::audit::allowed(&user) {
        let filter = AuditFilter {
            report: Some(TRACKLOG_MANAGEMENT),
            ..AuditFilter::default()
        };
        let page = stores
            .audit
            .search_audit(user.org, filter, 10, None, false)
            .await;
        Some(
            page.map(|p| p.items)
                .unwrap_or_default()
                .into_iter()
                .map(|hit| {
                    let r = hit.record;
                    ActivityRow {
                        href: format!("/ui/audit/records/{}", url_path(&r.id)),
                        time: r.creation_time,
                        user: r.user.unwrap_or_default(),
                        operation: r.operation,
                        entity: match (r.entity_name, r.entity_id) {
                            (Some(name), Some(id)) => format!("{name} {id}"),
                            (Some(name), None) => name,
                            _ => String::new(),
                        },
                        status: r.result_status.unwrap_or_default(),
                    }
                })
                .collect(),
        )
    } else {
        None
    };
    let page = HomePage {
        user: user.name.to_string(),
        role: user.role.as_str(),
        org: org
            .ok()
            .flatten()
            .map_or_else(String::new, |o| o.name.to_string()),
        csrf: user.csrf_token.clone(),
        nav: navigation(user.role, "/"),
        counts,
        activity,
    };
    render(&page)
}

/// A path segment, percent-encoded.
fn url_path(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}
