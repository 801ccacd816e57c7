//! Load on all three pillars at once, and what the fault tests read back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::common::{Server, tracklog};
use super::{audit, channel, portal};

/// The moment the senders stop, and from which an answer no longer counts
/// as an acknowledgement. A sender that reads a 200 after the cutoff keeps
/// what it sent apart, as late, instead of acknowledged.
///
/// That matters for the simulated power cut: a real one stops the server
/// with the disk, so no client is told anything after it. `xfs_io shutdown`
/// stops only the filesystem, the server runs on, and a flush that was
/// under way when the journal was aborted can still return success. What
/// is answered after the cut began is therefore not a promise a real
/// server could have made, and the power-cut test sets the cutoff just
/// before it cuts.
#[derive(Clone, Default)]
pub struct Cutoff(Arc<AtomicBool>);

impl Cutoff {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn passed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What one round of load got acknowledged, by pillar, and what was
/// answered only after the cutoff.
pub struct Round {
    pub interactions: Vec<(usize, String)>,
    pub records: Vec<String>,
    pub channel: channel::Acknowledged,
    pub late: Late,
}

/// Items answered with a 200 after the cutoff: not counted as acknowledged.
#[derive(Default)]
pub struct Late {
    pub interactions: Vec<(usize, String)>,
    pub records: Vec<String>,
    pub sessions: Vec<String>,
}

impl Late {
    pub fn len(&self) -> usize {
        self.interactions.len() + self.records.len() + self.sessions.len()
    }
}

/// Runs the three pillars' senders for round `round`; `during` runs while
/// they send, and they stop once it returns (or at their first refusal).
/// Every 200 counts as acknowledged: the server was running when it sent
/// it, whatever the test did since.
pub async fn load<F: std::future::Future<Output = ()>>(
    server: &Server,
    key: &str,
    round: usize,
    during: F,
) -> Round {
    let mut round = load_until(server, key, round, |_| during).await;
    let late = std::mem::take(&mut round.late);
    round.interactions.extend(late.interactions);
    round.records.extend(late.records);
    round.channel.sessions.extend(late.sessions);
    round
}

/// As [`load`], but `during` is given the cutoff, and answers read after
/// it are kept apart in [`Round::late`]; the cutoff is set once `during`
/// returns if it was not before.
pub async fn load_until<F, D>(server: &Server, key: &str, round: usize, during: D) -> Round
where
    F: std::future::Future<Output = ()>,
    D: FnOnce(Cutoff) -> F,
{
    let cutoff = Cutoff::default();
    let (base, key) = (server.base.clone(), key.to_owned());
    let portal = tokio::spawn(portal::send(
        base.clone(),
        key.clone(),
        round,
        cutoff.clone(),
    ));
    let audit = tokio::spawn(audit::send(
        base.clone(),
        key.clone(),
        round,
        cutoff.clone(),
    ));
    let channel = tokio::spawn(channel::send(base, key, round, cutoff.clone()));
    during(cutoff.clone()).await;
    cutoff.set();
    let (interactions, late_interactions) = portal.await.unwrap();
    let (records, late_records) = audit.await.unwrap();
    let (channel, late_sessions) = channel.await.unwrap();
    Round {
        interactions,
        records,
        channel,
        late: Late {
            interactions: late_interactions,
            records: late_records,
            sessions: late_sessions,
        },
    }
}

pub async fn metric(http: &reqwest::Client, server: &Server, name: &str) -> f64 {
    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Every pillar's sender is refused at its first write (round 2 of the
/// contacts, which nothing else uses), and a refused write is a 503 with
/// Retry-After.
pub async fn refused_everywhere(http: &reqwest::Client, server: &Server, key: &str, when: &str) {
    let refused = load(server, key, 2, async {}).await;
    assert!(
        refused.interactions.is_empty()
            && refused.records.is_empty()
            && refused.channel.sessions.is_empty(),
        "a write was acknowledged {when}"
    );
    let response = http
        .post(server.url("/api/v1/interactions"))
        .basic_auth("app", Some(key))
        .json(&serde_json::json!([super::common::item(
            "refused", "chaos-0"
        )]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "{when}");
    assert!(response.headers().contains_key("retry-after"), "{when}");
}

/// Waits (up to 30 s) until `/readyz` answers 200.
pub async fn wait_ready(http: &reqwest::Client, server: &Server, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = http.get(server.url("/readyz")).send().await.unwrap();
        if response.status() == 200 {
            return;
        }
        let why = response.text().await.unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "not ready 30 s after {after}: {why}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every item the rounds (round `i` is `rounds[i]`) got acknowledged is
/// found once, with the dashboard equal to a rebuild: on `server`, then
/// after a kill -9 and a restart without any fault. Returns the restarted
/// server.
pub async fn check_found_once(
    http: &reqwest::Client,
    server: Server,
    data_dir: &Path,
    key: &str,
    rounds: &[&Round],
) -> Server {
    let mut interactions: HashMap<usize, Vec<String>> = HashMap::new();
    let mut records: HashMap<usize, Vec<String>> = HashMap::new();
    for (round, load) in rounds.iter().enumerate() {
        for (contact, id) in &load.interactions {
            interactions.entry(*contact).or_default().push(id.clone());
        }
        records.insert(round, load.records.clone());
    }
    let contacts: Vec<usize> = (0..rounds.len() * portal::CONTACTS).collect();
    let mut server = server;
    for pass in 0..2 {
        portal::check(http, &server, key, &interactions, &contacts, pass).await;
        audit::check(http, &server, key, &records, 0..rounds.len(), pass).await;
        for (round, load) in rounds.iter().enumerate() {
            channel::check(http, &server, key, &load.channel, round).await;
        }
        channel::check_rollups(http, &server, key, pass).await;
        if pass == 0 {
            server.kill_hard();
            server = Server::start(data_dir);
        }
    }
    server
}

/// On the stopped server's data: `tracklog audit verify` passes, and the
/// derived channel tables equal a rebuild. Returns the cells compared.
pub fn verify_and_rebuild(data_dir: &Path, after: &str) -> usize {
    let output = tracklog(data_dir, &["audit", "verify"]);
    assert!(
        output.status.success(),
        "audit verify after {after}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    super::tables::equal_to_a_rebuild(data_dir)
}
