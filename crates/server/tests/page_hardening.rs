//! Abuse of the pages: guessing passwords at the sign-in form, and markup
//! smuggled into any field. Plain HTTP, no browser: what is checked is what
//! the server sends.

mod common;

use std::time::Duration;

use common::{TestServer, basic};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracklog_domain::auth::make_sas_token;
use tracklog_domain::ids::UserName;
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;
use tracklog_server::services::{Actor, users};

async fn add_user(server: &TestServer, name: &str, role: Role, password: &str) {
    let org = server.org("default").await;
    users::add(
        &server.stores,
        org,
        &Actor::cli(),
        UserName::parse(name).unwrap(),
        role,
        password.into(),
    )
    .await
    .unwrap();
}

async fn lockouts(server: &TestServer, auth: &(String, Option<String>)) -> Vec<Value> {
    // Records are written behind the acknowledgement: wait for them.
    for _ in 0..100 {
        let page: Value = server
            .http
            .get(server.url("/api/v1/audit/search?operation=SignInLockedOut&limit=10"))
            .basic_auth(&auth.0, auth.1.as_ref())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= 2 {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the lockouts were not recorded");
}

#[tokio::test]
async fn failed_sign_ins_lock_the_user_name_then_the_address_out() {
    let server = TestServer::start_with(|config| {
        config.ui.sign_in.failures_per_user = 3;
        config.ui.sign_in.failures_per_address = 5;
        config.ui.sign_in.lockout_seconds = 2;
    })
    .await;
    add_user(&server, "ana", Role::Admin, "ana's long password").await;
    add_user(&server, "bo", Role::Agent, "bo's long password").await;
    let admin = basic(&server.policy("auditor", "read").await);

    // Three wrong passwords for ana: each refused, the third locks her out.
    for _ in 0..3 {
        let answer = server.form_sign_in("ana", "a guess").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password is now refused, without being checked, and
    // the page says when to come back. Another spelling is the same name.
    let answer = server.form_sign_in(" ANA", "ana's long password").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.session.is_none());
    let retry: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert!(
        answer
            .page
            .contains("Too many failed sign-ins for this user name"),
        "{}",
        answer.page
    );

    // bo is not locked out by ana's failures, but the address has 3 of its
    // 5: two more, with any names, lock the address out for everyone.
    assert!(
        server
            .form_sign_in("bo", "bo's long password")
            .await
            .session
            .is_some()
    );
    assert_eq!(
        server.form_sign_in("bo", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.form_sign_in("nobody", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    let answer = server.form_sign_in("bo", "bo's long password").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.page.contains("from this address"), "{}", answer.page);

    // Both lockouts are in the activity log, with what started them.
    let records = lockouts(&server, &admin).await;
    let by_entity = |name: &str| {
        records
            .iter()
            .find(|r| r["EntityName"] == name)
            .unwrap_or_else(|| panic!("no {name} lockout in {records:?}"))
            .clone()
    };
    let user = by_entity("user");
    assert_eq!(user["EntityId"], "ana");
    assert_eq!(user["Fields"]["failures"], 3);
    assert_eq!(user["Fields"]["lockout_seconds"], 2);
    assert_eq!(user["ClientIP"], "127.0.0.1");
    let address = by_entity("client_address");
    assert_eq!(address["EntityId"], "127.0.0.1");
    assert_eq!(address["Fields"]["failures"], 5);

    // The lockouts end by themselves.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let answer = server.form_sign_in("ana", "ana's long password").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(answer.session.is_some());

    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tracklog_logins_total{outcome=\"throttled\"} 2"),
        "{metrics}"
    );
    server.stop().await;
}

/// Markup that would run if any page wrote a value without escaping it.
const PAYLOAD: &str = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>";

/// Puts [`PAYLOAD`] into every free-text field a page shows: an activity-log
/// record, a portal, a contact and case, an interaction, a channel session.
async fn seed(server: &TestServer) -> (String, String) {
    let auth = basic(&server.policy("crm", "manage").await);
    let post = |path: &'static str, body: Value| {
        let request = server
            .http
            .post(server.url(path))
            .basic_auth(&auth.0, auth.1.as_ref())
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let reply: Value = response.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{path}: {status} {reply}");
            assert!(
                reply.get("rejected").is_none_or(|r| r == &json!([])),
                "{path}: {reply}"
            );
        }
    };
    let now = UtcMillis::now().as_millis();
    let at = |minutes_ago: i64| UtcMillis::from_millis(now - minutes_ago * 60_000).to_rfc3339();
    let record_id = "rec-1".to_owned();
    post(
        "/api/v1/audit/records",
        json!([{
            "Id": record_id, "OrganizationId": "default", "CreationTime": at(3),
            "Operation": "Update", "User": PAYLOAD, "UserKey": PAYLOAD, "ClientIP": PAYLOAD,
            "EntityName": PAYLOAD, "EntityId": PAYLOAD, "Message": PAYLOAD,
            "UserAgent": PAYLOAD, "ItemUrl": PAYLOAD, "Query": PAYLOAD,
            "ResultStatus": PAYLOAD, "ServiceName": PAYLOAD,
            "Fields": {PAYLOAD: {"old": PAYLOAD, "new": PAYLOAD}},
        }]),
    )
    .await;
    post(
        "/api/v1/portals",
        json!({"id": "help", "name": PAYLOAD, "allowed_origins": []}),
    )
    .await;
    post(
        "/api/v1/contacts",
        json!({"id": "c-1", "name": PAYLOAD, "email": "dana@example.com"}),
    )
    .await;
    post(
        "/api/v1/cases",
        json!({"id": "CAS-1", "contact_id": "c-1", "title": PAYLOAD, "created_at": at(1)}),
    )
    .await;
    post(
        "/api/v1/interactions",
        json!([
            {"portal_interactionid": "i1", "type": "portal_viewknowledgearticle",
             "portal_contactid": "c-1", "portal_timestamp": at(30), "portal_portalid": "help",
             "session_id": "s1", "portal_knowledgearticleid": "KA-1",
             "portal_knowledgetitle": PAYLOAD},
            {"portal_interactionid": "i2", "type": "portal_search", "portal_contactid": "c-1",
             "portal_timestamp": at(29), "portal_portalid": "help", "session_id": "s1",
             "portal_searchstring": PAYLOAD},
        ]),
    )
    .await;
    post(
        "/api/v1/channel/init",
        json!([{"conversation": {"conversationId": "conv-1", "channel": "chat",
            "providerId": "contoso", "session": {
                "providerSessionId": "sess-1", "queueId": "q1",
                "queueAssignedTimestamp": at(20), "agentAssignedTimestamp": at(19),
                "participants": [{"participantId": "cust", "type": "customer"},
                                 {"participantId": "agent-1", "type": "agent"}]}}}]),
    )
    .await;
    post(
        "/api/v1/channel/events",
        json!([{"conversationId": "conv-1", "providerSessionId": "sess-1",
            "participantId": "agent-1", "events": [
                {"kpiEventName": "SessionClosed", "eventTimestamp": at(10),
                 "customData": {"note": PAYLOAD}}]}]),
    )
    .await;
    (record_id, "sess-1".to_owned())
}

/// The value for each path parameter of a page, by path: a page added
/// without one here fails the test, so no page escapes it.
fn fill(path: &str, record: &str, session: &str) -> String {
    match path {
        "/embed/cases/{id}" | "/ui/cases/{id}" => path.replace("{id}", "CAS-1"),
        "/ui/portals/{id}" => path.replace("{id}", "help"),
        "/ui/audit/records/{id}" => path.replace("{id}", record),
        "/ui/analytics/sessions/{id}" => path.replace("{id}", session),
        other if other.contains('{') => panic!("no value for the parameters of {other}"),
        other => other.to_owned(),
    }
}

/// Query strings that make a page show the seeded data; the embeddable
/// journey takes a read-scoped SAS token instead of a session.
fn query(path: &str, embed_token: &str) -> String {
    match path {
        "/embed/cases/{id}" => format!(
            "?token={}",
            percent_encoding::utf8_percent_encode(embed_token, percent_encoding::NON_ALPHANUMERIC)
        ),
        "/ui/audit/export" => "?format=csv".into(),
        "/ui/cases" => "?q=CAS-1".into(),
        "/ui/analytics/drilldown" => "?status=active".into(),
        "/ui/cases/open" => "?id=CAS-1".into(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_shows_markup_as_text() {
    let server = TestServer::start().await;
    let (record, session) = seed(&server).await;
    add_user(&server, "ana", Role::Admin, "ana's long password").await;
    let signed_in = server.form_sign_in("ana", "ana's long password").await;
    let cookie = format!("tracklog_session={}", signed_in.session.unwrap());
    let reader = server.policy("crm-embed", "read").await;
    let embed_token = make_sas_token(
        &server.url("/embed/cases/CAS-1"),
        &reader.name,
        &reader.primary_key,
        UtcMillis::now().as_millis() / 1000 + 3600,
    );

    let document: Value = server
        .http
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pages: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| {
            item["get"]["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == "ui"))
        })
        .map(|(path, _)| path.clone())
        .collect();
    assert!(pages.len() >= 15, "{pages:?}");

    // Materialisation runs behind the acknowledgement: wait until the
    // audit record is searchable.
    for _ in 0..100 {
        let found = server
            .http
            .get(server.url(&format!("/ui/audit/records/{record}")))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status();
        if found == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut checked = 0;
    for path in &pages {
        let url = server.url(&format!(
            "{}{}",
            fill(path, &record, &session),
            query(path, &embed_token)
        ));
        let response = server
            .http
            .get(&url)
            .header("cookie", &cookie)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(status.as_u16() < 400, "{path}: {status}");
        let headers = response.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
        let content_type = header("content-type");
        if content_type.starts_with("text/event-stream") {
            // A stream never ends; its headers are what is checked.
            drop(response);
            checked += 1;
            continue;
        }
        let body = response.text().await.unwrap();
        if content_type.starts_with("text/html") {
            let csp = header("content-security-policy");
            assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
            assert!(csp.contains("frame-ancestors"), "{path}: {csp}");
            assert_eq!(header("cache-control"), "no-store", "{path}");
            assert_eq!(
                header("cross-origin-opener-policy"),
                "same-origin",
                "{path}"
            );
            if path.starts_with("/embed/") {
                // A CRM frames the journey; its CSP names which.
                assert!(header("x-frame-options").is_empty(), "{path}");
            } else {
                assert_eq!(header("x-frame-options"), "DENY", "{path}");
            }
            assert!(
                !body.contains("<script>alert") && !body.contains("<img src=x"),
                "{path} wrote markup from a field unescaped"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, pages.len());

    // The pages that show the payload show it as text.
    for (path, what) in [
        (format!("/ui/audit/records/{record}"), "the record's fields"),
        ("/ui/cases/CAS-1".to_owned(), "the case and its journey"),
        ("/ui/portals".to_owned(), "the portal's name"),
    ] {
        let body = server
            .http
            .get(server.url(&path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path} does not show {what} as text"
        );
    }
    server.stop().await;
}
