//! The channel workload's data: seeded contact-centre conversations over 30
//! days, each with one session and its KPI events, and the agents' sign-in
//! and sign-out events (rendered as request items and raw rows in
//! [`super::items`]).
//!
//! The data is well formed in the ways a real provider's usually is: hold
//! starts and ends alternate (the last hold of a few sessions never ends, so
//! it ends at closed), each agent is notified at most once per session, and
//! no event is sent twice. That keeps pairing by order (k-th start with k-th
//! end) — what the peers' SQL does — equal to Tracklog's pairing rules.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Serialize;

/// 2026-03-02T00:00:00Z, a Monday.
pub const PERIOD_START_MS: i64 = 1_772_409_600_000;
pub const PERIOD_DAYS: i64 = 30;
pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const PERIOD_END_MS: i64 = PERIOD_START_MS + PERIOD_DAYS * DAY_MS;

pub const QUEUES: [&str; 8] = [
    "billing",
    "sales",
    "support",
    "technical",
    "retention",
    "claims",
    "onboarding",
    "vip",
];
const QUEUE_WEIGHTS: [f64; 8] = [22.0, 16.0, 20.0, 14.0, 8.0, 9.0, 7.0, 4.0];
pub const CHANNELS: [&str; 3] = ["voice", "chat", "sms"];
const CHANNEL_WEIGHTS: [f64; 3] = [40.0, 45.0, 15.0];
/// (id, name): two telephony providers share voice; one serves chat and SMS.
pub const PROVIDERS: [(&str, &str); 3] = [
    ("telco-a", "Telco A"),
    ("telco-b", "Telco B"),
    ("webchat", "Web Chat"),
];
pub const AGENTS: usize = 120;
/// Relative volume by hour of day (UTC), a contact centre's double hump.
const HOUR_WEIGHTS: [f64; 24] = [
    0.4, 0.3, 0.2, 0.2, 0.3, 0.6, 1.5, 3.5, 6.5, 8.5, 9.0, 8.8, 7.5, 7.8, 8.4, 8.2, 7.4, 6.0, 4.5,
    3.5, 2.8, 2.0, 1.3, 0.8,
];
/// Monday to Sunday.
const WEEKDAY_WEIGHTS: [f64; 7] = [1.15, 1.05, 1.0, 1.0, 0.95, 0.55, 0.35];

/// The KPI events the workload sends, by their built-in names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SessionStarted,
    NotificationDisplayed,
    NotificationResponse,
    SessionSwitched,
    HoldStarted,
    HoldEnded,
    TransferRequested,
    SessionClosed,
    WrapUpStarted,
    WrapUpEnded,
    ConversationEnded,
    CsatSubmitted,
    SentimentUpdated,
    AgentSignedIn,
    AgentSignedOut,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::SessionStarted => "SessionStarted",
            Kind::NotificationDisplayed => "NotificationDisplayed",
            Kind::NotificationResponse => "NotificationResponse",
            Kind::SessionSwitched => "SessionSwitched",
            Kind::HoldStarted => "HoldStarted",
            Kind::HoldEnded => "HoldEnded",
            Kind::TransferRequested => "TransferRequested",
            Kind::SessionClosed => "SessionClosed",
            Kind::WrapUpStarted => "WrapUpStarted",
            Kind::WrapUpEnded => "WrapUpEnded",
            Kind::ConversationEnded => "ConversationEnded",
            Kind::CsatSubmitted => "CsatSubmitted",
            Kind::SentimentUpdated => "SentimentUpdated",
            Kind::AgentSignedIn => "AgentSignedIn",
            Kind::AgentSignedOut => "AgentSignedOut",
        }
    }
}

/// A notification's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    Reject,
    Timeout,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Accept => "Accept",
            Action::Reject => "Reject",
            Action::Timeout => "Timeout",
        }
    }
}

/// One KPI event of a session.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub ts: i64,
    /// The agent it concerns, if any.
    pub agent: Option<u16>,
    pub action: Option<Action>,
    pub score: Option<u8>,
    /// A `SentimentUpdated` score in hundredths: an odd multiple of 5 from
    /// −95 to 95, so that no score sits on a band's edge.
    pub sentiment: Option<i16>,
}

impl Event {
    /// The sentiment score, from −1 to 1.
    pub fn sentiment_score(&self) -> Option<f64> {
        self.sentiment
            .map(|hundredths| f64::from(hundredths) / 100.0)
    }
}

/// One conversation with its one session.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub index: u32,
    pub channel: u8,
    pub provider: u8,
    pub queue: u8,
    pub created: i64,
    pub queued: i64,
    pub answered: Option<i64>,
    pub agent: Option<u16>,
    /// A second agent, added when the session was transferred.
    pub transfer_agent: Option<(u16, i64)>,
    pub events: Vec<Event>,
}

/// An agent's sign-in or sign-out.
#[derive(Debug, Clone)]
pub struct Presence {
    pub agent: u16,
    pub kind: Kind,
    pub ts: i64,
}

/// The generated workload.
pub struct ChannelData {
    pub conversations: Vec<Conversation>,
    pub presence: Vec<Presence>,
}

/// What the workload holds, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    pub conversations: usize,
    pub sessions: usize,
    pub session_events: usize,
    pub presence_events: usize,
    pub events_per_conversation: f64,
    pub days: i64,
    pub queues: usize,
    pub channels: usize,
    pub agents: usize,
    pub providers: usize,
    pub answered: usize,
    pub abandoned: usize,
    pub short_abandons: usize,
    pub transferred: usize,
    pub with_holds: usize,
    pub csat_submitted: usize,
    pub with_sentiment: usize,
    pub notifications_displayed: usize,
    pub by_channel: Vec<(String, usize)>,
}

pub fn conversation_id(index: u32) -> String {
    format!("conv-{index:07}")
}

pub fn session_id(index: u32) -> String {
    format!("sess-{index:07}")
}

pub fn agent_id(agent: u16) -> String {
    format!("agent-{agent:03}")
}

fn weighted(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut draw = rng.random::<f64>() * total;
    for (index, weight) in weights.iter().enumerate() {
        if draw < *weight {
            return index;
        }
        draw -= weight;
    }
    weights.len() - 1
}

/// Milliseconds from an exponential distribution with this mean in seconds.
fn exp_ms(rng: &mut StdRng, mean_seconds: f64) -> i64 {
    let exp = Exp::new(1.0 / mean_seconds).expect("a positive rate");
    (exp.sample(rng) * 1000.0) as i64
}

/// Milliseconds from a log-normal distribution with this median in seconds.
fn lognormal_ms(rng: &mut StdRng, median_seconds: f64, sigma: f64) -> i64 {
    let dist = LogNormal::new(median_seconds.ln(), sigma).expect("a valid log-normal");
    (dist.sample(rng) * 1000.0) as i64
}

/// An agent of the queue's pool (15 agents a queue), other than `not`.
fn pool_agent(rng: &mut StdRng, queue: u8, not: &[u16]) -> u16 {
    let per_queue = (AGENTS / QUEUES.len()) as u16;
    // Bounded: a pool has 15 agents and at most 3 are excluded.
    for _ in 0..64 {
        let agent = u16::from(queue) * per_queue + rng.random_range(0..per_queue);
        if !not.contains(&agent) {
            return agent;
        }
    }
    u16::from(queue) * per_queue
}

impl ChannelData {
    /// Generates `conversations` conversations with the seed.
    pub fn generate(conversations: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xC4A7_7E15);
        let day_weights: Vec<f64> = (0..PERIOD_DAYS)
            .map(|day| WEEKDAY_WEIGHTS[(day % 7) as usize])
            .collect();
        let peak = HOUR_WEIGHTS.iter().copied().fold(0.0, f64::max);
        let mut all = Vec::with_capacity(conversations);
        for index in 0..conversations {
            let day = weighted(&mut rng, &day_weights) as i64;
            let hour = weighted(&mut rng, &HOUR_WEIGHTS);
            let load = HOUR_WEIGHTS[hour] / peak * WEEKDAY_WEIGHTS[(day % 7) as usize];
            let created = PERIOD_START_MS
                + day * DAY_MS
                + hour as i64 * HOUR_MS
                + rng.random_range(0..HOUR_MS);
            all.push(conversation(&mut rng, index as u32, created, load));
        }
        // Conversations in time order, as a provider would send them.
        all.sort_by_key(|c| (c.created, c.index));
        Self {
            conversations: all,
            presence: presence(&mut rng),
        }
    }

    pub fn session_events(&self) -> usize {
        self.conversations.iter().map(|c| c.events.len()).sum()
    }

    pub fn summary(&self) -> DataSummary {
        let count =
            |f: &dyn Fn(&Conversation) -> bool| self.conversations.iter().filter(|c| f(c)).count();
        let closed = |c: &Conversation| {
            c.events
                .iter()
                .find(|e| e.kind == Kind::SessionClosed)
                .map(|e| e.ts)
        };
        let abandoned = |c: &Conversation| c.answered.is_none() && closed(c).is_some();
        let has = |c: &Conversation, kind: Kind| c.events.iter().any(|e| e.kind == kind);
        let session_events = self.session_events();
        DataSummary {
            conversations: self.conversations.len(),
            sessions: self.conversations.len(),
            session_events,
            presence_events: self.presence.len(),
            events_per_conversation: session_events as f64 / self.conversations.len().max(1) as f64,
            days: PERIOD_DAYS,
            queues: QUEUES.len(),
            channels: CHANNELS.len(),
            agents: AGENTS,
            providers: PROVIDERS.len(),
            answered: count(&|c| c.answered.is_some()),
            abandoned: count(&abandoned),
            short_abandons: count(&|c| {
                abandoned(c) && closed(c).is_some_and(|closed| closed - c.queued <= 5_000)
            }),
            transferred: count(&|c| has(c, Kind::TransferRequested)),
            with_holds: count(&|c| has(c, Kind::HoldStarted)),
            csat_submitted: count(&|c| has(c, Kind::CsatSubmitted)),
            with_sentiment: count(&|c| has(c, Kind::SentimentUpdated)),
            notifications_displayed: self
                .conversations
                .iter()
                .flat_map(|c| &c.events)
                .filter(|e| e.kind == Kind::NotificationDisplayed)
                .count(),
            by_channel: CHANNELS
                .iter()
                .enumerate()
                .map(|(i, name)| ((*name).to_owned(), count(&|c| usize::from(c.channel) == i)))
                .collect(),
        }
    }
}

fn event(kind: Kind, ts: i64, agent: Option<u16>) -> Event {
    Event {
        kind,
        ts,
        agent,
        action: None,
        score: None,
        sentiment: None,
    }
}

/// Two to five sentiment readings of the customer, spread over the talk
/// (all before it closes, at distinct times): a random walk over the
/// scores, which falls by 0.5 or more in some sessions.
fn sentiment_readings(rng: &mut StdRng, answer: i64, talk: i64) -> Vec<Event> {
    let readings = rng.random_range(2..=5i64);
    let mut level: i16 = rng.random_range(-4..=8);
    (0..readings)
        .map(|k| {
            let mut reading = event(
                Kind::SentimentUpdated,
                answer + talk * (k + 1) / (readings + 1),
                None,
            );
            reading.sentiment = Some(level * 10 + 5);
            level = (level + rng.random_range(-4..=3)).clamp(-10, 9);
            reading
        })
        .collect()
}

/// Up to `count` offers that fail (Reject or Timeout), one after the other
/// from `start`, each answered before `before`, to agents of the queue other
/// than `exclude`; their events go to `events`.
fn failed_offers(
    rng: &mut StdRng,
    queue: u8,
    count: usize,
    start: i64,
    before: i64,
    exclude: &[u16],
    events: &mut Vec<Event>,
) {
    let mut offered: Vec<u16> = exclude.to_vec();
    let mut at = start;
    for _ in 0..count {
        let (action, wait) = if rng.random_bool(0.5) {
            (Action::Reject, rng.random_range(800..9_000))
        } else {
            (Action::Timeout, 15_000)
        };
        if at + wait + 300 >= before {
            break;
        }
        let agent = pool_agent(rng, queue, &offered);
        offered.push(agent);
        events.push(event(Kind::NotificationDisplayed, at, Some(agent)));
        // A few displays are never answered (the client went away).
        if !rng.random_bool(0.01) {
            let mut response = event(Kind::NotificationResponse, at + wait, Some(agent));
            response.action = Some(action);
            events.push(response);
        }
        at += wait + rng.random_range(300..2_000);
    }
}

fn conversation(rng: &mut StdRng, index: u32, created: i64, load: f64) -> Conversation {
    let channel = weighted(rng, &CHANNEL_WEIGHTS) as u8;
    let provider = match channel {
        0 => rng.random_range(0..2u8),
        _ => 2,
    };
    let queue = weighted(rng, &QUEUE_WEIGHTS) as u8;
    let queued = created
        + match channel {
            0 => rng.random_range(2_000..20_000),
            _ => rng.random_range(200..3_000),
        };
    let mut events = vec![event(Kind::SessionStarted, created, None)];
    // How long the customer would wait, and how long the queue makes them.
    let short = rng.random_bool(0.03);
    let wait = exp_ms(rng, 6.0 + 40.0 * load);
    let patience = exp_ms(rng, if channel == 0 { 150.0 } else { 400.0 });
    let mut answered = None;
    let mut agent = None;
    let mut transfer_agent = None;
    if short || patience < wait {
        // Abandoned: gone after a few seconds, or after their patience.
        let gone = queued
            + if short {
                rng.random_range(500..=5_000)
            } else {
                patience
            };
        let tries = rng.random_range(0..3);
        failed_offers(rng, queue, tries, queued + 300, gone, &[], &mut events);
        events.push(event(Kind::SessionClosed, gone, None));
        events.push(event(Kind::ConversationEnded, gone, None));
    } else {
        let answer = queued + wait.max(1_000);
        let chosen = pool_agent(rng, queue, &[]);
        let response_wait = rng.random_range(600..6_000).min(answer - queued - 100);
        let display = answer - response_wait;
        let tries = [0, 0, 0, 0, 0, 0, 0, 1, 1, 2][rng.random_range(0..10)];
        failed_offers(
            rng,
            queue,
            tries,
            queued + 200,
            display,
            &[chosen],
            &mut events,
        );
        events.push(event(Kind::NotificationDisplayed, display, Some(chosen)));
        let mut accept = event(Kind::NotificationResponse, answer, Some(chosen));
        accept.action = Some(Action::Accept);
        events.push(accept);
        answered = Some(answer);
        agent = Some(chosen);
        let talk = match channel {
            0 => lognormal_ms(rng, 240.0, 0.6),
            1 => lognormal_ms(rng, 540.0, 0.5),
            _ => lognormal_ms(rng, 900.0, 0.6),
        }
        .max(20_000);
        let closed = answer + talk;
        // Holds, alternating and inside the talk; the last one of a few
        // sessions never ends.
        let holds = match channel {
            0 => [0, 0, 0, 0, 0, 0, 1, 1, 1, 2][rng.random_range(0..10)],
            _ => usize::from(rng.random_bool(0.1)),
        };
        let slot = talk / (2 * holds as i64 + 1);
        for hold in 0..holds {
            let start = answer + slot * (2 * hold as i64 + 1);
            events.push(event(Kind::HoldStarted, start, Some(chosen)));
            let last = hold + 1 == holds;
            if !(last && rng.random_bool(0.03)) {
                let length = rng.random_range(5_000..120_000).min(slot - 500);
                events.push(event(Kind::HoldEnded, start + length, Some(chosen)));
            }
        }
        // Focus switches: an agent juggles chats, rarely calls.
        let switches = match channel {
            0 => rng.random_range(0..=4),
            _ => rng.random_range(8..=30),
        };
        let mut switched: Vec<i64> = (0..switches)
            .map(|_| answer + rng.random_range(1_000..talk - 1_000))
            .collect();
        // The same event twice would be one event: keep the times distinct.
        switched.sort_unstable();
        switched.dedup();
        for at in switched {
            events.push(event(Kind::SessionSwitched, at, Some(chosen)));
        }
        // Sentiment analysis runs on most voice and chat sessions.
        if channel < 2 && rng.random_bool(0.7) {
            events.extend(sentiment_readings(rng, answer, talk));
        }
        if rng.random_bool(0.05) {
            let at = answer + rng.random_range(talk / 2..talk - 1_000);
            events.push(event(Kind::TransferRequested, at, Some(chosen)));
            transfer_agent = Some((pool_agent(rng, queue, &[chosen]), at + 2_000));
        }
        events.push(event(Kind::SessionClosed, closed, Some(chosen)));
        events.push(event(Kind::ConversationEnded, closed, None));
        if !rng.random_bool(0.03) {
            let wrap = match channel {
                0 => rng.random_range(10_000..120_000),
                _ => rng.random_range(3_000..40_000),
            };
            events.push(event(Kind::WrapUpStarted, closed, Some(chosen)));
            events.push(event(Kind::WrapUpEnded, closed + wrap, Some(chosen)));
        }
        if rng.random_bool(0.25) {
            let score = [1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5]
                [rng.random_range(0..20)];
            let mut csat = event(
                Kind::CsatSubmitted,
                closed + rng.random_range(20_000..900_000),
                None,
            );
            csat.score = Some(score);
            events.push(csat);
        }
    }
    events.sort_by_key(|e| e.ts);
    Conversation {
        index,
        channel,
        provider,
        queue,
        created,
        queued,
        answered,
        agent,
        transfer_agent,
        events,
    }
}

/// Shifts: weekdays for everyone, a third of the agents on Saturdays and a
/// fifth on Sundays; starts staggered from 06:00 to 13:00 UTC.
fn presence(rng: &mut StdRng) -> Vec<Presence> {
    let mut out = Vec::new();
    for agent in 0..AGENTS as u16 {
        for day in 0..PERIOD_DAYS {
            let weekday = day % 7;
            let works =
                weekday < 5 || (weekday == 5 && agent % 3 == 0) || (weekday == 6 && agent % 5 == 0);
            if !works {
                continue;
            }
            let start_hour = [6, 8, 10, 13][usize::from(agent % 4)];
            let start = PERIOD_START_MS
                + day * DAY_MS
                + start_hour * HOUR_MS
                + rng.random_range(-900_000..900_000);
            let end = start + 8 * HOUR_MS + rng.random_range(-900_000..900_000);
            out.push(Presence {
                agent,
                kind: Kind::AgentSignedIn,
                ts: start,
            });
            out.push(Presence {
                agent,
                kind: Kind::AgentSignedOut,
                ts: end,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_well_formed() {
        let a = ChannelData::generate(500, 7);
        let b = ChannelData::generate(500, 7);
        assert_eq!(a.session_events(), b.session_events());
        for c in &a.conversations {
            assert!(c.created >= PERIOD_START_MS && c.created < PERIOD_END_MS);
            assert!(c.queued > c.created);
            // Holds alternate, starting with a start.
            let holds: Vec<Kind> = c
                .events
                .iter()
                .filter(|e| matches!(e.kind, Kind::HoldStarted | Kind::HoldEnded))
                .map(|e| e.kind)
                .collect();
            for (i, kind) in holds.iter().enumerate() {
                let expected = if i % 2 == 0 {
                    Kind::HoldStarted
                } else {
                    Kind::HoldEnded
                };
                assert_eq!(*kind, expected);
            }
            // Each agent is notified at most once per session.
            let mut notified: Vec<u16> = c
                .events
                .iter()
                .filter(|e| e.kind == Kind::NotificationDisplayed)
                .filter_map(|e| e.agent)
                .collect();
            let before = notified.len();
            notified.sort_unstable();
            notified.dedup();
            assert_eq!(before, notified.len());
            if let Some(answered) = c.answered {
                assert!(answered >= c.queued);
            }
        }
        let summary = a.summary();
        assert!(summary.answered > summary.abandoned);
        assert!(summary.with_sentiment > 0);
        // Sentiment readings: in range, off the bands' edges, at distinct
        // times before the session closes; some sessions drop by 0.5.
        let mut dropped = 0;
        for c in &a.conversations {
            let closed = c.events.iter().find(|e| e.kind == Kind::SessionClosed);
            let readings: Vec<&Event> = c
                .events
                .iter()
                .filter(|e| e.kind == Kind::SentimentUpdated)
                .collect();
            let mut highest: Option<i16> = None;
            for (i, reading) in readings.iter().enumerate() {
                let score = reading.sentiment.unwrap();
                assert!((-95..=95).contains(&score) && score % 10 != 0);
                assert!(closed.is_some_and(|closed| reading.ts < closed.ts));
                if i > 0 {
                    assert!(reading.ts > readings[i - 1].ts);
                }
                if highest.is_some_and(|high| high - score >= 50) {
                    dropped += 1;
                    break;
                }
                highest = Some(highest.map_or(score, |high| high.max(score)));
            }
        }
        assert!(dropped > 0);
        assert!(summary.events_per_conversation > 10.0);
    }
}
