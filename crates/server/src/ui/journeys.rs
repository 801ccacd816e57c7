//! The portal pillar's pages: case journeys (full and embeddable), the case
//! list, and portal insights.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tracklog_domain::auth::{Credential, Right};
use tracklog_domain::contact::Case;
use tracklog_domain::ids::{CaseId, OrgId, PortalId};
use tracklog_domain::interaction::Builtin;
use tracklog_domain::journey::Journey;
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;

use super::charts::{self, Lane, Mark};
use super::pages::render;
use super::session::WebUser;
use super::{NavSection, navigation};
use crate::api::contacts::window_param;
use crate::services::portals;
use crate::state::AppState;

/// The window choices offered on the journey page.
const WINDOWS: [(&str, &str); 5] = [
    ("PT24H", "24 hours"),
    ("PT72H", "72 hours"),
    ("P7D", "7 days"),
    ("P30D", "30 days"),
    ("P90D", "90 days"),
];

fn window_label(window: &str) -> String {
    WINDOWS
        .iter()
        .find(|(w, _)| *w == window)
        .map_or_else(|| window.to_owned(), |(_, label)| (*label).to_owned())
}

/// A short UTC time for tables: `2026-02-27 09:00:05`.
pub(super) fn short_time(rfc3339: &str) -> String {
    rfc3339.get(..19).unwrap_or(rfc3339).replace('T', " ")
}

fn type_label(name: &str) -> String {
    Builtin::from_name(name).map_or_else(|| name.to_owned(), |b| b.display_name().to_owned())
}

pub struct RowView {
    pub time: String,
    pub kind: String,
    pub detail: String,
    pub session: String,
    pub already_read: bool,
}

pub struct SessionView {
    pub label: String,
    pub started: String,
    pub ended: String,
    pub count: u64,
    /// Counts by type, in words.
    pub kinds: String,
    /// When the anonymous session became identified.
    pub identified: Option<String>,
}

pub struct ArticleView {
    pub id: String,
    pub title: String,
    pub count: u64,
    pub last_viewed: String,
}

/// Everything the journey templates show.
pub struct JourneyView {
    pub case_id: String,
    pub title: String,
    pub status: &'static str,
    pub created_at: String,
    pub contact_label: String,
    pub window_label: String,
    pub total: u64,
    pub truncated: bool,
    pub chart: String,
    pub sessions: Vec<SessionView>,
    pub articles: Vec<ArticleView>,
    pub searches: Vec<(String, String)>,
    /// The page of interactions, newest first.
    pub rows: Vec<RowView>,
    /// The link to older interactions, when there are more.
    pub older: Option<String>,
    /// True when this page is not the newest.
    pub paged: bool,
}

fn text(value: &serde_json::Value, key: &str) -> Option<String> {
    value.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

/// What one interaction row says, by type.
fn detail(item: &serde_json::Value) -> String {
    let kind = item["type"].as_str().unwrap_or_default();
    let pair = |id: &str, title: &str| match (text(item, title), text(item, id)) {
        (Some(t), Some(i)) => format!("{t} ({i})"),
        (None, Some(i)) => i,
        (Some(t), None) => t,
        (None, None) => String::new(),
    };
    match Builtin::from_name(kind) {
        Some(Builtin::ViewKnowledgeArticle) => {
            pair("portal_knowledgearticleid", "portal_knowledgetitle")
        }
        Some(Builtin::ViewBlogPost) => pair("portal_blogpostid", "portal_blogtitle"),
        Some(Builtin::ViewForumThread) => pair("portal_forumthreadid", "portal_forumthreadtitle"),
        Some(Builtin::Search) => format!(
            "“{}”",
            text(item, "portal_searchstring").unwrap_or_default()
        ),
        None => item
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| {
                        !tracklog_domain::interaction::COMMON_FIELDS.contains(&k.as_str())
                    })
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
    }
}

/// The journey as its pages show it. `link` is the page's own address
/// with its query so far, for the link to older interactions.
pub fn journey_view(
    case: &Case,
    journey: &Journey,
    window: &str,
    contact_name: Option<String>,
    link: &str,
    paged: bool,
) -> JourneyView {
    let ms = |text: &str| UtcMillis::parse_rfc3339(text).map_or(0, UtcMillis::as_millis);
    let is_article = |item: &serde_json::Value| {
        item["type"].as_str() == Some(Builtin::ViewKnowledgeArticle.name())
    };
    // Built-in types first, in catalogue order, then the rest by name.
    let mut kinds: Vec<(&String, &u64)> = journey.by_type.iter().collect();
    let rank = |name: &str| {
        Builtin::ALL
            .iter()
            .position(|b| b.name() == name)
            .unwrap_or(Builtin::ALL.len())
    };
    kinds.sort_by_key(|(name, _)| (rank(name), name.as_str()));
    // One lane per type, labelled with the window's count; the dots are
    // the interactions of this page.
    let lanes: Vec<Lane> = kinds
        .iter()
        .map(|(kind, count)| Lane {
            label: format!("{} ({count})", type_label(kind)),
            marks: journey
                .items
                .iter()
                .filter(|i| i["type"].as_str() == Some(kind.as_str()))
                .map(|i| Mark {
                    at_ms: ms(i["portal_timestamp"].as_str().unwrap_or_default()),
                    title: format!(
                        "{} · {}",
                        short_time(i["portal_timestamp"].as_str().unwrap_or_default()),
                        detail(i)
                    ),
                    emphasised: is_article(i),
                })
                .collect(),
        })
        .collect();
    let chart = charts::timeline(
        ms(&journey.window_start),
        ms(&journey.window_end),
        &lanes,
        "case created",
    );
    let in_words = |by_type: &std::collections::BTreeMap<String, u64>| {
        let mut kinds: Vec<(&String, &u64)> = by_type.iter().collect();
        kinds.sort_by_key(|(name, _)| (rank(name), name.as_str()));
        kinds
            .iter()
            .map(|(kind, n)| format!("{n} × {}", type_label(kind)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    JourneyView {
        case_id: case.id.to_string(),
        title: case.title.clone(),
        status: case.status.as_str(),
        created_at: short_time(&case.created_at.to_rfc3339()),
        contact_label: match contact_name {
            Some(name) => format!("{name} ({})", case.contact_id),
            None => case.contact_id.to_string(),
        },
        window_label: window_label(window),
        total: journey.total,
        truncated: journey.truncated,
        chart,
        sessions: journey
            .sessions
            .iter()
            .map(|s| SessionView {
                label: s.session_id.as_ref().map_or_else(
                    || "Without a session".to_owned(),
                    |id| format!("Session {id}"),
                ),
                started: short_time(&s.start),
                ended: short_time(&s.end),
                count: s.count,
                kinds: in_words(&s.by_type),
                identified: s.identified_at.as_deref().map(short_time),
            })
            .collect(),
        articles: journey
            .articles_viewed
            .iter()
            .map(|a| ArticleView {
                id: a.id.clone(),
                title: a.title.clone().unwrap_or_else(|| a.id.clone()),
                count: a.count,
                last_viewed: short_time(&a.last_viewed),
            })
            .collect(),
        searches: journey
            .searches
            .iter()
            .map(|s| (s.text.clone(), short_time(&s.at)))
            .collect(),
        rows: journey
            .items
            .iter()
            .map(|i| RowView {
                time: short_time(i["portal_timestamp"].as_str().unwrap_or_default()),
                kind: type_label(i["type"].as_str().unwrap_or_default()),
                detail: detail(i),
                session: i["session_id"].as_str().unwrap_or_default().to_owned(),
                already_read: is_article(i),
            })
            .collect(),
        older: journey.next_cursor.as_ref().map(|cursor| {
            let separator = if link.contains('?') { '&' } else { '?' };
            format!(
                "{link}{separator}cursor={}",
                percent_encoding::utf8_percent_encode(cursor, percent_encoding::NON_ALPHANUMERIC)
            )
        }),
        paged,
    }
}

/// A page for people whose role may not see it.
pub(super) fn forbidden(message: &str) -> Response {
    (StatusCode::FORBIDDEN, Html(format!(
        "<!doctype html><meta charset=utf-8><title>Not allowed</title><p>{}</p><p><a href=\"/\">Back</a></p>",
        charts::escape(message)
    )))
        .into_response()
}

pub(super) fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(format!(
        "<!doctype html><meta charset=utf-8><title>Not found</title><p>{}</p><p><a href=\"/ui/cases\">Case journeys</a></p>",
        charts::escape(message)
    )))
        .into_response()
}

pub(super) fn allowed(user: &WebUser, roles: &[Role]) -> bool {
    roles.contains(&user.role)
}

/// The shell's common fields.
pub(super) struct Shell {
    pub(super) user: String,
    pub(super) role: &'static str,
    pub(super) org: String,
    pub(super) csrf: String,
    pub(super) nav: Vec<NavSection>,
}

pub(super) async fn shell(state: &AppState, user: &WebUser, current: &str) -> Shell {
    let org = state.stores.meta.org_by_id(user.org).await.ok().flatten();
    Shell {
        user: user.name.to_string(),
        role: user.role.as_str(),
        org: org.map_or_else(String::new, |o| o.name.to_string()),
        csrf: user.csrf_token.clone(),
        nav: navigation(user.role, current),
    }
}

#[derive(Template)]
#[template(path = "journey.html")]
struct JourneyPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    j: JourneyView,
    window: String,
    windows: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "embed_journey.html")]
struct EmbedJourneyPage {
    j: JourneyView,
}

#[derive(Debug, Deserialize)]
pub struct JourneyQuery {
    pub window: Option<String>,
    pub token: Option<String>,
    /// The page of older interactions.
    pub cursor: Option<String>,
}

fn encoded(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn load_journey(
    state: &AppState,
    org: OrgId,
    id: &str,
    window: Option<&str>,
    cursor: Option<&str>,
    link: &str,
) -> Result<JourneyView, Response> {
    let window = window.unwrap_or("PT72H");
    let window_ms = window_param(Some(window)).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            Html(charts::escape(&e.to_string())),
        )
            .into_response()
    })?;
    let case_id = CaseId::parse(id).map_err(|_| not_found("There is no such case."))?;
    let bad_request =
        |message: &str| (StatusCode::BAD_REQUEST, Html(charts::escape(message))).into_response();
    let page_cursor = crate::api::contacts::journey_cursor(cursor)
        .map_err(|_| bad_request("The link to older interactions is not valid."))?;
    let (case, journey) = match portals::journey(
        &state.stores,
        org,
        &case_id,
        window_ms,
        tracklog_domain::journey::PAGE_DEFAULT,
        page_cursor,
    )
    .await
    {
        Ok(found) => found,
        Err(crate::services::ServiceError::NotFound(message)) => return Err(not_found(&message)),
        Err(error) => {
            tracing::error!(%error, "journey failed");
            return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
    };
    let contact = state
        .stores
        .portals
        .contact(org, &case.contact_id)
        .await
        .ok()
        .flatten()
        .and_then(|c| c.name);
    Ok(journey_view(
        &case,
        &journey,
        window,
        contact,
        link,
        cursor.is_some(),
    ))
}

const JOURNEY_ROLES: [Role; 3] = [Role::Admin, Role::Supervisor, Role::Agent];

/// `/ui/cases/{id}`: what the customer did before opening the case.
#[utoipa::path(get, path = "/ui/cases/{id}", tag = "ui", params(("id" = String, Path), ("window" = Option<String>, Query, description = "ISO 8601 duration, PT72H by default")),
    responses((status = 200, description = "The journey page (HTML)"), (status = 303, description = "Sign-in needed")))]
pub async fn journey_page(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Query(query): Query<JourneyQuery>,
) -> Response {
    if !allowed(&user, &JOURNEY_ROLES) {
        return forbidden("Case journeys are for agents, supervisors and admins.");
    }
    let window = query.window.unwrap_or_else(|| "PT72H".into());
    let link = format!("/ui/cases/{}?window={}", encoded(&id), encoded(&window));
    let j = match load_journey(
        &state,
        user.org,
        &id,
        Some(&window),
        query.cursor.as_deref(),
        &link,
    )
    .await
    {
        Ok(view) => view,
        Err(response) => return response,
    };
    let shell = shell(&state, &user, "/ui/cases").await;
    render(&JourneyPage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        j,
        window,
        windows: WINDOWS.to_vec(),
    })
}

/// `/embed/cases/{id}?token=<SAS>`: the journey without navigation, for an
/// iframe on a CRM case form. The token is a read-scoped SAS whose resource
/// covers this URL; the framing sites come from `ui.embed_frame_ancestors`.
#[utoipa::path(get, path = "/embed/cases/{id}", tag = "ui", params(("id" = String, Path), ("token" = String, Query, description = "A read-scoped SAS token covering this URL"), ("window" = Option<String>, Query)),
    responses((status = 200, description = "The embeddable journey (HTML)"), (status = 401, description = "No valid token"), (status = 403, description = "The token lacks read or does not cover the page")))]
pub async fn embed_journey(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<JourneyQuery>,
) -> Response {
    let path = format!("/embed/cases/{id}");
    let Some(token) = query.token.as_deref() else {
        return (StatusCode::UNAUTHORIZED, "a token is required").into_response();
    };
    let org = match embed_principal(&state, token, &path).await {
        Ok(org) => org,
        Err((status, message)) => return (status, message).into_response(),
    };
    let mut link = format!("{path}?token={}", encoded(token));
    if let Some(window) = &query.window {
        link.push_str(&format!("&window={}", encoded(window)));
    }
    let j = match load_journey(
        &state,
        org,
        &id,
        query.window.as_deref(),
        query.cursor.as_deref(),
        &link,
    )
    .await
    {
        Ok(view) => view,
        Err(response) => return response,
    };
    let mut response = render(&EmbedJourneyPage { j });
    let policy = format!(
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors {}",
        state.config.ui.embed_frame_ancestors
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// Checks an embed token: a SAS signed by a policy with the read right whose
/// resource covers the page. Returns the policy's org.
async fn embed_principal(
    state: &AppState,
    token: &str,
    path: &str,
) -> Result<OrgId, (StatusCode, &'static str)> {
    let header = if token.starts_with("SharedAccessSignature ") {
        token.to_owned()
    } else {
        format!("SharedAccessSignature {token}")
    };
    let unauthorized = (StatusCode::UNAUTHORIZED, "the token is not valid");
    let Ok(credential) = Credential::parse(&header) else {
        return Err(unauthorized);
    };
    let name = tracklog_domain::ids::PolicyName::parse(credential.policy_name())
        .map_err(|_| unauthorized)?;
    let Credential::Sas(sas) = credential else {
        return Err(unauthorized);
    };
    let policy = state
        .stores
        .meta
        .policy(&name)
        .await
        .ok()
        .flatten()
        .ok_or(unauthorized)?;
    let signed = sas.signed_with(&policy.primary_key) | sas.signed_with(&policy.secondary_key);
    if !signed || sas.expired_at(UtcMillis::now().as_millis().div_euclid(1000)) {
        return Err(unauthorized);
    }
    if !policy.rights.allows(Right::Read) {
        return Err((
            StatusCode::FORBIDDEN,
            "the token's policy lacks the read right",
        ));
    }
    if !sas.covers_path(path) {
        return Err((StatusCode::FORBIDDEN, "the token does not cover this page"));
    }
    Ok(policy.org)
}

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    cases: Vec<CaseRow>,
}

struct CaseRow {
    id: String,
    href: String,
    title: String,
    contact: String,
    created: String,
    status: &'static str,
}

/// Everything but RFC 3986's unreserved characters is escaped in a segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` as one segment of a URL path.
pub fn path_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// `/ui/cases`: the newest cases, each linking to its journey.
#[utoipa::path(get, path = "/ui/cases", tag = "ui", responses((status = 200, description = "The case list (HTML)")))]
pub async fn cases_page(State(state): State<AppState>, user: WebUser) -> Response {
    if !allowed(&user, &JOURNEY_ROLES) {
        return forbidden("Case journeys are for agents, supervisors and admins.");
    }
    let cases = state
        .stores
        .portals
        .list_cases(user.org, None, 100)
        .await
        .unwrap_or_default();
    let shell = shell(&state, &user, "/ui/cases").await;
    render(&CasesPage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        cases: cases
            .iter()
            .map(|c| CaseRow {
                id: c.id.to_string(),
                href: path_segment(c.id.as_str()),
                title: c.title.clone(),
                contact: c.contact_id.to_string(),
                created: short_time(&c.created_at.to_rfc3339()),
                status: c.status.as_str(),
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize)]
pub struct OpenCase {
    pub id: String,
}

/// `/ui/cases/open?id=`: the "open a case" form.
#[utoipa::path(get, path = "/ui/cases/open", tag = "ui", params(("id" = String, Query)), responses((status = 303, description = "To the case's journey"), (status = 403, description = "Not for this role")))]
pub async fn open_case(user: WebUser, Query(open): Query<OpenCase>) -> Response {
    if !allowed(&user, &JOURNEY_ROLES) {
        return forbidden("Case journeys are for agents, supervisors and admins.");
    }
    Redirect::to(&format!("/ui/cases/{}", path_segment(open.id.trim()))).into_response()
}

const PORTAL_ROLES: [Role; 2] = [Role::Admin, Role::Supervisor];

#[derive(Template)]
#[template(path = "portals.html")]
struct PortalsPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    portals: Vec<PortalRow>,
}

struct PortalRow {
    id: String,
    href: String,
    name: String,
    origins: String,
    policy: String,
    retention: String,
}

/// `/ui/portals`: the org's portals.
#[utoipa::path(get, path = "/ui/portals", tag = "ui", responses((status = 200, description = "The portal list (HTML)")))]
pub async fn portals_page(State(state): State<AppState>, user: WebUser) -> Response {
    if !allowed(&user, &PORTAL_ROLES) {
        return forbidden("Portal insights are for supervisors and admins.");
    }
    let portals = state
        .stores
        .portals
        .list_portals(user.org)
        .await
        .unwrap_or_default();
    let shell = shell(&state, &user, "/ui/portals").await;
    render(&PortalsPage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        portals: portals
            .iter()
            .map(|p| PortalRow {
                id: p.id.to_string(),
                href: path_segment(p.id.as_str()),
                name: p.name.clone(),
                origins: p
                    .allowed_origins
                    .iter()
                    .map(|o| o.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                policy: p
                    .policy
                    .as_ref()
                    .map_or_else(|| "—".into(), |p| p.to_string()),
                retention: p
                    .retention_days
                    .map_or_else(|| "kept".into(), |d| format!("{d} days")),
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "portal.html")]
struct PortalPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    id: String,
    name: String,
    days: i64,
    to: String,
    total: u64,
    chart: String,
    top_articles: Vec<(String, u64)>,
    top_searches: Vec<(String, u64)>,
    before_case: Vec<(String, u64)>,
}

#[derive(Debug, Deserialize)]
pub struct InsightQuery {
    pub days: Option<i64>,
}

/// `/ui/portals/{id}`: interactions per day by type, top articles, top
/// searches, and searches followed by a case within 24 hours.
#[utoipa::path(get, path = "/ui/portals/{id}", tag = "ui", params(("id" = String, Path), ("days" = Option<i64>, Query)), responses((status = 200, description = "The portal's insights (HTML)")))]
pub async fn portal_page(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
    Query(query): Query<InsightQuery>,
) -> Response {
    if !allowed(&user, &PORTAL_ROLES) {
        return forbidden("Portal insights are for supervisors and admins.");
    }
    let Ok(portal_id) = PortalId::parse(id) else {
        return not_found("There is no such portal.");
    };
    let Ok(Some(portal)) = state.stores.portals.portal(user.org, &portal_id).await else {
        return not_found("There is no such portal.");
    };
    let days = query.days.unwrap_or(30).clamp(1, 366);
    const DAY: i64 = 86_400_000;
    let to_day = UtcMillis::now().as_millis().div_euclid(DAY) + 1;
    let from_day = to_day - days;
    let insights = match state
        .stores
        .events
        .portal_insights(
            user.org,
            &portal_id,
            UtcMillis::from_millis(from_day * DAY),
            UtcMillis::from_millis(to_day * DAY),
        )
        .await
    {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(%error, "portal insights failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let labels: Vec<String> = (from_day..to_day)
        .map(|d| UtcMillis::from_millis(d * DAY).to_rfc3339()[..10].to_owned())
        .collect();
    let mut kinds: Vec<String> = insights.daily.iter().map(|(_, k, _)| k.clone()).collect();
    kinds.sort_by_key(|k| {
        (
            Builtin::ALL.iter().position(|b| b.name() == k).unwrap_or(9),
            k.clone(),
        )
    });
    kinds.dedup();
    let series: Vec<(String, Vec<u64>)> = kinds
        .iter()
        .map(|kind| {
            let mut values = vec![0; labels.len()];
            for (day, k, count) in &insights.daily {
                if k == kind && (from_day..to_day).contains(day) {
                    values[(day - from_day) as usize] = *count;
                }
            }
            (type_label(kind), values)
        })
        .collect();
    let total = insights.daily.iter().map(|(_, _, c)| c).sum();
    let shell = shell(&state, &user, "/ui/portals").await;
    render(&PortalPage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        id: portal.id.to_string(),
        name: portal.name.clone(),
        days,
        to: labels.last().cloned().unwrap_or_default(),
        total,
        chart: charts::stacked_bars(&labels, &series),
        top_articles: insights
            .top_articles
            .iter()
            .map(|a| {
                (
                    a.title
                        .clone()
                        .map_or_else(|| a.id.clone(), |t| format!("{t} ({})", a.id)),
                    a.views,
                )
            })
            .collect(),
        top_searches: insights
            .top_searches
            .iter()
            .map(|s| (s.text.clone(), s.count))
            .collect(),
        before_case: insights
            .searches_before_case
            .iter()
            .map(|s| (s.text.clone(), s.count))
            .collect(),
    })
}
