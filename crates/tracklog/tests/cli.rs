//! The `tracklog` binary end to end: crash durability, graceful shutdown, CLI
//! changes honoured by a running server, SAS minting, users, and bad config.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::{BIN, Server, all_ids, create_policy, item, tracklog};

/// Sends batches from several clients until `stop` is set or a bound is hit;
/// returns the ids of every acknowledged item.
async fn send_until(
    base: String,
    key: String,
    stop: Arc<AtomicBool>,
    clients: usize,
) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let http = http.clone();
        let url = format!("{base}/api/v1/interactions");
        let key = key.to_owned();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for batch in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let ids: Vec<String> = (0..50).map(|i| format!("k{client}-{batch}-{i}")).collect();
                let body: Vec<Value> = ids
                    .iter()
                    .map(|id| item(id, &format!("c{client}")))
                    .collect();
                match http
                    .post(&url)
                    .basic_auth("app", Some(&key))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 200 => acknowledged.extend(ids),
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_acknowledged_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = create_policy(dir.path(), "app", "write,read");
    let server = Server::start(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(send_until(
        server.base.clone(),
        key.clone(),
        stop.clone(),
        4,
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill_hard(); // mid-stream: requests are in flight
    stop.store(true, Ordering::Relaxed);
    let acknowledged = sender.await.unwrap();
    assert!(
        acknowledged.len() >= 200,
        "too few writes before the kill: {}",
        acknowledged.len()
    );

    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let mut stored = std::collections::HashSet::new();
    for client in 0..4 {
        stored.extend(all_ids(&http, &server, &key, &format!("c{client}")).await);
    }
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged items lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_writes_in_flight_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = create_policy(dir.path(), "app", "write,read");
    let server = Server::start(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(send_until(
        server.base.clone(),
        key.clone(),
        stop.clone(),
        2,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(status.success(), "exit status {status:?}");
    let acknowledged = sender.await.unwrap();

    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let mut stored = std::collections::HashSet::new();
    for client in 0..2 {
        stored.extend(all_ids(&http, &server, &key, &format!("c{client}")).await);
    }
    assert!(acknowledged.iter().all(|id| stored.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_changes_take_effect_on_a_running_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let get = |key: String| {
        let http = http.clone();
        let url = server.url("/api/v1/contacts/c/interactions");
        async move {
            http.get(url)
                .basic_auth("late", Some(key))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let (primary, secondary) = create_policy(dir.path(), "late", "read");
    assert_eq!(
        get(primary.clone()).await,
        200,
        "a new policy authenticates at once"
    );

    let output = tracklog(
        dir.path(),
        &["policy", "rotate", "late", "--key", "primary", "--json"],
    );
    assert!(output.status.success());
    let rotated: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(get(primary).await, 401, "the rotated key stops at once");
    assert_eq!(
        get(rotated["primary_key"].as_str().unwrap().to_owned()).await,
        200
    );
    assert_eq!(
        get(secondary.clone()).await,
        200,
        "the other key keeps working"
    );

    // A SAS token minted by the CLI works against the server.
    let output = tracklog(
        dir.path(),
        &[
            "sas",
            "--policy",
            "late",
            "--resource",
            &server.url("/api/v1"),
            "--ttl",
            "10m",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let status = http
        .get(server.url("/api/v1/contacts/c/interactions"))
        .header("authorization", token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let listed = tracklog(dir.path(), &["policy", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["items"][0]["name"], "late");
    assert!(listed["items"][0].get("primary_key").is_none());

    let output = tracklog(dir.path(), &["policy", "delete", "late"]);
    assert!(output.status.success());
    assert_eq!(get(secondary).await, 401, "a deleted policy stops at once");
}

#[test]
fn users_get_a_password_from_stdin_or_a_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["user", "add", "ana", "--role", "auditor", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough password\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("password:"));

    let output = tracklog(dir.path(), &["user", "add", "bo", "--role", "agent"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password");
    assert!(password.len() >= 40);

    let output = tracklog(dir.path(), &["user", "add", "ana", "--role", "agent"]);
    assert!(!output.status.success(), "a duplicate user is refused");
    let output = tracklog(dir.path(), &["user", "add", "cy", "--role", "root"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--role"));
}

#[test]
fn a_leaver_is_disabled_demoted_reset_and_removed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let ok = |args: &[&str]| {
        let output = tracklog(dir.path(), args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    ok(&["user", "add", "ana", "--role", "admin"]);
    ok(&["user", "add", "bo", "--role", "agent"]);
    let status = |name: &str| {
        let listing = ok(&["user", "list"]);
        assert!(listing.starts_with("NAME"), "a header first: {listing}");
        listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(status("bo").as_deref(), Some("bo agent active"));
    ok(&["user", "disable", "bo"]);
    assert_eq!(status("bo").as_deref(), Some("bo agent disabled"));
    ok(&["user", "enable", "bo"]);
    ok(&["user", "role", "bo", "supervisor"]);
    assert_eq!(status("bo").as_deref(), Some("bo supervisor active"));
    let reset = ok(&["user", "reset-password", "bo"]);
    assert!(
        reset.lines().any(|l| l.starts_with("password: ")),
        "{reset}"
    );
    ok(&["user", "remove", "bo"]);
    assert_eq!(status("bo"), None);

    // The last enabled admin stays, and bad input is named.
    for args in [
        &["user", "disable", "ana"][..],
        &["user", "role", "ana", "agent"],
        &["user", "remove", "ana"],
    ] {
        let output = tracklog(dir.path(), args);
        assert!(!output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("last enabled admin"));
    }
    let output = tracklog(dir.path(), &["user", "disable", "nobody"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("nobody was not found"));
    let output = tracklog(dir.path(), &["user", "role", "ana", "root"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("role"));
    let export = ok(&[
        "audit",
        "export",
        "--format",
        "jsonl",
        "--entity-name",
        "user",
    ]);
    for operation in [
        "DisableUser",
        "EnableUser",
        "ChangeUserRole",
        "ResetUserPassword",
        "DeleteUser",
    ] {
        assert!(
            export.contains(operation),
            "{operation} is not in the activity log"
        );
    }
}

#[test]
fn bad_configuration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("TRACKLOG_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("listen"));

    let config = dir.path().join("tracklog.toml");
    std::fs::write(&config, "[ingest]\ndurability = \"sometimes\"\n").unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ingest.durability"));
}

#[test]
fn audit_export_and_verify_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        create_policy(dir.path(), name, "read");
    }
    let out = dir.path().join("audit.jsonl");
    let output = tracklog(
        dir.path(),
        &[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--operation",
            "CreateAccessPolicy",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["EntityId"].to_string())
        .collect();
    assert_eq!(ids, ["\"c\"", "\"b\"", "\"a\""]);

    let output = tracklog(dir.path(), &["audit", "export", "--format", "xml"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--format"));
    let output = tracklog(
        dir.path(),
        &["audit", "export", "--format", "csv", "--category", "Nope"],
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("--category"));

    let output = tracklog(dir.path(), &["audit", "retention", "--days", "30"]);
    assert!(output.status.success());
    let output = tracklog(dir.path(), &["audit", "retention", "--days", "0"]);
    assert!(!output.status.success());

    let output = tracklog(dir.path(), &["audit", "verify"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("ok: "));

    let conn = rusqlite::Connection::open(dir.path().join("tracklog.db")).unwrap();
    conn.execute(
        "UPDATE audit_log SET record = CAST(replace(CAST(record AS TEXT), '\"b\"', '\"B\"') AS BLOB) WHERE seq = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let output = tracklog(dir.path(), &["audit", "verify"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sequence 2"), "{stderr}");
    assert!(stderr.contains("altered"), "{stderr}");
}

/// An insider edits the column a search by user reads, to hide a record:
/// the record's bytes and so its link are untouched, and verification must
/// still find it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_record_hidden_from_search_by_editing_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = create_policy(dir.path(), "crm", "write,read");
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let response = http
        .post(server.url("/api/v1/audit/records"))
        .basic_auth("crm", Some(&key))
        .json(&json!({"Id": "r-1", "CreationTime": "2026-11-20T10:00:00Z",
                      "Operation": "Retrieve", "User": "cross@x", "EntityName": "account",
                      "Fields": {"name": "confidential"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let search = |query: &'static str| {
        let (http, url, key) = (http.clone(), server.url(query), key.clone());
        async move {
            let page: Value = http
                .get(url)
                .basic_auth("crm", Some(key))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page["count"].as_i64().unwrap()
        }
    };
    assert_eq!(search("/api/v1/audit/search?user=cross@x").await, 1);
    tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let output = tracklog(dir.path(), &["audit", "verify"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    for (edit, column) in [
        (
            "UPDATE audit_log SET user_name = 'someone@else' WHERE user_name = 'cross@x'",
            "user_name",
        ),
        (
            "UPDATE audit_log SET operation = 'Other' WHERE id = 'r-1'",
            "operation",
        ),
    ] {
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
            }
        }
        let conn = rusqlite::Connection::open(copy.path().join("tracklog.db")).unwrap();
        assert_eq!(conn.execute(edit, []).unwrap(), 1);
        drop(conn);
        let output = tracklog(copy.path(), &["audit", "verify"]);
        assert!(!output.status.success(), "{edit} went unnoticed");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("its {column} column")), "{stderr}");
    }

    // Removed from the free-text index: found by FTS5's check against the
    // records' text.
    let conn = rusqlite::Connection::open(dir.path().join("tracklog.db")).unwrap();
    tracklog_store::sqlite::register_sql_functions(&conn).unwrap();
    conn.execute(
        "DELETE FROM audit_fts WHERE rowid = (SELECT rid FROM audit_log WHERE id = 'r-1')",
        [],
    )
    .unwrap();
    drop(conn);
    let output = tracklog(dir.path(), &["audit", "verify"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("free-text index"), "{stderr}");
}

#[test]
fn contacts_are_imported_exported_and_erased_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let csv = dir.path().join("contacts.csv");
    std::fs::write(
        &csv,
        "id,name,email,tier\nc-1,Ada Lovelace,ada@example.com,gold\n,Nobody,,\nc-3,\"Hopper, Grace\",,silver\n",
    )
    .unwrap();
    let output = tracklog(&data, &["import", "contacts", csv.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The bad row is named by its line, and the good rows are still imported.
    assert!(stderr.contains("contacts.csv:3: id"), "{stderr}");
    assert!(
        stderr.contains("imported 2 contacts; 1 rows refused"),
        "{stderr}"
    );
    let jsonl = dir.path().join("more.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\":\"c-1\",\"attributes\":{\"city\":\"London\"}}\nnot json\n",
    )
    .unwrap();
    let output = tracklog(&data, &["import", "contacts", jsonl.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("more.jsonl:2: not JSON"), "{stderr}");

    let output = tracklog(&data, &["contact", "export", "c-1"]);
    assert!(output.status.success());
    let export: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(export["profile"]["name"], "Ada Lovelace");
    assert_eq!(
        export["profile"]["attributes"],
        json!({"tier": "gold", "city": "London"})
    );

    let output = tracklog(&data, &["contact", "erase", "c-1"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let erased: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(erased["profile"], true);
    let output = tracklog(&data, &["contact", "export", "c-1"]);
    let export: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(export["profile"].is_null());
    let output = tracklog(&data, &["contact", "export", "c-3"]);
    let export: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(export["profile"]["name"], "Hopper, Grace");
}

/// `tracklog audit export ... | head -1`: the command ends when the reader
/// goes, as Unix tools do, without a panic or an error message.
#[test]
fn a_listing_piped_into_a_reader_that_stops_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    // More than a pipe holds (64 KiB), so that writing meets the closed pipe.
    for i in 0..160 {
        create_policy(dir.path(), &format!("p{i}"), "read");
    }
    let mut child = Command::new(BIN)
        .args(["audit", "export", "--format", "jsonl", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The reader is gone: the rest of the export meets a closed pipe.
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "{stderr}");
}
