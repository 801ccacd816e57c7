//! The metric catalogue of PRODUCT.md §6.1 as data, and the contributions
//! that sessions and agents make to pre-aggregated buckets. The fold of
//! those buckets into a query's intervals is in [`super::series`].
//!
//! A metric is a [`Formula`] over *parts*. A part is a (sum, count) pair kept
//! per 15-minute bucket and per dimension (queue, channel, agent, provider,
//! and the session's closing sentiment band),
//! attributed to the bucket of the time the metric's definition names. A
//! session's contributions are a pure function of its facts and events; when
//! they change the store subtracts the old ones and adds the new, so the
//! buckets always equal a rebuild from raw events.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::definitions::names;
use super::facts::{SessionFacts, sorted};
use super::interval::{BUCKET_MS, bucket_of};
use super::payload::{KpiEvent, ResponseAction};
use super::sentiment::is_negative;
use crate::time::UtcMillis;

/// A (sum, count) kept per bucket and dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Sessions queued (count), at queued.
    Offered,
    /// Handle time of handled sessions (sum ms, count), at closed.
    Handle,
    /// answered − queued of answered sessions (sum ms, count), at answered.
    Wait,
    /// Sessions answered within the service-level threshold, at queued.
    SlMet,
    /// Answered sessions plus abandons that were not short, at queued.
    SlBase,
    /// Abandons that were not short, at queued.
    LongAbandoned,
    /// Queued sessions that were not short abandons, at queued.
    QueuedNotShort,
    /// Handled sessions with a `TransferRequested`, at closed.
    Transferred,
    /// Hold of handled sessions (sum ms, count), at closed.
    Hold,
    /// Wrap-up of handled sessions (sum ms, count), at closed.
    Wrap,
    /// Talk of handled sessions (sum ms, count), at closed.
    Talk,
    /// `NotificationDisplayed` events, at displayed.
    NotificationDisplayed,
    /// Accepting responses, at their notification's display.
    NotificationAccepted,
    /// response − display of matched responses (sum ms, count), at response.
    NotificationResponse,
    /// CSAT scores (sum, count), at submitted.
    Csat,
    /// CSAT scores of 4 or 5, at submitted.
    CsatTop2,
    /// An agent's signed-in time (sum ms), split over the buckets it covers.
    SignedIn,
    /// Closing sentiment scores of handled sessions that have one (sum,
    /// count), at closed.
    ClosingSentiment,
    /// Handled sessions closing below the neutral band, at closed.
    NegativeClosing,
    /// Handled sessions with a closing sentiment whose score fell by 0.5 or
    /// more between two updates, at closed.
    SentimentDropped,
}

impl Part {
    /// Every part; a part's code is its place here, so new parts go last.
    pub const ALL: [Part; 20] = [
        Part::Offered,
        Part::Handle,
        Part::Wait,
        Part::SlMet,
        Part::SlBase,
        Part::LongAbandoned,
        Part::QueuedNotShort,
        Part::Transferred,
        Part::Hold,
        Part::Wrap,
        Part::Talk,
        Part::NotificationDisplayed,
        Part::NotificationAccepted,
        Part::NotificationResponse,
        Part::Csat,
        Part::CsatTop2,
        Part::SignedIn,
        Part::ClosingSentiment,
        Part::NegativeClosing,
        Part::SentimentDropped,
    ];

    /// The stable code stored with each bucket.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Part> {
        Part::ALL.get(usize::from(code)).copied()
    }
}

/// A dimension a query can group or filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Queue,
    Channel,
    Agent,
    Provider,
    /// The session's closing sentiment band ([`Band::code`]); empty while
    /// it has none.
    SentimentBand,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [
        Dimension::Queue,
        Dimension::Channel,
        Dimension::Agent,
        Dimension::Provider,
        Dimension::SentimentBand,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queue" => Some(Self::Queue),
            "channel" => Some(Self::Channel),
            "agent" => Some(Self::Agent),
            "provider" => Some(Self::Provider),
            "sentiment_band" => Some(Self::SentimentBand),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Channel => "channel",
            Self::Agent => "agent",
            Self::Provider => "provider",
            Self::SentimentBand => "sentiment_band",
        }
    }
}

/// The dimension values of a contribution; empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dims {
    pub queue: String,
    pub channel: String,
    pub agent: String,
    pub provider: String,
    /// The closing sentiment band's code, or empty.
    pub band: String,
}

impl Dims {
    pub fn of(facts: &SessionFacts) -> Self {
        Self {
            queue: facts.queue.clone().unwrap_or_default(),
            channel: facts.channel.clone().unwrap_or_default(),
            agent: facts.agent.clone().unwrap_or_default(),
            provider: facts.provider.clone().unwrap_or_default(),
            band: facts
                .sentiment
                .closing_band()
                .map(|band| band.code().to_owned())
                .unwrap_or_default(),
        }
    }

    pub fn get(&self, dimension: Dimension) -> &str {
        match dimension {
            Dimension::Queue => &self.queue,
            Dimension::Channel => &self.channel,
            Dimension::Agent => &self.agent,
            Dimension::Provider => &self.provider,
            Dimension::SentimentBand => &self.band,
        }
    }
}

/// One addition to one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub part: Part,
    pub bucket: i64,
    pub dims: Dims,
    pub sum: f64,
    pub count: i64,
}

fn add(out: &mut Vec<Contribution>, part: Part, at: UtcMillis, dims: &Dims, sum: f64) {
    out.push(Contribution {
        part,
        bucket: bucket_of(at),
        dims: dims.clone(),
        sum,
        count: 1,
    });
}

/// What one session adds to the buckets.
pub fn session_contributions(facts: &SessionFacts, events: &[KpiEvent]) -> Vec<Contribution> {
    let mut out = Vec::new();
    let dims = Dims::of(facts);
    if let Some(queued) = facts.queued_at {
        add(&mut out, Part::Offered, queued, &dims, 1.0);
        if !facts.short_abandon {
            add(&mut out, Part::QueuedNotShort, queued, &dims, 1.0);
        }
        if facts.abandoned && !facts.short_abandon {
            add(&mut out, Part::LongAbandoned, queued, &dims, 1.0);
        }
        if facts.answered_at.is_some() || (facts.abandoned && !facts.short_abandon) {
            add(&mut out, Part::SlBase, queued, &dims, 1.0);
        }
        if facts.answered_within_sl {
            add(&mut out, Part::SlMet, queued, &dims, 1.0);
        }
        if let Some(answered) = facts.answered_at {
            let wait = (answered.as_millis() - queued.as_millis()).max(0);
            add(&mut out, Part::Wait, answered, &dims, wait as f64);
        }
    }
    if let (Some(closed), Some(handle)) = (facts.closed_at, facts.handle_ms) {
        add(&mut out, Part::Handle, closed, &dims, handle as f64);
        add(&mut out, Part::Hold, closed, &dims, facts.hold_ms as f64);
        add(&mut out, Part::Wrap, closed, &dims, facts.wrap_ms as f64);
        add(
            &mut out,
            Part::Talk,
            closed,
            &dims,
            facts.talk_ms.unwrap_or(0) as f64,
        );
        if facts.transferred {
            add(&mut out, Part::Transferred, closed, &dims, 1.0);
        }
        if facts.answered_at.is_some()
            && let Some(score) = facts.sentiment.closing
        {
            add(&mut out, Part::ClosingSentiment, closed, &dims, score);
            if is_negative(score) {
                add(&mut out, Part::NegativeClosing, closed, &dims, 1.0);
            }
            if facts.sentiment.dropped {
                add(&mut out, Part::SentimentDropped, closed, &dims, 1.0);
            }
        }
    }
    notification_contributions(&mut out, &dims, events);
    for event in sorted(events) {
        if event.kpi_event_name == names::CSAT_SUBMITTED
            && let Some(score) = event.score()
        {
            add(
                &mut out,
                Part::Csat,
                event.event_timestamp,
                &dims,
                f64::from(score),
            );
            if score >= 4 {
                add(&mut out, Part::CsatTop2, event.event_timestamp, &dims, 1.0);
            }
        }
    }
    out
}

/// Notifications matched per participant: each response pairs with the
/// latest unanswered display of the same participant at or before it.
/// Notification figures carry the notified participant as their agent.
fn notification_contributions(out: &mut Vec<Contribution>, dims: &Dims, events: &[KpiEvent]) {
    let mut open: HashMap<&str, Vec<UtcMillis>> = HashMap::new();
    for event in sorted(events) {
        let participant = event.participant_id.as_deref().unwrap_or("");
        let mut dims = dims.clone();
        if !participant.is_empty() {
            dims.agent = participant.to_owned();
        }
        match event.kpi_event_name.as_str() {
            names::NOTIFICATION_DISPLAYED => {
                add(
                    out,
                    Part::NotificationDisplayed,
                    event.event_timestamp,
                    &dims,
                    1.0,
                );
                open.entry(participant)
                    .or_default()
                    .push(event.event_timestamp);
            }
            names::NOTIFICATION_RESPONSE => {
                let displayed = open.get_mut(participant).and_then(Vec::pop);
                if let Some(displayed) = displayed {
                    let wait = event.event_timestamp.as_millis() - displayed.as_millis();
                    add(
                        out,
                        Part::NotificationResponse,
                        event.event_timestamp,
                        &dims,
                        wait as f64,
                    );
                }
                if event.response_action() == Some(ResponseAction::Accept) {
                    let at = displayed.unwrap_or(event.event_timestamp);
                    add(out, Part::NotificationAccepted, at, &dims, 1.0);
                }
            }
            _ => {}
        }
    }
}

/// An agent's signed-in time, split over the buckets its closed spans cover.
/// `until` closes a span still open (the real-time view passes now;
/// history passes `None` and leaves open spans out).
pub fn presence_contributions(
    agent: &str,
    spans: &[(UtcMillis, Option<UtcMillis>)],
    until: Option<UtcMillis>,
) -> Vec<Contribution> {
    let dims = Dims {
        agent: agent.to_owned(),
        ..Dims::default()
    };
    let mut per_bucket: BTreeMap<i64, f64> = BTreeMap::new();
    for (start, end) in spans {
        let Some(end) = end.or(until) else { continue };
        let (mut at, end) = (start.as_millis(), end.as_millis());
        // Bounded: a span of years is at most ~35,000 buckets a year.
        while at < end {
            let bucket = at.div_euclid(BUCKET_MS) * BUCKET_MS;
            let stop = (bucket + BUCKET_MS).min(end);
            *per_bucket.entry(bucket).or_default() += (stop - at) as f64;
            at = stop;
        }
    }
    per_bucket
        .into_iter()
        .map(|(bucket, sum)| Contribution {
            part: Part::SignedIn,
            bucket,
            dims: dims.clone(),
            sum,
            count: 1,
        })
        .collect()
}

/// How a metric's value comes from its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formula {
    /// The part's count.
    Count(Part),
    /// The part's sum ÷ its count, with the sum scaled by `scale`.
    Mean(Part, Scale),
    /// Count of the first ÷ count of the second.
    Ratio(Part, Part),
    /// Sum of the first ÷ sum of the second.
    SumRatio(Part, Part),
}

/// A unit conversion applied to a mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Milliseconds shown as seconds.
    MillisToSeconds,
    /// As stored.
    One,
}

impl Formula {
    pub fn parts(self) -> Vec<Part> {
        match self {
            Formula::Count(p) | Formula::Mean(p, _) => vec![p],
            Formula::Ratio(a, b) | Formula::SumRatio(a, b) => vec![a, b],
        }
    }
}

/// A metric as data (PRODUCT.md §6.1).
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: &'static str,
    pub display_name: &'static str,
    pub formula: &'static str,
    pub unit: &'static str,
    /// The time that places a value in an interval.
    pub interval_of: &'static str,
    /// Whether a higher value is better, for charts and alerts.
    pub higher_is_better: bool,
    /// Dimensions it can be grouped or filtered by.
    pub dimensions: Vec<Dimension>,
    #[serde(skip)]
    pub computed: Formula,
}

const SESSION_DIMENSIONS: [Dimension; 5] = Dimension::ALL;

/// Every metric, in catalogue order.
pub fn catalogue() -> Vec<Metric> {
    use Formula::*;
    use Scale::*;
    let metric = |name, display_name, formula, unit, interval_of, higher, computed| Metric {
        name,
        display_name,
        formula,
        unit,
        interval_of,
        higher_is_better: higher,
        dimensions: SESSION_DIMENSIONS.to_vec(),
        computed,
    };
    let mut all = vec![
        metric(
            "conversations_offered",
            "Conversations offered",
            "sessions queued",
            "count",
            "queued",
            true,
            Count(Part::Offered),
        ),
        metric(
            "aht",
            "Average handle time",
            "mean handle time over answered and closed sessions; handle time = the later of closed and WrapUpEnded, minus answered",
            "seconds",
            "closed",
            false,
            Mean(Part::Handle, MillisToSeconds),
        ),
        metric(
            "asa",
            "Average speed of answer",
            "mean (answered - queued) over answered sessions",
            "seconds",
            "answered",
            false,
            Mean(Part::Wait, MillisToSeconds),
        ),
        metric(
            "service_level",
            "Service level",
            "answered within T / (answered + abandoned - short abandons); T per queue, 20 s by default",
            "ratio",
            "queued",
            true,
            Ratio(Part::SlMet, Part::SlBase),
        ),
        metric(
            "abandon_rate",
            "Abandon rate",
            "(abandoned - short abandons) / (queued - short abandons)",
            "ratio",
            "queued",
            false,
            Ratio(Part::LongAbandoned, Part::QueuedNotShort),
        ),
        metric(
            "transfer_rate",
            "Transfer rate",
            "handled sessions with a TransferRequested / handled sessions",
            "ratio",
            "closed",
            false,
            Ratio(Part::Transferred, Part::Handle),
        ),
        metric(
            "hold_time",
            "Hold time",
            "mean hold over handled sessions; hold = the sum of HoldStarted -> HoldEnded pairs, an unmatched HoldStarted ending at closed",
            "seconds",
            "closed",
            false,
            Mean(Part::Hold, MillisToSeconds),
        ),
        metric(
            "wrap_up_time",
            "Wrap-up time",
            "mean WrapUpStarted -> WrapUpEnded over handled sessions",
            "seconds",
            "closed",
            false,
            Mean(Part::Wrap, MillisToSeconds),
        ),
        metric(
            "talk_time",
            "Talk time",
            "mean (handle time - hold - wrap-up) over handled sessions",
            "seconds",
            "closed",
            false,
            Mean(Part::Talk, MillisToSeconds),
        ),
        metric(
            "notification_accept_rate",
            "Notification accept rate",
            "NotificationResponse with Accept / NotificationDisplayed",
            "ratio",
            "displayed",
            true,
            Ratio(Part::NotificationAccepted, Part::NotificationDisplayed),
        ),
        metric(
            "notification_response_time",
            "Notification response time",
            "mean (response - display), matched per participant",
            "seconds",
            "response",
            false,
            Mean(Part::NotificationResponse, MillisToSeconds),
        ),
        metric(
            "csat",
            "CSAT",
            "mean CsatSubmitted score (1-5)",
            "score",
            "submitted",
            true,
            Mean(Part::Csat, One),
        ),
        metric(
            "csat_top2",
            "CSAT top-2 share",
            "share of CsatSubmitted scores that are 4 or 5",
            "ratio",
            "submitted",
            true,
            Ratio(Part::CsatTop2, Part::Csat),
        ),
        metric(
            "mean_sentiment",
            "Mean sentiment",
            "mean closing sentiment score (-1 to 1) over handled sessions that have one; closing = the last SentimentUpdated at or before closed",
            "score",
            "closed",
            true,
            Mean(Part::ClosingSentiment, One),
        ),
        metric(
            "negative_sentiment_rate",
            "Negative sentiment rate",
            "handled sessions closing below the neutral band (score under -0.1) / handled sessions with a closing sentiment",
            "ratio",
            "closed",
            false,
            Ratio(Part::NegativeClosing, Part::ClosingSentiment),
        ),
        metric(
            "sentiment_drop_rate",
            "Sentiment drop rate",
            "handled sessions whose score fell by 0.5 or more from an earlier to a later SentimentUpdated / handled sessions with a closing sentiment",
            "ratio",
            "closed",
            false,
            Ratio(Part::SentimentDropped, Part::ClosingSentiment),
        ),
    ];
    all.push(Metric {
        name: "occupancy",
        display_name: "Occupancy",
        formula: "the agent's handle time / the agent's signed-in time (AgentSignedIn -> AgentSignedOut)",
        unit: "ratio",
        interval_of: "closed",
        higher_is_better: true,
        dimensions: vec![Dimension::Agent],
        computed: Formula::SumRatio(Part::Handle, Part::SignedIn),
    });
    all
}

/// A metric by name.
pub fn metric(name: &str) -> Option<Metric> {
    catalogue().into_iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::super::facts::tests::{agent, at, event, session};
    use super::super::facts::{Thresholds, derive};
    use super::super::interval::{Interval, starts, zone};
    use super::super::series::{Row, Series, assemble};
    use super::*;

    fn value(series: &[Series], metric: &str) -> Option<f64> {
        series
            .iter()
            .find(|s| s.metric == metric)
            .and_then(|s| s.points[0].value)
    }

    /// Runs sessions through facts, contributions and the fold, over one
    /// hour from 10:00Z.
    fn evaluate_sessions(sessions: &[(Option<i64>, Option<i64>, Vec<KpiEvent>)]) -> Vec<Series> {
        let mut rows = Vec::new();
        for (queued, answered, events) in sessions {
            let facts = derive(
                &session(*queued, *answered),
                None,
                &[agent("agent-7", 0)],
                events,
                Thresholds::default(),
            );
            for c in session_contributions(&facts, events) {
                rows.push(Row {
                    bucket: c.bucket,
                    group: Vec::new().into(),
                    part: c.part,
                    sum: c.sum,
                    count: c.count,
                });
            }
        }
        let tz = zone("UTC").unwrap();
        let hour = starts(at(0), at(3600), Interval::H1, &tz).unwrap();
        assemble(&catalogue(), &[], &hour, Interval::H1, &tz, &rows)
    }

    #[test]
    fn hand_computed_hour() {
        let closed = |s| event(names::SESSION_CLOSED, s);
        let series = evaluate_sessions(&[
            // answered after 10 s, handle 100 - 10 = 90 s, one transfer
            (
                Some(0),
                Some(10),
                vec![closed(100), event(names::TRANSFER_REQUESTED, 50)],
            ),
            // answered after 30 s (late), handle 200 - 30 = 170 s, hold 20 s
            (
                Some(0),
                Some(30),
                vec![
                    event(names::HOLD_STARTED, 60),
                    event(names::HOLD_ENDED, 80),
                    closed(200),
                ],
            ),
            // short abandon (3 s), long abandon (40 s)
            (Some(0), None, vec![closed(3)]),
            (Some(0), None, vec![closed(40)]),
        ]);
        assert_eq!(value(&series, "conversations_offered"), Some(4.0));
        assert_eq!(value(&series, "aht"), Some(130.0));
        assert_eq!(value(&series, "asa"), Some(20.0));
        // within 20 s: 1; answered 2 + abandoned 2 - short 1 = 3
        assert_eq!(value(&series, "service_level"), Some(1.0 / 3.0));
        // (2 - 1) / (4 - 1)
        assert_eq!(value(&series, "abandon_rate"), Some(1.0 / 3.0));
        assert_eq!(value(&series, "transfer_rate"), Some(0.5));
        assert_eq!(value(&series, "hold_time"), Some(10.0));
        assert_eq!(value(&series, "csat"), None);
    }

    #[test]
    fn notifications_match_per_participant() {
        let mut displayed = event(names::NOTIFICATION_DISPLAYED, 0);
        displayed.participant_id = Some("a".into());
        let mut displayed_b = event(names::NOTIFICATION_DISPLAYED, 1);
        displayed_b.participant_id = Some("b".into());
        displayed_b.event_id = "db".into();
        let mut accept = event(names::NOTIFICATION_RESPONSE, 4);
        accept.participant_id = Some("a".into());
        accept.notification_response_action = Some("Accept".into());
        let mut timeout = event(names::NOTIFICATION_RESPONSE, 31);
        timeout.participant_id = Some("b".into());
        timeout.notification_response_action = Some("Timeout".into());
        timeout.event_id = "tb".into();
        let series =
            evaluate_sessions(&[(Some(0), None, vec![displayed, displayed_b, accept, timeout])]);
        assert_eq!(value(&series, "notification_accept_rate"), Some(0.5));
        // (4 - 0 + 31 - 1) / 2
        assert_eq!(value(&series, "notification_response_time"), Some(17.0));
    }

    #[test]
    fn csat_mean_and_top2() {
        let csat = |seconds, score: i64| {
            let mut e = event(names::CSAT_SUBMITTED, seconds);
            e.custom_data = Some(serde_json::json!({ "score": score }));
            e
        };
        let series = evaluate_sessions(&[(None, None, vec![csat(1, 5), csat(2, 4), csat(3, 1)])]);
        assert_eq!(value(&series, "csat"), Some(10.0 / 3.0));
        assert_eq!(value(&series, "csat_top2"), Some(2.0 / 3.0));
    }

    #[test]
    fn presence_splits_over_buckets() {
        let contributions =
            presence_contributions("a", &[(at(0), Some(at(1200))), (at(1800), None)], None);
        let sums: Vec<f64> = contributions.iter().map(|c| c.sum).collect();
        assert_eq!(sums, vec![900_000.0, 300_000.0]);
        let open = presence_contributions("a", &[(at(1800), None)], Some(at(1900)));
        assert_eq!(open[0].sum, 100_000.0);
    }

    #[test]
    fn every_metric_has_a_unique_name_and_an_interval() {
        let all = catalogue();
        let mut names: Vec<_> = all.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(all.iter().all(|m| !m.interval_of.is_empty()));
        for part in Part::ALL {
            assert_eq!(Part::from_code(part.code()), Some(part));
        }
    }
}

#[cfg(test)]
mod order_independence {
    use proptest::prelude::*;

    use super::super::definitions::names;
    use super::super::facts::tests::{agent, event, session};
    use super::super::facts::{Thresholds, derive};
    use super::*;

    const NAMES: [&str; 10] = [
        names::HOLD_STARTED,
        names::HOLD_ENDED,
        names::WRAP_UP_STARTED,
        names::WRAP_UP_ENDED,
        names::SESSION_CLOSED,
        names::TRANSFER_REQUESTED,
        names::NOTIFICATION_DISPLAYED,
        names::NOTIFICATION_RESPONSE,
        names::CSAT_SUBMITTED,
        names::SENTIMENT_UPDATED,
    ];

    fn events() -> impl Strategy<Value = Vec<KpiEvent>> {
        prop::collection::vec((0..NAMES.len(), 0i64..600, 0u8..3, 1i64..6), 0..25).prop_map(
            |specs| {
                specs
                    .into_iter()
                    .map(|(name, seconds, who, score)| {
                        let mut e = event(NAMES[name], seconds);
                        e.participant_id = Some(format!("agent-{who}"));
                        e.event_id = format!("{name}-{seconds}-{who}");
                        if NAMES[name] == names::NOTIFICATION_RESPONSE {
                            e.notification_response_action =
                                Some(["Accept", "Reject", "Timeout"][who as usize].into());
                        }
                        if NAMES[name] == names::CSAT_SUBMITTED {
                            e.custom_data = Some(serde_json::json!({ "score": score }));
                        }
                        if NAMES[name] == names::SENTIMENT_UPDATED {
                            let sentiment = (score as f64 - 3.0) / 2.0 - f64::from(who) / 10.0;
                            e.custom_data = Some(serde_json::json!({ "score": sentiment }));
                        }
                        e
                    })
                    .collect()
            },
        )
    }

    proptest! {
        /// The facts and the bucket contributions of a session are the same
        /// whatever order its events arrive in, and however often each is
        /// repeated.
        #[test]
        fn facts_and_contributions_ignore_arrival_order(
            events in events(),
            seed in any::<u64>(),
            repeats in prop::collection::vec(0usize..3, 25),
        ) {
            let s = session(Some(0), Some(12));
            let participants = [agent("agent-0", 12)];
            let reference = derive(&s, None, &participants, &events, Thresholds::default());
            let reference_contributions = session_contributions(&reference, &events);

            // A seeded shuffle, with some events sent more than once.
            let mut arrived: Vec<KpiEvent> = Vec::new();
            for (i, e) in events.iter().enumerate() {
                for _ in 0..=repeats[i % repeats.len()] {
                    arrived.push(e.clone());
                }
            }
            let mut state = seed | 1;
            for i in (1..arrived.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                arrived.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let facts = derive(&s, None, &participants, &arrived, Thresholds::default());
            prop_assert_eq!(&facts, &reference);
            prop_assert_eq!(session_contributions(&facts, &arrived), reference_contributions);
        }
    }
}
