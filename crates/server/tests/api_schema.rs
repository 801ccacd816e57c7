//! The API document says what the server takes: bodies documented as one
//! object refuse an array, path parameters carry the pattern the server
//! checks, and every operation with a path parameter documents its 400.

mod common;

use common::{TestServer, basic};
use regex::Regex;
use serde_json::{Value, json};

async fn send(
    server: &TestServer,
    auth: &(String, Option<String>),
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = server
        .http
        .request(method, server.url(path))
        .basic_auth(&auth.0, auth.1.as_ref());
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_body_documented_as_one_object_refuses_an_array_and_the_bulk_bodies_take_one() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("admin", "manage,write,read").await);
    let put = reqwest::Method::PUT;
    // serde alone would read [20, 5] into the queue's two fields, in order.
    let (status, body) = send(
        &server,
        &auth,
        put.clone(),
        "/api/v1/queues/q1",
        Some(&json!([20, 5])),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_json");
    let (status, _) = send(
        &server,
        &auth,
        put,
        "/api/v1/queues/q1",
        Some(&json!({"service_level_seconds": 20})),
    )
    .await;
    assert_eq!(status, 200);

    let post = reqwest::Method::POST;
    let contacts = json!([{"id": "c1"}, {"id": "c2"}]);
    let (status, body) = send(
        &server,
        &auth,
        post.clone(),
        "/api/v1/contacts",
        Some(&contacts),
    )
    .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(2)),
        "{body}"
    );

    // A Segment batch's sentAt is a time as text; an object is refused whole.
    let batch = json!({"batch": [], "sentAt": {}});
    let (status, body) = send(&server, &auth, post, "/v1/batch", Some(&batch)).await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_query_parameter_of_the_real_time_stream_is_a_400_naming_it() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("reader", "read").await);
    let get = reqwest::Method::GET;
    let (status, body) = send(
        &server,
        &auth,
        get,
        "/api/v1/realtime?timezone=Mars%2FOlympus",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "timezone");
    server.stop().await;
}

#[tokio::test]
async fn what_the_document_refuses_the_server_refuses_naming_the_field() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("admin", "manage,read").await);
    let cases = [
        (
            reqwest::Method::POST,
            "/api/v1/policies",
            Some(json!({"name": "p", "rights": ["read"], "provider": ""})),
            "provider",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/audit/reports?bucket=fortnight",
            None,
            "bucket",
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/audit/settings",
            Some(json!({
                "auditing_enabled": true, "read_auditing": false, "user_access_auditing": true,
                "excluded_messages": [], "sign_in_operations": [""],
            })),
            "sign_in_operations",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = send(&server, &auth, method.clone(), path, body.as_ref()).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{method} {path}");
    }
    // The real-time stream filtered by queue, with no metric named: every
    // metric that has queues (not occupancy) rather than a refusal.
    let response = server
        .http
        .get(server.url("/api/v1/realtime?queue=billing"))
        .basic_auth(&auth.0, auth.1.as_ref())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    server.stop().await;
}

/// Every `$ref` under `value`, as (where, target).
fn references(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref" {
                    found.push((at.to_owned(), child.as_str().unwrap_or_default().to_owned()));
                } else {
                    references(child, &format!("{at}/{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                references(child, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_reference_in_the_document_resolves() {
    let server = TestServer::start().await;
    let document = server.openapi_document().await;
    let mut found = Vec::new();
    references(&document, "", &mut found);
    assert!(found.len() > 50, "only {} references", found.len());
    for (at, target) in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{at}: {target}"));
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "{at} refers to {target}, which the document does not hold"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn every_path_parameter_has_the_pattern_the_server_checks() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("admin", "manage,write,read").await);
    let document = server.openapi_document().await;
    let schemas = &document["components"]["schemas"];
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let path_parameters: Vec<&Value> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .collect();
            if path_parameters.is_empty() || operation.get("security").is_none() {
                continue;
            }
            assert!(
                operation["responses"].get("400").is_some(),
                "{method} {path} takes a path parameter but documents no 400"
            );
            for parameter in path_parameters {
                let mut schema = &parameter["schema"];
                if let Some(reference) = schema["$ref"].as_str() {
                    schema = &schemas[reference.trim_start_matches("#/components/schemas/")];
                }
                let pattern = schema["pattern"].as_str().unwrap_or_else(|| {
                    panic!("{method} {path}: {} has no pattern", parameter["name"])
                });
                // Rust's regex reads the document's \xNN escapes as JavaScript would.
                let pattern = Regex::new(pattern).unwrap();
                assert!(!pattern.is_match("a\u{1}b"), "{method} {path}: {pattern}");
                assert!(!pattern.is_match(""), "{method} {path}: {pattern}");
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "only {checked} path parameters seen");

    // What a pattern refuses, the server refuses with a 400 naming it; what
    // it allows reaches the operation (here: a 404 for an unknown user).
    let get = reqwest::Method::GET;
    let (status, body) = send(&server, &auth, get.clone(), "/api/v1/users/a%01b", None).await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("name")),
        "{body}"
    );
    let (status, _) = send(
        &server,
        &auth,
        get.clone(),
        "/api/v1/users/nobody.here",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = send(&server, &auth, get, "/api/v1/contacts/c%7F1", None).await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
}
