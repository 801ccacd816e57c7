//! The channel workload's report: markdown for people, JSON with every
//! figure of every repetition.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::postgres_sql::{POSTGRES_QUERY, POSTGRES_WORK_MEM};
use super::sql::{CLICKHOUSE_QUERY, CLICKHOUSE_TABLES};
use super::{ABSOLUTE_TOLERANCE, ChannelReport, TOLERANCE};
use crate::peers::PeerKind;
use crate::peers::clickhouse::SMALL_INSERT_ROWS;
use crate::report::{format_number, format_ratio};

/// Writes `<date>-channel-<conversations>.md` and `.json` under `out`.
pub fn write(report: &ChannelReport, out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stem = format!("{}-channel-{}", report.date, report.settings.conversations);
    let json = out.join(format!("{stem}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(report)?)?;
    let markdown = out.join(format!("{stem}.md"));
    std::fs::write(&markdown, render(report))?;
    Ok((markdown, json))
}

pub fn render(report: &ChannelReport) -> String {
    let mut out = String::new();
    let s = &report.settings;
    let d = &report.dataset;
    let m = &report.machine;
    let _ = writeln!(
        out,
        "# Tracklog benchmark: channel analytics dashboard, {} conversations, {}\n",
        format_number(Some(s.conversations as f64)),
        report.date
    );
    let _ = writeln!(out, "Command: `{}`\n", report.command_line);
    let _ = writeln!(
        out,
        "Every figure is the median of {} repetition(s). Seed {}, {} concurrent ingest clients, \
         {} timed runs of the dashboard query per target (after one untimed run). \
         Reproduce with `bench/README.md`.\n",
        s.repeat, s.seed, s.clients, s.dashboard_runs
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "- CPU: {} × {}", m.cores, m.cpu);
    let _ = writeln!(out, "- Memory: {:.1} GiB", m.memory_gib);
    let _ = writeln!(out, "- Disk: {}", m.disk);
    let _ = writeln!(out, "- Kernel: {}", m.kernel);
    let _ = writeln!(
        out,
        "- Load average (1, 5, 15 min) at the start: {}; at the end: {}\n",
        report.load_average.0, report.load_average.1
    );

    let _ = writeln!(out, "## Headline: the dashboard query\n");
    let _ = writeln!(
        out,
        "{} metrics (`{}`), 30 days, 1 h intervals, UTC, grouped by queue. Tracklog answers \
         from its pre-aggregates (the hourly rollup by queue) over HTTP \
         (`POST /api/v1/metrics/query`, timed to the last byte of the JSON answer); the peers \
         compute the same metrics from the raw events with one SQL query each (timed to the \
         last row).\n",
        super::sql::METRICS.len(),
        super::sql::METRICS.join("`, `")
    );
    let _ = write!(out, "| figure | Tracklog |");
    for peer in &s.peers {
        let _ = write!(
            out,
            " {} | Tracklog ÷ {} |",
            peer.display_name(),
            peer.display_name()
        );
    }
    let _ = write!(out, "\n|---|---:|");
    for _ in &s.peers {
        out.push_str("---:|---:|");
    }
    out.push('\n');
    for (field, label) in [
        ("p50_ms", "dashboard p50, ms"),
        ("p99_ms", "dashboard p99, ms"),
        ("max_ms", "dashboard max, ms"),
    ] {
        let _ = write!(
            out,
            "| {label} — lower is better | {} |",
            format_number(report.median(&format!("tracklog.dashboard.{field}")))
        );
        for peer in &s.peers {
            let key = peer.key();
            let _ = write!(
                out,
                " {} | {} |",
                format_number(report.median(&format!("{key}.dashboard.{field}"))),
                format_ratio(report.median(&format!("ratio.{key}.dashboard.{field}")))
            );
        }
        out.push('\n');
    }
    headline_ingest(&mut out, report);
    out.push('\n');
    let _ = writeln!(
        out,
        "Tracklog in-process (the service the API calls: the store's pre-aggregates and the fold \
         into intervals, without HTTP and JSON): p50 {} ms, p99 {} ms.\n",
        format_number(report.median("tracklog_in_process.dashboard.p50_ms")),
        format_number(report.median("tracklog_in_process.dashboard.p99_ms"))
    );

    let _ = writeln!(out, "## Agreement\n");
    let _ = writeln!(
        out,
        "Each peer's cells (metric × queue × hour with a value; zero counts and empty ratios \
         left out) against Tracklog's. A cell disagrees when the values differ by more than \
         {TOLERANCE:e} relative and {ABSOLUTE_TOLERANCE:e} absolute, or when only one side \
         has it.\n"
    );
    let _ = writeln!(
        out,
        "| repetition | peer | Tracklog cells | peer cells | differing | only in Tracklog | only in peer | max relative difference |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|");
    for (index, repetition) in report.repetitions.iter().enumerate() {
        for peer in &repetition.peers {
            let a = &peer.agreement;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {:.1e} |",
                index + 1,
                peer.peer.display_name(),
                a.tracklog_cells,
                a.peer_cells,
                a.differing,
                a.only_in_tracklog,
                a.only_in_peer,
                a.max_relative_difference
            );
        }
    }
    out.push('\n');
    for (index, repetition) in report.repetitions.iter().enumerate() {
        for peer in &repetition.peers {
            let a = &peer.agreement;
            if a.disagreements() == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "Repetition {}, {}: disagreements by metric {:?}; first ones:\n",
                index + 1,
                peer.peer.display_name(),
                a.by_metric
            );
            for example in &a.examples {
                let _ = writeln!(out, "- {example}");
            }
            out.push('\n');
        }
    }

    let _ = writeln!(out, "## Ingest\n");
    let _ = writeln!(
        out,
        "Tracklog: the real server in-process on loopback, durability `fsync`; {} clients post \
         `/api/v1/channel/init` (200 conversations a request), then `/api/v1/channel/events` \
         (every event of 50 sessions a request, then the agents' sign-ins and outs). Each \
         request is acknowledged once its items are admitted and appended to the write-ahead \
         log with fdatasync; the channel materialiser updates the sessions' facts and \
         15-minute pre-aggregates behind it. Peers: bulk loads of the raw rows (ClickHouse `JSONEachRow` over HTTP, then \
         `OPTIMIZE ... FINAL`; PostgreSQL `COPY`, then an index and `ANALYZE`).\n",
        s.clients
    );
    let _ = writeln!(out, "| figure | median |");
    let _ = writeln!(out, "|---|---:|");
    for (key, label) in [
        (
            "tracklog.ingest.init_conversations_per_sec",
            "Tracklog init, conversations/s",
        ),
        (
            "tracklog.ingest.events_per_sec",
            "Tracklog KPI events, events/s",
        ),
        (
            "tracklog.ingest.total_seconds",
            "Tracklog ingest, total seconds",
        ),
        (
            "tracklog.ingest.rows_per_sec",
            "Tracklog ingest, rows/s as the peers count them (a conversation and its session for each init, one row for each KPI event)",
        ),
        (
            "tracklog.ingest.init_ack_p50_ms",
            "Tracklog init acknowledgement p50, ms",
        ),
        (
            "tracklog.ingest.init_ack_p99_ms",
            "Tracklog init acknowledgement p99, ms",
        ),
        (
            "tracklog.ingest.events_ack_p50_ms",
            "Tracklog KPI events acknowledgement p50, ms",
        ),
        (
            "tracklog.ingest.events_ack_p99_ms",
            "Tracklog KPI events acknowledgement p99, ms",
        ),
        (
            "tracklog.ingest.ack_p99_ms",
            "Tracklog acknowledgement p99 over every request, ms",
        ),
        (
            "tracklog.ingest.lag_p50_ms",
            "Tracklog materialiser lag p50, ms",
        ),
        (
            "tracklog.ingest.lag_p99_ms",
            "Tracklog materialiser lag p99, ms",
        ),
        (
            "tracklog.ingest.lag_max_ms",
            "Tracklog materialiser lag max, ms",
        ),
        (
            "tracklog.ingest.settled_ms",
            "Tracklog: everything applied after the last acknowledgement, ms",
        ),
        (
            "tracklog.ingest.applied_events_per_sec",
            "Tracklog KPI events applied, events/s",
        ),
        (
            "tracklog.disk_bytes_per_event",
            "Tracklog bytes on disk per KPI event (records, facts and pre-aggregates)",
        ),
    ] {
        let _ = writeln!(out, "| {label} | {} |", format_number(report.median(key)));
    }
    for peer in &s.peers {
        let key = peer.key();
        let name = peer.display_name();
        let _ = writeln!(
            out,
            "| {name} bulk load, rows/s | {} |",
            format_number(report.median(&format!("{key}.load.rows_per_sec")))
        );
        let _ = writeln!(
            out,
            "| {name} bulk load, seconds | {} |",
            format_number(report.median(&format!("{key}.load.seconds")))
        );
        if *peer == PeerKind::ClickHouse {
            for (field, label) in [
                ("rows_per_sec", "rows/s"),
                ("seconds", "seconds"),
                ("retries", "retries after \"Too many parts\""),
                ("delayed", "inserts delayed by the server"),
            ] {
                let _ = writeln!(
                    out,
                    "| {name} {SMALL_INSERT_ROWS}-row inserts from {} clients, {label} | {} |",
                    s.clients,
                    format_number(report.median(&format!("{key}.small_inserts.{field}")))
                );
            }
        }
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "The materialiser lag is sampled every 20 ms during both phases (the age of the oldest acknowledged item not yet in the tables); the dashboard and the bytes on disk are measured once everything acknowledged is applied (the bytes after the WAL is checkpointed into the database and truncated), and \"KPI events applied\" counts the events phase and that wait. ClickHouse's {SMALL_INSERT_ROWS}-row inserts come after its bulk load has been queried: the tables are recreated and every row inserted again as an application without Tracklog would, `INSERT ... FORMAT JSONEachRow` requests of {SMALL_INSERT_ROWS} rows from {} concurrent clients, one table after the other; an insert refused with \"Too many parts\" (code 252) is sent again after 100 ms and counted as a retry.\n",
        s.clients
    );
    limits(&mut out, report);

    let _ = writeln!(out, "## Every repetition\n");
    let _ = writeln!(
        out,
        "| repetition | target | runs | p50 ms | p99 ms | max ms | mean ms | cells |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|");
    for (index, r) in report.repetitions.iter().enumerate() {
        let q = &r.tracklog_query;
        let q2 = &r.tracklog_in_process;
        let _ = writeln!(
            out,
            "| {} | Tracklog (in-process) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            index + 1,
            q2.runs,
            q2.p50_ms,
            q2.p99_ms,
            q2.max_ms,
            q2.mean_ms,
            q2.cells
        );
        let _ = writeln!(
            out,
            "| {} | Tracklog (HTTP) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            index + 1,
            q.runs,
            q.p50_ms,
            q.p99_ms,
            q.max_ms,
            q.mean_ms,
            q.cells
        );
        for p in &r.peers {
            let q = &p.query;
            let _ = writeln!(
                out,
                "| {} | {} {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                index + 1,
                p.peer.display_name(),
                p.version,
                q.runs,
                q.p50_ms,
                q.p99_ms,
                q.max_ms,
                q.mean_ms,
                q.cells
            );
        }
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "| repetition | KPI events | inits/s | events/s | requests | retries | duplicates | ack p50 ms | ack p99 ms | events ack p50 ms | events ack p99 ms | lag p50 ms | lag p99 ms | applied after the last ack, ms |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (index, r) in report.repetitions.iter().enumerate() {
        let i = &r.ingest;
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} |",
            index + 1,
            i.kpi_events,
            i.init_conversations_per_sec,
            i.events_per_sec,
            i.requests,
            i.retries,
            i.duplicates,
            i.ack_p50_ms,
            i.ack_p99_ms,
            i.events_ack_p50_ms,
            i.events_ack_p99_ms,
            i.lag.p50_ms,
            i.lag.p99_ms,
            i.lag.settled_ms
        );
    }
    out.push('\n');

    let _ = writeln!(out, "## The workload\n");
    let _ = writeln!(
        out,
        "{} conversations, each with one session, over {} days from 2026-03-02 (a Monday): \
         {} queues, {} channels ({}), {} providers, {} agents. Volume follows the hour of day \
         (a double hump around 10:00 and 14:00 UTC) and the day of the week (weekends at a \
         third to a half). {} KPI events on sessions ({:.1} a conversation) and {} agent \
         sign-ins and outs. {} answered, {} abandoned ({} of them short, within 5 s), {} \
         transferred, {} with holds, {} CSAT scores, {} with two to five sentiment readings \
         (voice and chat), {} notifications displayed.\n",
        format_number(Some(d.conversations as f64)),
        d.days,
        d.queues,
        d.channels,
        d.by_channel
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        d.providers,
        d.agents,
        d.session_events,
        d.events_per_conversation,
        d.presence_events,
        d.answered,
        d.abandoned,
        d.short_abandons,
        d.transferred,
        d.with_holds,
        d.csat_submitted,
        d.with_sentiment,
        d.notifications_displayed,
    );
    let _ = writeln!(
        out,
        "The data is well formed the way a provider's usually is: hold starts and ends \
         alternate (the last hold of about 3 % of sessions with holds never ends, and ends at \
         closed), an agent is notified at most once per session, and no event is sent twice. \
         So the peers' pairing by order (k-th start with k-th end, per participant for \
         notifications) is exactly Tracklog's pairing here; with overlapping or duplicated \
         events the peers' SQL would need Tracklog's rules spelt out (ignore a second start \
         while one is open, de-duplicate by event identity, pair a response with the latest \
         open display).\n"
    );
    let _ = writeln!(out, "## The request and the peers' SQL\n");
    let _ = writeln!(
        out,
        "```json\n{}\n```\n",
        serde_json::to_string_pretty(&report.query).unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "### ClickHouse\n\n```sql\n{};\n\n{}\n```\n",
        CLICKHOUSE_TABLES.join(";\n"),
        CLICKHOUSE_QUERY.trim()
    );
    let _ = writeln!(
        out,
        "### PostgreSQL\n\nThe session runs `{POSTGRES_WORK_MEM}` first.\n\n```sql\n{}\n```\n",
        POSTGRES_QUERY.trim()
    );
    out
}

/// The headline rows of ingest: Tracklog's rows/s beside each peer's bulk
/// load, and beside ClickHouse's 500-row inserts.
fn headline_ingest(out: &mut String, report: &ChannelReport) {
    let s = &report.settings;
    let ours = format_number(report.median("tracklog.ingest.rows_per_sec"));
    let _ = write!(
        out,
        "| ingest, rows/s (Tracklog: durable inits and KPI events over HTTP, counted as the peers' rows; peers: bulk load) — higher is better | {ours} |"
    );
    for peer in &s.peers {
        let key = peer.key();
        let _ = write!(
            out,
            " {} | {} |",
            format_number(report.median(&format!("{key}.load.rows_per_sec"))),
            format_ratio(report.median(&format!("ratio.{key}.load.rows_per_sec")))
        );
    }
    out.push('\n');
    let _ = write!(
        out,
        "| ingest, rows/s (Tracklog as above; ClickHouse: the same rows in {SMALL_INSERT_ROWS}-row `INSERT ... FORMAT JSONEachRow` requests from {} clients) — higher is better | {ours} |",
        s.clients
    );
    for peer in &s.peers {
        if *peer == PeerKind::ClickHouse {
            let key = peer.key();
            let _ = write!(
                out,
                " {} | {} |",
                format_number(report.median(&format!("{key}.small_inserts.rows_per_sec"))),
                format_ratio(report.median(&format!("ratio.{key}.small_inserts.rows_per_sec")))
            );
        } else {
            out.push_str(" n/a | n/a |");
        }
    }
    out.push('\n');
}

/// The request items' parse limits, and Tracklog's ingest as a fraction of
/// them.
fn limits(out: &mut String, report: &ChannelReport) {
    let _ = writeln!(out, "## The machine's limits, measured in this run\n");
    let _ = writeln!(
        out,
        "Single-core serde_json parses of the request items into `serde_json::Value`, over the items of the first {} conversations.\n",
        format_number(Some(
            report
                .settings
                .conversations
                .min(crate::machine::PARSE_SAMPLE) as f64
        ))
    );
    let _ = writeln!(
        out,
        "| limit | value | JSON bytes | Tracklog's durable ingest ÷ limit |\n|---|---:|---:|---:|"
    );
    let _ = writeln!(
        out,
        "| `/api/v1/channel/init` items, conversations/s (bytes per item) | {} | {} | {} |",
        format_number(report.median("machine.json_parse_inits_per_sec")),
        format_number(report.median("machine.json_bytes_per_init")),
        format_ratio(report.median("fraction.init_of_json_parse")),
    );
    let _ = writeln!(
        out,
        "| `/api/v1/channel/events` items, KPI events/s (bytes per event) | {} | {} | {} |\n",
        format_number(report.median("machine.json_parse_events_per_sec")),
        format_number(report.median("machine.json_bytes_per_event")),
        format_ratio(report.median("fraction.events_of_json_parse")),
    );
}
