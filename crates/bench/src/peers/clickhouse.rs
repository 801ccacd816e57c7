//! ClickHouse as a peer: Debian's `clickhouse-server`, started on loopback
//! with a generated configuration, its own data directory and free ports.
//!
//! Rows are loaded over HTTP as `JSONEachRow` into a MergeTree ordered by
//! (org, contact, ts), the layout a ClickHouse user would pick for
//! per-contact reads. Queries go through the official `clickhouse` crate,
//! which needs `with_validation(false)` against 18.16; times are Int64
//! milliseconds because 18.16 has no DateTime64.
//!
//! Besides the bulk load, [`ClickHouse::insert_small`] inserts rows the way
//! an application without Tracklog would: small `INSERT ... FORMAT
//! JSONEachRow` requests from many concurrent clients, each request a new
//! part that the server must merge.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::stream::{self, StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::process::{ServerProcess, find_binary, free_port, wait_until_ready};
use super::{LOAD_BUDGET, LoadFigures, Peer, PeerKind};
use crate::payload::{PEER_ORG, push_clickhouse_row};
use crate::queries::{Query, QueryTarget};
use crate::workload::Dataset;

/// Rows per INSERT request, and requests in flight.
const ROWS_PER_INSERT: usize = 50_000;
const INSERTS_IN_FLIGHT: usize = 2;

/// Rows per request of the small inserts.
pub const SMALL_INSERT_ROWS: usize = 500;
/// An insert refused because merges fall behind ("Too many parts", code
/// 252) is sent again after this pause, at most this many times.
const TOO_MANY_PARTS_PAUSE: Duration = Duration::from_millis(100);
const TOO_MANY_PARTS_RETRIES: usize = 600;

const CREATE_TABLE: &str = "CREATE TABLE interactions (
    org Int64,
    contact String,
    ts Int64,
    id String,
    type String,
    portal String,
    session String,
    fields String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(ts, 1000)))
ORDER BY (org, contact, ts)";

/// A running ClickHouse and its clients.
pub struct ClickHouse {
    _process: ServerProcess,
    _dir: tempfile::TempDir,
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) client: clickhouse::Client,
}

/// One row as a journey or timeline returns it.
#[derive(clickhouse::Row, Deserialize)]
#[allow(dead_code)] // Fetched so that every store returns whole rows.
struct InteractionRow {
    id: String,
    #[serde(rename = "type")]
    interaction_type: String,
    portal: String,
    contact: String,
    session: String,
    ts: i64,
    fields: String,
}

impl ClickHouse {
    /// Starts the server; an error names the package when it is missing.
    pub async fn start(work_dir: &Path) -> anyhow::Result<Self> {
        let binary = find_binary(&["clickhouse-server"], &[]).context(
            "ClickHouse was requested (--peers) but clickhouse-server is not installed: \
             install Debian's clickhouse-server package (scripts/bench-peers.sh does)",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("tracklog-bench-clickhouse-")
            .tempdir_in(work_dir)?;
        let http_port = free_port()?;
        let config = write_config(dir.path(), http_port, free_port()?)?;
        let mut command = Command::new(binary);
        command.arg(format!("--config-file={}", config.display()));
        let mut process = ServerProcess::spawn(
            "clickhouse-server",
            command,
            libc::SIGTERM,
            dir.path().join("stdout.log"),
        )?;
        let url = format!("http://127.0.0.1:{http_port}");
        let http = crate::ingest::http_client(INSERTS_IN_FLIGHT)?;
        let ping = format!("{url}/ping");
        wait_until_ready(&mut process, Duration::from_secs(60), || {
            let request = http.get(&ping).send();
            async move { request.await.is_ok_and(|r| r.status().is_success()) }
        })
        .await?;
        let client = clickhouse::Client::default()
            .with_url(&url)
            .with_validation(false);
        Ok(Self {
            _process: process,
            _dir: dir,
            url,
            http,
            client,
        })
    }

    async fn insert(
        &self,
        dataset: &Dataset,
        chunk: &[crate::workload::Event],
    ) -> anyhow::Result<()> {
        let mut body = Vec::with_capacity(chunk.len() * 300);
        for event in chunk {
            push_clickhouse_row(&mut body, dataset, event);
        }
        let response = self
            .http
            .post(&self.url)
            .query(&[("query", "INSERT INTO interactions FORMAT JSONEachRow")])
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("ClickHouse refused an insert: {}", response.text().await?);
        }
        Ok(())
    }

    /// The query client, for workloads with tables of their own.
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// Posts `body` as the data of `query` (an `INSERT ... FORMAT ...`).
    pub async fn insert_raw(&self, query: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let response = self
            .http
            .post(&self.url)
            .query(&[("query", query)])
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("ClickHouse refused an insert: {}", response.text().await?);
        }
        Ok(())
    }

    /// Inserts rows in requests of at most `rows_per_insert` from `clients`
    /// concurrent clients, each request `query` (an `INSERT ... FORMAT
    /// ...`) with a body from `body`, which appends up to the number of
    /// rows it is given to the buffer and returns how many it appended (0
    /// when there are no more). The bodies are taken in order; the run
    /// stops when `body` has no more rows or after [`LOAD_BUDGET`], and
    /// the figures say how many rows went in.
    pub async fn insert_small<G>(
        &self,
        query: &str,
        body: G,
        rows_per_insert: usize,
        clients: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<SmallInserts>
    where
        G: FnMut(&mut Vec<u8>, usize) -> anyhow::Result<usize>,
    {
        let http = crate::ingest::http_client(clients)?;
        let delayed_before = self.delayed_inserts().await?;
        let started = Instant::now();
        let deadline = started + LOAD_BUDGET;
        let stopped = AtomicBool::new(false);
        let mut body = body;
        let bodies = std::iter::from_fn(|| {
            if Instant::now() > deadline {
                stopped.store(true, Ordering::Relaxed);
                return None;
            }
            let mut buffer = Vec::with_capacity(rows_per_insert * 400);
            match body(&mut buffer, rows_per_insert) {
                Ok(0) => None,
                Ok(rows) => Some(Ok((bytes::Bytes::from(buffer), rows))),
                Err(error) => Some(Err(error)),
            }
        });
        let (rows, requests, retries) = stream::iter(bodies)
            .map(|item| {
                let http = &http;
                async move {
                    let (buffer, rows) = item?;
                    let retries = self.post_small(http, query, buffer, deadline).await?;
                    progress.inc(rows as u64);
                    anyhow::Ok((rows, retries))
                }
            })
            .buffer_unordered(clients.max(1))
            .try_fold(
                (0, 0, 0),
                |(rows, requests, retries), (more, again)| async move {
                    Ok((rows + more, requests + 1, retries + again))
                },
            )
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let delayed = self.delayed_inserts().await?.saturating_sub(delayed_before);
        Ok(SmallInserts {
            rows,
            requests,
            seconds,
            rows_per_sec: rows as f64 / seconds.max(1e-9),
            retries,
            delayed,
            stopped_at_budget: stopped.load(Ordering::Relaxed),
        })
    }

    /// Posts one small insert until it is taken; returns how many times
    /// merges falling behind refused it first.
    async fn post_small(
        &self,
        http: &reqwest::Client,
        query: &str,
        body: bytes::Bytes,
        deadline: Instant,
    ) -> anyhow::Result<usize> {
        for retry in 0..=TOO_MANY_PARTS_RETRIES {
            let response = http
                .post(&self.url)
                .query(&[("query", query)])
                .body(body.clone())
                .send()
                .await?;
            if response.status().is_success() {
                return Ok(retry);
            }
            let text = response.text().await?;
            if !is_too_many_parts(&text) || Instant::now() > deadline {
                bail!("ClickHouse refused an insert: {}", text.trim());
            }
            tokio::time::sleep(TOO_MANY_PARTS_PAUSE).await;
        }
        bail!("ClickHouse refused an insert {TOO_MANY_PARTS_RETRIES} times with \"Too many parts\"")
    }

    /// Inserts the server has delayed since it started because a partition
    /// had too many parts (its `DelayedInserts` counter).
    async fn delayed_inserts(&self) -> anyhow::Result<u64> {
        Ok(self
            .client
            .query("SELECT toUInt64(sum(value)) FROM system.events WHERE event = 'DelayedInserts'")
            .fetch_one::<u64>()
            .await?)
    }

    /// Compressed bytes of the table's active parts.
    async fn table_bytes(&self) -> anyhow::Result<u64> {
        let bytes = self
            .client
            .query("SELECT toUInt64(sum(bytes)) FROM system.parts WHERE active AND database = currentDatabase() AND table = 'interactions'")
            .fetch_one::<u64>()
            .await?;
        Ok(bytes)
    }
}

/// What [`ClickHouse::insert_small`] measured.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SmallInserts {
    pub rows: usize,
    pub requests: usize,
    pub seconds: f64,
    pub rows_per_sec: f64,
    /// Inserts refused with "Too many parts" (code 252) and sent again.
    pub retries: usize,
    /// Inserts the server held back before taking them, because merges
    /// fell behind.
    pub delayed: u64,
    /// Whether the time budget ran out before every row was sent.
    pub stopped_at_budget: bool,
}

impl SmallInserts {
    /// The figures of this run and of `next`, run after it, together.
    pub fn then(&self, next: &SmallInserts) -> SmallInserts {
        let rows = self.rows + next.rows;
        let seconds = self.seconds + next.seconds;
        SmallInserts {
            rows,
            requests: self.requests + next.requests,
            seconds,
            rows_per_sec: rows as f64 / seconds.max(1e-9),
            retries: self.retries + next.retries,
            delayed: self.delayed + next.delayed,
            stopped_at_budget: self.stopped_at_budget || next.stopped_at_budget,
        }
    }
}

/// ClickHouse's refusal of an insert while merges fall behind.
fn is_too_many_parts(answer: &str) -> bool {
    answer.contains("Code: 252") || answer.contains("TOO_MANY_PARTS")
}

impl Peer for ClickHouse {
    fn kind(&self) -> PeerKind {
        PeerKind::ClickHouse
    }

    async fn version(&self) -> anyhow::Result<String> {
        Ok(self
            .client
            .query("SELECT version()")
            .fetch_one::<String>()
            .await?)
    }

    /// Drops and recreates the table, so each repetition loads from empty.
    async fn reset(&self) -> anyhow::Result<()> {
        self.client
            .query("DROP TABLE IF EXISTS interactions")
            .execute()
            .await?;
        self.client.query(CREATE_TABLE).execute().await?;
        Ok(())
    }

    /// Inserts every event and measures the rate and the bytes on disk.
    async fn load(&self, dataset: &Dataset, progress: &ProgressBar) -> anyhow::Result<LoadFigures> {
        let started = Instant::now();
        let deadline = started + LOAD_BUDGET;
        let chunks = dataset.events.chunks(ROWS_PER_INSERT);
        stream::iter(chunks.map(Ok::<_, anyhow::Error>))
            .try_for_each_concurrent(INSERTS_IN_FLIGHT, |chunk| async move {
                if Instant::now() > deadline {
                    bail!("loading ClickHouse took longer than {LOAD_BUDGET:?}");
                }
                self.insert(dataset, chunk).await?;
                progress.inc(chunk.len() as u64);
                Ok(())
            })
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let bytes = self.table_bytes().await?;
        Ok(LoadFigures::new(dataset.events.len(), seconds, bytes))
    }
}

impl QueryTarget for ClickHouse {
    async fn run(&self, query: &Query) -> anyhow::Result<usize> {
        let Query::ContactWindow {
            contact,
            from_ms,
            to_ms,
            ..
        } = query;
        let limit = query.row_limit();
        // 18.16 has no server-side parameters; `bind` escapes on the client.
        let mut sql = String::from(
            "SELECT id, type, portal, contact, session, ts, fields FROM interactions \
             WHERE org = ? AND contact = ?",
        );
        if from_ms.is_some() {
            sql.push_str(" AND ts >= ?");
        }
        if to_ms.is_some() {
            sql.push_str(" AND ts < ?");
        }
        sql.push_str(" ORDER BY ts");
        if limit.is_some() {
            sql.push_str(" LIMIT ?");
        }
        let mut request = self
            .client
            .query(&sql)
            .bind(PEER_ORG)
            .bind(contact.as_str());
        for bound in [from_ms, to_ms].into_iter().flatten() {
            request = request.bind(*bound);
        }
        if let Some(limit) = limit {
            request = request.bind(limit as u64);
        }
        let rows = request.fetch_all::<InteractionRow>().await?;
        Ok(rows.len())
    }
}

/// A minimal server configuration: loopback only, our ports and paths, a
/// passwordless `default` user that only loopback may use.
fn write_config(dir: &Path, http_port: u16, tcp_port: u16) -> anyhow::Result<std::path::PathBuf> {
    let root = dir.display();
    for sub in ["data", "tmp", "user_files"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let config = format!(
        r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{root}/server.log</log><errorlog>{root}/server.err.log</errorlog><size>100M</size><count>1</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{root}/data/</path>
  <tmp_path>{root}/tmp/</tmp_path>
  <user_files_path>{root}/user_files/</user_files_path>
  <users_config>{root}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>1073741824</mark_cache_size>
</yandex>
"#
    );
    let users = r#"<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"#;
    std::fs::write(dir.join("users.xml"), users)?;
    let path = dir.join("config.xml");
    std::fs::write(&path, config)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_one_after_the_other_add_up() {
        let run = |rows: usize, seconds: f64, retries: usize| SmallInserts {
            rows,
            requests: rows / 500,
            seconds,
            rows_per_sec: rows as f64 / seconds,
            retries,
            delayed: 1,
            stopped_at_budget: false,
        };
        let total = SmallInserts::default()
            .then(&run(1_000, 1.0, 2))
            .then(&run(3_000, 3.0, 0));
        assert_eq!((total.rows, total.requests, total.retries), (4_000, 8, 2));
        assert_eq!(total.rows_per_sec, 1_000.0);
        assert_eq!(total.delayed, 2);
    }

    #[test]
    fn too_many_parts_is_told_from_other_refusals() {
        assert!(is_too_many_parts(
            "Code: 252, e.displayText() = DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts., e.what() = DB::Exception"
        ));
        assert!(!is_too_many_parts(
            "Code: 27, e.displayText() = DB::Exception: Cannot parse input"
        ));
    }
}
