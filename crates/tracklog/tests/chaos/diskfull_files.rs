//! A full disk under what Tracklog writes besides its data directory, and
//! under an import into it. Each is on a tmpfs filled to the last byte:
//! - the checkpoint file (`audit.checkpoint_file`): the server keeps
//!   acknowledging records, counts each failed append, and once space is
//!   freed the file catches up with whole lines, against which an export
//!   verifies standalone;
//! - an export to a file (`tracklog audit export --out`): the command fails
//!   naming the file and the cause, and leaves no partial file behind; run
//!   again, it writes the whole export;
//! - an import (`tracklog import contacts`): the command fails saying how
//!   many rows went in and that running it again completes it; run again,
//!   every contact is stored once;
//! - a retention purge of a portal's interactions: each failed pass is
//!   counted, reads are served, and once space is freed the next passes
//!   remove every interaction past its retention.
//!
//! A checkpoint in the database on a full disk is the disk-full test's
//! ([`super::diskfull`]): the activity log verifies after it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::audit::record;
use super::common::{BIN, Server, all_ids, create_policy, tracklog_with};
use super::diskfull::Tmpfs;
use super::load::metric;

/// A small reserve for the log, so that the CLI's own activity records are
/// written on these small disks.
const RESERVE: &str = "1048576";

fn cli(data_dir: &Path, args: &[&str]) -> Output {
    tracklog_with(
        data_dir,
        &[("TRACKLOG_INGEST__LOG_MIN_FREE_BYTES", RESERVE)],
        args,
    )
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every line of the file, which must each be whole JSON.
fn json_lines(path: &Path) -> Vec<Value> {
    let content = std::fs::read_to_string(path).unwrap();
    assert!(
        content.is_empty() || content.ends_with('\n'),
        "{} ends in a torn line",
        path.display()
    );
    content
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display()))
        })
        .collect()
}

/// The highest sequence a checkpoint in the file vouches for.
fn kept_up_to(file: &Path) -> i64 {
    json_lines(file)
        .iter()
        .filter_map(|c| c["sequence"].as_i64())
        .max()
        .unwrap_or(0)
}

/// The body of a GET as the test's policy.
async fn get(http: &reqwest::Client, server: &Server, key: &str, path: &str) -> Vec<u8> {
    let response = http
        .get(server.url(path))
        .basic_auth("app", Some(key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.bytes().await.unwrap().to_vec()
}

async fn post_records(http: &reqwest::Client, server: &Server, key: &str, batch: u64) {
    let body: Vec<Value> = (0..20)
        .map(|i| record(&format!("full-{batch}-{i}"), 0, batch * 20 + i))
        .collect();
    let response = http
        .post(server.url("/api/v1/audit/records"))
        .basic_auth("app", Some(key))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_checkpoint_file_delays_it_and_it_catches_up_whole() {
    let outside = tempfile::tempdir().unwrap();
    let data = outside.path().join("data");
    let (key, _) = create_policy(&data, "app", "write,read,manage");
    let disk = Tmpfs::mount("1m");
    let kept = disk.path().join("checkpoints.jsonl");
    let filler = disk.fill(0);
    let server = Server::start_with(
        &[],
        &[
            ("TRACKLOG_AUDIT__CHECKPOINT_FILE", kept.to_str().unwrap()),
            ("TRACKLOG_AUDIT__CHECKPOINT_EVERY_SECONDS", "1"),
        ],
        &data,
    );
    let http = reqwest::Client::new();
    let failures = "tracklog_audit_job_failures_total{job=\"checkpoint_file\"}";

    // While the disk is full: records are acknowledged and checkpointed,
    // and every append of the file fails and is counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut batch = 0;
    while metric(&http, &server, failures).await < 2.0 {
        assert!(
            Instant::now() < deadline,
            "no failed append was counted in 30 s"
        );
        post_records(&http, &server, &key, batch).await;
        batch += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(kept_up_to(&kept), 0, "a line was kept on a full disk");
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the data directory has room");

    // Space is freed: the file catches up, whole, with the chain.
    std::fs::remove_file(&filler).unwrap();
    post_records(&http, &server, &key, batch).await;
    let page: Value =
        serde_json::from_slice(&get(&http, &server, &key, "/api/v1/audit/search?limit=1000").await)
            .unwrap();
    // Newest first by CreationTime, which these records do not follow.
    assert!(page["next_cursor"].is_null(), "more than one page");
    let head = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["Sequence"].as_i64())
        .max()
        .expect("a record");
    let deadline = Instant::now() + Duration::from_secs(30);
    while kept_up_to(&kept) < head {
        assert!(
            Instant::now() < deadline,
            "the checkpoint file did not reach {head} after space was freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let numbers: Vec<i64> = json_lines(&kept)
        .iter()
        .filter_map(|c| c["number"].as_i64())
        .collect();
    let last = *numbers.iter().max().unwrap();
    for number in 1..=last {
        assert!(
            numbers.contains(&number),
            "checkpoint {number} was never kept"
        );
    }

    // An export verifies against the file alone, trusting no data directory.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let as_of = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let export = get(&http, &server, &key, "/api/v1/audit/export?format=jsonl").await;
    let public = http
        .get(server.url("/api/v1/audit/public-key"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let failed = metric(&http, &server, failures).await;
    assert!(server.terminate().success());
    std::fs::write(outside.path().join("export.jsonl"), &export).unwrap();
    std::fs::write(outside.path().join("public.key"), &public).unwrap();
    let output = Command::new(BIN)
        .args(["audit", "verify", "--public-key"])
        .arg(outside.path().join("public.key"))
        .arg("--checkpoints")
        .arg(&kept)
        .arg("--export")
        .arg(outside.path().join("export.jsonl"))
        .args(["--as-of", as_of.trim()])
        .env("TRACKLOG_DATA_DIR", outside.path().join("no-such-data-dir"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    eprintln!(
        "checkpoint file on a full disk: {failed} appends failed; {last} checkpoints kept \
         whole once space was freed, up to sequence {head}; the export verified against them"
    );
    drop(disk);
}

#[test]
fn an_export_or_an_import_that_meets_a_full_disk_fails_whole_and_completes_when_run_again() {
    let disk = Tmpfs::mount("64m");
    let data = disk.path().join("data");
    // Its own activity record is what the export will hold.
    let created = cli(&data, &["policy", "create", "app", "--rights", "read"]);
    assert!(created.status.success(), "{}", text(&created));

    // An export onto a full disk.
    let out = Tmpfs::mount("1m");
    let filler = out.fill(0);
    let target = out.path().join("export.jsonl");
    let export = [
        "audit",
        "export",
        "--format",
        "jsonl",
        "--out",
        target.to_str().unwrap(),
    ];
    let failed = cli(&data, &export);
    let said = text(&failed);
    assert!(
        !failed.status.success(),
        "an export onto a full disk succeeded: {said}"
    );
    assert!(
        said.contains(target.to_str().unwrap()) && said.contains("No space left on device"),
        "the failure names neither the file nor the cause: {said}"
    );
    let left: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "filler")
        .collect();
    assert!(left.is_empty(), "a failed export left {left:?}");
    std::fs::remove_file(&filler).unwrap();
    let done = cli(&data, &export);
    assert!(done.status.success(), "{}", text(&done));
    let exported = json_lines(&target).len();
    assert!(exported > 0, "the export is empty");

    // An import into a data directory whose disk fills midway.
    let rows = 60_000;
    let csv = tempfile::Builder::new()
        .suffix(".csv")
        .tempfile()
        .unwrap()
        .into_temp_path();
    let mut content = String::from("id,name,email,tier\n");
    for i in 0..rows {
        content.push_str(&format!("c-{i},Name {i},n{i}@example.com,gold\n"));
    }
    std::fs::write(&csv, content).unwrap();
    let filler = disk.fill(2 << 20);
    let import = ["import", "contacts", csv.to_str().unwrap()];
    let failed = cli(&data, &import);
    let said = text(&failed);
    assert!(
        !failed.status.success(),
        "an import onto a full disk succeeded: {said}"
    );
    assert!(
        said.contains(&format!("of {rows} rows imported"))
            && said.contains("running the same import again"),
        "the failure says neither what went in nor what to do: {said}"
    );
    std::fs::remove_file(&filler).unwrap();
    let done = cli(&data, &import);
    assert!(done.status.success(), "{}", text(&done));
    assert!(text(&done).contains(&format!("imported {rows} contacts; 0 rows refused")));
    let db = rusqlite::Connection::open_with_flags(
        data.join("tracklog.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (stored, distinct): (i64, i64) = db
        .query_row(
            "SELECT count(*), count(DISTINCT id) FROM contacts",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (stored, distinct),
        (rows, rows),
        "every contact stored once"
    );
    eprintln!(
        "export and import on a full disk: both failed whole, naming the cause; run again, \
         {exported} records exported and {rows} contacts stored once"
    );
    drop(db);
    drop(out);
    drop(disk);
}

/// How many interactions are stored for a contact.
async fn stored(http: &reqwest::Client, server: &Server, key: &str, contact: &str) -> usize {
    all_ids(http, server, key, contact).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_purge_that_meets_a_full_disk_fails_and_finishes_once_space_is_freed() {
    let disk = Tmpfs::mount("160m");
    let data = disk.path().join("data");
    let created = cli(
        &data,
        &[
            "policy",
            "create",
            "app",
            "--rights",
            "write,read,manage",
            "--json",
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    let keys: Value = serde_json::from_slice(&created.stdout).unwrap();
    let key = keys["primary_key"].as_str().unwrap().to_owned();
    let env = |interval: &'static str| {
        [
            ("TRACKLOG_INGEST__LOG_MIN_FREE_BYTES", RESERVE),
            ("TRACKLOG_RETENTION__INTERVAL_SECONDS", interval),
        ]
    };
    let http = reqwest::Client::new();

    // Interactions of a portal that keeps them a day, all months old; the
    // purge runs only at the start, before there are any.
    let server = Server::start_with(&[], &env("3600"), &data);
    let response = http
        .post(server.url("/api/v1/portals"))
        .basic_auth("app", Some(&key))
        .json(&serde_json::json!({"id": "old", "name": "Old", "retention_days": 1}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let (contacts, batches) = (20, 60);
    for batch in 0..batches {
        let body: Vec<Value> = (0..500)
            .map(|i| {
                let mut item = super::common::item(
                    &format!("old-{batch}-{i}"),
                    &format!("p-{}", i % contacts),
                );
                item["portal_portalid"] = "old".into();
                item
            })
            .collect();
        let response = http
            .post(server.url("/api/v1/interactions"))
            .basic_auth("app", Some(&key))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let before = stored(&http, &server, &key, "p-0").await;
    assert_eq!(before, batches * 500 / contacts);
    assert!(server.terminate().success());

    // The disk fills; the purge runs every second on the next start.
    let filler = disk.fill(64 << 10);
    let server = Server::start_with(&[], &env("1"), &data);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&http, &server, "tracklog_retention_failures_total").await < 2.0 {
        assert!(
            Instant::now() < deadline,
            "no purge failed on a full disk in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Reads are served meanwhile, from whatever the failed passes left.
    let left = stored(&http, &server, &key, "p-1").await;
    assert!(left <= before);

    // Space is freed: the next passes finish the purge by themselves.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for contact in 0..contacts {
        let contact = format!("p-{contact}");
        while stored(&http, &server, &key, &contact).await > 0 {
            assert!(
                Instant::now() < deadline,
                "{contact}'s old interactions were still there 60 s after space was freed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let failures = metric(&http, &server, "tracklog_retention_failures_total").await;
    assert!(server.terminate().success());
    eprintln!(
        "retention purge on a full disk: {failures} passes failed; once space was freed \
         all {} interactions went",
        batches * 500
    );
    drop(disk);
}
