//! The audit workload's report: every figure of every repetition, their
//! medians, Tracklog ÷ peer ratios, and a markdown rendering in the shape
//! of the portal report (command line, machine, headline ratios first).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::keys;
use super::targets::{BATCH, CLIENTS};
use super::{AuditSettings, PAGE, PERIOD_DAYS, USERS, WORDS};
use crate::machine::Machine;
use crate::peers::PeerKind;
use crate::peers::clickhouse::SMALL_INSERT_ROWS;
use crate::report::{Figures, format_number, format_ratio, medians};
use crate::runner::Peers;

/// The whole report, as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub date: String,
    pub command_line: String,
    pub workload: &'static str,
    pub settings: AuditSettings,
    pub machine: Machine,
    /// Each peer's server version.
    pub peer_versions: Vec<(PeerKind, String)>,
    pub medians: Figures,
    pub ratios: Figures,
    pub repetitions: Vec<Figures>,
    pub notes: Vec<String>,
}

/// The figures compared between Tracklog and each peer: (figure name
/// without the target, how it is named in the report, higher is better).
fn compared() -> Vec<(String, String, bool)> {
    let mut rows = vec![
        (
            keys::load("{}", "records_per_sec"),
            "load, records/s (Tracklog: durable, hash-chained ingest over HTTP; peers: bulk load and index build)".to_owned(),
            true,
        ),
        (
            keys::load("{}", "bytes_per_record"),
            "bytes on disk per record".to_owned(),
            false,
        ),
    ];
    for set in keys::SETS {
        for field in ["p50_ms", "p99_ms", "max_ms"] {
            rows.push((
                keys::query(set, "{}", field),
                format!(
                    "{set} {}, ms (first page and exact count)",
                    field.trim_end_matches("_ms")
                ),
                false,
            ));
        }
    }
    rows.push((
        keys::export("{}", "records_per_sec"),
        "export, records/s (every record, newest first)".to_owned(),
        true,
    ));
    rows
}

fn for_target(template: &str, target: &str) -> String {
    template.replace("{}", target)
}

/// The ratio of Tracklog's load to ClickHouse's 500-row inserts.
fn small_inserts_ratio() -> String {
    keys::ratio(&keys::small_inserts("x", "records_per_sec"), "clickhouse")
}

/// Tracklog ÷ peer for every compared figure, Tracklog's load ÷
/// ClickHouse's 500-row inserts, and Tracklog's load as a fraction of the
/// records' parse limit.
pub fn ratios(medians: &Figures, peers: &[PeerKind]) -> Figures {
    let mut ratios = Figures::new();
    let load = medians.get(&keys::load(keys::TRACKLOG, "records_per_sec"));
    let mut divide = |name: String, theirs: Option<&f64>| {
        if let (Some(ours), Some(theirs)) = (load, theirs)
            && *theirs > 0.0
        {
            ratios.insert(name, ours / theirs);
        }
    };
    divide(
        small_inserts_ratio(),
        medians.get(&keys::small_inserts("clickhouse", "records_per_sec")),
    );
    divide(
        keys::FRACTION_OF_PARSE.into(),
        medians.get(&keys::machine("json_parse_records_per_sec")),
    );
    for peer in peers {
        for (template, _, _) in compared() {
            let ours = medians.get(&for_target(&template, keys::TRACKLOG));
            let theirs = medians.get(&for_target(&template, peer.key()));
            if let (Some(ours), Some(theirs)) = (ours, theirs)
                && *theirs > 0.0
            {
                ratios.insert(
                    keys::ratio(&for_target(&template, "x"), peer.key()),
                    ours / theirs,
                );
            }
        }
    }
    ratios
}

impl AuditReport {
    pub fn new(
        settings: &AuditSettings,
        work_dir: &Path,
        peers: &Peers,
        repetitions: Vec<Figures>,
    ) -> Self {
        let medians = medians(&repetitions);
        let ratios = ratios(&medians, &settings.peers);
        Self {
            date: jiff::Timestamp::now().strftime("%Y-%m-%d").to_string(),
            command_line: crate::command_line(),
            workload: "audit",
            settings: settings.clone(),
            machine: Machine::describe(work_dir),
            peer_versions: peers.versions.clone(),
            medians,
            ratios,
            repetitions,
            notes: notes(settings, &peers.versions),
        }
    }

    /// Writes `<date>-audit-<records>.md` and `.json` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = format!("{}-audit-{}", self.date, self.settings.records);
        let markdown = dir.join(format!("{stem}.md"));
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&markdown, render(self))?;
        std::fs::write(&json, serde_json::to_string_pretty(self)? + "\n")?;
        Ok((markdown, json))
    }

    fn median(&self, name: &str) -> Option<f64> {
        self.medians.get(name).copied()
    }

    /// Mismatches against Tracklog over every peer, query set and export.
    pub fn mismatches(&self) -> f64 {
        self.medians
            .iter()
            .filter(|(name, _)| name.ends_with(".mismatches") || name.ends_with(".mismatch"))
            .map(|(_, value)| value)
            .sum()
    }
}

fn notes(settings: &AuditSettings, versions: &[(PeerKind, String)]) -> Vec<String> {
    let mut notes = vec![
        format!(
            "Tracklog runs in-process with its default configuration (fsync durability) on a fresh data directory; {CLIENTS} concurrent HTTP/1.1 keep-alive clients post JSON arrays of {BATCH} records to `/api/v1/audit/records`. Each record gets its sequence and hash-chain link before the batch is acknowledged; every record must be accepted. Bytes on disk: tracklog.db and its WAL right after the load, once the WAL is checkpointed into the database and truncated (it is scratch space, bounded and reused; PostgreSQL's WAL is not counted either)."
        ),
        format!(
            "Queries run one at a time after the load, on the same {} random cases for every target, each set stopping after 5 minutes on a target (the table gives how many ran). Each asks for the first {PAGE} records newest first (creation time, then sequence) and the exact count of matches: Tracklog in one `GET /api/v1/audit/search` (its answer carries `count`), the peers in two statements timed together. A case whose count or page length differs from Tracklog's is a mismatch.",
            settings.queries
        ),
        "The export streams every record newest first: Tracklog `GET /api/v1/audit/export?format=jsonl` (it also holds the records it wrote about itself, such as the bench policy's creation, so `lines` exceeds the workload's records there), ClickHouse `SELECT record ... FORMAT TabSeparatedRaw` over HTTP, PostgreSQL `COPY (SELECT record ...) TO STDOUT`. Records/s counts lines received by the client; the workload's records are counted in every export and compared.".into(),
        "Verification is Tracklog's alone: `GET /api/v1/audit/verify` over the whole chain (every record re-hashed, every link and signed checkpoint checked) right after the export. The peers keep no equivalent.".into(),
        "Free text matches a word: Tracklog with its FTS5 index over Fields and Query (token match), PostgreSQL with a GIN index over to_tsvector('simple', fields || ' ' || query) (token match), ClickHouse with positionCaseInsensitive over fields and query, a scan (a substring match: ClickHouse 18.16 has no token bloom-filter index). The workload's words are not substrings of one another, so the answers agree. `silver` is every record's old tier, so one word in twelve matches every record.".into(),
    ];
    for (kind, version) in versions {
        notes.push(match kind {
            PeerKind::ClickHouse => format!(
                "ClickHouse {version}: MergeTree partitioned by month and ordered by (org, user, creation_time); loaded over HTTP as JSONEachRow, 50,000 rows per INSERT, 2 in flight; queried through the clickhouse crate (RowBinary); the export may spill its sort to disk past 2 GB. After the export, the table is recreated and the same records inserted as an application without Tracklog would: `INSERT INTO audit FORMAT JSONEachRow` requests of {SMALL_INSERT_ROWS} records from {} concurrent clients; an insert refused with \"Too many parts\" (code 252) is sent again after 100 ms and counted as a retry.",
                settings.clients
            ),
            PeerKind::Postgres => format!(
                "PostgreSQL {version}: one COPY FROM STDIN in text format, then a primary key (org_id, seq), a unique index on (org_id, id), indexes on (org_id, creation_time, seq), (org_id, user_name, creation_time), (org_id, entity_name, creation_time), (org_id, operation, creation_time) and the GIN text index, built with maintenance_work_mem 1 GB, then ANALYZE, all inside the load time; shared_buffers 1 GB, fsync and synchronous_commit on; prepared statements through tokio-postgres."
            ),
            PeerKind::None => continue,
        });
    }
    if versions.is_empty() {
        notes.push("No peers ran.".into());
    }
    notes
}

fn targets(report: &AuditReport) -> Vec<(&'static str, &'static str)> {
    let mut targets = vec![(keys::TRACKLOG, "Tracklog")];
    for peer in &report.settings.peers {
        if *peer != PeerKind::None {
            targets.push((peer.key(), peer.display_name()));
        }
    }
    targets
}

/// Renders the whole report.
pub fn render(report: &AuditReport) -> String {
    let mut out = String::new();
    let settings = &report.settings;
    let machine = &report.machine;
    let _ = writeln!(
        out,
        "# Tracklog activity-log benchmark: {} records, {}\n",
        format_number(Some(settings.records as f64)),
        report.date
    );
    let _ = writeln!(out, "Command: `{}`\n", report.command_line);
    let _ = writeln!(
        out,
        "Every figure is the median of {} repetition(s). Seed {}, {} queries per set. Reproduce with `bench/README.md`.\n",
        settings.repeat, settings.seed, settings.queries
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "- CPU: {} × {}", machine.cores, machine.cpu);
    let _ = writeln!(out, "- Memory: {:.1} GiB", machine.memory_gib);
    let _ = writeln!(out, "- Disk: {}", machine.disk);
    let _ = writeln!(out, "- Kernel: {}\n", machine.kernel);

    let peers: Vec<PeerKind> = settings
        .peers
        .iter()
        .copied()
        .filter(|p| *p != PeerKind::None)
        .collect();
    let _ = writeln!(out, "## Headline: Tracklog ÷ peers\n");
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
    for (template, label, higher) in compared() {
        let better = if higher { "higher" } else { "lower" };
        let _ = write!(
            out,
            "| {label} — {better} is better | {} |",
            format_number(report.median(&for_target(&template, keys::TRACKLOG)))
        );
        for peer in &peers {
            let _ = write!(
                out,
                " {} | {} |",
                format_number(report.median(&for_target(&template, peer.key()))),
                format_ratio(
                    report
                        .ratios
                        .get(&keys::ratio(&for_target(&template, "x"), peer.key()))
                        .copied()
                )
            );
        }
        out.push('\n');
        if template == keys::load("{}", "records_per_sec") {
            small_inserts_row(&mut out, report, &peers);
        }
    }
    let _ = writeln!(
        out,
        "| whole-chain verification, records/s | {} |{}",
        format_number(report.median(&keys::verify("records_per_sec"))),
        " – | – |".repeat(peers.len())
    );
    let _ = writeln!(
        out,
        "\nRow counts that differ from Tracklog's, over every peer, query and export: {}.\n",
        format_number(Some(report.mismatches()))
    );

    let _ = writeln!(out, "## Load\n");
    let _ = writeln!(
        out,
        "| target | records | seconds | records/s | bytes/record |\n|---|---:|---:|---:|---:|"
    );
    for (key, name) in targets(report) {
        let f = |field: &str| format_number(report.median(&keys::load(key, field)));
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            f("records"),
            f("seconds"),
            f("records_per_sec"),
            f("bytes_per_record")
        );
        if key == "clickhouse" {
            let f = |field: &str| format_number(report.median(&keys::small_inserts(key, field)));
            let _ = writeln!(
                out,
                "| {name}, {SMALL_INSERT_ROWS}-row inserts from {} clients | {} | {} | {} | n/a |",
                settings.clients,
                f("records"),
                f("seconds"),
                f("records_per_sec"),
            );
        }
    }
    out.push('\n');
    if peers.contains(&PeerKind::ClickHouse) {
        let f =
            |field: &str| format_number(report.median(&keys::small_inserts("clickhouse", field)));
        let _ = writeln!(
            out,
            "ClickHouse's {SMALL_INSERT_ROWS}-row inserts: {} refused with \"Too many parts\" and sent again after 100 ms, {} delayed by the server while merges caught up.\n",
            f("retries"),
            f("delayed"),
        );
    }
    lag(&mut out, report);
    limits(&mut out, report);

    for (set, description) in [
        (
            "user_30_days",
            "one user's records of the last 30 days of the period",
        ),
        (
            "free_text",
            "records with one word in Fields or Query (any time)",
        ),
    ] {
        let _ = writeln!(out, "## {set}: {description}\n");
        let _ = writeln!(
            out,
            "| target | queries | p50, ms | p99, ms | max, ms | matches counted | page rows | ≠ Tracklog |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (key, name) in targets(report) {
            let f = |field: &str| format_number(report.median(&keys::query(set, key, field)));
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                f("queries"),
                f("p50_ms"),
                f("p99_ms"),
                f("max_ms"),
                f("matches"),
                f("rows"),
                f("mismatches"),
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Export\n");
    let _ = writeln!(
        out,
        "| target | lines | workload records | seconds | records/s | ≠ Tracklog |\n|---|---:|---:|---:|---:|---:|"
    );
    for (key, name) in targets(report) {
        let f = |field: &str| format_number(report.median(&keys::export(key, field)));
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            f("lines"),
            f("records"),
            f("seconds"),
            f("records_per_sec"),
            f("mismatch"),
        );
    }
    out.push('\n');

    let _ = writeln!(out, "## Verification of Tracklog's chain\n");
    let _ = writeln!(
        out,
        "| records checked | seconds | records/s |\n|---:|---:|---:|\n| {} | {} | {} |\n",
        format_number(report.median(&keys::verify("records_checked"))),
        format_number(report.median(&keys::verify("seconds"))),
        format_number(report.median(&keys::verify("records_per_sec"))),
    );

    let _ = writeln!(out, "## Workload `audit`\n");
    let _ = writeln!(
        out,
        "{} records over {PERIOD_DAYS} days from {USERS} users, with uniform operations, entities and times; each record's Fields holds one of {} words. The same seeded records go to every target.\n",
        format_number(Some(settings.records as f64)),
        WORDS.len()
    );
    let _ = writeln!(out, "## Notes\n");
    for note in &report.notes {
        let _ = writeln!(out, "- {note}");
    }
    out.push('\n');
    out
}

/// The headline row of Tracklog's load beside ClickHouse's 500-row inserts.
fn small_inserts_row(out: &mut String, report: &AuditReport, peers: &[PeerKind]) {
    let _ = write!(
        out,
        "| load, records/s (Tracklog as above; ClickHouse: the same records in {SMALL_INSERT_ROWS}-row `INSERT ... FORMAT JSONEachRow` requests from {} clients) — higher is better | {} |",
        report.settings.clients,
        format_number(report.median(&keys::load(keys::TRACKLOG, "records_per_sec")))
    );
    for peer in peers {
        if *peer == PeerKind::ClickHouse {
            let _ = write!(
                out,
                " {} | {} |",
                format_number(report.median(&keys::small_inserts(peer.key(), "records_per_sec"))),
                format_ratio(report.ratios.get(&small_inserts_ratio()).copied())
            );
        } else {
            out.push_str(" n/a | n/a |");
        }
    }
    out.push('\n');
}

/// How far Tracklog's materialisers fell behind during the load.
fn lag(out: &mut String, report: &AuditReport) {
    let f = |field: &str| format_number(report.median(&keys::load(keys::TRACKLOG, field)));
    let _ = writeln!(
        out,
        "Tracklog's materialisers during the load (sampled every 20 ms: the age of the oldest acknowledged record not yet linked, split and indexed), and the rate once everything acknowledged was applied:\n"
    );
    let _ = writeln!(
        out,
        "| lag p50, ms | lag p99, ms | lag max, ms | all applied after the last ack, ms | records/s applied |\n|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} |\n",
        f("lag_p50_ms"),
        f("lag_p99_ms"),
        f("lag_max_ms"),
        f("settled_ms"),
        f("applied_records_per_sec"),
    );
}

/// The records' parse limit, and Tracklog's load as a fraction of it.
fn limits(out: &mut String, report: &AuditReport) {
    let _ = writeln!(out, "## The machine's limit, measured in this run\n");
    let _ = writeln!(
        out,
        "| limit | value | Tracklog's durable load ÷ limit |\n|---|---:|---:|\n| single-core serde_json parse of the records as posted, records/s | {} | {} |\n",
        format_number(report.median(&keys::machine("json_parse_records_per_sec"))),
        format_ratio(report.ratios.get(keys::FRACTION_OF_PARSE).copied()),
    );
    let _ = writeln!(
        out,
        "The parse probe reads the run's first records (at most {}; {} JSON bytes a record on average) into `serde_json::Value` on one thread.\n",
        format_number(Some(crate::machine::PARSE_SAMPLE as f64)),
        format_number(report.median(&keys::machine("json_bytes_per_record"))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_divide_tracklog_by_each_peer() {
        let medians = Figures::from([
            (keys::load(keys::TRACKLOG, "records_per_sec"), 100.0),
            (keys::load("clickhouse", "records_per_sec"), 400.0),
            (keys::query("free_text", keys::TRACKLOG, "p50_ms"), 3.0),
            (keys::query("free_text", "postgres", "p50_ms"), 2.0),
        ]);
        let ratios = ratios(&medians, &[PeerKind::ClickHouse, PeerKind::Postgres]);
        assert_eq!(
            ratios[&keys::ratio("load.x.records_per_sec", "clickhouse")],
            0.25
        );
        assert_eq!(
            ratios[&keys::ratio("query.free_text.x.p50_ms", "postgres")],
            1.5
        );
        assert_eq!(ratios.len(), 2);
    }
}
