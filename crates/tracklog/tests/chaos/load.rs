//! Load on all three pillars at once, and what the fault tests read back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::common::{Server, tracklog};
use super::{audit, channel, portal};

/// What one round of load got acknowledged, by pillar.
pub struct Round {
    pub interactions: Vec<(usize, String)>,
    pub records: Vec<String>,
    pub channel: channel::Acknowledged,
}

/// Runs the three pillars' senders for round `round`; `during` runs while
/// they send, and they stop once it returns (or at their first refusal).
pub async fn load<F: std::future::Future<Output = ()>>(
    server: &Server,
    key: &str,
    round: usize,
    during: F,
) -> Round {
    let stop = Arc::new(AtomicBool::new(false));
    let (base, key) = (server.base.clone(), key.to_owned());
    let portal = tokio::spawn(portal::send(base.clone(), key.clone(), round, stop.clone()));
    let audit = tokio::spawn(audit::send(base.clone(), key.clone(), round, stop.clone()));
    let channel = tokio::spawn(channel::send(base, key, round, stop.clone()));
    during.await;
    stop.store(true, Ordering::Relaxed);
    Round {
        interactions: portal.await.unwrap(),
        records: audit.await.unwrap(),
        channel: channel.await.unwrap(),
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
        let status = http
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "not ready 30 s after {after}");
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
