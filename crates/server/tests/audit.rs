//! The activity log against a real server: writing records, what is
//! recorded, splitting, search, export, reports and integrity, with the
//! SQLite file tampered with directly where the test needs it.

mod common;

use std::io::Write;

use common::{TestServer, basic};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracklog_server::services::audit::{self as audit_service, CheckpointPolicy};

type Auth = (String, Option<String>);

fn record(id: &str, operation: &str, minute: u32) -> Value {
    json!({
        "Id": id,
        "CreationTime": format!("2026-03-01T10:{:02}:{:02}Z", minute / 60, minute % 60),
        "Operation": operation,
        "User": "ana@example.com",
        "UserType": "Regular",
        "ClientIP": "10.0.0.7",
        "EntityName": "account",
        "EntityId": format!("a-{id}"),
        "ResultStatus": "Success",
        "Fields": {"name": {"old": "Ana Lima", "new": format!("Ana {id}")}},
    })
}

async fn post(server: &TestServer, auth: &Auth, body: &Value) -> (StatusCode, Value) {
    let response = server
        .http
        .post(server.url("/api/v1/audit/records"))
        .basic_auth(&auth.0, auth.1.as_ref())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(server: &TestServer, auth: &Auth, path: &str) -> (StatusCode, Value) {
    let response = server
        .http
        .get(server.url(path))
        .basic_auth(&auth.0, auth.1.as_ref())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_text(server: &TestServer, auth: &Auth, path: &str) -> (StatusCode, String) {
    let response = server
        .http
        .get(server.url(path))
        .basic_auth(&auth.0, auth.1.as_ref())
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn put(server: &TestServer, auth: &Auth, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = server
        .http
        .put(server.url(path))
        .basic_auth(&auth.0, auth.1.as_ref())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn db(server: &TestServer) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(server.dir.path().join("tracklog.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    tracklog_store::sqlite::register_sql_functions(&conn).unwrap();
    conn
}

#[tokio::test]
async fn records_flow_in_every_body_shape_with_one_outcome_each() {
    let server = TestServer::start().await;
    let writer = basic(&server.policy("crm", "write").await);
    let reader = basic(&server.policy("auditor", "read").await);

    // An array with a bad item and an excluded message.
    let batch = json!([
        record("r1", "RetrieveMultiple", 1),
        {"Id": "bad", "Operation": "Create", "CreationTime": "yesterday"},
        record("r2", "WhoAmI", 2),
        record("r3", "Create", 3),
    ]);
    let (status, report) = post(&server, &writer, &batch).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["excluded"], 1);
    assert_eq!(report["excluded_items"][0]["index"], 2);
    assert_eq!(report["excluded_items"][0]["outcome"], "excluded");
    assert_eq!(report["excluded_items"][0]["reason"], "excluded_message");
    assert_eq!(report["rejected"][0]["index"], 1);
    assert_eq!(report["rejected"][0]["id"], "bad");
    assert_eq!(report["rejected"][0]["reason"], "invalid_field");
    assert_eq!(report["rejected"][0]["field"], "CreationTime");
    assert_eq!(
        report["outcomes"],
        json!(["accepted", "rejected", "excluded", "accepted"])
    );

    // Only the organisation is mandatory in the reference: a record without
    // Id, CreationTime or Operation is kept, with the server's Id and time,
    // and an empty operation is of category Other.
    let before = tracklog_domain::time::UtcMillis::now();
    let (status, report) = post(&server, &writer, &json!({"User": "nobody", "Message": "x"})).await;
    assert_eq!(
        (status.as_u16(), &report["accepted"]),
        (200, &json!(1)),
        "{report}"
    );
    let (_, found) = get(&server, &reader, "/api/v1/audit/search?user=nobody").await;
    let kept = &found["items"][0];
    assert_eq!(kept["Category"], "Other");
    assert_eq!(kept["Operation"], "");
    assert_eq!(kept["Id"].as_str().unwrap().len(), 36, "{kept}");
    let time =
        tracklog_domain::time::UtcMillis::parse_rfc3339(kept["CreationTime"].as_str().unwrap())
            .unwrap();
    assert!(time >= before && time <= tracklog_domain::time::UtcMillis::now());

    // NDJSON, gzip-compressed, with a retry of r1: stored once.
    let ndjson = format!(
        "{}\n{}\nnot json\n",
        record("r1", "RetrieveMultiple", 1),
        record("r4", "Update", 4)
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(ndjson.as_bytes()).unwrap();
    let response = server
        .http
        .post(server.url("/api/v1/audit/records"))
        .basic_auth(&writer.0, writer.1.as_ref())
        .header("Content-Type", "application/x-ndjson")
        .header("Content-Encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["duplicates"], 1);
    assert_eq!(report["rejected"][0]["index"], 2);
    assert_eq!(report["rejected"][0]["reason"], "invalid_json");

    // One object; Category and Sequence are the server's.
    let mut single = record("r5", "RetrieveMultipleRequest", 5);
    single["Category"] = json!("Delete");
    single["Sequence"] = json!(99);
    let (status, _) = post(&server, &writer, &single).await;
    assert_eq!(status, 200);
    let (_, stored) = get(&server, &reader, "/api/v1/audit/records/r5").await;
    assert_eq!(stored["Category"], "ReadMultiple");
    // The two policies' creations are records 1 and 2, then r1, r3, the
    // record without an Id, and r4.
    assert_eq!(stored["Sequence"], 7);
    assert_eq!(stored["OrganizationId"], "default");
    assert_eq!(stored["Fields"]["name"]["new"], "Ana r5");

    // Rights: reading needs read, writing needs write.
    let (status, _) = post(&server, &reader, &record("r6", "Create", 6)).await;
    assert_eq!(status, 403);
    let (status, _) = get(&server, &writer, "/api/v1/audit/search").await;
    assert_eq!(status, 403);
    let (_, page) = get(&server, &reader, "/api/v1/audit/search?entity_name=account").await;
    assert_eq!(page["count"], 4);
}

#[tokio::test]
async fn settings_decide_what_is_recorded_and_changes_are_audited() {
    let server = TestServer::start().await;
    let admin = basic(&server.policy("admin", "manage").await);
    let writer = basic(&server.policy("crm", "write").await);

    let (status, settings) = get(&server, &admin, "/api/v1/audit/settings").await;
    assert_eq!(status, 200);
    assert_eq!(settings["auditing_enabled"], true);
    assert_eq!(settings["excluded_messages"].as_array().unwrap().len(), 25);
    let (status, _) = get(&server, &writer, "/api/v1/audit/settings").await;
    assert_eq!(status, 403, "settings need manage");

    // Reads off for the org: Retrieve is excluded, Create is kept.
    let mut changed = settings.clone();
    changed["read_auditing"] = json!(false);
    changed["excluded_messages"] = json!(["WhoAmI", "Ping"]);
    let (status, saved) = put(&server, &admin, "/api/v1/audit/settings", &changed).await;
    assert_eq!(status, 200, "{saved}");
    let (_, report) = post(
        &server,
        &writer,
        &json!([
            record("a", "Retrieve", 1),
            record("b", "Create", 2),
            record("c", "Ping", 3),
            record("d", "RetrieveAttribute", 4),
        ]),
    )
    .await;
    assert_eq!(report["accepted"], 1, "{report}");
    let reasons: Vec<&str> = report["excluded_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["read_auditing_off", "excluded_message", "read_auditing_off"]
    );

    // Reads on for the org but off for the entity's single reads.
    changed["read_auditing"] = json!(true);
    put(&server, &admin, "/api/v1/audit/settings", &changed).await;
    let entity =
        json!({"auditing": true, "single_record_read": false, "multiple_record_read": true});
    let (status, _) = put(
        &server,
        &admin,
        "/api/v1/audit/settings/entities/Account",
        &entity,
    )
    .await;
    assert_eq!(status, 200);
    let (_, read_back) = get(&server, &admin, "/api/v1/audit/settings/entities/account").await;
    assert_eq!(read_back, entity);
    let (_, report) = post(
        &server,
        &writer,
        &json!([
            record("e", "Retrieve", 5),
            record("f", "RetrieveMultiple", 6)
        ]),
    )
    .await;
    assert_eq!(report["accepted"], 1);
    assert_eq!(report["excluded_items"][0]["id"], "e");
    let (status, _) = put(
        &server,
        &admin,
        "/api/v1/audit/settings",
        &json!({"auditing_enabled": true}),
    )
    .await;
    assert_eq!(status, 400, "every field is required");

    // Every change is itself in the log.
    let (_, page) = get(
        &server,
        &admin,
        "/api/v1/audit/search?operation=UpdateAuditSettings",
    )
    .await;
    assert_eq!(page["count"], 2);
    assert_eq!(page["items"][0]["Fields"]["new"]["read_auditing"], true);
    assert_eq!(page["items"][0]["Fields"]["old"]["read_auditing"], false);
    let (_, page) = get(
        &server,
        &admin,
        "/api/v1/audit/search?operation=UpdateAuditEntitySettings",
    )
    .await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["items"][0]["EntityId"], "account");
}

#[tokio::test]
async fn large_records_are_split_reassembled_exactly_and_missing_parts_reported() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("crm", "write,read").await);
    let mut big = record("big", "RetrieveMultiple", 1);
    let ids: Vec<String> = (0..300)
        .map(|i| format!("0a0d8709-711e-e811-a952-{i:012}"))
        .collect();
    big["QueryResults"] = json!(ids);
    big["Fields"] = json!({"note": "Grüße \"quoted\" \\ ] | = \n".repeat(100)});
    let (_, report) = post(&server, &auth, &big).await;
    assert_eq!(report["accepted"], 1);

    let (_, stored) = get(&server, &auth, "/api/v1/audit/records/big").await;
    assert_eq!(stored["QueryResults"], big["QueryResults"]);
    assert_eq!(stored["Fields"], big["Fields"]);
    let correlation = stored["CorrelationId"].as_str().unwrap().to_owned();
    let (parts, distinct): (i64, i64) = db(&server)
        .query_row(
            "SELECT count(*), count(DISTINCT correlation_id) FROM audit_parts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(parts >= 4, "{parts} parts");
    assert_eq!(distinct, 1);
    let shared: String = db(&server)
        .query_row("SELECT correlation_id FROM audit_parts LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(shared, correlation);
    let (_, page) = get(&server, &auth, "/api/v1/audit/search?q=Grüße").await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["items"][0], stored);

    db(&server)
        .execute("DELETE FROM audit_parts WHERE part IN (1, 3)", [])
        .unwrap();
    let (status, damaged) = get(&server, &auth, "/api/v1/audit/records/big").await;
    assert_eq!(status, 200);
    assert_eq!(damaged["integrity"]["missing_parts"], json!([1, 3]));
    assert_eq!(damaged["Id"], "big");
    assert!(damaged["QueryResults"].is_null(), "never papered over");
    let (_, page) = get(
        &server,
        &auth,
        "/api/v1/audit/search?operation=RetrieveMultiple",
    )
    .await;
    assert_eq!(
        page["items"][0]["integrity"]["missing_parts"],
        json!([1, 3])
    );
    // Exports carry the damage too.
    let (_, lines) = get_text(
        &server,
        &auth,
        "/api/v1/audit/export?format=jsonl&operation=RetrieveMultiple",
    )
    .await;
    let exported: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(exported["integrity"]["missing_parts"], json!([1, 3]));
    let (_, csv) = get_text(
        &server,
        &auth,
        "/api/v1/audit/export?format=csv&operation=RetrieveMultiple",
    )
    .await;
    assert!(csv.lines().next().unwrap().ends_with(",Integrity"), "{csv}");
    assert!(csv.contains("parts missing (index 1, 3)"), "{csv}");

    // With every part gone, the record still says how many are missing.
    db(&server).execute("DELETE FROM audit_parts", []).unwrap();
    let (_, gone) = get(&server, &auth, "/api/v1/audit/records/big").await;
    let total = gone["integrity"]["total_parts"].as_u64().unwrap();
    assert_eq!(total, parts as u64);
    assert_eq!(
        gone["integrity"]["missing_parts"],
        json!((0..total).collect::<Vec<_>>())
    );

    // The threshold applies to the record's size as stored, without padding
    // for the fields it does not have: 2.9 KB as sent stays whole, 3.3 KB is
    // split.
    for (id, size, split) in [("under", 2_900, false), ("over", 3_300, true)] {
        let mut item = record(id, "Update", 2);
        item["Fields"] = json!({ "n": "" });
        let base = item.to_string().len();
        item["Fields"] = json!({ "n": "x".repeat(size - base) });
        assert_eq!(item.to_string().len(), size);
        post(&server, &auth, &item).await;
        // Read through the API first: it waits for the record to be applied
        // behind the log, which a look at the file does not.
        let (_, back) = get(&server, &auth, &format!("/api/v1/audit/records/{id}")).await;
        let stored_parts: i64 = db(&server)
            .query_row("SELECT parts FROM audit_log WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored_parts > 0, split, "{id}: {stored_parts} parts");
        assert_eq!(back["Fields"], item["Fields"]);
        assert_eq!(back["CorrelationId"].is_null(), !split, "{back}");
        assert!(back["UserAgent"].is_null() && back.get("UserAgent").is_some());
    }
}

#[tokio::test]
async fn search_filters_pages_newest_first_and_stays_in_its_org() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("crm", "write,read").await);
    let other = basic(&server.policy_in("acme", "acme", "write,read", None).await);
    let mut batch = Vec::new();
    for i in 0..30u32 {
        let operation = ["Create", "Update", "Delete"][(i % 3) as usize];
        let mut item = record(&format!("s{i}"), operation, i);
        if i % 2 == 1 {
            item["User"] = json!("bea@example.com");
            item["ClientIP"] = json!("10.0.0.8");
        }
        if i == 7 {
            item["Query"] = json!("<condition column=\"statecode\" operator=\"eq\"/>");
        }
        batch.push(item);
    }
    post(&server, &auth, &Value::Array(batch)).await;
    post(&server, &other, &record("x", "Create", 1)).await;

    let mut ids = Vec::new();
    let mut path = "/api/v1/audit/search?user=bea@example.com&limit=4".to_owned();
    loop {
        let (status, page) = get(&server, &auth, &path).await;
        assert_eq!(status, 200);
        assert_eq!(page["count"], 15);
        for item in page["items"].as_array().unwrap() {
            ids.push(item["Id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/v1/audit/search?user=bea@example.com&limit=4&cursor={cursor}")
            }
            None => break,
        }
    }
    let expected: Vec<String> = (0..30)
        .rev()
        .filter(|i| i % 2 == 1)
        .map(|i| format!("s{i}"))
        .collect();
    assert_eq!(ids, expected);

    for (query, count) in [
        ("category=Delete", 10),
        ("operation=Update&client_ip=10.0.0.8", 5),
        ("entity_name=account&entity_id=a-s3", 1),
        ("entity_name=account&result_status=Success", 30),
        ("from=2026-03-01T10:00:10Z&to=2026-03-01T10:00:20Z", 10),
        ("q=statecode", 1),
        ("q=Ana%20s12", 1),
        ("q=%22unbalanced%20NEAR(%20*", 0),
    ] {
        let (status, page) = get(&server, &auth, &format!("/api/v1/audit/search?{query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(page["count"], count, "{query}");
    }
    for (query, field) in [
        ("category=Nope", "category"),
        ("from=yesterday", "from"),
        ("limit=0", "limit"),
        ("cursor=%%%", "cursor"),
    ] {
        let (status, body) = get(&server, &auth, &format!("/api/v1/audit/search?{query}")).await;
        assert_eq!(status, 400, "{query}");
        if field != "cursor" {
            assert_eq!(body["error"]["field"], field, "{query}");
        }
    }
    let (_, page) = get(&server, &other, "/api/v1/audit/search?entity_name=account").await;
    assert_eq!(page["count"], 1, "another org sees only its own");
}

#[tokio::test]
async fn export_streams_every_format_with_the_search_count_and_is_audited() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("crm", "write,read").await);
    let total = 2_300u32;
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let mut item = record(&format!("x{i}"), "Update", i % 3000);
                item["User"] = json!("Jörg|\"J\"=1]\\");
                item
            })
            .collect();
        post(&server, &auth, &Value::Array(batch)).await;
    }
    let filter = "operation=Update";
    let (_, page) = get(&server, &auth, &format!("/api/v1/audit/search?{filter}")).await;
    assert_eq!(page["count"], total);

    let (status, csv) = get_text(
        &server,
        &auth,
        &format!("/api/v1/audit/export?format=csv&{filter}"),
    )
    .await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), total as usize);
    assert_eq!(&rows[0][8], "Jörg|\"J\"=1]\\");

    for format in ["jsonl", "cef", "syslog", "ocsf"] {
        let (status, text) = get_text(
            &server,
            &auth,
            &format!("/api/v1/audit/export?format={format}&{filter}"),
        )
        .await;
        assert_eq!(status, 200, "{format}");
        assert_eq!(text.lines().count(), total as usize, "{format}");
        let first = text.lines().next().unwrap();
        match format {
            "jsonl" => {
                let value: Value = serde_json::from_str(first).unwrap();
                assert_eq!(value["Operation"], "Update");
            }
            "cef" => assert!(first.starts_with("CEF:0|Tracklog|Tracklog|"), "{first}"),
            "syslog" => {
                assert!(first.starts_with("<109>1 "), "{first}");
                assert!(first.contains(r#"User="Jörg|\"J\"=1\]\\""#), "{first}");
            }
            _ => {
                let value: Value = serde_json::from_str(first).unwrap();
                assert_eq!(value["class_uid"], 6003);
            }
        }
    }
    let (status, body) = get(&server, &auth, "/api/v1/audit/export?format=pdf").await;
    assert_eq!(
        (status.as_u16(), body["error"]["field"].as_str()),
        (400, Some("format"))
    );

    let (_, page) = get(
        &server,
        &auth,
        "/api/v1/audit/search?operation=ExportAuditLog",
    )
    .await;
    assert_eq!(page["count"], 5, "each export is audited");
    assert_eq!(page["items"][0]["Fields"]["filter"]["operation"], "Update");
}

#[tokio::test]
async fn reports_count_over_time() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("crm", "write,read").await);
    let mut batch = vec![
        json!({"Id": "1", "CreationTime": "2026-03-01T10:00:00Z", "Operation": "SignIn", "User": "ana"}),
        json!({"Id": "2", "CreationTime": "2026-03-02T10:00:00Z", "Operation": "SignOut", "User": "ana"}),
        json!({"Id": "3", "CreationTime": "2026-03-02T11:00:00Z", "Operation": "SignIn", "User": "bea"}),
        json!({"Id": "4", "CreationTime": "2026-03-02T11:00:00Z", "Operation": "BulkDelete"}),
    ];
    batch.push(record("5", "Retrieve", 1));
    post(&server, &auth, &Value::Array(batch)).await;
    let (status, list) = get(
        &server,
        &auth,
        "/api/v1/audit/reports?from=2026-03-01T00:00:00Z",
    )
    .await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 9);
    let count = |name: &str| {
        items
            .iter()
            .find(|i| i["name"] == name)
            .map(|i| i["count"].clone())
            .unwrap()
    };
    assert_eq!(count("signed-in-or-out"), 3);
    assert_eq!(count("performed-bulk-actions"), 1);
    assert_eq!(count("accessed-out-of-box-entity"), 1);

    let (status, series) = get(
        &server,
        &auth,
        "/api/v1/audit/reports/signed-in-or-out?from=2026-03-01T00:00:00Z&to=2026-03-03T00:00:00Z&bucket=day",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(series["count"], 3);
    assert_eq!(
        series["points"],
        json!([
            {"start": "2026-03-01T00:00:00.000Z", "count": 1},
            {"start": "2026-03-02T00:00:00.000Z", "count": 2},
        ])
    );
    // The names as PRODUCT.md and the reference write them work too.
    let (status, spaced) = get(
        &server,
        &auth,
        "/api/v1/audit/reports/Signed%20in%20or%20out?from=2026-03-01T00:00:00Z",
    )
    .await;
    assert_eq!((status.as_u16(), &spaced["count"]), (200, &json!(3)));
    let (status, _) = get(&server, &auth, "/api/v1/audit/reports/nope").await;
    assert_eq!(status, 404);
    let (status, _) = get(
        &server,
        &auth,
        "/api/v1/audit/reports/signed-in-or-out?bucket=year",
    )
    .await;
    assert_eq!(status, 400);
}

/// Sign-ins and sign-outs as CRMs and Office 365 write them count in the
/// "Signed in or out" report and follow `user_access_auditing`, and an org
/// adds its own names.
#[tokio::test]
async fn sign_ins_are_counted_as_every_system_names_them() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("crm", "manage,write,read").await);
    let at = |i: u32| format!("2026-03-01T10:{i:02}:00Z");
    let batch: Vec<Value> = [
        "UserSignIn",
        "UserSignOut",
        "UserLoggedIn",
        "UserLoginFailed",
        "PortalVisitorSignedIn",
    ]
    .iter()
    .enumerate()
    .map(|(i, op)| json!({"Id": format!("s{i}"), "CreationTime": at(i as u32), "Operation": op, "User": "ana"}))
    .collect();
    post(&server, &auth, &Value::Array(batch)).await;
    async fn signed(server: &TestServer, auth: &Auth) -> Value {
        let (status, series) = get(
            server,
            auth,
            "/api/v1/audit/reports/signed-in-or-out?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z",
        )
        .await;
        assert_eq!(status, 200);
        series["count"].clone()
    }
    assert_eq!(signed(&server, &auth).await, 4);

    let (status, mut settings) = get(&server, &auth, "/api/v1/audit/settings").await;
    assert_eq!(
        (status.as_u16(), &settings["sign_in_operations"]),
        (200, &json!([]))
    );
    settings["sign_in_operations"] = json!(["PortalVisitorSignedIn"]);
    let (status, saved) = put(&server, &auth, "/api/v1/audit/settings", &settings).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(signed(&server, &auth).await, 5, "the org's own name counts");
    // A PUT that leaves the list out keeps it.
    let mut without = saved.clone();
    without
        .as_object_mut()
        .unwrap()
        .remove("sign_in_operations");
    let (_, kept) = put(&server, &auth, "/api/v1/audit/settings", &without).await;
    assert_eq!(kept["sign_in_operations"], json!(["PortalVisitorSignedIn"]));

    // With user access auditing off, every one of those names is left out.
    let mut off = kept.clone();
    off["user_access_auditing"] = json!(false);
    put(&server, &auth, "/api/v1/audit/settings", &off).await;
    let batch: Vec<Value> = ["UserLoggedIn", "PortalVisitorSignedIn", "Update"]
        .iter()
        .enumerate()
        .map(|(i, op)| json!({"Id": format!("t{i}"), "CreationTime": at(30 + i as u32), "Operation": op}))
        .collect();
    let (status, reply) = post(&server, &auth, &Value::Array(batch)).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply["outcomes"],
        json!(["excluded", "excluded", "accepted"]),
        "{reply}"
    );
    assert_eq!(
        reply["excluded_items"][0]["reason"],
        "user_access_auditing_off"
    );
}

/// A server with ten records and a checkpoint after every second one.
async fn chained_server() -> (TestServer, Auth) {
    let server = TestServer::start_with(|config| {
        config.audit.checkpoint_every_seconds = 3600;
        config.audit.checkpoint_every_records = 1_000_000;
    })
    .await;
    let auth = basic(&server.policy("crm", "write,read").await);
    let org = server.org("default").await;
    let key = audit_service::load_or_create_key(server.dir.path()).unwrap();
    let policy = CheckpointPolicy {
        every_records: 1_000_000,
        every_millis: i64::MAX,
    };
    // The policy's own creation is record 1. A checkpoint signs what is
    // linked, so each waits until the records before it are.
    for i in 0..9 {
        post(&server, &auth, &record(&format!("v{i}"), "Update", i)).await;
        if i % 2 == 0 {
            settled(&server, &auth).await;
            audit_service::checkpoint_if_due(&server.stores, &key, org, "default", policy, true)
                .await
                .unwrap();
        }
    }
    settled(&server, &auth).await;
    audit_service::checkpoint_if_due(&server.stores, &key, org, "default", policy, true)
        .await
        .unwrap();
    (server, auth)
}

/// Returns once the activity log's materialiser has stored, chained and
/// indexed every record acknowledged so far: a read waits for it. Tests
/// that edit `audit_log` directly call this first.
async fn settled(server: &TestServer, auth: &Auth) {
    let (status, page) = get(server, auth, "/api/v1/audit/search").await;
    assert_eq!(status, 200, "{page}");
}

async fn verification(server: &TestServer, auth: &Auth) -> Value {
    let (status, body) = get(server, auth, "/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    body
}

#[tokio::test]
async fn verification_finds_every_kind_of_tampering_in_the_file() {
    let (server, auth) = chained_server().await;
    let intact = verification(&server, &auth).await;
    assert_eq!(intact["ok"], true, "{intact}");
    assert_eq!(intact["records_checked"], 10);
    let checkpoints: i64 = db(&server)
        .query_row("SELECT count(*) FROM audit_checkpoints", [], |r| r.get(0))
        .unwrap();
    assert!(checkpoints >= 5, "{checkpoints}");
    let (_, key) = get(&server, &auth, "/api/v1/audit/public-key").await;
    assert_eq!(key["algorithm"], "Ed25519");
    let (_, openapi) = get(&server, &auth, "/api/v1/openapi.json").await;
    for path in [
        "/api/v1/audit/records",
        "/api/v1/audit/records/{id}",
        "/api/v1/audit/settings",
        "/api/v1/audit/settings/entities/{entity}",
        "/api/v1/audit/search",
        "/api/v1/audit/export",
        "/api/v1/audit/reports",
        "/api/v1/audit/reports/{name}",
        "/api/v1/audit/verify",
        "/api/v1/audit/public-key",
        "/ui/audit",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} is undocumented"
        );
    }

    // One byte edited.
    let conn = db(&server);
    conn.execute(
        "UPDATE audit_log SET record = CAST(replace(CAST(record AS TEXT), 'Success', 'Succesz') AS BLOB) WHERE seq = 5",
        [],
    )
    .unwrap();
    let found = verification(&server, &auth).await;
    assert_eq!(found["ok"], false);
    assert_eq!(found["first_break"]["kind"], "record_altered");
    assert_eq!(found["first_break"]["sequence"], 5);
    server.stop().await;

    // A middle row deleted.
    let (server, auth) = chained_server().await;
    db(&server)
        .execute("DELETE FROM audit_log WHERE seq = 6", [])
        .unwrap();
    let found = verification(&server, &auth).await;
    assert_eq!(found["first_break"]["kind"], "records_missing");
    assert_eq!(found["first_break"]["sequence"], 6);
    server.stop().await;

    // The tail deleted.
    let (server, auth) = chained_server().await;
    db(&server)
        .execute("DELETE FROM audit_log WHERE seq >= 9", [])
        .unwrap();
    let found = verification(&server, &auth).await;
    assert_eq!(
        found["first_break"]["kind"], "checkpoint_mismatch",
        "{found}"
    );
    server.stop().await;

    // The tail deleted after the last checkpoint: no checkpoint names those
    // records, but the writer's head does.
    let (server, auth) = chained_server().await;
    for i in 0..3 {
        post(&server, &auth, &record(&format!("t{i}"), "Update", i)).await;
    }
    let intact = verification(&server, &auth).await;
    assert_eq!(intact["ok"], true, "{intact}");
    assert_eq!(intact["last_sequence"], 13);
    let last_checkpoint: i64 = db(&server)
        .query_row("SELECT max(seq) FROM audit_checkpoints", [], |r| r.get(0))
        .unwrap();
    assert_eq!(last_checkpoint, 10, "the new records are not checkpointed");
    let conn = db(&server);
    conn.execute(
        "DELETE FROM audit_fts WHERE rowid IN (SELECT rid FROM audit_log WHERE seq > 11)",
        [],
    )
    .unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq > 11", [])
        .unwrap();
    let found = verification(&server, &auth).await;
    assert_eq!(found["ok"], false, "{found}");
    assert_eq!(found["first_break"]["kind"], "head_mismatch", "{found}");
    assert_eq!(found["first_break"]["sequence"], 13);
    // Writing on does not paper over it: the next record leaves a gap.
    post(&server, &auth, &record("after", "Update", 1)).await;
    let found = verification(&server, &auth).await;
    assert_eq!(found["first_break"]["kind"], "records_missing", "{found}");
    assert_eq!(found["first_break"]["sequence"], 12);
    server.stop().await;

    // Two consecutive checkpoints deleted.
    let (server, auth) = chained_server().await;
    db(&server)
        .execute("DELETE FROM audit_checkpoints WHERE number IN (2, 3)", [])
        .unwrap();
    let found = verification(&server, &auth).await;
    assert_eq!(
        found["first_break"]["kind"], "checkpoints_missing",
        "{found}"
    );
    assert_eq!(found["first_break"]["checkpoint"], 4);
    server.stop().await;

    // Truncated, then re-appended through the API.
    let (server, auth) = chained_server().await;
    let conn = db(&server);
    conn.execute(
        "DELETE FROM audit_fts WHERE rowid IN (SELECT rid FROM audit_log WHERE seq > 4)",
        [],
    )
    .unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq > 4", [])
        .unwrap();
    for i in 0..6 {
        post(&server, &auth, &record(&format!("w{i}"), "Update", i)).await;
    }
    // The new records go after the written head, so the deleted ones show
    // as a gap before any checkpoint is consulted.
    let found = verification(&server, &auth).await;
    assert_eq!(found["first_break"]["kind"], "records_missing", "{found}");
    assert_eq!(found["first_break"]["sequence"], 5);
    server.stop().await;
    // Setting the head back as well is still caught by the checkpoints.
    let (server, auth) = chained_server().await;
    let conn = db(&server);
    conn.execute(
        "DELETE FROM audit_fts WHERE rowid IN (SELECT rid FROM audit_log WHERE seq > 4)",
        [],
    )
    .unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq > 4", [])
        .unwrap();
    conn.execute(
        "UPDATE audit_heads SET seq = 4, hash = (SELECT hash FROM audit_log WHERE seq = 4)",
        [],
    )
    .unwrap();
    for i in 0..6 {
        post(&server, &auth, &record(&format!("w{i}"), "Update", i)).await;
    }
    let found = verification(&server, &auth).await;
    assert_eq!(
        found["first_break"]["kind"], "checkpoint_mismatch",
        "{found}"
    );
    server.stop().await;
}

#[tokio::test]
async fn verification_still_passes_after_a_retention_purge() {
    let (server, auth) = chained_server().await;
    let org = server.org("default").await;
    let key = audit_service::load_or_create_key(server.dir.path()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let purged = audit_service::purge(&server.stores, &key, org, "default", 0)
        .await
        .unwrap();
    assert_eq!(purged, 10);
    post(&server, &auth, &record("after", "Update", 1)).await;
    let result = verification(&server, &auth).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["records_checked"], 1);
    let (_, page) = get(&server, &auth, "/api/v1/audit/search").await;
    assert_eq!(page["count"], 1);

    // Moving the anchor by hand is caught: no checkpoint signed it.
    db(&server)
        .execute("UPDATE audit_anchors SET seq = seq - 1", [])
        .unwrap();
    let found = verification(&server, &auth).await;
    assert_eq!(found["ok"], false, "{found}");
}

#[tokio::test]
async fn retention_is_set_per_org_through_the_api_and_the_purge_keeps_the_chain_valid() {
    let server = TestServer::start_with(|config| {
        config.audit.purge_interval_seconds = 1;
    })
    .await;
    let admin = basic(&server.policy("admin", "manage,read").await);
    let writer = basic(&server.policy("crm", "write,read").await);

    let (status, settings) = get(&server, &admin, "/api/v1/audit/settings").await;
    assert_eq!(status, 200);
    assert_eq!(settings["retention_days"], 90, "the server's default");
    for i in 0..6 {
        let (status, _) = post(&server, &writer, &record(&format!("k{i}"), "Update", i)).await;
        assert_eq!(status, 200);
    }
    // Every record is in `audit_log` before the test ages some of them there.
    settled(&server, &writer).await;
    let (_, page) = get(&server, &writer, "/api/v1/audit/search").await;
    assert_eq!(page["count"], 8);
    // The two policies' creation (1, 2) and the first three records (3 to
    // 5) were stored ten days ago; the rest (6 to 8) now.
    let ten_days = 10 * 86_400_000_i64;
    let aged = db(&server)
        .execute(
            "UPDATE audit_log SET stored_at = stored_at - ?1 WHERE seq <= 5",
            [ten_days],
        )
        .unwrap();
    assert_eq!(aged, 5);

    // Out of range, or an unknown field: refused, nothing changes.
    for days in [json!(0), json!(36_501), json!(-1), json!("7")] {
        let mut body = settings.clone();
        body["retention_days"] = days.clone();
        let (status, _) = put(&server, &admin, "/api/v1/audit/settings", &body).await;
        assert_eq!(status, 400, "retention_days {days}");
    }
    let mut body = settings.clone();
    body["retention_days"] = json!(7);
    let (status, _) = put(&server, &writer, "/api/v1/audit/settings", &body).await;
    assert_eq!(status, 403, "retention needs manage");
    let (_, read_back) = get(&server, &admin, "/api/v1/audit/settings").await;
    assert_eq!(read_back["retention_days"], 90);
    // 90 days keeps everything, however often the purge runs.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let (_, page) = get(&server, &writer, "/api/v1/audit/search").await;
    assert_eq!(page["count"], 8);

    let (status, saved) = put(&server, &admin, "/api/v1/audit/settings", &body).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["retention_days"], 7);
    let (_, read_back) = get(&server, &admin, "/api/v1/audit/settings").await;
    assert_eq!(read_back["retention_days"], 7);
    // Leaving it out keeps it.
    let mut without = read_back.clone();
    without.as_object_mut().unwrap().remove("retention_days");
    let (status, saved) = put(&server, &admin, "/api/v1/audit/settings", &without).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["retention_days"], 7);

    // The background purge removes the records older than 7 days.
    let mut remaining = Value::Null;
    for _ in 0..100 {
        let (_, page) = get(&server, &writer, "/api/v1/audit/search").await;
        remaining = page;
        if remaining["count"] == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Left: records 6 to 8 (k3 to k5) and the two settings changes.
    assert_eq!(remaining["count"], 5, "{remaining}");
    let (status, _) = get(&server, &writer, "/api/v1/audit/records/k2").await;
    assert_eq!(status, 404, "k2 was stored ten days ago");
    let (status, _) = get(&server, &writer, "/api/v1/audit/records/k3").await;
    assert_eq!(status, 200);
    let anchor: i64 = db(&server)
        .query_row("SELECT seq FROM audit_anchors", [], |r| r.get(0))
        .unwrap();
    assert_eq!(anchor, 5);

    // The shorter chain still verifies, and the change is in the log.
    let result = verification(&server, &writer).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["records_checked"], 5);
    let (_, page) = get(
        &server,
        &writer,
        "/api/v1/audit/search?operation=UpdateAuditSettings",
    )
    .await;
    assert_eq!(page["count"], 2);
    let first_change = &page["items"][1]["Fields"];
    assert_eq!(first_change["old"]["retention_days"], 90, "{first_change}");
    assert_eq!(first_change["new"]["retention_days"], 7, "{first_change}");
    server.stop().await;
}

/// Fails to sign in to Tracklog's pages as `name`.
async fn failed_sign_in(server: &TestServer, name: &str) {
    let answer = server.form_sign_in(name, "not the password").await;
    assert_eq!(answer.status, 401);
}

#[tokio::test]
async fn tracklogs_own_sign_ins_follow_user_access_auditing() {
    let server = TestServer::start().await;
    let admin = basic(&server.policy("admin", "read,manage").await);
    let (_, mut settings) = get(&server, &admin, "/api/v1/audit/settings").await;
    settings["user_access_auditing"] = json!(false);
    let (status, _) = put(&server, &admin, "/api/v1/audit/settings", &settings).await;
    assert_eq!(status, 200);
    failed_sign_in(&server, "mallory").await;
    let search = "/api/v1/audit/search?operation=SignInFailed";
    let (_, page) = get(&server, &admin, search).await;
    assert_eq!(page["count"], 0, "user access auditing is off");

    settings["user_access_auditing"] = json!(true);
    put(&server, &admin, "/api/v1/audit/settings", &settings).await;
    failed_sign_in(&server, "mallory").await;
    let (_, page) = get(&server, &admin, search).await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["items"][0]["User"], "mallory");
    assert_eq!(page["items"][0]["ResultStatus"], "Failed");
}

/// Found by `scripts/fuzz-api`: a range bound at the edge of the integers
/// made the verification overflow and drop the connection.
#[tokio::test]
async fn a_verification_range_out_of_bounds_is_a_clear_error() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("auditor", "read").await);
    for query in ["from=-9223372036854775808", "to=0", "from=0&to=5"] {
        let (status, body) = get(&server, &auth, &format!("/api/v1/audit/verify?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["error"]["field"].is_string(), "{query}: {body}");
    }
    // Empty values are no values: the whole chain is verified.
    let (status, body) = get(&server, &auth, "/api/v1/audit/verify?from=&to=").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true);
    server.stop().await;
}
