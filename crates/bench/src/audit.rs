//! The activity-log workload (`tracklog bench --workload audit`): seeded
//! audit records written through `POST /api/v1/audit/records`, then the
//! three queries an auditor runs most — one user's last 30 days, free text
//! over `Fields` and `Query`, and a full export — timed over HTTP.
//!
//! [`PEER_SQL`] holds the same schema and queries for ClickHouse and
//! PostgreSQL, so that the figures can be set beside theirs; running them is
//! left to the peers' own tooling for now.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tracklog_store::Durability;

use crate::tracklog::TracklogServer;

/// The simulated period ends here (a fixed instant, so runs compare).
const PERIOD_END_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const PERIOD_DAYS: i64 = 60;
const DAY_MS: i64 = 86_400_000;
const USERS: usize = 200;
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
const WORDS: [&str; 12] = [
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

/// The equivalent schema and queries in the peers' SQL.
pub const PEER_SQL: [(&str, &str); 2] = [
    (
        "ClickHouse",
        "CREATE TABLE audit (org UInt32, seq UInt64, id String, creation_time DateTime64(3), \
         operation LowCardinality(String), user String, entity_name LowCardinality(String), \
         fields String, query String, record String, INDEX text fields TYPE tokenbf_v1(8192, 3, 0) GRANULARITY 4) \
         ENGINE = MergeTree ORDER BY (org, user, creation_time);\n\
         SELECT record FROM audit WHERE org = 1 AND user = {user:String} AND creation_time >= {from:DateTime64(3)} \
         ORDER BY creation_time DESC, seq DESC LIMIT 100;\n\
         SELECT record FROM audit WHERE org = 1 AND hasToken(fields, {word:String}) ORDER BY creation_time DESC LIMIT 100;\n\
         SELECT record FROM audit WHERE org = 1 ORDER BY creation_time DESC FORMAT JSONEachRow;",
    ),
    (
        "PostgreSQL",
        "CREATE TABLE audit (org int, seq bigint, id text, creation_time timestamptz, operation text, \
         \"user\" text, entity_name text, fields jsonb, query text, record jsonb, \
         search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(fields::text,'') || ' ' || coalesce(query,''))) STORED, \
         PRIMARY KEY (org, seq));\n\
         CREATE INDEX ON audit (org, \"user\", creation_time); CREATE INDEX ON audit USING gin (search);\n\
         SELECT record FROM audit WHERE org = 1 AND \"user\" = $1 AND creation_time >= $2 ORDER BY creation_time DESC, seq DESC LIMIT 100;\n\
         SELECT record FROM audit WHERE org = 1 AND search @@ plainto_tsquery('simple', $1) ORDER BY creation_time DESC LIMIT 100;\n\
         COPY (SELECT record FROM audit WHERE org = 1 ORDER BY creation_time DESC) TO STDOUT;",
    ),
];

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

/// Latency quantiles of one kind of query, in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Summary {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl Summary {
    /// Nearest-rank quantiles of the times given.
    pub fn of(times: &mut [f64]) -> Self {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if times.is_empty() {
                return 0.0;
            }
            let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
            times[rank - 1]
        };
        Self {
            p50: at(0.5),
            p95: at(0.95),
            max: at(1.0),
        }
    }
}

/// What the audit workload measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditFigures {
    pub records: usize,
    pub ingest_records_per_sec: f64,
    pub user_30_days: Summary,
    pub free_text: Summary,
    pub export_records: u64,
    pub export_records_per_sec: f64,
    pub disk_bytes: u64,
}

/// Writes `records` records, then times `queries` searches of each kind and
/// one full JSON-lines export.
pub async fn measure(
    work_dir: &Path,
    records: usize,
    queries: usize,
    seed: u64,
) -> anyhow::Result<AuditFigures> {
    let server = TracklogServer::start(work_dir, Durability::Fsync).await?;
    let http = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut ordinal = 0;
    while ordinal < records {
        let batch: Vec<Value> = (ordinal..(ordinal + 500).min(records))
            .map(|i| record(&mut rng, i))
            .collect();
        ordinal += batch.len();
        let response = http
            .post(server.url("/api/v1/audit/records"))
            .header("Authorization", &server.authorization)
            .json(&batch)
            .send()
            .await?
            .error_for_status()?;
        let report: Value = response.json().await?;
        anyhow::ensure!(
            report["rejected"].as_array().is_some_and(Vec::is_empty),
            "records were rejected: {report}"
        );
    }
    let ingest_seconds = started.elapsed().as_secs_f64();

    let from = jiff::Timestamp::from_millisecond(PERIOD_END_MS - 30 * DAY_MS)?;
    let mut user_times = Vec::with_capacity(queries);
    let mut text_times = Vec::with_capacity(queries);
    for _ in 0..queries {
        let user = format!("user{:03}@example.com", rng.random_range(0..USERS));
        let path = format!("/api/v1/audit/search?user={user}&from={from:.3}&limit=100");
        user_times.push(timed_get(&http, &server, &path).await?);
        let word = WORDS[rng.random_range(0..WORDS.len())];
        let path = format!("/api/v1/audit/search?q={word}&limit=100");
        text_times.push(timed_get(&http, &server, &path).await?);
    }

    let started = Instant::now();
    let text = http
        .get(server.url("/api/v1/audit/export?format=jsonl"))
        .header("Authorization", &server.authorization)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let export_seconds = started.elapsed().as_secs_f64();
    let export_records = text.lines().count() as u64;
    let disk_bytes = server.disk_bytes()?;
    server.stop().await?;
    Ok(AuditFigures {
        records,
        ingest_records_per_sec: records as f64 / ingest_seconds,
        user_30_days: Summary::of(&mut user_times),
        free_text: Summary::of(&mut text_times),
        export_records,
        export_records_per_sec: export_records as f64 / export_seconds,
        disk_bytes,
    })
}

async fn timed_get(
    http: &reqwest::Client,
    server: &TracklogServer,
    path: &str,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    http.get(server.url(path))
        .header("Authorization", &server.authorization)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Runs the workload and writes `audit.md` and `audit.json` under `out`.
pub async fn run(
    work_dir: &Path,
    out: &Path,
    records: usize,
    queries: usize,
    seed: u64,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let figures = measure(work_dir, records, queries, seed).await?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json_path = out.join("audit.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&figures)?)?;
    let mut markdown = format!(
        "# Activity log workload\n\n{} records over {PERIOD_DAYS} days, {USERS} users, seed {seed}; \
         {queries} queries of each kind, over HTTP.\n\n\
         | figure | value |\n|---|---|\n\
         | ingest (fsync, batches of 500) | {:.0} records/s |\n\
         | one user, last 30 days (p50 / p95) | {:.2} / {:.2} ms |\n\
         | free text over Fields (p50 / p95) | {:.2} / {:.2} ms |\n\
         | export, JSON lines | {} records at {:.0} records/s |\n\
         | disk | {:.0} bytes/record |\n\n",
        figures.records,
        figures.ingest_records_per_sec,
        figures.user_30_days.p50,
        figures.user_30_days.p95,
        figures.free_text.p50,
        figures.free_text.p95,
        figures.export_records,
        figures.export_records_per_sec,
        figures.disk_bytes as f64 / figures.records.max(1) as f64,
    );
    markdown.push_str("## The same in the peers' SQL (not run by this workload yet)\n\n");
    for (peer, sql) in PEER_SQL {
        markdown.push_str(&format!("### {peer}\n\n```sql\n{sql}\n```\n\n"));
    }
    let md_path = out.join("audit.md");
    std::fs::write(&md_path, markdown)?;
    Ok((md_path, json_path))
}
