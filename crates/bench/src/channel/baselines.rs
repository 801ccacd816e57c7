//! Baselines for Tracklog's channel ingest besides the peers' bulk loads:
//!
//! - the single-core parse rate of the two request items, the first thing
//!   the server does with each ([`parse_limits`]);
//! - ClickHouse loaded the way an application without Tracklog would load
//!   it: the same rows in 500-row `INSERT ... FORMAT JSONEachRow` requests
//!   from `--clients` concurrent clients ([`clickhouse_small_inserts`]).
//!
//! The ClickHouse rows of the bulk load and of the small inserts are
//! rendered here, once for both.

use serde::Serialize;

use super::data::{
    CHANNELS, ChannelData, Conversation, PROVIDERS, QUEUES, conversation_id, session_id,
};
use super::items::{self, RawEvent};
use crate::machine::{PARSE_SAMPLE, parse_rate};
use crate::peers::clickhouse::{ClickHouse, SMALL_INSERT_ROWS, SmallInserts};

/// The single-core parse rates of the request items.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ParseLimits {
    /// `/api/v1/channel/init` items (one conversation each), per second.
    pub inits_per_sec: f64,
    /// KPI events in `/api/v1/channel/events` items (every event of one
    /// session each), per second.
    pub events_per_sec: f64,
    /// Average JSON bytes of an init item, and of a KPI event in an events
    /// item.
    pub bytes_per_init: f64,
    pub bytes_per_event: f64,
}

/// Parses the items of the first conversations (at most [`PARSE_SAMPLE`])
/// into `serde_json::Value` on one thread, as `machine.rs` does for the
/// portal's events: init items, then events items.
pub async fn parse_limits(data: &std::sync::Arc<ChannelData>) -> anyhow::Result<ParseLimits> {
    let data = data.clone();
    // Rendering and parsing are CPU-bound: off the async workers.
    Ok(tokio::task::spawn_blocking(move || {
        let sample = &data.conversations[..data.conversations.len().min(PARSE_SAMPLE)];
        let inits: Vec<String> = sample
            .iter()
            .map(|c| items::init_item(c).to_string())
            .collect();
        let inits_per_sec = parse_rate(inits.iter().map(|item| (item.as_str(), 1)));
        let init_bytes: usize = inits.iter().map(String::len).sum();
        drop(inits);
        let events: Vec<(String, usize)> = sample
            .iter()
            .map(|c| (items::events_item(c).to_string(), c.events.len()))
            .collect();
        let events_per_sec = parse_rate(events.iter().map(|(item, n)| (item.as_str(), *n)));
        let event_bytes: usize = events.iter().map(|(item, _)| item.len()).sum();
        let kpi_events: usize = events.iter().map(|(_, n)| n).sum();
        ParseLimits {
            inits_per_sec,
            events_per_sec,
            bytes_per_init: init_bytes as f64 / sample.len().max(1) as f64,
            bytes_per_event: event_bytes as f64 / kpi_events.max(1) as f64,
        }
    })
    .await?)
}

/// Appends one `conversations` row.
pub fn push_conversation_row(out: &mut Vec<u8>, c: &Conversation) -> anyhow::Result<()> {
    let row = serde_json::json!({
        "conversation_id": conversation_id(c.index),
        "channel": CHANNELS[usize::from(c.channel)],
        "provider_id": PROVIDERS[usize::from(c.provider)].0,
        "created_ms": c.created,
    });
    serde_json::to_writer(&mut *out, &row)?;
    out.push(b'\n');
    Ok(())
}

/// Appends one `sessions` row.
pub fn push_session_row(out: &mut Vec<u8>, c: &Conversation) -> anyhow::Result<()> {
    let row = serde_json::json!({
        "session_id": session_id(c.index),
        "conversation_id": conversation_id(c.index),
        "queue_id": QUEUES[usize::from(c.queue)],
        "channel": CHANNELS[usize::from(c.channel)],
        "created_ms": c.created,
        "queued_ms": c.queued,
        "answered_ms": c.answered.unwrap_or(0),
    });
    serde_json::to_writer(&mut *out, &row)?;
    out.push(b'\n');
    Ok(())
}

/// Appends one `kpi_events` row.
pub fn push_kpi_row(out: &mut Vec<u8>, event: &RawEvent<'_>) -> anyhow::Result<()> {
    let row = serde_json::json!({
        "conversation_id": event.conversation,
        "session_id": event.session,
        "participant_id": event.participant,
        "name": event.name,
        "ts": event.ts,
        "action": event.action,
        "score": event.score,
        "sentiment": event.sentiment.unwrap_or(0.0),
    });
    serde_json::to_writer(&mut *out, &row)?;
    out.push(b'\n');
    Ok(())
}

/// Appends the row of one conversation to a table's body.
type RowWriter = fn(&mut Vec<u8>, &Conversation) -> anyhow::Result<()>;

/// Once the bulk-loaded tables have been queried: the tables recreated and
/// every row inserted again, 500 at a time from `clients` clients, one
/// table after the other (conversations, sessions, KPI events). The figures
/// are those of the three runs together.
pub async fn clickhouse_small_inserts(
    peer: &ClickHouse,
    data: &ChannelData,
    clients: usize,
) -> anyhow::Result<SmallInserts> {
    super::sql::clickhouse_tables(peer).await?;
    let progress = indicatif::ProgressBar::hidden();
    let conversations = &data.conversations;
    let tables: [(&str, RowWriter); 2] = [
        ("conversations", push_conversation_row),
        ("sessions", push_session_row),
    ];
    let mut total = SmallInserts::default();
    for (table, push) in tables {
        let mut next = 0;
        let run = peer
            .insert_small(
                &format!("INSERT INTO {table} FORMAT JSONEachRow"),
                |body: &mut Vec<u8>, rows: usize| {
                    let chunk = &conversations[next..(next + rows).min(conversations.len())];
                    for c in chunk {
                        push(body, c)?;
                    }
                    next += chunk.len();
                    Ok(chunk.len())
                },
                SMALL_INSERT_ROWS,
                clients,
                &progress,
            )
            .await?;
        total = total.then(&run);
    }
    let mut events = data.raw_events();
    let run = peer
        .insert_small(
            "INSERT INTO kpi_events FORMAT JSONEachRow",
            |body: &mut Vec<u8>, rows: usize| {
                let mut appended = 0;
                for event in events.by_ref().take(rows) {
                    push_kpi_row(body, &event)?;
                    appended += 1;
                }
                Ok(appended)
            },
            SMALL_INSERT_ROWS,
            clients,
            &progress,
        )
        .await?;
    Ok(total.then(&run))
}
