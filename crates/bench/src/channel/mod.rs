//! The contact-centre channel workload (`tracklog bench --workload
//! channel`): seeded conversations with their sessions and KPI events,
//! loaded into Tracklog through `POST /api/v1/channel/init` and
//! `/api/v1/channel/events` by concurrent clients, then the dashboard query
//! — thirteen metrics over 30 days, hourly, by queue — timed through
//! `POST /api/v1/metrics/query`. The same conversations, sessions and events
//! are bulk-loaded raw into ClickHouse and PostgreSQL, whose SQL
//! ([`sql`]) computes the same metrics from the raw events; the run checks
//! that every peer's cells agree with Tracklog's and reports those that do
//! not.
//!
//! - [`data`]: the seeded conversations and their request items.
//! - [`ingest`]: Tracklog's ingest, with its acknowledgement latency and
//!   the materialisers' lag.
//! - [`dashboard`]: the dashboard query on Tracklog, and timed runs.
//! - [`sql`]: the peers' tables, loads and SQL.
//! - [`baselines`]: the request items' parse limits, and ClickHouse's
//!   500-row inserts.
//! - [`medians`] and [`report`]: the figures and their rendering.

pub mod baselines;
pub mod dashboard;
pub mod data;
pub mod ingest;
pub mod items;
pub mod medians;
pub mod postgres_sql;
pub mod report;
pub mod sql;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use serde::Serialize;
use serde_json::{Value, json};
use tracklog_store::Durability;

use self::baselines::ParseLimits;
use self::dashboard::{timed, tracklog_in_process, tracklog_query};
use self::data::{ChannelData, DataSummary, PERIOD_END_MS, PERIOD_START_MS};
use self::ingest::IngestFigures;
use self::sql::{Cells, LoadStats, METRICS};
use crate::machine::Machine;
use crate::peers::PeerKind;
use crate::peers::clickhouse::{ClickHouse, SmallInserts};
use crate::peers::postgres::Postgres;
use crate::tracklog::TracklogServer;

/// Relative difference beyond which two cells disagree.
pub const TOLERANCE: f64 = 1e-6;
/// Absolute difference within which two cells agree whatever their ratio:
/// a mean sentiment whose true value is 0 comes out as ±1e-17 from sums
/// taken in different orders.
pub const ABSOLUTE_TOLERANCE: f64 = 1e-12;

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
#[derive(Debug, Clone, Default, Serialize)]
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
    /// ClickHouse only: the same rows in 500-row inserts from `--clients`
    /// clients.
    pub small_inserts: Option<SmallInserts>,
    pub query: QueryFigures,
    pub agreement: Agreement,
}

/// One repetition.
#[derive(Debug, Clone, Serialize)]
pub struct Repetition {
    /// The request items' single-core parse rates, measured first.
    pub parse: ParseLimits,
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
        medians: medians::medians(&settings, &repetitions),
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
    let parse = baselines::parse_limits(data).await?;
    eprintln!(
        "  machine: JSON parse {:.0} inits/s, {:.0} KPI events/s on one core",
        parse.inits_per_sec, parse.events_per_sec
    );
    let server = TracklogServer::start(work_dir, Durability::Fsync).await?;
    let http = crate::ingest::http_client(settings.clients)?;
    eprintln!("  Tracklog: ingest through the API");
    let ingest = ingest::ingest(&server, &http, data, settings.clients).await?;
    let lag = &ingest.lag;
    eprintln!(
        "  Tracklog: {:.0} inits/s, {:.0} events/s, events ack p50 {:.1} ms, p99 {:.1} ms; materialiser lag p50 {:.0} ms, p99 {:.0} ms, all applied {:.0} ms after the last ack",
        ingest.init_conversations_per_sec,
        ingest.events_per_sec,
        ingest.events_ack_p50_ms,
        ingest.events_ack_p99_ms,
        lag.p50_ms,
        lag.p99_ms,
        lag.settled_ms
    );
    // Everything acknowledged is applied by now.
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
        let mut figures = peer_figures(
            PeerKind::ClickHouse,
            version,
            load,
            query,
            &tracklog_cells,
            &cells,
        );
        // The tables are recreated: nothing later reads the bulk load.
        eprintln!("  ClickHouse: 500-row inserts");
        let small = baselines::clickhouse_small_inserts(peer, data, settings.clients).await?;
        eprintln!(
            "  ClickHouse: {} rows in 500-row inserts, {:.0} rows/s, {} retries after \"Too many parts\", {} delayed",
            small.rows, small.rows_per_sec, small.retries, small.delayed
        );
        figures.small_inserts = Some(small);
        peers.push(figures);
    }
    if let Some(peer) = postgres {
        eprintln!("  PostgreSQL: bulk load");
        let load = postgres_sql::postgres_load(peer, data).await?;
        let (_, cells) = postgres_sql::postgres_query(peer, PERIOD_START_MS, PERIOD_END_MS).await?;
        let query = timed(settings.dashboard_runs, &cells, move || {
            postgres_sql::postgres_query(peer, PERIOD_START_MS, PERIOD_END_MS)
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
        parse,
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
        small_inserts: None,
        query,
        agreement,
    }
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
                let absolute = (ours - theirs).abs();
                if absolute > ABSOLUTE_TOLERANCE {
                    max_relative = max_relative.max(relative);
                }
                if relative > TOLERANCE && absolute > ABSOLUTE_TOLERANCE {
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
}
