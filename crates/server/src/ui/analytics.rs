//! The contact centre's pages: the supervisor's live view (with its
//! drill-down to sessions and a session's event timeline), the manager's
//! history with forecast and staffing, and an agent's own performance.
//!
//! Every figure comes from the channel analytics services, so a page shows
//! what `POST /api/v1/metrics/query`, `/api/v1/realtime` and
//! `/api/v1/forecast` answer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracklog_domain::channel::facts::{self, SessionFacts, Status};
use tracklog_domain::channel::interval::{self, Interval};
use tracklog_domain::channel::metrics::{self, Dimension};
use tracklog_domain::channel::series::Series;
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;
use tracklog_store::{FactTime, FactsQuery};

use super::NavSection;
use super::charts::{self, Lane, LineSeries, Mark};
use super::journeys::{allowed, forbidden, not_found, path_segment, shell, short_time};
use super::pages::render;
use super::session::WebUser;
use crate::services::analytics::{
    self as service, DrilldownRequest, MetricsAnswer, MetricsQuery, MetricsRequest, OneOrMany,
};
use crate::services::forecast::{self, ForecastParams};
use crate::services::realtime::{self, Snapshot};
use crate::state::AppState;

const SUPERVISOR_ROLES: [Role; 2] = [Role::Admin, Role::Supervisor];
const AGENT_ROLES: [Role; 3] = [Role::Admin, Role::Supervisor, Role::Agent];
const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

// ---- numbers for people ----------------------------------------------------------------

/// Seconds for people: `45 s`, `1 m 05 s`, `2 h 03 m 09 s`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "—".into();
    }
    let total = seconds.max(0.0).round() as i64;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    if h > 0 {
        format!("{h} h {m:02} m {s:02} s")
    } else if m > 0 {
        format!("{m} m {s:02} s")
    } else {
        format!("{s} s")
    }
}

/// A ratio as a percentage with one decimal: `0.8333` → `83.3 %`.
pub fn percent(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{:.1} %", ratio * 100.0)
    } else {
        "—".into()
    }
}

/// A metric's value in its unit (`seconds`, `ratio`, `score`, `count`);
/// `—` when there is nothing to compute it over.
pub fn figure(unit: &str, value: Option<f64>) -> String {
    let Some(value) = value.filter(|v| v.is_finite()) else {
        return "—".into();
    };
    match unit {
        "seconds" => duration(value),
        "ratio" => percent(value),
        "score" => format!("{value:.2}"),
        _ if value.fract() == 0.0 => format!("{value:.0}"),
        _ => format!("{value:.1}"),
    }
}

fn unit_of(metric: &str) -> &'static str {
    metrics::metric(metric).map_or("count", |m| m.unit)
}

/// The value of an ungrouped series' first point.
fn first_value(answer: &MetricsAnswer, metric: &str) -> Option<f64> {
    answer
        .series
        .iter()
        .find(|s| s.metric == metric && s.group.is_empty())
        .and_then(|s| s.points.first())
        .and_then(|p| p.value)
}

/// Count-weighted mean of a series' points: the figure over all of them,
/// for means (AHT, CSAT) whose points each average `count` items.
fn overall(series: Option<&Series>) -> (Option<f64>, i64) {
    let Some(series) = series else {
        return (None, 0);
    };
    let (sum, count) = series
        .points
        .iter()
        .filter_map(|p| p.value.map(|v| (v, p.count)))
        .fold((0.0, 0), |(sum, n), (v, c)| (sum + v * c as f64, n + c));
    ((count > 0).then(|| sum / count as f64), count)
}

/// `2026-03-01T09:00:00+01:00` → `03-01 09:00` (or `03-01` for days and
/// weeks), on the zone's clock.
fn interval_label(local: &str, size: Interval) -> String {
    match size {
        Interval::D1 | Interval::W1 => local.get(5..10).unwrap_or(local).to_owned(),
        _ => format!(
            "{} {}",
            local.get(5..10).unwrap_or_default(),
            local.get(11..16).unwrap_or_default()
        ),
    }
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", path_segment(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::response::Html(format!(
            "<!doctype html><meta charset=utf-8><title>Analytics</title><p>{}</p><p><a href=\"/\">Back</a></p>",
            charts::escape(message)
        )),
    )
        .into_response()
}

// ---- live -------------------------------------------------------------------------------

/// The interval figures of the live view: the current 15 minutes, in UTC.
const LIVE_METRICS: [&str; 3] = ["service_level", "asa", "abandon_rate"];

fn live_base() -> MetricsQuery {
    MetricsQuery {
        metrics: LIVE_METRICS
            .iter()
            .filter_map(|name| metrics::metric(name))
            .collect(),
        from: UtcMillis::from_millis(0),
        to: UtcMillis::from_millis(1),
        interval: Interval::M15,
        tz: jiff::tz::TimeZone::UTC,
        tz_name: "UTC".into(),
        group_by: Vec::new(),
        filters: Vec::new(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueRow {
    pub queue: String,
    pub waiting: usize,
    pub active: usize,
    pub wrapping_up: usize,
    pub longest_wait: String,
}

/// What the live page shows, formatted; also each stream event's data.
#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    pub at: String,
    pub waiting: String,
    pub active: String,
    pub wrapping_up: String,
    pub longest_wait: String,
    pub agents_busy: String,
    pub agents_signed_in: String,
    pub service_level: String,
    pub asa: String,
    pub abandon_rate: String,
    /// The current interval's start, for the drill-down links.
    pub interval_start: String,
    pub queues: Vec<QueueRow>,
    /// Ongoing conversations whose sentiment turned negative.
    pub negative: Vec<super::sentiment::SentimentRow>,
}

pub fn live_view(snapshot: &Snapshot) -> LiveView {
    let current = |metric: &str| figure(unit_of(metric), first_value(&snapshot.current, metric));
    LiveView {
        at: short_time(&snapshot.at.to_rfc3339()),
        waiting: snapshot.waiting.to_string(),
        active: snapshot.active.to_string(),
        wrapping_up: snapshot.wrapping_up.to_string(),
        longest_wait: duration(snapshot.longest_wait_seconds),
        agents_busy: snapshot.agents_busy.to_string(),
        agents_signed_in: snapshot.agents_signed_in.to_string(),
        service_level: current("service_level"),
        asa: current("asa"),
        abandon_rate: current("abandon_rate"),
        interval_start: snapshot
            .current
            .intervals
            .first()
            .and_then(|i| i["start"].as_str())
            .unwrap_or_default()
            .to_owned(),
        queues: snapshot
            .queues
            .iter()
            .map(|q| QueueRow {
                queue: if q.queue.is_empty() {
                    "(no queue)".into()
                } else {
                    q.queue.clone()
                },
                waiting: q.waiting,
                active: q.active,
                wrapping_up: q.wrapping_up,
                longest_wait: duration(q.longest_wait_seconds),
            })
            .collect(),
        negative: snapshot
            .turned_negative
            .iter()
            .map(super::sentiment::row)
            .collect(),
    }
}

struct AlertRow {
    metric: String,
    state: String,
    value: String,
    threshold: String,
    started: String,
}

#[derive(Template)]
#[template(path = "analytics_live.html")]
struct LivePage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    v: LiveView,
    alerts: Vec<AlertRow>,
    drill_interval: String,
}

/// `/ui/analytics/live`: live tiles, queues and open alerts, kept current
/// by `/ui/analytics/live/stream`.
#[utoipa::path(get, path = "/ui/analytics/live", tag = "ui", responses((status = 200, description = "The live view (HTML)"), (status = 403, description = "Not a supervisor or admin")))]
pub async fn live_page(State(state): State<AppState>, user: WebUser) -> Response {
    if !allowed(&user, &SUPERVISOR_ROLES) {
        return forbidden("The live view is for supervisors and admins.");
    }
    let snapshot =
        match realtime::snapshot(&state.stores, user.org, &live_base(), UtcMillis::now()).await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::error!(%error, "live snapshot failed");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        };
    let alerts = state
        .stores
        .channel
        .alerts(user.org, true, 50)
        .await
        .unwrap_or_default();
    let v = live_view(&snapshot);
    let shell = shell(&state, &user, "/ui/analytics/live").await;
    render(&LivePage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        drill_interval: query_string(&[("start", &v.interval_start), ("interval", "15m")]),
        v,
        alerts: alerts
            .iter()
            .map(|a| {
                let unit = unit_of(&a.metric);
                AlertRow {
                    metric: metrics::metric(&a.metric)
                        .map_or_else(|| a.metric.clone(), |m| m.display_name.to_owned()),
                    state: a.state.clone(),
                    value: figure(unit, a.value.or(a.projected)),
                    threshold: figure(unit, Some(a.threshold)),
                    started: short_time(&a.started_at.to_rfc3339()),
                }
            })
            .collect(),
    })
}

/// `/ui/analytics/live/stream`: Server-Sent Events for the live page, a
/// `snapshot` event a second with the figures already formatted. Unlike
/// `/api/v1/realtime` it takes the browser's sign-in, not an API credential.
#[utoipa::path(get, path = "/ui/analytics/live/stream", tag = "ui", responses((status = 200, description = "text/event-stream of `snapshot` events", content_type = "text/event-stream"), (status = 403, description = "Not a supervisor or admin")))]
pub async fn live_stream(State(state): State<AppState>, user: WebUser) -> Response {
    if !allowed(&user, &SUPERVISOR_ROLES) {
        return forbidden("The live view is for supervisors and admins.");
    }
    let org = user.org;
    let stream = futures::stream::unfold(
        (
            state,
            live_base(),
            tokio::time::interval(Duration::from_secs(1)),
        ),
        move |(state, base, mut ticker)| async move {
            ticker.tick().await;
            let event = match realtime::snapshot(&state.stores, org, &base, UtcMillis::now()).await
            {
                Ok(snapshot) => Event::default()
                    .event("snapshot")
                    .json_data(live_view(&snapshot))
                    .unwrap_or_else(|e| Event::default().event("error").data(e.to_string())),
                Err(e) => Event::default().event("error").data(e.to_string()),
            };
            Some((Ok::<_, Infallible>(event), (state, base, ticker)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

// ---- drill-down and one session -------------------------------------------------------

pub struct SessionRow {
    pub id: String,
    pub href: String,
    pub queue: String,
    pub agent: String,
    pub queued: String,
    pub answered: String,
    pub closed: String,
    pub wait: String,
    pub handle: String,
    pub status: &'static str,
    /// In the figure's numerator (answered in time, abandoned...), when the
    /// metric has one.
    pub counted: String,
}

fn time_or_dash(at: Option<UtcMillis>) -> String {
    at.map_or_else(|| "—".into(), |t| short_time(&t.to_rfc3339()))
}

fn session_row(f: &SessionFacts, counted: Option<bool>, now: UtcMillis) -> SessionRow {
    let wait_end = f.answered_at.or(f.closed_at).unwrap_or(now);
    SessionRow {
        id: f.session_id.clone(),
        href: format!("/ui/analytics/sessions/{}", path_segment(&f.session_id)),
        queue: f.queue.clone().unwrap_or_default(),
        agent: f.agent.clone().unwrap_or_default(),
        queued: time_or_dash(f.queued_at),
        answered: time_or_dash(f.answered_at),
        closed: time_or_dash(f.closed_at),
        wait: f.queued_at.map_or_else(
            || "—".into(),
            |q| duration((wait_end.as_millis() - q.as_millis()) as f64 / 1000.0),
        ),
        handle: f
            .handle_ms
            .map_or_else(|| "—".into(), |ms| duration(ms as f64 / 1000.0)),
        status: f.status.code(),
        counted: counted.map_or_else(String::new, |c| if c { "yes" } else { "no" }.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DrillParams {
    /// A live count: `waiting`, `active` or `wrapping_up`.
    pub status: Option<String>,
    /// Or a metric's figure: the metric and its interval's start.
    pub metric: Option<String>,
    pub start: Option<String>,
    pub interval: Option<String>,
    pub timezone: Option<String>,
    pub queue: Option<String>,
    pub channel: Option<String>,
    pub agent: Option<String>,
    pub provider: Option<String>,
}

#[derive(Template)]
#[template(path = "analytics_drill.html")]
struct DrillPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    title: String,
    subtitle: String,
    has_numerator: bool,
    rows: Vec<SessionRow>,
}

/// `/ui/analytics/drilldown`: the sessions behind a live count
/// (`?status=waiting`) or behind a metric's figure (`?metric=&start=`).
#[utoipa::path(get, path = "/ui/analytics/drilldown", tag = "ui", responses((status = 200, description = "The sessions behind a figure (HTML)")))]
pub async fn drill_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(params): Query<DrillParams>,
) -> Response {
    if !allowed(&user, &SUPERVISOR_ROLES) {
        return forbidden("Drill-down is for supervisors and admins.");
    }
    let now = UtcMillis::now();
    let group: BTreeMap<String, String> = [
        ("queue", &params.queue),
        ("channel", &params.channel),
        ("agent", &params.agent),
        ("provider", &params.provider),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
    .collect();
    let scope = group
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (title, subtitle, has_numerator, rows) = if let Some(status) = params.status.as_deref() {
        let wanted = match status {
            "waiting" => Status::Waiting,
            "active" => Status::Active,
            "wrapping_up" => Status::WrappingUp,
            _ => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "status must be waiting, active or wrapping_up",
                );
            }
        };
        let live = match state
            .stores
            .channel
            .live_sessions(
                user.org,
                UtcMillis::from_millis(now.as_millis() - realtime::LIVE_HORIZON_MS),
            )
            .await
        {
            Ok(live) => live,
            Err(error) => {
                tracing::error!(%error, "live sessions failed");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        };
        let rows: Vec<SessionRow> = live
            .iter()
            .filter(|f| f.status == wanted)
            .filter(|f| {
                params
                    .queue
                    .as_ref()
                    .is_none_or(|q| f.queue.as_deref() == Some(q.as_str()))
            })
            .map(|f| session_row(f, None, now))
            .collect();
        (
            format!("Sessions {} now", status.replace('_', " ")),
            if scope.is_empty() {
                "Every queue".to_owned()
            } else {
                scope
            },
            false,
            rows,
        )
    } else {
        let (Some(metric), Some(start)) = (params.metric.clone(), params.start.clone()) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "a status, or a metric and a start, are needed",
            );
        };
        let answer = match service::drilldown(
            &state.stores,
            user.org,
            DrilldownRequest {
                metric: metric.clone(),
                start,
                interval: params.interval.clone(),
                timezone: params.timezone.clone(),
                group: Some(group),
                filters: None,
                limit: Some(1000),
            },
        )
        .await
        {
            Ok(answer) => answer,
            Err(crate::services::ServiceError::Invalid(error)) => {
                return error_page(StatusCode::BAD_REQUEST, &error.to_string());
            }
            Err(error) => {
                tracing::error!(%error, "drill-down failed");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        };
        let sessions = answer["sessions"].as_array().cloned().unwrap_or_default();
        let has_numerator = sessions.iter().any(|s| s.get("in_numerator").is_some());
        let rows = sessions
            .iter()
            .filter_map(|s| {
                let facts: SessionFacts = serde_json::from_value(s.clone()).ok()?;
                Some(session_row(&facts, s["in_numerator"].as_bool(), now))
            })
            .collect();
        let name = metrics::metric(&metric).map_or(metric.clone(), |m| m.display_name.to_owned());
        let when = format!(
            "{} to {}",
            short_time(answer["start"].as_str().unwrap_or_default()),
            short_time(answer["end"].as_str().unwrap_or_default())
        );
        (
            format!("{name}: the sessions behind the figure"),
            if scope.is_empty() {
                when
            } else {
                format!("{when}, {scope}")
            },
            has_numerator,
            rows,
        )
    };
    let shell = shell(&state, &user, "/ui/analytics/live").await;
    render(&DrillPage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        title,
        subtitle,
        has_numerator,
        rows,
    })
}

struct EventRow {
    time: String,
    name: String,
    participant: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "analytics_session.html")]
struct SessionPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    id: String,
    conversation: String,
    properties: Vec<(&'static str, String)>,
    chart: String,
    events: Vec<EventRow>,
}

fn event_detail(event: &tracklog_domain::channel::payload::KpiEvent) -> String {
    let mut parts = Vec::new();
    if let Some(action) = &event.notification_response_action {
        parts.push(action.clone());
    }
    if let Some(reason) = &event.kpi_event_reason {
        parts.push(reason.clone());
    }
    if let Some(score) = event.score() {
        parts.push(format!("score {score}"));
    }
    parts.join(" · ")
}

/// `/ui/analytics/sessions/{id}`: a session's facts and its KPI events on
/// a timeline, one lane per event kind.
#[utoipa::path(get, path = "/ui/analytics/sessions/{id}", tag = "ui", params(("id" = String, Path)), responses((status = 200, description = "The session (HTML)"), (status = 404, description = "No such session")))]
pub async fn session_page(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Response {
    if !allowed(&user, &SUPERVISOR_ROLES) {
        return forbidden("Sessions are for supervisors and admins.");
    }
    let detail = match state.stores.channel.session(user.org, &id).await {
        Ok(Some(detail)) => detail,
        Ok(None) => return not_found("There is no such session."),
        Err(error) => {
            tracing::error!(%error, "session failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let events = facts::sorted(&detail.events);
    let now = UtcMillis::now();
    let f = detail.facts.as_ref();
    let mut properties: Vec<(&'static str, String)> = vec![
        ("Queue", f.and_then(|f| f.queue.clone()).unwrap_or_default()),
        (
            "Channel",
            f.and_then(|f| f.channel.clone()).unwrap_or_default(),
        ),
        (
            "Provider",
            f.and_then(|f| f.provider.clone()).unwrap_or_default(),
        ),
        ("Agent", f.and_then(|f| f.agent.clone()).unwrap_or_default()),
        ("Status", f.map_or("", |f| f.status.code()).to_owned()),
    ];
    if let Some(f) = f {
        let row = session_row(f, None, now);
        properties.extend([
            ("Queued", row.queued),
            ("Answered", row.answered),
            ("Closed", row.closed),
            ("Wait", row.wait),
            ("Handle time", row.handle),
            ("Hold", duration(f.hold_ms as f64 / 1000.0)),
            ("Wrap-up", duration(f.wrap_ms as f64 / 1000.0)),
            (
                "Talk",
                f.talk_ms
                    .map_or_else(|| "—".into(), |ms| duration(ms as f64 / 1000.0)),
            ),
            ("Abandoned", if f.abandoned { "yes" } else { "no" }.into()),
            (
                "Short abandon",
                if f.short_abandon { "yes" } else { "no" }.into(),
            ),
            (
                "Answered within the service level",
                if f.answered_within_sl { "yes" } else { "no" }.into(),
            ),
            (
                "Transferred",
                if f.transferred { "yes" } else { "no" }.into(),
            ),
        ]);
    }
    // Lanes in the order their kinds first happened.
    let mut kinds: Vec<&str> = Vec::new();
    for event in &events {
        if !kinds.contains(&event.kpi_event_name.as_str()) {
            kinds.push(&event.kpi_event_name);
        }
    }
    let lanes: Vec<Lane> = kinds
        .iter()
        .map(|kind| {
            let marks: Vec<Mark> = events
                .iter()
                .filter(|e| e.kpi_event_name == *kind)
                .map(|e| Mark {
                    at_ms: e.event_timestamp.as_millis(),
                    title: format!(
                        "{} · {}{}",
                        short_time(&e.event_timestamp.to_rfc3339()),
                        kind,
                        match event_detail(e) {
                            d if d.is_empty() => String::new(),
                            d => format!(" ({d})"),
                        }
                    ),
                    emphasised: false,
                })
                .collect();
            Lane {
                label: format!("{kind} ({})", marks.len()),
                marks,
            }
        })
        .collect();
    let times: Vec<i64> = events
        .iter()
        .map(|e| e.event_timestamp.as_millis())
        .chain(f.and_then(|f| f.queued_at).map(UtcMillis::as_millis))
        .chain(f.and_then(|f| f.answered_at).map(UtcMillis::as_millis))
        .collect();
    let closed = f.and_then(|f| f.closed_at).map(UtcMillis::as_millis);
    let start = times.iter().copied().min().unwrap_or(now.as_millis());
    let end = closed
        .into_iter()
        .chain(times.iter().copied())
        .max()
        .unwrap_or(now.as_millis());
    let end = end.max(start + 1000);
    let chart = charts::timeline(
        start,
        end,
        &lanes,
        if closed.is_some() {
            "closed"
        } else {
            "last activity"
        },
    );
    let shell = shell(&state, &user, "/ui/analytics/live").await;
    render(&SessionPage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        id: detail.session.provider_session_id.clone(),
        conversation: detail.session.conversation_id.clone(),
        properties,
        chart,
        events: events
            .iter()
            .map(|e| EventRow {
                time: short_time(&e.event_timestamp.to_rfc3339()),
                name: e.kpi_event_name.clone(),
                participant: e.participant_id.clone().unwrap_or_default(),
                detail: event_detail(e),
            })
            .collect(),
    })
}

// ---- history, forecast and staffing ---------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct HistoryParams {
    pub metric: Option<String>,
    /// queue, channel, agent, provider or none.
    pub group_by: Option<String>,
    pub interval: Option<String>,
    pub days: Option<i64>,
    pub timezone: Option<String>,
    /// The forecast's queue; every queue together when empty.
    pub queue: Option<String>,
    /// Weeks of history the forecast fits on.
    pub weeks: Option<u32>,
}

pub struct HistoryTable {
    pub groups: Vec<String>,
    /// (interval label, one (value, drill-down link) per group).
    pub rows: Vec<(String, Vec<(String, String)>)>,
}

pub struct ForecastView {
    pub error: Option<String>,
    pub model: String,
    pub mape: String,
    pub aht: String,
    pub backtest_chart: String,
    pub backtest_points: usize,
    pub next_chart: String,
    pub staffing_chart: String,
    /// Per day: date, forecast conversations, peak agents, agent hours.
    pub staffing: Vec<(String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "analytics_history.html")]
struct HistoryPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    metrics: Vec<(&'static str, &'static str, bool)>,
    groups: Vec<(&'static str, bool)>,
    intervals: Vec<(&'static str, bool)>,
    group_by: String,
    interval: String,
    days: i64,
    timezone: String,
    queue: String,
    weeks: u32,
    metric_name: String,
    error: Option<String>,
    chart: String,
    table: HistoryTable,
    forecast: ForecastView,
}

fn history_view(
    answer: &MetricsAnswer,
    query: &MetricsQuery,
    metric: &str,
    group_by: Option<Dimension>,
) -> (String, HistoryTable) {
    let unit = unit_of(metric);
    let labels: Vec<String> = answer
        .intervals
        .iter()
        .map(|i| {
            interval_label(
                i["local_start"].as_str().unwrap_or_default(),
                query.interval,
            )
        })
        .collect();
    let series: Vec<&Series> = answer
        .series
        .iter()
        .filter(|s| s.metric == metric)
        .collect();
    let group_name = |s: &Series| match group_by {
        Some(d) => match s.group.get(d.code()).map(String::as_str) {
            Some("") | None => format!("(no {})", d.code()),
            Some(v) => v.to_owned(),
        },
        None => metrics::metric(metric).map_or(metric.to_owned(), |m| m.display_name.to_owned()),
    };
    let scale = if unit == "ratio" { 100.0 } else { 1.0 };
    let lines: Vec<LineSeries> = series
        .iter()
        .map(|s| LineSeries {
            name: group_name(s),
            values: s
                .points
                .iter()
                .map(|p| p.value.map(|v| v * scale))
                .collect(),
            dashed: false,
        })
        .collect();
    let y_label = metrics::metric(metric).map_or_else(
        || metric.to_owned(),
        |m| match unit {
            "ratio" => format!("{} (%)", m.display_name),
            "seconds" => format!("{} (s)", m.display_name),
            _ => m.display_name.to_owned(),
        },
    );
    let format = |v: f64| match unit {
        "ratio" => format!("{v:.0} %"),
        "seconds" => duration(v),
        "score" => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    };
    let chart = charts::line_chart(&labels, &lines, None, &y_label, &format);
    let rows = answer
        .intervals
        .iter()
        .enumerate()
        .map(|(i, interval)| {
            let start = interval["start"].as_str().unwrap_or_default();
            let cells = series
                .iter()
                .map(|s| {
                    let value = s.points.get(i).and_then(|p| p.value);
                    let mut pairs = vec![
                        ("metric", metric),
                        ("start", start),
                        ("interval", query.interval.code()),
                        ("timezone", query.tz_name.as_str()),
                    ];
                    for (k, v) in &s.group {
                        pairs.push((k.as_str(), v.as_str()));
                    }
                    (
                        figure(unit, value),
                        format!("/ui/analytics/drilldown?{}", query_string(&pairs)),
                    )
                })
                .collect();
            (labels[i].clone(), cells)
        })
        .collect();
    (
        chart,
        HistoryTable {
            groups: lines.into_iter().map(|l| l.name).collect(),
            rows,
        },
    )
}

fn forecast_view(answer: Result<Value, String>, tz: &jiff::tz::TimeZone) -> ForecastView {
    let empty = |error: String| ForecastView {
        error: Some(error),
        model: String::new(),
        mape: String::new(),
        aht: String::new(),
        backtest_chart: String::new(),
        backtest_points: 0,
        next_chart: String::new(),
        staffing_chart: String::new(),
        staffing: Vec::new(),
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return empty(error),
    };
    let size = Interval::parse(answer["interval"].as_str().unwrap_or("1h")).unwrap_or(Interval::H1);
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect())
            .unwrap_or_default()
    };
    let count_format = |v: f64| format!("{v:.1}");
    // The backtest holds out the last week of history: its intervals end
    // where the history ends.
    let backtest = &answer["backtest"];
    let (backtest_chart, backtest_points, mape) = if backtest.is_object() {
        let predicted = numbers(&backtest["forecast"]);
        let actual = numbers(&backtest["actual"]);
        let end = answer["history"]["to"]
            .as_str()
            .and_then(|t| UtcMillis::parse_rfc3339(t).ok())
            .map_or(0, UtcMillis::as_millis);
        let n = actual.len();
        let labels: Vec<String> = (0..n)
            .map(|i| {
                let at = UtcMillis::from_millis(end - (n - i) as i64 * size.nominal_ms());
                interval_label(&interval::local_rfc3339(at, tz), size)
            })
            .collect();
        let chart = charts::line_chart(
            &labels,
            &[
                LineSeries {
                    name: "Actual".into(),
                    values: actual.into_iter().map(Some).collect(),
                    dashed: false,
                },
                LineSeries {
                    name: "Forecast".into(),
                    values: predicted.into_iter().map(Some).collect(),
                    dashed: true,
                },
            ],
            None,
            "Conversations offered",
            &count_format,
        );
        (
            chart,
            n,
            backtest["mape_percent"]
                .as_f64()
                .map_or_else(|| "—".into(), |m| format!("{m:.1} %")),
        )
    } else {
        (String::new(), 0, "—".into())
    };
    let points = answer["points"].as_array().cloned().unwrap_or_default();
    let labels: Vec<String> = points
        .iter()
        .map(|p| interval_label(p["local_start"].as_str().unwrap_or_default(), size))
        .collect();
    let value = |p: &Value, key: &str| p[key].as_f64();
    let lower: Vec<f64> = points
        .iter()
        .map(|p| value(p, "lower").unwrap_or(0.0))
        .collect();
    let upper: Vec<f64> = points
        .iter()
        .map(|p| value(p, "upper").unwrap_or(0.0))
        .collect();
    let next_chart = charts::line_chart(
        &labels,
        &[LineSeries {
            name: "Forecast".into(),
            values: points.iter().map(|p| value(p, "forecast")).collect(),
            dashed: false,
        }],
        Some((&lower, &upper)),
        "Conversations offered",
        &count_format,
    );
    let staffing_chart = charts::line_chart(
        &labels,
        &[LineSeries {
            name: "Agents needed".into(),
            values: points.iter().map(|p| value(p, "agents")).collect(),
            dashed: false,
        }],
        None,
        "Agents",
        &|v| format!("{v:.0}"),
    );
    let hours = size.nominal_ms() as f64 / HOUR_MS as f64;
    let mut days: BTreeMap<String, (f64, u64, f64)> = BTreeMap::new();
    for p in &points {
        let day = p["local_start"]
            .as_str()
            .unwrap_or_default()
            .get(..10)
            .unwrap_or_default()
            .to_owned();
        let entry = days.entry(day).or_default();
        entry.0 += value(p, "forecast").unwrap_or(0.0);
        let agents = p["agents"].as_u64().unwrap_or(0);
        entry.1 = entry.1.max(agents);
        entry.2 += agents as f64 * hours;
    }
    ForecastView {
        error: None,
        model: answer["model"]
            .as_str()
            .unwrap_or_default()
            .replace('_', " "),
        mape,
        aht: duration(answer["history"]["aht_seconds"].as_f64().unwrap_or(0.0)),
        backtest_chart,
        backtest_points,
        next_chart,
        staffing_chart,
        staffing: days
            .into_iter()
            .map(|(day, (calls, peak, agent_hours))| {
                (
                    day,
                    format!("{calls:.0}"),
                    peak.to_string(),
                    format!("{agent_hours:.1}"),
                )
            })
            .collect(),
    }
}

const HISTORY_METRICS: [&str; 9] = [
    "conversations_offered",
    "service_level",
    "asa",
    "abandon_rate",
    "aht",
    "hold_time",
    "transfer_rate",
    "csat",
    "occupancy",
];

/// `/ui/analytics/history`: a metric over time per group, its values, the
/// forecast against what happened, and the staffing the next week needs.
#[utoipa::path(get, path = "/ui/analytics/history", tag = "ui", responses((status = 200, description = "History, forecast and staffing (HTML)")))]
pub async fn history_page(
    State(state): State<AppState>,
    user: WebUser,
    Query(params): Query<HistoryParams>,
) -> Response {
    if !allowed(&user, &SUPERVISOR_ROLES) {
        return forbidden("History is for supervisors and admins.");
    }
    let metric = params
        .metric
        .filter(|m| HISTORY_METRICS.contains(&m.as_str()))
        .unwrap_or_else(|| "conversations_offered".into());
    let group_text = params.group_by.unwrap_or_else(|| "none".into());
    let group_by = Dimension::parse(&group_text);
    let interval_text = params
        .interval
        .filter(|i| Interval::parse(i).is_some())
        .unwrap_or_else(|| "1h".into());
    let days = params.days.unwrap_or(7).clamp(1, 366);
    let timezone = params
        .timezone
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "UTC".into());
    let queue = params
        .queue
        .map(|q| q.trim().to_owned())
        .unwrap_or_default();
    let weeks = params.weeks.unwrap_or(4).clamp(1, 26);
    let now = UtcMillis::now();
    let request = MetricsRequest {
        metrics: Some(OneOrMany::One(metric.clone())),
        from: Some(UtcMillis::from_millis(now.as_millis() - days * DAY_MS).to_rfc3339()),
        to: Some(now.to_rfc3339()),
        interval: Some(interval_text.clone()),
        timezone: Some(timezone.clone()),
        group_by: group_by.map(|d| OneOrMany::One(d.code().to_owned())),
        filters: None,
    };
    let mut error = None;
    let (chart, table) = match MetricsQuery::parse(request, now) {
        Ok(query) => match service::query_metrics(&state.stores, user.org, &query).await {
            Ok(answer) => history_view(&answer, &query, &metric, group_by),
            Err(e) => {
                error = Some(e.to_string());
                (
                    String::new(),
                    HistoryTable {
                        groups: Vec::new(),
                        rows: Vec::new(),
                    },
                )
            }
        },
        Err(e) => {
            error = Some(e.to_string());
            (
                String::new(),
                HistoryTable {
                    groups: Vec::new(),
                    rows: Vec::new(),
                },
            )
        }
    };
    let tz = interval::zone(&timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let forecast_interval = match Interval::parse(&interval_text) {
        Some(i @ (Interval::M15 | Interval::M30 | Interval::H1)) => i,
        _ => Interval::H1,
    };
    let forecast = forecast_view(
        forecast::forecast(
            &state.stores,
            user.org,
            ForecastParams {
                queue: (!queue.is_empty()).then(|| queue.clone()),
                interval: Some(forecast_interval.code().into()),
                weeks: Some(weeks),
                timezone: Some(timezone.clone()),
                ..ForecastParams::default()
            },
            now,
        )
        .await
        .map_err(|e| e.to_string()),
        &tz,
    );
    let shell = shell(&state, &user, "/ui/analytics/history").await;
    render(&HistoryPage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        metric_name: metrics::metric(&metric).map_or(metric.clone(), |m| m.display_name.to_owned()),
        metrics: HISTORY_METRICS
            .iter()
            .filter_map(|name| metrics::metric(name))
            .map(|m| (m.name, m.display_name, m.name == metric))
            .collect(),
        groups: ["none", "queue", "channel", "agent", "provider"]
            .iter()
            .map(|g| (*g, *g == group_by.map_or("none", Dimension::code)))
            .collect(),
        intervals: ["15m", "30m", "1h", "1d", "1w"]
            .iter()
            .map(|i| (*i, *i == interval_text))
            .collect(),
        group_by: group_by.map_or("none", Dimension::code).to_owned(),
        interval: interval_text,
        days,
        timezone,
        queue,
        weeks,
        error,
        chart,
        table,
        forecast,
    })
}

// ---- an agent's own performance -------------------------------------------------------

/// Cumulative work of one day: at each label, the sessions assigned so far,
/// closed so far, and remaining (assigned − closed).
pub struct Burndown {
    pub labels: Vec<String>,
    pub assigned: Vec<f64>,
    pub closed: Vec<f64>,
    pub remaining: Vec<f64>,
}

/// The burndown from `day_start` to `now`, one point an hour and one at
/// `now`: pure, for tests and the page.
pub fn burndown(facts: &[SessionFacts], day_start: UtcMillis, now: UtcMillis) -> Burndown {
    let mut ends: Vec<i64> = (0..)
        .map(|h| day_start.as_millis() + h * HOUR_MS)
        .take_while(|t| *t < now.as_millis())
        .collect();
    ends.push(now.as_millis());
    let upto = |at: Option<UtcMillis>, end: i64| at.is_some_and(|t| t.as_millis() <= end);
    let mut out = Burndown {
        labels: Vec::new(),
        assigned: Vec::new(),
        closed: Vec::new(),
        remaining: Vec::new(),
    };
    for (i, end) in ends.iter().enumerate() {
        let assigned = facts.iter().filter(|f| upto(f.answered_at, *end)).count();
        let closed = facts
            .iter()
            .filter(|f| upto(f.answered_at, *end) && upto(f.closed_at, *end))
            .count();
        let clock = UtcMillis::from_millis(*end).to_rfc3339();
        out.labels.push(if i + 1 == ends.len() {
            format!("now {}", clock.get(11..16).unwrap_or_default())
        } else {
            clock.get(11..16).unwrap_or_default().to_owned()
        });
        out.assigned.push(assigned as f64);
        out.closed.push(closed as f64);
        out.remaining.push((assigned - closed) as f64);
    }
    out
}

#[derive(Template)]
#[template(path = "analytics_me.html")]
struct MePage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    agent: String,
    csat_today: String,
    csat_week: String,
    csat_today_count: i64,
    csat_week_count: i64,
    aht_today: String,
    aht_week: String,
    aht_today_count: i64,
    aht_week_count: i64,
    chart: String,
    assigned: usize,
    closed: usize,
    error: Option<String>,
    at: String,
    conversations: Vec<super::sentiment::SentimentRow>,
}

/// `/ui/analytics/me`: the signed-in agent's CSAT and AHT, today and over
/// the last 7 days, and the burndown of today's sessions, in UTC days.
///
/// A web user is matched to the analytics agent by name: the signed-in
/// user's name is compared with the sessions' `agent`, which is the
/// `participantId` of the session's participant of type agent. Agents whose
/// provider uses other participant ids see no figures until their web user
/// is named like their participant id.
#[utoipa::path(get, path = "/ui/analytics/me", tag = "ui", responses((status = 200, description = "The agent's own figures (HTML)")))]
pub async fn me_page(State(state): State<AppState>, user: WebUser) -> Response {
    if !allowed(&user, &AGENT_ROLES) {
        return forbidden("My performance is for agents, supervisors and admins.");
    }
    let agent = user.name.to_string();
    let now = UtcMillis::now();
    let today = now.as_millis().div_euclid(DAY_MS) * DAY_MS;
    let week_start = today - 6 * DAY_MS;
    let filters = vec![(Dimension::Agent, agent.clone())];
    let query = MetricsQuery {
        metrics: ["csat", "aht"]
            .iter()
            .filter_map(|name| metrics::metric(name))
            .collect(),
        from: UtcMillis::from_millis(week_start),
        to: now,
        interval: Interval::D1,
        tz: jiff::tz::TimeZone::UTC,
        tz_name: "UTC".into(),
        group_by: Vec::new(),
        filters: filters.clone(),
    };
    let mut error = None;
    let answer = service::query_metrics(&state.stores, user.org, &query)
        .await
        .map_err(|e| error = Some(e.to_string()))
        .ok();
    let pick = |metric: &str, today_only: bool| {
        let series = answer.as_ref().and_then(|a| {
            a.series
                .iter()
                .find(|s| s.metric == metric && s.group.is_empty())
        });
        if today_only {
            let point = series.and_then(|s| s.points.iter().find(|p| p.start.as_millis() == today));
            (point.and_then(|p| p.value), point.map_or(0, |p| p.count))
        } else {
            overall(series)
        }
    };
    let (csat_today, csat_today_count) = pick("csat", true);
    let (csat_week, csat_week_count) = pick("csat", false);
    let (aht_today, aht_today_count) = pick("aht", true);
    let (aht_week, aht_week_count) = pick("aht", false);
    let facts = state
        .stores
        .channel
        .facts(
            user.org,
            FactsQuery {
                time: FactTime::Answered,
                from: UtcMillis::from_millis(today),
                to: now,
                filters,
                limit: 10_000,
            },
        )
        .await
        .unwrap_or_else(|e| {
            error = Some(e.to_string());
            Vec::new()
        });
    let day = burndown(&facts, UtcMillis::from_millis(today), now);
    let chart = charts::line_chart(
        &day.labels,
        &[
            LineSeries {
                name: "Assigned".into(),
                values: day.assigned.iter().copied().map(Some).collect(),
                dashed: false,
            },
            LineSeries {
                name: "Closed".into(),
                values: day.closed.iter().copied().map(Some).collect(),
                dashed: false,
            },
            LineSeries {
                name: "Remaining".into(),
                values: day.remaining.iter().copied().map(Some).collect(),
                dashed: true,
            },
        ],
        None,
        "Sessions today",
        &|v| format!("{v:.0}"),
    );
    let conversations = super::sentiment::my_conversations(&state, &user, now)
        .await
        .unwrap_or_else(|e| {
            error = Some(e.to_string());
            Vec::new()
        });
    let shell = shell(&state, &user, "/ui/analytics/me").await;
    render(&MePage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        agent,
        csat_today: figure("score", csat_today),
        csat_week: figure("score", csat_week),
        csat_today_count,
        csat_week_count,
        aht_today: figure("seconds", aht_today),
        aht_week: figure("seconds", aht_week),
        aht_today_count,
        aht_week_count,
        chart,
        assigned: day.assigned.last().map_or(0, |v| *v as usize),
        closed: day.closed.last().map_or(0, |v| *v as usize),
        error,
        at: short_time(&now.to_rfc3339()),
        conversations,
    })
}

/// The live page's script: a few lines that copy each stream event into
/// the page.
pub async fn live_script() -> impl IntoResponse {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/live.js"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentages_read_like_people_write_them() {
        assert_eq!(duration(0.0), "0 s");
        assert_eq!(duration(45.4), "45 s");
        assert_eq!(duration(65.0), "1 m 05 s");
        assert_eq!(duration(59.6), "1 m 00 s");
        assert_eq!(duration(7389.0), "2 h 03 m 09 s");
        assert_eq!(duration(-3.0), "0 s");
        assert_eq!(duration(f64::NAN), "—");
        assert_eq!(percent(1.0 / 3.0), "33.3 %");
        assert_eq!(percent(1.0), "100.0 %");
        assert_eq!(figure("ratio", Some(0.8)), "80.0 %");
        assert_eq!(figure("seconds", Some(135.0)), "2 m 15 s");
        assert_eq!(figure("score", Some(4.0)), "4.00");
        assert_eq!(figure("count", Some(4.0)), "4");
        assert_eq!(figure("count", Some(2.5)), "2.5");
        assert_eq!(figure("ratio", None), "—");
    }

    #[test]
    fn interval_labels_follow_the_zone_clock() {
        assert_eq!(
            interval_label("2026-03-01T09:00:00+01:00", Interval::H1),
            "03-01 09:00"
        );
        assert_eq!(
            interval_label("2026-03-01T00:00:00+01:00", Interval::D1),
            "03-01"
        );
    }

    fn facts(id: &str, answered: Option<i64>, closed: Option<i64>) -> SessionFacts {
        serde_json::from_value(serde_json::json!({
            "session_id": id, "conversation_id": id, "queue": null, "channel": null,
            "provider": null, "agent": "agent-7",
            "answered_at": answered.map(|ms| UtcMillis::from_millis(ms).to_rfc3339()),
            "closed_at": closed.map(|ms| UtcMillis::from_millis(ms).to_rfc3339()),
            "hold_ms": 0, "holds": 0, "wrap_ms": 0, "handle_ms": null, "talk_ms": null,
            "abandoned": false, "short_abandon": false, "answered_within_sl": false,
            "transferred": false, "status": "active",
            "last_activity": UtcMillis::from_millis(0).to_rfc3339(),
        }))
        .unwrap()
    }

    #[test]
    fn the_burndown_counts_assigned_and_closed_by_hour() {
        let day = 20 * DAY_MS;
        let now = UtcMillis::from_millis(day + 3 * HOUR_MS + 600_000);
        let sessions = [
            facts("a", Some(day + 600_000), Some(day + HOUR_MS + 60_000)),
            facts("b", Some(day + HOUR_MS + 120_000), None),
            facts(
                "c",
                Some(day + 2 * HOUR_MS + 1),
                Some(day + 3 * HOUR_MS + 1),
            ),
        ];
        let b = burndown(&sessions, UtcMillis::from_millis(day), now);
        assert_eq!(b.labels, ["00:00", "01:00", "02:00", "03:00", "now 03:10"]);
        assert_eq!(b.assigned, [0.0, 1.0, 2.0, 3.0, 3.0]);
        assert_eq!(b.closed, [0.0, 0.0, 1.0, 1.0, 2.0]);
        assert_eq!(b.remaining, [0.0, 1.0, 1.0, 2.0, 1.0]);
    }
}
