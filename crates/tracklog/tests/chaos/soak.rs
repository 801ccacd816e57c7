//! Soak: portal interactions at 70 % of the sustainable rate (measured
//! first, as in [`super::overload`]) for an hour, `SOAK_SECS` seconds, with
//! the same steady reader. Ignored by `cargo test`: `scripts/soak
//! [SECONDS]` runs it in release.
//!
//! Every minute it prints the server's resident memory (and its anonymous
//! part: the rest is SQLite's memory-mapped database pages), the sizes of
//! `tracklog.db`, its WAL and the log directory, the acknowledgement
//! latency (p50, p99), the read latency (p99) and the refusals; at the end,
//! the drift of each from the first minute to the last. It fails on an
//! answer other than a 2xx or a 503 with Retry-After, when the server does
//! not keep pace or reads are not served, when its anonymous memory goes
//! over [`RSS_BOUND_MIB`], and unless the interactions table then holds
//! exactly as many rows as were acknowledged (an hour's are too many to
//! read back one by one, as the overload test does).

use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::overload::{
    BATCH, CONTACTS, MAX_IN_FLIGHT, READS_SERVED, RSS_BOUND_MIB, Shared, Tally, Target,
    assert_answered, offer, quantile_ms, read, sample_rss, seconds_from_env, start, status_kib,
    sustainable_rate,
};

/// The share of the sustainable rate offered.
const SHARE: f64 = 0.7;

/// One minute's figures.
struct Minute {
    rss_mib: f64,
    anon_mib: f64,
    db_mib: f64,
    wal_mib: f64,
    log_mib: f64,
    acked_per_second: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    read_p99_ms: f64,
    refused: u64,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// The figures since the last call, whose counts of acknowledged and
/// refused batches were `before`: the latencies are taken out of the
/// tallies, and the sizes read now.
fn minute(
    pid: u32,
    data: &Path,
    seconds: f64,
    (ingest, reads): (&Shared, &Shared),
    before: &mut (u64, u64),
) -> Minute {
    let (ok, refused, mut acks) = {
        let mut tally = ingest.lock().unwrap();
        let latencies = std::mem::take(&mut tally.latencies);
        (tally.ok, tally.overloaded, latencies)
    };
    let mut read = std::mem::take(&mut reads.lock().unwrap().latencies);
    let figures = Minute {
        rss_mib: status_kib(pid, "VmRSS") as f64 / 1024.0,
        anon_mib: status_kib(pid, "RssAnon") as f64 / 1024.0,
        db_mib: mib(file_bytes(&data.join("tracklog.db"))),
        wal_mib: mib(file_bytes(&data.join("tracklog.db-wal"))),
        log_mib: mib(dir_bytes(&data.join("log"))),
        acked_per_second: ((ok - before.0) as usize * BATCH) as f64 / seconds,
        ack_p50_ms: quantile_ms(&mut acks, 0.5),
        ack_p99_ms: quantile_ms(&mut acks, 0.99),
        read_p99_ms: quantile_ms(&mut read, 0.99),
        refused: refused - before.1,
    };
    *before = (ok, refused);
    figures
}

fn print(label: &str, m: &Minute) {
    eprintln!(
        "soak {label}: RSS {:.0} MiB ({:.0} anonymous); tracklog.db {:.1} MiB, WAL {:.1} MiB, log {:.1} MiB; \
         {:.0} acknowledged/s, ack p50 {:.1} ms, p99 {:.1} ms, {} refused; read p99 {:.1} ms",
        m.rss_mib,
        m.anon_mib,
        m.db_mib,
        m.wal_mib,
        m.log_mib,
        m.acked_per_second,
        m.ack_p50_ms,
        m.ack_p99_ms,
        m.refused,
        m.read_p99_ms
    );
}

fn drift(name: &str, first: f64, last: f64, unit: &str) -> String {
    format!(
        "{name} {first:.1} → {last:.1} {unit} ({:+.0} %)",
        (last / first - 1.0) * 100.0
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "an hour long: scripts/soak runs it"]
async fn an_hour_at_the_sustainable_rate_keeps_memory_files_and_latency_flat() {
    let seconds = seconds_from_env("SOAK_SECS", 3600);
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = start(dir.path());
    let pid = server.child.id();
    let target = Target::new(&server, &key, CONTACTS);
    let (measuring, ingest, reads) = (Shared::default(), Shared::default(), Shared::default());
    let rate = SHARE * sustainable_rate(&target, &measuring).await;
    assert!(rate > 0.0, "nothing was acknowledged in 15 s");
    let measured: Tally = std::mem::take(&mut *measuring.lock().unwrap());
    assert_answered("ingest while measuring", &measured);
    eprintln!("soak: {rate:.0} interactions/s ({SHARE} of the sustainable rate) for {seconds} s");

    let stop = Arc::new(AtomicBool::new(false));
    let rss = tokio::spawn(sample_rss(pid, seconds + 600, stop.clone()));
    let started = Instant::now();
    let sender = tokio::spawn(offer(target.clone(), rate, seconds, ingest.clone()));
    let reader = tokio::spawn(read(target.apart(), seconds, reads.clone()));
    let mut minutes = Vec::new();
    let (mut last, mut counts) = (started, (0, 0));
    for n in 1..=seconds.div_ceil(60) {
        let due = started + Duration::from_secs((n * 60).min(seconds));
        tokio::time::sleep_until(due.into()).await;
        let elapsed = last.elapsed().as_secs_f64();
        let figures = minute(pid, dir.path(), elapsed, (&ingest, &reads), &mut counts);
        last = Instant::now();
        let end = (n * 60).min(seconds);
        print(&format!("{}-{end} s", (n - 1) * 60), &figures);
        minutes.push(figures);
    }
    sender.await.unwrap();
    reader.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let peak_mib = status_kib(pid, "VmHWM") / 1024;
    let samples = rss.await.unwrap();
    let anon_mib = samples
        .iter()
        .map(|(_, anon)| anon / 1024)
        .max()
        .unwrap_or(0);

    let (ingest, reads) = (
        std::mem::take(&mut *ingest.lock().unwrap()),
        std::mem::take(&mut *reads.lock().unwrap()),
    );
    let (first, last) = (&minutes[0], &minutes[minutes.len() - 1]);
    eprintln!(
        "soak drift, first minute → last: {}; {}; {}; {}; {}; {}; {}",
        drift("RSS", first.rss_mib, last.rss_mib, "MiB"),
        drift("anonymous", first.anon_mib, last.anon_mib, "MiB"),
        drift("tracklog.db", first.db_mib, last.db_mib, "MiB"),
        drift("WAL", first.wal_mib, last.wal_mib, "MiB"),
        drift("log", first.log_mib, last.log_mib, "MiB"),
        drift("ack p99", first.ack_p99_ms, last.ack_p99_ms, "ms"),
        drift("read p99", first.read_p99_ms, last.read_p99_ms, "ms"),
    );
    assert_answered("ingest", &ingest);
    assert_answered("reads", &reads);
    assert!(
        ingest.skipped * 100 <= ingest.scheduled,
        "the server did not keep pace: {} of {} requests due found {MAX_IN_FLIGHT} unanswered",
        ingest.skipped,
        ingest.scheduled
    );
    assert!(
        reads.ok as f64 >= READS_SERVED * reads.scheduled as f64,
        "{} of {} reads served",
        reads.ok,
        reads.scheduled
    );
    assert!(
        anon_mib < RSS_BOUND_MIB,
        "the server's anonymous memory reached {anon_mib} MiB, over {RSS_BOUND_MIB} MiB"
    );
    // A read waits until what was acknowledged is applied; then the server
    // stops, and the table is counted.
    let settled = target
        .http
        .get(server.url("/api/v1/contacts/chaos-0/interactions?limit=1"))
        .basic_auth("app", Some(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(settled.status(), 200);
    assert!(server.terminate().success());
    let acked = (measured.ok + ingest.ok) as i64 * BATCH as i64;
    let db = rusqlite::Connection::open_with_flags(
        dir.path().join("tracklog.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let stored: i64 = db
        .query_row("SELECT count(*) FROM interactions", [], |row| row.get(0))
        .unwrap();
    assert_eq!(stored, acked, "interactions stored and acknowledged");
    eprintln!(
        "soak: {seconds} s at {rate:.0}/s; {acked} interactions acknowledged and stored; {} \
         refused; peak anonymous memory {anon_mib} MiB (bound {RSS_BOUND_MIB}), VmHWM \
         {peak_mib} MiB",
        ingest.overloaded
    );
}
