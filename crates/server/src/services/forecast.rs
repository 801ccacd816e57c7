//! Forecasts and staffing: a 7-day volume forecast per interval, fitted to
//! the offered counts, and the agents Erlang C says each interval needs.

use serde::Deserialize;
use serde_json::{Value, json};
use tracklog_domain::channel::interval::{self, Interval};
use tracklog_domain::channel::metrics::{self, Dimension};
use tracklog_domain::contact::RecordError;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;
use tracklog_store::Stores;

use super::ServiceError;
use super::analytics::{MetricsQuery, query_metrics};

/// `GET /api/v1/forecast` parameters.
/// The intervals a forecast is made in.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents `interval`, which `Interval::parse` reads.
pub enum ForecastInterval {
    #[schema(rename = "15m")]
    M15,
    #[schema(rename = "30m")]
    M30,
    #[schema(rename = "1h")]
    H1,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastParams {
    /// The queue; every queue together when absent.
    pub queue: Option<String>,
    /// 15m, 30m or 1h; 1h by default.
    #[param(value_type = Option<ForecastInterval>)]
    pub interval: Option<String>,
    /// Weeks of history to fit on, 1 to 26; 8 by default.
    #[param(minimum = 1, maximum = 26)]
    pub weeks: Option<u32>,
    #[param(value_type = Option<tracklog_domain::channel::query_schema::TimeZoneName>)]
    pub timezone: Option<String>,
    /// Service-level target, 0 to 1; 0.8 by default.
    pub target: Option<f64>,
    /// Answer-time target in seconds; the queue's threshold by default.
    pub target_seconds: Option<i64>,
    /// Highest occupancy staffed for, 0 to 1; none by default.
    pub max_occupancy: Option<f64>,
}

/// A 7-day volume forecast per interval with its backtest, and the agents
/// Erlang C says each interval needs.
pub async fn forecast(
    stores: &Stores,
    org: OrgId,
    params: ForecastParams,
    now: UtcMillis,
) -> Result<Value, ServiceError> {
    use tracklog_domain::{forecast, staffing};
    let interval_text = params.interval.clone().unwrap_or_else(|| "1h".into());
    let interval = match Interval::parse(&interval_text) {
        Some(i @ (Interval::M15 | Interval::M30 | Interval::H1)) => i,
        _ => return Err(RecordError::new("interval", "must be 15m, 30m or 1h").into()),
    };
    let weeks = params.weeks.unwrap_or(8);
    if !(1..=26).contains(&weeks) {
        return Err(RecordError::new("weeks", "must be between 1 and 26").into());
    }
    let target = params.target.unwrap_or(0.8);
    if !(0.0..=1.0).contains(&target) {
        return Err(RecordError::new("target", "must be between 0 and 1").into());
    }
    let tz_name = params.timezone.clone().unwrap_or_else(|| "UTC".into());
    let tz = interval::zone(&tz_name).ok_or_else(|| {
        RecordError::new("timezone", format!("{tz_name:?} is not an IANA time zone"))
    })?;
    let end = interval::floor(now, interval, &tz);
    let start = UtcMillis::from_millis(end.as_millis() - i64::from(weeks) * 7 * 86_400_000);
    let filters: Vec<(Dimension, String)> = params
        .queue
        .iter()
        .map(|q| (Dimension::Queue, q.clone()))
        .collect();
    let query = MetricsQuery {
        metrics: ["conversations_offered", "aht"]
            .iter()
            .filter_map(|name| metrics::metric(name))
            .collect(),
        from: start,
        to: end,
        interval,
        tz: tz.clone(),
        tz_name: tz_name.clone(),
        group_by: Vec::new(),
        filters,
    };
    let answer = query_metrics(stores, org, &query).await?;
    let series = |name: &str| answer.series.iter().find(|s| s.metric == name);
    let history: Vec<f64> = series("conversations_offered")
        .map(|s| s.points.iter().map(|p| p.value.unwrap_or(0.0)).collect())
        .unwrap_or_default();
    let (handle_sum, handled) = series("aht").map_or((0.0, 0), |s| {
        s.points.iter().fold((0.0, 0i64), |(sum, n), p| {
            (sum + p.value.unwrap_or(0.0) * p.count as f64, n + p.count)
        })
    });
    let aht = if handled > 0 {
        handle_sum / handled as f64
    } else {
        0.0
    };
    let interval_secs = (interval.nominal_ms() / 1000) as u32;
    let per_day = forecast::intervals_per_day(interval_secs)
        .map_err(|e| RecordError::new("interval", e.to_string()))?;
    let predicted = forecast::forecast_week(&history, interval_secs)
        .map_err(|e| RecordError::new("history", e.to_string()))?;
    let backtest = forecast::backtest(&history, interval_secs, 7 * per_day).ok();
    let threshold = match (&params.queue, params.target_seconds) {
        (_, Some(seconds)) => seconds,
        (Some(queue), None) => stores
            .channel
            .queues(org)
            .await?
            .into_iter()
            .find(|q| &q.queue == queue)
            .map_or(20, |q| q.service_level_seconds),
        (None, None) => 20,
    };
    let mut at = end;
    let mut points = Vec::with_capacity(predicted.points.len());
    for (i, calls) in predicted.points.iter().enumerate() {
        let staffed = staffing::agents_required(
            *calls,
            f64::from(interval_secs),
            aht,
            target,
            threshold as f64,
            params.max_occupancy,
        )
        .ok();
        points.push(json!({
            "start": at.to_rfc3339(),
            "local_start": interval::local_rfc3339(at, &tz),
            "forecast": calls,
            "lower": predicted.lower.get(i),
            "upper": predicted.upper.get(i),
            "agents": staffed.map(|s| s.agents),
            "service_level": staffed.map(|s| s.service_level),
            "asa_seconds": staffed.map(|s| s.asa_secs),
            "occupancy": staffed.map(|s| s.occupancy),
        }));
        at = interval::next(at, interval, &tz);
    }
    Ok(json!({
        "queue": params.queue,
        "interval": interval.code(),
        "timezone": tz_name,
        "history": {"from": start.to_rfc3339(), "to": end.to_rfc3339(), "intervals": history.len(),
                    "offered": history.iter().sum::<f64>(), "aht_seconds": aht},
        "model": predicted.model,
        "smoothing": predicted.smoothing,
        "backtest": backtest.as_ref().map(|b| json!({
            "held_out_intervals": b.points, "mape_percent": b.mape, "wape_percent": b.wape,
            "smape_percent": b.smape, "mae": b.mae, "coverage": b.coverage,
            "forecast": b.forecast.points,
            "actual": history[history.len() - b.points..].to_vec(),
        })),
        "staffing_target": {"service_level": target, "seconds": threshold,
                            "max_occupancy": params.max_occupancy},
        "points": points,
    }))
}
