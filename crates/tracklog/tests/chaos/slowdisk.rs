//! A slow disk: `strace` delays every fdatasync of the running server by
//! 300 ms while all three pillars ingest and more clients pile on. The log's
//! queue fills: the excess is answered 503 with Retry-After, reads are
//! served meanwhile, and `/metrics` shows the slow syncs and the refusals.
//! Once strace detaches, the server is ready again, and every acknowledged
//! item is found once, before and after a kill -9.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::{Server, create_policy, item};
use super::load::{check_found_once, load, metric, verify_and_rebuild, wait_ready};
use super::portal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_fills_the_queue_and_the_excess_is_refused_while_reads_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = create_policy(dir.path(), "app", "write,read,manage");
    let server = Server::start_with(
        &[],
        &[("TRACKLOG_INGEST__QUEUE_MAX_ITEMS", "400")],
        dir.path(),
    );
    let http = reqwest::Client::new();
    let contacts: Vec<usize> = (0..2 * portal::CONTACTS).collect();
    portal::add_cases(&http, &server, &key, &contacts).await;

    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync"])
        .args(["-e", "inject=fdatasync:delay_enter=300000", "-p"])
        .arg(server.child.id().to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("strace (scripts/test installs it)");
    // Attached once a sync takes the delay.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut probe = 0;
    while metric(
        &http,
        &server,
        "tracklog_log_sync_seconds_bucket{le=\"0.25\"}",
    )
    .await
        == metric(&http, &server, "tracklog_log_sync_seconds_count").await
    {
        assert!(
            Instant::now() < deadline,
            "strace did not slow the log down"
        );
        let _ = http
            .post(server.url("/api/v1/interactions"))
            .basic_auth("app", Some(&key))
            .json(&serde_json::json!([item(
                &format!("probe-{probe}"),
                "probe"
            )]))
            .send()
            .await;
        probe += 1;
    }

    let (base, probe_key) = (server.base.clone(), key.clone());
    let round = load(&server, &key, 0, async {
        // Twenty more clients at once, 40 items each, on top of the load.
        let mut clients = Vec::new();
        for client in 0..20 {
            let (http, url, key) = (
                http.clone(),
                format!("{base}/api/v1/interactions"),
                probe_key.clone(),
            );
            clients.push(tokio::spawn(async move {
                let items: Vec<Value> = (0..40)
                    .map(|i| item(&format!("pile-{client}-{i}"), "pile"))
                    .collect();
                let response = http
                    .post(url)
                    .basic_auth("app", Some(&key))
                    .json(&items)
                    .send()
                    .await
                    .unwrap();
                (
                    response.status().as_u16(),
                    response.headers().contains_key("retry-after"),
                )
            }));
        }
        // Reads are served while the writes wait for the disk.
        let started = Instant::now();
        let response = http
            .get(server.url("/api/v1/policies"))
            .basic_auth("app", Some(&probe_key))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a read waited {:?} behind the slow disk",
            started.elapsed()
        );
        let mut answers = Vec::new();
        for client in clients {
            answers.push(client.await.unwrap());
        }
        assert!(
            answers
                .iter()
                .any(|(status, retry)| *status == 503 && *retry),
            "no 503 with Retry-After while the queue was full: {answers:?}"
        );
        assert!(
            answers
                .iter()
                .all(|(status, _)| *status == 200 || *status == 503),
            "{answers:?}"
        );
    })
    .await;
    let refused = metric(
        &http,
        &server,
        "tracklog_events_rejected_total{kind=\"interaction\",reason=\"overloaded\"}",
    )
    .await;
    assert!(refused > 0.0, "the refusals are not counted");

    let _ = Command::new("kill").arg(strace.id().to_string()).status();
    let _ = strace.wait();
    wait_ready(&http, &server, "the disk was fast again").await;
    let after = load(&server, &key, 1, async {
        tokio::time::sleep(Duration::from_millis(600)).await;
    })
    .await;
    assert!(
        !after.channel.sessions.is_empty(),
        "no session after the disk was fast again"
    );
    let server = check_found_once(&http, server, dir.path(), &key, &[&round, &after]).await;
    assert!(server.terminate().success());
    let cells = verify_and_rebuild(dir.path(), "a slow disk");
    eprintln!(
        "slow disk: {refused} items refused as overloaded; acknowledged and found once: \
         {} + {} interactions, {} + {} audit records, {} + {} sessions, while the disk was slow \
         and after; {cells} derived cells equal to a rebuild",
        round.interactions.len(),
        after.interactions.len(),
        round.records.len(),
        after.records.len(),
        round.channel.sessions.len(),
        after.channel.sessions.len()
    );
}
