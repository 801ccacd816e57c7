//! Tracklog's ingest in the channel workload: `--clients` clients post every
//! conversation to `/api/v1/channel/init`, then every KPI event to
//! `/api/v1/channel/events`, each request timed from send to
//! acknowledgement. The materialisers' lag is sampled throughout, and the
//! ingest ends once everything acknowledged is applied, so that the bytes
//! on disk and the dashboard are measured on the whole dataset.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::data::{self, ChannelData};
use crate::lag::{LagFigures, LagSampler};
use crate::overload::Backoff;
use crate::runner::Progress;
use crate::stats::Latencies;
use crate::tracklog::TracklogServer;

/// Conversations per init request, and per events request.
pub const INIT_BATCH: usize = 200;
pub const EVENTS_BATCH: usize = 50;
/// Agents per presence request.
const PRESENCE_BATCH: usize = 10;

/// Ingest through the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestFigures {
    pub conversations: usize,
    pub kpi_events: usize,
    pub init_seconds: f64,
    pub init_conversations_per_sec: f64,
    pub events_seconds: f64,
    pub events_per_sec: f64,
    pub total_seconds: f64,
    pub requests: u64,
    pub retries: u64,
    pub duplicates: u64,
    /// Of every request, inits and events.
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    /// Of the init requests alone, and of the events requests alone.
    pub init_ack_p50_ms: f64,
    pub init_ack_p99_ms: f64,
    pub events_ack_p50_ms: f64,
    pub events_ack_p99_ms: f64,
    /// How far the materialisers fell behind during both phases, and how
    /// long after the last acknowledgement everything was applied.
    pub lag: LagFigures,
    /// KPI events over the events phase and the wait for the materialisers
    /// that followed it.
    pub applied_events_per_sec: f64,
}

#[derive(Deserialize)]
struct IngestReport {
    accepted: usize,
    duplicates: usize,
    rejected: Vec<Value>,
}

/// One request body and the items the server must accept from it.
struct Body {
    bytes: bytes::Bytes,
    expected: usize,
}

#[derive(Default)]
struct Tally {
    latencies: Latencies,
    requests: u64,
    retries: u64,
    duplicates: u64,
}

/// Posts every conversation, then every KPI event, and waits (at most
/// [`crate::runner::SETTLE_BOUND`]) for the materialisers to apply them.
pub async fn ingest(
    server: &TracklogServer,
    http: &reqwest::Client,
    data: &ChannelData,
    clients: usize,
) -> anyhow::Result<IngestFigures> {
    let inits: Vec<Body> = data
        .conversations
        .chunks(INIT_BATCH)
        .map(|chunk| {
            let items: Vec<Value> = chunk.iter().map(super::items::init_item).collect();
            Ok(Body {
                bytes: serde_json::to_vec(&items)?.into(),
                expected: chunk.len(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut events: Vec<Body> = data
        .conversations
        .chunks(EVENTS_BATCH)
        .map(|chunk| {
            let items: Vec<Value> = chunk.iter().map(super::items::events_item).collect();
            Ok(Body {
                bytes: serde_json::to_vec(&items)?.into(),
                expected: chunk.iter().map(|c| c.events.len()).sum(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let agents: Vec<u16> = (0..data::AGENTS as u16).collect();
    for group in agents.chunks(PRESENCE_BATCH) {
        let mut items = Vec::new();
        let mut expected = 0;
        for agent in group {
            let mine: Vec<_> = data.presence.iter().filter(|p| p.agent == *agent).collect();
            expected += mine.len();
            items.push(super::items::presence_item(*agent, &mine));
        }
        events.push(Body {
            bytes: serde_json::to_vec(&items)?.into(),
            expected,
        });
    }
    let kpi_events: usize = events.iter().map(|b| b.expected).sum();
    let progress = Progress::new();
    let init_bar = progress.bar("conversations", conversations_in(&inits));
    let sampler = LagSampler::start(server.stores.clone());
    let started = Instant::now();
    let result = async {
        let init = drive(
            server,
            http,
            "/api/v1/channel/init",
            inits,
            clients,
            &init_bar,
        )
        .await?;
        init_bar.finish();
        let init_seconds = started.elapsed().as_secs_f64();
        let events_bar = progress.bar("KPI events", kpi_events);
        let events_started = Instant::now();
        let events = drive(
            server,
            http,
            "/api/v1/channel/events",
            events,
            clients,
            &events_bar,
        )
        .await?;
        events_bar.finish();
        anyhow::Ok((
            init,
            init_seconds,
            events,
            events_started.elapsed().as_secs_f64(),
        ))
    }
    .await;
    let total_seconds = started.elapsed().as_secs_f64();
    let lag = sampler.finish(crate::runner::SETTLE_BOUND).await;
    let (init, init_seconds, events, events_seconds) = result?;
    let mut tally = Tally::default();
    tally.absorb(&init);
    tally.absorb(&events);
    let conversations = data.conversations.len();
    Ok(IngestFigures {
        conversations,
        kpi_events,
        init_seconds,
        init_conversations_per_sec: conversations as f64 / init_seconds,
        events_seconds,
        events_per_sec: kpi_events as f64 / events_seconds,
        total_seconds,
        requests: tally.requests,
        retries: tally.retries,
        duplicates: tally.duplicates,
        ack_p50_ms: tally.latencies.quantile_ms(0.5),
        ack_p99_ms: tally.latencies.quantile_ms(0.99),
        init_ack_p50_ms: init.latencies.quantile_ms(0.5),
        init_ack_p99_ms: init.latencies.quantile_ms(0.99),
        events_ack_p50_ms: events.latencies.quantile_ms(0.5),
        events_ack_p99_ms: events.latencies.quantile_ms(0.99),
        lag,
        applied_events_per_sec: kpi_events as f64
            / (events_seconds + lag.settled_ms / 1000.0).max(1e-9),
    })
}

impl Tally {
    fn absorb(&mut self, other: &Tally) {
        self.latencies.merge(&other.latencies);
        self.requests += other.requests;
        self.retries += other.retries;
        self.duplicates += other.duplicates;
    }
}

fn conversations_in(inits: &[Body]) -> usize {
    inits.iter().map(|b| b.expected).sum()
}

/// Posts every body with `clients` concurrent clients, moving `bar` by the
/// items each acknowledges; any rejection is an error.
async fn drive(
    server: &TracklogServer,
    http: &reqwest::Client,
    path: &str,
    bodies: Vec<Body>,
    clients: usize,
    bar: &ProgressBar,
) -> anyhow::Result<Tally> {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let url = server.url(path);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (bodies, next, url) = (bodies.clone(), next.clone(), url.clone());
        let http = http.clone();
        let authorization = server.authorization.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            // Bounded by the number of bodies.
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index) else { break };
                let sent = Instant::now();
                let (retries, duplicates) = post(&http, &url, &authorization, body).await?;
                tally.latencies.record(sent.elapsed());
                tally.requests += 1;
                tally.retries += retries;
                tally.duplicates += duplicates;
                bar.inc(body.expected as u64);
            }
            anyhow::Ok(tally)
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        total.absorb(&task.await.context("an ingest client panicked")??);
    }
    Ok(total)
}

/// Posts one body until it is acknowledged; returns the retries and the
/// duplicates the server reported.
async fn post(
    http: &reqwest::Client,
    url: &str,
    authorization: &str,
    body: &Body,
) -> anyhow::Result<(u64, u64)> {
    let mut backoff = Backoff::default();
    loop {
        let response = http
            .post(url)
            .header("authorization", authorization)
            .header("content-type", "application/json")
            .body(body.bytes.clone())
            .send()
            .await?;
        let status = response.status();
        if Backoff::is_overload(status) {
            backoff.wait(url, &response).await?;
            continue;
        }
        if !status.is_success() {
            bail!("{url} answered {status}: {}", response.text().await?);
        }
        let report: IngestReport = response.json().await?;
        if report.accepted != body.expected || !report.rejected.is_empty() {
            bail!(
                "{url} accepted {} of {} items; first rejection: {:?}",
                report.accepted,
                body.expected,
                report.rejected.first()
            );
        }
        return Ok((backoff.retries() as u64, report.duplicates as u64));
    }
}
