//! The targets of the audit workload: Tracklog over HTTP, and an `audit`
//! table in each peer, indexed the way a user of that database would index
//! an activity log.
//!
//! - **Tracklog**: records posted in batches of [`BATCH`] by [`CLIENTS`]
//!   concurrent clients (each batch durable and hash-chained before it is
//!   acknowledged); queries through `GET /api/v1/audit/search`, whose answer
//!   carries the exact count; export through `GET /api/v1/audit/export`.
//! - **ClickHouse**: a MergeTree ordered by (org, user, creation_time),
//!   loaded as `JSONEachRow`; free text with `positionCaseInsensitive` over
//!   `fields` and `query` (18.16 has no token bloom-filter index); export as
//!   `TabSeparatedRaw` over HTTP.
//! - **PostgreSQL**: one `COPY`, then the same indexes as Tracklog's
//!   (sequence, id, time, user, entity, operation) and a GIN index over
//!   `to_tsvector('simple', fields || ' ' || query)`, built after the load
//!   as one does for a bulk load; export with `COPY ... TO STDOUT`.
//!
//! Every query asks for the first page of [`PAGE`] newest first and the
//! exact count of matches; peers run the page and the count as two
//! statements, timed together.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use serde::Deserialize;
use tracklog_store::Durability;

use super::{Answer, Case, Exported, PAGE, Records};
use crate::overload::Backoff;
use crate::payload::{PEER_ORG, copy_escape};
use crate::peers::clickhouse::ClickHouse;
use crate::peers::postgres::Postgres;
use crate::peers::{LOAD_BUDGET, LoadFigures};
use crate::tracklog::TracklogServer;

/// Records per Tracklog request, and requests in flight.
pub const BATCH: usize = 500;
pub const CLIENTS: usize = 4;
/// Rows per peer insert or COPY chunk, and ClickHouse inserts in flight.
const PEER_CHUNK: usize = 50_000;
const PEER_INSERTS_IN_FLIGHT: usize = 2;
/// The longest an export or a verification may take.
const EXPORT_BUDGET: Duration = Duration::from_secs(3_600);

/// What the workload does with every target.
pub(crate) trait AuditTarget {
    /// The target's key in figure names.
    fn key(&self) -> &'static str;
    /// Empties the target.
    async fn reset(&self) -> anyhow::Result<()>;
    /// Loads the seeded records; the figures include the bytes on disk.
    async fn load(
        &self,
        seed: u64,
        records: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<LoadFigures>;
    /// Answers one case: the exact count and the first page.
    async fn query(&self, case: &Case) -> anyhow::Result<Answer>;
    /// Streams every record out, newest first.
    async fn export(&self) -> anyhow::Result<Exported>;
}

/// Counts the lines of an export and those of the workload's own records,
/// across chunk boundaries.
#[derive(Default)]
pub struct LineCounter {
    lines: u64,
    workload: u64,
    partial: Vec<u8>,
}

/// How a workload record's id appears in its JSON, in every target.
const WORKLOAD_ID: &[u8] = b"\"Id\":\"bench-";

impl LineCounter {
    pub fn push(&mut self, chunk: &[u8]) {
        let finder = memchr::memmem::Finder::new(WORKLOAD_ID);
        let mut rest = chunk;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let line = &rest[..end];
            let found = if self.partial.is_empty() {
                finder.find(line).is_some()
            } else {
                self.partial.extend_from_slice(line);
                let found = finder.find(&self.partial).is_some();
                self.partial.clear();
                found
            };
            self.lines += 1;
            self.workload += u64::from(found);
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
    }

    pub fn finish(self) -> Exported {
        let trailing = !self.partial.is_empty();
        let found = trailing && memchr::memmem::find(&self.partial, WORKLOAD_ID).is_some();
        Exported {
            lines: self.lines + u64::from(trailing),
            workload_records: self.workload + u64::from(found),
        }
    }
}

/// Drains a byte stream into a [`LineCounter`], within [`EXPORT_BUDGET`].
async fn count_stream<S, B, E>(mut stream: S) -> anyhow::Result<Exported>
where
    S: futures::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::error::Error + Send + Sync + 'static,
{
    let deadline = Instant::now() + EXPORT_BUDGET;
    let mut counter = LineCounter::default();
    while let Some(chunk) = stream.next().await {
        if Instant::now() > deadline {
            bail!("the export took longer than {EXPORT_BUDGET:?}");
        }
        counter.push(chunk?.as_ref());
    }
    Ok(counter.finish())
}

/// Drains an HTTP response into a [`LineCounter`], within [`EXPORT_BUDGET`].
async fn count_response(mut response: reqwest::Response) -> anyhow::Result<Exported> {
    let deadline = Instant::now() + EXPORT_BUDGET;
    let mut counter = LineCounter::default();
    while let Some(chunk) = response.chunk().await? {
        if Instant::now() > deadline {
            bail!("the export took longer than {EXPORT_BUDGET:?}");
        }
        counter.push(&chunk);
    }
    Ok(counter.finish())
}

fn timestamp(ms: i64) -> anyhow::Result<String> {
    Ok(format!("{:.3}", jiff::Timestamp::from_millisecond(ms)?))
}

/// Tracklog: the real server on a fresh data directory, over HTTP.
pub struct TracklogAudit {
    server: TracklogServer,
    http: reqwest::Client,
}

/// A verification's outcome and duration.
pub struct Verified {
    pub records_checked: u64,
    pub seconds: f64,
}

#[derive(Deserialize)]
struct SearchPage {
    items: Vec<serde::de::IgnoredAny>,
    count: u64,
}

#[derive(Deserialize)]
struct IngestReport {
    accepted: usize,
    rejected: Vec<serde_json::Value>,
    excluded: usize,
}

impl TracklogAudit {
    pub async fn start(work_dir: &std::path::Path) -> anyhow::Result<Self> {
        Ok(Self {
            server: TracklogServer::start(work_dir, Durability::Fsync).await?,
            http: crate::ingest::http_client(CLIENTS)?,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await
    }

    /// Verifies the whole chain through the API; a break is an error.
    pub async fn verify(&self) -> anyhow::Result<Verified> {
        let started = Instant::now();
        let body: serde_json::Value = self
            .http
            .get(self.server.url("/api/v1/audit/verify"))
            .header("authorization", &self.server.authorization)
            .timeout(EXPORT_BUDGET)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        if body["ok"] != true {
            bail!("Tracklog's chain does not verify: {body}");
        }
        Ok(Verified {
            records_checked: body["records_checked"].as_u64().unwrap_or(0),
            seconds,
        })
    }

    async fn post(&self, body: bytes::Bytes, size: usize) -> anyhow::Result<()> {
        let mut backoff = Backoff::default();
        loop {
            let response = self
                .http
                .post(self.server.url("/api/v1/audit/records"))
                .header("authorization", &self.server.authorization)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await?;
            let status = response.status();
            if Backoff::is_overload(status) {
                backoff.wait("audit ingest", &response).await?;
                continue;
            }
            if !status.is_success() {
                bail!("audit ingest answered {status}: {}", response.text().await?);
            }
            let report: IngestReport = response.json().await?;
            if report.accepted != size || !report.rejected.is_empty() || report.excluded != 0 {
                bail!(
                    "audit ingest accepted {} of {size} records ({} excluded); first rejection: {:?}",
                    report.accepted,
                    report.excluded,
                    report.rejected.first()
                );
            }
            return Ok(());
        }
    }
}

impl AuditTarget for TracklogAudit {
    fn key(&self) -> &'static str {
        super::keys::TRACKLOG
    }

    async fn reset(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn load(
        &self,
        seed: u64,
        records: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<LoadFigures> {
        let started = Instant::now();
        let deadline = started + LOAD_BUDGET;
        let sampler = crate::lag::LagSampler::start(self.server.stores.clone());
        let mut generator = Records::new(seed, records);
        let batches = futures::stream::iter(std::iter::from_fn(move || {
            let batch = generator.chunk_values(BATCH);
            (!batch.is_empty()).then_some(batch)
        }));
        batches
            .map(|batch| async move {
                if Instant::now() > deadline {
                    bail!("loading Tracklog took longer than {LOAD_BUDGET:?}");
                }
                let size = batch.len();
                let body = bytes::Bytes::from(serde_json::to_vec(&batch)?);
                self.post(body, size).await?;
                progress.inc(size as u64);
                Ok(())
            })
            .buffer_unordered(CLIENTS)
            .try_collect::<()>()
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        // Bytes and queries once everything acknowledged is applied.
        let lag = sampler.finish(crate::runner::SETTLE_BOUND).await;
        let mut figures = LoadFigures::new(records, seconds, self.server.disk_bytes()?);
        figures.lag = Some(lag);
        Ok(figures)
    }

    async fn query(&self, case: &Case) -> anyhow::Result<Answer> {
        let limit = PAGE.to_string();
        let mut params: Vec<(&str, String)> = vec![("limit", limit)];
        match case {
            Case::User { user, from_ms } => {
                params.push(("user", user.clone()));
                params.push(("from", timestamp(*from_ms)?));
            }
            Case::Text { word } => params.push(("q", (*word).to_owned())),
        }
        let page: SearchPage = self
            .http
            .get(self.server.url("/api/v1/audit/search"))
            .query(&params)
            .header("authorization", &self.server.authorization)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(Answer {
            count: page.count,
            rows: page.items.len(),
        })
    }

    async fn export(&self) -> anyhow::Result<Exported> {
        let response = self
            .http
            .get(self.server.url("/api/v1/audit/export?format=jsonl"))
            .header("authorization", &self.server.authorization)
            // Longer than the client's per-request limit: the whole stream.
            .timeout(EXPORT_BUDGET)
            .send()
            .await?
            .error_for_status()?;
        count_response(response).await
    }
}

const CLICKHOUSE_TABLE: &str = "CREATE TABLE audit (
    org Int64,
    seq UInt64,
    id String,
    creation_time Int64,
    operation String,
    user String,
    entity_name String,
    fields String,
    query String,
    record String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(creation_time, 1000)))
ORDER BY (org, user, creation_time)";

/// What every ClickHouse statement of a case filters on.
fn clickhouse_where(case: &Case) -> &'static str {
    match case {
        Case::User { .. } => "org = ? AND user = ? AND creation_time >= ?",
        Case::Text { .. } => {
            "org = ? AND (positionCaseInsensitive(fields, ?) > 0 OR positionCaseInsensitive(query, ?) > 0)"
        }
    }
}

fn clickhouse_bind(mut query: clickhouse::query::Query, case: &Case) -> clickhouse::query::Query {
    query = query.bind(PEER_ORG);
    match case {
        Case::User { user, from_ms } => query.bind(user.as_str()).bind(*from_ms),
        Case::Text { word } => query.bind(*word).bind(*word),
    }
}

pub(crate) fn push_clickhouse_row(out: &mut Vec<u8>, row: &super::Row) -> anyhow::Result<()> {
    serde_json::to_writer(
        &mut *out,
        &serde_json::json!({
            "org": PEER_ORG,
            "seq": row.ordinal,
            "id": row.id,
            "creation_time": row.creation_ms,
            "operation": row.operation,
            "user": row.user,
            "entity_name": row.entity,
            "fields": row.fields,
            "query": "",
            "record": row.record,
        }),
    )?;
    out.push(b'\n');
    Ok(())
}

impl AuditTarget for ClickHouse {
    fn key(&self) -> &'static str {
        "clickhouse"
    }

    async fn reset(&self) -> anyhow::Result<()> {
        self.client
            .query("DROP TABLE IF EXISTS audit")
            .execute()
            .await?;
        self.client.query(CLICKHOUSE_TABLE).execute().await?;
        Ok(())
    }

    async fn load(
        &self,
        seed: u64,
        records: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<LoadFigures> {
        let started = Instant::now();
        let deadline = started + LOAD_BUDGET;
        let mut generator = Records::new(seed, records);
        let chunks = futures::stream::iter(std::iter::from_fn(move || {
            let rows = generator.chunk_rows(PEER_CHUNK);
            (!rows.is_empty()).then_some(rows)
        }));
        chunks
            .map(|rows| async move {
                if Instant::now() > deadline {
                    bail!("loading ClickHouse took longer than {LOAD_BUDGET:?}");
                }
                let mut body = Vec::with_capacity(rows.len() * 700);
                for row in &rows {
                    push_clickhouse_row(&mut body, row)?;
                }
                let response = self
                    .http
                    .post(&self.url)
                    .query(&[("query", "INSERT INTO audit FORMAT JSONEachRow")])
                    .body(body)
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("ClickHouse refused an insert: {}", response.text().await?);
                }
                progress.inc(rows.len() as u64);
                Ok(())
            })
            .buffer_unordered(PEER_INSERTS_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let bytes = self
            .client
            .query("SELECT toUInt64(sum(bytes)) FROM system.parts WHERE active AND database = currentDatabase() AND table = 'audit'")
            .fetch_one::<u64>()
            .await?;
        Ok(LoadFigures::new(records, seconds, bytes))
    }

    async fn query(&self, case: &Case) -> anyhow::Result<Answer> {
        let filter = clickhouse_where(case);
        let page_sql = format!(
            "SELECT record FROM audit WHERE {filter} ORDER BY creation_time DESC, seq DESC LIMIT {PAGE}"
        );
        let rows = clickhouse_bind(self.client.query(&page_sql), case)
            .fetch_all::<String>()
            .await?;
        let count_sql = format!("SELECT count() FROM audit WHERE {filter}");
        let count = clickhouse_bind(self.client.query(&count_sql), case)
            .fetch_one::<u64>()
            .await?;
        Ok(Answer {
            count,
            rows: rows.len(),
        })
    }

    async fn export(&self) -> anyhow::Result<Exported> {
        let sql = format!(
            "SELECT record FROM audit WHERE org = {PEER_ORG} ORDER BY creation_time DESC, seq DESC FORMAT TabSeparatedRaw"
        );
        let response = self
            .http
            .post(&self.url)
            // A sort bigger than this spills to disk instead of failing.
            .query(&[("max_bytes_before_external_sort", "2000000000")])
            .timeout(EXPORT_BUDGET)
            .body(sql)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("ClickHouse refused the export: {}", response.text().await?);
        }
        count_response(response).await
    }
}

const POSTGRES_TABLE: &str = "
DROP TABLE IF EXISTS audit;
CREATE TABLE audit (
    org_id        bigint NOT NULL,
    seq           bigint NOT NULL,
    id            text NOT NULL,
    creation_time bigint NOT NULL,
    operation     text NOT NULL,
    user_name     text,
    entity_name   text,
    fields        text,
    query         text,
    record        text NOT NULL
);";

/// The columns of each COPY line, in order.
const POSTGRES_COLUMNS: &str =
    "org_id, seq, id, creation_time, operation, user_name, entity_name, fields, query, record";

/// Built after the COPY, as one does for a bulk load; counted in the load.
const POSTGRES_INDEXES: &str = "
SET maintenance_work_mem = '1GB';
ALTER TABLE audit ADD PRIMARY KEY (org_id, seq);
CREATE UNIQUE INDEX audit_by_id ON audit (org_id, id);
CREATE INDEX audit_by_time ON audit (org_id, creation_time, seq);
CREATE INDEX audit_by_user ON audit (org_id, user_name, creation_time);
CREATE INDEX audit_by_entity ON audit (org_id, entity_name, creation_time);
CREATE INDEX audit_by_operation ON audit (org_id, operation, creation_time);
CREATE INDEX audit_text ON audit
    USING gin (to_tsvector('simple', coalesce(fields, '') || ' ' || coalesce(query, '')));
RESET maintenance_work_mem;
ANALYZE audit;";

fn postgres_where(case: &Case) -> &'static str {
    match case {
        Case::User { .. } => "org_id = $1 AND user_name = $2 AND creation_time >= $3",
        Case::Text { .. } => {
            "org_id = $1 AND to_tsvector('simple', coalesce(fields, '') || ' ' || coalesce(query, '')) \
             @@ plainto_tsquery('simple', $2)"
        }
    }
}

fn push_copy_row(out: &mut String, row: &super::Row) {
    let _ = writeln!(
        out,
        "{PEER_ORG}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t\t{}",
        row.ordinal,
        copy_escape(&row.id),
        row.creation_ms,
        row.operation,
        copy_escape(&row.user),
        row.entity,
        copy_escape(&row.fields),
        copy_escape(&row.record),
    );
}

impl AuditTarget for Postgres {
    fn key(&self) -> &'static str {
        "postgres"
    }

    async fn reset(&self) -> anyhow::Result<()> {
        self.client.batch_execute(POSTGRES_TABLE).await?;
        Ok(())
    }

    async fn load(
        &self,
        seed: u64,
        records: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<LoadFigures> {
        let started = Instant::now();
        let deadline = started + LOAD_BUDGET;
        let sink = self
            .client
            .copy_in::<_, bytes::Bytes>(&format!("COPY audit ({POSTGRES_COLUMNS}) FROM STDIN"))
            .await?;
        futures::pin_mut!(sink);
        let mut generator = Records::new(seed, records);
        loop {
            if Instant::now() > deadline {
                bail!("loading PostgreSQL took longer than {LOAD_BUDGET:?}");
            }
            let rows = generator.chunk_rows(PEER_CHUNK);
            if rows.is_empty() {
                break;
            }
            let mut text = String::with_capacity(rows.len() * 700);
            for row in &rows {
                push_copy_row(&mut text, row);
            }
            sink.send(bytes::Bytes::from(text)).await?;
            progress.inc(rows.len() as u64);
        }
        let copied = sink.as_mut().finish().await?;
        anyhow::ensure!(
            copied == records as u64,
            "PostgreSQL copied {copied} of {records} rows"
        );
        self.client
            .batch_execute(POSTGRES_INDEXES)
            .await
            .context("building PostgreSQL's indexes")?;
        let seconds = started.elapsed().as_secs_f64();
        let bytes: i64 = self
            .client
            .query_one("SELECT pg_total_relation_size('audit')", &[])
            .await?
            .get(0);
        Ok(LoadFigures::new(records, seconds, bytes as u64))
    }

    async fn query(&self, case: &Case) -> anyhow::Result<Answer> {
        let filter = postgres_where(case);
        let page_sql = format!(
            "SELECT record FROM audit WHERE {filter} ORDER BY creation_time DESC, seq DESC LIMIT {PAGE}"
        );
        let count_sql = format!("SELECT count(*) FROM audit WHERE {filter}");
        let page = self.statement(&page_sql).await?;
        let count = self.statement(&count_sql).await?;
        let (rows, count) = match case {
            Case::User { user, from_ms } => (
                self.client
                    .query(&page, &[&PEER_ORG, user, from_ms])
                    .await?,
                self.client
                    .query_one(&count, &[&PEER_ORG, user, from_ms])
                    .await?,
            ),
            Case::Text { word } => (
                self.client.query(&page, &[&PEER_ORG, word]).await?,
                self.client.query_one(&count, &[&PEER_ORG, word]).await?,
            ),
        };
        let count: i64 = count.get(0);
        Ok(Answer {
            count: count as u64,
            rows: rows.len(),
        })
    }

    async fn export(&self) -> anyhow::Result<Exported> {
        let stream = self
            .client
            .copy_out(&format!(
                "COPY (SELECT record FROM audit WHERE org_id = {PEER_ORG} \
                 ORDER BY creation_time DESC, seq DESC) TO STDOUT"
            ))
            .await?;
        futures::pin_mut!(stream);
        count_stream(stream).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_across_chunks() {
        let text = b"{\"Id\":\"bench-1\"}\n{\"Id\":\"other\"}\n{\"a\":1,\"Id\":\"bench-2\"}\n{\"Id\":\"bench-3\"}";
        for split in 0..text.len() {
            let mut counter = LineCounter::default();
            counter.push(&text[..split]);
            counter.push(&text[split..]);
            let exported = counter.finish();
            assert_eq!(exported.lines, 4, "split at {split}");
            assert_eq!(exported.workload_records, 3, "split at {split}");
        }
    }
}
