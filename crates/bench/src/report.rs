//! The report: every figure of every repetition under a stable name, their
//! medians, the ratios to the peers, and a markdown rendering of the same.
//!
//! Figures are a flat map from a dotted name to a number, so a new workload
//! or query set adds names without changing the report's structure; the
//! names are built by the functions in [`keys`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::machine::Machine;
use crate::peers::PeerKind;
use crate::stats::median;
use crate::workload::DatasetSummary;

/// Named figures of one repetition, or their medians.
pub type Figures = BTreeMap<String, f64>;

/// Figure names.
pub mod keys {
    /// The Tracklog targets of the query sets.
    pub const TRACKLOG_HTTP: &str = "tracklog_http";
    pub const TRACKLOG_IN_PROCESS: &str = "tracklog_in_process";

    pub fn ingest(durability: &str, batch: usize, field: &str) -> String {
        format!("tracklog.ingest.{durability}.batch{batch}.{field}")
    }

    pub fn query(set: &str, target: &str, field: &str) -> String {
        format!("query.{set}.{target}.{field}")
    }

    pub fn peer_load(peer: &str, field: &str) -> String {
        format!("{peer}.load.{field}")
    }

    /// The same rows inserted 500 at a time by concurrent clients.
    pub fn peer_small_inserts(peer: &str, field: &str) -> String {
        format!("{peer}.small_inserts.{field}")
    }

    pub const TRACKLOG_BYTES_PER_EVENT: &str = "tracklog.disk.bytes_per_event";
    pub const WRITE_MB_PER_SEC: &str = "machine.write_mb_per_sec";
    pub const PARSE_EVENTS_PER_SEC: &str = "machine.json_parse_events_per_sec";
    pub const JSON_BYTES_PER_EVENT: &str = "machine.json_bytes_per_event";
    pub const FRACTION_OF_PARSE: &str = "fraction.ingest_of_json_parse";
    pub const FRACTION_OF_WRITE: &str = "fraction.ingest_of_write_bandwidth";
    /// Events/s over the last tenth of the full run ÷ over its first tenth.
    pub const INGEST_LAST_OVER_FIRST_TENTH: &str = "ratio.ingest_last_tenth_over_first_tenth";

    pub fn ratio(figure: &str, peer: &str) -> String {
        format!("ratio.{figure}.{peer}")
    }
}

/// How the run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub events: usize,
    pub repeat: usize,
    pub seed: u64,
    pub clients: usize,
    pub batches: Vec<usize>,
    pub small_batch_max_events: usize,
    pub run_budget_seconds: u64,
    pub queries: usize,
    pub peers: Vec<PeerKind>,
    pub workload: String,
    /// Datasets larger than this render each batch's JSON when it is sent.
    pub prerender_max_events: usize,
}

/// The whole report, as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub date: String,
    pub command_line: String,
    pub settings: Settings,
    pub machine: Machine,
    pub dataset: DatasetSummary,
    /// The query sets, by name, with what each asks.
    pub query_sets: Vec<(String, String)>,
    /// Whether each batch's JSON was rendered when it was sent (more
    /// events than `settings.prerender_max_events`).
    pub rendered_on_the_fly: bool,
    pub medians: Figures,
    pub ratios: Figures,
    pub repetitions: Vec<Figures>,
    pub notes: Vec<String>,
}

/// The median of each figure over the repetitions that have it.
pub fn medians(repetitions: &[Figures]) -> Figures {
    let mut values: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for figures in repetitions {
        for (name, value) in figures {
            values.entry(name).or_default().push(*value);
        }
    }
    values
        .into_iter()
        .filter_map(|(name, list)| Some((name.to_owned(), median(&list)?)))
        .collect()
}

/// The figure Tracklog is judged on for ingest: durable, batches of 500.
pub fn headline_ingest_key() -> String {
    keys::ingest("fsync", 500, "events_per_sec")
}

/// The batch of the ingest run that sends the whole dataset.
pub fn full_batch(settings: &Settings) -> usize {
    settings.batches.iter().copied().max().unwrap_or(500)
}

/// Tracklog ÷ peer for every comparable figure, Tracklog's ingest as a
/// fraction of the machine's limits, and how the ingest rate of the full
/// run (batches of `full_batch`) changed from its first tenth to its last.
pub fn ratios(
    medians: &Figures,
    peers: &[PeerKind],
    query_sets: &[String],
    full_batch: usize,
) -> Figures {
    let mut ratios = Figures::new();
    let ingest = medians.get(&headline_ingest_key()).copied();
    for peer in peers.iter().map(|peer| peer.key()) {
        let mut pair = |name: String, ours: Option<f64>, theirs: Option<&f64>| {
            if let (Some(ours), Some(theirs)) = (ours, theirs)
                && *theirs > 0.0
            {
                ratios.insert(keys::ratio(&name, peer), ours / theirs);
            }
        };
        pair(
            "ingest_per_sec".into(),
            ingest,
            medians.get(&keys::peer_load(peer, "rows_per_sec")),
        );
        pair(
            "small_inserts_per_sec".into(),
            ingest,
            medians.get(&keys::peer_small_inserts(peer, "rows_per_sec")),
        );
        pair(
            "bytes_per_event".into(),
            medians.get(keys::TRACKLOG_BYTES_PER_EVENT).copied(),
            medians.get(&keys::peer_load(peer, "bytes_per_event")),
        );
        for set in query_sets {
            for target in [keys::TRACKLOG_HTTP, keys::TRACKLOG_IN_PROCESS] {
                for field in ["p50_ms", "p99_ms", "max_ms"] {
                    pair(
                        format!("{set}.{target}.{field}"),
                        medians.get(&keys::query(set, target, field)).copied(),
                        medians.get(&keys::query(set, peer, field)),
                    );
                }
            }
        }
    }
    add_fractions(&mut ratios, medians, ingest);
    let tenth = |field: &str| medians.get(&keys::ingest("fsync", full_batch, field));
    if let (Some(first), Some(last)) = (
        tenth("first_tenth_events_per_sec"),
        tenth("last_tenth_events_per_sec"),
    ) && *first > 0.0
    {
        ratios.insert(keys::INGEST_LAST_OVER_FIRST_TENTH.into(), last / first);
    }
    ratios
}

fn add_fractions(ratios: &mut Figures, medians: &Figures, ingest: Option<f64>) {
    let Some(ingest) = ingest else { return };
    if let Some(parse) = medians.get(keys::PARSE_EVENTS_PER_SEC) {
        ratios.insert(keys::FRACTION_OF_PARSE.into(), ingest / parse);
    }
    if let (Some(write), Some(bytes)) = (
        medians.get(keys::WRITE_MB_PER_SEC),
        medians.get(keys::JSON_BYTES_PER_EVENT),
    ) {
        ratios.insert(
            keys::FRACTION_OF_WRITE.into(),
            ingest * bytes / (write * 1e6),
        );
    }
}

impl Report {
    /// Writes `<date>-<events>.md` and `.json` into `dir`; returns both paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = format!("{}-{}", self.date, self.settings.events);
        let markdown = dir.join(format!("{stem}.md"));
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&markdown, crate::markdown::render(self))?;
        std::fs::write(&json, serde_json::to_string_pretty(self)? + "\n")?;
        Ok((markdown, json))
    }

    pub fn median(&self, name: &str) -> Option<f64> {
        self.medians.get(name).copied()
    }

    pub fn ratio(&self, name: &str) -> Option<f64> {
        self.ratios.get(name).copied()
    }
}

/// A number for a table: thousands separated, a sensible precision.
pub fn format_number(value: Option<f64>) -> String {
    let Some(value) = value else {
        return "–".into();
    };
    if value.abs() >= 1_000.0 || (value.fract() == 0.0 && value.abs() < 1e15) {
        group_thousands(value.round() as i64)
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A ratio with two significant decimals and a trailing ×.
pub fn format_ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.2}×"))
}

fn group_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_number(Some(1_234_567.4)), "1,234,567");
        assert_eq!(format_number(Some(2.345)), "2.35");
        assert_eq!(format_number(None), "–");
        assert_eq!(format_number(Some(50.0)), "50");
        assert_eq!(format_ratio(Some(0.5)), "0.50×");
    }

    #[test]
    fn medians_and_ratios() {
        let runs: Vec<Figures> = [100.0, 300.0, 200.0]
            .iter()
            .map(|rate| {
                Figures::from([
                    (headline_ingest_key(), *rate),
                    (keys::peer_load("clickhouse", "rows_per_sec"), 400.0),
                    (
                        keys::peer_small_inserts("clickhouse", "rows_per_sec"),
                        100.0,
                    ),
                    (
                        keys::ingest("fsync", 500, "first_tenth_events_per_sec"),
                        250.0,
                    ),
                    (
                        keys::ingest("fsync", 500, "last_tenth_events_per_sec"),
                        200.0,
                    ),
                ])
            })
            .collect();
        let medians = medians(&runs);
        assert_eq!(medians[&headline_ingest_key()], 200.0);
        let ratios = ratios(&medians, &[PeerKind::ClickHouse], &[], 500);
        assert_eq!(ratios[&keys::ratio("ingest_per_sec", "clickhouse")], 0.5);
        assert_eq!(
            ratios[&keys::ratio("small_inserts_per_sec", "clickhouse")],
            2.0
        );
        assert_eq!(ratios[keys::INGEST_LAST_OVER_FIRST_TENTH], 0.8);
    }
}
