//! PostgreSQL as a peer: Debian's server, initialised into a temporary
//! directory and listening on 127.0.0.1 at a free port, with its Unix socket
//! in that directory. PostgreSQL refuses to run as root, so when the bench is
//! root the server runs as the `postgres` user that Debian's package creates.
//!
//! The table mirrors Tracklog's schema: a primary key on (org, id) for
//! idempotency and a partial index on (org, contact, ts) for timelines. Rows
//! are bulk-loaded with `COPY ... FROM STDIN` through `tokio-postgres`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::SinkExt;
use indicatif::ProgressBar;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use super::process::{ServerProcess, find_binary, free_port, wait_until_ready};
use super::{LOAD_BUDGET, LoadFigures, Peer, PeerKind};
use crate::payload::{PEER_ORG, push_copy_line};
use crate::queries::{Query, QueryTarget};
use crate::workload::Dataset;

/// The columns of each COPY line, in order.
pub const COPY_COLUMNS: &str = "org_id, id, type, portal, contact_id, session_id, ts, fields";

/// Rows rendered and sent to COPY at a time.
const ROWS_PER_CHUNK: usize = 50_000;

const CREATE_TABLE: &str = "
CREATE TABLE interactions (
    org_id      bigint NOT NULL,
    id          text NOT NULL,
    type        text NOT NULL,
    portal      text NOT NULL,
    contact_id  text,
    session_id  text,
    ts          bigint NOT NULL,
    fields      text NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX interactions_by_contact ON interactions (org_id, contact_id, ts)
    WHERE contact_id IS NOT NULL;";

/// A running PostgreSQL and a connection to it.
pub struct Postgres {
    pub(crate) client: Client,
    statements: Mutex<HashMap<String, Statement>>,
    _connection: tokio::task::JoinHandle<()>,
    // Dropped after the client: the server stops once nothing talks to it.
    _process: ServerProcess,
    _dir: tempfile::TempDir,
}

/// Who the server runs as.
struct RunAs {
    uid: u32,
    gid: u32,
}

impl Postgres {
    /// Initialises and starts a server; an error names the package when the
    /// binaries or the `postgres` user are missing.
    pub async fn start(work_dir: &Path) -> anyhow::Result<Self> {
        let (initdb, postgres) = binaries()?;
        let run_as = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("tracklog-bench-postgres-")
            .tempdir_in(work_dir)?;
        if let Some(user) = &run_as {
            std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid))?;
        }
        let data = dir.path().join("data");
        init_cluster(&initdb, &data, dir.path(), run_as.as_ref())?;
        let port = free_port()?;
        let mut command = server_command(&postgres, &data, dir.path(), port, run_as.as_ref());
        command.current_dir(dir.path());
        let mut process = ServerProcess::spawn(
            "postgres",
            command,
            // SIGINT is PostgreSQL's fast shutdown: it does not wait for
            // clients to disconnect.
            libc::SIGINT,
            dir.path().join("server.log"),
        )?;
        let config = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
        wait_until_ready(&mut process, Duration::from_secs(60), || {
            let attempt = tokio_postgres::connect(&config, NoTls);
            async move { attempt.await.is_ok() }
        })
        .await?;
        let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            client,
            statements: Mutex::new(HashMap::new()),
            _connection: connection,
            _process: process,
            _dir: dir,
        })
    }

    /// The connection, for workloads with tables of their own.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Prepares each distinct SQL text once, as a pooled application would.
    pub(crate) async fn statement(&self, sql: &str) -> anyhow::Result<Statement> {
        if let Some(statement) = self.statements.lock().expect("not poisoned").get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements
            .lock()
            .expect("not poisoned")
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Peer for Postgres {
    fn kind(&self) -> PeerKind {
        PeerKind::Postgres
    }

    async fn version(&self) -> anyhow::Result<String> {
        Ok(self
            .client
            .query_one("SHOW server_version", &[])
            .await?
            .get(0))
    }

    /// Drops and recreates the table, so each repetition loads from empty.
    async fn reset(&self) -> anyhow::Result<()> {
        self.client
            .batch_execute("DROP TABLE IF EXISTS interactions")
            .await?;
        self.client.batch_execute(CREATE_TABLE).await?;
        self.statements.lock().expect("not poisoned").clear();
        Ok(())
    }

    /// Copies every event in and measures the rate and the bytes on disk.
    async fn load(&self, dataset: &Dataset, progress: &ProgressBar) -> anyhow::Result<LoadFigures> {
        let started = Instant::now();
        let deadline = started + LOAD_BUDGET;
        let sink = self
            .client
            .copy_in::<_, bytes::Bytes>(&format!("COPY interactions ({COPY_COLUMNS}) FROM STDIN"))
            .await?;
        futures::pin_mut!(sink);
        for chunk in dataset.events.chunks(ROWS_PER_CHUNK) {
            if Instant::now() > deadline {
                bail!("loading PostgreSQL took longer than {LOAD_BUDGET:?}");
            }
            let mut text = String::with_capacity(chunk.len() * 300);
            for event in chunk {
                push_copy_line(&mut text, dataset, event);
            }
            sink.send(bytes::Bytes::from(text)).await?;
            progress.inc(chunk.len() as u64);
        }
        sink.as_mut().finish().await?;
        let seconds = started.elapsed().as_secs_f64();
        // Fresh statistics, as autovacuum would gather soon after a load.
        self.client.batch_execute("ANALYZE interactions").await?;
        let bytes: i64 = self
            .client
            .query_one("SELECT pg_total_relation_size('interactions')", &[])
            .await?
            .get(0);
        Ok(LoadFigures::new(
            dataset.events.len(),
            seconds,
            bytes as u64,
        ))
    }
}

impl QueryTarget for Postgres {
    async fn run(&self, query: &Query) -> anyhow::Result<usize> {
        let Query::ContactWindow {
            contact,
            from_ms,
            to_ms,
            ..
        } = query;
        let limit = query.row_limit().map(|limit| limit as i64);
        let mut sql = String::from(
            "SELECT id, type, portal, contact_id, session_id, ts, fields FROM interactions \
             WHERE org_id = $1 AND contact_id = $2",
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&PEER_ORG, contact];
        for (condition, bound) in [("ts >=", from_ms), ("ts <", to_ms)] {
            if let Some(ms) = bound {
                params.push(ms);
                sql.push_str(&format!(" AND {condition} ${}", params.len()));
            }
        }
        sql.push_str(" ORDER BY ts");
        if let Some(limit) = &limit {
            params.push(limit);
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        let statement = self.statement(&sql).await?;
        let rows = self.client.query(&statement, &params).await?;
        Ok(rows.len())
    }
}

/// `initdb` and `postgres`, from `PATH` or Debian's versioned directory.
fn binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    let debian_dirs = debian_bin_dirs();
    let missing = || {
        anyhow::anyhow!(
            "PostgreSQL was requested (--peers) but its server is not installed: \
             install Debian's postgresql package (scripts/bench-peers.sh does)"
        )
    };
    let initdb = find_binary(&["initdb"], &debian_dirs).ok_or_else(missing)?;
    let postgres = find_binary(&["postgres"], &debian_dirs).ok_or_else(missing)?;
    Ok((initdb, postgres))
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn debian_bin_dirs() -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// `None` when the bench is not root and can run the server itself.
fn run_as() -> anyhow::Result<Option<RunAs>> {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let entry = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres") && fields.len() > 3)
        .context(
            "PostgreSQL cannot run as root and there is no postgres user: \
             install Debian's postgresql package (scripts/bench-peers.sh does)",
        )?;
    Ok(Some(RunAs {
        uid: entry[2].parse()?,
        gid: entry[3].parse()?,
    }))
}

fn as_user(command: &mut Command, run_as: Option<&RunAs>) {
    use std::os::unix::process::CommandExt;
    if let Some(user) = run_as {
        command.uid(user.uid).gid(user.gid);
    }
}

fn init_cluster(
    initdb: &Path,
    data: &Path,
    dir: &Path,
    run_as: Option<&RunAs>,
) -> anyhow::Result<()> {
    let mut command = Command::new(initdb);
    command
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "-D",
        ])
        .arg(data)
        .current_dir(dir);
    as_user(&mut command, run_as);
    let output = command.output().context("running initdb")?;
    if !output.status.success() {
        bail!(
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Stock durability (fsync on, synchronous_commit on); memory sized for a
/// bulk load on a small machine.
fn server_command(
    postgres: &Path,
    data: &Path,
    socket_dir: &Path,
    port: u16,
    run_as: Option<&RunAs>,
) -> Command {
    let mut command = Command::new(postgres);
    command
        .arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(socket_dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "shared_buffers=1GB",
            "-c",
            "max_wal_size=4GB",
        ]);
    as_user(&mut command, run_as);
    command
}
