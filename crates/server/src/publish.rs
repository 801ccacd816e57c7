//! Publishes every signed checkpoint to `audit.checkpoint_file`, one JSON
//! line each ([`PublishedCheckpoint`]), appended and synced: a copy of the
//! checkpoints kept where the data directory's writers should not reach (an
//! append-only file, another machine's mount), for `tracklog audit verify
//! --checkpoints`.
//!
//! The publisher reads what the file already holds when it starts, so a
//! restart appends only what is new. It appends a checkpoint once it is in
//! the store, whichever path made it (the periodic job, a purge, a request):
//! at least once, since a crash between the append and the next tick may
//! append one line again, which the verifier accepts, and a line torn by a
//! crash is followed by the whole line. A failed append (full disk, lost
//! mount) is logged, counted in `tracklog_audit_job_failures_total{job=
//! "checkpoint_file"}`, and tried again at the next tick.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tracklog_domain::audit::standalone::{CHECKPOINT_TYPE, PublishedCheckpoint};

use crate::metrics::JobLabel;
use crate::state::AppState;

/// Checkpoints read from the store per org and tick.
const BATCH: usize = 1000;

/// The newest checkpoint number the file holds, per org name; the file is
/// made to end with a line break, so that a torn last line stays its own.
fn published_so_far(path: &Path) -> std::io::Result<HashMap<String, i64>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(error) => return Err(error),
    };
    let mut newest: HashMap<String, i64> = HashMap::new();
    let mut reader = std::io::BufReader::new(&mut file);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            // A torn line need not be UTF-8: it is skipped like any other.
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => continue,
            Err(error) => return Err(error),
        }
        if let Ok(published) = serde_json::from_str::<PublishedCheckpoint>(line.trim_end())
            && published.kind == CHECKPOINT_TYPE
        {
            let entry = newest.entry(published.org).or_insert(0);
            *entry = (*entry).max(published.number);
        }
    }
    drop(reader);
    let length = file.seek(std::io::SeekFrom::End(0))?;
    if length > 0 {
        file.seek(std::io::SeekFrom::End(-1))?;
        let mut last = [0u8];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            append(path, b"\n")?;
        }
    }
    Ok(newest)
}

/// Whether the file can be appended to (it is created when missing).
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    append(path, b"")
}

/// Appends and syncs.
fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}

/// The publisher's state between ticks.
struct Publisher {
    path: PathBuf,
    /// `None` until the file was read.
    published: Option<HashMap<String, i64>>,
}

impl Publisher {
    /// Appends every checkpoint not yet in the file; returns how many.
    async fn tick(&mut self, state: &AppState) -> anyhow::Result<u64> {
        let published = match &mut self.published {
            Some(published) => published,
            None => {
                let path = self.path.clone();
                let read = tokio::task::spawn_blocking(move || published_so_far(&path)).await??;
                self.published.insert(read)
            }
        };
        let mut appended = 0;
        for org in state.stores.meta.list_orgs().await? {
            let name = org.name.to_string();
            loop {
                let after = published.get(&name).copied().unwrap_or(0);
                let checkpoints = state
                    .stores
                    .audit
                    .checkpoints_after(org.id, after, BATCH)
                    .await?;
                let Some(newest) = checkpoints.last().map(|c| c.number) else {
                    break;
                };
                let mut lines = String::new();
                for checkpoint in &checkpoints {
                    lines.push_str(&PublishedCheckpoint::new(&name, checkpoint).to_line());
                    lines.push('\n');
                }
                let path = self.path.clone();
                tokio::task::spawn_blocking(move || append(&path, lines.as_bytes()))
                    .await?
                    .map_err(|error| {
                        anyhow::anyhow!("cannot append to {}: {error}", self.path.display())
                    })?;
                appended += checkpoints.len() as u64;
                published.insert(name.clone(), newest);
                if checkpoints.len() < BATCH {
                    break;
                }
            }
        }
        Ok(appended)
    }
}

/// Runs until `stopping` turns true, then publishes once more, so that a
/// checkpoint signed at shutdown is in the file too.
pub async fn run(
    state: AppState,
    path: PathBuf,
    period: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let mut publisher = Publisher {
        path,
        published: None,
    };
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = interval.tick() => false,
            _ = stopping.wait_for(|s| *s) => true,
        };
        match publisher.tick(&state).await {
            Ok(appended) => {
                if appended > 0 {
                    tracing::debug!(appended, "checkpoints published to the checkpoint file");
                    state.metrics.audit_checkpoints_published.inc_by(appended);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not publish checkpoints to the checkpoint file; retrying");
                state
                    .metrics
                    .audit_job_failures
                    .get_or_create(&JobLabel {
                        job: "checkpoint_file",
                    })
                    .inc();
                // Read the file again: the failed append may have landed.
                publisher.published = None;
            }
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_closed_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.jsonl");
        let line = |org: &str, number: i64| {
            PublishedCheckpoint::new(
                org,
                &tracklog_domain::audit::chain::Checkpoint {
                    number,
                    sequence: number * 10,
                    hash: [1; 32],
                    anchor_sequence: 0,
                    anchor_hash: [0; 32],
                    created_at_ms: 5,
                    signature: [2; 64],
                },
            )
            .to_line()
        };
        let torn = line("default", 4);
        std::fs::write(
            &path,
            format!(
                "{}\n{}\n{}\n{}",
                line("default", 1),
                line("default", 2),
                line("acme", 7),
                &torn[..torn.len() / 2]
            ),
        )
        .unwrap();
        let newest = published_so_far(&path).unwrap();
        assert_eq!(newest["default"], 2);
        assert_eq!(newest["acme"], 7);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with('\n'));
        assert!(
            published_so_far(&dir.path().join("absent"))
                .unwrap()
                .is_empty()
        );
    }
}
