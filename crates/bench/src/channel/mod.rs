//! The contact-centre channel workload (`tracklog bench --workload
//! channel`): seeded conversations with their sessions and KPI events,
//! loaded into Tracklog through `POST /api/v1/channel/init` and
//! `/api/v1/channel/events` by concurrent clients, then the dashboard query
//! — ten metrics over 30 days, hourly, by queue — timed through
//! `POST /api/v1/metrics/query`. The same conversations, sessions and events
//! are bulk-loaded raw into ClickHouse and PostgreSQL, whose SQL
//! ([`sql`]) computes the same metrics from the raw events; the run checks
//! that every peer's cells agree with Tracklog's and reports those that do
//! not.

pub mod data;
pub mod report;
pub mod sql;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracklog_domain::time::UtcMillis;
use tracklog_server::services::channel::{self as service, MetricsQuery, MetricsRequest};
use tracklog_store::Durability;

use self::data::{ChannelData, DataSummary, PERIOD_END_MS, PERIOD_START_MS};
use self::sql::{Cells, LoadStats, METRICS};
use crate::machine::Machine;
use crate::peers::PeerKind;
use crate::peers::clickhouse::ClickHouse;
use crate::peers::postgres::Postgres;
use crate::stats::{Latencies, median};
use crate::tracklog::TracklogServer;

/// Conversations per init request, and per events request.
const INIT_BATCH: usize = 200;
const EVENTS_BATCH: usize = 50;
/// Agents per presence request.
const PRESENCE_BATCH: usize = 10;
/// A 503 or 429 is retried after this pause, at most this many times.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
const MAX_RETRIES: usize = 200;
/// The longest the timed runs of one target may take; fewer runs are
/// reported if it is spent.
const QUERY_BUDGET: Duration = Duration::from_secs(600);
/// Relative difference beyond which two cells disagree.
pub const TOLERANCE: f64 = 1e-6;

/// What the channel workload is asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelSettings {
    pub conversations: usize,
    pub seed: u64,
    pub clients: usize,
    pub dashboard_runs: usize,
    pub repeat: usize,
    pub peers: Vec<PeerKind>,
}

/// Ingest through the API.
#[derive(Debug, Clone, Serialize)]
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
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
}

/// Timed runs of the dashboard query.
#[derive(Debug, Clone, Serialize)]
pub struct QueryFigures {
    pub runs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Cells with a value (zero counts and empty ratios left out).
    pub cells: usize,
}

/// How a peer's cells compare with Tracklog's.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    pub tracklog_cells: usize,
    pub peer_cells: usize,
    /// Cells in both whose values differ beyond [`TOLERANCE`] (relative).
    pub differing: usize,
    pub only_in_tracklog: usize,
    pub only_in_peer: usize,
    pub max_relative_difference: f64,
    /// Disagreements by metric.
    pub by_metric: Vec<(String, usize)>,
    /// The first few disagreements, for investigation.
    pub examples: Vec<String>,
}

impl Agreement {
    pub fn disagreements(&self) -> usize {
        self.differing + self.only_in_tracklog + self.only_in_peer
    }
}

/// One peer in one repetition.
#[derive(Debug, Clone, Serialize)]
pub struct PeerFigures {
    pub peer: PeerKind,
    pub version: String,
    pub load: LoadStats,
    pub query: QueryFigures,
    pub agreement: Agreement,
}

/// One repetition.
#[derive(Debug, Clone, Serialize)]
pub struct Repetition {
    pub ingest: IngestFigures,
    pub disk_bytes: u64,
    /// Over HTTP: `POST /api/v1/metrics/query`.
    pub tracklog_query: QueryFigures,
    /// The same query through the service, without HTTP and JSON.
    pub tracklog_in_process: QueryFigures,
    pub peers: Vec<PeerFigures>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelReport {
    pub date: String,
    pub command_line: String,
    pub settings: ChannelSettings,
    pub machine: Machine,
    /// `/proc/loadavg` when the run started and when it ended: the machine
    /// may be shared, and this says how busy it was.
    pub load_average: (String, String),
    pub dataset: DataSummary,
    pub query: Value,
    /// Medians over the repetitions, by dotted name.
    pub medians: Vec<(String, f64)>,
    pub repetitions: Vec<Repetition>,
}

impl ChannelReport {
    pub fn median(&self, key: &str) -> Option<f64> {
        self.medians.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

/// The dashboard query as `POST /api/v1/metrics/query` takes it.
pub fn dashboard_request() -> Value {
    let time = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    json!({
        "metrics": METRICS,
        "from": time(PERIOD_START_MS),
        "to": time(PERIOD_END_MS),
        "interval": "1h",
        "timezone": "UTC",
        "group_by": "queue",
    })
}

/// Runs the workload and writes `<date>-channel-<conversations>.md` and
/// `.json` under `out`.
pub async fn run(
    settings: ChannelSettings,
    work_dir: &Path,
    out: &Path,
    command_line: String,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    if settings.conversations == 0 || settings.dashboard_runs == 0 || settings.repeat == 0 {
        bail!("--conversations, --dashboard-runs and --repeat must be greater than 0");
    }
    let load_before = load_average();
    eprintln!(
        "generating {} conversations (seed {})",
        settings.conversations, settings.seed
    );
    let data = Arc::new(ChannelData::generate(settings.conversations, settings.seed));
    let dataset = data.summary();
    eprintln!(
        "{} KPI events on sessions, {} sign-ins and outs",
        dataset.session_events, dataset.presence_events
    );
    let clickhouse = if settings.peers.contains(&PeerKind::ClickHouse) {
        eprintln!("starting ClickHouse");
        Some(ClickHouse::start(work_dir).await?)
    } else {
        None
    };
    let postgres = if settings.peers.contains(&PeerKind::Postgres) {
        eprintln!("starting PostgreSQL");
        Some(Postgres::start(work_dir).await?)
    } else {
        None
    };
    let mut repetitions = Vec::with_capacity(settings.repeat);
    for index in 0..settings.repeat {
        eprintln!("repetition {} of {}", index + 1, settings.repeat);
        repetitions.push(
            repetition(
                &settings,
                work_dir,
                &data,
                clickhouse.as_ref(),
                postgres.as_ref(),
            )
            .await?,
        );
    }
    let report = ChannelReport {
        date: jiff::Timestamp::now().strftime("%Y-%m-%d").to_string(),
        command_line,
        machine: Machine::describe(work_dir),
        load_average: (load_before, load_average()),
        dataset,
        query: dashboard_request(),
        medians: medians(&settings, &repetitions),
        settings,
        repetitions,
    };
    report::write(&report, out)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

async fn repetition(
    settings: &ChannelSettings,
    work_dir: &Path,
    data: &Arc<ChannelData>,
    clickhouse: Option<&ClickHouse>,
    postgres: Option<&Postgres>,
) -> anyhow::Result<Repetition> {
    let server = TracklogServer::start(work_dir, Durability::Fsync).await?;
    let http = crate::ingest::http_client(settings.clients)?;
    eprintln!("  Tracklog: ingest through the API");
    let ingest = ingest(&server, &http, data, settings.clients).await?;
    eprintln!(
        "  Tracklog: {:.0} inits/s, {:.0} events/s",
        ingest.init_conversations_per_sec, ingest.events_per_sec
    );
    let disk_bytes = server.disk_bytes()?;
    let body = serde_json::to_vec(&dashboard_request())?;
    let (_, tracklog_cells) = tracklog_query(&server, &http, &body).await?;
    let (server_ref, http_ref, body_ref) = (&server, &http, &body[..]);
    let tracklog_query = timed(settings.dashboard_runs, &tracklog_cells, move || {
        tracklog_query(server_ref, http_ref, body_ref)
    })
    .await?;
    let (_, in_process_cells) = tracklog_in_process(&server).await?;
    let drift = compare(&tracklog_cells, &in_process_cells).disagreements();
    if drift > 0 {
        bail!("the service and the API disagree in {drift} cells");
    }
    let tracklog_in_process = timed(settings.dashboard_runs, &in_process_cells, move || {
        tracklog_in_process(server_ref)
    })
    .await?;
    eprintln!(
        "  Tracklog: dashboard p50 {:.1} ms, p99 {:.1} ms over HTTP; p50 {:.1} ms in-process",
        tracklog_query.p50_ms, tracklog_query.p99_ms, tracklog_in_process.p50_ms
    );
    server.stop().await?;
    let mut peers = Vec::new();
    if let Some(peer) = clickhouse {
        eprintln!("  ClickHouse: bulk load");
        let load = sql::clickhouse_load(peer, data).await?;
        let (_, cells) = sql::clickhouse_query(peer, PERIOD_START_MS, PERIOD_END_MS).await?;
        let query = timed(settings.dashboard_runs, &cells, move || {
            sql::clickhouse_query(peer, PERIOD_START_MS, PERIOD_END_MS)
        })
        .await?;
        let version = peer
            .client()
            .query("SELECT version()")
            .fetch_one::<String>()
            .await?;
        peers.push(peer_figures(
            PeerKind::ClickHouse,
            version,
            load,
            query,
            &tracklog_cells,
            &cells,
        ));
    }
    if let Some(peer) = postgres {
        eprintln!("  PostgreSQL: bulk load");
        let load = sql::postgres_load(peer, data).await?;
        let (_, cells) = sql::postgres_query(peer, PERIOD_START_MS, PERIOD_END_MS).await?;
        let query = timed(settings.dashboard_runs, &cells, move || {
            sql::postgres_query(peer, PERIOD_START_MS, PERIOD_END_MS)
        })
        .await?;
        let version: String = peer
            .client()
            .query_one("SHOW server_version", &[])
            .await?
            .get(0);
        peers.push(peer_figures(
            PeerKind::Postgres,
            version,
            load,
            query,
            &tracklog_cells,
            &cells,
        ));
    }
    Ok(Repetition {
        ingest,
        disk_bytes,
        tracklog_query,
        tracklog_in_process,
        peers,
    })
}

fn peer_figures(
    peer: PeerKind,
    version: String,
    load: LoadStats,
    query: QueryFigures,
    tracklog: &Cells,
    cells: &Cells,
) -> PeerFigures {
    let agreement = compare(tracklog, cells);
    eprintln!(
        "  {}: dashboard p50 {:.1} ms, p99 {:.1} ms; {} of {} cells disagree",
        peer.display_name(),
        query.p50_ms,
        query.p99_ms,
        agreement.disagreements(),
        agreement.tracklog_cells
    );
    PeerFigures {
        peer,
        version,
        load,
        query,
        agreement,
    }
}

// ---- ingest ---------------------------------------------------------------------------

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

async fn ingest(
    server: &TracklogServer,
    http: &reqwest::Client,
    data: &ChannelData,
    clients: usize,
) -> anyhow::Result<IngestFigures> {
    let inits: Vec<Body> = data
        .conversations
        .chunks(INIT_BATCH)
        .map(|chunk| {
            let items: Vec<Value> = chunk.iter().map(data::init_item).collect();
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
            let items: Vec<Value> = chunk.iter().map(data::events_item).collect();
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
            items.push(data::presence_item(*agent, &mine));
        }
        events.push(Body {
            bytes: serde_json::to_vec(&items)?.into(),
            expected,
        });
    }
    let kpi_events: usize = events.iter().map(|b| b.expected).sum();
    let started = Instant::now();
    let mut tally = drive(server, http, "/api/v1/channel/init", inits, clients).await?;
    let init_seconds = started.elapsed().as_secs_f64();
    let events_started = Instant::now();
    let more = drive(server, http, "/api/v1/channel/events", events, clients).await?;
    let events_seconds = events_started.elapsed().as_secs_f64();
    tally.absorb(more);
    let conversations = data.conversations.len();
    Ok(IngestFigures {
        conversations,
        kpi_events,
        init_seconds,
        init_conversations_per_sec: conversations as f64 / init_seconds,
        events_seconds,
        events_per_sec: kpi_events as f64 / events_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        requests: tally.requests,
        retries: tally.retries,
        duplicates: tally.duplicates,
        ack_p50_ms: tally.latencies.quantile_ms(0.5),
        ack_p99_ms: tally.latencies.quantile_ms(0.99),
    })
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        self.latencies.merge(&other.latencies);
        self.requests += other.requests;
        self.retries += other.retries;
        self.duplicates += other.duplicates;
    }
}

/// Posts every body with `clients` concurrent clients; any rejection is an
/// error.
async fn drive(
    server: &TracklogServer,
    http: &reqwest::Client,
    path: &str,
    bodies: Vec<Body>,
    clients: usize,
) -> anyhow::Result<Tally> {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let url = server.url(path);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (bodies, next, url) = (bodies.clone(), next.clone(), url.clone());
        let http = http.clone();
        let authorization = server.authorization.clone();
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
            }
            anyhow::Ok(tally)
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        total.absorb(task.await.context("an ingest client panicked")??);
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
    for retry in 0..=MAX_RETRIES {
        let response = http
            .post(url)
            .header("authorization", authorization)
            .header("content-type", "application/json")
            .body(body.bytes.clone())
            .send()
            .await?;
        let status = response.status();
        if status.as_u16() == 503 || status.as_u16() == 429 {
            tokio::time::sleep(RETRY_PAUSE).await;
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
        return Ok((retry as u64, report.duplicates as u64));
    }
    bail!("{url} stayed overloaded after {MAX_RETRIES} retries")
}

// ---- the dashboard query ----------------------------------------------------------

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
async fn tracklog_query(
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
async fn tracklog_in_process(server: &TracklogServer) -> anyhow::Result<(Duration, Cells)> {
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
async fn timed<F, Fut>(runs: usize, first: &Cells, mut query: F) -> anyhow::Result<QueryFigures>
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

/// Compares a peer's cells with Tracklog's.
pub fn compare(tracklog: &Cells, peer: &Cells) -> Agreement {
    let mut differing = 0;
    let mut only_in_tracklog = 0;
    let mut only_in_peer = 0;
    let mut max_relative: f64 = 0.0;
    let mut by_metric = vec![0usize; METRICS.len()];
    let mut examples = Vec::new();
    let hour = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let note = |examples: &mut Vec<String>, text: String| {
        if examples.len() < 10 {
            examples.push(text);
        }
    };
    for (key, ours) in tracklog {
        let (metric, queue, start) = key;
        match peer.get(key) {
            None => {
                only_in_tracklog += 1;
                by_metric[*metric] += 1;
                note(
                    &mut examples,
                    format!(
                        "{} {queue} {}: Tracklog {ours}, peer none",
                        METRICS[*metric],
                        hour(*start)
                    ),
                );
            }
            Some(theirs) => {
                let scale = ours.abs().max(theirs.abs());
                let relative = if scale == 0.0 {
                    0.0
                } else {
                    (ours - theirs).abs() / scale
                };
                max_relative = max_relative.max(relative);
                if relative > TOLERANCE {
                    differing += 1;
                    by_metric[*metric] += 1;
                    note(
                        &mut examples,
                        format!(
                            "{} {queue} {}: Tracklog {ours}, peer {theirs}",
                            METRICS[*metric],
                            hour(*start)
                        ),
                    );
                }
            }
        }
    }
    for (key, theirs) in peer {
        if !tracklog.contains_key(key) {
            let (metric, queue, start) = key;
            only_in_peer += 1;
            by_metric[*metric] += 1;
            note(
                &mut examples,
                format!(
                    "{} {queue} {}: Tracklog none, peer {theirs}",
                    METRICS[*metric],
                    hour(*start)
                ),
            );
        }
    }
    Agreement {
        tracklog_cells: tracklog.len(),
        peer_cells: peer.len(),
        differing,
        only_in_tracklog,
        only_in_peer,
        max_relative_difference: max_relative,
        by_metric: METRICS
            .iter()
            .zip(by_metric)
            .filter(|(_, n)| *n > 0)
            .map(|(m, n)| ((*m).to_owned(), n))
            .collect(),
        examples,
    }
}

/// The medians over the repetitions, and Tracklog ÷ peer ratios of them.
fn medians(settings: &ChannelSettings, repetitions: &[Repetition]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut put = |key: String, values: Vec<f64>| {
        if let Some(value) = median(&values) {
            out.push((key, value));
        }
    };
    let of = |f: &dyn Fn(&Repetition) -> f64| repetitions.iter().map(f).collect::<Vec<_>>();
    put(
        "tracklog.ingest.init_conversations_per_sec".into(),
        of(&|r| r.ingest.init_conversations_per_sec),
    );
    put(
        "tracklog.ingest.events_per_sec".into(),
        of(&|r| r.ingest.events_per_sec),
    );
    put(
        "tracklog.ingest.total_seconds".into(),
        of(&|r| r.ingest.total_seconds),
    );
    put(
        "tracklog.ingest.ack_p99_ms".into(),
        of(&|r| r.ingest.ack_p99_ms),
    );
    put(
        "tracklog.disk_bytes_per_event".into(),
        of(&|r| r.disk_bytes as f64 / r.ingest.kpi_events.max(1) as f64),
    );
    for field in ["p50_ms", "p99_ms", "max_ms"] {
        put(
            format!("tracklog.dashboard.{field}"),
            of(&|r| query_field(&r.tracklog_query, field)),
        );
        put(
            format!("tracklog_in_process.dashboard.{field}"),
            of(&|r| query_field(&r.tracklog_in_process, field)),
        );
    }
    for peer in &settings.peers {
        let find = |r: &Repetition| r.peers.iter().find(|p| p.peer == *peer).cloned();
        let key = peer.key();
        let figures: Vec<PeerFigures> = repetitions.iter().filter_map(find).collect();
        for field in ["p50_ms", "p99_ms", "max_ms"] {
            let theirs: Vec<f64> = figures
                .iter()
                .map(|p| query_field(&p.query, field))
                .collect();
            put(format!("{key}.dashboard.{field}"), theirs);
            let ratios: Vec<f64> = repetitions
                .iter()
                .zip(&figures)
                .map(|(r, p)| query_field(&r.tracklog_query, field) / query_field(&p.query, field))
                .collect();
            put(format!("ratio.{key}.dashboard.{field}"), ratios);
        }
        put(
            format!("{key}.load.rows_per_sec"),
            figures.iter().map(|p| p.load.rows_per_sec).collect(),
        );
        put(
            format!("{key}.load.seconds"),
            figures.iter().map(|p| p.load.seconds).collect(),
        );
    }
    out
}

fn query_field(q: &QueryFigures, field: &str) -> f64 {
    match field {
        "p50_ms" => q.p50_ms,
        "p99_ms" => q.p99_ms,
        "max_ms" => q.max_ms,
        _ => q.mean_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_counts_each_kind_of_disagreement() {
        let mut ours = Cells::new();
        let mut theirs = Cells::new();
        sql::put(&mut ours, 1, "billing", 0, Some(100.0));
        sql::put(&mut theirs, 1, "billing", 0, Some(100.0 + 1e-9));
        sql::put(&mut ours, 2, "billing", 0, Some(10.0));
        sql::put(&mut theirs, 2, "billing", 0, Some(11.0));
        sql::put(&mut ours, 3, "sales", 0, Some(0.5));
        sql::put(&mut theirs, 4, "sales", 0, Some(0.5));
        // Zero counts and missing values are no cells.
        sql::put(&mut ours, 0, "vip", 0, Some(0.0));
        sql::put(&mut theirs, 5, "vip", 0, None);
        sql::put(&mut theirs, 6, "vip", 0, Some(f64::NAN));
        let agreement = compare(&ours, &theirs);
        assert_eq!(agreement.differing, 1);
        assert_eq!(agreement.only_in_tracklog, 1);
        assert_eq!(agreement.only_in_peer, 1);
        assert_eq!(agreement.disagreements(), 3);
        assert_eq!(agreement.tracklog_cells, 3);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let times: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&times, 0.5), 10.0);
        assert_eq!(nearest_rank(&times, 0.99), 20.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
    }
}
