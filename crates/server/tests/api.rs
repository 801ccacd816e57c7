//! The HTTP API against a real server: ingestion, timelines, policies, errors,
//! credentials and org isolation.

mod common;

use std::io::Write;
use std::process::Command;

use common::{TestServer, article, basic};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracklog_domain::time::UtcMillis;

async fn post_json(
    server: &TestServer,
    auth: &(String, Option<String>),
    path: &str,
    body: &Value,
) -> reqwest::Response {
    server
        .http
        .post(server.url(path))
        .basic_auth(&auth.0, auth.1.as_ref())
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn timeline(
    server: &TestServer,
    auth: &(String, Option<String>),
    contact: &str,
    query: &str,
) -> Value {
    let response = server
        .http
        .get(server.url(&format!("/api/v1/contacts/{contact}/interactions{query}")))
        .basic_auth(&auth.0, auth.1.as_ref())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["portal_interactionid"].as_str().unwrap().to_owned())
        .collect()
}

async fn error_code(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"].clone())
}

#[tokio::test]
async fn interactions_flow_in_every_body_shape_and_read_back_oldest_first() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("app", "write,read").await);

    // A JSON array with one bad item: the good ones are kept.
    let batch = json!([
        article("a2", "c1", "2026-03-01T10:02:00Z"),
        {"portal_interactionid": "bad", "type": "portal_viewvideo",
         "portal_timestamp": "2026-03-01T10:00:00Z", "portal_portalid": "support"},
        article("a1", "c1", "2026-03-01T10:01:00Z"),
    ]);
    let report: Value = post_json(&server, &auth, "/api/v1/interactions", &batch)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["rejected"][0]["index"], 1);
    assert_eq!(report["rejected"][0]["id"], "bad");
    assert_eq!(report["rejected"][0]["reason"], "unknown_interaction_type");

    // A single object.
    let report: Value = post_json(
        &server,
        &auth,
        "/api/v1/interactions",
        &article("a3", "c1", "2026-03-01T10:03:00Z"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(report["accepted"], 1);

    // NDJSON, gzip-compressed, with a bad line in the middle.
    let ndjson = format!(
        "{}\nnot json\n{}\n",
        article("a4", "c1", "2026-03-01T10:04:00Z"),
        article("a0", "c1", "2026-03-01T10:00:00Z")
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(ndjson.as_bytes()).unwrap();
    let response = server
        .http
        .post(server.url("/api/v1/interactions"))
        .basic_auth(&auth.0, auth.1.as_ref())
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["rejected"][0]["index"], 1);
    assert_eq!(report["rejected"][0]["reason"], "invalid_json");

    let page = timeline(&server, &auth, "c1", "").await;
    assert_eq!(ids(&page), ["a0", "a1", "a2", "a3", "a4"]);
    assert_eq!(
        page["items"][1]["portal_knowledgetitle"],
        "Reset your password"
    );
    assert_eq!(
        page["items"][1]["portal_timestamp"],
        "2026-03-01T10:01:00.000Z"
    );
    assert!(page["next_cursor"].is_null());

    // Paging and the window.
    let first = timeline(&server, &auth, "c1", "?limit=2").await;
    assert_eq!(ids(&first), ["a0", "a1"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = timeline(&server, &auth, "c1", &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second), ["a2", "a3"]);
    let window = timeline(
        &server,
        &auth,
        "c1",
        "?from=2026-03-01T10:01:00Z&to=2026-03-01T10:03:00Z",
    )
    .await;
    assert_eq!(ids(&window), ["a1", "a2"]);
    server.stop().await;
}

#[tokio::test]
async fn a_retry_with_the_same_ids_stores_one_copy() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("app", "write,read").await);
    let batch = json!([
        article("r1", "c9", "2026-03-01T10:00:00Z"),
        article("r2", "c9", "2026-03-01T10:01:00Z")
    ]);
    let first: Value = post_json(&server, &auth, "/api/v1/interactions", &batch)
        .await
        .json()
        .await
        .unwrap();
    let again: Value = post_json(&server, &auth, "/api/v1/interactions", &batch)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(ids(&timeline(&server, &auth, "c9", "").await), ["r1", "r2"]);
    server.stop().await;
}

/// The log acknowledges while the tables are locked, up to its bound:
/// past it, ingestion answers 503 with Retry-After and loses nothing that
/// was acknowledged.
#[tokio::test]
async fn a_full_log_answers_503_with_retry_after() {
    let server = TestServer::start_with(|c| {
        c.ingest.log_max_bytes = 6_000;
        c.storage.busy_timeout_ms = 20_000;
    })
    .await;
    let auth = basic(&server.policy("app", "write,read").await);
    // Another process holds the database's write lock, so the materialiser
    // waits and the log fills.
    let db = rusqlite::Connection::open(server.dir.path().join("tracklog.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let mut acknowledged = Vec::new();
    let mut overloaded = None;
    for i in 0..200 {
        let id = format!("q{i}");
        let response = post_json(
            &server,
            &auth,
            "/api/v1/interactions",
            &article(&id, "cq", "2026-03-01T10:00:00Z"),
        )
        .await;
        match response.status() {
            StatusCode::OK => acknowledged.push(id),
            StatusCode::SERVICE_UNAVAILABLE => {
                overloaded = Some(response);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let overloaded = overloaded.expect("the log never filled");
    assert!(acknowledged.len() >= 5, "{acknowledged:?}");
    assert_eq!(overloaded.headers()["retry-after"], "1");
    let (_, error) = error_code(overloaded).await;
    assert_eq!(error["code"], "unavailable");

    db.execute_batch("ROLLBACK").unwrap();
    // Everything acknowledged is applied once the lock is gone, and a read
    // waits for it.
    let mut stored = ids(&timeline(&server, &auth, "cq", "").await);
    stored.sort();
    acknowledged.sort();
    assert_eq!(stored, acknowledged);
    let metrics = metrics_text(&server).await;
    assert!(
        metrics
            .contains("tracklog_events_rejected_total{kind=\"interaction\",reason=\"overloaded\"}")
    );
    server.stop().await;
}

#[tokio::test]
async fn limits_answer_413_or_400_naming_the_limit() {
    let server = TestServer::start_with(|c| {
        c.ingest.max_body_bytes = 4096;
        c.ingest.max_batch_items = 3;
        c.ingest.max_field_bytes = 64;
    })
    .await;
    let auth = basic(&server.policy("app", "write,read").await);

    let big = "x".repeat(5000);
    let response = server
        .http
        .post(server.url("/api/v1/interactions"))
        .basic_auth(&auth.0, auth.1.as_ref())
        .body(format!("[\"{big}\"]"))
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(status, 413);
    assert_eq!(error["field"], "max_body_bytes");

    let four: Vec<Value> = (0..4)
        .map(|i| article(&format!("l{i}"), "c", "2026-03-01T10:00:00Z"))
        .collect();
    let (status, error) =
        error_code(post_json(&server, &auth, "/api/v1/interactions", &Value::Array(four)).await)
            .await;
    assert_eq!(status, 413);
    assert_eq!(error["field"], "max_batch_items");

    // A gzip body that inflates past the limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 100_000]).unwrap();
    let response = server
        .http
        .post(server.url("/api/v1/interactions"))
        .basic_auth(&auth.0, auth.1.as_ref())
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // A field over its limit is refused per item, naming the field and limit.
    let mut long = article("long", "c", "2026-03-01T10:00:00Z");
    long["portal_knowledgetitle"] = json!("t".repeat(65));
    let report: Value = post_json(
        &server,
        &auth,
        "/api/v1/interactions",
        &json!([long, article("ok", "c", "2026-03-01T10:00:00Z")]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(report["accepted"], 1);
    assert_eq!(report["rejected"][0]["reason"], "field_too_long");
    assert_eq!(report["rejected"][0]["field"], "portal_knowledgetitle");
    assert!(
        report["rejected"][0]["message"]
            .as_str()
            .unwrap()
            .contains("max_field_bytes")
    );

    // 400s: not JSON, a bad parameter, a bad cursor, an unknown encoding.
    let response = server
        .http
        .post(server.url("/api/v1/interactions"))
        .basic_auth(&auth.0, auth.1.as_ref())
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, error) = error_code(response).await;
    assert_eq!(
        (status.as_u16(), error["code"].as_str()),
        (400, Some("invalid_json"))
    );
    for (query, field) in [
        ("?from=yesterday", "from"),
        ("?limit=0", "limit"),
        ("?cursor=zzz", "cursor"),
    ] {
        let response = server
            .http
            .get(server.url(&format!("/api/v1/contacts/c/interactions{query}")))
            .basic_auth(&auth.0, auth.1.as_ref())
            .send()
            .await
            .unwrap();
        let (status, error) = error_code(response).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(error["field"], field, "{query}");
    }
    let response = server
        .http
        .post(server.url("/api/v1/interactions"))
        .basic_auth(&auth.0, auth.1.as_ref())
        .header("content-encoding", "br")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

fn python_sas(uri: &str, policy: &str, key: &str, expiry: i64) -> String {
    azure_sas(uri, policy, key, expiry, false)
}

fn dotnet_sas(uri: &str, policy: &str, key: &str, expiry: i64) -> String {
    azure_sas(uri, policy, key, expiry, true)
}

fn azure_sas(uri: &str, policy: &str, key: &str, expiry: i64, dotnet: bool) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/azure_sas.py");
    let expiry = expiry.to_string();
    let mut args = vec![script, uri, policy, key, &expiry];
    if dotnet {
        args.push("--dotnet");
    }
    let output = Command::new("python3")
        .args(args)
        .output()
        .expect("python3 runs the independent SAS implementation");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn sas_tokens_from_azures_algorithm_pass_and_bad_ones_do_not() {
    let server = TestServer::start().await;
    let policy = server.policy("reader", "read").await;
    let key = policy.primary_key.expose();
    let future = UtcMillis::now().as_millis() / 1000 + 3600;
    let get = |token: String, path: &'static str| {
        let http = server.http.clone();
        let url = server.url(path);
        async move {
            http.get(url)
                .header("authorization", token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let base = format!("http://{}/api/v1", server.addr);

    let python = python_sas(&base, "reader", key, future);
    assert!(
        python.contains("%3A%2F%2F"),
        "Python writes uppercase escapes: {python}"
    );
    assert_eq!(
        get(python.clone(), "/api/v1/contacts/c/interactions").await,
        200
    );
    let dotnet = dotnet_sas(&base, "reader", key, future);
    assert!(
        dotnet.contains("%3a%2f%2f"),
        ".NET writes lowercase escapes: {dotnet}"
    );
    assert_eq!(get(dotnet, "/api/v1/contacts/c/interactions").await, 200);

    // The secondary key works too.
    let secondary = python_sas(&base, "reader", policy.secondary_key.expose(), future);
    assert_eq!(get(secondary, "/api/v1/contacts/c/interactions").await, 200);

    // Expired, tampered, wrong key, unknown policy: 401.
    let expired = python_sas(&base, "reader", key, future - 7200);
    assert_eq!(get(expired, "/api/v1/contacts/c/interactions").await, 401);
    let tampered = python.replacen(&format!("se={future}"), &format!("se={}", future + 1), 1);
    assert_eq!(get(tampered, "/api/v1/contacts/c/interactions").await, 401);
    let wrong_key = python_sas(&base, "reader", "not-the-key", future);
    assert_eq!(get(wrong_key, "/api/v1/contacts/c/interactions").await, 401);
    let unknown = python_sas(&base, "nobody", key, future);
    assert_eq!(get(unknown, "/api/v1/contacts/c/interactions").await, 401);

    // A token for another resource is the right credential out of scope: 403.
    let narrow = python_sas(
        &format!("http://{}/api/v1/policies", server.addr),
        "reader",
        key,
        future,
    );
    assert_eq!(get(narrow, "/api/v1/contacts/c/interactions").await, 403);
    server.stop().await;
}

#[tokio::test]
async fn missing_credentials_and_rights() {
    let server = TestServer::start().await;
    let reader = basic(&server.policy("reader", "read").await);
    let writer = basic(&server.policy("writer", "write").await);
    let body = json!([article("x", "c", "2026-03-01T10:00:00Z")]);

    let response = server
        .http
        .post(server.url("/api/v1/interactions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let wrong = ("reader".to_owned(), Some("wrong".to_owned()));
    assert_eq!(
        post_json(&server, &wrong, "/api/v1/interactions", &body)
            .await
            .status(),
        401
    );

    let (status, error) =
        error_code(post_json(&server, &reader, "/api/v1/interactions", &body).await).await;
    assert_eq!(
        (status.as_u16(), error["code"].as_str()),
        (403, Some("forbidden"))
    );
    let response = server
        .http
        .get(server.url("/api/v1/contacts/c/interactions"))
        .basic_auth(&writer.0, writer.1.as_ref())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = server
        .http
        .get(server.url("/api/v1/policies"))
        .basic_auth(&writer.0, writer.1.as_ref())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "policies need manage");
    server.stop().await;
}

#[tokio::test]
async fn policies_api_creates_rotates_and_deletes_with_an_audit_trail() {
    let server = TestServer::start().await;
    let admin = basic(&server.policy("admin", "manage").await);

    let response = post_json(
        &server,
        &admin,
        "/api/v1/policies",
        &json!({"name": "portal-a", "rights": ["write"], "portal": "support"}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let primary = created["primary_key"].as_str().unwrap().to_owned();
    let secondary = created["secondary_key"].as_str().unwrap().to_owned();
    assert_eq!(base64_len(&primary), 32);
    assert_ne!(primary, secondary);

    let (status, _) = error_code(
        post_json(
            &server,
            &admin,
            "/api/v1/policies",
            &json!({"name": "portal-a", "rights": ["read"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 409);
    let (status, error) = error_code(
        post_json(
            &server,
            &admin,
            "/api/v1/policies",
            &json!({"name": "bad name", "rights": ["read"]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status.as_u16(), error["field"].as_str()),
        (400, Some("name"))
    );
    let (status, error) = error_code(
        post_json(
            &server,
            &admin,
            "/api/v1/policies",
            &json!({"name": "p2", "rights": ["admin"]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status.as_u16(), error["field"].as_str()),
        (400, Some("rights"))
    );

    let listed: Value = server
        .http
        .get(server.url("/api/v1/policies"))
        .basic_auth(&admin.0, admin.1.as_ref())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "portal-a"]);
    assert!(
        listed["items"][1].get("primary_key").is_none(),
        "keys are never listed"
    );

    let one: Value = server
        .http
        .get(server.url("/api/v1/policies/portal-a"))
        .basic_auth(&admin.0, admin.1.as_ref())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["portal"], "support");

    // Rotating the secondary key leaves the primary working.
    let rotated: Value = post_json(
        &server,
        &admin,
        "/api/v1/policies/portal-a/rotate",
        &json!({"key": "secondary"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(rotated["primary_key"], primary.as_str());
    assert_ne!(rotated["secondary_key"], secondary.as_str());
    let writer_old_secondary = ("portal-a".to_owned(), Some(secondary));
    let body = article("p1", "c", "2026-03-01T10:00:00Z");
    assert_eq!(
        post_json(
            &server,
            &writer_old_secondary,
            "/api/v1/interactions",
            &body
        )
        .await
        .status(),
        401
    );
    let writer = ("portal-a".to_owned(), Some(primary));
    assert_eq!(
        post_json(&server, &writer, "/api/v1/interactions", &body)
            .await
            .status(),
        200
    );

    // Portal scope: this policy cannot write as another portal.
    let mut other_portal = article("p2", "c", "2026-03-01T10:00:00Z");
    other_portal["portal_portalid"] = json!("partners");
    let report: Value = post_json(
        &server,
        &writer,
        "/api/v1/interactions",
        &json!([other_portal]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(report["rejected"][0]["reason"], "portal_out_of_scope");

    let response = server
        .http
        .delete(server.url("/api/v1/policies/portal-a"))
        .basic_auth(&admin.0, admin.1.as_ref())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        post_json(&server, &writer, "/api/v1/interactions", &body)
            .await
            .status(),
        401
    );
    let response = server
        .http
        .delete(server.url("/api/v1/policies/portal-a"))
        .basic_auth(&admin.0, admin.1.as_ref())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let org = server.org("default").await;
    let audit = server
        .stores
        .audit
        .recent_audit(org, None, 50)
        .await
        .unwrap();
    let operations: Vec<(&str, &str)> = audit
        .iter()
        .rev()
        .map(|r| {
            (
                r.operation.as_str(),
                r.result_status.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        operations,
        [
            ("CreateAccessPolicy", "Success"),
            ("CreateAccessPolicy", "Success"),
            ("CreateAccessPolicy", "Failed"),
            ("UpdateAccessPolicyKey", "Success"),
            ("DeleteAccessPolicy", "Success"),
            ("DeleteAccessPolicy", "Failed"),
        ]
    );
    let rotate = audit
        .iter()
        .find(|r| r.operation == "UpdateAccessPolicyKey")
        .unwrap();
    assert_eq!(rotate.user.as_deref(), Some("policy:admin"));
    assert_eq!(rotate.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(rotate.entity_id.as_deref(), Some("portal-a"));
    let text = serde_json::to_string(&audit).unwrap();
    assert!(
        !text.contains(rotated["secondary_key"].as_str().unwrap()),
        "keys never reach the audit log"
    );
    server.stop().await;
}

fn base64_len(text: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_second_org_sees_nothing_of_the_first() {
    let server = TestServer::start().await;
    let first = basic(
        &server
            .policy_in("default", "first-admin", "manage", None)
            .await,
    );
    let second = basic(&server.policy_in("acme", "acme-admin", "manage", None).await);
    let body = json!([article("secret", "c1", "2026-03-01T10:00:00Z")]);
    assert_eq!(
        post_json(&server, &first, "/api/v1/interactions", &body)
            .await
            .status(),
        200
    );

    assert!(ids(&timeline(&server, &second, "c1", "").await).is_empty());
    let listed: Value = server
        .http
        .get(server.url("/api/v1/policies"))
        .basic_auth(&second.0, second.1.as_ref())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    for request in [
        server.http.get(server.url("/api/v1/policies/first-admin")),
        server
            .http
            .delete(server.url("/api/v1/policies/first-admin")),
        server
            .http
            .post(server.url("/api/v1/policies/first-admin/rotate")),
    ] {
        let response = request
            .basic_auth(&second.0, second.1.as_ref())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
    // The same interaction id in the second org is its own record.
    let report: Value = post_json(&server, &second, "/api/v1/interactions", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["duplicates"], 0);
    assert_eq!(ids(&timeline(&server, &first, "c1", "").await), ["secret"]);
    server.stop().await;
}

#[tokio::test]
async fn operations_endpoints_and_the_openapi_document() {
    let server = TestServer::start().await;
    let health: Value = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let auth = basic(&server.policy("app", "write").await);
    post_json(
        &server,
        &auth,
        "/api/v1/interactions",
        &json!([article("m1", "c", "2026-03-01T10:00:00Z"), {"x": 1}]),
    )
    .await;
    let metrics = metrics_text(&server).await;
    for line in [
        "tracklog_events_ingested_total{kind=\"interaction\"} 1",
        "tracklog_events_rejected_total{kind=\"interaction\",reason=\"missing_field\"} 1",
        "tracklog_batch_commit_seconds_count",
        "tracklog_queue_depth 0",
    ] {
        assert!(metrics.contains(line), "missing {line}\n{metrics}");
    }

    let doc: Value = server
        .http
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/api/v1/interactions",
        "/api/v1/contacts/{id}/interactions",
        "/api/v1/policies",
        "/api/v1/policies/{name}",
        "/api/v1/policies/{name}/rotate",
        "/healthz",
        "/readyz",
        "/metrics",
        "/login",
        "/logout",
        "/",
        "/api/v1/openapi.json",
        "/static/app.css",
    ] {
        assert!(paths.contains(&path), "{path} is not documented");
    }
    server.stop().await;
}

async fn metrics_text(server: &TestServer) -> String {
    server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
