//! A metrics query as a client sends it (`POST /api/v1/metrics/query`), and
//! its parsed form: known metrics, a bounded time range, an interval on a
//! zone's clock, and dimensions each metric can be grouped or filtered by.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use serde::Deserialize;

use super::interval::{self, Interval};
use super::metrics::{self, Dimension, Metric};
use crate::contact::RecordError;
use crate::time::UtcMillis;

/// One string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// `POST /api/v1/metrics/query` as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricsRequest {
    /// Metric names; every metric when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<super::query_schema::MetricName>>))]
    pub metrics: Option<OneOrMany>,
    /// RFC 3339; 24 hours before `to` when absent.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub from: Option<String>,
    /// RFC 3339, exclusive; now when absent.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub to: Option<String>,
    /// 15m, 30m, 1h, 1d or 1w. By default 1h, or 1d (1w) when the range
    /// holds 20000 hours (days) or more.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::query_schema::IntervalName>))]
    pub interval: Option<String>,
    /// An IANA time zone; UTC by default.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::query_schema::TimeZoneName>))]
    pub timezone: Option<String>,
    /// queue, channel, agent, provider or sentiment_band (the closing
    /// sentiment's band), one or a list.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<super::query_schema::DimensionName>>))]
    pub group_by: Option<OneOrMany>,
    /// `{"queue": "billing"}` or `{"queue": ["billing", "sales"]}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::query_schema::DimensionValueLists>))]
    pub filters: Option<BTreeMap<String, OneOrMany>>,
}

/// A metrics query, parsed.
#[derive(Debug, Clone)]
pub struct MetricsQuery {
    pub metrics: Vec<Metric>,
    pub from: UtcMillis,
    pub to: UtcMillis,
    pub interval: Interval,
    pub tz: TimeZone,
    pub tz_name: String,
    pub group_by: Vec<Dimension>,
    pub filters: Vec<(Dimension, String)>,
}

fn time_field(field: &str, value: Option<&str>) -> Result<Option<UtcMillis>, RecordError> {
    value
        .map(|text| {
            UtcMillis::parse_rfc3339(text)
                .map_err(|_| RecordError::new(field, "must be an RFC 3339 time"))
        })
        .transpose()
}

impl MetricsQuery {
    pub fn parse(request: MetricsRequest, now: UtcMillis) -> Result<Self, RecordError> {
        let catalogue = metrics::catalogue();
        let names = request.metrics.map(OneOrMany::into_vec).unwrap_or_default();
        let named = !names.is_empty();
        let mut metrics = match named {
            false => catalogue.clone(),
            true => names
                .iter()
                .map(|name| {
                    catalogue
                        .iter()
                        .find(|m| m.name == name)
                        .cloned()
                        .ok_or_else(|| {
                            RecordError::new(
                                "metrics",
                                format!("unknown metric {name:?}; GET /api/v1/metrics lists them"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let to = time_field("to", request.to.as_deref())?.unwrap_or(now);
        let from = time_field("from", request.from.as_deref())?
            .unwrap_or(UtcMillis::from_millis(to.as_millis() - 86_400_000));
        if from >= to {
            return Err(RecordError::new("from", "must be before to"));
        }
        let interval = match request.interval {
            Some(text) => Interval::parse(&text)
                .ok_or_else(|| RecordError::new("interval", "must be 15m, 30m, 1h, 1d or 1w"))?,
            // Hours, or the first larger interval that the range holds at
            // most `MAX_INTERVALS` of (counting the partial ones at each
            // end, where the zone's alignment cuts the range).
            None => {
                let span = (to.as_millis() - from.as_millis()) as u64;
                let hours = span / 3_600_000 + 2;
                if hours <= interval::MAX_INTERVALS as u64 {
                    Interval::H1
                } else if hours / 24 + 2 <= interval::MAX_INTERVALS as u64 {
                    Interval::D1
                } else {
                    Interval::W1
                }
            }
        };
        let tz_name = request.timezone.unwrap_or_else(|| "UTC".into());
        let tz = interval::zone(&tz_name).ok_or_else(|| {
            RecordError::new("timezone", format!("{tz_name:?} is not an IANA time zone"))
        })?;
        let dimension = |field: &str, text: &str| {
            Dimension::parse(text).ok_or_else(|| {
                RecordError::new(
                    field,
                    format!("{text:?} is not queue, channel, agent, provider or sentiment_band"),
                )
            })
        };
        let mut group_by = Vec::new();
        for text in request
            .group_by
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
        {
            let d = dimension("group_by", &text)?;
            if !group_by.contains(&d) {
                group_by.push(d);
            }
        }
        let mut filters = Vec::new();
        for (key, values) in request.filters.unwrap_or_default() {
            let d = dimension("filters", &key)?;
            for value in values.into_vec() {
                filters.push((d, value));
            }
        }
        if !named {
            // No metric named: every metric that can be grouped and
            // filtered as asked (occupancy has no queue, for one).
            metrics.retain(|metric| {
                group_by
                    .iter()
                    .chain(filters.iter().map(|(d, _)| d))
                    .all(|d| metric.dimensions.contains(d))
            });
            if metrics.is_empty() {
                return Err(RecordError::new(
                    "group_by",
                    "no metric can be grouped and filtered by all of these",
                ));
            }
        }
        for metric in &metrics {
            for d in group_by.iter().chain(filters.iter().map(|(d, _)| d)) {
                if !metric.dimensions.contains(d) {
                    return Err(RecordError::new(
                        "group_by",
                        format!(
                            "{} cannot be grouped or filtered by {}",
                            metric.name,
                            d.code()
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            metrics,
            from,
            to,
            interval,
            tz,
            tz_name,
            group_by,
            filters,
        })
    }

    /// The interval starts, bounded.
    pub fn starts(&self) -> Result<Vec<UtcMillis>, RecordError> {
        interval::starts(self.from, self.to, self.interval, &self.tz).ok_or_else(|| {
            RecordError::new(
                "interval",
                format!(
                    "the range holds more than {} intervals; use a larger interval",
                    interval::MAX_INTERVALS
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> MetricsRequest {
        serde_json::from_value(json).unwrap()
    }

    fn now() -> UtcMillis {
        UtcMillis::parse_rfc3339("2026-03-02T00:00:00Z").unwrap()
    }

    #[test]
    fn unnamed_metrics_are_those_that_can_be_filtered_as_asked() {
        let all = MetricsQuery::parse(request(serde_json::json!({})), now()).unwrap();
        assert!(all.metrics.iter().any(|m| m.name == "occupancy"));
        let by_queue = MetricsQuery::parse(
            request(serde_json::json!({"filters": {"queue": "billing"}})),
            now(),
        )
        .unwrap();
        assert!(!by_queue.metrics.is_empty());
        assert!(by_queue.metrics.iter().all(|m| m.name != "occupancy"));
        assert!(by_queue.metrics.len() < all.metrics.len());
        // Named, it is refused, saying why.
        let named = MetricsQuery::parse(
            request(serde_json::json!({"metrics": "occupancy", "filters": {"queue": "billing"}})),
            now(),
        )
        .unwrap_err();
        assert_eq!(named.field, "group_by");
        assert!(named.message.contains("occupancy"), "{}", named.message);
    }

    #[test]
    fn the_default_interval_grows_with_the_range_and_a_given_one_is_kept() {
        let interval = |from: &str, given: Option<&str>| {
            let mut body = serde_json::json!({"from": from});
            if let Some(given) = given {
                body["interval"] = given.into();
            }
            MetricsQuery::parse(request(body), now()).map(|q| q.interval)
        };
        assert_eq!(
            interval("2026-03-01T00:00:00Z", None).unwrap(),
            Interval::H1
        );
        assert_eq!(
            interval("2000-01-01T00:00:00Z", None).unwrap(),
            Interval::D1
        );
        assert_eq!(
            interval("1800-01-01T00:00:00Z", None).unwrap(),
            Interval::W1
        );
        let kept = MetricsQuery::parse(
            request(serde_json::json!({"from": "2000-01-01T00:00:00Z", "interval": "1h"})),
            now(),
        )
        .unwrap();
        assert_eq!(kept.interval, Interval::H1);
        assert!(kept.starts().is_err(), "too many hours is still refused");
        let defaulted = MetricsQuery::parse(
            request(serde_json::json!({"from": "2000-01-01T00:00:00Z"})),
            now(),
        )
        .unwrap();
        assert!(defaulted.starts().is_ok());
        // Just under the bound in hours, off the hour and in a zone with
        // a half-hour offset: the intervals the default gives still fit.
        for hours in [19_990_i64, 19_997, 19_998, 19_999, 20_000, 20_001] {
            let to = UtcMillis::parse_rfc3339("2026-03-02T00:17:00Z").unwrap();
            let from = to.saturating_add_millis(-hours * 3_600_000 - 1_234);
            let query = MetricsQuery::parse(
                request(serde_json::json!({
                    "from": from.to_rfc3339(), "to": to.to_rfc3339(),
                    "timezone": "Asia/Kolkata",
                })),
                now(),
            )
            .unwrap();
            assert!(
                query.starts().is_ok(),
                "{hours} hours: {:?}",
                query.interval
            );
        }
    }
}
