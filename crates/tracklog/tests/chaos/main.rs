//! SIGKILL at random moments while all three pillars ingest: portal
//! interactions, activity-log records, and channel inits and KPI events.
//! After each restart:
//! - every acknowledged interaction, record, session and event is stored
//!   exactly once;
//! - every journey summary (kept behind the log) equals the contact's
//!   stored timeline;
//! - the dashboard's figures (kept behind the log) equal those of a
//!   rebuild from the raw events.
//!
//! At the end the activity log verifies, and every derived channel table
//! equals, cell by cell, what `tracklog analytics rebuild` makes on a copy.
//!
//! The same load also meets the faults of a bad day:
//! - [`fsync`]: fdatasync fails; nothing is acknowledged until the server
//!   has recovered by itself;
//! - [`diskfull`]: the disk fills; writes are refused, reads served, and
//!   writes resume once space is freed;
//! - [`diskfull_files`]: a full disk under the checkpoint file, an export
//!   and an import; each fails whole and catches up once space is freed;
//! - [`slowdisk`]: every fdatasync is delayed; the queue fills, the excess
//!   is refused, reads are served;
//! - [`powercut`]: the filesystem stops where its last sync left it; every
//!   acknowledged item survives, and a negative control under `eatmydata`
//!   shows that the test sees the loss when fsync is disabled;
//! - [`overload`]: twice the sustainable ingest rate; every answer is a
//!   2xx or a 503 with Retry-After, memory stays under the README's bound,
//!   reads are served and nothing acknowledged is lost (`scripts/overload`
//!   runs 10 minutes; [`soak`], run by `scripts/soak`, an hour at 70 % of
//!   the rate).
//!
//! `CHAOS_KILLS` sets how many kills (10 by default, the CI size);
//! `scripts/chaos` runs 100. `CHAOS_SEED` replays a run.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod channel;
mod diskfull;
mod diskfull_files;
mod fsync;
mod load;
mod overload;
mod portal;
mod powercut;
mod slowdisk;
mod soak;
mod tables;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Server, create_policy, tracklog};
use portal::CONTACTS;

/// xorshift64: the test's only randomness, from a seed it prints.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_items_of_every_pillar_survive_repeated_kill_9_exactly_once() {
    let kills: usize = std::env::var("CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos: {kills} kills, CHAOS_SEED={seed}");
    let mut random = Random(seed);
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = create_policy(dir.path(), "app", "write,read,manage");
    let http = reqwest::Client::new();

    let mut interactions: HashMap<usize, Vec<String>> = HashMap::new();
    let mut records: HashMap<usize, Vec<String>> = HashMap::new();
    let (mut sessions, mut events) = (0, 0);
    let started = Instant::now();
    let mut server = Some(Server::start(dir.path()));
    for round in 0..kills {
        let running = server.take().unwrap_or_else(|| Server::start(dir.path()));
        let contacts: Vec<usize> = (round * CONTACTS..(round + 1) * CONTACTS).collect();
        portal::add_cases(&http, &running, &key, &contacts).await;
        let cutoff = load::Cutoff::default();
        let (base, k) = (running.base.clone(), key.clone());
        let portal = tokio::spawn(portal::send(base.clone(), k.clone(), round, cutoff.clone()));
        let audit = tokio::spawn(audit::send(base.clone(), k.clone(), round, cutoff.clone()));
        let channel = tokio::spawn(channel::send(base, k, round, cutoff.clone()));
        // A random moment: somewhere in the first 1.2 s of load.
        tokio::time::sleep(Duration::from_millis(100 + random.next() % 1100)).await;
        running.kill_hard();
        cutoff.set();
        // The server sent every 200 read after the kill before it died:
        // those count too.
        let (acknowledged, late) = portal.await.unwrap();
        for (contact, id) in acknowledged.into_iter().chain(late) {
            interactions.entry(contact).or_default().push(id);
        }
        let (acknowledged, late) = audit.await.unwrap();
        records.insert(round, acknowledged.into_iter().chain(late).collect());
        let (mut channel, late) = channel.await.unwrap();
        channel.sessions.extend(late);
        sessions += channel.sessions.len();
        events += channel.events.values().sum::<usize>();

        let restarted = Server::start(dir.path());
        portal::check(&http, &restarted, &key, &interactions, &contacts, round).await;
        audit::check(&http, &restarted, &key, &records, round..round + 1, round).await;
        channel::check(&http, &restarted, &key, &channel, round).await;
        channel::check_rollups(&http, &restarted, &key, round).await;
        server = Some(restarted);
    }
    // Every earlier round again, after every later kill and replay.
    let last = server.take().unwrap();
    let everyone: Vec<usize> = (0..kills * CONTACTS).collect();
    portal::check(&http, &last, &key, &interactions, &everyone, kills).await;
    audit::check(&http, &last, &key, &records, 0..kills, kills).await;
    let total: usize = interactions.values().map(Vec::len).sum();
    let audited: usize = records.values().map(Vec::len).sum();
    assert!(
        total >= kills * 100 && audited >= kills * 20 && sessions >= kills,
        "too few writes before the kills: {total} interactions, {audited} records, {sessions} sessions"
    );
    assert!(last.terminate().success());
    let output = tracklog(dir.path(), &["audit", "verify"]);
    assert!(
        output.status.success(),
        "audit verify after {kills} kills: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let cells = tables::equal_to_a_rebuild(dir.path());
    eprintln!(
        "chaos: {kills} kills in {:.1} s; acknowledged and found once: {total} interactions, \
         {audited} audit records, {sessions} sessions with {events} KPI events; \
         {cells} derived cells equal to a rebuild",
        started.elapsed().as_secs_f64()
    );
}
