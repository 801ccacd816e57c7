//! Threshold alerts on any metric, scope and window, and the predictive
//! breach: warn when the trend inside the current window crosses the
//! threshold before the window ends.
//!
//! A rule's value is its metric over the rolling window `[now − W, now)`,
//! read from the 15-minute pre-aggregates (the window starts on a bucket
//! boundary, so it covers between W and W + 15 min). The prediction looks at
//! the aligned window `[start, start + W)` holding now: it compares the
//! value over its first half-elapsed part with the value so far, and
//! extends that line to the window's end. It needs at least two elapsed
//! buckets, so windows of 30 minutes or more.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metrics::{self, Dimension};
use crate::contact::RecordError;

/// Which side of the threshold is a breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Above,
    Below,
}

impl Comparison {
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::Below => value < threshold,
        }
    }
}

/// A threshold rule, e.g. ASA above 60 s over 15 minutes for queue X.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRule {
    /// 1 to 100 letters, digits, `_`, `-` or `.`.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.-]{1,100}$"))]
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = super::query_schema::MetricName))]
    pub metric: String,
    pub comparison: Comparison,
    pub threshold: f64,
    /// Minutes, a multiple of 15 from 15 to 1440.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 15, maximum = 1440, multiple_of = 15)
    )]
    pub window_minutes: i64,
    /// Scope: dimension values, e.g. `{"queue": "billing"}`; each a
    /// dimension the metric has.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = super::query_schema::DimensionValues))]
    pub filters: BTreeMap<String, String>,
    /// Also warn when the trend will cross the threshold in this window.
    #[serde(default)]
    pub predictive: bool,
    /// Where firing, predicted and resolved alerts are posted: an http or
    /// https URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^https?://[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z][A-Za-z0-9-]*)*(:[0-9]{1,4})?(/[A-Za-z0-9._~/-]*)?$"
        )
    )]
    pub webhook_url: Option<String>,
    /// Signs webhook bodies (`X-Tracklog-Signature`, HMAC-SHA256); never
    /// shown back.
    #[serde(default, skip_serializing)]
    pub webhook_secret: Option<String>,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

impl AlertRule {
    /// Checks a rule as sent.
    pub fn validate(self) -> Result<Self, RecordError> {
        if self.id.is_empty()
            || self.id.len() > 100
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(RecordError::new(
                "id",
                "must be 1 to 100 letters, digits, '_', '-' or '.'",
            ));
        }
        let metric = metrics::metric(&self.metric).ok_or_else(|| {
            RecordError::new("metric", format!("unknown metric {:?}", self.metric))
        })?;
        if !self.threshold.is_finite() {
            return Err(RecordError::new("threshold", "must be a number"));
        }
        if !(15..=1440).contains(&self.window_minutes) || self.window_minutes % 15 != 0 {
            return Err(RecordError::new(
                "window_minutes",
                "must be a multiple of 15 from 15 to 1440",
            ));
        }
        for key in self.filters.keys() {
            let dimension = Dimension::parse(key).ok_or_else(|| {
                RecordError::new("filters", format!("{key:?} is not a dimension"))
            })?;
            if !metric.dimensions.contains(&dimension) {
                return Err(RecordError::new(
                    "filters",
                    format!("{} cannot be scoped by {key}", metric.name),
                ));
            }
        }
        if let Some(url) = &self.webhook_url {
            let parsed = url::Url::parse(url)
                .map_err(|_| RecordError::new("webhook_url", "must be an absolute URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(RecordError::new("webhook_url", "must be http or https"));
            }
        }
        Ok(self)
    }

    pub fn filters(&self) -> Vec<(Dimension, String)> {
        self.filters
            .iter()
            .filter_map(|(k, v)| Dimension::parse(k).map(|d| (d, v.clone())))
            .collect()
    }
}

/// Where a rule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Ok,
    /// Not breached yet, but the trend crosses the threshold in the window.
    Predicted,
    Firing,
}

/// The straight line through (t1, v1) and (t2, v2), read at `at`.
pub fn project(t1: i64, v1: f64, t2: i64, v2: f64, at: i64) -> Option<f64> {
    if t2 <= t1 {
        return None;
    }
    let slope = (v2 - v1) / (t2 - t1) as f64;
    Some(v2 + slope * (at - t2) as f64)
}

/// The state a rule is in, given its current value and the projection to
/// the end of its window.
pub fn evaluate(rule: &AlertRule, current: Option<f64>, projected: Option<f64>) -> AlertState {
    match current {
        Some(value) if rule.comparison.breached(value, rule.threshold) => AlertState::Firing,
        _ => match projected {
            Some(value) if rule.predictive && rule.comparison.breached(value, rule.threshold) => {
                AlertState::Predicted
            }
            _ => AlertState::Ok,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(predictive: bool) -> AlertRule {
        AlertRule {
            id: "asa-billing".into(),
            metric: "asa".into(),
            comparison: Comparison::Above,
            threshold: 60.0,
            window_minutes: 60,
            filters: [("queue".to_owned(), "billing".to_owned())].into(),
            predictive,
            webhook_url: None,
            webhook_secret: None,
            enabled: true,
        }
    }

    #[test]
    fn firing_predicted_and_ok() {
        assert_eq!(evaluate(&rule(false), Some(61.0), None), AlertState::Firing);
        assert_eq!(
            evaluate(&rule(false), Some(60.0), Some(90.0)),
            AlertState::Ok
        );
        assert_eq!(
            evaluate(&rule(true), Some(40.0), Some(75.0)),
            AlertState::Predicted
        );
        assert_eq!(evaluate(&rule(true), None, None), AlertState::Ok);
        let mut below = rule(false);
        below.comparison = Comparison::Below;
        below.threshold = 0.8;
        assert_eq!(evaluate(&below, Some(0.7), None), AlertState::Firing);
    }

    #[test]
    fn a_rising_line_is_extended_to_the_window_end() {
        // 30 s at 15 min, 45 s at 30 min: 75 s at 60 min.
        assert_eq!(project(15, 30.0, 30, 45.0, 60), Some(75.0));
        assert_eq!(project(30, 1.0, 30, 2.0, 60), None);
    }

    #[test]
    fn rules_are_checked() {
        assert!(rule(true).validate().is_ok());
        let mut bad = rule(false);
        bad.window_minutes = 20;
        assert_eq!(bad.validate().unwrap_err().field, "window_minutes");
        let mut bad = rule(false);
        bad.metric = "speed".into();
        assert_eq!(bad.validate().unwrap_err().field, "metric");
        let mut bad = rule(false);
        bad.metric = "occupancy".into();
        assert_eq!(bad.validate().unwrap_err().field, "filters");
        let mut bad = rule(false);
        bad.webhook_url = Some("ftp://x".into());
        assert_eq!(bad.validate().unwrap_err().field, "webhook_url");
    }
}
