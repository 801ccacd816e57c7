//! The ingest driver: concurrent HTTP clients posting JSON arrays to
//! `/api/v1/interactions`, each request timed from send to acknowledgement.
//!
//! Clients take the next batch from a shared counter, so batches go out in
//! time order, as a portal would send them. A run stops when every batch is
//! sent or its time budget is spent; the rate counts acknowledged events only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::payload::Payloads;
use crate::stats::Latencies;

/// A 503 or 429 is retried after this pause, at most this many times.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
const MAX_RETRIES: usize = 200;

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
        };
        tasks.push(tokio::spawn(client.run()));
    }
    let mut total = ClientTally::new();
    for task in tasks {
        total.absorb(task.await.context("an ingest client panicked")??);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(IngestFigures {
        events: total.events,
        requests: total.requests,
        seconds,
        events_per_sec: total.events as f64 / seconds,
        ack_p50_ms: total.latencies.quantile_ms(0.5),
        ack_p99_ms: total.latencies.quantile_ms(0.99),
        retries: total.retries,
    })
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
            tally.events += size as u64;
            tally.requests += 1;
            self.progress.inc(size as u64);
        }
        Ok(tally)
    }

    /// Posts one batch until it is acknowledged; returns the retries it took.
    async fn post(&self, body: bytes::Bytes, size: usize) -> anyhow::Result<usize> {
        for retry in 0..=MAX_RETRIES {
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
            if status.as_u16() == 503 || status.as_u16() == 429 {
                tokio::time::sleep(RETRY_PAUSE).await;
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
            return Ok(retry);
        }
        bail!("ingest stayed overloaded after {MAX_RETRIES} retries")
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
