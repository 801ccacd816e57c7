//! The dashboard over raw events in the peers: the same conversations,
//! sessions and KPI events bulk-loaded into ClickHouse and PostgreSQL, and
//! one SQL query each (PostgreSQL's in [`super::postgres_sql`]) that
//! computes the thirteen metrics by queue and hour from
//! them, following PRODUCT.md §6.1 and the readings of
//! `tracklog_domain::channel::facts`.
//!
//! Both queries derive each session's facts by grouping its events
//! (closed = the earliest `SessionClosed`, wrap-up end = the latest
//! `WrapUpEnded`, transferred = any `TransferRequested`), pair holds by order
//! (the k-th `HoldStarted` with the k-th `HoldEnded`; a start left over ends
//! at closed) and notifications by order per participant, read the closing
//! sentiment (the latest `SentimentUpdated` at or before closed) and a drop
//! (a fall of 0.5 or more from an earlier reading to a later one, both at
//! or before closed; 1e-9 absorbs the last bit of a difference of two
//! parsed decimals, as the domain's 1e-12 does), turn each session
//! and event into the parts it adds at the time its metric is attributed to,
//! and fold the parts by queue and hour. ClickHouse 18.16 has no window
//! functions, so it pairs with sorted arrays; PostgreSQL with
//! `row_number()`, one CTE per event name so that the planner's row
//! estimates come from the table's statistics (a filter on a shared CTE is
//! estimated at one row, and the joins become nested loops).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Deserialize;

use super::baselines::{push_conversation_row, push_kpi_row, push_session_row};
use super::data::ChannelData;
use crate::peers::LOAD_BUDGET;
use crate::peers::clickhouse::ClickHouse;

/// The dashboard's metrics, in the order of the peers' result columns.
pub const METRICS: [&str; 13] = [
    "conversations_offered",
    "aht",
    "asa",
    "service_level",
    "abandon_rate",
    "transfer_rate",
    "hold_time",
    "notification_accept_rate",
    "notification_response_time",
    "csat",
    "mean_sentiment",
    "negative_sentiment_rate",
    "sentiment_drop_rate",
];

/// (metric index, queue, interval start in ms) → value. Cells without a
/// value (an empty denominator) are absent, and so are zero counts.
pub type Cells = BTreeMap<(usize, String, i64), f64>;

/// Adds a cell unless it has no value or is a zero count.
pub fn put(cells: &mut Cells, metric: usize, queue: &str, hour: i64, value: Option<f64>) {
    let Some(value) = value.filter(|v| v.is_finite()) else {
        return;
    };
    if metric == 0 && value == 0.0 {
        return;
    }
    cells.insert((metric, queue.to_owned(), hour), value);
}

pub(super) const ROWS_PER_CHUNK: usize = 50_000;

// ---- ClickHouse ----------------------------------------------------------------------

pub const CLICKHOUSE_TABLES: [&str; 3] = [
    "CREATE TABLE conversations (conversation_id String, channel String, provider_id String, \
     created_ms Int64) ENGINE = MergeTree() ORDER BY conversation_id",
    "CREATE TABLE sessions (session_id String, conversation_id String, queue_id String, \
     channel String, created_ms Int64, queued_ms Int64, answered_ms Int64) \
     ENGINE = MergeTree() ORDER BY session_id",
    "CREATE TABLE kpi_events (conversation_id String, session_id String, participant_id String, \
     name String, ts Int64, action String, score UInt8, sentiment Float64) ENGINE = MergeTree() ORDER BY (session_id, ts)",
];

/// Times are Int64 milliseconds; 0 stands for "none" (18.16 has no
/// DateTime64, and every real time is after 1970). Lambda parameters are
/// x, y, a, b: ClickHouse aliases are query-wide, and a parameter named
/// like an alias (t, v) would be replaced by it.
pub const CLICKHOUSE_QUERY: &str = "
SELECT queue, toInt64(h) AS h,
    toUInt64(countIf(part = 0)) AS offered,
    toFloat64(sumIf(v, part = 1) / countIf(part = 1) / 1000) AS aht,
    toFloat64(sumIf(v, part = 2) / countIf(part = 2) / 1000) AS asa,
    toFloat64(countIf(part = 3) / countIf(part = 4)) AS service_level,
    toFloat64(countIf(part = 5) / countIf(part = 6)) AS abandon_rate,
    toFloat64(countIf(part = 7) / countIf(part = 1)) AS transfer_rate,
    toFloat64(sumIf(v, part = 8) / countIf(part = 8) / 1000) AS hold_time,
    toFloat64(countIf(part = 10) / countIf(part = 9)) AS notification_accept_rate,
    toFloat64(sumIf(v, part = 11) / countIf(part = 11) / 1000) AS notification_response_time,
    toFloat64(sumIf(v, part = 12) / countIf(part = 12)) AS csat,
    toFloat64(sumIf(v, part = 13) / countIf(part = 13)) AS mean_sentiment,
    toFloat64(countIf(part = 14) / countIf(part = 13)) AS negative_sentiment_rate,
    toFloat64(countIf(part = 15) / countIf(part = 13)) AS sentiment_drop_rate
FROM (
    SELECT queue, part, intDiv(t, 3600000) * 3600000 AS h, v
    FROM (
        SELECT queue, c.1 AS part, c.2 AS t, c.3 AS v
        FROM (
            SELECT queue,
                arrayFilter(x -> x.4 = 1, [
                    (toUInt8(0), queued, toFloat64(1), toUInt8(queued > 0)),
                    (toUInt8(1), closed, toFloat64(handle), toUInt8(handled)),
                    (toUInt8(2), answered, toFloat64(greatest(answered - queued, 0)),
                        toUInt8(queued > 0 AND answered > 0)),
                    (toUInt8(3), queued, toFloat64(1),
                        toUInt8(queued > 0 AND answered > 0 AND answered - queued <= 20000)),
                    (toUInt8(4), queued, toFloat64(1), toUInt8(queued > 0 AND (answered > 0 OR long_abandon))),
                    (toUInt8(5), queued, toFloat64(1), toUInt8(queued > 0 AND long_abandon)),
                    (toUInt8(6), queued, toFloat64(1), toUInt8(queued > 0 AND NOT short_abandon)),
                    (toUInt8(7), closed, toFloat64(1), toUInt8(handled AND transferred)),
                    (toUInt8(8), closed, toFloat64(hold), toUInt8(handled)),
                    (toUInt8(13), closed, closing, toUInt8(handled AND has_sentiment)),
                    (toUInt8(14), closed, toFloat64(1),
                        toUInt8(handled AND has_sentiment AND closing < -0.1)),
                    (toUInt8(15), closed, toFloat64(1), toUInt8(handled AND has_sentiment AND dropped))
                ]) AS parts
            FROM (
                SELECT queue, queued, answered, closed, transferred,
                    answered > 0 AND closed > 0 AS handled,
                    if(handled, greatest(greatest(closed, wrap_end) - answered, 0), 0) AS handle,
                    queued > 0 AND answered = 0 AND closed > 0 AS abandoned,
                    abandoned AND closed - queued <= 5000 AS short_abandon,
                    abandoned AND NOT short_abandon AS long_abandon,
                    least(length(hs), length(he)) AS n,
                    arraySum(arrayMap((x, y) -> greatest(y - x, 0), arraySlice(hs, 1, n), arraySlice(he, 1, n)))
                        + if(length(hs) > n AND closed > 0, greatest(closed - hs[n + 1], 0), 0) AS hold,
                    arrayFilter((x, y) -> y <= closed, ss, st) AS sc,
                    length(sc) > 0 AS has_sentiment,
                    toFloat64(if(has_sentiment, sc[length(sc)], 0)) AS closing,
                    arrayExists((x, i) -> arrayExists(y -> y - x >= 0.5 - 1e-9, arraySlice(sc, 1, i - 1)),
                        sc, arrayEnumerate(sc)) AS dropped
                FROM (
                    SELECT session_id, queue_id AS queue, queued_ms AS queued, answered_ms AS answered
                    FROM sessions
                ) ANY LEFT JOIN (
                    SELECT session_id,
                        if(countIf(name = 'SessionClosed') > 0, minIf(ts, name = 'SessionClosed'), 0) AS closed,
                        maxIf(ts, name = 'WrapUpEnded') AS wrap_end,
                        countIf(name = 'TransferRequested') > 0 AS transferred,
                        arraySort(groupArrayIf(ts, name = 'HoldStarted')) AS hs,
                        arraySort(groupArrayIf(ts, name = 'HoldEnded')) AS he,
                        arraySort(groupArrayIf(ts, name = 'SentimentUpdated')) AS st,
                        arraySort((x, y) -> y, groupArrayIf(sentiment, name = 'SentimentUpdated'),
                            groupArrayIf(ts, name = 'SentimentUpdated')) AS ss
                    FROM kpi_events
                    WHERE name IN ('SessionClosed', 'WrapUpEnded', 'TransferRequested', 'HoldStarted',
                        'HoldEnded', 'SentimentUpdated')
                    GROUP BY session_id
                ) USING session_id
            )
        )
        ARRAY JOIN parts AS c
        UNION ALL
        SELECT queue, part, t, v
        FROM (
            SELECT session_id, c.1 AS part, c.2 AS t, c.3 AS v
            FROM (
                SELECT session_id, d, r, acc, least(length(d), length(r)) AS n
                FROM (
                    SELECT session_id, participant_id,
                        arraySort(groupArrayIf(ts, name = 'NotificationDisplayed')) AS d,
                        arraySort(groupArrayIf(ts, name = 'NotificationResponse')) AS r,
                        arraySort((a, b) -> b,
                            groupArrayIf(toUInt8(action = 'Accept'), name = 'NotificationResponse'),
                            groupArrayIf(ts, name = 'NotificationResponse')) AS acc
                    FROM kpi_events
                    WHERE name IN ('NotificationDisplayed', 'NotificationResponse')
                    GROUP BY session_id, participant_id
                )
            )
            ARRAY JOIN arrayConcat(
                arrayMap(x -> (toUInt8(9), x, toFloat64(1)), d),
                arrayFilter(x -> x.1 = 10, arrayMap((x, a, y) -> (if(a = 1, toUInt8(10), toUInt8(255)),
                    if(y > 0, y, x), toFloat64(1)), r, acc, arrayResize(d, length(r)))),
                arrayMap((x, y) -> (toUInt8(11), x, toFloat64(x - y)), arraySlice(r, 1, n), arraySlice(d, 1, n))
            ) AS c
        ) ANY INNER JOIN (SELECT session_id, queue_id AS queue FROM sessions) USING session_id
        UNION ALL
        SELECT queue, toUInt8(12) AS part, ts AS t, toFloat64(score) AS v
        FROM (
            SELECT session_id, ts, score FROM kpi_events
            WHERE name = 'CsatSubmitted' AND score BETWEEN 1 AND 5
        ) ANY INNER JOIN (SELECT session_id, queue_id AS queue FROM sessions) USING session_id
    )
    WHERE t >= ? AND t < ?
)
GROUP BY queue, h";

#[derive(clickhouse::Row, Deserialize)]
struct ClickHouseRow {
    queue: String,
    h: i64,
    offered: u64,
    aht: f64,
    asa: f64,
    service_level: f64,
    abandon_rate: f64,
    transfer_rate: f64,
    hold_time: f64,
    notification_accept_rate: f64,
    notification_response_time: f64,
    csat: f64,
    mean_sentiment: f64,
    negative_sentiment_rate: f64,
    sentiment_drop_rate: f64,
}

impl ClickHouseRow {
    /// The twelve value columns, in [`METRICS`] order after the count.
    fn values(&self) -> [f64; 12] {
        [
            self.aht,
            self.asa,
            self.service_level,
            self.abandon_rate,
            self.transfer_rate,
            self.hold_time,
            self.notification_accept_rate,
            self.notification_response_time,
            self.csat,
            self.mean_sentiment,
            self.negative_sentiment_rate,
            self.sentiment_drop_rate,
        ]
    }
}

/// Drops and creates the tables.
pub async fn clickhouse_tables(peer: &ClickHouse) -> anyhow::Result<()> {
    for table in ["conversations", "sessions", "kpi_events"] {
        peer.client()
            .query(&format!("DROP TABLE IF EXISTS {table}"))
            .execute()
            .await?;
    }
    for create in CLICKHOUSE_TABLES {
        peer.client().query(create).execute().await?;
    }
    Ok(())
}

/// Recreates the tables and loads the data: `JSONEachRow` over HTTP.
pub async fn clickhouse_load(peer: &ClickHouse, data: &ChannelData) -> anyhow::Result<LoadStats> {
    clickhouse_tables(peer).await?;
    let started = Instant::now();
    let mut rows = 0;
    for chunk in data.conversations.chunks(ROWS_PER_CHUNK) {
        let mut conversations = Vec::new();
        let mut sessions = Vec::new();
        for c in chunk {
            push_conversation_row(&mut conversations, c)?;
            push_session_row(&mut sessions, c)?;
        }
        peer.insert_raw(
            "INSERT INTO conversations FORMAT JSONEachRow",
            conversations,
        )
        .await?;
        peer.insert_raw("INSERT INTO sessions FORMAT JSONEachRow", sessions)
            .await?;
        rows += 2 * chunk.len();
    }
    let mut body = Vec::new();
    let mut in_body = 0;
    for event in data.raw_events() {
        push_kpi_row(&mut body, &event)?;
        in_body += 1;
        if in_body == ROWS_PER_CHUNK {
            check_budget(started)?;
            peer.insert_raw(
                "INSERT INTO kpi_events FORMAT JSONEachRow",
                std::mem::take(&mut body),
            )
            .await?;
            rows += in_body;
            in_body = 0;
        }
    }
    if in_body > 0 {
        peer.insert_raw("INSERT INTO kpi_events FORMAT JSONEachRow", body)
            .await?;
        rows += in_body;
    }
    // Merge the parts, as a loaded table would be by the time it is queried.
    for table in ["conversations", "sessions", "kpi_events"] {
        peer.client()
            .query(&format!("OPTIMIZE TABLE {table} FINAL"))
            .execute()
            .await?;
    }
    Ok(LoadStats::new(rows, started))
}

/// Runs the query; returns the time to its last row, and its cells.
pub async fn clickhouse_query(
    peer: &ClickHouse,
    from: i64,
    to: i64,
) -> anyhow::Result<(Duration, Cells)> {
    let sent = Instant::now();
    let rows = peer
        .client()
        .query(CLICKHOUSE_QUERY)
        .bind(from)
        .bind(to)
        .fetch_all::<ClickHouseRow>()
        .await?;
    let elapsed = sent.elapsed();
    let mut cells = Cells::new();
    for row in rows {
        put(&mut cells, 0, &row.queue, row.h, Some(row.offered as f64));
        for (i, value) in row.values().into_iter().enumerate() {
            put(&mut cells, i + 1, &row.queue, row.h, Some(value));
        }
    }
    Ok((elapsed, cells))
}

// ---- shared ---------------------------------------------------------------------------

/// A bulk load's size and time (indexes and statistics included).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadStats {
    pub rows: usize,
    pub seconds: f64,
    pub rows_per_sec: f64,
}

impl LoadStats {
    pub(super) fn new(rows: usize, started: Instant) -> Self {
        let seconds = started.elapsed().as_secs_f64();
        Self {
            rows,
            seconds,
            rows_per_sec: rows as f64 / seconds,
        }
    }
}

pub(super) fn check_budget(started: Instant) -> anyhow::Result<()> {
    if started.elapsed() > LOAD_BUDGET {
        bail!("loading a peer took longer than {LOAD_BUDGET:?}");
    }
    Ok(())
}
