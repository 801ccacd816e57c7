//! ClickHouse as a peer: Debian's `clickhouse-server`, started on loopback
//! with a generated configuration, its own data directory and free ports.
//!
//! Rows are loaded over HTTP as `JSONEachRow` into a MergeTree ordered by
//! (org, contact, ts), the layout a ClickHouse user would pick for
//! per-contact reads. Queries go through the official `clickhouse` crate,
//! which needs `with_validation(false)` against 18.16; times are Int64
//! milliseconds because 18.16 has no DateTime64.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::stream::{self, TryStreamExt};
use indicatif::ProgressBar;
use serde::Deserialize;

use super::process::{ServerProcess, find_binary, free_port, wait_until_ready};
use super::{LOAD_BUDGET, LoadFigures, Peer, PeerKind};
use crate::payload::{PEER_ORG, push_clickhouse_row};
use crate::queries::{Query, QueryTarget};
use crate::workload::Dataset;

/// Rows per INSERT request, and requests in flight.
const ROWS_PER_INSERT: usize = 50_000;
const INSERTS_IN_FLIGHT: usize = 2;

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
