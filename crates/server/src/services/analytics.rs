//! Channel analytics read: metrics queries and drill-down. The API and the
//! web pages both call these, so a figure on a page is the figure the API gives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracklog_domain::channel::definitions::names;
use tracklog_domain::channel::facts::SessionFacts;
use tracklog_domain::channel::interval;
use tracklog_domain::channel::metrics::Dimension;
use tracklog_domain::channel::series::{self, Series};
use tracklog_domain::contact::RecordError;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;
use tracklog_store::{AggregateQuery, FactTime, FactsQuery, Stores};

use super::ServiceError;

// ---- metrics queries ------------------------------------------------------------------

pub use tracklog_domain::channel::query::{MetricsQuery, MetricsRequest, OneOrMany};

/// The answer of a metrics query.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsAnswer {
    pub series: Vec<Series>,
    pub interval: &'static str,
    pub timezone: String,
    /// Every interval: its start in UTC and on the zone's clock.
    pub intervals: Vec<Value>,
}

impl MetricsAnswer {
    /// The answer as JSON, byte for byte its `Serialize`, with the series
    /// written by [`Series::write_json`] into one buffer sized up front: a
    /// dashboard's answer is megabytes.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let points: usize = self.series.iter().map(|s| s.points.len()).sum();
        let mut out = Vec::with_capacity(1024 + 72 * points + 96 * self.intervals.len());
        out.extend_from_slice(b"{\"series\":[");
        for (i, series) in self.series.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            series.write_json(&mut out)?;
        }
        out.extend_from_slice(b"],\"interval\":");
        serde_json::to_writer(&mut out, self.interval)?;
        out.extend_from_slice(b",\"timezone\":");
        serde_json::to_writer(&mut out, &self.timezone)?;
        out.extend_from_slice(b",\"intervals\":");
        serde_json::to_writer(&mut out, &self.intervals)?;
        out.push(b'}');
        Ok(out)
    }
}

/// The largest bucket every boundary is a multiple of: an hour when all of
/// them are whole hours (hourly, daily and weekly intervals in zones with
/// whole-hour offsets), else the 15 minutes every bucket is.
pub(super) fn granularity(boundaries: impl IntoIterator<Item = i64>) -> i64 {
    const HOUR_MS: i64 = 3_600_000;
    if boundaries.into_iter().all(|ms| ms.rem_euclid(HOUR_MS) == 0) {
        HOUR_MS
    } else {
        900_000
    }
}

/// Runs a metrics query on the pre-aggregates.
pub async fn query_metrics(
    stores: &Stores,
    org: OrgId,
    query: &MetricsQuery,
) -> Result<MetricsAnswer, ServiceError> {
    let starts = query.starts()?;
    let series = if let (Some(first), Some(last)) = (starts.first(), starts.last()) {
        let end = interval::next(*last, query.interval, &query.tz);
        let mut parts: Vec<_> = query
            .metrics
            .iter()
            .flat_map(|m| m.computed.parts())
            .collect();
        parts.sort();
        parts.dedup();
        let rows = stores
            .channel
            .aggregate(
                org,
                AggregateQuery {
                    parts,
                    from_bucket: first.as_millis(),
                    to_bucket: end.as_millis(),
                    group_by: query.group_by.clone(),
                    filters: query.filters.clone(),
                    granularity_ms: granularity(starts.iter().chain([&end]).map(|s| s.as_millis())),
                },
            )
            .await?;
        series::assemble(
            &query.metrics,
            &query.group_by,
            &starts,
            query.interval,
            &query.tz,
            &rows,
        )
    } else {
        Vec::new()
    };
    Ok(MetricsAnswer {
        series,
        interval: query.interval.code(),
        timezone: query.tz_name.clone(),
        intervals: starts
            .iter()
            .map(|s| json!({"start": s.to_rfc3339(), "local_start": interval::local_rfc3339(*s, &query.tz)}))
            .collect(),
    })
}

// ---- drill-down ----------------------------------------------------------------------

/// `POST /api/v1/metrics/drilldown` as sent: one figure of a query.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrilldownRequest {
    #[schema(value_type = tracklog_domain::channel::query_schema::MetricName)]
    pub metric: String,
    /// The interval's start, as the query answered it.
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(value_type = Option<tracklog_domain::channel::query_schema::IntervalName>)]
    pub interval: Option<String>,
    #[schema(value_type = Option<tracklog_domain::channel::query_schema::TimeZoneName>)]
    pub timezone: Option<String>,
    /// The series' group, e.g. `{"queue": "billing"}`.
    #[schema(value_type = Option<tracklog_domain::channel::query_schema::DimensionValues>)]
    pub group: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<tracklog_domain::channel::query_schema::DimensionValueLists>)]
    pub filters: Option<BTreeMap<String, OneOrMany>>,
    /// At most this many sessions (1000 by default, 10000 at most).
    pub limit: Option<usize>,
}

/// Which sessions stand behind a metric, and which of them count in its
/// numerator.
/// Whether a session is behind a figure (`Some`) and in its numerator.
type Rule = fn(&SessionFacts) -> Option<bool>;

fn drill_rule(metric: &str) -> Option<(FactTime, Rule)> {
    let rule: (FactTime, Rule) = match metric {
        "conversations_offered" => (FactTime::Queued, |_| Some(true)),
        "aht" | "hold_time" | "wrap_up_time" | "talk_time" | "occupancy" => {
            (FactTime::Closed, |f| f.handled().then_some(true))
        }
        "transfer_rate" => (FactTime::Closed, |f| f.handled().then_some(f.transferred)),
        "asa" => (FactTime::Answered, |f| {
            f.queued_at.is_some().then_some(true)
        }),
        "service_level" => (FactTime::Queued, |f| {
            (f.answered_at.is_some() || (f.abandoned && !f.short_abandon))
                .then_some(f.answered_within_sl)
        }),
        "abandon_rate" => (FactTime::Queued, |f| {
            (!f.short_abandon).then_some(f.abandoned)
        }),
        "mean_sentiment" => (FactTime::Closed, |f| {
            (f.handled() && f.sentiment.closing.is_some()).then_some(true)
        }),
        "negative_sentiment_rate" => (FactTime::Closed, |f| {
            let band = f.sentiment.closing_band().filter(|_| f.handled())?;
            Some(band.is_negative())
        }),
        "sentiment_drop_rate" => (FactTime::Closed, |f| {
            (f.handled() && f.sentiment.closing.is_some()).then_some(f.sentiment.dropped)
        }),
        _ => return None,
    };
    Some(rule)
}

fn event_names(metric: &str) -> Option<Vec<String>> {
    let names: &[&str] = match metric {
        "notification_accept_rate" => &[names::NOTIFICATION_DISPLAYED],
        "notification_response_time" => &[names::NOTIFICATION_RESPONSE],
        "csat" | "csat_top2" => &[names::CSAT_SUBMITTED],
        _ => return None,
    };
    Some(names.iter().map(|n| (*n).to_owned()).collect())
}

/// The sessions behind one figure.
pub async fn drilldown(
    stores: &Stores,
    org: OrgId,
    request: DrilldownRequest,
) -> Result<Value, ServiceError> {
    let query = MetricsQuery::parse(
        MetricsRequest {
            metrics: Some(OneOrMany::One(request.metric.clone())),
            from: Some(request.start.clone()),
            to: None,
            interval: request.interval.clone(),
            timezone: request.timezone.clone(),
            group_by: None,
            filters: request.filters.clone(),
        },
        UtcMillis::from_millis(i64::MAX / 2),
    )?;
    let start = UtcMillis::parse_rfc3339(&request.start)
        .map_err(|_| RecordError::new("start", "must be an RFC 3339 time"))?;
    let start = interval::floor(start, query.interval, &query.tz);
    let end = interval::next(start, query.interval, &query.tz);
    let mut filters = query.filters.clone();
    for (key, value) in request.group.unwrap_or_default() {
        let d = Dimension::parse(&key)
            .ok_or_else(|| RecordError::new("group", format!("{key:?} is not a dimension")))?;
        filters.push((d, value));
    }
    let limit = request.limit.unwrap_or(1000).clamp(1, 10_000);
    let facts_query = |time| FactsQuery {
        time,
        from: start,
        to: end,
        filters: filters.clone(),
        limit,
    };
    let (sessions, numerator): (Vec<SessionFacts>, Vec<Option<bool>>) =
        if let Some((time, rule)) = drill_rule(&request.metric) {
            let facts = stores.channel.facts(org, facts_query(time)).await?;
            facts
                .into_iter()
                .filter_map(|f| rule(&f).map(|n| (f, Some(n))))
                .unzip()
        } else if let Some(names) = event_names(&request.metric) {
            let facts = stores
                .channel
                .facts_with_events(org, names, facts_query(FactTime::Closed))
                .await?;
            let n = facts.len();
            (facts, vec![None; n])
        } else {
            return Err(
                RecordError::new("metric", format!("unknown metric {:?}", request.metric)).into(),
            );
        };
    let items: Vec<Value> = sessions
        .iter()
        .zip(numerator)
        .map(|(facts, numerator)| {
            let mut value = json!(facts);
            if let Some(numerator) = numerator {
                value["in_numerator"] = json!(numerator);
            }
            value
        })
        .collect();
    Ok(json!({
        "metric": request.metric,
        "start": start.to_rfc3339(),
        "end": end.to_rfc3339(),
        "count": items.len(),
        "sessions": items,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tracklog_domain::channel::series::Point;

    use super::*;

    /// The answer written by hand is the answer serde_json would write.
    #[test]
    fn the_written_answer_is_its_serialization() {
        let start = UtcMillis::from_millis(1_772_409_600_000);
        let answer = MetricsAnswer {
            series: vec![
                Series {
                    metric: "aht".into(),
                    group: BTreeMap::from([("queue".to_owned(), "sales \"west\"".to_owned())]),
                    points: vec![Point {
                        start,
                        value: Some(1.5),
                        count: 2,
                    }],
                },
                Series {
                    metric: "csat".into(),
                    group: BTreeMap::new(),
                    points: vec![Point {
                        start,
                        value: None,
                        count: 0,
                    }],
                },
            ],
            interval: "1h",
            timezone: "Europe/Paris".into(),
            intervals: vec![json!({"start": start.to_rfc3339(), "local_start": "x"})],
        };
        assert_eq!(
            String::from_utf8(answer.to_json().unwrap()).unwrap(),
            serde_json::to_string(&answer).unwrap()
        );
    }
}
