//! Two baselines for Tracklog's audit ingest besides the peers' bulk loads:
//!
//! - the single-core parse rate of the records' JSON, the first thing the
//!   server does with each record ([`parse_limit`]);
//! - ClickHouse loaded the way an application without Tracklog would load
//!   it: the same records in 500-row `INSERT ... FORMAT JSONEachRow`
//!   requests from `--clients` concurrent clients ([`clickhouse_small_inserts`]).

use super::targets::{AuditTarget, push_clickhouse_row};
use super::{AuditSettings, Records, keys};
use crate::machine::{PARSE_SAMPLE, parse_rate};
use crate::peers::clickhouse::{ClickHouse, SMALL_INSERT_ROWS};
use crate::report::Figures;
use crate::runner::Progress;

/// The parse probe over the first records of the run (at most
/// [`PARSE_SAMPLE`]), each as the API takes it: records/s on one core, and
/// the records' average JSON bytes.
pub async fn parse_limit(settings: &AuditSettings, figures: &mut Figures) -> anyhow::Result<f64> {
    let (seed, sample) = (settings.seed, settings.records.min(PARSE_SAMPLE));
    // Rendering and parsing are CPU-bound: off the async workers.
    let (rate, bytes) = tokio::task::spawn_blocking(move || {
        let mut records = Records::new(seed, sample);
        let items: Vec<String> = std::iter::from_fn(|| records.next_value())
            .map(|value| value.to_string())
            .collect();
        let bytes = items.iter().map(String::len).sum::<usize>() as f64;
        let rate = parse_rate(items.iter().map(|item| (item.as_str(), 1)));
        (rate, bytes / items.len().max(1) as f64)
    })
    .await?;
    figures.insert(keys::machine("json_parse_records_per_sec"), rate);
    figures.insert(keys::machine("json_bytes_per_record"), bytes);
    Ok(rate)
}

/// Once the bulk-loaded table has been measured, queried and exported:
/// the table recreated, the same records inserted 500 at a time, and the
/// table emptied again so that its disk is free for the next target.
pub async fn clickhouse_small_inserts(
    peer: &ClickHouse,
    settings: &AuditSettings,
    progress: &Progress,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let key = peer.key();
    peer.reset().await?;
    let bar = progress.bar(&format!("{key} 500-row inserts"), settings.records);
    let mut records = Records::new(settings.seed, settings.records);
    let result = peer
        .insert_small(
            "INSERT INTO audit FORMAT JSONEachRow",
            |body: &mut Vec<u8>, rows: usize| {
                let rows = records.chunk_rows(rows);
                for row in &rows {
                    push_clickhouse_row(body, row)?;
                }
                Ok(rows.len())
            },
            SMALL_INSERT_ROWS,
            settings.clients,
            &bar,
        )
        .await;
    bar.finish_and_clear();
    let result = result?;
    peer.reset().await?;
    crate::runner::say_small_inserts(progress, key, &result);
    let mut put = |field: &str, value: f64| {
        figures.insert(keys::small_inserts(key, field), value);
    };
    put("records", result.rows as f64);
    put("requests", result.requests as f64);
    put("seconds", result.seconds);
    put("records_per_sec", result.rows_per_sec);
    put("retries", result.retries as f64);
    put("delayed", result.delayed as f64);
    Ok(())
}
