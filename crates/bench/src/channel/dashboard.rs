//! The dashboard query on Tracklog, over HTTP and in-process, and the timed
//! runs of any target's dashboard query.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use tracklog_domain::time::UtcMillis;
use tracklog_server::services::analytics::{self as service, MetricsQuery, MetricsRequest};

use super::sql::{self, Cells, METRICS};
use super::{QueryFigures, compare, dashboard_request};
use crate::tracklog::TracklogServer;

/// The longest the timed runs of one target may take; fewer runs are
/// reported if it is spent.
const QUERY_BUDGET: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
struct Answer {
    series: Vec<AnswerSeries>,
}

#[derive(Deserialize)]
struct AnswerSeries {
    metric: String,
    group: std::collections::BTreeMap<String, String>,
    points: Vec<AnswerPoint>,
}

#[derive(Deserialize)]
struct AnswerPoint {
    start: String,
    value: Option<f64>,
}

/// `POST /api/v1/metrics/query`; returns the time to the last byte of the
/// answer, and the answer's cells.
pub async fn tracklog_query(
    server: &TracklogServer,
    http: &reqwest::Client,
    body: &[u8],
) -> anyhow::Result<(Duration, Cells)> {
    let sent = Instant::now();
    let bytes = http
        .post(server.url("/api/v1/metrics/query"))
        .header("authorization", &server.authorization)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let elapsed = sent.elapsed();
    let answer: Answer = serde_json::from_slice(&bytes)?;
    let mut cells = Cells::new();
    for series in answer.series {
        let metric = METRICS
            .iter()
            .position(|m| *m == series.metric)
            .with_context(|| format!("unexpected metric {}", series.metric))?;
        let queue = series.group.get("queue").cloned().unwrap_or_default();
        for point in series.points {
            let start: jiff::Timestamp = point.start.parse()?;
            sql::put(
                &mut cells,
                metric,
                &queue,
                start.as_millisecond(),
                point.value,
            );
        }
    }
    Ok((elapsed, cells))
}

/// The same query through the service the API calls (the store's
/// pre-aggregates and the fold into intervals), without HTTP and JSON.
pub async fn tracklog_in_process(server: &TracklogServer) -> anyhow::Result<(Duration, Cells)> {
    let request: MetricsRequest = serde_json::from_value(dashboard_request())?;
    let query = MetricsQuery::parse(request, UtcMillis::now())?;
    let sent = Instant::now();
    let answer = service::query_metrics(&server.stores, server.org, &query).await?;
    let elapsed = sent.elapsed();
    let mut cells = Cells::new();
    for series in answer.series {
        let metric = METRICS
            .iter()
            .position(|m| *m == series.metric)
            .with_context(|| format!("unexpected metric {}", series.metric))?;
        let queue = series.group.get("queue").cloned().unwrap_or_default();
        for point in series.points {
            sql::put(
                &mut cells,
                metric,
                &queue,
                point.start.as_millis(),
                point.value,
            );
        }
    }
    Ok((elapsed, cells))
}

/// Times `runs` runs of `query` (after the untimed first run the caller
/// made); each gives its own time to the last byte or row of its answer,
/// before the answer is turned into cells. Every run must agree with the
/// first.
pub async fn timed<F, Fut>(runs: usize, first: &Cells, mut query: F) -> anyhow::Result<QueryFigures>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Duration, Cells)>>,
{
    let started = Instant::now();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        if started.elapsed() > QUERY_BUDGET {
            break;
        }
        let (elapsed, answer) = query().await?;
        times.push(elapsed.as_secs_f64() * 1000.0);
        let drift = compare(first, &answer).disagreements();
        if drift > 0 {
            bail!(
                "a run disagreed with the first run in {drift} cells: the answers are not stable"
            );
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(QueryFigures {
        runs: times.len(),
        p50_ms: nearest_rank(&times, 0.5),
        p99_ms: nearest_rank(&times, 0.99),
        max_ms: times.last().copied().unwrap_or(0.0),
        mean_ms: times.iter().sum::<f64>() / times.len().max(1) as f64,
        cells: first.len(),
    })
}

/// The nearest-rank quantile of sorted values.
pub fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let times: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&times, 0.5), 10.0);
        assert_eq!(nearest_rank(&times, 0.99), 20.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
    }
}
