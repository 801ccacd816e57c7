//! `/ui/analytics/health`: each channel provider's health for managers:
//! when it was last heard from, its event rate, its rejected events by
//! reason, its notification timeouts and the lag of its events, with the
//! silent ones flagged.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;

use super::NavSection;
use super::analytics::duration;
use super::journeys::{allowed, forbidden, shell};
use super::pages::render;
use super::session::WebUser;
use crate::state::AppState;

const MANAGER_ROLES: [Role; 2] = [Role::Admin, Role::Supervisor];

struct HealthRow {
    provider: String,
    last: String,
    rate: String,
    rejected: String,
    timeouts: u64,
    lag_p50: String,
    lag_p99: String,
    silent: bool,
}

#[derive(Template)]
#[template(path = "channel_health.html")]
struct HealthPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    threshold: String,
    rows: Vec<HealthRow>,
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "—".into(), duration)
}

/// The health page, as of now.
#[utoipa::path(get, path = "/ui/analytics/health", tag = "ui", responses((status = 200, description = "Channel health by provider (HTML)"), (status = 403, description = "Not a supervisor or admin")))]
pub async fn health_page(State(state): State<AppState>, user: WebUser) -> Response {
    if !allowed(&user, &MANAGER_ROLES) {
        return forbidden("Channel health is for supervisors and admins.");
    }
    let silence = state.config.channel.provider_silence_seconds;
    let rows = state
        .channel_health
        .providers(user.org, UtcMillis::now(), silence as i64 * 1000)
        .into_iter()
        .map(|p| HealthRow {
            last: p.seconds_since_last_event.map_or_else(
                || "not since the server started".into(),
                |s| format!("{} ago", duration(s)),
            ),
            rate: format!("{:.1}", p.events_per_minute),
            rejected: if p.rejected.is_empty() {
                "none".into()
            } else {
                p.rejected
                    .iter()
                    .map(|(reason, n)| format!("{reason}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            timeouts: p.notification_timeouts,
            lag_p50: seconds(p.lag_p50_seconds),
            lag_p99: seconds(p.lag_p99_seconds),
            silent: p.silent,
            provider: p.provider,
        })
        .collect();
    let shell = shell(&state, &user, "/ui/analytics/health").await;
    render(&HealthPage {
        user: shell.user,
        role: shell.role,
        org: shell.org,
        csrf: shell.csrf,
        nav: shell.nav,
        threshold: duration(silence as f64),
        rows,
    })
}
