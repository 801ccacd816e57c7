//! Session facts (PRODUCT.md §6.1), derived from a session's record, its
//! participants and every KPI event it has.
//!
//! [`derive`] is a pure function of the *set* of inputs: it sorts the events
//! by (time, name, id) before reading them, so duplicates, late arrivals and
//! any arrival order give the same facts. The store calls it again whenever
//! anything about the session arrives.
//!
//! Readings of the contract where it is silent:
//! - "closed" is the earliest `SessionClosed`.
//! - "the agent" is the agent-type participant added first (ties by id): the
//!   one who answered, also after a transfer.
//! - "within" a threshold includes it: answered after exactly T counts as
//!   within T, and an abandon after exactly the short-abandon threshold is a
//!   short abandon.
//! - hold and wrap-up pair each start with the next end; a second start
//!   while one is open is ignored, as is an end with none open. An unmatched
//!   `HoldStarted` ends at closed; an unmatched `WrapUpStarted` adds nothing
//!   until its end arrives (the session shows as wrapping up).

use serde::{Deserialize, Serialize};

use super::definitions::names;
use super::payload::{Conversation, KpiEvent, Participant, Session};
use super::sentiment::SessionSentiment;
use crate::time::UtcMillis;

/// The version of what [`derive`] and the contributions compute. Stored
/// facts and rollups made by an older version are derived again at the
/// next start; bump it whenever either changes what it computes.
/// 1: the customer's sentiment, CSAT in the facts, the sentiment band.
pub const DERIVATION: i64 = 1;

/// A queue's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// Answered within this many ms counts toward service level.
    pub service_level_ms: i64,
    /// Abandoned within this many ms of being queued is a short abandon.
    pub short_abandon_ms: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            service_level_ms: 20_000,
            short_abandon_ms: 5_000,
        }
    }
}

/// Where a session stands now, for the real-time view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Known, but not queued yet.
    New,
    /// Queued and not answered yet.
    Waiting,
    /// Answered and not closed.
    Active,
    /// In wrap-up (started and not ended).
    WrappingUp,
    /// Closed, wrap-up (if any) done.
    Closed,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Waiting => "waiting",
            Status::Active => "active",
            Status::WrappingUp => "wrapping_up",
            Status::Closed => "closed",
        }
    }
}

/// What a session amounts to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionFacts {
    pub session_id: String,
    pub conversation_id: String,
    pub queue: Option<String>,
    pub channel: Option<String>,
    pub provider: Option<String>,
    pub agent: Option<String>,
    #[serde(default, with = "crate::time::rfc3339_opt")]
    pub queued_at: Option<UtcMillis>,
    #[serde(default, with = "crate::time::rfc3339_opt")]
    pub answered_at: Option<UtcMillis>,
    #[serde(default, with = "crate::time::rfc3339_opt")]
    pub closed_at: Option<UtcMillis>,
    pub hold_ms: i64,
    pub holds: usize,
    pub wrap_ms: i64,
    /// The later of closed and the last `WrapUpEnded`, minus answered.
    pub handle_ms: Option<i64>,
    /// Handle time minus hold minus wrap-up.
    pub talk_ms: Option<i64>,
    pub abandoned: bool,
    pub short_abandon: bool,
    pub answered_within_sl: bool,
    /// The session's service-level breach flag: queued, and answered or
    /// abandoned after the queue's threshold (a short abandon is no breach).
    #[serde(default)]
    pub sl_breached: bool,
    pub transferred: bool,
    pub status: Status,
    /// The latest time anything about the session happened.
    #[serde(with = "crate::time::rfc3339")]
    pub last_activity: UtcMillis,
    /// The customer's sentiment: current, lowest and closing score, time
    /// spent negative, and whether it dropped.
    #[serde(default)]
    pub sentiment: SessionSentiment,
    /// The latest `CsatSubmitted` score.
    #[serde(default)]
    pub csat: Option<u8>,
}

impl SessionFacts {
    /// Answered and closed: the sessions AHT, hold time and transfer rate
    /// are over.
    pub fn handled(&self) -> bool {
        self.answered_at.is_some() && self.closed_at.is_some()
    }

    /// Closed with a CSAT of 2 or less, or with a negative closing
    /// sentiment: a conversation a supervisor reviews.
    pub fn dissatisfied(&self) -> bool {
        self.closed_at.is_some()
            && (self.csat.is_some_and(|score| score <= 2)
                || self
                    .sentiment
                    .closing_band()
                    .is_some_and(|band| band.is_negative()))
    }
}

/// Events sorted into the one order every derivation reads them in.
pub fn sorted(events: &[KpiEvent]) -> Vec<&KpiEvent> {
    let mut sorted: Vec<&KpiEvent> = events.iter().collect();
    sorted.sort_by(|a, b| {
        (a.event_timestamp, &a.kpi_event_name, &a.event_id)
            .cmp(&(b.event_timestamp, &b.kpi_event_name, &b.event_id))
            // Two events under one id that say different things (a
            // provider's bug, not a retry): which one is kept must not
            // depend on arrival either, so ties compare everything.
            .then_with(|| format!("{a:?}").cmp(&format!("{b:?}")))
    });
    sorted.dedup_by(|a, b| a.event_id == b.event_id);
    sorted
}

/// Sums the start→end pairs of one kind. Returns the closed total, the
/// number of pairs, and the start of a pair still open.
fn pairs(events: &[&KpiEvent], start: &str, end: &str) -> (i64, usize, Option<UtcMillis>) {
    let mut total = 0;
    let mut count = 0;
    let mut open: Option<UtcMillis> = None;
    for event in events {
        let name = event.kpi_event_name.as_str();
        if name == start {
            open.get_or_insert(event.event_timestamp);
        } else if name == end
            && let Some(since) = open.take()
        {
            total += (event.event_timestamp.as_millis() - since.as_millis()).max(0);
            count += 1;
        }
    }
    (total, count, open)
}

/// The agent: the agent-type participant added first.
pub fn agent_of(participants: &[Participant]) -> Option<String> {
    participants
        .iter()
        .filter(|p| p.is_agent())
        .min_by(|a, b| {
            let key = |p: &Participant| {
                (
                    p.added_timestamp.map_or(i64::MAX, UtcMillis::as_millis),
                    p.participant_id.clone(),
                )
            };
            key(a).cmp(&key(b))
        })
        .map(|p| p.participant_id.clone())
}

/// Derives a session's facts. `events` may hold duplicates and come in any
/// order.
pub fn derive(
    session: &Session,
    conversation: Option<&Conversation>,
    participants: &[Participant],
    events: &[KpiEvent],
    thresholds: Thresholds,
) -> SessionFacts {
    let events = sorted(events);
    let queued_at = session.queue_assigned_timestamp;
    let answered_at = session.agent_assigned_timestamp;
    let closed_at = events
        .iter()
        .find(|e| e.kpi_event_name == names::SESSION_CLOSED)
        .map(|e| e.event_timestamp);
    let (mut hold_ms, mut holds, open_hold) =
        pairs(&events, names::HOLD_STARTED, names::HOLD_ENDED);
    if let (Some(since), Some(closed)) = (open_hold, closed_at) {
        hold_ms += (closed.as_millis() - since.as_millis()).max(0);
        holds += 1;
    }
    let (wrap_ms, _, open_wrap) = pairs(&events, names::WRAP_UP_STARTED, names::WRAP_UP_ENDED);
    let last_wrap_end = events
        .iter()
        .filter(|e| e.kpi_event_name == names::WRAP_UP_ENDED)
        .map(|e| e.event_timestamp)
        .max();
    let handle_ms = match (answered_at, closed_at) {
        (Some(answered), Some(closed)) => {
            let end = last_wrap_end.map_or(closed, |wrap| wrap.max(closed));
            Some((end.as_millis() - answered.as_millis()).max(0))
        }
        _ => None,
    };
    let talk_ms = handle_ms.map(|handle| (handle - hold_ms - wrap_ms).max(0));
    let abandoned = queued_at.is_some() && answered_at.is_none() && closed_at.is_some();
    let short_abandon = abandoned
        && match (queued_at, closed_at) {
            (Some(queued), Some(closed)) => {
                closed.as_millis() - queued.as_millis() <= thresholds.short_abandon_ms
            }
            _ => false,
        };
    let answered_within_sl = match (queued_at, answered_at) {
        (Some(queued), Some(answered)) => {
            answered.as_millis() - queued.as_millis() <= thresholds.service_level_ms
        }
        _ => false,
    };
    let sl_breached = match (queued_at, answered_at, closed_at) {
        (Some(_), Some(_), _) => !answered_within_sl,
        (Some(queued), None, Some(closed)) => {
            !short_abandon && closed.as_millis() - queued.as_millis() > thresholds.service_level_ms
        }
        _ => false,
    };
    let transferred = events
        .iter()
        .any(|e| e.kpi_event_name == names::TRANSFER_REQUESTED);
    let status = if open_wrap.is_some() && (closed_at.is_some() || answered_at.is_some()) {
        Status::WrappingUp
    } else if closed_at.is_some() {
        Status::Closed
    } else if answered_at.is_some() {
        Status::Active
    } else if queued_at.is_some() {
        Status::Waiting
    } else {
        Status::New
    };
    let last_activity = events
        .iter()
        .map(|e| e.event_timestamp)
        .chain(
            [
                session.created_timestamp,
                queued_at,
                answered_at,
                conversation.and_then(|c| c.created_timestamp),
            ]
            .into_iter()
            .flatten(),
        )
        .max()
        .unwrap_or(UtcMillis::from_millis(0));
    let sentiment = SessionSentiment::of(&events, closed_at, last_activity);
    let csat = events
        .iter()
        .filter(|e| e.kpi_event_name == names::CSAT_SUBMITTED)
        .filter_map(|e| e.score())
        .next_back();
    SessionFacts {
        session_id: session.provider_session_id.clone(),
        conversation_id: session.conversation_id.clone(),
        queue: session
            .queue_id
            .clone()
            .or_else(|| session.queue_name.clone()),
        channel: session
            .channel
            .clone()
            .or_else(|| conversation.and_then(|c| c.channel.clone())),
        provider: conversation.and_then(|c| c.provider_id.clone()),
        agent: agent_of(participants),
        queued_at,
        answered_at,
        closed_at,
        hold_ms,
        holds,
        wrap_ms,
        handle_ms,
        talk_ms,
        abandoned,
        short_abandon,
        answered_within_sl,
        sl_breached,
        transferred,
        status,
        last_activity,
        sentiment,
        csat,
    }
}

/// An agent's signed-in spans from their `AgentSignedIn` / `AgentSignedOut`
/// events, in any order. A span still open is returned with `None` as its
/// end; it counts toward occupancy only once it is closed.
pub fn signed_in_spans(events: &[KpiEvent]) -> Vec<(UtcMillis, Option<UtcMillis>)> {
    let mut spans = Vec::new();
    let mut open: Option<UtcMillis> = None;
    for event in sorted(events) {
        match event.kpi_event_name.as_str() {
            names::AGENT_SIGNED_IN => {
                open.get_or_insert(event.event_timestamp);
            }
            names::AGENT_SIGNED_OUT => {
                if let Some(since) = open.take() {
                    spans.push((since, Some(event.event_timestamp)));
                }
            }
            _ => {}
        }
    }
    if let Some(since) = open {
        spans.push((since, None));
    }
    spans
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const T0: i64 = 1_772_359_200_000; // 2026-03-01T10:00:00Z

    pub fn at(seconds: i64) -> UtcMillis {
        UtcMillis::from_millis(T0 + seconds * 1000)
    }

    pub fn session(queued: Option<i64>, answered: Option<i64>) -> Session {
        Session {
            provider_session_id: "s1".into(),
            conversation_id: "c1".into(),
            client_session_id: None,
            client_session_name: None,
            channel: Some("voice".into()),
            creation_reason: None,
            created_timestamp: Some(at(0)),
            agent_assigned_timestamp: answered.map(at),
            queue_assigned_timestamp: queued.map(at),
            queue_id: Some("billing".into()),
            queue_name: None,
            custom_data: None,
        }
    }

    pub fn event(name: &str, seconds: i64) -> KpiEvent {
        let mut event = KpiEvent {
            event_id: String::new(),
            conversation_id: Some("c1".into()),
            provider_session_id: Some("s1".into()),
            client_session_id: None,
            participant_id: Some("agent-7".into()),
            correlation_id: None,
            kpi_event_name: name.into(),
            kpi_event_reason: None,
            event_timestamp: at(seconds),
            notification_response_action: None,
            external_correlation_id: None,
            additional_data: None,
            custom_data: None,
        };
        event.event_id = format!("{name}@{seconds}");
        event
    }

    pub fn agent(id: &str, added: i64) -> Participant {
        Participant {
            participant_id: id.into(),
            provider_session_id: "s1".into(),
            conversation_id: "c1".into(),
            external_id: None,
            name: None,
            mode: None,
            kind: Some("agent".into()),
            added_timestamp: Some(at(added)),
            assign_reason: None,
            custom_data: None,
        }
    }

    fn facts(session: &Session, events: &[KpiEvent]) -> SessionFacts {
        derive(
            session,
            None,
            &[agent("agent-7", 10)],
            events,
            Thresholds::default(),
        )
    }

    #[test]
    fn two_holds_wrap_up_and_handle_time() {
        // Queued at 0, answered at 10, holds 30–40 and 60–75, closed at
        // 100, wrap-up 100–130.
        let events = [
            event(names::HOLD_STARTED, 30),
            event(names::HOLD_ENDED, 40),
            event(names::HOLD_STARTED, 60),
            event(names::HOLD_ENDED, 75),
            event(names::SESSION_CLOSED, 100),
            event(names::WRAP_UP_STARTED, 100),
            event(names::WRAP_UP_ENDED, 130),
        ];
        let f = facts(&session(Some(0), Some(10)), &events);
        assert_eq!(f.hold_ms, 25_000);
        assert_eq!(f.holds, 2);
        assert_eq!(f.wrap_ms, 30_000);
        assert_eq!(f.handle_ms, Some(120_000), "130 - 10");
        assert_eq!(f.talk_ms, Some(65_000), "120 - 25 - 30");
        assert!(f.answered_within_sl);
        assert!(!f.abandoned);
        assert_eq!(f.status, Status::Closed);
        assert_eq!(f.agent.as_deref(), Some("agent-7"));
    }

    #[test]
    fn any_arrival_order_and_duplicates_give_the_same_facts() {
        let mut events = vec![
            event(names::HOLD_ENDED, 40),
            event(names::SESSION_CLOSED, 100),
            event(names::HOLD_STARTED, 30),
            event(names::HOLD_STARTED, 30),
        ];
        let a = facts(&session(Some(0), Some(10)), &events);
        events.reverse();
        let b = facts(&session(Some(0), Some(10)), &events);
        assert_eq!(a, b);
        assert_eq!(a.hold_ms, 10_000);
    }

    #[test]
    fn an_unmatched_hold_ends_at_closed() {
        let events = [
            event(names::HOLD_STARTED, 50),
            event(names::SESSION_CLOSED, 80),
        ];
        let f = facts(&session(Some(0), Some(10)), &events);
        assert_eq!(f.hold_ms, 30_000);
        assert_eq!(f.handle_ms, Some(70_000));
    }

    #[test]
    fn abandons_short_and_long() {
        let short = facts(&session(Some(0), None), &[event(names::SESSION_CLOSED, 5)]);
        assert!(short.abandoned && short.short_abandon, "5 s is within 5 s");
        let long = facts(&session(Some(0), None), &[event(names::SESSION_CLOSED, 6)]);
        assert!(long.abandoned && !long.short_abandon);
        assert_eq!(long.handle_ms, None);
        let waiting = facts(&session(Some(0), None), &[]);
        assert!(!waiting.abandoned);
        assert_eq!(waiting.status, Status::Waiting);
    }

    #[test]
    fn service_level_threshold_is_inclusive() {
        let on_time = facts(&session(Some(0), Some(20)), &[]);
        assert!(on_time.answered_within_sl);
        assert_eq!(on_time.status, Status::Active);
        assert!(!on_time.sl_breached);
        let late = facts(&session(Some(0), Some(21)), &[]);
        assert!(!late.answered_within_sl);
        assert!(late.sl_breached, "flagged once answered late");
        let gave_up = facts(&session(Some(0), None), &[event(names::SESSION_CLOSED, 25)]);
        assert!(gave_up.sl_breached, "abandoned after the threshold");
        let short = facts(&session(Some(0), None), &[event(names::SESSION_CLOSED, 2)]);
        assert!(!short.sl_breached, "a short abandon is no breach");
    }

    #[test]
    fn transfer_and_wrapping_up() {
        let f = facts(
            &session(Some(0), Some(10)),
            &[
                event(names::TRANSFER_REQUESTED, 50),
                event(names::SESSION_CLOSED, 90),
                event(names::WRAP_UP_STARTED, 90),
            ],
        );
        assert!(f.transferred);
        assert_eq!(f.status, Status::WrappingUp);
        assert_eq!(f.handle_ms, Some(80_000));
    }

    #[test]
    fn the_first_agent_added_is_the_agent() {
        let participants = [agent("agent-9", 50), agent("agent-7", 10)];
        assert_eq!(agent_of(&participants).as_deref(), Some("agent-7"));
    }

    #[test]
    fn signed_in_spans_pair_in_time_order() {
        let spans = signed_in_spans(&[
            event(names::AGENT_SIGNED_OUT, 100),
            event(names::AGENT_SIGNED_IN, 0),
            event(names::AGENT_SIGNED_IN, 200),
        ]);
        assert_eq!(spans, vec![(at(0), Some(at(100))), (at(200), None)]);
    }
}
