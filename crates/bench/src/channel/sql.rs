//! The dashboard over raw events in the peers: the same conversations,
//! sessions and KPI events bulk-loaded into ClickHouse and PostgreSQL, and
//! one SQL query each that computes the ten metrics by queue and hour from
//! them, following PRODUCT.md §6.1 and the readings of
//! `tracklog_domain::channel::facts`.
//!
//! Both queries derive each session's facts by grouping its events
//! (closed = the earliest `SessionClosed`, wrap-up end = the latest
//! `WrapUpEnded`, transferred = any `TransferRequested`), pair holds by order
//! (the k-th `HoldStarted` with the k-th `HoldEnded`; a start left over ends
//! at closed) and notifications by order per participant, turn each session
//! and event into the parts it adds at the time its metric is attributed to,
//! and fold the parts by queue and hour. ClickHouse 18.16 has no window
//! functions, so it pairs with sorted arrays; PostgreSQL with
//! `row_number()`, one CTE per event name so that the planner's row
//! estimates come from the table's statistics (a filter on a shared CTE is
//! estimated at one row, and the joins become nested loops).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::SinkExt;
use serde::Deserialize;

use super::data::{CHANNELS, ChannelData, PROVIDERS, QUEUES, conversation_id, session_id};
use crate::peers::LOAD_BUDGET;
use crate::peers::clickhouse::ClickHouse;
use crate::peers::postgres::Postgres;

/// The dashboard's metrics, in the order of the peers' result columns.
pub const METRICS: [&str; 10] = [
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

const ROWS_PER_CHUNK: usize = 50_000;

// ---- ClickHouse ----------------------------------------------------------------------

pub const CLICKHOUSE_TABLES: [&str; 3] = [
    "CREATE TABLE conversations (conversation_id String, channel String, provider_id String, \
     created_ms Int64) ENGINE = MergeTree() ORDER BY conversation_id",
    "CREATE TABLE sessions (session_id String, conversation_id String, queue_id String, \
     channel String, created_ms Int64, queued_ms Int64, answered_ms Int64) \
     ENGINE = MergeTree() ORDER BY session_id",
    "CREATE TABLE kpi_events (conversation_id String, session_id String, participant_id String, \
     name String, ts Int64, action String, score UInt8) ENGINE = MergeTree() ORDER BY (session_id, ts)",
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
    toFloat64(sumIf(v, part = 12) / countIf(part = 12)) AS csat
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
                    (toUInt8(8), closed, toFloat64(hold), toUInt8(handled))
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
                        + if(length(hs) > n AND closed > 0, greatest(closed - hs[n + 1], 0), 0) AS hold
                FROM (
                    SELECT session_id, queue_id AS queue, queued_ms AS queued, answered_ms AS answered
                    FROM sessions
                ) ANY LEFT JOIN (
                    SELECT session_id,
                        if(countIf(name = 'SessionClosed') > 0, minIf(ts, name = 'SessionClosed'), 0) AS closed,
                        maxIf(ts, name = 'WrapUpEnded') AS wrap_end,
                        countIf(name = 'TransferRequested') > 0 AS transferred,
                        arraySort(groupArrayIf(ts, name = 'HoldStarted')) AS hs,
                        arraySort(groupArrayIf(ts, name = 'HoldEnded')) AS he
                    FROM kpi_events
                    WHERE name IN ('SessionClosed', 'WrapUpEnded', 'TransferRequested', 'HoldStarted', 'HoldEnded')
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
}

impl ClickHouseRow {
    /// The nine value columns, in [`METRICS`] order after the count.
    fn values(&self) -> [f64; 9] {
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
        ]
    }
}

/// Recreates the tables and loads the data: `JSONEachRow` over HTTP.
pub async fn clickhouse_load(peer: &ClickHouse, data: &ChannelData) -> anyhow::Result<LoadStats> {
    for table in ["conversations", "sessions", "kpi_events"] {
        peer.client()
            .query(&format!("DROP TABLE IF EXISTS {table}"))
            .execute()
            .await?;
    }
    for create in CLICKHOUSE_TABLES {
        peer.client().query(create).execute().await?;
    }
    let started = Instant::now();
    let mut rows = 0;
    for chunk in data.conversations.chunks(ROWS_PER_CHUNK) {
        let mut conversations = Vec::new();
        let mut sessions = Vec::new();
        for c in chunk {
            let conversation = serde_json::json!({
                "conversation_id": conversation_id(c.index),
                "channel": CHANNELS[usize::from(c.channel)],
                "provider_id": PROVIDERS[usize::from(c.provider)].0,
                "created_ms": c.created,
            });
            serde_json::to_writer(&mut conversations, &conversation)?;
            conversations.push(b'\n');
            let session = serde_json::json!({
                "session_id": session_id(c.index),
                "conversation_id": conversation_id(c.index),
                "queue_id": QUEUES[usize::from(c.queue)],
                "channel": CHANNELS[usize::from(c.channel)],
                "created_ms": c.created,
                "queued_ms": c.queued,
                "answered_ms": c.answered.unwrap_or(0),
            });
            serde_json::to_writer(&mut sessions, &session)?;
            sessions.push(b'\n');
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
        let row = serde_json::json!({
            "conversation_id": event.conversation,
            "session_id": event.session,
            "participant_id": event.participant,
            "name": event.name,
            "ts": event.ts,
            "action": event.action,
            "score": event.score,
        });
        serde_json::to_writer(&mut body, &row)?;
        body.push(b'\n');
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

// ---- PostgreSQL ----------------------------------------------------------------------

pub const POSTGRES_TABLES: &str = "
DROP TABLE IF EXISTS kpi_events, sessions, conversations;
CREATE TABLE conversations (
    conversation_id text PRIMARY KEY,
    channel text,
    provider_id text,
    created_ms bigint
);
CREATE TABLE sessions (
    session_id text PRIMARY KEY,
    conversation_id text NOT NULL,
    queue_id text,
    channel text,
    created_ms bigint,
    queued_ms bigint,
    answered_ms bigint
);
CREATE TABLE kpi_events (
    conversation_id text,
    session_id text,
    participant_id text,
    name text NOT NULL,
    ts bigint NOT NULL,
    action text,
    score smallint
);";

/// Created after the load, as a bulk load would.
pub const POSTGRES_INDEXES: &str = "
CREATE INDEX kpi_events_by_session ON kpi_events (session_id, name, ts);
ANALYZE conversations; ANALYZE sessions; ANALYZE kpi_events;";

/// Times are bigint milliseconds; NULL stands for "none".
pub const POSTGRES_QUERY: &str = "
WITH per_session AS (
    SELECT session_id,
        min(ts) FILTER (WHERE name = 'SessionClosed') AS closed,
        max(ts) FILTER (WHERE name = 'WrapUpEnded') AS wrap_end,
        bool_or(name = 'TransferRequested') AS transferred,
        count(*) FILTER (WHERE name = 'HoldEnded') AS hold_ends
    FROM kpi_events
    WHERE name IN ('SessionClosed', 'WrapUpEnded', 'TransferRequested', 'HoldEnded')
    GROUP BY session_id
),
hold_starts AS (
    SELECT session_id, ts, row_number() OVER (PARTITION BY session_id ORDER BY ts) AS k
    FROM kpi_events WHERE name = 'HoldStarted'
),
hold_ends AS (
    SELECT session_id, ts, row_number() OVER (PARTITION BY session_id ORDER BY ts) AS k
    FROM kpi_events WHERE name = 'HoldEnded'
),
hold AS (
    SELECT st.session_id,
        sum(CASE
            WHEN en.ts IS NOT NULL THEN greatest(en.ts - st.ts, 0)
            WHEN st.k = coalesce(p.hold_ends, 0) + 1 AND p.closed IS NOT NULL
                THEN greatest(p.closed - st.ts, 0)
            ELSE 0 END) AS hold_ms
    FROM hold_starts st
    LEFT JOIN hold_ends en ON en.session_id = st.session_id AND en.k = st.k
    LEFT JOIN per_session p ON p.session_id = st.session_id
    GROUP BY st.session_id
),
facts AS (
    SELECT s.queue_id AS queue, s.queued_ms AS queued, s.answered_ms AS answered, p.closed,
        coalesce(p.transferred, false) AS transferred,
        coalesce(h.hold_ms, 0) AS hold_ms,
        s.answered_ms IS NOT NULL AND p.closed IS NOT NULL AS handled,
        greatest(greatest(p.closed, p.wrap_end) - s.answered_ms, 0) AS handle_ms,
        s.queued_ms IS NOT NULL AND s.answered_ms IS NULL AND p.closed IS NOT NULL AS abandoned
    FROM sessions s
    LEFT JOIN per_session p USING (session_id)
    LEFT JOIN hold h USING (session_id)
),
flagged AS (
    SELECT *,
        abandoned AND closed - queued <= 5000 AS short_abandon,
        abandoned AND NOT (closed - queued <= 5000) AS long_abandon
    FROM facts
),
session_parts AS (
    SELECT f.queue, v.part, v.t, v.val
    FROM flagged f
    CROSS JOIN LATERAL (VALUES
        (0, f.queued, 1.0::float8, f.queued IS NOT NULL),
        (1, f.closed, f.handle_ms::float8, f.handled),
        (2, f.answered, greatest(f.answered - f.queued, 0)::float8,
            f.queued IS NOT NULL AND f.answered IS NOT NULL),
        (3, f.queued, 1.0::float8,
            f.queued IS NOT NULL AND f.answered IS NOT NULL AND f.answered - f.queued <= 20000),
        (4, f.queued, 1.0::float8, f.queued IS NOT NULL AND (f.answered IS NOT NULL OR f.long_abandon)),
        (5, f.queued, 1.0::float8, f.queued IS NOT NULL AND f.long_abandon),
        (6, f.queued, 1.0::float8, f.queued IS NOT NULL AND NOT f.short_abandon),
        (7, f.closed, 1.0::float8, f.handled AND f.transferred),
        (8, f.closed, f.hold_ms::float8, f.handled)
    ) AS v(part, t, val, ok)
    WHERE v.ok
),
displays AS (
    SELECT session_id, coalesce(participant_id, '') AS participant, ts,
        row_number() OVER (PARTITION BY session_id, participant_id ORDER BY ts) AS k
    FROM kpi_events WHERE name = 'NotificationDisplayed'
),
responses AS (
    SELECT session_id, coalesce(participant_id, '') AS participant, ts, action,
        row_number() OVER (PARTITION BY session_id, participant_id ORDER BY ts) AS k
    FROM kpi_events WHERE name = 'NotificationResponse'
),
matched AS (
    SELECT r.session_id, r.ts AS responded, r.action, d.ts AS displayed
    FROM responses r
    LEFT JOIN displays d
        ON d.session_id = r.session_id AND d.participant = r.participant AND d.k = r.k
),
event_parts AS (
    SELECT session_id, 9 AS part, ts AS t, 1.0::float8 AS val FROM displays
    UNION ALL
    SELECT m.session_id, v.part, v.t, v.val
    FROM matched m
    CROSS JOIN LATERAL (VALUES
        (10, coalesce(m.displayed, m.responded), 1.0::float8, m.action = 'Accept'),
        (11, m.responded, (m.responded - m.displayed)::float8, m.displayed IS NOT NULL)
    ) AS v(part, t, val, ok)
    WHERE v.ok
    UNION ALL
    SELECT session_id, 12, ts, score::float8
    FROM kpi_events WHERE name = 'CsatSubmitted' AND score BETWEEN 1 AND 5
),
parts AS (
    SELECT queue, part, t, val FROM session_parts
    UNION ALL
    SELECT s.queue_id, e.part, e.t, e.val FROM event_parts e JOIN sessions s USING (session_id)
)
SELECT queue, (t / 3600000) * 3600000 AS h,
    count(*) FILTER (WHERE part = 0) AS offered,
    avg(val) FILTER (WHERE part = 1) / 1000 AS aht,
    avg(val) FILTER (WHERE part = 2) / 1000 AS asa,
    (count(*) FILTER (WHERE part = 3))::float8 / nullif(count(*) FILTER (WHERE part = 4), 0) AS service_level,
    (count(*) FILTER (WHERE part = 5))::float8 / nullif(count(*) FILTER (WHERE part = 6), 0) AS abandon_rate,
    (count(*) FILTER (WHERE part = 7))::float8 / nullif(count(*) FILTER (WHERE part = 1), 0) AS transfer_rate,
    avg(val) FILTER (WHERE part = 8) / 1000 AS hold_time,
    (count(*) FILTER (WHERE part = 10))::float8 / nullif(count(*) FILTER (WHERE part = 9), 0)
        AS notification_accept_rate,
    avg(val) FILTER (WHERE part = 11) / 1000 AS notification_response_time,
    avg(val) FILTER (WHERE part = 12) AS csat
FROM parts
WHERE t >= $1 AND t < $2
GROUP BY queue, h";

/// Memory for the query's sorts and hashes, as an analyst's session would
/// set it (the default 4 MB spills to disk at this size).
pub const POSTGRES_WORK_MEM: &str = "SET work_mem = '256MB'";

fn copy_text(out: &mut String, value: Option<&str>) {
    match value {
        None | Some("") => out.push_str("\\N"),
        Some(text) => {
            for ch in text.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    _ => out.push(ch),
                }
            }
        }
    }
}

async fn copy_rows(
    peer: &Postgres,
    statement: &str,
    chunks: impl Iterator<Item = String>,
    started: Instant,
) -> anyhow::Result<()> {
    let sink = peer.client().copy_in::<_, bytes::Bytes>(statement).await?;
    futures::pin_mut!(sink);
    for chunk in chunks {
        check_budget(started)?;
        sink.send(bytes::Bytes::from(chunk)).await?;
    }
    sink.as_mut().finish().await?;
    Ok(())
}

/// Recreates the tables and loads the data with `COPY`, then indexes and
/// analyses them.
pub async fn postgres_load(peer: &Postgres, data: &ChannelData) -> anyhow::Result<LoadStats> {
    peer.client().batch_execute(POSTGRES_TABLES).await?;
    let started = Instant::now();
    let conversations = data.conversations.chunks(ROWS_PER_CHUNK).map(|chunk| {
        let mut text = String::new();
        for c in chunk {
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\n",
                conversation_id(c.index),
                CHANNELS[usize::from(c.channel)],
                PROVIDERS[usize::from(c.provider)].0,
                c.created
            ));
        }
        text
    });
    copy_rows(
        peer,
        "COPY conversations (conversation_id, channel, provider_id, created_ms) FROM STDIN",
        conversations,
        started,
    )
    .await?;
    let sessions = data.conversations.chunks(ROWS_PER_CHUNK).map(|chunk| {
        let mut text = String::new();
        for c in chunk {
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t",
                session_id(c.index),
                conversation_id(c.index),
                QUEUES[usize::from(c.queue)],
                CHANNELS[usize::from(c.channel)],
                c.created,
                c.queued,
            ));
            match c.answered {
                Some(answered) => text.push_str(&answered.to_string()),
                None => text.push_str("\\N"),
            }
            text.push('\n');
        }
        text
    });
    copy_rows(
        peer,
        "COPY sessions (session_id, conversation_id, queue_id, channel, created_ms, queued_ms, \
         answered_ms) FROM STDIN",
        sessions,
        started,
    )
    .await?;
    let mut events = data.raw_events().peekable();
    let event_chunks = std::iter::from_fn(move || {
        events.peek()?;
        let mut text = String::new();
        for event in events.by_ref().take(ROWS_PER_CHUNK) {
            copy_text(&mut text, Some(event.conversation.as_str()));
            text.push('\t');
            copy_text(&mut text, Some(event.session.as_str()));
            text.push('\t');
            copy_text(&mut text, Some(event.participant.as_str()));
            text.push('\t');
            copy_text(&mut text, Some(event.name));
            text.push('\t');
            text.push_str(&event.ts.to_string());
            text.push('\t');
            copy_text(&mut text, Some(event.action));
            text.push('\t');
            if event.score == 0 {
                text.push_str("\\N");
            } else {
                text.push_str(&event.score.to_string());
            }
            text.push('\n');
        }
        Some(text)
    });
    copy_rows(
        peer,
        "COPY kpi_events (conversation_id, session_id, participant_id, name, ts, action, score) \
         FROM STDIN",
        event_chunks,
        started,
    )
    .await?;
    peer.client().batch_execute(POSTGRES_INDEXES).await?;
    peer.client().batch_execute(POSTGRES_WORK_MEM).await?;
    let rows = 2 * data.conversations.len() + data.session_events() + data.presence.len();
    Ok(LoadStats::new(rows, started))
}

/// Runs the query; returns the time to its last row, and its cells.
pub async fn postgres_query(
    peer: &Postgres,
    from: i64,
    to: i64,
) -> anyhow::Result<(Duration, Cells)> {
    let sent = Instant::now();
    let rows = peer.client().query(POSTGRES_QUERY, &[&from, &to]).await?;
    let elapsed = sent.elapsed();
    let mut cells = Cells::new();
    for row in rows {
        let queue: String = row.get(0);
        let hour: i64 = row.get(1);
        let offered: i64 = row.get(2);
        put(&mut cells, 0, &queue, hour, Some(offered as f64));
        for i in 1..METRICS.len() {
            let value: Option<f64> = row.get(i + 2);
            put(&mut cells, i, &queue, hour, value);
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
    fn new(rows: usize, started: Instant) -> Self {
        let seconds = started.elapsed().as_secs_f64();
        Self {
            rows,
            seconds,
            rows_per_sec: rows as f64 / seconds,
        }
    }
}

fn check_budget(started: Instant) -> anyhow::Result<()> {
    if started.elapsed() > LOAD_BUDGET {
        bail!("loading a peer took longer than {LOAD_BUDGET:?}");
    }
    Ok(())
}
