//! The peers Tracklog is measured against, each a real server started by the
//! bench on loopback and stopped when the bench ends, however it ends.

pub mod clickhouse;
pub mod postgres;
pub mod process;

use std::future::Future;
use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::queries::QueryTarget;
use crate::workload::Dataset;

/// The longest a peer's bulk load may take before the run fails.
pub const LOAD_BUDGET: Duration = Duration::from_secs(3_600);

/// A peer that `--peers` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    #[value(name = "clickhouse")]
    ClickHouse,
    #[value(name = "postgres")]
    Postgres,
    /// No peers: Tracklog alone.
    #[value(name = "none")]
    None,
}

impl PeerKind {
    /// The key used in figure names.
    pub fn key(self) -> &'static str {
        match self {
            PeerKind::ClickHouse => "clickhouse",
            PeerKind::Postgres => "postgres",
            PeerKind::None => "none",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            PeerKind::ClickHouse => "ClickHouse",
            PeerKind::Postgres => "PostgreSQL",
            PeerKind::None => "none",
        }
    }
}

/// A bulk load's rate and footprint.
#[derive(Debug, Clone, Serialize)]
pub struct LoadFigures {
    pub rows: usize,
    pub seconds: f64,
    pub rows_per_sec: f64,
    pub bytes: u64,
    pub bytes_per_event: f64,
    /// Tracklog only: how far its materialisers fell behind during the
    /// load, and how long after the last acknowledgement they caught up
    /// (the bytes are measured once they have).
    pub lag: Option<crate::lag::LagFigures>,
}

impl LoadFigures {
    pub fn new(rows: usize, seconds: f64, bytes: u64) -> Self {
        Self {
            rows,
            seconds,
            rows_per_sec: rows as f64 / seconds,
            bytes,
            bytes_per_event: bytes as f64 / rows.max(1) as f64,
            lag: None,
        }
    }
}

/// What the bench does with every peer: load the dataset, then query it.
pub trait Peer: QueryTarget + Sync {
    fn kind(&self) -> PeerKind;
    /// The server's version, for the report.
    fn version(&self) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// Empties the peer, so each repetition loads from scratch.
    fn reset(&self) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Bulk-loads every event; the figures include the bytes on disk.
    fn load(
        &self,
        dataset: &Dataset,
        progress: &ProgressBar,
    ) -> impl Future<Output = anyhow::Result<LoadFigures>> + Send;
}
