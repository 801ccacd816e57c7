//! fdatasync fails while all three pillars ingest. Debian's fiu-utils runs
//! the server with its POSIX fault injection (`fiu-run -x`), and
//! `fiu-ctrl` makes every `fsync`/`fdatasync` fail with EIO, then stops.
//!
//! While the fault lasts, every write of every pillar (and of the metadata
//! in SQLite) is answered 503 with Retry-After, `/readyz` fails and names
//! the cause, `/metrics` shows it, and reads are served. Once the fault
//! clears, the server re-establishes its files by itself and takes writes
//! again. Every item acknowledged before and after is then found once,
//! before and after a kill -9, the activity log verifies, and the derived
//! channel tables equal a rebuild.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{Server, create_policy, item, tracklog};
use super::{audit, channel, portal, tables};

const FAILPOINT: &str = "posix/io/sync/*";

fn fiu_ctrl(pid: u32, command: &str) {
    let status = Command::new("fiu-ctrl")
        .args(["-c", command, &pid.to_string()])
        .status()
        .expect("fiu-ctrl, from Debian's fiu-utils (scripts/test installs it)");
    assert!(status.success(), "fiu-ctrl -c {command:?} {pid}");
}

/// What one round of load got acknowledged, by pillar.
struct Round {
    interactions: Vec<(usize, String)>,
    records: Vec<String>,
    channel: channel::Acknowledged,
}

/// Runs the three pillars' senders for round `round`; `during` runs while
/// they send, and they stop once it returns (or at their first refusal).
async fn load<F: std::future::Future<Output = ()>>(
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

async fn metric(http: &reqwest::Client, server: &Server, name: &str) -> f64 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_is_never_acknowledged_and_the_server_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = create_policy(dir.path(), "app", "write,read,manage");
    let http = reqwest::Client::new();
    let server = Server::start_under(&["fiu-run", "-x"], dir.path());
    let pid = server.child.id();
    let rounds = [0, 1];
    for round in rounds {
        let contacts: Vec<usize> =
            (round * portal::CONTACTS..(round + 1) * portal::CONTACTS).collect();
        portal::add_cases(&http, &server, &key, &contacts).await;
    }

    // Round 0: the disk fails in the middle of the load.
    let before = load(&server, &key, 0, async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        fiu_ctrl(pid, &format!("enable name={FAILPOINT},failinfo=5"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .await;
    assert!(
        !before.interactions.is_empty() && !before.records.is_empty(),
        "nothing was acknowledged before the fault"
    );

    // While it lasts: every pillar is refused at its first write.
    let refused = load(&server, &key, 2, async {}).await;
    assert!(
        refused.interactions.is_empty()
            && refused.records.is_empty()
            && refused.channel.sessions.is_empty(),
        "a write was acknowledged while fsync failed"
    );
    let response = http
        .post(server.url("/api/v1/interactions"))
        .basic_auth("app", Some(&key))
        .json(&json!([item("during-the-fault", "chaos-0")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    // A metadata write goes to the database, whose flush fails too.
    let response = http
        .post(server.url("/api/v1/cases"))
        .basic_auth("app", Some(&key))
        .json(
            &json!([{"id": "FAULT", "contact_id": "chaos-0", "title": "t",
                       "created_at": "2026-03-01T11:00:00Z"}]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "a case upsert during the fault");
    let response = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("storage fault") && body.contains("Input/output error"),
        "/readyz names the cause: {body}"
    );
    assert_eq!(
        metric(&http, &server, "tracklog_storage_faulted").await,
        1.0
    );
    let response = http
        .get(server.url("/api/v1/policies"))
        .basic_auth("app", Some(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reads are served during the fault");

    // The fault clears: the server recovers without a restart.
    fiu_ctrl(pid, &format!("disable name={FAILPOINT}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = http
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 30 s after the fault cleared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&http, &server, "tracklog_storage_faulted").await,
        0.0
    );
    // The log's fault and the database's, each latched once.
    assert_eq!(
        metric(&http, &server, "tracklog_storage_faults_total").await,
        2.0
    );

    // Round 1: load on the recovered server.
    let after = load(&server, &key, 1, async {
        tokio::time::sleep(Duration::from_millis(600)).await;
    })
    .await;
    assert!(
        !after.interactions.is_empty() && !after.records.is_empty(),
        "nothing was acknowledged after recovery"
    );

    let mut interactions: HashMap<usize, Vec<String>> = HashMap::new();
    let mut records: HashMap<usize, Vec<String>> = HashMap::new();
    for (round, load) in [(0, &before), (1, &after)] {
        for (contact, id) in &load.interactions {
            interactions.entry(*contact).or_default().push(id.clone());
        }
        records.insert(round, load.records.clone());
    }
    let contacts: Vec<usize> = (0..2 * portal::CONTACTS).collect();
    // Checked on the recovered server, then after a kill -9 and a restart
    // without fault injection.
    let mut server = server;
    for pass in 0..2 {
        portal::check(&http, &server, &key, &interactions, &contacts, pass).await;
        audit::check(&http, &server, &key, &records, 0..2, pass).await;
        for (round, load) in [(0, &before), (1, &after)] {
            channel::check(&http, &server, &key, &load.channel, round).await;
        }
        channel::check_rollups(&http, &server, &key, pass).await;
        if pass == 0 {
            server.kill_hard();
            server = Server::start(dir.path());
        }
    }
    assert!(server.terminate().success());
    for fifo in ["in", "out"] {
        let _ = std::fs::remove_file(format!("/tmp/fiu-ctrl-{pid}.{fifo}"));
    }
    let output = tracklog(dir.path(), &["audit", "verify"]);
    assert!(
        output.status.success(),
        "audit verify after the fault: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let cells = tables::equal_to_a_rebuild(dir.path());
    eprintln!(
        "fsync fault: acknowledged and found once: {} + {} interactions, {} + {} audit records, \
         {} + {} sessions, before and after the fault; {cells} derived cells equal to a rebuild",
        before.interactions.len(),
        after.interactions.len(),
        before.records.len(),
        after.records.len(),
        before.channel.sessions.len(),
        after.channel.sessions.len(),
    );
}
