//! The channel report's figures: the medians over the repetitions by dotted
//! name, Tracklog ÷ peer ratios, and Tracklog's ingest as a fraction of the
//! request items' parse limits.

use super::ingest::IngestFigures;
use super::{ChannelSettings, PeerFigures, QueryFigures, Repetition};
use crate::stats::median;

/// Rows/s of Tracklog's ingest, counted as the peers count their rows: a
/// conversation and its session (two rows) for each init, and one row for
/// each KPI event, over both phases.
pub fn tracklog_rows_per_sec(ingest: &IngestFigures) -> f64 {
    (2 * ingest.conversations + ingest.kpi_events) as f64 / ingest.total_seconds.max(1e-9)
}

/// One figure of Tracklog's ingest.
type IngestField = fn(&IngestFigures) -> f64;

/// The medians over the repetitions, and Tracklog ÷ peer ratios of them.
pub fn medians(settings: &ChannelSettings, repetitions: &[Repetition]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut put = |key: String, values: Vec<f64>| {
        if let Some(value) = median(&values) {
            out.push((key, value));
        }
    };
    let of = |f: &dyn Fn(&Repetition) -> f64| repetitions.iter().map(f).collect::<Vec<_>>();
    let ingest: [(&str, IngestField); 15] = [
        ("init_conversations_per_sec", |i| {
            i.init_conversations_per_sec
        }),
        ("events_per_sec", |i| i.events_per_sec),
        ("rows_per_sec", tracklog_rows_per_sec),
        ("total_seconds", |i| i.total_seconds),
        ("ack_p50_ms", |i| i.ack_p50_ms),
        ("ack_p99_ms", |i| i.ack_p99_ms),
        ("init_ack_p50_ms", |i| i.init_ack_p50_ms),
        ("init_ack_p99_ms", |i| i.init_ack_p99_ms),
        ("events_ack_p50_ms", |i| i.events_ack_p50_ms),
        ("events_ack_p99_ms", |i| i.events_ack_p99_ms),
        ("lag_p50_ms", |i| i.lag.p50_ms),
        ("lag_p99_ms", |i| i.lag.p99_ms),
        ("lag_max_ms", |i| i.lag.max_ms),
        ("settled_ms", |i| i.lag.settled_ms),
        ("applied_events_per_sec", |i| i.applied_events_per_sec),
    ];
    for (field, value) in ingest {
        put(
            format!("tracklog.ingest.{field}"),
            of(&|r| value(&r.ingest)),
        );
    }
    put(
        "tracklog.disk_bytes_per_event".into(),
        of(&|r| r.disk_bytes as f64 / r.ingest.kpi_events.max(1) as f64),
    );
    put(
        "machine.json_parse_inits_per_sec".into(),
        of(&|r| r.parse.inits_per_sec),
    );
    put(
        "machine.json_parse_events_per_sec".into(),
        of(&|r| r.parse.events_per_sec),
    );
    put(
        "machine.json_bytes_per_init".into(),
        of(&|r| r.parse.bytes_per_init),
    );
    put(
        "machine.json_bytes_per_event".into(),
        of(&|r| r.parse.bytes_per_event),
    );
    put(
        "fraction.init_of_json_parse".into(),
        of(&|r| r.ingest.init_conversations_per_sec / r.parse.inits_per_sec),
    );
    put(
        "fraction.events_of_json_parse".into(),
        of(&|r| r.ingest.events_per_sec / r.parse.events_per_sec),
    );
    for field in ["p50_ms", "p99_ms", "max_ms"] {
        put(
            format!("tracklog.dashboard.{field}"),
            of(&|r| query_field(&r.tracklog_query, field)),
        );
        put(
            format!("tracklog_in_process.dashboard.{field}"),
            of(&|r| query_field(&r.tracklog_in_process, field)),
        );
    }
    for peer in &settings.peers {
        let find = |r: &Repetition| r.peers.iter().find(|p| p.peer == *peer).cloned();
        let key = peer.key();
        let figures: Vec<(&Repetition, PeerFigures)> = repetitions
            .iter()
            .filter_map(|r| Some((r, find(r)?)))
            .collect();
        let theirs = |f: &dyn Fn(&PeerFigures) -> f64| figures.iter().map(|(_, p)| f(p)).collect();
        let ratio = |f: &dyn Fn(&Repetition, &PeerFigures) -> f64| {
            figures.iter().map(|(r, p)| f(r, p)).collect()
        };
        for field in ["p50_ms", "p99_ms", "max_ms"] {
            put(
                format!("{key}.dashboard.{field}"),
                theirs(&|p| query_field(&p.query, field)),
            );
            put(
                format!("ratio.{key}.dashboard.{field}"),
                ratio(&|r, p| query_field(&r.tracklog_query, field) / query_field(&p.query, field)),
            );
        }
        put(
            format!("{key}.load.rows_per_sec"),
            theirs(&|p| p.load.rows_per_sec),
        );
        put(format!("{key}.load.seconds"), theirs(&|p| p.load.seconds));
        put(
            format!("ratio.{key}.load.rows_per_sec"),
            ratio(&|r, p| tracklog_rows_per_sec(&r.ingest) / p.load.rows_per_sec),
        );
        let small: Vec<_> = figures
            .iter()
            .filter_map(|(r, p)| Some((*r, p.small_inserts?)))
            .collect();
        let smalls = |f: &dyn Fn(&Repetition, &crate::peers::clickhouse::SmallInserts) -> f64| {
            small.iter().map(|(r, s)| f(r, s)).collect::<Vec<_>>()
        };
        put(
            format!("{key}.small_inserts.rows"),
            smalls(&|_, s| s.rows as f64),
        );
        put(
            format!("{key}.small_inserts.seconds"),
            smalls(&|_, s| s.seconds),
        );
        put(
            format!("{key}.small_inserts.rows_per_sec"),
            smalls(&|_, s| s.rows_per_sec),
        );
        put(
            format!("{key}.small_inserts.retries"),
            smalls(&|_, s| s.retries as f64),
        );
        put(
            format!("{key}.small_inserts.delayed"),
            smalls(&|_, s| s.delayed as f64),
        );
        put(
            format!("ratio.{key}.small_inserts.rows_per_sec"),
            smalls(&|r, s| tracklog_rows_per_sec(&r.ingest) / s.rows_per_sec),
        );
    }
    out
}

fn query_field(q: &QueryFigures, field: &str) -> f64 {
    match field {
        "p50_ms" => q.p50_ms,
        "p99_ms" => q.p99_ms,
        "max_ms" => q.max_ms,
        _ => q.mean_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::baselines::ParseLimits;
    use crate::channel::sql::LoadStats;
    use crate::channel::{Agreement, ChannelSettings};
    use crate::peers::PeerKind;
    use crate::peers::clickhouse::SmallInserts;

    fn query(p50_ms: f64) -> QueryFigures {
        QueryFigures {
            runs: 1,
            p50_ms,
            p99_ms: p50_ms,
            max_ms: p50_ms,
            mean_ms: p50_ms,
            cells: 1,
        }
    }

    #[test]
    fn ingest_is_divided_by_the_peers_and_the_parse_limits() {
        let ingest = IngestFigures {
            conversations: 100,
            kpi_events: 1_800,
            total_seconds: 2.0,
            init_conversations_per_sec: 500.0,
            events_per_sec: 1_000.0,
            ..IngestFigures::default()
        };
        let repetition = Repetition {
            parse: ParseLimits {
                inits_per_sec: 1_000.0,
                events_per_sec: 4_000.0,
                ..ParseLimits::default()
            },
            ingest,
            disk_bytes: 0,
            tracklog_query: query(2.0),
            tracklog_in_process: query(1.0),
            peers: vec![PeerFigures {
                peer: PeerKind::ClickHouse,
                version: "18.16".into(),
                load: LoadStats {
                    rows: 2_000,
                    seconds: 0.5,
                    rows_per_sec: 4_000.0,
                },
                small_inserts: Some(SmallInserts {
                    rows: 2_000,
                    seconds: 4.0,
                    rows_per_sec: 500.0,
                    ..SmallInserts::default()
                }),
                query: query(4.0),
                agreement: Agreement::default(),
            }],
        };
        let settings = ChannelSettings {
            conversations: 100,
            seed: 1,
            clients: 16,
            dashboard_runs: 1,
            repeat: 1,
            peers: vec![PeerKind::ClickHouse],
        };
        let medians = medians(&settings, &[repetition]);
        let get = |key: &str| {
            medians
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("{key} is missing"))
        };
        // (2 × 100 + 1,800) rows in 2 s.
        assert_eq!(get("tracklog.ingest.rows_per_sec"), 1_000.0);
        assert_eq!(get("ratio.clickhouse.load.rows_per_sec"), 0.25);
        assert_eq!(get("ratio.clickhouse.small_inserts.rows_per_sec"), 2.0);
        assert_eq!(get("fraction.init_of_json_parse"), 0.5);
        assert_eq!(get("fraction.events_of_json_parse"), 0.25);
        assert_eq!(get("ratio.clickhouse.dashboard.p50_ms"), 0.5);
    }
}
