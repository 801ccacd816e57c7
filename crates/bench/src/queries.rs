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
/// The first page of a timeline, as the UI shows it.
pub const TIMELINE_PAGE: usize = 100;
/// A journey never follows more pages than this (bounded loops).
pub const MAX_PAGES: usize = 1_000;

/// One question to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A contact's interactions in `[from, to)`, oldest first. With
    /// `all_pages`, every page is fetched; otherwise only the first.
    ContactWindow {
        contact: String,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        page: usize,
        all_pages: bool,
    },
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
/// before the case was created.
fn journey(dataset: &Dataset, count: usize, rng: &mut StdRng) -> QuerySet {
    let queries = random_cases(dataset, count, rng)
        .map(|case| Query::ContactWindow {
            contact: dataset.contacts[case.contact as usize].clone(),
            from_ms: Some(case.created_ms - JOURNEY_WINDOW_MS),
            to_ms: Some(case.created_ms),
            page: JOURNEY_PAGE,
            all_pages: true,
        })
        .collect();
    QuerySet {
        name: "journey",
        description: "a case's contact, 72 h before the case, every page of 1,000",
        queries,
    }
}

/// The full timeline of a random case's contact: its first page of 100.
fn timeline(dataset: &Dataset, count: usize, rng: &mut StdRng) -> QuerySet {
    let queries = random_cases(dataset, count, rng)
        .map(|case| Query::ContactWindow {
            contact: dataset.contacts[case.contact as usize].clone(),
            from_ms: None,
            to_ms: None,
            page: TIMELINE_PAGE,
            all_pages: false,
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
) -> impl Iterator<Item = &'a crate::workload::Case> + 'a {
    let cases = &dataset.cases;
    (0..if cases.is_empty() { 0 } else { count })
        .map(move |_| &cases[rng.random_range(0..cases.len())])
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
