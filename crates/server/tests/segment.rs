//! Segment-spec ingestion against a real server: Segment's official Python and
//! Node clients, unchanged, run the scripts in `tests/segment/`; then the
//! interactions are read back from the timeline API. Plus the single-message
//! routes, limits and errors with plain HTTP.
//!
//! `scripts/test` installs the clients outside the repository. Where one is
//! missing, its test is skipped with a message, except under CI (`CI` set),
//! where it fails.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracklog_domain::ids::ContactId;
use tracklog_store::Policy;

fn cache_dir(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join(name)
}

/// The Python interpreter that has `segment-analytics-python`.
fn python_client() -> Option<PathBuf> {
    let python = std::env::var_os("TRACKLOG_SEGMENT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir("tracklog-test-python").join("bin/python3"));
    let works = Command::new(&python)
        .args(["-c", "import segment.analytics"])
        .output()
        .is_ok_and(|o| o.status.success());
    works.then_some(python)
}

/// The `node_modules` directory that has `@segment/analytics-node`.
fn node_client() -> Option<PathBuf> {
    let modules = std::env::var_os("TRACKLOG_SEGMENT_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir("tracklog-test-node").join("node_modules"));
    let installed = modules
        .join("@segment/analytics-node/package.json")
        .exists();
    let node = Command::new("node").arg("--version").output();
    (installed && node.is_ok_and(|o| o.status.success())).then_some(modules)
}

fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required under CI: run ./scripts/test");
    }
    eprintln!("skipping: {what} is not installed (./scripts/test installs it)");
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/segment")
        .join(name)
}

/// The Segment write key of a policy: `<policy>:<key>`.
fn write_key(policy: &Policy) -> String {
    format!("{}:{}", policy.name, policy.primary_key.expose())
}

/// Runs a client script to completion, within a time limit.
async fn run_client(mut command: Command) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || command.output().expect("start the client")),
    )
    .await
    .expect("the client finished within 60 s")
    .unwrap();
    assert!(
        output.status.success(),
        "the client failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn timeline(server: &TestServer, reader: &Policy, contact: &str) -> Vec<Value> {
    let response = server
        .http
        .get(server.url(&format!("/api/v1/contacts/{contact}/interactions")))
        .basic_auth(reader.name.as_str(), Some(reader.primary_key.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

fn by_id<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["portal_interactionid"] == id)
        .unwrap_or_else(|| panic!("{id} is not in {items:#?}"))
}

async fn metric(server: &TestServer, line_start: &str) -> f64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The contact as the store holds it, in the §8 shape.
async fn contact(server: &TestServer, id: &str) -> Value {
    let org = server.org("default").await;
    let contact = server
        .stores
        .portals
        .contact(org, &ContactId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("contact {id} was not upserted"));
    let mut value = contact.to_json();
    value.as_object_mut().unwrap().remove("updated_at");
    value
}

async fn setup() -> (TestServer, Policy, Policy) {
    let server = TestServer::start().await;
    let writer = server
        .policy_in("default", "segment", "write", Some("support"))
        .await;
    let reader = server.policy("reader", "read").await;
    (server, writer, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_sends_interactions() {
    let Some(python) = python_client() else {
        return missing("segment-analytics-python");
    };
    let (server, writer, reader) = setup().await;
    let mut command = Command::new(python);
    command
        .arg(script("send.py"))
        .arg(server.url(""))
        .arg(write_key(&writer));
    run_client(command).await;

    let items = timeline(&server, &reader, "c-py").await;
    assert_eq!(items.len(), 3, "{items:#?}");
    let article = by_id(&items, "py-article");
    assert_eq!(article["type"], "portal_viewknowledgearticle");
    assert_eq!(article["portal_knowledgearticleid"], "KA-1");
    assert_eq!(article["language"], "en-US");
    assert_eq!(article["session_id"], "s-py");
    assert_eq!(
        article["portal_portalid"], "support",
        "from the key's scope"
    );
    let forum = by_id(&items, "py-forum");
    assert_eq!(forum["type"], "portal_viewforumthread");
    assert_eq!(forum["portal_forumthreadtitle"], "Printer jams");
    assert_eq!(forum["session_id"], "anon-py", "anonymousId is the session");
    assert_eq!(
        by_id(&items, "py-search")["portal_searchstring"],
        "printer jam"
    );
    // The unknown type was refused per item and counted.
    let refused = metric(
        &server,
        r#"tracklog_events_rejected_total{kind="interaction",reason="unknown_interaction_type"}"#,
    )
    .await;
    assert_eq!(refused, 1.0);
    assert_eq!(
        contact(&server, "c-py").await,
        json!({"id": "c-py", "name": "Ana Lima", "email": "ana@example.com",
               "attributes": {"plan": "gold"}})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_node_client_sends_interactions() {
    let Some(modules) = node_client() else {
        return missing("@segment/analytics-node");
    };
    let (server, writer, reader) = setup().await;
    let mut command = Command::new("node");
    command
        .env("NODE_PATH", modules)
        .arg(script("send.cjs"))
        .arg(server.url(""))
        .arg(write_key(&writer));
    run_client(command).await;

    let items = timeline(&server, &reader, "c-node").await;
    assert_eq!(items.len(), 2, "{items:#?}");
    let blog = by_id(&items, "node-blog");
    assert_eq!(blog["type"], "portal_viewblogpost");
    assert_eq!(blog["portal_blogtitle"], "What is new");
    assert_eq!(blog["session_id"], "anon-node");
    let article = by_id(&items, "node-article");
    assert_eq!(article["type"], "portal_viewknowledgearticle");
    assert_eq!(article["portal_knowledgetitle"], "Toner");
    assert_eq!(article["session_id"], "s-node");
    assert_eq!(
        contact(&server, "c-node").await,
        json!({"id": "c-node", "name": "Bo Berg", "email": "bo@example.com",
               "attributes": {"firstName": "Bo", "lastName": "Berg"}})
    );
    server.stop().await;
}

async fn post(server: &TestServer, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
    let response = server
        .http
        .post(server.url(path))
        .basic_auth(key, Some(""))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn single_message_routes_report_every_outcome() {
    let (server, writer, reader) = setup().await;
    let key = write_key(&writer);
    let track = json!({
        "userId": "c-1", "event": "portal_search", "messageId": "t-1",
        "timestamp": "2026-11-20T10:00:00Z", "properties": {"portal_searchstring": "toner"},
    });
    let (status, reply) = post(&server, "/v1/track", &key, &track).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply,
        json!({"success": true, "accepted": 1, "duplicates": 0, "rejected": []})
    );
    // A retry of the same message stores one copy.
    let (_, reply) = post(&server, "/v1/track", &key, &track).await;
    assert_eq!(reply["duplicates"], 1);

    let page = json!({
        "userId": "c-1", "messageId": "p-1", "timestamp": "2026-11-20T10:01:00Z",
        "name": "Jams", "properties": {"portal_blogpostid": "B-1"},
    });
    let (_, reply) = post(&server, "/v1/page", &key, &page).await;
    assert_eq!(reply["accepted"], 1);

    // Another portal than the key's scope: a 200 for the client, a reason per item.
    let (status, reply) = post(
        &server,
        "/v1/batch",
        &key,
        &json!({"batch": [
            {"type": "track", "userId": "c-1", "event": "portal_search", "messageId": "t-2",
             "properties": {"portal_searchstring": "x", "portal_portalid": "partners"}},
            {"type": "screen", "userId": "c-1", "messageId": "s-1"},
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["success"], true);
    assert_eq!(reply["accepted"], 0);
    assert_eq!(reply["rejected"][0]["reason"], "portal_out_of_scope");
    assert_eq!(reply["rejected"][0]["id"], "t-2");
    assert_eq!(reply["rejected"][1]["index"], 1);
    assert_eq!(reply["rejected"][1]["field"], "type");

    // identify upserts, merging traits into what is known.
    let identify = |traits: Value| json!({"userId": "c-1", "traits": traits});
    let (_, reply) = post(
        &server,
        "/v1/identify",
        &key,
        &identify(json!({"name": "Ana", "tier": 1})),
    )
    .await;
    assert_eq!(reply["accepted"], 1);
    let (_, reply) = post(
        &server,
        "/v1/identify",
        &key,
        &identify(json!({"email": "a@example.com"})),
    )
    .await;
    assert_eq!(reply["accepted"], 1);
    assert_eq!(
        contact(&server, "c-1").await,
        json!({"id": "c-1", "name": "Ana", "email": "a@example.com", "attributes": {"tier": 1}})
    );
    let (status, reply) = post(&server, "/v1/identify", &key, &json!({"anonymousId": "a"})).await;
    assert_eq!(status, 200);
    assert_eq!(reply["rejected"][0]["field"], "userId");
    let (_, reply) = post(
        &server,
        "/v1/identify",
        &key,
        &identify(json!({"name": "x".repeat(400)})),
    )
    .await;
    assert_eq!(reply["rejected"][0]["field"], "traits.name");
    for reason in ["missing_field", "invalid_field"] {
        let line = format!(r#"tracklog_events_rejected_total{{kind="contact",reason="{reason}"}}"#);
        assert_eq!(metric(&server, &line).await, 1.0, "{line}");
    }

    let items = timeline(&server, &reader, "c-1").await;
    let ids: Vec<_> = items.iter().map(|i| &i["portal_interactionid"]).collect();
    assert_eq!(ids, [&json!("t-1"), &json!("p-1")]);
    assert_eq!(items[1]["portal_blogtitle"], "Jams");
    server.stop().await;
}

#[tokio::test]
async fn write_keys_bodies_and_limits_are_checked() {
    let server = TestServer::start_with(|config| {
        config.ingest.max_batch_items = 2;
        config.ingest.max_body_bytes = 4096;
    })
    .await;
    let writer = server.policy("segment", "write").await;
    let key = write_key(&writer);
    let reader = server.policy("reader", "read").await;
    let message = json!({"type": "track", "userId": "c", "event": "portal_search",
        "messageId": "m", "properties": {"portal_searchstring": "x", "portal_portalid": "p"}});

    let (status, _) = post(&server, "/v1/batch", "segment:wrong", &json!({"batch": []})).await;
    assert_eq!(status, 401);
    let reader_key = write_key(&reader);
    let (status, _) = post(&server, "/v1/batch", &reader_key, &json!({"batch": []})).await;
    assert_eq!(status, 403);
    let (status, reply) = post(&server, "/v1/batch", &key, &json!([message])).await;
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = post(
        &server,
        "/v1/batch",
        &key,
        &json!({"batch": [message, message, message]}),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(reply["error"]["field"], "max_batch_items");

    // gzip is inflated within max_body_bytes.
    let gzip = |body: &Value| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(body.to_string().as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let send_gzip = |body: Vec<u8>| {
        server
            .http
            .post(server.url("/v1/batch"))
            .basic_auth(&key, Some(""))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body)
            .send()
    };
    let response = send_gzip(gzip(&json!({"batch": [message]}))).await.unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["accepted"], 1);
    let mut large = message.clone();
    large["properties"]["padding"] = json!(" ".repeat(8000));
    let response = send_gzip(gzip(&json!({"batch": [large]}))).await.unwrap();
    assert_eq!(response.status(), 413);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["error"]["field"], "max_body_bytes");
    server.stop().await;
}

#[tokio::test]
async fn the_routes_are_in_the_openapi_document() {
    let server = TestServer::start().await;
    let document: Value = server
        .http
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in ["/v1/batch", "/v1/track", "/v1/page", "/v1/identify"] {
        assert!(document["paths"][path]["post"].is_object(), "{path}");
    }
    assert!(document["paths"]["/sdk/tracker.js"]["get"].is_object());
    server.stop().await;
}
