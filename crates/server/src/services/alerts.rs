//! Alert rules on channel metrics: setting and deleting them (audited),
//! and evaluating them over the same pre-aggregates as the dashboards,
//! with webhooks for the alerts that open.

use serde::Serialize;
use serde_json::json;
use tracklog_domain::channel::alerts::{self, AlertRule, AlertState};
use tracklog_domain::channel::interval::{self};
use tracklog_domain::channel::metrics::{self, Dimension, Metric};
use tracklog_domain::channel::series::{self};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;
use tracklog_store::{AggregateQuery, Alert, Stores};

use super::ServiceError;
use super::selfaudit::Actor;

use super::channel::audit;

use super::analytics::granularity;

pub async fn put_alert_rule(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    rule: AlertRule,
) -> Result<AlertRule, ServiceError> {
    let rule = rule.validate()?;
    stores.channel.put_alert_rule(org, rule.clone()).await?;
    audit(
        stores,
        org,
        actor,
        "SaveAlertRule",
        ("alertrule", &rule.id),
        json!({"metric": rule.metric, "threshold": rule.threshold,
               "window_minutes": rule.window_minutes, "predictive": rule.predictive}),
    )
    .await;
    Ok(rule)
}

pub async fn delete_alert_rule(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    id: &str,
) -> Result<(), ServiceError> {
    if !stores.channel.delete_alert_rule(org, id).await? {
        return Err(ServiceError::NotFound(format!(
            "alert rule {id} was not found"
        )));
    }
    audit(
        stores,
        org,
        actor,
        "DeleteAlertRule",
        ("alertrule", id),
        json!({}),
    )
    .await;
    Ok(())
}

/// A metric's value over `[from, to)` of the pre-aggregates.
async fn value_over(
    stores: &Stores,
    org: OrgId,
    metric: &Metric,
    filters: &[(Dimension, String)],
    from: i64,
    to: i64,
) -> Result<Option<f64>, ServiceError> {
    if to <= from {
        return Ok(None);
    }
    let rows = stores
        .channel
        .aggregate(
            org,
            AggregateQuery {
                parts: metric.computed.parts(),
                from_bucket: from,
                to_bucket: to,
                group_by: Vec::new(),
                filters: filters.to_vec(),
                granularity_ms: granularity([from, to]),
            },
        )
        .await?;
    Ok(series::total(metric, &rows).0)
}

/// What evaluating one rule found.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCheck {
    pub rule_id: String,
    pub state: AlertState,
    pub value: Option<f64>,
    pub projected: Option<f64>,
    /// The alert raised, moved or resolved by this check, if any.
    pub alert: Option<Alert>,
}

/// Evaluates every enabled rule of the org at `now`, stores what changed,
/// and posts changes to the rules' webhooks.
pub async fn evaluate_alerts(
    stores: &Stores,
    org: OrgId,
    now: UtcMillis,
    http: &reqwest::Client,
) -> Result<Vec<RuleCheck>, ServiceError> {
    let rules = stores.channel.alert_rules(org).await?;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let open = stores.channel.alerts(org, true, 10_000).await?;
    let mut checks = Vec::new();
    for rule in rules.into_iter().filter(|r| r.enabled) {
        let Some(metric) = metrics::metric(&rule.metric) else {
            continue;
        };
        let filters = rule.filters();
        let window = rule.window_minutes * 60_000;
        let now_ms = now.as_millis();
        let end = interval::bucket_of(now) + interval::BUCKET_MS;
        let current = value_over(stores, org, &metric, &filters, end - window, end).await?;
        // The aligned window holding now, its value so far and half-way.
        let start = now_ms.div_euclid(window) * window;
        let elapsed_buckets = (interval::bucket_of(now) - start) / interval::BUCKET_MS;
        let projected = if rule.predictive && elapsed_buckets >= 2 {
            let half = start + (elapsed_buckets / 2) * interval::BUCKET_MS;
            let earlier = value_over(stores, org, &metric, &filters, start, half).await?;
            let so_far = value_over(stores, org, &metric, &filters, start, end).await?;
            match (earlier, so_far) {
                (Some(v1), Some(v2)) => alerts::project(half, v1, now_ms, v2, start + window),
                _ => None,
            }
        } else {
            None
        };
        let state = alerts::evaluate(&rule, current, projected);
        let existing = open.iter().find(|a| a.rule_id == rule.id).cloned();
        let code = |s: AlertState| match s {
            AlertState::Ok => "resolved",
            AlertState::Predicted => "predicted",
            AlertState::Firing => "firing",
        };
        let changed = match (&existing, state) {
            (None, AlertState::Ok) => None,
            (None, state) => Some(Alert {
                id: format!("{}-{}", rule.id, now_ms),
                rule_id: rule.id.clone(),
                metric: rule.metric.clone(),
                state: code(state).into(),
                value: current,
                projected,
                threshold: rule.threshold,
                started_at: now,
                updated_at: now,
                resolved_at: None,
            }),
            (Some(alert), state) if alert.state != code(state) => Some(Alert {
                state: code(state).into(),
                value: current,
                projected,
                updated_at: now,
                resolved_at: (state == AlertState::Ok).then_some(now),
                ..alert.clone()
            }),
            (Some(_), _) => None,
        };
        if let Some(alert) = &changed {
            stores.channel.put_alert(org, alert.clone()).await?;
            if let Some(url) = &rule.webhook_url {
                post_webhook(http, url, rule.webhook_secret.as_deref(), alert).await;
            }
        }
        checks.push(RuleCheck {
            rule_id: rule.id,
            state,
            value: current,
            projected,
            alert: changed,
        });
    }
    Ok(checks)
}

/// Posts an alert, retrying three times with backoff; a failure is logged
/// and counted by the caller's job, never fatal.
async fn post_webhook(http: &reqwest::Client, url: &str, secret: Option<&str>, alert: &Alert) {
    let body = json!({ "alert": alert }).to_string();
    let mut delay = std::time::Duration::from_millis(200);
    for attempt in 1..=3 {
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .timeout(std::time::Duration::from_secs(5))
            .body(body.clone());
        if let Some(secret) = secret {
            request = request.header(
                "X-Tracklog-Signature",
                tracklog_domain::audit::format::webhook_signature(
                    secret.as_bytes(),
                    body.as_bytes(),
                ),
            );
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                tracing::warn!(url, attempt, status = %response.status(), "alert webhook refused")
            }
            Err(error) => tracing::warn!(url, attempt, %error, "alert webhook failed"),
        }
        tokio::time::sleep(delay).await;
        delay *= 4;
    }
}
