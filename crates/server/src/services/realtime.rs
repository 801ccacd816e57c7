//! Channel analytics in real time: the live counts per queue, the snapshot
//! the real-time page and stream show, and the sessions that turned negative.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};
use tracklog_domain::channel::facts::{SessionFacts, Status};
use tracklog_domain::channel::interval::{self};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;
use tracklog_store::Stores;

use super::ServiceError;
use super::analytics::{MetricsAnswer, MetricsQuery, query_metrics};

/// Sessions quiet for longer than this are not live any more.
pub const LIVE_HORIZON_MS: i64 = 24 * 3_600_000;

/// One queue's live counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueueLive {
    pub queue: String,
    pub waiting: usize,
    pub active: usize,
    pub wrapping_up: usize,
    pub longest_wait_seconds: f64,
}

/// What the supervisor's live view shows, as of `at`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    #[serde(with = "tracklog_domain::time::rfc3339")]
    pub at: UtcMillis,
    pub waiting: usize,
    pub active: usize,
    pub wrapping_up: usize,
    pub longest_wait_seconds: f64,
    pub agents_busy: usize,
    pub agents_signed_in: usize,
    pub queues: Vec<QueueLive>,
    /// Waiting sessions already past their queue's service-level threshold:
    /// flagged before they are answered late.
    pub breaching: Vec<Value>,
    /// Ongoing sessions whose customer's sentiment is now below neutral,
    /// most negative first.
    pub turned_negative: Vec<SessionFacts>,
    /// The current interval so far and the last closed one, from the same
    /// pre-aggregates as `POST /api/v1/metrics/query`.
    pub current: MetricsAnswer,
    pub previous: MetricsAnswer,
}

/// Counts live sessions: pure, for tests and the page.
pub fn live_counts(facts: &[SessionFacts], now: UtcMillis) -> (Vec<QueueLive>, QueueLive, usize) {
    let mut queues: BTreeMap<String, QueueLive> = BTreeMap::new();
    let mut total = QueueLive::default();
    let mut busy = HashSet::new();
    for f in facts {
        let queue = f.queue.clone().unwrap_or_default();
        let entry = queues.entry(queue.clone()).or_insert_with(|| QueueLive {
            queue,
            ..QueueLive::default()
        });
        for counts in [&mut *entry, &mut total] {
            match f.status {
                Status::Waiting => {
                    counts.waiting += 1;
                    if let Some(queued) = f.queued_at {
                        let wait = (now.as_millis() - queued.as_millis()).max(0) as f64 / 1000.0;
                        counts.longest_wait_seconds = counts.longest_wait_seconds.max(wait);
                    }
                }
                Status::Active => counts.active += 1,
                Status::WrappingUp => counts.wrapping_up += 1,
                Status::New | Status::Closed => {}
            }
        }
        if matches!(f.status, Status::Active | Status::WrappingUp)
            && let Some(agent) = &f.agent
        {
            busy.insert(agent.clone());
        }
    }
    (queues.into_values().collect(), total, busy.len())
}

/// The live snapshot for an org; `base` gives the metrics, interval, time
/// zone and filters of the interval figures.
pub async fn snapshot(
    stores: &Stores,
    org: OrgId,
    base: &MetricsQuery,
    now: UtcMillis,
) -> Result<Snapshot, ServiceError> {
    let live = stores
        .channel
        .live_sessions(
            org,
            UtcMillis::from_millis(now.as_millis() - LIVE_HORIZON_MS),
        )
        .await?;
    let (queues, total, agents_busy) = live_counts(&live, now);
    let thresholds: BTreeMap<String, i64> = stores
        .channel
        .queues(org)
        .await?
        .into_iter()
        .map(|q| (q.queue, q.service_level_seconds * 1000))
        .collect();
    let breaching = live
        .iter()
        .filter(|f| f.status == Status::Waiting)
        .filter_map(|f| {
            let queued = f.queued_at?;
            let queue = f.queue.clone().unwrap_or_default();
            let limit = thresholds.get(&queue).copied().unwrap_or(20_000);
            let waited = now.as_millis() - queued.as_millis();
            (waited > limit).then(|| {
                json!({"session_id": f.session_id, "queue": queue, "kpi": "service_level",
                       "waited_seconds": waited as f64 / 1000.0, "threshold_seconds": limit / 1000})
            })
        })
        .collect();
    let turned_negative = turned_negative(&live);
    let spans = stores
        .channel
        .agent_spans(
            org,
            UtcMillis::from_millis(now.as_millis() - LIVE_HORIZON_MS),
        )
        .await?;
    // An agent is signed in while their last span is open.
    let agents_signed_in = spans
        .iter()
        .filter(|(_, spans)| spans.last().is_some_and(|(_, end)| end.is_none()))
        .count();
    let current_start = interval::floor(now, base.interval, &base.tz);
    let previous_start = interval::floor(
        UtcMillis::from_millis(current_start.as_millis() - 1),
        base.interval,
        &base.tz,
    );
    let at = |from: UtcMillis, to: UtcMillis| MetricsQuery {
        from,
        to,
        ..base.clone()
    };
    let current = query_metrics(
        stores,
        org,
        &at(
            current_start,
            UtcMillis::from_millis(current_start.as_millis() + 1),
        ),
    )
    .await?;
    let previous = query_metrics(stores, org, &at(previous_start, current_start)).await?;
    Ok(Snapshot {
        at: now,
        waiting: total.waiting,
        active: total.active,
        wrapping_up: total.wrapping_up,
        longest_wait_seconds: total.longest_wait_seconds,
        agents_busy,
        agents_signed_in,
        queues,
        breaching,
        turned_negative,
        current,
        previous,
    })
}

/// The live sessions whose sentiment turned negative: not closed, with a
/// current score below the neutral band; most negative first.
pub fn turned_negative(live: &[SessionFacts]) -> Vec<SessionFacts> {
    let mut flagged: Vec<SessionFacts> = live
        .iter()
        .filter(|f| f.status != Status::Closed)
        .filter(|f| {
            f.sentiment
                .current_band()
                .is_some_and(|band| band.is_negative())
        })
        .cloned()
        .collect();
    flagged.sort_by(|a, b| {
        a.sentiment
            .current
            .partial_cmp(&b.sentiment.current)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.session_id.cmp(&b.session_id))
    });
    flagged
}
