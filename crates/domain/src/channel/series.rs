//! The fold of bucket rows from the store into a metrics query's answer:
//! one series per metric and group, a point per interval, each the metric's
//! formula evaluated on the parts summed over the interval's buckets.

use std::collections::{BTreeMap, HashMap};

use jiff::tz::TimeZone;
use serde::Serialize;

use super::interval::{Interval, floor};
use super::metrics::{Dimension, Formula, Metric, Part, Scale};
use crate::time::UtcMillis;

/// One aggregated row from the store: a bucket's (sum, count) of one part
/// for one group (the values of the query's group-by dimensions, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub bucket: i64,
    /// Shared: a store returns many rows of each group, one per bucket and
    /// part.
    pub group: std::sync::Arc<[String]>,
    pub part: Part,
    pub sum: f64,
    pub count: i64,
}

/// A value in one interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    #[serde(with = "crate::time::rfc3339")]
    pub start: UtcMillis,
    pub value: Option<f64>,
    /// How many items the value is over (sessions, events).
    pub count: i64,
}

/// One metric for one group over the query's intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub metric: String,
    pub group: BTreeMap<String, String>,
    pub points: Vec<Point>,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    sum: f64,
    count: i64,
}

/// The accumulated parts of one interval (of one group), by part code: a
/// dashboard folds tens of thousands of rows into these, so they are an
/// array rather than a map.
type Parts = [Acc; Part::ALL.len()];

const NO_PARTS: Parts = [Acc { sum: 0.0, count: 0 }; Part::ALL.len()];

/// Evaluates a formula on the accumulated parts.
fn evaluate(formula: Formula, parts: &Parts) -> (Option<f64>, i64) {
    let get = |part: Part| parts[usize::from(part.code())];
    let divide = |a: f64, b: f64| (b != 0.0).then(|| a / b);
    match formula {
        Formula::Count(p) => {
            let acc = get(p);
            (Some(acc.count as f64), acc.count)
        }
        Formula::Mean(p, scale) => {
            let acc = get(p);
            let factor = match scale {
                Scale::MillisToSeconds => 0.001,
                Scale::One => 1.0,
            };
            (divide(acc.sum * factor, acc.count as f64), acc.count)
        }
        Formula::Ratio(a, b) => {
            let (a, b) = (get(a), get(b));
            (divide(a.count as f64, b.count as f64), b.count)
        }
        Formula::SumRatio(a, b) => {
            let (a, b) = (get(a), get(b));
            (divide(a.sum, b.sum), a.count)
        }
    }
}

/// Folds bucket rows into one series per metric and group, with a point for
/// every interval start in `starts` (empty intervals included).
pub fn assemble(
    metrics: &[Metric],
    group_by: &[Dimension],
    starts: &[UtcMillis],
    size: Interval,
    tz: &TimeZone,
    rows: &[Row],
) -> Vec<Series> {
    let index: HashMap<UtcMillis, usize> = starts
        .iter()
        .enumerate()
        .map(|(i, start)| (*start, i))
        .collect();
    // group -> interval -> parts; an interval's parts are allocated when a
    // row first falls in it, so that a query by agent over many quarters
    // stays small.
    let mut folded: BTreeMap<&[String], Vec<Option<Box<Parts>>>> = BTreeMap::new();
    let mut interval_of_bucket: HashMap<i64, Option<usize>> = HashMap::new();
    // Stores return a bucket's rows together (by part and bucket, or by
    // bucket and group): most rows share the last one's bucket.
    let mut last: Option<(i64, Option<usize>)> = None;
    for row in rows {
        let slot = match last {
            Some((bucket, slot)) if bucket == row.bucket => slot,
            _ => {
                let slot = *interval_of_bucket.entry(row.bucket).or_insert_with(|| {
                    index
                        .get(&floor(UtcMillis::from_millis(row.bucket), size, tz))
                        .copied()
                });
                last = Some((row.bucket, slot));
                slot
            }
        };
        let Some(slot) = slot else { continue };
        let intervals = folded
            .entry(&*row.group)
            .or_insert_with(|| vec![None; starts.len()]);
        let acc = &mut intervals[slot].get_or_insert_with(|| Box::new(NO_PARTS))
            [usize::from(row.part.code())];
        acc.sum += row.sum;
        acc.count += row.count;
    }
    let mut series = Vec::new();
    for metric in metrics {
        let parts = metric.computed.parts();
        for (group, intervals) in &folded {
            let touched = intervals.iter().flatten().any(|by_part| {
                parts.iter().any(|p| {
                    by_part[usize::from(p.code())].count != 0
                        || by_part[usize::from(p.code())].sum != 0.0
                })
            });
            if !touched && !group.is_empty() {
                continue;
            }
            let points = starts
                .iter()
                .zip(intervals)
                .map(|(start, by_part)| {
                    let (value, count) =
                        evaluate(metric.computed, by_part.as_deref().unwrap_or(&NO_PARTS));
                    Point {
                        start: *start,
                        value,
                        count,
                    }
                })
                .collect();
            series.push(Series {
                metric: metric.name.to_owned(),
                group: group_map(group_by, group),
                points,
            });
        }
        if folded.is_empty() && group_by.is_empty() {
            series.push(Series {
                metric: metric.name.to_owned(),
                group: BTreeMap::new(),
                points: starts
                    .iter()
                    .map(|start| {
                        let (value, count) = evaluate(metric.computed, &NO_PARTS);
                        Point {
                            start: *start,
                            value,
                            count,
                        }
                    })
                    .collect(),
            });
        }
    }
    series
}

/// A metric's value over every row, whatever their buckets and groups.
pub fn total(metric: &Metric, rows: &[Row]) -> (Option<f64>, i64) {
    let mut parts = NO_PARTS;
    for row in rows {
        let acc = &mut parts[usize::from(row.part.code())];
        acc.sum += row.sum;
        acc.count += row.count;
    }
    evaluate(metric.computed, &parts)
}

fn group_map(group_by: &[Dimension], values: &[String]) -> BTreeMap<String, String> {
    group_by
        .iter()
        .zip(values)
        .map(|(d, v)| (d.code().to_owned(), v.clone()))
        .collect()
}
