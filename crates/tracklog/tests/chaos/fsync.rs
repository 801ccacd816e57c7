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

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::common::{Server, create_policy};
use super::load::{
    check_found_once, load, metric, refused_everywhere, verify_and_rebuild, wait_ready,
};
use super::portal;

const FAILPOINT: &str = "posix/io/sync/*";

fn fiu_ctrl(pid: u32, command: &str) {
    let status = Command::new("fiu-ctrl")
        .args(["-c", command, &pid.to_string()])
        .status()
        .expect("fiu-ctrl, from Debian's fiu-utils (scripts/test installs it)");
    assert!(status.success(), "fiu-ctrl -c {command:?} {pid}");
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
    refused_everywhere(&http, &server, &key, "while fsync failed").await;
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
    wait_ready(&http, &server, "the fault cleared").await;
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

    let server = check_found_once(&http, server, dir.path(), &key, &[&before, &after]).await;
    assert!(server.terminate().success());
    for fifo in ["in", "out"] {
        let _ = std::fs::remove_file(format!("/tmp/fiu-ctrl-{pid}.{fifo}"));
    }
    let cells = verify_and_rebuild(dir.path(), "the fault");
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
