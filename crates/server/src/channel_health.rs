//! Channel health for managers, per provider: the time since its last event
//! and its event rate, its rejected events by reason, its notification
//! timeouts, and the lag between an event's `eventTimestamp` and its
//! arrival. The ingest path records every KPI event here; the page
//! `/ui/analytics/health` and the `tracklog_channel_*` metrics read it, and
//! the alerts job raises an alert for a provider silent past
//! `channel.provider_silence_seconds`.
//!
//! Kept in memory, per server process: after a restart a provider shows as
//! not heard from until its next event.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tracklog_domain::channel::definitions::names;
use tracklog_domain::channel::payload::{KpiEvent, ResponseAction};

use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use crate::metrics::{Metrics, ProviderLabel, ProviderReasonLabel};
use tracklog_store::{Alert, Stores};

/// The rule id of the alerts raised for a silent provider.
pub const SILENCE_RULE: &str = "provider_silence";

/// The name under which events of no known provider are counted.
pub const UNKNOWN: &str = "(unknown)";
/// Seconds of arrivals kept for the rate.
const RATE_WINDOW_SECONDS: i64 = 300;
/// Lags kept per provider for the percentiles.
const LAGS_KEPT: usize = 2048;

#[derive(Default)]
struct Tally {
    last_arrival: Option<UtcMillis>,
    events: u64,
    /// (second, events) of the last [`RATE_WINDOW_SECONDS`].
    recent: VecDeque<(i64, u64)>,
    rejected: BTreeMap<String, u64>,
    timeouts: u64,
    /// Arrival minus `eventTimestamp`, in milliseconds, newest last.
    lags: VecDeque<i64>,
}

impl Tally {
    fn arrived(&mut self, now: UtcMillis, count: u64) {
        self.last_arrival = Some(now);
        self.events += count;
        let second = now.as_millis().div_euclid(1000);
        match self.recent.back_mut() {
            Some((at, n)) if *at == second => *n += count,
            _ => self.recent.push_back((second, count)),
        }
        self.trim(now);
    }

    fn trim(&mut self, now: UtcMillis) {
        let oldest = now.as_millis().div_euclid(1000) - RATE_WINDOW_SECONDS;
        while self.recent.front().is_some_and(|(at, _)| *at <= oldest) {
            self.recent.pop_front();
        }
    }
}

/// One provider's health, as the page and the API show it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ProviderHealth {
    pub provider: String,
    /// Seconds since its last event arrived; `None` when none has since
    /// this server started.
    pub seconds_since_last_event: Option<f64>,
    /// Events a minute over the last five minutes.
    pub events_per_minute: f64,
    pub events: u64,
    pub rejected: BTreeMap<String, u64>,
    pub notification_timeouts: u64,
    /// Of the arrival lag (arrival − `eventTimestamp`), in seconds.
    pub lag_p50_seconds: Option<f64>,
    pub lag_p99_seconds: Option<f64>,
    /// Silent past the configured threshold.
    pub silent: bool,
}

fn quantile(sorted: &[i64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[at] as f64 / 1000.0)
}

/// What health keeps of one arrived event.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub event_timestamp: UtcMillis,
    /// A `NotificationResponse` with `Timeout`.
    pub timeout: bool,
}

impl Arrival {
    pub fn of(event: &KpiEvent) -> Self {
        Self {
            event_timestamp: event.event_timestamp,
            timeout: event.kpi_event_name == names::NOTIFICATION_RESPONSE
                && event.response_action() == Some(ResponseAction::Timeout),
        }
    }
}

/// Every provider's tally, by org.
#[derive(Default)]
pub struct ChannelHealth {
    tallies: Mutex<HashMap<(OrgId, String), Tally>>,
}

impl ChannelHealth {
    /// Records accepted events (duplicates included: they arrived) of
    /// `provider`.
    pub fn accepted(
        &self,
        metrics: &Metrics,
        org: OrgId,
        provider: Option<&str>,
        events: &[Arrival],
        now: UtcMillis,
    ) {
        if events.is_empty() {
            return;
        }
        let provider = provider.unwrap_or(UNKNOWN);
        let label = ProviderLabel {
            org: org.0.to_string(),
            provider: provider.to_owned(),
        };
        let timeouts = events.iter().filter(|e| e.timeout).count() as u64;
        metrics
            .provider_events
            .get_or_create(&label)
            .inc_by(events.len() as u64);
        metrics
            .provider_timeouts
            .get_or_create(&label)
            .inc_by(timeouts);
        metrics
            .provider_last_event
            .get_or_create(&label)
            .set(now.as_millis() as f64 / 1000.0);
        metrics.provider_silent.get_or_create(&label).set(0);
        let lag_histogram = metrics.provider_lag.get_or_create(&label);
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        let tally = tallies.entry((org, provider.to_owned())).or_default();
        tally.arrived(now, events.len() as u64);
        tally.timeouts += timeouts;
        for event in events {
            let lag = now.as_millis() - event.event_timestamp.as_millis();
            lag_histogram.observe(lag as f64 / 1000.0);
            tally.lags.push_back(lag);
            if tally.lags.len() > LAGS_KEPT {
                tally.lags.pop_front();
            }
        }
    }

    /// Records an event refused for `reason`.
    pub fn rejected(&self, metrics: &Metrics, org: OrgId, provider: Option<&str>, reason: &str) {
        let provider = provider.unwrap_or(UNKNOWN);
        metrics
            .provider_rejected
            .get_or_create(&ProviderReasonLabel {
                org: org.0.to_string(),
                provider: provider.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
        if let Ok(mut tallies) = self.tallies.lock() {
            *tallies
                .entry((org, provider.to_owned()))
                .or_default()
                .rejected
                .entry(reason.to_owned())
                .or_default() += 1;
        }
    }

    /// The org's providers, by id, as of `now`; `silence` is the threshold
    /// past which a provider counts as silent.
    pub fn providers(&self, org: OrgId, now: UtcMillis, silence_ms: i64) -> Vec<ProviderHealth> {
        let Ok(mut tallies) = self.tallies.lock() else {
            return Vec::new();
        };
        let mut out: Vec<ProviderHealth> = tallies
            .iter_mut()
            .filter(|((o, _), _)| *o == org)
            .map(|((_, provider), tally)| {
                tally.trim(now);
                let since = tally
                    .last_arrival
                    .map(|at| (now.as_millis() - at.as_millis()).max(0));
                let recent: u64 = tally.recent.iter().map(|(_, n)| n).sum();
                let mut lags: Vec<i64> = tally.lags.iter().copied().collect();
                lags.sort_unstable();
                ProviderHealth {
                    provider: provider.clone(),
                    seconds_since_last_event: since.map(|ms| ms as f64 / 1000.0),
                    events_per_minute: recent as f64 / (RATE_WINDOW_SECONDS as f64 / 60.0),
                    events: tally.events,
                    rejected: tally.rejected.clone(),
                    notification_timeouts: tally.timeouts,
                    lag_p50_seconds: quantile(&lags, 0.50),
                    lag_p99_seconds: quantile(&lags, 0.99),
                    silent: since.is_some_and(|ms| ms > silence_ms),
                }
            })
            .collect();
        out.sort_by(|a, b| a.provider.cmp(&b.provider));
        out
    }

    /// Every provider, of any org, that has been silent past the threshold,
    /// with how long; the `tracklog_channel_provider_silent` gauge follows.
    pub fn silent(
        &self,
        metrics: &Metrics,
        now: UtcMillis,
        silence_ms: i64,
    ) -> Vec<(OrgId, String, i64)> {
        let Ok(tallies) = self.tallies.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ((org, provider), tally) in tallies.iter() {
            let Some(last) = tally.last_arrival else {
                continue;
            };
            let quiet = now.as_millis() - last.as_millis();
            let silent = quiet > silence_ms;
            metrics
                .provider_silent
                .get_or_create(&ProviderLabel {
                    org: org.0.to_string(),
                    provider: provider.clone(),
                })
                .set(i64::from(silent));
            if silent {
                out.push((*org, provider.clone(), quiet));
            }
        }
        out.sort();
        out
    }
}

/// Raises an alert for every provider silent past `silence_ms`, and
/// resolves those of providers heard from again. Alert ids are
/// `provider_silence:<provider>`; their value is the seconds of silence.
pub async fn raise_silence_alerts(
    stores: &Stores,
    health: &ChannelHealth,
    metrics: &Metrics,
    now: UtcMillis,
    silence_ms: i64,
) -> Result<usize, tracklog_store::StoreError> {
    let silent = health.silent(metrics, now, silence_ms);
    let mut changed = 0;
    for org in stores.meta.list_orgs().await? {
        let open: Vec<Alert> = stores
            .channel
            .alerts(org.id, true, 10_000)
            .await?
            .into_iter()
            .filter(|a| a.rule_id == SILENCE_RULE)
            .collect();
        for (_, provider, quiet) in silent.iter().filter(|(o, ..)| *o == org.id) {
            let id = format!("{SILENCE_RULE}:{provider}");
            let started = open.iter().find(|a| a.id == id).map(|a| a.started_at);
            stores
                .channel
                .put_alert(
                    org.id,
                    Alert {
                        id: id.clone(),
                        rule_id: SILENCE_RULE.into(),
                        metric: SILENCE_RULE.into(),
                        state: "firing".into(),
                        value: Some(*quiet as f64 / 1000.0),
                        projected: None,
                        threshold: silence_ms as f64 / 1000.0,
                        started_at: started.unwrap_or(now),
                        updated_at: now,
                        resolved_at: None,
                    },
                )
                .await?;
            if started.is_none() {
                tracing::warn!(org = %org.name, provider = %provider, seconds = *quiet / 1000, "a channel provider is silent");
                changed += 1;
            }
        }
        for alert in &open {
            let provider = alert
                .id
                .strip_prefix(&format!("{SILENCE_RULE}:"))
                .unwrap_or_default();
            let still = silent.iter().any(|(o, p, _)| *o == org.id && p == provider);
            if !still {
                let mut resolved = alert.clone();
                resolved.state = "resolved".into();
                resolved.updated_at = now;
                resolved.resolved_at = Some(now);
                stores.channel.put_alert(org.id, resolved).await?;
                tracing::info!(org = %org.name, provider = %provider, "a silent channel provider is heard from again");
                changed += 1;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, at: i64, action: Option<&str>) -> KpiEvent {
        KpiEvent {
            event_id: format!("{name}{at}"),
            conversation_id: Some("c".into()),
            provider_session_id: Some("s".into()),
            client_session_id: None,
            participant_id: None,
            correlation_id: None,
            kpi_event_name: name.into(),
            kpi_event_reason: None,
            event_timestamp: UtcMillis::from_millis(at),
            notification_response_action: action.map(Into::into),
            external_correlation_id: None,
            additional_data: None,
            custom_data: None,
        }
    }

    #[test]
    fn rate_lag_timeouts_rejections_and_silence() {
        let metrics = Metrics::new(&tracklog_store::StoreMetrics::default());
        let health = ChannelHealth::default();
        let org = OrgId(1);
        let now = 1_000_000_000;
        let events = [
            event("SessionClosed", now - 1_000, None),
            event("NotificationResponse", now - 3_000, Some("Timeout")),
            event("NotificationResponse", now - 2_000, Some("Accept")),
        ];
        let arrivals: Vec<Arrival> = events.iter().map(Arrival::of).collect();
        health.accepted(
            &metrics,
            org,
            Some("contoso"),
            &arrivals,
            UtcMillis::from_millis(now),
        );
        health.rejected(&metrics, org, Some("contoso"), "analytics_disabled");
        let later = UtcMillis::from_millis(now + 90_000);
        let status = &health.providers(org, later, 60_000)[0];
        assert_eq!(status.provider, "contoso");
        assert_eq!(status.seconds_since_last_event, Some(90.0));
        assert!((status.events_per_minute - 3.0 / 5.0).abs() < 1e-9);
        assert_eq!(status.notification_timeouts, 1);
        assert_eq!(status.rejected["analytics_disabled"], 1);
        assert_eq!(status.lag_p50_seconds, Some(2.0));
        assert_eq!(status.lag_p99_seconds, Some(3.0));
        assert!(status.silent);
        assert_eq!(
            health.silent(&metrics, later, 60_000),
            [(org, "contoso".to_owned(), 90_000)]
        );
        assert!(
            health.providers(OrgId(2), later, 60_000).is_empty(),
            "per org"
        );
        // Out of the window, the rate is zero.
        let much_later = UtcMillis::from_millis(now + 600_000);
        assert_eq!(
            health.providers(org, much_later, 60_000)[0].events_per_minute,
            0.0
        );
    }
}
