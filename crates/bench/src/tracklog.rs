//! The real Tracklog server, started in-process on `127.0.0.1:0` with a fresh
//! data directory, and the two ways the bench queries it: through the store
//! (in-process) and through the HTTP API.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracklog_domain::auth::{Right, Rights};
use tracklog_domain::ids::{ContactId, OrgId, OrgName, PolicyName};
use tracklog_domain::time::UtcMillis;
use tracklog_server::config::Config;
use tracklog_server::services::Actor;
use tracklog_server::services::policies::{self, NewPolicy};
use tracklog_store::{Durability, Stores, TimelineQuery};

use crate::queries::{self, MAX_PAGES, Query, QueryTarget};
use crate::workload::Dataset;

/// Whether servers keep their data directories when they stop
/// (`--keep-data`); set once, before any server starts.
static KEEP_DATA: AtomicBool = AtomicBool::new(false);

/// Makes every server started from now on keep its data directory.
pub fn keep_data_dirs(keep: bool) {
    KEEP_DATA.store(keep, Ordering::Relaxed);
}

/// A running server and what the bench needs to talk to it.
pub struct TracklogServer {
    pub addr: SocketAddr,
    pub stores: Stores,
    pub org: OrgId,
    /// `Basic base64(policy:key)` of a write,read policy.
    pub authorization: String,
    dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TracklogServer {
    /// Starts a server with default configuration but for the data
    /// directory (a fresh one under `work_dir`) and the durability mode.
    pub async fn start(work_dir: &Path, durability: Durability) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tracklog-bench-data-")
            .tempdir_in(work_dir)
            .context("creating the data directory")?;
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.ingest.durability = durability;
        let stores = tracklog_server::open_stores(&config).context("opening the stores")?;
        let org = stores
            .meta
            .ensure_org(&OrgName::parse("default")?)
            .await?
            .id;
        let policy = policies::create(
            &stores,
            org,
            &Actor::cli(),
            NewPolicy {
                name: PolicyName::parse("bench")?,
                rights: Rights::from_iter([Right::Write, Right::Read]),
                portal: None,
                provider: None,
            },
        )
        .await?;
        let credentials = format!("{}:{}", policy.name.as_str(), policy.primary_key.expose());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(tracklog_server::run_with_stores(
            config,
            stores.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        Ok(Self {
            addr,
            stores,
            org,
            authorization: format!("Basic {}", BASE64.encode(credentials)),
            dir: Some(dir),
            shutdown: Some(tx),
            handle: Some(handle),
        })
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |dir| dir.path())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates the dataset's cases `indices` through `POST /api/v1/cases`,
    /// so that journeys can be asked for by case.
    pub async fn create_cases(
        &self,
        http: &reqwest::Client,
        dataset: &Dataset,
        indices: &[usize],
    ) -> anyhow::Result<()> {
        for chunk in indices.chunks(500) {
            let body: Vec<serde_json::Value> = chunk
                .iter()
                .map(|&index| {
                    let case = &dataset.cases[index];
                    serde_json::json!({
                        "id": queries::case_id(index),
                        "contact_id": dataset.contacts[case.contact as usize],
                        "title": "bench case",
                        "created_at": UtcMillis::from_millis(case.created_ms).to_rfc3339(),
                    })
                })
                .collect();
            let reply: serde_json::Value = http
                .post(self.url("/api/v1/cases"))
                .header("authorization", &self.authorization)
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::ensure!(
                reply["accepted"].as_u64() == Some(chunk.len() as u64),
                "cases refused: {reply}"
            );
        }
        Ok(())
    }

    /// Bytes of the database at rest: its write-ahead log is checkpointed
    /// into it and truncated first. The WAL is scratch space, bounded by
    /// `storage.wal_autocheckpoint_pages` and reused, and its size at any
    /// moment depends on when the last checkpoint ran; PostgreSQL's figure
    /// leaves its WAL out too. Whatever the checkpoint could not move is
    /// still counted.
    pub fn disk_bytes(&self) -> anyhow::Result<u64> {
        let conn = rusqlite::Connection::open(self.data_dir().join("tracklog.db"))
            .context("opening the database to checkpoint it")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .context("checkpointing the WAL")?;
        drop(conn);
        let mut total = 0;
        for name in ["tracklog.db", "tracklog.db-wal"] {
            let path = self.data_dir().join(name);
            if path.exists() {
                total += std::fs::metadata(&path)?.len();
            }
        }
        Ok(total)
    }

    /// Stops the server and waits until the write queue has drained.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.context("the server task panicked")??;
        }
        self.keep_if_asked();
        Ok(())
    }

    /// With `--keep-data`, leaves the data directory in place and says where.
    fn keep_if_asked(&mut self) {
        if KEEP_DATA.load(Ordering::Relaxed)
            && let Some(dir) = self.dir.take()
        {
            eprintln!("kept the data directory {}", dir.keep().display());
        }
    }
}

impl Drop for TracklogServer {
    fn drop(&mut self) {
        // On an error path the server is dropped without `stop`: ask it to
        // stop so that its task does not outlive the run.
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Queries through the store, skipping HTTP and JSON.
pub struct InProcess<'a>(pub &'a TracklogServer);

impl QueryTarget for InProcess<'_> {
    async fn run(&self, query: &Query) -> anyhow::Result<usize> {
        let Query::ContactWindow {
            contact,
            from_ms,
            to_ms,
            page,
            all_pages,
            cap,
            ..
        } = query;
        let cap = cap.unwrap_or(usize::MAX);
        let contact = ContactId::parse(contact.as_str())?;
        let mut cursor = None;
        let mut rows = 0;
        for _ in 0..MAX_PAGES {
            let result = self
                .0
                .stores
                .events
                .contact_interactions(
                    self.0.org,
                    &contact,
                    TimelineQuery {
                        from: from_ms.map(UtcMillis::from_millis),
                        to: to_ms.map(UtcMillis::from_millis),
                        limit: (*page).min(cap - rows),
                        cursor,
                    },
                )
                .await?;
            rows += result.items.len();
            cursor = result.next_cursor;
            if cursor.is_none() || !all_pages || rows >= cap {
                break;
            }
        }
        Ok(rows)
    }
}

/// Queries through `GET /api/v1/contacts/{id}/interactions`.
pub struct OverHttp<'a> {
    pub server: &'a TracklogServer,
    pub http: reqwest::Client,
}

#[derive(Deserialize)]
struct TimelinePage {
    items: Vec<IgnoredAny>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Journey {
    total: usize,
    items: Vec<IgnoredAny>,
}

impl OverHttp<'_> {
    /// `GET /api/v1/cases/{id}/journey`: its summary covers every
    /// interaction of the window, so it counts as the rows the peers return
    /// (up to their cap), beside its first page.
    async fn journey(&self, case: usize, window_ms: i64) -> anyhow::Result<usize> {
        let url = self.server.url(&format!(
            "/api/v1/cases/{}/journey?window=PT{}S",
            queries::case_id(case),
            window_ms / 1000
        ));
        let response = self
            .http
            .get(&url)
            .header("authorization", &self.server.authorization)
            .send()
            .await?
            .error_for_status()?;
        let journey: Journey = serde_json::from_slice(&response.bytes().await?)?;
        anyhow::ensure!(
            journey.items.len() <= journey.total,
            "a journey page longer than its total"
        );
        Ok(journey.total.min(queries::JOURNEY_CAP))
    }
}

impl QueryTarget for OverHttp<'_> {
    async fn run(&self, query: &Query) -> anyhow::Result<usize> {
        let Query::ContactWindow {
            contact,
            from_ms,
            to_ms,
            page,
            all_pages,
            case,
            ..
        } = query;
        if let (Some(case), Some(from), Some(to)) = (case, from_ms, to_ms) {
            return self.journey(*case, to - from).await;
        }
        let url = self
            .server
            .url(&format!("/api/v1/contacts/{contact}/interactions"));
        let mut params = vec![("limit", page.to_string())];
        for (name, value) in [("from", from_ms), ("to", to_ms)] {
            if let Some(ms) = value {
                params.push((name, UtcMillis::from_millis(*ms).to_rfc3339()));
            }
        }
        let mut cursor: Option<String> = None;
        let mut rows = 0;
        for _ in 0..MAX_PAGES {
            let mut request = self
                .http
                .get(&url)
                .header("authorization", &self.server.authorization)
                .query(&params);
            if let Some(cursor) = &cursor {
                request = request.query(&[("cursor", cursor)]);
            }
            let response = request.send().await?.error_for_status()?;
            let page: TimelinePage = serde_json::from_slice(&response.bytes().await?)?;
            rows += page.items.len();
            cursor = page.next_cursor;
            if cursor.is_none() || !all_pages {
                break;
            }
        }
        Ok(rows)
    }
}
