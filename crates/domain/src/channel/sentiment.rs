//! Customer sentiment (PRODUCT.md §4.2, §6.1): the seven bands a
//! `SentimentUpdated` score falls in, and what a session's sentiment events
//! amount to.
//!
//! Readings of the contract where it is silent:
//! - a session's current sentiment is its latest `SentimentUpdated` (by
//!   event time, ties in the one sorted order every derivation reads);
//! - its closing sentiment is the latest at or before `SessionClosed`;
//! - "negative" means below the neutral band: a score under −0.1;
//! - the time spent negative runs from each negative update to the next
//!   update, and the last one runs to closed (an open session's, to its
//!   latest event, so that the facts stay a function of the events);
//! - a drop is a fall of 0.5 or more from any earlier update to any later
//!   one, both at or before closed.

use serde::{Deserialize, Serialize};

use super::definitions::names;
use super::payload::KpiEvent;
use crate::time::UtcMillis;

/// The seven levels D365 Omnichannel names, by fixed score bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    VeryNegative,
    Negative,
    SlightlyNegative,
    Neutral,
    SlightlyPositive,
    Positive,
    VeryPositive,
}

impl Band {
    pub const ALL: [Band; 7] = [
        Band::VeryNegative,
        Band::Negative,
        Band::SlightlyNegative,
        Band::Neutral,
        Band::SlightlyPositive,
        Band::Positive,
        Band::VeryPositive,
    ];

    /// The band of a score from −1 to 1: very negative [−1, −0.6), negative
    /// [−0.6, −0.3), slightly negative [−0.3, −0.1), neutral [−0.1, 0.1],
    /// slightly positive (0.1, 0.3], positive (0.3, 0.6], very positive
    /// (0.6, 1].
    pub fn of(score: f64) -> Band {
        if score < -0.6 {
            Band::VeryNegative
        } else if score < -0.3 {
            Band::Negative
        } else if score < -0.1 {
            Band::SlightlyNegative
        } else if score <= 0.1 {
            Band::Neutral
        } else if score <= 0.3 {
            Band::SlightlyPositive
        } else if score <= 0.6 {
            Band::Positive
        } else {
            Band::VeryPositive
        }
    }

    /// The code stored and used as the `sentiment_band` dimension's value.
    pub fn code(self) -> &'static str {
        match self {
            Band::VeryNegative => "very_negative",
            Band::Negative => "negative",
            Band::SlightlyNegative => "slightly_negative",
            Band::Neutral => "neutral",
            Band::SlightlyPositive => "slightly_positive",
            Band::Positive => "positive",
            Band::VeryPositive => "very_positive",
        }
    }

    pub fn parse(code: &str) -> Option<Band> {
        Band::ALL.into_iter().find(|b| b.code() == code)
    }

    /// For people: "Slightly negative".
    pub fn label(self) -> &'static str {
        match self {
            Band::VeryNegative => "Very negative",
            Band::Negative => "Negative",
            Band::SlightlyNegative => "Slightly negative",
            Band::Neutral => "Neutral",
            Band::SlightlyPositive => "Slightly positive",
            Band::Positive => "Positive",
            Band::VeryPositive => "Very positive",
        }
    }

    /// Below the neutral band.
    pub fn is_negative(self) -> bool {
        self < Band::Neutral
    }
}

/// Whether a score is below the neutral band.
pub fn is_negative(score: f64) -> bool {
    Band::of(score).is_negative()
}

/// The fall, from an earlier update to a later one, that counts as a drop.
pub const DROP: f64 = 0.5;

/// What a session's `SentimentUpdated` events amount to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionSentiment {
    /// The latest score.
    pub current: Option<f64>,
    /// The score before the latest: with `current`, the trend.
    pub previous: Option<f64>,
    /// The lowest score at or before closed (or so far).
    pub lowest: Option<f64>,
    /// The latest score at or before closed.
    pub closing: Option<f64>,
    /// Time spent below the neutral band, in milliseconds.
    pub negative_ms: i64,
    /// Fell by [`DROP`] or more from an earlier update to a later one.
    pub dropped: bool,
}

impl SessionSentiment {
    /// Reads the sentiment updates of `events`, which are in the sorted
    /// order of [`super::facts::sorted`]. `closed` ends the session;
    /// `until` ends the last negative stretch of a session still open.
    pub fn of(events: &[&KpiEvent], closed: Option<UtcMillis>, until: UtcMillis) -> Self {
        let mut out = Self::default();
        let mut highest: Option<f64> = None;
        let mut negative_since: Option<UtcMillis> = None;
        let end = closed.unwrap_or(until);
        for event in events {
            if event.kpi_event_name != names::SENTIMENT_UPDATED {
                continue;
            }
            let Some(score) = event.sentiment() else {
                continue;
            };
            out.previous = out.current;
            out.current = Some(score);
            let at = event.event_timestamp;
            if closed.is_some_and(|closed| at > closed) {
                continue;
            }
            if let Some(since) = negative_since.take() {
                out.negative_ms += (at.as_millis() - since.as_millis()).max(0);
            }
            if is_negative(score) {
                negative_since = Some(at);
            }
            out.closing = Some(score);
            out.lowest = Some(out.lowest.map_or(score, |low| low.min(score)));
            if highest.is_some_and(|high| high - score >= DROP - 1e-12) {
                out.dropped = true;
            }
            highest = Some(highest.map_or(score, |high| high.max(score)));
        }
        if let Some(since) = negative_since {
            out.negative_ms += (end.as_millis() - since.as_millis()).max(0);
        }
        out
    }

    /// The closing band, once there is a closing score.
    pub fn closing_band(&self) -> Option<Band> {
        self.closing.map(Band::of)
    }

    /// The current band.
    pub fn current_band(&self) -> Option<Band> {
        self.current.map(Band::of)
    }

    /// −1, 0 or 1: how the latest update moved from the one before.
    pub fn trend(&self) -> i8 {
        match (self.previous, self.current) {
            (Some(before), Some(now)) if now > before => 1,
            (Some(before), Some(now)) if now < before => -1,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_contract_at_every_edge() {
        let cases = [
            (-1.0, Band::VeryNegative),
            (-0.6001, Band::VeryNegative),
            (-0.6, Band::Negative),
            (-0.3001, Band::Negative),
            (-0.3, Band::SlightlyNegative),
            (-0.1001, Band::SlightlyNegative),
            (-0.1, Band::Neutral),
            (0.0, Band::Neutral),
            (0.1, Band::Neutral),
            (0.1001, Band::SlightlyPositive),
            (0.3, Band::SlightlyPositive),
            (0.3001, Band::Positive),
            (0.6, Band::Positive),
            (0.6001, Band::VeryPositive),
            (1.0, Band::VeryPositive),
        ];
        for (score, band) in cases {
            assert_eq!(Band::of(score), band, "{score}");
        }
        assert!(Band::SlightlyNegative.is_negative() && !Band::Neutral.is_negative());
        for band in Band::ALL {
            assert_eq!(Band::parse(band.code()), Some(band));
        }
    }
}

/// The new metrics on a seeded set of sessions against a reference written
/// here from the raw updates, with the events shuffled, repeated and some
/// arriving late (after closed).
#[cfg(test)]
mod reference {
    use std::collections::BTreeMap;

    use super::super::facts::tests::{agent, at, event, session};
    use super::super::facts::{Thresholds, derive};
    use super::super::interval::{Interval, starts, zone};
    use super::super::metrics::{Dimension, catalogue, session_contributions};
    use super::super::series::{Row, Series, assemble};
    use super::*;

    /// xorshift64, seeded.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// One generated session: answered or not, closed or not, its updates
    /// (seconds, score) at distinct times, and its handle time.
    struct Generated {
        answered: Option<i64>,
        closed: Option<i64>,
        updates: Vec<(i64, f64)>,
        events: Vec<KpiEvent>,
    }

    fn generate(random: &mut Random) -> Generated {
        let answered = (random.below(5) != 0).then(|| 5 + random.below(30) as i64);
        let closed = (random.below(6) != 0).then(|| 400 + random.below(2000) as i64);
        let count = random.below(6);
        let mut times: Vec<i64> = Vec::new();
        while (times.len() as u64) < count {
            let t = 1 + random.below(2600) as i64;
            if !times.contains(&t) && Some(t) != closed {
                times.push(t);
            }
        }
        times.sort_unstable();
        let updates: Vec<(i64, f64)> = times
            .iter()
            .map(|t| (*t, (random.below(201) as f64 - 100.0) / 100.0))
            .collect();
        let mut events: Vec<KpiEvent> = updates
            .iter()
            .map(|(t, score)| {
                let mut e = event(names::SENTIMENT_UPDATED, *t);
                e.custom_data = Some(serde_json::json!({"score": score, "label": "model"}));
                e
            })
            .collect();
        if let Some(closed) = closed {
            events.push(event(names::SESSION_CLOSED, closed));
        }
        Generated {
            answered,
            closed,
            updates,
            events,
        }
    }

    /// The reference: what the contract says, from the updates alone.
    struct Expected {
        closing: Option<f64>,
        dropped: bool,
    }

    fn expected(g: &Generated) -> Expected {
        let until = g.closed.unwrap_or(i64::MAX);
        let counted: Vec<f64> = g
            .updates
            .iter()
            .filter(|(t, _)| *t <= until)
            .map(|(_, s)| *s)
            .collect();
        let mut dropped = false;
        for i in 0..counted.len() {
            for j in i + 1..counted.len() {
                if counted[i] - counted[j] >= 0.5 - 1e-12 {
                    dropped = true;
                }
            }
        }
        Expected {
            closing: counted.last().copied(),
            dropped,
        }
    }

    fn shuffled(events: &[KpiEvent], random: &mut Random) -> Vec<KpiEvent> {
        let mut arrived: Vec<KpiEvent> = Vec::new();
        for e in events {
            for _ in 0..=random.below(2) {
                arrived.push(e.clone());
            }
        }
        for i in (1..arrived.len()).rev() {
            arrived.swap(i, random.below(i as u64 + 1) as usize);
        }
        arrived
    }

    fn series(rows: &[Row], group_by: &[Dimension]) -> Vec<Series> {
        let tz = zone("UTC").unwrap();
        let day = starts(at(0), at(86_400), Interval::D1, &tz).unwrap();
        assemble(&catalogue(), group_by, &day, Interval::D1, &tz, rows)
    }

    fn value(series: &[Series], metric: &str, band: Option<&str>) -> Option<f64> {
        series
            .iter()
            .find(|s| {
                s.metric == metric
                    && band.is_none_or(|b| {
                        s.group.get("sentiment_band").map(String::as_str) == Some(b)
                    })
            })
            .and_then(|s| s.points[0].value)
    }

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            (None, None) => true,
            _ => false,
        }
    }

    #[test]
    fn every_sentiment_metric_equals_the_reference() {
        for seed in [1_u64, 7, 42, 2026] {
            let mut random = Random(seed);
            let mut rows = Vec::new();
            let mut grouped_rows = Vec::new();
            let (mut handled_with, mut sum, mut negative, mut drops) = (0, 0.0, 0, 0);
            let mut handle_by_band: BTreeMap<String, (f64, f64)> = BTreeMap::new();
            for _ in 0..60 {
                let g = generate(&mut random);
                let arrived = shuffled(&g.events, &mut random);
                let facts = derive(
                    &session(Some(0), g.answered),
                    None,
                    &[agent("agent-7", 0)],
                    &arrived,
                    Thresholds::default(),
                );
                let want = expected(&g);
                assert_eq!(facts.sentiment.closing, want.closing, "seed {seed}");
                assert_eq!(facts.sentiment.dropped, want.dropped, "seed {seed}");
                let handled = g.answered.is_some() && g.closed.is_some();
                if handled && let Some(closing) = want.closing {
                    handled_with += 1;
                    sum += closing;
                    negative += usize::from(closing < -0.1);
                    drops += usize::from(want.dropped);
                }
                if handled {
                    let band = want.closing.map(|c| Band::of(c).code()).unwrap_or("");
                    let handle = (g.closed.unwrap() - g.answered.unwrap()) as f64;
                    let entry = handle_by_band.entry(band.to_owned()).or_default();
                    entry.0 += handle;
                    entry.1 += 1.0;
                }
                for c in session_contributions(&facts, &arrived) {
                    let row = |group: Vec<String>| Row {
                        bucket: c.bucket,
                        group: group.into(),
                        part: c.part,
                        sum: c.sum,
                        count: c.count,
                    };
                    rows.push(row(vec![]));
                    grouped_rows.push(row(vec![c.dims.band.clone()]));
                }
            }
            let all = series(&rows, &[]);
            let ratio = |n: usize| (handled_with > 0).then(|| n as f64 / handled_with as f64);
            assert!(close(
                value(&all, "mean_sentiment", None),
                (handled_with > 0).then(|| sum / handled_with as f64)
            ));
            assert!(close(
                value(&all, "negative_sentiment_rate", None),
                ratio(negative)
            ));
            assert!(close(
                value(&all, "sentiment_drop_rate", None),
                ratio(drops)
            ));
            // AHT by closing band: "KPIs that impact sentiment".
            let by_band = series(&grouped_rows, &[Dimension::SentimentBand]);
            for (band, (total, count)) in &handle_by_band {
                assert!(
                    close(value(&by_band, "aht", Some(band)), Some(total / count)),
                    "seed {seed}, band {band:?}"
                );
            }
        }
    }

    #[test]
    fn negative_time_runs_from_each_negative_update_to_the_next_or_closed() {
        let update = |t, score: f64| {
            let mut e = event(names::SENTIMENT_UPDATED, t);
            e.custom_data = Some(serde_json::json!({"score": score}));
            e
        };
        let events = [
            update(10, 0.5),
            update(20, -0.4),
            update(50, -0.7),
            update(80, 0.2),
            update(90, -0.2),
            event(names::SESSION_CLOSED, 100),
            update(120, 0.9),
        ];
        let facts = derive(
            &session(Some(0), Some(5)),
            None,
            &[agent("agent-7", 0)],
            &events,
            Thresholds::default(),
        );
        let s = &facts.sentiment;
        assert_eq!(s.negative_ms, (80 - 20 + 100 - 90) * 1000);
        assert_eq!(
            (s.closing, s.lowest, s.current, s.previous),
            (Some(-0.2), Some(-0.7), Some(0.9), Some(-0.2))
        );
        assert!(s.dropped, "0.5 to -0.7");
        assert_eq!(s.trend(), 1);
        assert_eq!(s.closing_band(), Some(Band::SlightlyNegative));
    }
}
