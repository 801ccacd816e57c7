//! Someone with the data directory edits the activity log's tables one
//! column at a time; verification must notice every edit that changes what
//! search, reports or export can see.
//!
//! A real server writes the records (one split into parts, one for the
//! user an insider wants to hide, records of a second org) and the signed
//! checkpoints, and purges a prefix so that a purge anchor exists. Then,
//! for each column of each table that holds the log or its proofs (FTS5's
//! shadow tables included), a copy of the data directory gets that one
//! column of one row changed, and every org's log is verified as
//! `tracklog audit verify` does.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{TestServer, basic};
use serde_json::{Value, json};
use tracklog_domain::ids::OrgId;
use tracklog_server::config::Config;
use tracklog_server::services::audit::{self as audit_service, CheckpointPolicy};
use tracklog_store::Stores;
use tracklog_store::sqlite::register_sql_functions;

type Auth = (String, Option<String>);

fn record(id: &str, user: &str, minute: u32, fields: Value) -> Value {
    json!({
        "Id": id,
        "CreationTime": format!("2026-03-01T10:{minute:02}:00Z"),
        "Operation": "Update",
        "User": user,
        "UserType": "Regular",
        "ClientIP": "10.0.0.7",
        "EntityName": "account",
        "EntityId": format!("a-{id}"),
        "ResultStatus": "Success",
        "ServiceName": "CRM",
        "Fields": fields,
    })
}

async fn post(server: &TestServer, auth: &Auth, body: &Value) {
    let response = server
        .http
        .post(server.url("/api/v1/audit/records"))
        .basic_auth(&auth.0, auth.1.as_ref())
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

fn raw(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("tracklog.db")).unwrap();
    register_sql_functions(&conn).unwrap();
    conn
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
        }
    }
    to
}

/// Every org's verification, as the CLI runs it: the first failure, if any.
async fn verify_all(dir: &Path, orgs: &[(OrgId, &str)]) -> Option<Value> {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    // As the CLI opens it: the server's check at start would refuse an
    // edited index before verification could say what it is.
    config.storage.check_at_start = false;
    let stores: Stores = tracklog_server::open_stores(&config).expect("open stores");
    let key = audit_service::load_or_create_key(dir).unwrap();
    let mut failure = None;
    for (org, name) in orgs {
        let result =
            audit_service::verify(&stores, &key.verifying_key(), *org, name, None, None).await;
        let found = match result {
            Ok(verification) if verification.ok => None,
            Ok(verification) => Some(serde_json::to_value(&verification).unwrap()),
            Err(error) => Some(json!({ "error": error.to_string() })),
        };
        if found.is_some() {
            failure = found;
            break;
        }
    }
    stores.lifecycle.close().await;
    failure
}

/// What free-text search finds: for each word of every record's text, the
/// records it finds. `None` when the index cannot be read.
fn free_text_answers(dir: &Path) -> Option<BTreeMap<String, Vec<i64>>> {
    let conn = raw(dir);
    let bodies: Vec<String> = conn
        .prepare("SELECT body FROM audit_text")
        .ok()?
        .query_map([], |r| r.get(0))
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    let mut answers = BTreeMap::new();
    for word in bodies
        .iter()
        .flat_map(|b| b.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
    {
        if answers.contains_key(word) {
            continue;
        }
        let rids: Vec<i64> = conn
            .prepare("SELECT rowid FROM audit_fts WHERE audit_fts MATCH ?1 ORDER BY rowid")
            .ok()?
            .query_map([format!("\"{word}\"")], |r| r.get(0))
            .ok()?
            .collect::<Result<_, _>>()
            .ok()?;
        answers.insert(word.to_owned(), rids);
    }
    Some(answers)
}

/// One column of one row changed: integers moved by one (or, when a
/// constraint refuses that, far away), text and blobs changed by a
/// character or a bit, NULL given a value.
fn mutate(
    conn: &rusqlite::Connection,
    table: &str,
    columns: &[String],
    row: &[rusqlite::types::Value],
    column: usize,
) -> rusqlite::Result<usize> {
    mutate_by(conn, table, columns, row, column, 1)
        .or_else(|_| mutate_by(conn, table, columns, row, column, 1_000_003))
}

fn mutate_by(
    conn: &rusqlite::Connection,
    table: &str,
    columns: &[String],
    row: &[rusqlite::types::Value],
    column: usize,
    step: i64,
) -> rusqlite::Result<usize> {
    use rusqlite::types::Value as V;
    let new = match &row[column] {
        V::Integer(n) => V::Integer(n + step),
        V::Real(r) => V::Real(r + step as f64),
        V::Text(t) => V::Text(format!("{t}x")),
        V::Blob(b) if b.is_empty() => V::Blob(vec![1]),
        V::Blob(b) => {
            let mut b = b.clone();
            let middle = b.len() / 2;
            b[middle] ^= 1;
            V::Blob(b)
        }
        V::Null => V::Text("x".into()),
    };
    let filter: Vec<String> = columns.iter().map(|c| format!("{c} IS ?")).collect();
    let mut values = vec![new];
    values.extend(row.iter().cloned());
    conn.execute(
        &format!(
            "UPDATE {table} SET {} = ? WHERE {}",
            columns[column],
            filter.join(" AND ")
        ),
        rusqlite::params_from_iter(values),
    )
}

/// A stopped server's data directory with a purged prefix, a split record,
/// the records of a second org and their checkpoints; and its orgs.
async fn written_log() -> (tempfile::TempDir, [(OrgId, &'static str); 2]) {
    let mut server = TestServer::start_with(|config| {
        config.audit.checkpoint_every_seconds = 3600;
        config.audit.checkpoint_every_records = 1_000_000;
        // The org's later records are stored compressed with a dictionary
        // trained from its first four, so that edits to both are tried.
        config.audit.compress_after_records = 4;
    })
    .await;
    let auth = basic(&server.policy("crm", "write,read").await);
    let default = server.org("default").await;
    let other = server.org("other").await;
    let other_auth = basic(&server.policy_in("other", "crm2", "write,read", None).await);
    let key = audit_service::load_or_create_key(server.dir.path()).unwrap();
    let policy = CheckpointPolicy {
        every_records: 1_000_000,
        every_millis: i64::MAX,
    };

    // A prefix that retention purges, so that the log starts at an anchor.
    for i in 0..3 {
        post(
            &server,
            &auth,
            &record(&format!("old{i}"), "ana@x", i, json!({"n": i})),
        )
        .await;
    }
    audit_service::checkpoint_if_due(&server.stores, &key, default, "default", policy, true)
        .await
        .unwrap();
    let cutoff = tracklog_domain::time::UtcMillis::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    post(&server, &auth, &record("keep", "ana@x", 4, json!({"n": 4}))).await;
    server
        .stores
        .audit
        .purge_audit(
            default,
            cutoff,
            Some(audit_service::purge_signer(&key, "default")),
        )
        .await
        .unwrap()
        .expect("a prefix was purged");

    // The records an insider would hide, one of them split into parts.
    post(
        &server,
        &auth,
        &record(
            "hide-me",
            "cross@x",
            5,
            json!({"name": {"old": "Ana Lima", "new": "Bea Sousa"}}),
        ),
    )
    .await;
    let long = "salary band review ".repeat(250);
    post(
        &server,
        &auth,
        &record(
            "split",
            "cross@x",
            6,
            json!({"notes": {"old": null, "new": long}}),
        ),
    )
    .await;
    audit_service::checkpoint_if_due(&server.stores, &key, default, "default", policy, true)
        .await
        .unwrap();
    post(&server, &auth, &record("tail", "ana@x", 7, json!({"n": 7}))).await;
    for i in 0..2 {
        post(
            &server,
            &other_auth,
            &record(&format!("o{i}"), "zoe@y", i, json!({"city": "Porto"})),
        )
        .await;
    }
    audit_service::checkpoint_if_due(&server.stores, &key, other, "other", policy, true)
        .await
        .unwrap();

    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    server.stop().await;
    (dir, [(default, "default"), (other, "other")])
}

#[tokio::test]
async fn every_column_of_the_log_edited_is_found() {
    let (dir, orgs) = written_log().await;
    assert_eq!(verify_all(dir.path(), &orgs).await, None, "the intact log");
    let parts: i64 = raw(dir.path())
        .query_row("SELECT count(*) FROM audit_parts", [], |r| r.get(0))
        .unwrap();
    assert!(parts >= 2, "the long record is split ({parts} parts)");
    let compressed: i64 = raw(dir.path())
        .query_row(
            "SELECT count(*) FROM audit_log WHERE substr(record, 1, 1) = x'00'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        compressed >= 2,
        "records are stored compressed ({compressed})"
    );
    let intact_answers = free_text_answers(dir.path()).expect("the intact index reads");

    let tables = [
        "audit_log",
        "audit_parts",
        "audit_heads",
        "audit_anchors",
        "audit_checkpoints",
        "audit_dicts",
        "audit_fts_data",
        "audit_fts_idx",
        "audit_fts_docsize",
        "audit_fts_config",
    ];
    let (mut caught, mut refused, mut harmless) = (0, 0, Vec::new());
    let mut missed = Vec::new();
    for table in tables {
        let conn = raw(dir.path());
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let rows: Vec<Vec<rusqlite::types::Value>> = conn
            .prepare(&format!("SELECT * FROM {table}"))
            .unwrap()
            .query_map([], |r| (0..columns.len()).map(|i| r.get(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(conn);
        assert!(!rows.is_empty(), "{table} has rows to edit");
        // Every row of the small tables; the first, middle and last of the
        // larger ones.
        let picks: Vec<usize> = if rows.len() <= 12 {
            (0..rows.len()).collect()
        } else {
            vec![0, rows.len() / 2, rows.len() - 1]
        };
        for pick in picks {
            for column in 0..columns.len() {
                let copy = copy_dir(dir.path());
                let changed = {
                    let conn = raw(copy.path());
                    mutate(&conn, table, &columns, &rows[pick], column)
                };
                let what = format!("{table}.{} of row {pick}", columns[column]);
                match changed {
                    Ok(1) => {}
                    Ok(n) => panic!("{what}: the edit changed {n} rows"),
                    // A UNIQUE or CHECK constraint refuses the edit.
                    Err(_) => {
                        refused += 1;
                        continue;
                    }
                }
                if verify_all(copy.path(), &orgs).await.is_some() {
                    caught += 1;
                } else if table.starts_with("audit_fts")
                    && free_text_answers(copy.path()).as_ref() == Some(&intact_answers)
                {
                    // Inside FTS5's own structures, some bytes are not read
                    // by any search (a separator key past the last term, for
                    // one): every word still finds exactly the same records.
                    harmless.push(what);
                } else {
                    missed.push(what);
                }
            }
        }
    }
    eprintln!(
        "{caught} edits found, {refused} refused by the database, {} harmless to every search: {harmless:?}",
        harmless.len()
    );
    assert!(missed.is_empty(), "edits verification missed: {missed:?}");
    assert!(caught >= 150, "only {caught} edits were tried and found");
}

/// Edits no single column can show: an index rebuilt without one user's
/// records under its original definition, and a trigger that would rewrite
/// records as they arrive.
#[tokio::test]
async fn an_index_or_schema_edited_behind_the_records_is_found() {
    let (dir, orgs) = written_log().await;

    let copy = copy_dir(dir.path());
    let conn = raw(copy.path());
    let definition: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'audit_log_by_user'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute_batch(
        "DROP INDEX audit_log_by_user;
         CREATE INDEX audit_log_by_user ON audit_log(org_id, user_name, creation_time, seq)
             WHERE user_name != 'cross@x';
         PRAGMA writable_schema = ON;",
    )
    .unwrap();
    conn.execute(
        "UPDATE sqlite_master SET sql = ?1 WHERE name = 'audit_log_by_user'",
        [&definition],
    )
    .unwrap();
    drop(conn);
    // Search by user now misses the records, through an index whose
    // definition reads as the original.
    let hidden: i64 = raw(copy.path())
        .query_row(
            "SELECT count(*) FROM audit_log INDEXED BY audit_log_by_user
             WHERE org_id = ?1 AND user_name = 'cross@x'",
            [orgs[0].0.0],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hidden, 0);
    let found = verify_all(copy.path(), &orgs).await.expect("found");
    assert_eq!(found["first_break"]["kind"], "index_altered", "{found}");
    assert_eq!(
        found["first_break"]["object"], "audit_log_by_user",
        "{found}"
    );

    let copy = copy_dir(dir.path());
    raw(copy.path())
        .execute_batch(
            "CREATE TRIGGER quiet AFTER INSERT ON audit_log
             BEGIN UPDATE audit_log SET user_name = NULL WHERE rid = new.rid; END;",
        )
        .unwrap();
    let found = verify_all(copy.path(), &orgs).await.expect("found");
    assert_eq!(found["first_break"]["kind"], "schema_altered", "{found}");
    assert_eq!(found["first_break"]["object"], "quiet", "{found}");
}
