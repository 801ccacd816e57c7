//! Customer sentiment on the pages people work in:
//! - the agent's ongoing conversations with their current sentiment and
//!   its trend, kept current by `/ui/analytics/me/stream`;
//! - the rows of the supervisor's "Turned negative" panel;
//! - `/ui/reports/dissatisfied`: the report of conversations that closed
//!   with a low CSAT or a negative sentiment, with a CSV download.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracklog_domain::audit::UserType;
use tracklog_domain::channel::facts::{SessionFacts, Status};
use tracklog_domain::channel::sentiment::Band;
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;

use super::NavSection;
use super::journeys::{allowed, forbidden, path_segment, shell, short_time};
use super::pages::render;
use super::session::WebUser;
use crate::services::realtime::LIVE_HORIZON_MS;
use crate::services::reports::{self, DissatisfiedParams, DissatisfiedRequest};
use crate::services::selfaudit::Actor;
use crate::state::AppState;

const SUPERVISOR_ROLES: [Role; 2] = [Role::Admin, Role::Supervisor];
const AGENT_ROLES: [Role; 3] = [Role::Admin, Role::Supervisor, Role::Agent];

/// One conversation's sentiment, formatted; also the live streams' rows.
#[derive(Debug, Clone, Serialize)]
pub struct SentimentRow {
    pub id: String,
    pub href: String,
    pub queue: String,
    pub agent: String,
    pub status: &'static str,
    /// "−0.45", or "—" before the first update.
    pub score: String,
    /// "Negative", or "No sentiment yet".
    pub band: &'static str,
    /// The band's code, for the row's colour.
    pub band_code: &'static str,
    /// "↓ falling", "↑ rising" or "→ steady".
    pub trend: &'static str,
    pub since: String,
}

/// A score as people read it, with a true minus sign.
pub fn score_text(score: f64) -> String {
    let text = format!("{score:.2}");
    match text.strip_prefix('-') {
        Some(rest) => format!("\u{2212}{rest}"),
        None => text,
    }
}

pub fn row(facts: &SessionFacts) -> SentimentRow {
    let sentiment = &facts.sentiment;
    let band = sentiment.current_band();
    SentimentRow {
        id: facts.session_id.clone(),
        href: format!("/ui/analytics/sessions/{}", path_segment(&facts.session_id)),
        queue: facts.queue.clone().unwrap_or_default(),
        agent: facts.agent.clone().unwrap_or_default(),
        status: facts.status.code(),
        score: sentiment.current.map_or_else(|| "—".into(), score_text),
        band: band.map_or("No sentiment yet", Band::label),
        band_code: band.map_or("none", Band::code),
        trend: match sentiment.trend() {
            1 => "↑ rising",
            -1 => "↓ falling",
            _ => "→ steady",
        },
        since: facts
            .answered_at
            .or(facts.queued_at)
            .map_or_else(|| "—".into(), |t| short_time(&t.to_rfc3339())),
    }
}

fn ongoing(status: Status) -> bool {
    !matches!(status, Status::Closed)
}

/// The agent's ongoing conversations, the one answered first first.
pub async fn my_conversations(
    state: &AppState,
    user: &WebUser,
    now: UtcMillis,
) -> Result<Vec<SentimentRow>, tracklog_store::StoreError> {
    let since = UtcMillis::from_millis(now.as_millis() - LIVE_HORIZON_MS);
    let live = state.stores.channel.live_sessions(user.org, since).await?;
    let agent = user.name.as_str();
    let mut mine: Vec<&SessionFacts> = live
        .iter()
        .filter(|f| ongoing(f.status) && f.agent.as_deref() == Some(agent))
        .collect();
    mine.sort_by_key(|f| (f.answered_at, f.session_id.clone()));
    Ok(mine.into_iter().map(row).collect())
}

#[derive(Serialize)]
struct MyStreamEvent {
    at: String,
    conversations: Vec<SentimentRow>,
}

/// `/ui/analytics/me/stream`: the signed-in agent's ongoing conversations
/// with their sentiment, a `snapshot` event a second.
#[utoipa::path(get, path = "/ui/analytics/me/stream", tag = "ui", responses((status = 200, description = "text/event-stream of `snapshot` events", content_type = "text/event-stream"), (status = 403, description = "Not an agent, supervisor or admin")))]
pub async fn my_stream(State(state): State<AppState>, user: WebUser) -> Response {
    if !allowed(&user, &AGENT_ROLES) {
        return forbidden("My performance is for agents, supervisors and admins.");
    }
    let stream = futures::stream::unfold(
        (state, user, tokio::time::interval(Duration::from_secs(1))),
        move |(state, user, mut ticker)| async move {
            ticker.tick().await;
            let now = UtcMillis::now();
            let event = match my_conversations(&state, &user, now).await {
                Ok(conversations) => Event::default()
                    .event("snapshot")
                    .json_data(MyStreamEvent {
                        at: short_time(&now.to_rfc3339()),
                        conversations,
                    })
                    .unwrap_or_else(|e| Event::default().event("error").data(e.to_string())),
                Err(e) => Event::default().event("error").data(e.to_string()),
            };
            Some((Ok::<_, Infallible>(event), (state, user, ticker)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn actor(user: &WebUser) -> Actor {
    Actor {
        name: user.name.to_string(),
        user_type: if user.role == Role::Admin {
            UserType::Admin
        } else {
            UserType::Regular
        },
        client_ip: None,
        user_agent: None,
    }
}

/// A row of the report page.
struct ReportRow {
    href: String,
    id: String,
    queue: String,
    agent: String,
    closed: String,
    csat: String,
    sentiment: String,
    band: &'static str,
    reasons: String,
}

#[derive(Template)]
#[template(path = "dissatisfied.html")]
struct ReportPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    from: String,
    to: String,
    queue: String,
    agent: String,
    count: u64,
    rows: Vec<ReportRow>,
    csv_href: String,
    next_href: Option<String>,
    error: Option<String>,
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", path_segment(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `/ui/reports/dissatisfied`: the dissatisfied conversations of a period,
/// for a queue or an agent, each linking to its timeline, with the CSV of
/// the whole report. Opening it is recorded in the activity log.
#[utoipa::path(get, path = "/ui/reports/dissatisfied", tag = "ui", responses((status = 200, description = "The dissatisfied conversations report (HTML), or its CSV with format=csv"), (status = 403, description = "Not a supervisor or admin")))]
pub async fn dissatisfied_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(params): Query<DissatisfiedParams>,
) -> Response {
    if !allowed(&user, &SUPERVISOR_ROLES) {
        return forbidden("The dissatisfied conversations report is for supervisors and admins.");
    }
    let now = UtcMillis::now();
    let shell = shell(&state, &user, "/ui/reports/dissatisfied").await;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut page = ReportPage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        from: text(&params.from),
        to: text(&params.to),
        queue: text(&params.queue),
        agent: text(&params.agent),
        count: 0,
        rows: Vec::new(),
        csv_href: String::new(),
        next_href: None,
        error: None,
    };
    let request = match DissatisfiedRequest::parse(&params, now) {
        Ok(request) => request,
        Err(error) => {
            page.error = Some(format!("{} {}", error.field, error.message));
            return render(&page);
        }
    };
    page.from = request.from.to_rfc3339();
    page.to = request.to.to_rfc3339();
    let filters = |extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("from", page.from.as_str()),
            ("to", page.to.as_str()),
            ("queue", page.queue.as_str()),
            ("agent", page.agent.as_str()),
        ];
        pairs.extend_from_slice(extra);
        query_string(&pairs)
    };
    page.csv_href = format!("/ui/reports/dissatisfied?{}", filters(&[("format", "csv")]));
    let actor = actor(&user);
    if params.format.as_deref() == Some("csv") {
        return match reports::dissatisfied_csv(&state.stores, user.org, &actor, &request).await {
            Ok(csv) => (
                [
                    (CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        CONTENT_DISPOSITION,
                        "attachment; filename=\"dissatisfied-conversations.csv\"",
                    ),
                ],
                csv,
            )
                .into_response(),
            Err(error) => {
                page.error = Some(error.to_string());
                render(&page)
            }
        };
    }
    match reports::dissatisfied(&state.stores, user.org, &actor, &request).await {
        Ok(report) => {
            page.count = report.count;
            page.next_href = report.next_cursor.as_deref().map(|cursor| {
                format!(
                    "/ui/reports/dissatisfied?{}",
                    filters(&[("cursor", cursor)])
                )
            });
            page.rows = report
                .items
                .into_iter()
                .map(|s| ReportRow {
                    href: s.timeline,
                    id: s.session_id,
                    queue: s.queue.unwrap_or_default(),
                    agent: s.agent.unwrap_or_default(),
                    closed: s.closed_at.as_deref().map(short_time).unwrap_or_default(),
                    csat: s.csat.map_or_else(|| "—".into(), |c| c.to_string()),
                    sentiment: s.closing_sentiment.map_or_else(|| "—".into(), score_text),
                    band: s
                        .closing_band
                        .as_deref()
                        .and_then(Band::parse)
                        .map_or("—", Band::label),
                    reasons: s
                        .reasons
                        .iter()
                        .map(|r| match *r {
                            "csat" => "CSAT of 2 or less",
                            _ => "negative at close",
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                })
                .collect();
        }
        Err(error) => page.error = Some(error.to_string()),
    }
    render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_read_with_a_minus_sign() {
        assert_eq!(score_text(-0.456), "\u{2212}0.46");
        assert_eq!(score_text(0.5), "0.50");
    }
}
