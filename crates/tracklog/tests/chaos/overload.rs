//! Overload: portal interactions offered at twice the rate the server
//! sustains. The test first measures that rate itself (closed-loop clients
//! with durable acknowledgements, for 15 s), then offers twice as much
//! open-loop, on a schedule that does not wait for the answers (at most
//! [`MAX_IN_FLIGHT`] requests at once; a request due while that many are
//! unanswered is skipped and counted), for `OVERLOAD_SECS` seconds (120 by
//! default, the CI size; `scripts/overload` runs 600). Meanwhile a reader,
//! on connections of its own, asks for contact timelines at a steady pace,
//! and the server's resident memory is sampled every second. Then:
//! - every answer was a 2xx or a 503 with Retry-After: no other status, no
//!   request left without an answer; both kinds happened;
//! - the server kept answering: at least half its sustainable request
//!   rate, and half its sustainable rate acknowledged;
//! - its anonymous resident memory (RssAnon: the heap, SQLite's page
//!   caches included) stayed under [`RSS_BOUND_MIB`], the bound README.md
//!   states; the peak of all of it (VmHWM) is printed, which adds the
//!   database pages SQLite reads through its memory map;
//! - reads were served (their p50/p99 are printed);
//! - every acknowledged interaction is found once, and none refused is
//!   stored ([`check_stored_once`]).
//!
//! The server runs with a queue of 5,000 items waiting for the log, where
//! the excess meets 503, and at most 8 MiB of log not yet applied, so that a
//! read waits for little ([`SERVER_ENV`]). The printed share of the
//! schedule skipped at the cap is excess the server answered too slowly to
//! be offered: it reads and decodes a request's items before the queue can
//! refuse them, so a refusal costs CPU too.
//! `scripts/soak` drives the same load at 70 % of the rate ([`super::soak`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;

use super::common::{Server, all_ids, create_policy};

/// The server's configuration: at most 5,000 items waiting for the log,
/// then 503 (with the default 200,000, the excess waits in the server
/// instead: none was refused in a debug build at twice the rate); at most
/// 8 MiB of log not yet applied, in segments of 1 MiB.
pub const SERVER_ENV: &[(&str, &str)] = &[
    ("TRACKLOG_INGEST__LOG_SEGMENT_BYTES", "1048576"),
    ("TRACKLOG_INGEST__LOG_MAX_BYTES", "8388608"),
    ("TRACKLOG_INGEST__QUEUE_MAX_ITEMS", "5000"),
];
/// The server's anonymous resident memory stays under this; README.md
/// states it.
pub const RSS_BOUND_MIB: u64 = 512;
/// Interactions per request.
pub const BATCH: usize = 50;
/// Requests of one open-loop sender in flight at once; past this, a
/// scheduled request is skipped (and counted).
pub const MAX_IN_FLIGHT: usize = 256;
/// Closed-loop clients, and how long they measure the sustainable rate
/// (the first [`WARM_UP`] not counted).
const CLIENTS: usize = 16;
const MEASURE: Duration = Duration::from_secs(15);
const WARM_UP: Duration = Duration::from_secs(5);
/// Contacts the interactions are spread over.
pub const CONTACTS: usize = 1000;
/// Reads per second, and the share of them that must be served.
pub const READS_PER_SECOND: f64 = 10.0;
pub const READS_SERVED: f64 = 0.95;
/// How long one request may go unanswered.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What one kind of request got: counts, latencies of the 2xx, and every
/// answer that was neither a 2xx nor a 503 with Retry-After.
#[derive(Default)]
pub struct Tally {
    pub scheduled: u64,
    pub skipped: u64,
    pub ok: u64,
    pub overloaded: u64,
    pub latencies: Vec<Duration>,
    pub failures: Vec<String>,
    /// Ingest only: the acknowledged batches, by number.
    pub acked: Vec<u64>,
}

impl Tally {
    /// Counts one answer: a success with its latency, a 503 with
    /// Retry-After (an empty refusal), or a failure named with `what`.
    /// True for a success.
    fn record(&mut self, answer: Result<(), String>, started: Instant, what: &str) -> bool {
        match answer {
            Ok(()) => {
                self.ok += 1;
                self.latencies.push(started.elapsed());
                true
            }
            Err(refused) if refused.is_empty() => {
                self.overloaded += 1;
                false
            }
            Err(failure) => {
                self.failures.push(format!("{what}{failure}"));
                false
            }
        }
    }
}

pub type Shared = Arc<Mutex<Tally>>;

/// The interactions of batch `batch`, for contacts `chaos-0` to
/// `chaos-{contacts - 1}`: item `i` is `o-{batch}-{i}`, of [`contact`].
fn body(batch: u64, contacts: usize) -> String {
    use std::fmt::Write;
    let mut body = String::with_capacity(BATCH * 320);
    body.push('[');
    for i in 0..BATCH {
        let (c, minute) = (contact(batch, i, contacts), batch + i as u64);
        if i > 0 {
            body.push(',');
        }
        write!(
            body,
            r#"{{"portal_interactionid":"o-{batch}-{i}","type":"portal_viewknowledgearticle","portal_timestamp":"2026-03-01T10:{:02}:00Z","portal_portalid":"support","portal_contactid":"chaos-{c}","session_id":"s-{c}-{}","portal_knowledgearticleid":"KA-{}"}}"#,
            minute % 60,
            minute % 4,
            minute % 5
        )
        .unwrap();
    }
    body.push(']');
    body
}

/// The contact of item `i` of batch `batch`.
pub fn contact(batch: u64, i: usize, contacts: usize) -> usize {
    (batch as usize + i) % contacts
}

/// Where the load goes: the server, its credential, and its contacts.
#[derive(Clone)]
pub struct Target {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
    pub contacts: usize,
    /// The next batch's number, shared by every sender.
    pub next: Arc<AtomicU64>,
}

impl Target {
    pub fn new(server: &Server, key: &str, contacts: usize) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.base.clone(),
            key: key.to_owned(),
            contacts,
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The same target through a client of its own: a reader keeps its
    /// connections apart from the writers'.
    pub fn apart(&self) -> Self {
        Self {
            http: reqwest::Client::new(),
            ..self.clone()
        }
    }

    /// Posts the next batch and tallies the answer.
    async fn post(&self, tally: &Shared) {
        let batch = self.next.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let sent = self
            .http
            .post(format!("{}/api/v1/interactions", self.base))
            .basic_auth("app", Some(&self.key))
            .header("content-type", "application/json")
            .body(body(batch, self.contacts))
            .timeout(TIMEOUT)
            .send()
            .await;
        let answer = match sent {
            Ok(response) if response.status() == 200 => match response.json::<Value>().await {
                Ok(report) if report["accepted"] == BATCH && report["duplicates"] == 0 => Ok(()),
                Ok(report) => Err(format!("batch {batch}: 200 with {report}")),
                Err(error) => Err(format!("batch {batch}: 200, then {error}")),
            },
            other => Err(refusal(other).await),
        };
        let mut tally = tally.lock().unwrap();
        if tally.record(answer, started, "") {
            tally.acked.push(batch);
        }
    }
}

/// An answer other than a 2xx: empty for a 503 with Retry-After, else what
/// went wrong.
async fn refusal(sent: Result<reqwest::Response, reqwest::Error>) -> String {
    match sent {
        Ok(response) if response.status() == 503 => {
            if response.headers().contains_key("retry-after") {
                String::new()
            } else {
                "503 without Retry-After".into()
            }
        }
        Ok(response) => format!(
            "{}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ),
        Err(error) => {
            let mut text = format!("no answer: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

/// Closed-loop clients post batches for [`MEASURE`] (pausing 20 ms after a
/// 503); returns the interactions acknowledged per second after
/// [`WARM_UP`].
pub async fn sustainable_rate(target: &Target, tally: &Shared) -> f64 {
    let started = Instant::now();
    let counted = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (target, tally, counted) = (target.clone(), tally.clone(), counted.clone());
        clients.push(tokio::spawn(async move {
            let mine: Shared = Shared::default();
            for _ in 0..1_000_000 {
                if started.elapsed() >= MEASURE {
                    break;
                }
                let before = mine.lock().unwrap().ok;
                target.post(&mine).await;
                let acknowledged = mine.lock().unwrap().ok > before;
                if acknowledged && started.elapsed() >= WARM_UP && started.elapsed() < MEASURE {
                    counted.fetch_add(BATCH as u64, Ordering::Relaxed);
                } else if !acknowledged {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let mine = std::mem::take(&mut *mine.lock().unwrap());
            let mut tally = tally.lock().unwrap();
            tally.ok += mine.ok;
            tally.overloaded += mine.overloaded;
            tally.acked.extend(mine.acked);
            tally.failures.extend(mine.failures);
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    counted.load(Ordering::Relaxed) as f64 / (MEASURE - WARM_UP).as_secs_f64()
}

/// Runs `request(n)` for n in 0..count, one every `every` on a schedule
/// that does not wait for the answers (a late tick is caught up at once),
/// with at most `cap` in flight; returns how many were skipped at the cap.
pub async fn paced<F, R>(count: u64, every: Duration, cap: usize, request: F) -> u64
where
    F: Fn(u64) -> R,
    R: std::future::Future<Output = ()> + Send + 'static,
{
    let in_flight = Arc::new(Semaphore::new(cap));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut skipped = 0;
    for n in 0..count {
        ticker.tick().await;
        match in_flight.clone().try_acquire_owned() {
            Ok(permit) => {
                let work = request(n);
                tokio::spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
            Err(_) => skipped += 1,
        }
    }
    // Every request ends within its timeout.
    let _ = tokio::time::timeout(TIMEOUT * 2, in_flight.acquire_many(cap as u32)).await;
    skipped
}

/// Offers `rate` interactions per second for `seconds`.
pub async fn offer(target: Target, rate: f64, seconds: u64, tally: Shared) {
    let count = (rate * seconds as f64 / BATCH as f64).ceil() as u64;
    let every = Duration::from_secs_f64(BATCH as f64 / rate);
    let post = {
        let tally = tally.clone();
        move |_| {
            let (target, tally) = (target.clone(), tally.clone());
            async move { target.post(&tally).await }
        }
    };
    let skipped = paced(count, every, MAX_IN_FLIGHT, post).await;
    let mut tally = tally.lock().unwrap();
    tally.scheduled += count;
    tally.skipped += skipped;
}

/// Reads the first page of a contact's timeline, [`READS_PER_SECOND`], for
/// `seconds`; the contacts take turns.
pub async fn read(target: Target, seconds: u64, tally: Shared) {
    let count = (READS_PER_SECOND * seconds as f64).ceil() as u64;
    let every = Duration::from_secs_f64(1.0 / READS_PER_SECOND);
    let get = {
        let tally = tally.clone();
        move |n: u64| {
            let (target, tally) = (target.clone(), tally.clone());
            async move {
                let url = format!(
                    "{}/api/v1/contacts/chaos-{}/interactions?limit=100",
                    target.base,
                    n as usize % target.contacts
                );
                let started = Instant::now();
                let sent = target
                    .http
                    .get(url)
                    .basic_auth("app", Some(&target.key))
                    .timeout(TIMEOUT)
                    .send()
                    .await;
                let answer = match sent {
                    Ok(response) if response.status() == 200 => response
                        .bytes()
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("200, then {e}")),
                    other => Err(refusal(other).await),
                };
                tally.lock().unwrap().record(answer, started, "read: ");
            }
        }
    };
    let skipped = paced(count, every, 32, get).await;
    let mut tally = tally.lock().unwrap();
    tally.scheduled += count;
    tally.skipped += skipped;
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Samples the server's resident memory every second until `stop`, for
/// at most `seconds` seconds: (VmRSS, RssAnon) in KiB.
pub async fn sample_rss(pid: u32, seconds: u64, stop: Arc<AtomicBool>) -> Vec<(u64, u64)> {
    let mut samples = Vec::new();
    for _ in 0..seconds {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        samples.push((status_kib(pid, "VmRSS"), status_kib(pid, "RssAnon")));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    samples
}

/// The `p` quantile (0 to 1) of `latencies`, in milliseconds.
pub fn quantile_ms(latencies: &mut [Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    latencies.sort_unstable();
    let index = ((latencies.len() - 1) as f64 * p).round() as usize;
    latencies[index].as_secs_f64() * 1000.0
}

/// Asserts every answer was a 2xx or a 503 with Retry-After.
pub fn assert_answered(what: &str, tally: &Tally) {
    assert!(
        tally.failures.is_empty(),
        "{what}: {} answers neither 2xx nor 503 with Retry-After, e.g. {:?}",
        tally.failures.len(),
        &tally.failures[..tally.failures.len().min(5)]
    );
}

/// Every interaction of the acknowledged batches is stored once, and none
/// of another batch (refused, or never sent) is; returns how many were
/// found.
pub async fn check_stored_once(server: &Server, target: &Target, acked: &[u64]) -> usize {
    let batches = target.next.load(Ordering::Relaxed) as usize;
    let mut is_acked = vec![false; batches];
    for &batch in acked {
        is_acked[batch as usize] = true;
    }
    let mut seen = vec![false; batches * BATCH];
    let (mut twice, mut refused, mut found) = (Vec::new(), Vec::new(), 0);
    // Four contacts at a time, so that the server's reads and the
    // client's parsing overlap.
    let timeline = |contact: usize| async move {
        if contact < target.contacts {
            all_ids(
                &target.http,
                server,
                &target.key,
                &format!("chaos-{contact}"),
            )
            .await
        } else {
            Vec::new()
        }
    };
    for first in (0..target.contacts).step_by(4) {
        let (a, b, c, d) = tokio::join!(
            timeline(first),
            timeline(first + 1),
            timeline(first + 2),
            timeline(first + 3)
        );
        for id in [a, b, c, d].into_iter().flatten() {
            let parsed = id.strip_prefix("o-").and_then(|rest| {
                let (batch, i) = rest.split_once('-')?;
                Some((batch.parse::<usize>().ok()?, i.parse::<usize>().ok()?))
            });
            let Some((batch, i)) = parsed.filter(|&(b, i)| b < batches && i < BATCH) else {
                panic!("a stored id that was never sent: {id}");
            };
            if seen[batch * BATCH + i] {
                twice.push(id);
            } else if !is_acked[batch] {
                refused.push(id);
            } else {
                seen[batch * BATCH + i] = true;
                found += 1;
            }
        }
    }
    let lost: Vec<String> = acked
        .iter()
        .flat_map(|&b| (0..BATCH).map(move |i| (b as usize, i)))
        .filter(|&(b, i)| !seen[b * BATCH + i])
        .map(|(b, i)| format!("o-{b}-{i}"))
        .collect();
    assert!(
        twice.is_empty(),
        "stored twice: {:?}",
        &twice[..twice.len().min(5)]
    );
    assert!(
        refused.is_empty(),
        "{} interactions of refused batches stored, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(5)]
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged interactions lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    found
}

/// CPU seconds (user and system) a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command's closing parenthesis: utime and stime are the
    // 12th and 13th fields, in clock ticks (100 per second on Linux).
    let ticks: u64 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|t| t.parse::<u64>().unwrap())
        .sum();
    ticks as f64 / 100.0
}

pub fn seconds_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts the server of both tests on `dir`, with a credential.
pub fn start(dir: &Path) -> (Server, String) {
    let (key, _) = create_policy(dir, "app", "write,read,manage");
    (Server::start_with(&[], SERVER_ENV, dir), key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twice_the_sustainable_rate_is_refused_503_while_reads_are_served_and_nothing_acknowledged_is_lost()
 {
    let seconds = seconds_from_env("OVERLOAD_SECS", 120);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = start(dir.path());
    let pid = server.child.id();
    let target = Target::new(&server, &key, CONTACTS);
    let stop = Arc::new(AtomicBool::new(false));
    let rss = tokio::spawn(sample_rss(pid, seconds + 600, stop.clone()));

    let (measuring, ingest, reads) = (Shared::default(), Shared::default(), Shared::default());
    let sustainable = sustainable_rate(&target, &measuring).await;
    let measured = std::mem::take(&mut *measuring.lock().unwrap());
    assert_answered("ingest while measuring", &measured);
    assert!(sustainable > 0.0, "nothing was acknowledged in 15 s");
    let offered = 2.0 * sustainable;
    let (load_started, cpu_before) = (Instant::now(), cpu_seconds(pid));
    tokio::join!(
        offer(target.clone(), offered, seconds, ingest.clone()),
        read(target.apart(), seconds, reads.clone()),
    );
    let elapsed = load_started.elapsed().as_secs_f64();
    let cores = (cpu_seconds(pid) - cpu_before) / elapsed;
    stop.store(true, Ordering::Relaxed);
    let rss = rss.await.unwrap();
    let peak_mib = status_kib(pid, "VmHWM") / 1024;
    let anon_mib = rss.iter().map(|(_, anon)| anon / 1024).max().unwrap_or(0);

    let mut ingest = std::mem::take(&mut *ingest.lock().unwrap());
    let mut reads = std::mem::take(&mut *reads.lock().unwrap());
    assert_answered("ingest", &ingest);
    assert_answered("reads", &reads);
    let answered = ingest.ok + ingest.overloaded;
    let shed = ingest.overloaded as f64 / answered.max(1) as f64;
    let skipped = ingest.skipped as f64 / ingest.scheduled.max(1) as f64;
    let acknowledged = (ingest.ok as usize * BATCH) as f64 / elapsed;
    let figures = format!(
        "sustainable {sustainable:.0}/s, offered {offered:.0}/s for {elapsed:.0} s, {:.1} % of \
         the schedule skipped at {MAX_IN_FLIGHT} in flight; {acknowledged:.0}/s acknowledged \
         (ack p50 {:.0} ms, p99 {:.0} ms), {:.1} % of {answered} answers 503; server CPU \
         {cores:.2} cores, peak anonymous memory {anon_mib} MiB (bound {RSS_BOUND_MIB}), \
         VmHWM {peak_mib} MiB; reads {}/{} served, p50 {:.0} ms, p99 {:.0} ms",
        skipped * 100.0,
        quantile_ms(&mut ingest.latencies, 0.5),
        quantile_ms(&mut ingest.latencies, 0.99),
        shed * 100.0,
        reads.ok,
        reads.scheduled,
        quantile_ms(&mut reads.latencies, 0.5),
        quantile_ms(&mut reads.latencies, 0.99),
    );
    assert!(
        ingest.overloaded > 0 && ingest.ok > 0,
        "not an overload, or nothing acknowledged: {figures}"
    );
    assert!(
        answered as f64 / elapsed >= 0.5 * sustainable / BATCH as f64
            && acknowledged >= 0.5 * sustainable,
        "the server's answers collapsed under the overload: {figures}"
    );
    assert!(
        anon_mib < RSS_BOUND_MIB,
        "anonymous memory over the bound README.md states: {figures}; each \
         second (VmRSS, RssAnon in KiB): {rss:?}"
    );
    assert!(
        reads.ok as f64 >= READS_SERVED * reads.scheduled as f64,
        "reads not served under the overload ({} refused, {} skipped): {figures}",
        reads.overloaded,
        reads.skipped
    );

    let mut acked = measured.acked;
    acked.extend(&ingest.acked);
    let found = check_stored_once(&server, &target, &acked).await;
    assert!(server.terminate().success());
    eprintln!(
        "overload: {figures}; {found} interactions acknowledged and found once; {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
}
