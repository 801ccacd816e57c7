//! Named query sets and the targets that answer them.
//!
//! A [`QuerySet`] is a list of [`Query`] values drawn from a dataset; every
//! target (Tracklog in-process, Tracklog over HTTP, each peer) runs the same
//! list, one query at a time, and the runner records each latency. New query
//! families (activity-log search, channel-analytics KPIs) add a [`Query`]
//! variant, a builder in [`query_sets`], and an arm in each target.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::stats::Latencies;
use crate::workload::{Dataset, HOUR_MS};

/// How far back a case's journey reaches.
pub const JOURNEY_WINDOW_MS: i64 = 72 * HOUR_MS;
/// The page size of a journey: the API's largest, so most journeys take one.
pub const JOURNEY_PAGE: usize = 1_000;
/// The most interactions of a journey a peer returns; Tracklog's journey
/// summarises them all and returns its newest page.
pub const JOURNEY_CAP: usize = 5_000;
/// The first page of a timeline, as the UI shows it.
pub const TIMELINE_PAGE: usize = 100;
/// A journey never follows more pages than this (bounded loops).
pub const MAX_PAGES: usize = 1_000;

/// One question to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A contact's interactions in `[from, to)`, oldest first. With
    /// `all_pages`, every page is fetched, up to `cap` rows; otherwise only
    /// the first. `case` names the case (an index into the dataset's cases)
    /// whose journey this window is: a target with a journey endpoint asks
    /// that instead.
    ContactWindow {
        contact: String,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        page: usize,
        all_pages: bool,
        cap: Option<usize>,
        case: Option<usize>,
    },
}

impl Query {
    /// The most rows the query returns, for targets that answer it in one
    /// statement: the page when only the first is wanted, else the cap.
    pub fn row_limit(&self) -> Option<usize> {
        let Query::ContactWindow {
            page,
            all_pages,
            cap,
            ..
        } = self;
        if *all_pages { *cap } else { Some(*page) }
    }
}

/// The id under which the bench creates the dataset's case `index`.
pub fn case_id(index: usize) -> String {
    format!("bench-case-{index}")
}

/// A named list of queries.
pub struct QuerySet {
    pub name: &'static str,
    pub description: &'static str,
    pub queries: Vec<Query>,
}

/// Builds a query set of `count` queries from a dataset.
pub type QuerySetBuilder = fn(&Dataset, usize, &mut StdRng) -> QuerySet;

/// Every query set the bench runs, in report order.
pub fn query_sets() -> &'static [QuerySetBuilder] {
    &[journey, timeline]
}

/// The journey of a random case: the contact's interactions in the 72 hours
/// before the case was created, at most [`JOURNEY_CAP`]. Over HTTP it is
/// `GET /api/v1/cases/{id}/journey?window=PT72H`: the summary of the window
/// and its newest 100 interactions.
fn journey(dataset: &Dataset, count: usize, rng: &mut StdRng) -> QuerySet {
    let queries = random_cases(dataset, count, rng)
        .map(|(index, case)| Query::ContactWindow {
            contact: dataset.contacts[case.contact as usize].clone(),
            from_ms: Some(case.created_ms - JOURNEY_WINDOW_MS),
            to_ms: Some(case.created_ms),
            page: JOURNEY_PAGE,
            all_pages: true,
            cap: Some(JOURNEY_CAP),
            case: Some(index),
        })
        .collect();
    QuerySet {
        name: "journey",
        description: "a case's journey: its contact's interactions in the 72 h before the case, \
                      at most 5,000 (HTTP: the journey endpoint, a summary of them all and the \
                      newest 100; in-process and peers: the rows, in pages of 1,000)",
        queries,
    }
}

/// The full timeline of a random case's contact: its first page of 100.
fn timeline(dataset: &Dataset, count: usize, rng: &mut StdRng) -> QuerySet {
    let queries = random_cases(dataset, count, rng)
        .map(|(_, case)| Query::ContactWindow {
            contact: dataset.contacts[case.contact as usize].clone(),
            from_ms: None,
            to_ms: None,
            page: TIMELINE_PAGE,
            all_pages: false,
            cap: None,
            case: None,
        })
        .collect();
    QuerySet {
        name: "timeline",
        description: "a case's contact, whole history, first page of 100",
        queries,
    }
}

fn random_cases<'a>(
    dataset: &'a Dataset,
    count: usize,
    rng: &'a mut StdRng,
) -> impl Iterator<Item = (usize, &'a crate::workload::Case)> + 'a {
    let cases = &dataset.cases;
    (0..if cases.is_empty() { 0 } else { count }).map(move |_| {
        let index = rng.random_range(0..cases.len());
        (index, &cases[index])
    })
}

/// The cases the sets' queries name, each once.
pub fn named_cases(sets: &[QuerySet]) -> Vec<usize> {
    let mut cases: Vec<usize> = sets
        .iter()
        .flat_map(|set| &set.queries)
        .filter_map(|query| {
            let Query::ContactWindow { case, .. } = query;
            *case
        })
        .collect();
    cases.sort_unstable();
    cases.dedup();
    cases
}

/// Something that answers queries: it returns the number of rows.
pub trait QueryTarget {
    fn run(&self, query: &Query) -> impl Future<Output = anyhow::Result<usize>> + Send;
}

/// Latency figures of one query set on one target.
#[derive(Debug, Clone, Serialize)]
pub struct QueryFigures {
    pub queries: u64,
    pub rows: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Row counts per query, to check that every target agrees.
    #[serde(skip)]
    pub row_counts: Vec<usize>,
}

/// Runs the set one query at a time, stopping at `budget` so that a slow
/// target cannot stall the run; the figures say how many queries ran.
pub async fn run_set<T: QueryTarget>(
    target: &T,
    set: &QuerySet,
    budget: Duration,
    on_query: impl Fn(),
) -> anyhow::Result<QueryFigures> {
    let deadline = Instant::now() + budget;
    let mut latencies = Latencies::default();
    let mut row_counts = Vec::with_capacity(set.queries.len());
    for query in &set.queries {
        if Instant::now() > deadline {
            break;
        }
        let started = Instant::now();
        let rows = target.run(query).await?;
        latencies.record(started.elapsed());
        row_counts.push(rows);
        on_query();
    }
    Ok(QueryFigures {
        queries: latencies.count(),
        rows: row_counts.iter().map(|&rows| rows as u64).sum(),
        p50_ms: latencies.quantile_ms(0.5),
        p99_ms: latencies.quantile_ms(0.99),
        max_ms: latencies.max_ms(),
        row_counts,
    })
}

/// Queries whose row count differs from the reference target's.
pub fn mismatches(reference: &QueryFigures, other: &QueryFigures) -> usize {
    reference
        .row_counts
        .iter()
        .zip(&other.row_counts)
        .filter(|(a, b)| a != b)
        .count()
}
