//! One repetition of the bench, end to end: the machine's limits, Tracklog's
//! ingest matrix (durability × batch size) and queries, then each peer's load
//! and queries, and ClickHouse's small inserts. Every step adds named figures
//! to the repetition's map.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracklog_store::Durability;

use crate::ingest::{self, Endpoint, IngestFigures, IngestPlan};
use crate::lag::{LagFigures, LagSampler};
use crate::machine::Limits;
use crate::payload::{Payloads, push_clickhouse_row};
use crate::peers::clickhouse::{ClickHouse, SMALL_INSERT_ROWS, SmallInserts};
use crate::peers::postgres::Postgres;
use crate::peers::{Peer, PeerKind};
use crate::queries::{self, QueryFigures, QuerySet};
use crate::report::{Figures, Settings, keys};
use crate::tracklog::{InProcess, OverHttp, TracklogServer};
use crate::workload::Dataset;

/// The longest an ingest run of the whole dataset may take.
const FULL_RUN_BUDGET: Duration = Duration::from_secs(3_600);
/// The longest one query set may take on one target.
const QUERY_BUDGET: Duration = Duration::from_secs(300);

/// Progress bars on a terminal, plain lines otherwise.
pub struct Progress {
    multi: MultiProgress,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::new(),
        }
    }

    /// A bar for one phase. It draws on a terminal; elsewhere (a log file,
    /// CI) a line every [`LOG_EVERY`] says how far the phase has come.
    pub fn bar(&self, label: &str, len: usize) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{prefix:>32} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> ");
        let bar = self.multi.add(
            ProgressBar::new(len as u64)
                .with_style(style)
                .with_prefix(label.to_owned()),
        );
        if self.multi.is_hidden() {
            log_lines(&bar, label.to_owned());
        }
        bar
    }

    /// A line of the run's log, above any bar.
    pub fn say(&self, message: String) {
        if self.multi.is_hidden() || self.multi.println(&message).is_err() {
            eprintln!("{message}");
        }
    }
}

/// How often a phase that cannot draw its bar logs a line instead.
pub const LOG_EVERY: Duration = Duration::from_secs(15);

/// Logs the bar's position every [`LOG_EVERY`] until it is finished or
/// dropped. The thread holds only a weak handle, so it never outlives the
/// phase by more than one period.
fn log_lines(bar: &ProgressBar, label: String) {
    let weak = bar.downgrade();
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(LOG_EVERY);
            let Some(bar) = weak.upgrade() else { break };
            if bar.is_finished() {
                break;
            }
            let (position, length) = (bar.position(), bar.length().unwrap_or(0));
            let rate = position as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "  {label}: {position}/{length} ({:.0}%), {rate:.0}/s",
                position as f64 * 100.0 / (length as f64).max(1.0)
            );
        }
    });
}

/// The peers that were asked for, running for the whole bench.
#[derive(Default)]
pub struct Peers {
    pub clickhouse: Option<ClickHouse>,
    pub postgres: Option<Postgres>,
    /// Each peer's server version.
    pub versions: Vec<(PeerKind, String)>,
}

impl Peers {
    /// Starts every requested peer; any that cannot start fails the run.
    pub async fn start(
        kinds: &[PeerKind],
        work_dir: &std::path::Path,
        progress: &Progress,
    ) -> anyhow::Result<Self> {
        let mut peers = Peers::default();
        for kind in kinds {
            progress.say(format!("starting {}", kind.display_name()));
            match kind {
                PeerKind::ClickHouse => {
                    let peer = ClickHouse::start(work_dir).await?;
                    peers.versions.push((*kind, peer.version().await?));
                    peers.clickhouse = Some(peer);
                }
                PeerKind::Postgres => {
                    let peer = Postgres::start(work_dir).await?;
                    peers.versions.push((*kind, peer.version().await?));
                    peers.postgres = Some(peer);
                }
                PeerKind::None => {}
            }
        }
        Ok(peers)
    }
}

/// Everything a repetition needs, built once per bench.
pub struct RunContext {
    pub settings: Settings,
    pub work_dir: PathBuf,
    pub dataset: Arc<Dataset>,
    pub payloads: Arc<Payloads>,
    pub query_sets: Vec<QuerySet>,
    pub peers: Peers,
    pub progress: Progress,
}

/// One repetition.
pub struct Repetition;

impl Repetition {
    pub async fn run(context: &RunContext) -> anyhow::Result<Figures> {
        let mut figures = Figures::new();
        measure_limits(context, &mut figures).await?;
        let reference = tracklog_runs(context, &mut figures).await?;
        if let Some(peer) = &context.peers.clickhouse {
            peer_run(context, peer, &reference, &mut figures).await?;
            small_inserts(context, peer, &mut figures).await?;
        }
        if let Some(peer) = &context.peers.postgres {
            peer_run(context, peer, &reference, &mut figures).await?;
        }
        Ok(figures)
    }
}

async fn measure_limits(context: &RunContext, figures: &mut Figures) -> anyhow::Result<()> {
    let work_dir = context.work_dir.clone();
    let payloads = context.payloads.clone();
    // Blocking I/O and a CPU-bound loop: off the async workers.
    let limits =
        tokio::task::spawn_blocking(move || Limits::measure(&work_dir, &payloads)).await??;
    context.progress.say(format!(
        "machine: write {:.0} MB/s with fdatasync, JSON parse {:.0} events/s on one core",
        limits.write_mb_per_sec, limits.json_parse_events_per_sec
    ));
    figures.insert(keys::WRITE_MB_PER_SEC.into(), limits.write_mb_per_sec);
    figures.insert(
        keys::PARSE_EVENTS_PER_SEC.into(),
        limits.json_parse_events_per_sec,
    );
    figures.insert(
        keys::JSON_BYTES_PER_EVENT.into(),
        limits.json_bytes_per_event,
    );
    Ok(())
}

fn durability_key(durability: Durability) -> &'static str {
    match durability {
        Durability::Fsync => "fsync",
        Durability::Os => "os",
    }
}

/// Every (durability, batch) ingest run on a fresh server. The durable run
/// with the largest batch ingests the whole dataset and is then measured for
/// bytes on disk and queried; its in-process answers are the reference the
/// other targets are checked against.
async fn tracklog_runs(
    context: &RunContext,
    figures: &mut Figures,
) -> anyhow::Result<Vec<QueryFigures>> {
    let settings = &context.settings;
    let http = ingest::http_client(settings.clients)?;
    let full_batch = crate::report::full_batch(settings);
    let mut reference = Vec::new();
    for durability in [Durability::Fsync, Durability::Os] {
        for &batch in &settings.batches {
            let server = TracklogServer::start(&context.work_dir, durability).await?;
            let plan = plan(settings, batch, batch == full_batch, context.payloads.len());
            let (result, lag) = ingest_run(context, &server, &http, durability, &plan).await?;
            record_ingest(figures, durability_key(durability), batch, &result, &lag);
            if durability == Durability::Fsync && batch == full_batch {
                let bytes = server.disk_bytes()?;
                figures.insert(
                    keys::TRACKLOG_BYTES_PER_EVENT.into(),
                    bytes as f64 / result.events.max(1) as f64,
                );
                reference = tracklog_queries(context, &server, &http, figures).await?;
            }
            server.stop().await?;
        }
    }
    Ok(reference)
}

fn plan(settings: &Settings, batch: usize, full: bool, events: usize) -> IngestPlan {
    IngestPlan {
        batch,
        clients: settings.clients,
        max_events: if full {
            events
        } else {
            settings.small_batch_max_events.min(events)
        },
        budget: if full {
            FULL_RUN_BUDGET
        } else {
            Duration::from_secs(settings.run_budget_seconds)
        },
    }
}

async fn ingest_run(
    context: &RunContext,
    server: &TracklogServer,
    http: &reqwest::Client,
    durability: Durability,
    plan: &IngestPlan,
) -> anyhow::Result<(IngestFigures, LagFigures)> {
    let label = format!(
        "tracklog {} batch {}",
        durability_key(durability),
        plan.batch
    );
    let endpoint = Endpoint {
        url: server.url("/api/v1/interactions"),
        authorization: server.authorization.clone(),
        http: http.clone(),
    };
    let bar = context.progress.bar(&label, plan.max_events);
    let sampler = LagSampler::start(server.stores.clone());
    let result = ingest::drive(&endpoint, &context.payloads, plan, &bar).await;
    bar.finish_and_clear();
    let lag = sampler.finish(SETTLE_BOUND).await;
    let result = result?;
    context.progress.say(format!(
        "{label}: {} events, {:.0} events/s, ack p50 {:.2} ms, p99 {:.2} ms; materialiser lag p50 {:.0} ms, p99 {:.0} ms, all applied {:.0} ms after the last ack",
        result.events,
        result.events_per_sec,
        result.ack_p50_ms,
        result.ack_p99_ms,
        lag.p50_ms,
        lag.p99_ms,
        lag.settled_ms
    ));
    Ok((result, lag))
}

/// The longest a bench waits for the materialisers after a load.
pub const SETTLE_BOUND: Duration = Duration::from_secs(600);

fn record_ingest(
    figures: &mut Figures,
    durability: &str,
    batch: usize,
    result: &IngestFigures,
    lag: &LagFigures,
) {
    let mut put = |field: &str, value: f64| {
        figures.insert(keys::ingest(durability, batch, field), value);
    };
    put("events", result.events as f64);
    put("events_per_sec", result.events_per_sec);
    put("lag_p50_ms", lag.p50_ms);
    put("lag_p99_ms", lag.p99_ms);
    put("lag_max_ms", lag.max_ms);
    put("settled_ms", lag.settled_ms);
    // Acknowledged and applied: the rate the tables keep up with.
    put(
        "applied_events_per_sec",
        result.events as f64 / (result.seconds + lag.settled_ms / 1000.0).max(1e-9),
    );
    put("ack_p50_ms", result.ack_p50_ms);
    put("ack_p99_ms", result.ack_p99_ms);
    put("retries", result.retries as f64);
    if let Some(rate) = result.first_tenth_events_per_sec {
        put("first_tenth_events_per_sec", rate);
    }
    if let Some(rate) = result.last_tenth_events_per_sec {
        put("last_tenth_events_per_sec", rate);
    }
}

async fn tracklog_queries(
    context: &RunContext,
    server: &TracklogServer,
    http: &reqwest::Client,
    figures: &mut Figures,
) -> anyhow::Result<Vec<QueryFigures>> {
    let cases = queries::named_cases(&context.query_sets);
    context
        .progress
        .say(format!("creating the {} queried cases", cases.len()));
    server.create_cases(http, &context.dataset, &cases).await?;
    let over_http = OverHttp {
        server,
        http: http.clone(),
    };
    let mut reference = Vec::new();
    for set in &context.query_sets {
        let in_process =
            query_run(context, &InProcess(server), set, keys::TRACKLOG_IN_PROCESS).await?;
        record_query(figures, set.name, keys::TRACKLOG_IN_PROCESS, &in_process, 0);
        let http_figures = query_run(context, &over_http, set, keys::TRACKLOG_HTTP).await?;
        let mismatches = queries::mismatches(&in_process, &http_figures);
        record_query(
            figures,
            set.name,
            keys::TRACKLOG_HTTP,
            &http_figures,
            mismatches,
        );
        reference.push(in_process);
    }
    Ok(reference)
}

async fn query_run<T: queries::QueryTarget>(
    context: &RunContext,
    target: &T,
    set: &QuerySet,
    target_name: &str,
) -> anyhow::Result<QueryFigures> {
    let label = format!("{} on {target_name}", set.name);
    let bar = context.progress.bar(&label, set.queries.len());
    let result = queries::run_set(target, set, QUERY_BUDGET, || bar.inc(1)).await;
    bar.finish_and_clear();
    let result = result?;
    context.progress.say(format!(
        "{label}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {} rows",
        result.p50_ms, result.p99_ms, result.max_ms, result.rows
    ));
    Ok(result)
}

fn record_query(
    figures: &mut Figures,
    set: &str,
    target: &str,
    result: &QueryFigures,
    mismatches: usize,
) {
    let mut put = |field: &str, value: f64| {
        figures.insert(keys::query(set, target, field), value);
    };
    put("queries", result.queries as f64);
    put("rows", result.rows as f64);
    put("p50_ms", result.p50_ms);
    put("p99_ms", result.p99_ms);
    put("max_ms", result.max_ms);
    put("mismatches", mismatches as f64);
}

/// Loads a peer from empty, then runs every query set against it.
async fn peer_run<P: Peer>(
    context: &RunContext,
    peer: &P,
    reference: &[QueryFigures],
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let key = peer.kind().key();
    peer.reset().await?;
    let bar = context
        .progress
        .bar(&format!("{key} load"), context.dataset.events.len());
    let load = peer.load(&context.dataset, &bar).await;
    bar.finish_and_clear();
    let load = load?;
    context.progress.say(format!(
        "{key} load: {:.0} rows/s, {:.1} bytes/event",
        load.rows_per_sec, load.bytes_per_event
    ));
    figures.insert(keys::peer_load(key, "rows_per_sec"), load.rows_per_sec);
    figures.insert(
        keys::peer_load(key, "bytes_per_event"),
        load.bytes_per_event,
    );
    figures.insert(keys::peer_load(key, "seconds"), load.seconds);
    for (set, reference) in context.query_sets.iter().zip(reference) {
        let result = query_run(context, peer, set, key).await?;
        record_query(
            figures,
            set.name,
            key,
            &result,
            queries::mismatches(reference, &result),
        );
    }
    Ok(())
}

/// Once its bulk-loaded table has been measured and queried: the table
/// recreated and the same rows inserted as an application without Tracklog
/// would, 500 at a time from `--clients` clients; then emptied, since
/// nothing later reads it.
async fn small_inserts(
    context: &RunContext,
    peer: &ClickHouse,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let key = peer.kind().key();
    peer.reset().await?;
    let dataset = &context.dataset;
    let bar = context
        .progress
        .bar(&format!("{key} 500-row inserts"), dataset.events.len());
    let mut next = 0;
    let result = peer
        .insert_small(
            "INSERT INTO interactions FORMAT JSONEachRow",
            |body: &mut Vec<u8>, rows: usize| {
                let chunk = &dataset.events[next..(next + rows).min(dataset.events.len())];
                for event in chunk {
                    push_clickhouse_row(body, dataset, event);
                }
                next += chunk.len();
                Ok(chunk.len())
            },
            SMALL_INSERT_ROWS,
            context.settings.clients,
            &bar,
        )
        .await;
    bar.finish_and_clear();
    let result = result?;
    peer.reset().await?;
    say_small_inserts(&context.progress, key, &result);
    record_small_inserts(figures, key, &result);
    Ok(())
}

/// The progress line of a peer's small inserts.
pub fn say_small_inserts(progress: &Progress, key: &str, result: &SmallInserts) {
    progress.say(format!(
        "{key} 500-row inserts: {} rows, {:.0} rows/s, {} retries after \"Too many parts\", {} delayed{}",
        result.rows,
        result.rows_per_sec,
        result.retries,
        result.delayed,
        if result.stopped_at_budget {
            "; stopped at the time budget"
        } else {
            ""
        }
    ));
}

fn record_small_inserts(figures: &mut Figures, peer: &str, result: &SmallInserts) {
    let mut put = |field: &str, value: f64| {
        figures.insert(keys::peer_small_inserts(peer, field), value);
    };
    put("rows", result.rows as f64);
    put("requests", result.requests as f64);
    put("seconds", result.seconds);
    put("rows_per_sec", result.rows_per_sec);
    put("retries", result.retries as f64);
    put("delayed", result.delayed as f64);
}

impl RunContext {
    /// How the figures were taken, for the report's notes.
    pub fn notes(&self) -> Vec<String> {
        let settings = &self.settings;
        let mut notes = vec![
            format!(
                "Tracklog runs in-process with its default configuration except the data directory and `ingest.durability`; {} concurrent HTTP/1.1 keep-alive clients post JSON arrays to `/api/v1/interactions` with Basic auth, on the same {} cores as the server. An acknowledgement is the request's round trip; every event must be accepted.",
                settings.clients,
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            format!(
                "The largest batch ({}) sends the whole dataset; smaller batches send at most {} events or run {} s, whichever comes first.",
                settings.batches.iter().max().copied().unwrap_or(0),
                settings.small_batch_max_events,
                settings.run_budget_seconds
            ),
            "Bytes on disk: Tracklog counts tracklog.db and tracklog.db-wal right after the durable ingest with the largest batch, once the WAL is checkpointed into the database and truncated (it is scratch space, bounded and reused); ClickHouse, the compressed bytes of the table's active parts; PostgreSQL, pg_total_relation_size (heap, TOAST, primary key and contact index; WAL not counted).".into(),
            "Journeys fetch every page (1,000 items each) from Tracklog; the peers return the whole window in one query. Timelines fetch the first 100. Queries run one at a time after the load, on the same random cases for every target; a row count that differs from Tracklog in-process is counted as a mismatch.".into(),
        ];
        for (kind, version) in &self.peers.versions {
            notes.push(match kind {
                PeerKind::ClickHouse => format!(
                    "ClickHouse {version}: MergeTree partitioned by month and ordered by (org, contact, ts); loaded over HTTP as JSONEachRow, 50,000 rows per INSERT, 2 in flight; queried through the clickhouse crate (RowBinary). After the queries, the table is recreated and the same rows inserted as an application without Tracklog would: `INSERT INTO interactions FORMAT JSONEachRow` requests of {SMALL_INSERT_ROWS} rows from {} concurrent clients, in time order; an insert refused with \"Too many parts\" (code 252) is sent again after 100 ms and counted as a retry, and \"delayed\" counts the inserts the server held back while merges caught up.",
                    settings.clients
                ),
                PeerKind::Postgres => format!(
                    "PostgreSQL {version}: primary key (org_id, id) and an index on (org_id, contact_id, ts); one COPY FROM STDIN in text format; shared_buffers 1 GB, max_wal_size 4 GB, fsync and synchronous_commit at their defaults (on); queried with prepared statements through tokio-postgres."
                ),
                PeerKind::None => continue,
            });
        }
        if self.peers.versions.is_empty() {
            notes.push("No peers ran.".into());
        }
        if self.payloads.on_the_fly() {
            notes.push(format!(
                "The dataset has more than {} events, so each batch's JSON was rendered from the compact events when a client took it, instead of once before the runs: the clients' rendering shares the cores with the server during ingest. The JSON parse limit and the bytes per event come from the first {} events.",
                crate::report::format_number(Some(settings.prerender_max_events as f64)),
                crate::report::format_number(Some(crate::machine::PARSE_SAMPLE as f64)),
            ));
        }
        notes
    }
}
