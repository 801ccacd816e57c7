//! The dashboard's SQL on PostgreSQL: the raw tables loaded with `COPY`,
//! and the query that computes [`METRICS`] from them with `row_number()`
//! and window maxima (see [`super::sql`] for the readings both peers share).

use std::time::{Duration, Instant};

use futures::SinkExt;

use super::data::{CHANNELS, ChannelData, PROVIDERS, QUEUES, conversation_id, session_id};
use super::sql::{Cells, LoadStats, METRICS, ROWS_PER_CHUNK, check_budget, put};
use crate::peers::postgres::Postgres;

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
    score smallint,
    sentiment double precision
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
sentiments AS (
    SELECT e.session_id, e.ts, e.sentiment,
        max(e.sentiment) OVER (PARTITION BY e.session_id ORDER BY e.ts
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS highest_before,
        row_number() OVER (PARTITION BY e.session_id ORDER BY e.ts DESC) AS from_last
    FROM kpi_events e JOIN per_session p USING (session_id)
    WHERE e.name = 'SentimentUpdated' AND e.ts <= p.closed
),
sentiment AS (
    SELECT session_id,
        max(sentiment) FILTER (WHERE from_last = 1) AS closing,
        coalesce(bool_or(highest_before - sentiment >= 0.5 - 1e-9), false) AS dropped
    FROM sentiments GROUP BY session_id
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
        se.closing, coalesce(se.dropped, false) AS dropped,
        s.answered_ms IS NOT NULL AND p.closed IS NOT NULL AS handled,
        greatest(greatest(p.closed, p.wrap_end) - s.answered_ms, 0) AS handle_ms,
        s.queued_ms IS NOT NULL AND s.answered_ms IS NULL AND p.closed IS NOT NULL AS abandoned
    FROM sessions s
    LEFT JOIN per_session p USING (session_id)
    LEFT JOIN hold h USING (session_id)
    LEFT JOIN sentiment se USING (session_id)
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
        (8, f.closed, f.hold_ms::float8, f.handled),
        (13, f.closed, f.closing, f.handled AND f.closing IS NOT NULL),
        (14, f.closed, 1.0::float8, f.handled AND f.closing IS NOT NULL AND f.closing < -0.1),
        (15, f.closed, 1.0::float8, f.handled AND f.closing IS NOT NULL AND f.dropped)
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
    avg(val) FILTER (WHERE part = 12) AS csat,
    avg(val) FILTER (WHERE part = 13) AS mean_sentiment,
    (count(*) FILTER (WHERE part = 14))::float8 / nullif(count(*) FILTER (WHERE part = 13), 0)
        AS negative_sentiment_rate,
    (count(*) FILTER (WHERE part = 15))::float8 / nullif(count(*) FILTER (WHERE part = 13), 0)
        AS sentiment_drop_rate
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
            text.push('\t');
            match event.sentiment {
                Some(score) => text.push_str(&score.to_string()),
                None => text.push_str("\\N"),
            }
            text.push('\n');
        }
        Some(text)
    });
    copy_rows(
        peer,
        "COPY kpi_events (conversation_id, session_id, participant_id, name, ts, action, score, \
         sentiment) FROM STDIN",
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
