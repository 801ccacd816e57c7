//! `tracklog bench` end to end at a tiny scale: real server, real peers where
//! they can start, and a report that carries every figure.
//!
//! Under CI (the `CI` variable set) both peers are required, so a machine
//! without them fails here instead of passing on Tracklog alone.

use std::path::{Path, PathBuf};

use tracklog_bench::BenchArgs;
use tracklog_bench::peers::PeerKind;
use tracklog_bench::report::keys;

const EVENTS: usize = 2_000;
const QUERIES: usize = 20;

/// Whether a peer's server binary is installed, and if not, why.
fn missing_reason(peer: PeerKind) -> Option<&'static str> {
    let found = |name: &str, extra: &[&str]| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(extra.iter().map(PathBuf::from))
            .any(|dir| dir.join(name).is_file())
    };
    match peer {
        PeerKind::ClickHouse => (!found("clickhouse-server", &[]))
            .then_some("clickhouse-server is not installed (scripts/bench-peers.sh)"),
        PeerKind::Postgres => {
            let debian: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path().join("bin").display().to_string())
                .collect();
            let debian: Vec<&str> = debian.iter().map(String::as_str).collect();
            (!found("postgres", &debian))
                .then_some("the PostgreSQL server is not installed (scripts/bench-peers.sh)")
        }
        PeerKind::None => None,
    }
}

fn peers_to_run() -> Vec<PeerKind> {
    let wanted = [PeerKind::ClickHouse, PeerKind::Postgres];
    if std::env::var_os("CI").is_some() {
        // Required: the bench itself fails, naming the missing package.
        return wanted.to_vec();
    }
    wanted
        .into_iter()
        .filter(|peer| match missing_reason(*peer) {
            Some(reason) => {
                eprintln!("running without {}: {reason}", peer.display_name());
                false
            }
            None => true,
        })
        .collect()
}

fn args(out: &Path, work_dir: &Path, peers: Vec<PeerKind>) -> BenchArgs {
    BenchArgs {
        events: EVENTS,
        repeat: 1,
        peers: if peers.is_empty() {
            vec![PeerKind::None]
        } else {
            peers
        },
        clients: 4,
        queries: QUERIES,
        seed: 7,
        batches: vec![1, 50, 500],
        small_batch_events: 500,
        run_seconds: 30,
        workload: "portal".into(),
        conversations: 300,
        dashboard_runs: 3,
        out: out.to_path_buf(),
        work_dir: Some(work_dir.to_path_buf()),
        prerender_max_events: tracklog_bench::payload::PRERENDER_MAX_EVENTS,
        keep_data: false,
    }
}

/// Every figure the report must carry for the peers that ran.
fn expected_figures(peers: &[PeerKind]) -> Vec<String> {
    let mut names = vec![
        keys::TRACKLOG_BYTES_PER_EVENT.to_owned(),
        keys::WRITE_MB_PER_SEC.to_owned(),
        keys::PARSE_EVENTS_PER_SEC.to_owned(),
        keys::JSON_BYTES_PER_EVENT.to_owned(),
    ];
    for durability in ["fsync", "os"] {
        for batch in [1, 50, 500] {
            for field in [
                "events_per_sec",
                "ack_p50_ms",
                "ack_p99_ms",
                "lag_p99_ms",
                "settled_ms",
            ] {
                names.push(keys::ingest(durability, batch, field));
            }
        }
    }
    // At 2,000 events in batches of 500, only the first tenth has a window.
    names.push(keys::ingest("fsync", 500, "first_tenth_events_per_sec"));
    let mut targets = vec![keys::TRACKLOG_IN_PROCESS, keys::TRACKLOG_HTTP];
    targets.extend(peers.iter().map(|peer| peer.key()));
    for set in ["journey", "timeline"] {
        for target in &targets {
            for field in ["p50_ms", "p99_ms", "max_ms"] {
                names.push(keys::query(set, target, field));
            }
        }
    }
    for peer in peers {
        names.push(keys::peer_load(peer.key(), "rows_per_sec"));
        names.push(keys::peer_load(peer.key(), "bytes_per_event"));
        if *peer == PeerKind::ClickHouse {
            for field in ["rows", "rows_per_sec", "retries", "delayed"] {
                names.push(keys::peer_small_inserts(peer.key(), field));
            }
        }
    }
    names
}

fn expected_ratios(peers: &[PeerKind]) -> Vec<String> {
    let mut names = vec![
        keys::FRACTION_OF_PARSE.to_owned(),
        keys::FRACTION_OF_WRITE.to_owned(),
    ];
    for peer in peers {
        names.push(keys::ratio("ingest_per_sec", peer.key()));
        if *peer == PeerKind::ClickHouse {
            names.push(keys::ratio("small_inserts_per_sec", peer.key()));
        }
        names.push(keys::ratio("bytes_per_event", peer.key()));
        for set in ["journey", "timeline"] {
            names.push(keys::ratio(
                &format!("{set}.{}.p99_ms", keys::TRACKLOG_HTTP),
                peer.key(),
            ));
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_runs_end_to_end_and_reports_every_figure() {
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let peers = peers_to_run();
    let (markdown, json) = tracklog_bench::run_bench(args(out.path(), work.path(), peers.clone()))
        .await
        .expect("the bench runs");

    assert!(markdown.exists() && json.exists());
    assert!(
        markdown
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(&format!("-{EVENTS}.md"))
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for name in expected_figures(&peers) {
        let value = report["medians"][&name].as_f64();
        assert!(
            value.is_some_and(f64::is_finite),
            "figure {name} is missing"
        );
    }
    for name in expected_ratios(&peers) {
        assert!(
            report["ratios"][&name].as_f64().is_some(),
            "ratio {name} is missing"
        );
    }
    if peers.contains(&PeerKind::ClickHouse) {
        let rows = report["medians"][&keys::peer_small_inserts("clickhouse", "rows")].as_f64();
        assert_eq!(rows, Some(EVENTS as f64), "ClickHouse's small inserts");
    }
    for set in ["journey", "timeline"] {
        for target in peers.iter().map(|p| p.key()).chain([keys::TRACKLOG_HTTP]) {
            let mismatches = report["medians"][&keys::query(set, target, "mismatches")].as_f64();
            assert_eq!(
                mismatches,
                Some(0.0),
                "{set} on {target} disagrees with Tracklog"
            );
        }
    }
    let text = std::fs::read_to_string(&markdown).unwrap();
    for heading in [
        "## Machine",
        "## Headline",
        "## Targets",
        "## Tracklog ingest",
        "## Queries",
        "limits",
        "first 10 %",
    ] {
        assert!(text.contains(heading), "the markdown lacks {heading}");
    }
    for peer in &peers {
        assert!(text.contains(&format!("Tracklog ÷ {}", peer.display_name())));
    }
    assert!(
        !text.contains("| – |") || peers.len() < 2,
        "a figure is empty:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_workload_runs_at_a_small_scale_beside_the_peers() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("results");
    let peers = peers_to_run();
    let mut bench = args(&out, work.path(), peers.clone());
    bench.workload = "audit".into();
    bench.events = 1_200;
    bench.queries = 10;
    let (markdown, json) = tracklog_bench::run_bench(bench).await.unwrap();
    assert!(
        markdown
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains("audit-1200"),
        "{}",
        markdown.display()
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let medians = &report["medians"];
    let figure = |name: String| {
        medians[&name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} is missing"))
    };
    let mut targets = vec!["tracklog"];
    targets.extend(peers.iter().map(|p| p.key()));
    for target in &targets {
        assert_eq!(figure(format!("load.{target}.records")), 1_200.0);
        assert!(figure(format!("load.{target}.records_per_sec")) > 0.0);
        // Every target streams out exactly the workload's records.
        assert_eq!(figure(format!("export.{target}.records")), 1_200.0);
        for set in ["user_30_days", "free_text"] {
            assert_eq!(figure(format!("query.{set}.{target}.queries")), 10.0);
            assert!(figure(format!("query.{set}.{target}.matches")) > 0.0);
            assert_eq!(
                figure(format!("query.{set}.{target}.mismatches")),
                0.0,
                "{target} answers {set} differently from Tracklog"
            );
        }
    }
    // Tracklog also holds the record of the bench policy's creation.
    assert!(figure("export.tracklog.lines".into()) > 1_200.0);
    for field in [
        "lag_p50_ms",
        "lag_p99_ms",
        "settled_ms",
        "applied_records_per_sec",
    ] {
        assert!(figure(format!("load.tracklog.{field}")) >= 0.0);
    }
    assert!(figure("machine.json_parse_records_per_sec".into()) > 0.0);
    assert!(
        report["ratios"]["fraction.load_of_json_parse"]
            .as_f64()
            .is_some()
    );
    if peers.contains(&PeerKind::ClickHouse) {
        assert_eq!(figure("small_inserts.clickhouse.records".into()), 1_200.0);
        assert!(
            report["ratios"]["ratio.small_inserts.x.records_per_sec.clickhouse"]
                .as_f64()
                .is_some()
        );
    }
    // The chain verified: every record, plus the export's own record.
    assert!(figure("verify.tracklog.records_checked".into()) >= 1_201.0);
    for peer in &peers {
        assert!(
            report["ratios"][format!("ratio.query.free_text.x.p50_ms.{}", peer.key())]
                .as_f64()
                .is_some(),
            "no ratio to {}",
            peer.key()
        );
    }
    let text = std::fs::read_to_string(markdown).unwrap();
    assert!(text.contains("Command: `"));
    assert!(text.contains("lag p99, ms") && text.contains("The machine's limit"));
    for peer in &peers {
        assert!(text.contains(&format!("Tracklog ÷ {}", peer.display_name())));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_workload_agrees_with_every_peer_it_can_start() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("results");
    let peers = peers_to_run();
    let mut args = args(&out, work.path(), peers.clone());
    args.workload = "channel".into();
    let (markdown, json) = tracklog_bench::run_bench(args).await.unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(report["dataset"]["conversations"], 300);
    let repetition = &report["repetitions"][0];
    assert!(repetition["ingest"]["events_per_sec"].as_f64().unwrap() > 0.0);
    assert!(repetition["ingest"]["events_ack_p99_ms"].as_f64().unwrap() > 0.0);
    assert!(repetition["ingest"]["lag"]["settled_ms"].as_f64().is_some());
    assert!(repetition["parse"]["events_per_sec"].as_f64().unwrap() > 0.0);
    let median = |name: &str| {
        report["medians"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair[1].as_f64())
    };
    for name in [
        "tracklog.ingest.lag_p99_ms",
        "tracklog.ingest.applied_events_per_sec",
        "fraction.events_of_json_parse",
        "fraction.init_of_json_parse",
    ] {
        assert!(median(name).is_some(), "{name} is missing");
    }
    assert!(repetition["tracklog_query"]["cells"].as_u64().unwrap() > 0);
    let measured = repetition["peers"].as_array().unwrap();
    assert_eq!(measured.len(), peers.len());
    for peer in measured {
        if peer["peer"] == "clickhouse" {
            assert_eq!(
                peer["small_inserts"]["rows"], peer["load"]["rows"],
                "ClickHouse's small inserts hold every row of its bulk load"
            );
        }
        let agreement = &peer["agreement"];
        assert_eq!(
            agreement["differing"].as_u64().unwrap()
                + agreement["only_in_tracklog"].as_u64().unwrap()
                + agreement["only_in_peer"].as_u64().unwrap(),
            0,
            "{} disagrees with Tracklog: {agreement}",
            peer["peer"]
        );
    }
    let text = std::fs::read_to_string(markdown).unwrap();
    assert!(text.contains("dashboard p50"));
}
