//! The ingest driver: concurrent HTTP clients posting JSON arrays to
//! `/api/v1/interactions`, each request timed from send to acknowledgement.
//!
//! Clients take the next batch from a shared counter, so batches go out in
//! time order, as a portal would send them. A run stops when every batch is
//! sent or its time budget is spent; the rate counts acknowledged events only.
//!
//! The run also notes when the acknowledged events first reach 10 % and
//! 90 % of the events to send, which gives the rate over the first and the
//! last tenth: whether ingest stays flat as the tables grow.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::overload::Backoff;
use crate::payload::Payloads;
use crate::stats::Latencies;

/// What one ingest run sends.
#[derive(Debug, Clone)]
pub struct IngestPlan {
    pub batch: usize,
    pub clients: usize,
    /// Events from the start of the dataset to send at most.
    pub max_events: usize,
    pub budget: Duration,
}

/// What one ingest run measured.
#[derive(Debug, Clone, Serialize)]
pub struct IngestFigures {
    pub events: u64,
    pub requests: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub retries: u64,
    /// Events/s over the first and the last 10 % of the events to send;
    /// `None` when the run stopped before the last tenth began.
    pub first_tenth_events_per_sec: Option<f64>,
    pub last_tenth_events_per_sec: Option<f64>,
}

/// Where to send and as whom.
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub authorization: String,
    pub http: reqwest::Client,
}

#[derive(Deserialize)]
struct IngestReport {
    accepted: usize,
    rejected: Vec<serde_json::Value>,
}

struct ClientTally {
    latencies: Latencies,
    events: u64,
    requests: u64,
    retries: u64,
}

/// Runs the plan and returns its figures. Any rejected item or failed request
/// is an error: a bench that loses events measures nothing.
pub async fn drive(
    endpoint: &Endpoint,
    payloads: &Arc<Payloads>,
    plan: &IngestPlan,
    progress: &ProgressBar,
) -> anyhow::Result<IngestFigures> {
    let events = plan.max_events.min(payloads.len());
    let batches = events.div_ceil(plan.batch);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + plan.budget;
    let marks = Arc::new(Marks::new(events as u64, started));
    let mut tasks = Vec::with_capacity(plan.clients);
    for _ in 0..plan.clients {
        let client = BatchClient {
            endpoint: endpoint.clone(),
            payloads: payloads.clone(),
            next: next.clone(),
            batch: plan.batch,
            events,
            batches,
            deadline,
            progress: progress.clone(),
            marks: marks.clone(),
        };
        tasks.push(tokio::spawn(client.run()));
    }
    let mut total = ClientTally::new();
    for task in tasks {
        total.absorb(task.await.context("an ingest client panicked")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let (first_tenth, last_tenth) = marks.rates(total.events, seconds);
    Ok(IngestFigures {
        events: total.events,
        requests: total.requests,
        seconds,
        events_per_sec: total.events as f64 / seconds,
        ack_p50_ms: total.latencies.quantile_ms(0.5),
        ack_p99_ms: total.latencies.quantile_ms(0.99),
        retries: total.retries,
        first_tenth_events_per_sec: first_tenth,
        last_tenth_events_per_sec: last_tenth,
    })
}

/// When the acknowledged events first reached 10 % and 90 % of the events
/// to send: one atomic add per acknowledgement, and a write at each mark.
struct Marks {
    started: Instant,
    acknowledged: AtomicU64,
    /// The counts at which the marks are taken.
    first: u64,
    last: u64,
    /// (acknowledged events, seconds since the start) when each was reached.
    at_first: OnceLock<(u64, f64)>,
    at_last: OnceLock<(u64, f64)>,
}

impl Marks {
    fn new(events: u64, started: Instant) -> Self {
        Self {
            started,
            acknowledged: AtomicU64::new(0),
            first: (events / 10).max(1),
            last: (events - events / 10).max(1),
            at_first: OnceLock::new(),
            at_last: OnceLock::new(),
        }
    }

    /// Counts `size` acknowledged events.
    fn acknowledge(&self, size: u64) {
        let before = self.acknowledged.fetch_add(size, Ordering::Relaxed);
        let after = before + size;
        for (mark, at) in [(self.first, &self.at_first), (self.last, &self.at_last)] {
            if crosses(before, after, mark) {
                let _ = at.set((after, self.started.elapsed().as_secs_f64()));
            }
        }
    }

    fn rates(&self, events: u64, seconds: f64) -> (Option<f64>, Option<f64>) {
        tenth_rates(
            self.at_first.get().copied(),
            self.at_last.get().copied(),
            events,
            seconds,
        )
    }
}

/// Whether a count that went from `before` to `after` reached `mark`.
fn crosses(before: u64, after: u64, mark: u64) -> bool {
    before < mark && after >= mark
}

/// Events/s up to the first mark, and from the last mark to the end of the
/// run (`events` acknowledged in `seconds`). A mark not reached, or one
/// reached at the very end, gives no rate.
fn tenth_rates(
    first: Option<(u64, f64)>,
    last: Option<(u64, f64)>,
    events: u64,
    seconds: f64,
) -> (Option<f64>, Option<f64>) {
    let first = first
        .filter(|(_, at)| *at > 0.0)
        .map(|(count, at)| count as f64 / at);
    let last = last
        .filter(|(count, at)| *count < events && seconds > *at)
        .map(|(count, at)| (events - count) as f64 / (seconds - at));
    (first, last)
}

impl ClientTally {
    fn new() -> Self {
        Self {
            latencies: Latencies::default(),
            events: 0,
            requests: 0,
            retries: 0,
        }
    }

    fn absorb(&mut self, other: ClientTally) {
        self.latencies.merge(&other.latencies);
        self.events += other.events;
        self.requests += other.requests;
        self.retries += other.retries;
    }
}

/// One concurrent client.
struct BatchClient {
    endpoint: Endpoint,
    payloads: Arc<Payloads>,
    next: Arc<AtomicUsize>,
    batch: usize,
    events: usize,
    batches: usize,
    deadline: Instant,
    progress: ProgressBar,
    marks: Arc<Marks>,
}

impl BatchClient {
    async fn run(self) -> anyhow::Result<ClientTally> {
        let mut tally = ClientTally::new();
        // Bounded by the batch count and by the deadline.
        while Instant::now() < self.deadline {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.batches {
                break;
            }
            let start = index * self.batch;
            let range = start..(start + self.batch).min(self.events);
            let size = range.len();
            let body = bytes::Bytes::from(self.payloads.array(range));
            let sent = Instant::now();
            tally.retries += self.post(body, size).await? as u64;
            tally.latencies.record(sent.elapsed());
            self.marks.acknowledge(size as u64);
            tally.events += size as u64;
            tally.requests += 1;
            self.progress.inc(size as u64);
        }
        Ok(tally)
    }

    /// Posts one batch until it is acknowledged; returns the retries it took.
    async fn post(&self, body: bytes::Bytes, size: usize) -> anyhow::Result<usize> {
        let mut backoff = Backoff::default();
        loop {
            let response = self
                .endpoint
                .http
                .post(&self.endpoint.url)
                .header("authorization", &self.endpoint.authorization)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await?;
            let status = response.status();
            if Backoff::is_overload(status) {
                backoff.wait("ingest", &response).await?;
                continue;
            }
            if !status.is_success() {
                bail!("ingest answered {status}: {}", response.text().await?);
            }
            let report: IngestReport = response.json().await?;
            if report.accepted != size || !report.rejected.is_empty() {
                bail!(
                    "ingest accepted {} of {size} events; first rejection: {:?}",
                    report.accepted,
                    report.rejected.first()
                );
            }
            return Ok(backoff.retries());
        }
    }
}

/// An HTTP client for loopback load: keep-alive, no proxy, no delay.
pub fn http_client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(120))
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_crossed_once() {
        assert!(crosses(0, 500, 100));
        assert!(crosses(99, 100, 100));
        assert!(!crosses(100, 600, 100));
        assert!(!crosses(0, 99, 100));
    }

    #[test]
    fn the_marks_of_a_run_are_its_tenths() {
        let marks = Marks::new(1_000, Instant::now());
        assert_eq!((marks.first, marks.last), (100, 900));
        for _ in 0..10 {
            marks.acknowledge(100);
        }
        assert_eq!(marks.at_first.get().map(|m| m.0), Some(100));
        assert_eq!(marks.at_last.get().map(|m| m.0), Some(900));
        // A batch that jumps past a mark sets it at its own count.
        let marks = Marks::new(1_000, Instant::now());
        marks.acknowledge(150);
        assert_eq!(marks.at_first.get().map(|m| m.0), Some(150));
        assert!(marks.at_last.get().is_none());
    }

    #[test]
    fn tenth_rates_divide_events_by_their_window() {
        // 100 events in the first 2 s; the last 100 from 9 s to 10 s.
        let (first, last) = tenth_rates(Some((100, 2.0)), Some((900, 9.0)), 1_000, 10.0);
        assert_eq!(first, Some(50.0));
        assert_eq!(last, Some(100.0));
        // A run cut short before its last tenth has no last rate.
        let (first, last) = tenth_rates(Some((100, 2.0)), None, 500, 10.0);
        assert_eq!((first, last), (Some(50.0), None));
        // A last mark reached by the final acknowledgement has no window.
        assert_eq!(
            tenth_rates(None, Some((1_000, 10.0)), 1_000, 10.0),
            (None, None)
        );
    }
}
