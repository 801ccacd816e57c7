//! ClickHouse's small inserts against a real server whose table refuses
//! inserts at twelve parts, with merges stopped for the first two seconds:
//! the inserts are refused until merges resume, every row still goes in,
//! and the refusals are counted as retries. Skipped when clickhouse-server is not installed,
//! unless `CI` is set.

use std::path::PathBuf;

use indicatif::ProgressBar;
use tracklog_bench::peers::clickhouse::ClickHouse;

fn installed() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join("clickhouse-server").is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_parts_is_retried_until_every_row_is_in() {
    if !installed() && std::env::var_os("CI").is_none() {
        eprintln!("skipped: clickhouse-server is not installed (scripts/bench-peers.sh)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let peer = ClickHouse::start(&PathBuf::from(work.path()))
        .await
        .unwrap();
    peer.client()
        .query(
            "CREATE TABLE small (n UInt64) ENGINE = MergeTree() ORDER BY n \
             SETTINGS parts_to_delay_insert = 11, parts_to_throw_insert = 12",
        )
        .execute()
        .await
        .unwrap();
    peer.client()
        .query("SYSTEM STOP MERGES")
        .execute()
        .await
        .unwrap();
    const ROWS: u64 = 300;
    let mut next = 0;
    let progress = ProgressBar::hidden();
    let inserts = peer.insert_small(
        "INSERT INTO small FORMAT JSONEachRow",
        |body: &mut Vec<u8>, rows: usize| {
            let end = (next + rows as u64).min(ROWS);
            for n in next..end {
                body.extend_from_slice(format!("{{\"n\":{n}}}\n").as_bytes());
            }
            let appended = (end - next) as usize;
            next = end;
            Ok(appended)
        },
        1,
        16,
        &progress,
    );
    let merges = async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        peer.client().query("SYSTEM START MERGES").execute().await
    };
    let (result, merges) = tokio::join!(inserts, merges);
    merges.unwrap();
    let result = result.unwrap();
    assert_eq!(result.rows, ROWS as usize);
    assert_eq!(result.requests, ROWS as usize);
    assert!(!result.stopped_at_budget);
    assert!(
        result.retries > 0,
        "16 clients against a twelve-part limit were never refused: {result:?}"
    );
    let count = peer
        .client()
        .query("SELECT count() FROM small")
        .fetch_one::<u64>()
        .await
        .unwrap();
    assert_eq!(count, ROWS);
}
