//! A database file damaged while the server was stopped: `tracklog serve`
//! refuses to start, naming the file and what to do, rather than serve
//! answers read from damaged pages; `tracklog doctor` finds the damage,
//! and finds nothing on a sound data directory.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Server, create_policy, item, tracklog};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_at_start_and_found_by_doctor() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = create_policy(dir.path(), "app", "write,read,manage");
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    for batch in 0..20 {
        let items: Vec<Value> = (0..200)
            .map(|i| item(&format!("b{batch}-{i}"), &format!("contact-{}", i % 7)))
            .collect();
        let response = http
            .post(server.url("/api/v1/interactions"))
            .basic_auth("app", Some(&key))
            .json(&items)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let records: Vec<Value> = (0..50)
            .map(|i| {
                json!({"Id": format!("a{batch}-{i}"), "CreationTime": "2026-03-01T10:00:00Z",
                       "Operation": "Update", "User": "u@x", "EntityName": "account",
                       "EntityId": format!("e{i}")})
            })
            .collect();
        let response = http
            .post(server.url("/api/v1/audit/records"))
            .basic_auth("app", Some(&key))
            .json(&records)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // A read waits for the materialisers: everything is in the tables.
    let response = http
        .get(server.url("/api/v1/contacts/contact-1/interactions?limit=1"))
        .basic_auth("app", Some(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(server.terminate().success());

    let output = tracklog(dir.path(), &["doctor"]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "doctor on a sound directory: {report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("database") && report.contains("activity log"),
        "{report}"
    );

    // Damage two pages of the interactions table, as a bad disk or a torn
    // write would: the page header of its root overwritten, and the second
    // half of another page zeroed.
    let db = dir.path().join("tracklog.db");
    let (page_size, root, pages) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let page_size = conn
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
            .unwrap();
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'interactions'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
        let pages = conn
            .query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .unwrap();
        (page_size as u64, root as u64, pages as u64)
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&db)
        .unwrap();
    file.seek(SeekFrom::Start((root - 1) * page_size)).unwrap();
    file.write_all(&[0xEE; 12]).unwrap();
    let torn = pages / 2;
    file.seek(SeekFrom::Start((torn - 1) * page_size + page_size / 2))
        .unwrap();
    file.write_all(&vec![0u8; (page_size / 2) as usize])
        .unwrap();
    file.sync_all().unwrap();
    drop(file);

    // The server refuses to start, and says why and what to do.
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started on a damaged database");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&db.display().to_string())
            && stderr.contains("is damaged")
            && stderr.contains("backup")
            && stderr.contains("tracklog doctor"),
        "{stderr}"
    );

    // doctor finds the damage and fails.
    let output = tracklog(dir.path(), &["doctor"]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!output.status.success(), "{report}");
    assert!(
        report.contains("database") && report.contains("PROBLEMS") && report.contains("problem:"),
        "{report}"
    );
    let output = tracklog(dir.path(), &["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["sections"][0]["name"], "database");
    assert!(
        !report["sections"][0]["problems"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
