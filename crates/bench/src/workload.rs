//! Seeded synthetic workloads.
//!
//! A [`Workload`] turns an event count and a seed into a [`Dataset`]: the
//! interactions to ingest, in arrival (time) order, and the cases opened after
//! some sessions. The same seed always gives the same dataset, so runs on
//! different machines or builds compare like with like.
//!
//! [`PortalWorkload`] models a self-service portal: contacts with Zipf-shaped
//! activity, knowledge articles with Zipf popularity, sessions of a few
//! interactions, and cases opened soon after some of those sessions —
//! more often after a session that searched, as people who could not find an
//! answer tend to.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Geometric, Zipf};
use serde::Serialize;
use tracklog_domain::interaction::Builtin;
use tracklog_domain::time::UtcMillis;

/// A generator of datasets. New workloads (activity-log search, channel
/// analytics) implement this and are listed in [`workloads`].
pub trait Workload {
    /// The name used on the command line and in reports.
    fn name(&self) -> &'static str;
    /// Builds `events` interactions from `seed`.
    fn generate(&self, events: usize, seed: u64) -> Dataset;
}

/// Every workload the tool knows, by name.
pub fn workloads() -> Vec<Box<dyn Workload>> {
    vec![Box::new(PortalWorkload)]
}

/// Milliseconds in an hour.
pub const HOUR_MS: i64 = 3_600_000;

/// The start of the simulated period: a fixed instant, so that timestamps do
/// not depend on when the bench runs.
const PERIOD_START_MS: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
const PERIOD_DAYS: i64 = 30;

const PORTALS: [&str; 3] = ["portal-support", "portal-partners", "portal-community"];
const LANGUAGES: [&str; 4] = ["en-US", "de-DE", "fr-FR", "es-ES"];

/// One interaction, compactly: strings are rendered from the indexes when a
/// payload is built, which keeps a 10 M event dataset in memory.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// Generation order; the interaction id is derived from it.
    pub ordinal: u32,
    pub timestamp_ms: i64,
    /// Index into [`Dataset::contacts`]; `None` for an anonymous visitor.
    pub contact: Option<u32>,
    pub session: u32,
    pub kind: Builtin,
    /// The article, post, thread or search phrase, by kind.
    pub item: u32,
    pub portal: u8,
    pub language: u8,
}

/// A support case: who opened it and when. There is no cases API yet, so
/// cases live only in the workload, as the anchor of journey queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub contact: u32,
    pub created_ms: i64,
}

/// What a workload generated.
pub struct Dataset {
    pub seed: u64,
    /// Events in timestamp order: the order a portal would send them.
    pub events: Vec<Event>,
    pub cases: Vec<Case>,
    /// Contact ids (CRM GUIDs), by index.
    pub contacts: Vec<String>,
    pub sessions: usize,
    pub catalog: Catalog,
}

/// Titles and phrases the events point into.
pub struct Catalog {
    pub articles: usize,
    pub blog_posts: usize,
    pub forum_threads: usize,
    pub search_phrases: usize,
}

/// Counts that describe a dataset in the report.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    pub workload: String,
    pub events: usize,
    pub contacts: usize,
    pub active_contacts: usize,
    pub sessions: usize,
    pub cases: usize,
    pub articles: usize,
    pub anonymous_share: f64,
    /// Share of each interaction type, by wire name.
    pub type_mix: Vec<(String, f64)>,
}

/// The portal workload described in the module docs.
pub struct PortalWorkload;

impl Workload for PortalWorkload {
    fn name(&self) -> &'static str {
        "portal"
    }

    fn generate(&self, events: usize, seed: u64) -> Dataset {
        Generator::new(events, seed).run()
    }
}

/// Shape parameters, in one place so that the report can cite them.
struct Shape {
    contacts: usize,
    catalog: Catalog,
    /// Zipf exponents: how strongly activity and popularity concentrate.
    contact_skew: f64,
    article_skew: f64,
    anonymous_share: f64,
    /// Cumulative weights of article, search, forum thread, blog post.
    type_weights: [(Builtin, f64); 4],
    case_after_session: f64,
    case_after_search_session: f64,
}

impl Shape {
    fn for_events(events: usize) -> Self {
        Self {
            // About 50 events per contact, as in the exploratory measurements.
            contacts: (events / 50).max(50),
            catalog: Catalog {
                articles: (events / 2_000).clamp(50, 20_000),
                blog_posts: (events / 20_000).clamp(20, 2_000),
                forum_threads: (events / 1_000).clamp(50, 50_000),
                search_phrases: (events / 200).clamp(100, 100_000),
            },
            contact_skew: 0.9,
            article_skew: 1.05,
            anonymous_share: 0.2,
            type_weights: [
                (Builtin::ViewKnowledgeArticle, 0.55),
                (Builtin::Search, 0.77),
                (Builtin::ViewForumThread, 0.90),
                (Builtin::ViewBlogPost, 1.0),
            ],
            case_after_session: 0.03,
            case_after_search_session: 0.08,
        }
    }
}

struct Generator {
    target: usize,
    seed: u64,
    shape: Shape,
    rng: StdRng,
    contact_zipf: Zipf<f64>,
    article_zipf: Zipf<f64>,
    thread_zipf: Zipf<f64>,
    phrase_zipf: Zipf<f64>,
    session_length: Geometric,
    gap: Exp<f64>,
}

/// The interactions of one session, before sorting.
struct SessionPlan {
    contact: Option<u32>,
    start_ms: i64,
    length: usize,
    portal: u8,
    language: u8,
}

impl Generator {
    fn new(target: usize, seed: u64) -> Self {
        let shape = Shape::for_events(target);
        Self {
            target,
            seed,
            rng: StdRng::seed_from_u64(seed),
            contact_zipf: zipf(shape.contacts, shape.contact_skew),
            article_zipf: zipf(shape.catalog.articles, shape.article_skew),
            thread_zipf: zipf(shape.catalog.forum_threads, 0.8),
            phrase_zipf: zipf(shape.catalog.search_phrases, 1.0),
            // Mean of about four interactions per session.
            session_length: Geometric::new(0.25).expect("valid probability"),
            // About 45 s between two clicks.
            gap: Exp::new(1.0 / 45_000.0).expect("positive rate"),
            shape,
        }
    }

    fn run(mut self) -> Dataset {
        let mut events = Vec::with_capacity(self.target);
        let mut cases = Vec::new();
        let mut sessions = 0usize;
        // Bounded: every session adds at least one event.
        while events.len() < self.target {
            let plan = self.plan_session();
            let searched = self.emit_session(&plan, sessions as u32, &mut events);
            if let Some(case) = self.maybe_case(&plan, searched, &events) {
                cases.push(case);
            }
            sessions += 1;
        }
        // The key is unique (ordinals are), so an unstable sort gives the
        // same order without a buffer of half the events.
        events.sort_unstable_by_key(|event| (event.timestamp_ms, event.ordinal));
        cases.sort_by_key(|case| case.created_ms);
        let contacts = (0..self.shape.contacts)
            .map(|index| uuid_text(mix(self.seed, 0xC0_17AC7, index as u64)))
            .collect();
        Dataset {
            seed: self.seed,
            events,
            cases,
            contacts,
            sessions,
            catalog: self.shape.catalog,
        }
    }

    fn plan_session(&mut self) -> SessionPlan {
        let contact = if self.rng.random_bool(self.shape.anonymous_share) {
            None
        } else {
            Some(self.contact_zipf.sample(&mut self.rng) as u32 - 1)
        };
        SessionPlan {
            contact,
            start_ms: PERIOD_START_MS + self.rng.random_range(0..PERIOD_DAYS * 24 * HOUR_MS),
            length: (1 + self.session_length.sample(&mut self.rng) as usize).min(40),
            portal: pick_weighted(&mut self.rng, &[0.8, 0.12, 1.0]) as u8,
            language: pick_weighted(&mut self.rng, &[0.7, 0.85, 0.95, 1.0]) as u8,
        }
    }

    /// Appends the session's events; returns whether it contained a search.
    fn emit_session(&mut self, plan: &SessionPlan, session: u32, events: &mut Vec<Event>) -> bool {
        let mut timestamp_ms = plan.start_ms;
        let mut searched = false;
        for _ in 0..plan.length {
            if events.len() == self.target {
                break;
            }
            let kind = self.pick_kind();
            let item = match kind {
                Builtin::ViewKnowledgeArticle => self.article_zipf.sample(&mut self.rng) as u32 - 1,
                Builtin::ViewForumThread => self.thread_zipf.sample(&mut self.rng) as u32 - 1,
                Builtin::Search => self.phrase_zipf.sample(&mut self.rng) as u32 - 1,
                Builtin::ViewBlogPost => self
                    .rng
                    .random_range(0..self.shape.catalog.blog_posts as u32),
            };
            searched |= kind == Builtin::Search;
            events.push(Event {
                ordinal: events.len() as u32,
                timestamp_ms,
                contact: plan.contact,
                session,
                kind,
                item,
                portal: plan.portal,
                language: plan.language,
            });
            timestamp_ms += 2_000 + self.gap.sample(&mut self.rng) as i64;
        }
        searched
    }

    fn pick_kind(&mut self) -> Builtin {
        let draw: f64 = self.rng.random();
        self.shape
            .type_weights
            .iter()
            .find(|(_, cumulative)| draw < *cumulative)
            .map_or(Builtin::ViewBlogPost, |(kind, _)| *kind)
    }

    /// A case some time after the session ends: minutes to two days.
    fn maybe_case(&mut self, plan: &SessionPlan, searched: bool, events: &[Event]) -> Option<Case> {
        let contact = plan.contact?;
        let probability = if searched {
            self.shape.case_after_search_session
        } else {
            self.shape.case_after_session
        };
        if !self.rng.random_bool(probability) {
            return None;
        }
        let session_end = events.last().map_or(plan.start_ms, |e| e.timestamp_ms);
        let delay = Exp::new(1.0 / (2.0 * HOUR_MS as f64)).expect("positive rate");
        let delay_ms = (delay.sample(&mut self.rng) as i64).min(48 * HOUR_MS);
        Some(Case {
            contact,
            created_ms: session_end + 60_000 + delay_ms,
        })
    }
}

fn zipf(n: usize, skew: f64) -> Zipf<f64> {
    Zipf::new(n as f64, skew).expect("a Zipf over at least one item")
}

/// Index of the first cumulative weight above a uniform draw.
fn pick_weighted(rng: &mut StdRng, cumulative: &[f64]) -> usize {
    let draw: f64 = rng.random();
    cumulative
        .iter()
        .position(|weight| draw < *weight)
        .unwrap_or(cumulative.len() - 1)
}

/// A stateless 128-bit mix (SplitMix64 twice), so that ids can be derived from
/// an index on demand instead of being stored for every event.
pub fn mix(seed: u64, domain: u64, index: u64) -> u128 {
    let high = splitmix64(seed ^ domain.rotate_left(17) ^ index);
    let low = splitmix64(high ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (u128::from(high) << 64) | u128::from(low)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A version-4-shaped UUID, as CRMs and portals use for ids.
pub fn uuid_text(bits: u128) -> String {
    let bits = (bits & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

const TOPICS: [&str; 16] = [
    "password",
    "invoice",
    "license",
    "sign-in",
    "export",
    "billing",
    "firmware",
    "warranty",
    "shipping",
    "refund",
    "upgrade",
    "API keys",
    "backup",
    "printer",
    "VPN",
    "mobile app",
];
const ACTIONS: [&str; 8] = [
    "How to reset your",
    "Troubleshooting the",
    "Setting up the",
    "Why can't I change my",
    "Understanding your",
    "Fixing errors with the",
    "Getting started with",
    "Frequently asked: the",
];

/// Text for the events, derived from indexes.
impl Dataset {
    /// The interaction id of an event.
    pub fn interaction_id(&self, event: &Event) -> String {
        uuid_text(mix(self.seed, 0x1D, u64::from(event.ordinal)))
    }

    /// The browser session id of an event.
    pub fn session_id(&self, event: &Event) -> String {
        uuid_text(mix(self.seed, 0x5E55, u64::from(event.session)))
    }

    /// The contact id of an event, if it has one.
    pub fn contact_id(&self, event: &Event) -> Option<&str> {
        event
            .contact
            .map(|index| self.contacts[index as usize].as_str())
    }

    pub fn portal(event: &Event) -> &'static str {
        PORTALS[event.portal as usize]
    }

    pub fn language(event: &Event) -> &'static str {
        LANGUAGES[event.language as usize]
    }

    pub fn timestamp(event: &Event) -> String {
        UtcMillis::from_millis(event.timestamp_ms).to_rfc3339()
    }

    /// A title of about 32 bytes for an article, post or thread.
    pub fn title(kind: Builtin, item: u32) -> String {
        let item = item as usize;
        let action = ACTIONS[(item / TOPICS.len()) % ACTIONS.len()];
        let topic = TOPICS[item % TOPICS.len()];
        match kind {
            Builtin::ViewBlogPost => format!("What's new: {topic} ({item})"),
            Builtin::ViewForumThread => format!("{topic} problem after update #{item}"),
            _ => format!("{action} {topic} ({item})"),
        }
    }

    /// A search phrase of two to four words.
    pub fn search_phrase(item: u32) -> String {
        let item = item as usize;
        let topic = TOPICS[item % TOPICS.len()];
        let other = TOPICS[(item / TOPICS.len()) % TOPICS.len()];
        match item % 3 {
            0 => format!("{topic} not working"),
            1 => format!("{topic} {other}"),
            _ => format!("how to {topic} {other} {item}"),
        }
    }

    /// The external id of an article, post or thread.
    pub fn item_id(kind: Builtin, item: u32) -> String {
        let prefix = match kind {
            Builtin::ViewKnowledgeArticle => "KA",
            Builtin::ViewBlogPost => "BP",
            _ => "FT",
        };
        format!("{prefix}-{item:06}")
    }

    /// Counts for the report.
    pub fn summary(&self, workload: &str) -> DatasetSummary {
        let total = self.events.len().max(1) as f64;
        let anonymous = self.events.iter().filter(|e| e.contact.is_none()).count();
        let mut active = vec![false; self.contacts.len()];
        let mut by_kind = [0usize; 4];
        for event in &self.events {
            if let Some(contact) = event.contact {
                active[contact as usize] = true;
            }
            let slot = Builtin::ALL
                .iter()
                .position(|k| *k == event.kind)
                .unwrap_or(0);
            by_kind[slot] += 1;
        }
        DatasetSummary {
            workload: workload.to_owned(),
            events: self.events.len(),
            contacts: self.contacts.len(),
            active_contacts: active.iter().filter(|a| **a).count(),
            sessions: self.sessions,
            cases: self.cases.len(),
            articles: self.catalog.articles,
            anonymous_share: anonymous as f64 / total,
            type_mix: Builtin::ALL
                .iter()
                .zip(by_kind)
                .map(|(kind, count)| (kind.name().to_owned(), count as f64 / total))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_dataset() {
        let a = PortalWorkload.generate(5_000, 7);
        let b = PortalWorkload.generate(5_000, 7);
        assert_eq!(a.events.len(), 5_000);
        assert_eq!(a.cases, b.cases);
        assert_eq!(
            a.interaction_id(&a.events[42]),
            b.interaction_id(&b.events[42])
        );
    }

    #[test]
    fn events_are_in_time_order_and_cases_exist() {
        let data = PortalWorkload.generate(20_000, 1);
        assert!(
            data.events
                .windows(2)
                .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
        );
        assert!(!data.cases.is_empty());
        let summary = data.summary("portal");
        let articles = summary.type_mix[0].1;
        assert!((0.45..0.65).contains(&articles), "{articles}");
    }

    #[test]
    fn uuids_look_like_version_4() {
        let text = uuid_text(mix(1, 2, 3));
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
    }
}
