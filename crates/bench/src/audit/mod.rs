//! The activity-log workload (`tracklog bench --workload audit`): seeded
//! audit records written to Tracklog through `POST /api/v1/audit/records`
//! and bulk-loaded into ClickHouse and PostgreSQL, then the three questions
//! an auditor asks most, put to every target:
//!
//! - `user_30_days`: one user's last 30 days, newest first, the first page
//!   of 100 with the exact count of matches;
//! - `free_text`: a word in `Fields` or `Query`, newest first, the first
//!   page of 100 with the exact count;
//! - `export`: every record streamed out, newest first.
//!
//! Tracklog's whole hash chain is then verified (`GET /api/v1/audit/verify`).
//! Every target answers the same random cases; a count or a page that
//! differs from Tracklog's is reported as a mismatch.
//!
//! - [`targets`]: Tracklog over HTTP, and the audit table of each peer.
//! - [`baselines`]: the records' parse limit, and ClickHouse's 500-row
//!   inserts.
//! - [`report`]: figures, medians, ratios and the markdown rendering.

pub mod baselines;
pub mod report;
pub mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::peers::PeerKind;
use crate::report::Figures;
use crate::runner::{Peers, Progress};
use crate::stats::Latencies;
use targets::{AuditTarget, TracklogAudit};

/// The simulated period ends here (a fixed instant, so runs compare).
pub const PERIOD_END_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
pub const PERIOD_DAYS: i64 = 60;
pub const DAY_MS: i64 = 86_400_000;
pub const USERS: usize = 200;
/// The page every query asks for.
pub const PAGE: usize = 100;
const OPERATIONS: [&str; 8] = [
    "Retrieve",
    "RetrieveMultiple",
    "Create",
    "Update",
    "Update",
    "Delete",
    "ExportToExcel",
    "SignIn",
];
const ENTITIES: [&str; 6] = [
    "account",
    "contact",
    "incident",
    "opportunity",
    "new_project",
    "systemuser",
];
/// Words that free-text searches look for in `Fields`.
pub const WORDS: [&str; 12] = [
    "gold",
    "silver",
    "renewal",
    "escalated",
    "refund",
    "churn",
    "priority",
    "vip",
    "overdue",
    "contract",
    "trial",
    "upgrade",
];
/// The longest one query set may take on one target; the figures say how
/// many queries ran.
const QUERY_BUDGET: Duration = Duration::from_secs(300);

/// One generated record, with the columns the peers index.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1, 2, 3...: the order of generation, which the peers store as `seq`.
    pub ordinal: u64,
    pub id: String,
    pub creation_ms: i64,
    pub operation: &'static str,
    pub user: String,
    pub entity: &'static str,
    /// `Fields` as JSON text.
    pub fields: String,
    /// The whole record as posted, as JSON text.
    pub record: String,
}

/// One generated record, as the API takes it.
pub fn record(rng: &mut StdRng, ordinal: usize) -> Value {
    let user = rng.random_range(0..USERS);
    let operation = OPERATIONS[rng.random_range(0..OPERATIONS.len())];
    let entity = ENTITIES[rng.random_range(0..ENTITIES.len())];
    let time = PERIOD_END_MS - rng.random_range(0..PERIOD_DAYS * DAY_MS);
    let word = WORDS[rng.random_range(0..WORDS.len())];
    let time = jiff::Timestamp::from_millisecond(time)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_default();
    json!({
        "Id": format!("bench-{ordinal:09}"),
        "CreationTime": time,
        "Operation": operation,
        "User": format!("user{user:03}@example.com"),
        "UserType": "Regular",
        "ClientIP": format!("10.0.{}.{}", user / 250, user % 250),
        "EntityName": entity,
        "EntityId": format!("{entity}-{}", rng.random_range(0..100_000)),
        "ResultStatus": "Success",
        "Fields": {"tier": {"old": "silver", "new": word}, "note": format!("{word} case {ordinal}")},
    })
}

/// The records of a run, generated in order from the seed: every target
/// gets the same records without the run holding them all in memory.
pub struct Records {
    rng: StdRng,
    next: usize,
    total: usize,
}

impl Records {
    pub fn new(seed: u64, total: usize) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            next: 0,
            total,
        }
    }

    /// The next record as the API takes it.
    pub fn next_value(&mut self) -> Option<Value> {
        if self.next >= self.total {
            return None;
        }
        let value = record(&mut self.rng, self.next);
        self.next += 1;
        Some(value)
    }

    /// Up to `n` records as API JSON.
    pub fn chunk_values(&mut self, n: usize) -> Vec<Value> {
        std::iter::from_fn(|| self.next_value()).take(n).collect()
    }

    /// Up to `n` records as rows for the peers.
    pub fn chunk_rows(&mut self, n: usize) -> Vec<Row> {
        let mut rows = Vec::with_capacity(n.min(self.total - self.next.min(self.total)));
        while rows.len() < n {
            let ordinal = self.next as u64 + 1;
            let Some(value) = self.next_value() else {
                break;
            };
            rows.push(row_of(ordinal, &value));
        }
        rows
    }
}

fn row_of(ordinal: u64, value: &Value) -> Row {
    let text = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
    let name = |name: &str, choices: &[&'static str]| {
        let found = value[name].as_str().unwrap_or_default();
        choices.iter().copied().find(|c| *c == found).unwrap_or("")
    };
    let creation_ms = value["CreationTime"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_millisecond());
    Row {
        ordinal,
        id: text("Id"),
        creation_ms,
        operation: name("Operation", &OPERATIONS),
        user: text("User"),
        entity: name("EntityName", &ENTITIES),
        fields: value["Fields"].to_string(),
        record: value.to_string(),
    }
}

/// One question put to every target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Case {
    /// `user`'s records since `from_ms`, newest first.
    User { user: String, from_ms: i64 },
    /// Records with `word` in `Fields` or `Query`, newest first.
    Text { word: &'static str },
}

/// What a target answered: the exact count and the first page's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub count: u64,
    pub rows: usize,
}

/// What an export streamed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// Every line.
    pub lines: u64,
    /// Lines of the workload's own records (`"Id":"bench-`); Tracklog also
    /// exports the records it writes about itself, such as the bench
    /// policy's creation.
    pub workload_records: u64,
}

/// The cases of each query set, drawn from the seed.
pub fn cases(seed: u64, queries: usize) -> (Vec<Case>, Vec<Case>) {
    let mut rng = StdRng::seed_from_u64(seed.rotate_left(32));
    let from_ms = PERIOD_END_MS - 30 * DAY_MS;
    let mut users = Vec::with_capacity(queries);
    let mut texts = Vec::with_capacity(queries);
    for _ in 0..queries {
        users.push(Case::User {
            user: format!("user{:03}@example.com", rng.random_range(0..USERS)),
            from_ms,
        });
        texts.push(Case::Text {
            word: WORDS[rng.random_range(0..WORDS.len())],
        });
    }
    (users, texts)
}

/// How the audit bench was asked to run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditSettings {
    pub records: usize,
    pub repeat: usize,
    pub queries: usize,
    pub seed: u64,
    /// Concurrent clients of ClickHouse's 500-row inserts.
    pub clients: usize,
    pub peers: Vec<PeerKind>,
}

/// Figure names of the audit workload.
pub mod keys {
    pub const SETS: [&str; 2] = ["user_30_days", "free_text"];
    pub const TRACKLOG: &str = "tracklog";

    /// `load.<target>.<field>`: Tracklog's durable ingest, the peers' bulk load.
    pub fn load(target: &str, field: &str) -> String {
        format!("load.{target}.{field}")
    }

    pub fn query(set: &str, target: &str, field: &str) -> String {
        format!("query.{set}.{target}.{field}")
    }

    pub fn export(target: &str, field: &str) -> String {
        format!("export.{target}.{field}")
    }

    pub fn verify(field: &str) -> String {
        format!("verify.tracklog.{field}")
    }

    /// The same records inserted 500 at a time by concurrent clients.
    pub fn small_inserts(target: &str, field: &str) -> String {
        format!("small_inserts.{target}.{field}")
    }

    /// The machine's limits, measured in the run.
    pub fn machine(field: &str) -> String {
        format!("machine.{field}")
    }

    /// Tracklog's durable ingest ÷ the records' single-core parse rate.
    pub const FRACTION_OF_PARSE: &str = "fraction.load_of_json_parse";

    pub fn ratio(figure: &str, peer: &str) -> String {
        format!("ratio.{figure}.{peer}")
    }
}

/// Runs the workload `settings.repeat` times and writes the report under
/// `out`; returns the markdown and JSON paths.
pub async fn run(
    settings: &AuditSettings,
    work_dir: &Path,
    out: &Path,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    anyhow::ensure!(
        settings.records > 0 && settings.repeat > 0 && settings.queries > 0 && settings.clients > 0,
        "--events, --repeat, --queries and --clients must be greater than 0"
    );
    let progress = Progress::new();
    let peers = Peers::start(&settings.peers, work_dir, &progress).await?;
    let (users, texts) = cases(settings.seed, settings.queries);
    let mut repetitions = Vec::with_capacity(settings.repeat);
    for index in 0..settings.repeat {
        progress.say(format!("repetition {} of {}", index + 1, settings.repeat));
        repetitions.push(repetition(settings, work_dir, &peers, &users, &texts, &progress).await?);
    }
    let report = report::AuditReport::new(settings, work_dir, &peers, repetitions);
    report.write(out)
}

/// Every target's answers to one query set, kept to compare with Tracklog's.
type Answers = Vec<Answer>;

async fn repetition(
    settings: &AuditSettings,
    work_dir: &Path,
    peers: &Peers,
    users: &[Case],
    texts: &[Case],
    progress: &Progress,
) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let parse = baselines::parse_limit(settings, &mut figures).await?;
    progress.say(format!(
        "machine: JSON parse {parse:.0} records/s on one core"
    ));
    let tracklog = TracklogAudit::start(work_dir).await?;
    let reference = measure_target(
        &tracklog,
        settings,
        users,
        texts,
        None,
        progress,
        &mut figures,
    )
    .await?;
    progress.say("tracklog: verifying the whole chain".into());
    let verified = tracklog.verify().await?;
    figures.insert(keys::verify("seconds"), verified.seconds);
    figures.insert(
        keys::verify("records_checked"),
        verified.records_checked as f64,
    );
    figures.insert(
        keys::verify("records_per_sec"),
        verified.records_checked as f64 / verified.seconds.max(1e-9),
    );
    progress.say(format!(
        "tracklog verify: {} records in {:.2} s",
        verified.records_checked, verified.seconds
    ));
    tracklog.stop().await?;
    if let Some(peer) = &peers.clickhouse {
        measure_target(
            peer,
            settings,
            users,
            texts,
            Some(&reference),
            progress,
            &mut figures,
        )
        .await?;
        // Recreated for the small inserts, then emptied again, so that its
        // disk is free before the next target loads.
        baselines::clickhouse_small_inserts(peer, settings, progress, &mut figures).await?;
    }
    if let Some(peer) = &peers.postgres {
        measure_target(
            peer,
            settings,
            users,
            texts,
            Some(&reference),
            progress,
            &mut figures,
        )
        .await?;
        // Empty again, so that its disk is free before the next target loads.
        peer.reset().await?;
    }
    Ok(figures)
}

/// Tracklog's answers, the reference the peers are checked against.
struct Reference {
    sets: [Answers; 2],
    export: Exported,
}

/// Loads one target, runs both query sets and the export.
async fn measure_target<T: AuditTarget>(
    target: &T,
    settings: &AuditSettings,
    users: &[Case],
    texts: &[Case],
    reference: Option<&Reference>,
    progress: &Progress,
    figures: &mut Figures,
) -> anyhow::Result<Reference> {
    let key = target.key();
    target.reset().await?;
    let bar = progress.bar(&format!("{key} load"), settings.records);
    let load = target.load(settings.seed, settings.records, &bar).await;
    bar.finish_and_clear();
    let load = load?;
    progress.say(format!(
        "{key} load: {} records in {:.1} s, {:.0} records/s, {:.0} bytes/record",
        load.rows, load.seconds, load.rows_per_sec, load.bytes_per_event
    ));
    figures.insert(keys::load(key, "records"), load.rows as f64);
    figures.insert(keys::load(key, "seconds"), load.seconds);
    figures.insert(keys::load(key, "records_per_sec"), load.rows_per_sec);
    figures.insert(keys::load(key, "bytes_per_record"), load.bytes_per_event);
    if let Some(lag) = load.lag {
        progress.say(format!(
            "{key} materialiser lag p50 {:.0} ms, p99 {:.0} ms, all applied {:.0} ms after the last ack",
            lag.p50_ms, lag.p99_ms, lag.settled_ms
        ));
        figures.insert(keys::load(key, "lag_p50_ms"), lag.p50_ms);
        figures.insert(keys::load(key, "lag_p99_ms"), lag.p99_ms);
        figures.insert(keys::load(key, "lag_max_ms"), lag.max_ms);
        figures.insert(keys::load(key, "settled_ms"), lag.settled_ms);
        figures.insert(
            keys::load(key, "applied_records_per_sec"),
            load.rows as f64 / (load.seconds + lag.settled_ms / 1000.0).max(1e-9),
        );
    }

    let mut sets: [Answers; 2] = [Vec::new(), Vec::new()];
    for (index, (set, cases)) in keys::SETS.iter().zip([users, texts]).enumerate() {
        let bar = progress.bar(&format!("{set} on {key}"), cases.len());
        let result = run_cases(target, cases, || bar.inc(1)).await;
        bar.finish_and_clear();
        let (latencies, answers) = result?;
        let mismatches = reference.map_or(0, |r| count_mismatches(&r.sets[index], &answers));
        let put = |figures: &mut Figures, field: &str, value: f64| {
            figures.insert(keys::query(set, key, field), value);
        };
        put(figures, "queries", latencies.count() as f64);
        put(figures, "p50_ms", latencies.quantile_ms(0.5));
        put(figures, "p99_ms", latencies.quantile_ms(0.99));
        put(figures, "max_ms", latencies.max_ms());
        put(
            figures,
            "matches",
            answers.iter().map(|a| a.count).sum::<u64>() as f64,
        );
        put(
            figures,
            "rows",
            answers.iter().map(|a| a.rows as u64).sum::<u64>() as f64,
        );
        put(figures, "mismatches", mismatches as f64);
        progress.say(format!(
            "{set} on {key}: {} queries, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {mismatches} mismatches",
            latencies.count(),
            latencies.quantile_ms(0.5),
            latencies.quantile_ms(0.99),
            latencies.max_ms()
        ));
        sets[index] = answers;
    }

    let started = Instant::now();
    let exported = target.export().await?;
    let seconds = started.elapsed().as_secs_f64();
    figures.insert(keys::export(key, "lines"), exported.lines as f64);
    figures.insert(
        keys::export(key, "records"),
        exported.workload_records as f64,
    );
    figures.insert(keys::export(key, "seconds"), seconds);
    figures.insert(
        keys::export(key, "records_per_sec"),
        exported.lines as f64 / seconds.max(1e-9),
    );
    let expected = reference.map_or(settings.records as u64, |r| r.export.workload_records);
    figures.insert(
        keys::export(key, "mismatch"),
        f64::from(u8::from(exported.workload_records != expected)),
    );
    progress.say(format!(
        "{key} export: {} lines ({} workload records) in {seconds:.1} s",
        exported.lines, exported.workload_records
    ));
    Ok(Reference {
        sets,
        export: exported,
    })
}

/// Runs the cases one at a time, stopping at [`QUERY_BUDGET`].
async fn run_cases<T: AuditTarget>(
    target: &T,
    cases: &[Case],
    on_query: impl Fn(),
) -> anyhow::Result<(Latencies, Answers)> {
    let deadline = Instant::now() + QUERY_BUDGET;
    let mut latencies = Latencies::default();
    let mut answers = Vec::with_capacity(cases.len());
    for case in cases {
        if Instant::now() > deadline {
            break;
        }
        let started = Instant::now();
        let answer = target.query(case).await?;
        latencies.record(started.elapsed());
        answers.push(answer);
        on_query();
    }
    Ok((latencies, answers))
}

/// Cases whose count or first page differs from the reference's; a case
/// only one of the two ran is not counted.
pub fn count_mismatches(reference: &[Answer], other: &[Answer]) -> usize {
    reference.iter().zip(other).filter(|(a, b)| a != b).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_rows_are_the_same_records() {
        let mut values = Records::new(3, 5);
        let mut rows = Records::new(3, 5);
        let values = values.chunk_values(10);
        let rows = rows.chunk_rows(10);
        assert_eq!((values.len(), rows.len()), (5, 5));
        for (value, row) in values.iter().zip(&rows) {
            assert_eq!(row.record, value.to_string());
            assert_eq!(value["Id"], row.id);
            assert_eq!(value["User"], row.user);
            assert!(row.creation_ms > PERIOD_END_MS - PERIOD_DAYS * DAY_MS);
            assert!(!row.operation.is_empty() && !row.entity.is_empty());
        }
        assert_eq!(rows[0].ordinal, 1);
        assert_eq!(rows[4].ordinal, 5);
    }

    #[test]
    fn a_different_answer_is_a_mismatch() {
        let a = Answer { count: 3, rows: 3 };
        let b = Answer { count: 4, rows: 3 };
        assert_eq!(count_mismatches(&[a, a], &[a, b]), 1);
        assert_eq!(count_mismatches(&[a, b], &[a]), 0);
    }
}
