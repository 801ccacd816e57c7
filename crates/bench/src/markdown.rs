//! The markdown rendering of a [`Report`]: the headline ratios first, then
//! the targets, then every figure behind them.

use std::fmt::Write as _;

use crate::peers::PeerKind;
use crate::report::{Report, format_number, format_ratio, full_batch, headline_ingest_key, keys};

/// Renders the whole report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    headline(&mut out, report);
    targets(&mut out, report);
    ingest(&mut out, report);
    peer_loads(&mut out, report);
    queries(&mut out, report);
    limits(&mut out, report);
    workload(&mut out, report);
    notes(&mut out, report);
    out
}

fn peers(report: &Report) -> Vec<PeerKind> {
    report
        .settings
        .peers
        .iter()
        .copied()
        .filter(|peer| *peer != PeerKind::None)
        .collect()
}

fn header(out: &mut String, report: &Report) {
    let settings = &report.settings;
    let machine = &report.machine;
    let _ = writeln!(
        out,
        "# Tracklog benchmark: {} events, {}\n",
        format_number(Some(settings.events as f64)),
        report.date
    );
    let _ = writeln!(out, "Command: `{}`\n", report.command_line);
    let _ = writeln!(
        out,
        "Every figure is the median of {} repetition(s). Seed {}, {} concurrent clients, {} queries per set. Reproduce with `bench/README.md`.\n",
        settings.repeat, settings.seed, settings.clients, settings.queries
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "- CPU: {} × {}", machine.cores, machine.cpu);
    let _ = writeln!(out, "- Memory: {:.1} GiB", machine.memory_gib);
    let _ = writeln!(out, "- Disk: {}", machine.disk);
    let _ = writeln!(out, "- Kernel: {}\n", machine.kernel);
}

/// One headline row: Tracklog's figure, then each peer's and the ratio.
fn headline_row(
    out: &mut String,
    report: &Report,
    label: &str,
    ours: &str,
    theirs: &dyn Fn(&str) -> String,
    ratio: &str,
) {
    let _ = write!(out, "| {label} | {} |", format_number(report.median(ours)));
    for peer in peers(report) {
        let _ = write!(
            out,
            " {} | {} |",
            format_number(report.median(&theirs(peer.key()))),
            format_ratio(report.ratio(&keys::ratio(ratio, peer.key())))
        );
    }
    out.push('\n');
}

fn headline(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## Headline: Tracklog ÷ peers\n");
    let peers = peers(report);
    if peers.is_empty() {
        let _ = writeln!(
            out,
            "No peers ran (`--peers none`); the ratios are empty.\n"
        );
    }
    let _ = write!(out, "| figure | Tracklog |");
    for peer in &peers {
        let _ = write!(out, " {0} | Tracklog ÷ {0} |", peer.display_name());
    }
    let _ = write!(out, "\n|---|---:|");
    for _ in &peers {
        out.push_str("---:|---:|");
    }
    out.push('\n');
    headline_row(
        out,
        report,
        "durable ingest, events/s (fsync, batches of 500; peers: bulk load) — higher is better",
        &headline_ingest_key(),
        &|peer| keys::peer_load(peer, "rows_per_sec"),
        "ingest_per_sec",
    );
    let _ = write!(
        out,
        "| durable ingest, events/s (fsync, batches of 500; ClickHouse: the same rows in {}-row `INSERT ... FORMAT JSONEachRow` requests from {} clients) — higher is better | {} |",
        crate::peers::clickhouse::SMALL_INSERT_ROWS,
        report.settings.clients,
        format_number(report.median(&headline_ingest_key()))
    );
    for peer in &peers {
        if *peer == PeerKind::ClickHouse {
            let _ = write!(
                out,
                " {} | {} |",
                format_number(report.median(&keys::peer_small_inserts(peer.key(), "rows_per_sec"))),
                format_ratio(report.ratio(&keys::ratio("small_inserts_per_sec", peer.key())))
            );
        } else {
            out.push_str(" n/a | n/a |");
        }
    }
    out.push('\n');
    headline_row(
        out,
        report,
        "bytes on disk per event — lower is better",
        keys::TRACKLOG_BYTES_PER_EVENT,
        &|peer| keys::peer_load(peer, "bytes_per_event"),
        "bytes_per_event",
    );
    for (set, _) in &report.query_sets {
        for (target, how) in [
            (keys::TRACKLOG_HTTP, "over HTTP"),
            (keys::TRACKLOG_IN_PROCESS, "in-process"),
        ] {
            for field in ["p50_ms", "p99_ms", "max_ms"] {
                let stat = field.trim_end_matches("_ms");
                headline_row(
                    out,
                    report,
                    &format!("{set} {stat}, ms (Tracklog {how}) — lower is better"),
                    &keys::query(set, target, field),
                    &|peer| keys::query(set, peer, field),
                    &format!("{set}.{target}.{field}"),
                );
            }
        }
    }
    out.push('\n');
}

fn targets(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(
        out,
        "The targets are set for 10 M events on a 2-core machine; at other sizes they are indicative.\n"
    );
    let _ = writeln!(out, "| target | measured | met |\n|---|---:|:---:|");
    let ingest = report.median(&headline_ingest_key());
    let mut row = |label: &str, measured: Option<f64>, shown: String, met: fn(f64) -> bool| {
        let verdict = measured.map_or("–", |value| if met(value) { "yes" } else { "no" });
        let _ = writeln!(out, "| {label} | {shown} | {verdict} |");
    };
    row(
        "durable ingest, batches of 500 ≥ 150,000 events/s",
        ingest,
        format_number(ingest),
        |v| v >= 150_000.0,
    );
    let versus_clickhouse = report.ratio(&keys::ratio("ingest_per_sec", "clickhouse"));
    row(
        "durable ingest ≥ 0.5 × ClickHouse's JSONEachRow insert rate",
        versus_clickhouse,
        format_ratio(versus_clickhouse),
        |v| v >= 0.5,
    );
    let journey = report.median(&keys::query("journey", keys::TRACKLOG_HTTP, "p99_ms"));
    row(
        "journey p99 over HTTP ≤ 3 ms",
        journey,
        format!("{} ms", format_number(journey)),
        |v| v <= 3.0,
    );
    let bytes = report.ratio(&keys::ratio("bytes_per_event", "clickhouse"));
    row(
        "bytes per event ≤ 4 × ClickHouse's",
        bytes,
        format_ratio(bytes),
        |v| v <= 4.0,
    );
    out.push('\n');
}

fn ingest(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## Tracklog ingest over HTTP\n");
    let _ = writeln!(
        out,
        "| durability | batch | events sent | events/s acknowledged | ack p50, ms | ack p99, ms | materialiser lag p50, ms | lag p99, ms | all applied after the last ack, ms | events/s applied |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for durability in ["fsync", "os"] {
        for batch in &report.settings.batches {
            let figure = |field: &str| {
                format_number(report.median(&keys::ingest(durability, *batch, field)))
            };
            let _ = writeln!(
                out,
                "| {durability} | {batch} | {} | {} | {} | {} | {} | {} | {} | {} |",
                figure("events"),
                figure("events_per_sec"),
                figure("ack_p50_ms"),
                figure("ack_p99_ms"),
                figure("lag_p50_ms"),
                figure("lag_p99_ms"),
                figure("settled_ms"),
                figure("applied_events_per_sec"),
            );
        }
    }
    let _ = writeln!(
        out,
        "\nBatches smaller than 500 send at most the first {} events and stop after {} s, so that the run stays short; their rate is over the events sent. A 2xx means the events are fdatasynced in the log (with `fsync`); the materialiser lag is sampled every 20 ms during the load (the age of the oldest acknowledged event not yet in the tables), and \"events/s applied\" counts until the last one is.\n",
        format_number(Some(report.settings.small_batch_max_events as f64)),
        report.settings.run_budget_seconds
    );
    tenths(out, report);
}

/// The full run's rate over its first and last tenth of events.
fn tenths(out: &mut String, report: &Report) {
    let batch = full_batch(&report.settings);
    let tenth = |field: &str| report.median(&keys::ingest("fsync", batch, field));
    let batches = (report.dataset.events / 10).div_ceil(batch);
    let per_client = batches as f64 / report.settings.clients.max(1) as f64;
    let _ = writeln!(
        out,
        "Over the durable run with batches of {batch}, which sends the whole dataset: the rate while the first 10 % of the events were acknowledged, and over the last 10 % (from the moment 90 % were acknowledged to the end of the run). A ratio near 1 means ingest stays flat as the tables grow. Each tenth holds {} batches, {per_client:.1} per client; with only a few per client, the first tenth mostly shows the server starting up and the last the acknowledgements of the final group commits, not the tables' growth.\n",
        format_number(Some(batches as f64)),
    );
    let (first, last) = (
        tenth("first_tenth_events_per_sec"),
        tenth("last_tenth_events_per_sec"),
    );
    if first.is_none() || last.is_none() {
        let _ = writeln!(
            out,
            "The run was too short for these rates: the acknowledgement that reached 90 % of the events was the last.\n"
        );
        return;
    }
    let _ = writeln!(
        out,
        "| first 10 %, events/s | last 10 %, events/s | last ÷ first |\n|---:|---:|---:|\n| {} | {} | {} |\n",
        format_number(first),
        format_number(last),
        format_ratio(report.ratio(keys::INGEST_LAST_OVER_FIRST_TENTH)),
    );
}

/// Each peer's loads beside Tracklog's durable ingest.
fn peer_loads(out: &mut String, report: &Report) {
    let peers = peers(report);
    if peers.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Peer loads\n");
    let _ = writeln!(
        out,
        "| peer | how | rows | seconds | rows/s | retries after \"Too many parts\" | inserts delayed by the server | Tracklog's durable ingest ÷ this |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for peer in peers {
        let key = peer.key();
        let bulk = match peer {
            PeerKind::ClickHouse => "bulk load: `JSONEachRow`, 50,000 rows per INSERT, 2 in flight",
            _ => "bulk load: one `COPY`",
        };
        let load = |field: &str| format_number(report.median(&keys::peer_load(key, field)));
        let _ = writeln!(
            out,
            "| {} | {bulk} | {} | {} | {} | n/a | n/a | {} |",
            peer.display_name(),
            format_number(Some(report.dataset.events as f64)),
            load("seconds"),
            load("rows_per_sec"),
            format_ratio(report.ratio(&keys::ratio("ingest_per_sec", key))),
        );
        if peer == PeerKind::ClickHouse {
            let small =
                |field: &str| format_number(report.median(&keys::peer_small_inserts(key, field)));
            let _ = writeln!(
                out,
                "| {} | {}-row `INSERT ... FORMAT JSONEachRow` requests from {} clients | {} | {} | {} | {} | {} | {} |",
                peer.display_name(),
                crate::peers::clickhouse::SMALL_INSERT_ROWS,
                report.settings.clients,
                small("rows"),
                small("seconds"),
                small("rows_per_sec"),
                small("retries"),
                small("delayed"),
                format_ratio(report.ratio(&keys::ratio("small_inserts_per_sec", key))),
            );
        }
    }
    out.push('\n');
}

fn queries(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## Queries\n");
    let mut targets = vec![
        (
            keys::TRACKLOG_IN_PROCESS.to_owned(),
            "Tracklog, in-process".to_owned(),
        ),
        (keys::TRACKLOG_HTTP.to_owned(), "Tracklog, HTTP".to_owned()),
    ];
    targets.extend(
        peers(report)
            .into_iter()
            .map(|peer| (peer.key().to_owned(), peer.display_name().to_owned())),
    );
    for (set, description) in &report.query_sets {
        let _ = writeln!(out, "### {set}: {description}\n");
        let _ = writeln!(
            out,
            "| target | queries | rows | p50, ms | p99, ms | max, ms | row counts ≠ in-process |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for (key, name) in &targets {
            let figure = |field: &str| format_number(report.median(&keys::query(set, key, field)));
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                figure("queries"),
                figure("rows"),
                figure("p50_ms"),
                figure("p99_ms"),
                figure("max_ms"),
                figure("mismatches"),
            );
        }
        out.push('\n');
    }
}

fn limits(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## The machine's limits, measured in this run\n");
    let _ = writeln!(
        out,
        "| limit | value | Tracklog's durable ingest ÷ limit |\n|---|---:|---:|"
    );
    let _ = writeln!(
        out,
        "| sequential write, 256 MiB in 1 MiB chunks then fdatasync, MB/s | {} | {} |",
        format_number(report.median(keys::WRITE_MB_PER_SEC)),
        format_ratio(report.ratio(keys::FRACTION_OF_WRITE)),
    );
    let _ = writeln!(
        out,
        "| single-core serde_json parse of the same payloads, events/s | {} | {} |",
        format_number(report.median(keys::PARSE_EVENTS_PER_SEC)),
        format_ratio(report.ratio(keys::FRACTION_OF_PARSE)),
    );
    let _ = writeln!(
        out,
        "\nThe bandwidth fraction counts {} JSON bytes per event (the payloads' average).\n",
        format_number(report.median(keys::JSON_BYTES_PER_EVENT)),
    );
}

fn workload(out: &mut String, report: &Report) {
    let dataset = &report.dataset;
    let _ = writeln!(out, "## Workload `{}`\n", dataset.workload);
    let _ = writeln!(
        out,
        "{} events from {} sessions of {} contacts ({} active; Zipf activity), {:.0}% anonymous; {} knowledge articles with Zipf popularity; {} cases opened after sessions.\n",
        format_number(Some(dataset.events as f64)),
        format_number(Some(dataset.sessions as f64)),
        format_number(Some(dataset.contacts as f64)),
        format_number(Some(dataset.active_contacts as f64)),
        dataset.anonymous_share * 100.0,
        format_number(Some(dataset.articles as f64)),
        format_number(Some(dataset.cases as f64)),
    );
    let mix: Vec<String> = dataset
        .type_mix
        .iter()
        .map(|(name, share)| format!("{name} {:.0}%", share * 100.0))
        .collect();
    let _ = writeln!(out, "Type mix: {}.\n", mix.join(", "));
}

fn notes(out: &mut String, report: &Report) {
    let _ = writeln!(out, "## Notes\n");
    for note in &report.notes {
        let _ = writeln!(out, "- {note}");
    }
    out.push('\n');
}
