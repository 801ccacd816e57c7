//! The portal pillar against a real server: portals and their keys, CORS,
//! interaction types, contacts, cases, journeys, stitching and privacy.

mod common;

use common::{TestServer, basic};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A client holding one policy's credentials.
struct Api<'a> {
    server: &'a TestServer,
    auth: (String, Option<String>),
}

impl<'a> Api<'a> {
    async fn new(server: &'a TestServer, rights: &str) -> Self {
        let name = format!("p-{}", rights.replace(',', "-"));
        Self {
            server,
            auth: basic(&server.policy(&name, rights).await),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .server
            .http
            .request(method, self.server.url(path))
            .basic_auth(&self.auth.0, self.auth.1.as_ref());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
}

fn interaction(id: &str, kind: &str, contact: Option<&str>, session: &str, ts: &str) -> Value {
    let mut item = json!({
        "portal_interactionid": id,
        "type": kind,
        "portal_timestamp": ts,
        "portal_portalid": "help",
        "session_id": session,
    });
    if let Some(contact) = contact {
        item["portal_contactid"] = json!(contact);
    }
    match kind {
        "portal_viewknowledgearticle" => {
            item["portal_knowledgearticleid"] = json!(format!("KA-{id}"));
            item["portal_knowledgetitle"] = json!(format!("Article {id}"));
        }
        "portal_search" => item["portal_searchstring"] = json!(format!("search {id}")),
        "portal_viewblogpost" => item["portal_blogpostid"] = json!(format!("B-{id}")),
        "portal_viewforumthread" => item["portal_forumthreadid"] = json!(format!("F-{id}")),
        _ => {}
    }
    item
}

fn article_view(id: &str, ka: &str, contact: Option<&str>, session: &str, ts: &str) -> Value {
    let mut item = interaction(id, "portal_viewknowledgearticle", contact, session, ts);
    item["portal_knowledgearticleid"] = json!(ka);
    item["portal_knowledgetitle"] = json!(format!("Title of {ka}"));
    item
}

fn reasons(report: &Value) -> Vec<String> {
    report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect()
}

fn timeline_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["portal_interactionid"].as_str().unwrap().to_owned())
        .collect()
}

/// The operations recorded in the activity log, oldest first.
fn audited_operations(server: &TestServer) -> Vec<String> {
    let db = rusqlite::Connection::open(server.dir.path().join("tracklog.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT operation FROM audit_log ORDER BY org_id, seq")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn portals_have_keys_scopes_and_cors() {
    let server = TestServer::start().await;
    let admin = Api::new(&server, "manage").await;

    let (status, portal) = admin
        .post(
            "/api/v1/portals",
            json!({"id": "help", "name": "Help centre",
                   "allowed_origins": ["https://help.example.com", "http://127.0.0.1:9"],
                   "retention_days": 400}),
        )
        .await;
    assert_eq!(status, 201, "{portal}");
    let public_key = portal["public_key"].as_str().unwrap().to_owned();
    assert!(public_key.starts_with("tlpk_"));
    assert_eq!(portal["allowed_origins"][0], "https://help.example.com");
    let (status, _) = admin
        .post("/api/v1/portals", json!({"id": "help", "name": "Again"}))
        .await;
    assert_eq!(status, 409);
    let (status, error) = admin
        .post(
            "/api/v1/portals",
            json!({"id": "bad", "name": "Bad", "allowed_origins": ["https://x.example/path"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["field"], "allowed_origins");
    let (status, error) = admin
        .post(
            "/api/v1/portals",
            json!({"id": "bad", "name": "Bad", "policy": "nobody"}),
        )
        .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("policy"))
    );
    let (_, list) = admin.get("/api/v1/portals").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // The public key writes for its portal, from its origins only.
    let send = |key: String, origin: Option<&'static str>, body: Value| {
        let http = server.http.clone();
        let url = server.url(&format!("/api/v1/interactions?key={key}"));
        async move {
            let mut request = http
                .post(url)
                .header("content-type", "text/plain;charset=UTF-8")
                .body(body.to_string());
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            request.send().await.unwrap()
        }
    };
    let mut browser_item =
        interaction("b1", "portal_search", None, "tab-1", "2026-03-01T10:00:00Z");
    browser_item
        .as_object_mut()
        .unwrap()
        .remove("portal_portalid");
    let response = send(
        public_key.clone(),
        Some("https://help.example.com"),
        json!([browser_item]),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://help.example.com"
    );
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["accepted"], 1, "{report}");
    // Another origin, no origin, or another portal's items are refused.
    let response = send(public_key.clone(), Some("https://evil.example"), json!([])).await;
    assert_eq!(response.status(), 403);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(
        send(public_key.clone(), None, json!([])).await.status(),
        403
    );
    let mut elsewhere = interaction("b2", "portal_search", None, "tab-1", "2026-03-01T10:00:00Z");
    elsewhere["portal_portalid"] = json!("other");
    let report: Value = send(
        public_key.clone(),
        Some("https://help.example.com"),
        json!([elsewhere]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(reasons(&report), ["portal_out_of_scope"]);
    // The public key reads nothing and reaches no other endpoint.
    let read = server
        .http
        .get(server.url(&format!(
            "/api/v1/contacts/c1/interactions?key={public_key}"
        )))
        .header("origin", "https://help.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 403);
    // The preflight answers for allowed origins only.
    let preflight = server
        .http
        .request(
            Method::OPTIONS,
            server.url(&format!("/api/v1/interactions?key={public_key}")),
        )
        .header("origin", "http://127.0.0.1:9")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");
    let refused = server
        .http
        .request(
            Method::OPTIONS,
            server.url(&format!("/api/v1/interactions?key={public_key}")),
        )
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // A portal-scoped policy cannot write as another portal.
    let scoped = basic(
        &server
            .policy_in("default", "help-writer", "write", Some("help"))
            .await,
    );
    let response = server
        .http
        .post(server.url("/api/v1/interactions"))
        .basic_auth(&scoped.0, scoped.1.as_ref())
        .json(&json!([elsewhere]))
        .send()
        .await
        .unwrap();
    let report: Value = response.json().await.unwrap();
    assert_eq!(reasons(&report), ["portal_out_of_scope"]);

    // Settings change; "update configuration" rotates the public key.
    let (status, updated) = admin
        .call(
            Method::PUT,
            "/api/v1/portals/help",
            Some(
                json!({"name": "Help", "allowed_origins": ["https://help.example.com"],
                        "policy": "help-writer", "retention_days": 30}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["public_key"], public_key.as_str());
    let (status, rotated) = admin
        .post("/api/v1/portals/help/update-configuration", json!({}))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = rotated["portal"]["public_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, public_key);
    assert_eq!(rotated["policy"]["name"], "help-writer");
    assert_ne!(
        rotated["policy"]["primary_key"].as_str(),
        scoped.1.as_deref()
    );
    let old = send(
        public_key.clone(),
        Some("https://help.example.com"),
        json!([]),
    )
    .await;
    assert_eq!(old.status(), 401);
    let mut fresh = interaction("b3", "portal_search", None, "tab-1", "2026-03-01T10:00:00Z");
    fresh.as_object_mut().unwrap().remove("portal_portalid");
    let response = send(
        new_key.clone(),
        Some("https://help.example.com"),
        json!([fresh]),
    )
    .await;
    assert_eq!(response.status(), 200);

    // "Delete integration": capture from the portal stops; data is purged.
    let writer = Api::new(&server, "write,read").await;
    let (_, report) = writer
        .post(
            "/api/v1/interactions",
            json!([interaction(
                "k1",
                "portal_search",
                Some("c-del"),
                "s",
                "2026-03-01T10:00:00Z"
            )]),
        )
        .await;
    assert_eq!(report["accepted"], 1);
    let (status, _) = admin
        .call(Method::DELETE, "/api/v1/portals/help?data=purge", None)
        .await;
    assert_eq!(status, 202);
    let (_, report) = writer
        .post(
            "/api/v1/interactions",
            json!([interaction(
                "k2",
                "portal_search",
                Some("c-del"),
                "s",
                "2026-03-01T11:00:00Z"
            )]),
        )
        .await;
    assert_eq!(reasons(&report), ["portal_not_captured"]);
    let mut purged = false;
    for _ in 0..100 {
        let (_, page) = writer.get("/api/v1/contacts/c-del/interactions").await;
        if timeline_ids(&page).is_empty() {
            purged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(purged, "the portal's interactions were not purged");
    assert_eq!(
        send(new_key, Some("https://help.example.com"), json!([]))
            .await
            .status(),
        401
    );
    let (status, _) = admin.get("/api/v1/portals/help").await;
    assert_eq!(status, 404);
    let operations = audited_operations(&server);
    for expected in [
        "CreatePortal",
        "UpdatePortal",
        "UpdatePortalConfiguration",
        "UpdateAccessPolicyKey",
        "DeletePortal",
    ] {
        assert!(
            operations.iter().any(|o| o == expected),
            "{expected} not audited: {operations:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn interaction_types_are_typed_disabled_deleted_and_restored() {
    let server = TestServer::start().await;
    let admin = Api::new(&server, "manage").await;
    let (_, types) = admin.get("/api/v1/interaction-types").await;
    let names: Vec<&str> = types["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "portal_viewknowledgearticle",
            "portal_viewblogpost",
            "portal_viewforumthread",
            "portal_search"
        ]
    );
    assert_eq!(types["items"][0]["builtin"], true);
    assert_eq!(types["items"][0]["enabled"], true);

    let schema = json!({
        "type": "object",
        "required": ["video_id"],
        "properties": {"video_id": {"type": "string"}, "seconds": {"type": "integer", "minimum": 0}}
    });
    let (status, created) = admin
        .post(
            "/api/v1/interaction-types",
            json!({"name": "video_view", "display_name": "Video", "fields_schema": schema}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, error) = admin
        .post(
            "/api/v1/interaction-types",
            json!({"name": "broken", "fields_schema": {"type": "no-such-type"}}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["error"]["field"], "fields_schema");
    let (status, _) = admin
        .post("/api/v1/interaction-types", json!({"name": "portal_mine"}))
        .await;
    assert_eq!(status, 422);

    let video = |id: &str, fields: Value| {
        let mut item = interaction(id, "video_view", Some("c1"), "s", "2026-03-01T10:00:00Z");
        for (k, v) in fields.as_object().unwrap() {
            item[k] = v.clone();
        }
        item
    };
    let (_, report) = admin
        .post(
            "/api/v1/interactions",
            json!([
                video("v1", json!({"video_id": "intro", "seconds": 30})),
                video("v2", json!({"seconds": 30})),
                video("v3", json!({"video_id": "intro", "seconds": -1})),
            ]),
        )
        .await;
    assert_eq!(report["accepted"], 1, "{report}");
    assert_eq!(reasons(&report), ["invalid_field", "invalid_field"]);
    assert_eq!(report["rejected"][1]["field"], "seconds");

    // Disabled: refused per item with interaction_type_not_captured.
    let (status, patched) = admin
        .call(
            Method::PATCH,
            "/api/v1/interaction-types/portal_search",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(
        (status, &patched["enabled"]),
        (StatusCode::OK, &json!(false))
    );
    let (_, report) = admin
        .post(
            "/api/v1/interactions",
            json!([
                interaction(
                    "s1",
                    "portal_search",
                    Some("c1"),
                    "s",
                    "2026-03-01T10:00:00Z"
                ),
                interaction(
                    "a1",
                    "portal_viewblogpost",
                    Some("c1"),
                    "s",
                    "2026-03-01T10:00:00Z"
                ),
            ]),
        )
        .await;
    assert_eq!(report["accepted"], 1);
    assert_eq!(reasons(&report), ["interaction_type_not_captured"]);

    // Deleted, then restored.
    let (status, deleted) = admin
        .call(Method::DELETE, "/api/v1/interaction-types/video_view", None)
        .await;
    assert_eq!(
        (status, &deleted["state"]),
        (StatusCode::OK, &json!("deleted"))
    );
    let (_, report) = admin
        .post(
            "/api/v1/interactions",
            json!([video("v4", json!({"video_id": "x"}))]),
        )
        .await;
    assert_eq!(reasons(&report), ["interaction_type_not_captured"]);
    let (status, restored) = admin
        .post("/api/v1/interaction-types/video_view/restore", json!({}))
        .await;
    assert_eq!(
        (status, &restored["enabled"]),
        (StatusCode::OK, &json!(true))
    );
    let (_, report) = admin
        .post(
            "/api/v1/interactions",
            json!([video("v5", json!({"video_id": "x"}))]),
        )
        .await;
    assert_eq!(report["accepted"], 1, "{report}");
    let (status, _) = admin.get("/api/v1/interaction-types/nope").await;
    assert_eq!(status, 404);

    let operations = audited_operations(&server);
    for expected in [
        "CreateInteractionType",
        "UpdateInteractionType",
        "DeleteInteractionType",
        "RestoreInteractionType",
    ] {
        assert!(
            operations.iter().any(|o| o == expected),
            "{expected} not audited: {operations:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn journeys_cover_the_window_before_the_case_grouped_by_session() {
    let server = TestServer::start().await;
    let api = Api::new(&server, "write,read").await;
    let (_, report) = api
        .post(
            "/api/v1/interactions",
            json!([
                // Before the 72 h window.
                article_view(
                    "old",
                    "KA-OLD",
                    Some("c1"),
                    "s0",
                    "2026-02-25T09:59:59.999Z"
                ),
                // Exactly at the window's start: in.
                article_view("start", "KA-1", Some("c1"), "s1", "2026-02-25T10:00:00Z"),
                interaction(
                    "q1",
                    "portal_search",
                    Some("c1"),
                    "s1",
                    "2026-02-26T08:00:00Z"
                ),
                article_view("again", "KA-1", Some("c1"), "s2", "2026-02-27T09:00:00Z"),
                interaction(
                    "blog",
                    "portal_viewblogpost",
                    Some("c1"),
                    "s2",
                    "2026-02-28T09:00:00Z"
                ),
                // Just before the case: in. At the case: out.
                article_view("last", "KA-2", Some("c1"), "s2", "2026-02-28T09:59:59.999Z"),
                article_view("at-case", "KA-3", Some("c1"), "s2", "2026-02-28T10:00:00Z"),
                article_view("after", "KA-4", Some("c1"), "s3", "2026-02-28T11:00:00Z"),
                // Someone else.
                article_view("other", "KA-9", Some("c2"), "s9", "2026-02-27T09:00:00Z"),
            ]),
        )
        .await;
    assert_eq!(report["accepted"], 9, "{report}");
    let (status, result) = api
        .post(
            "/api/v1/cases",
            json!({"id": "CAS-1", "contact_id": "c1", "title": "Cannot sign in",
                   "created_at": "2026-02-28T10:00:00Z"}),
        )
        .await;
    assert_eq!((status, &result["accepted"]), (StatusCode::OK, &json!(1)));
    let (status, case) = api.get("/api/v1/cases/CAS-1").await;
    assert_eq!(
        (status, &case["status"]),
        (StatusCode::OK, &json!("active"))
    );

    let (status, journey) = api.get("/api/v1/cases/CAS-1/journey?window=PT72H").await;
    assert_eq!(status, 200, "{journey}");
    assert_eq!(journey["case_id"], "CAS-1");
    assert_eq!(journey["window_start"], "2026-02-25T10:00:00.000Z");
    assert_eq!(journey["window_end"], "2026-02-28T10:00:00.000Z");
    assert_eq!(journey["total"], 5);
    assert_eq!(
        journey["by_type"],
        json!({"portal_viewknowledgearticle": 3, "portal_search": 1, "portal_viewblogpost": 1})
    );
    let sessions: Vec<(String, u64, String, String)> = journey["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["session_id"].as_str().unwrap().to_owned(),
                s["count"].as_u64().unwrap(),
                s["start"].as_str().unwrap().to_owned(),
                s["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sessions,
        [
            (
                "s1".to_owned(),
                2,
                "2026-02-25T10:00:00.000Z".to_owned(),
                "2026-02-26T08:00:00.000Z".to_owned()
            ),
            (
                "s2".to_owned(),
                3,
                "2026-02-27T09:00:00.000Z".to_owned(),
                "2026-02-28T09:59:59.999Z".to_owned()
            ),
        ]
    );
    assert_eq!(journey["sessions"][1]["by_type"]["portal_viewblogpost"], 1);
    // The page: newest first.
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["portal_interactionid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&journey), ["last", "blog", "again", "q1", "start"]);
    assert_eq!(journey["next_cursor"], Value::Null);
    // Two at a time, through the cursor, with the summary the same on every page.
    let mut seen = Vec::new();
    let mut url = "/api/v1/cases/CAS-1/journey?window=PT72H&limit=2".to_owned();
    for _ in 0..5 {
        let (status, page) = api.get(&url).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 5);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                url = format!("/api/v1/cases/CAS-1/journey?window=PT72H&limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen, ids(&journey));
    let (status, error) = api
        .get("/api/v1/cases/CAS-1/journey?cursor=not-a-cursor")
        .await;
    assert_eq!(
        (status, &error["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("cursor"))
    );
    let (status, _) = api.get("/api/v1/cases/CAS-1/journey?limit=1001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let articles = journey["articles_viewed"].as_array().unwrap();
    assert_eq!(articles.len(), 2);
    assert_eq!(articles[0]["id"], "KA-2");
    assert_eq!(articles[1]["id"], "KA-1");
    assert_eq!(articles[1]["count"], 2);
    assert_eq!(articles[1]["last_viewed"], "2026-02-27T09:00:00.000Z");
    assert_eq!(journey["searches"][0]["text"], "search q1");
    assert_eq!(journey["searches"][0]["at"], "2026-02-26T08:00:00.000Z");

    // A shorter window, bad windows, unknown cases.
    let (_, short) = api.get("/api/v1/cases/CAS-1/journey?window=PT1H").await;
    // The window's start is inclusive: "blog" is exactly an hour before.
    assert_eq!(ids(&short), ["last", "blog"]);
    assert_eq!(short["total"], 2);
    let (status, error) = api.get("/api/v1/cases/CAS-1/journey?window=72h").await;
    assert_eq!(
        (status, &error["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("window"))
    );
    let (status, _) = api.get("/api/v1/cases/NOPE/journey").await;
    assert_eq!(status, 404);
    let (_, cases) = api.get("/api/v1/cases?contact_id=c1").await;
    assert_eq!(cases["items"][0]["id"], "CAS-1");
    let (_, bad) = api
        .post(
            "/api/v1/cases",
            json!([{"id": "X", "contact_id": "c1", "title": ""}]),
        )
        .await;
    assert_eq!(bad["rejected"][0]["field"], "title");
    server.stop().await;
}

#[tokio::test]
async fn anonymous_sessions_are_stitched_even_when_the_contact_arrives_later() {
    let server = TestServer::start().await;
    let api = Api::new(&server, "write,read").await;
    // Anonymous browsing first.
    api.post(
        "/api/v1/interactions",
        json!([
            interaction(
                "anon-1",
                "portal_search",
                None,
                "tab-9",
                "2026-03-01T10:00:00Z"
            ),
            interaction(
                "anon-2",
                "portal_viewforumthread",
                None,
                "tab-9",
                "2026-03-01T10:05:00Z"
            ),
        ]),
    )
    .await;
    let (_, page) = api.get("/api/v1/contacts/c-late/interactions").await;
    assert!(timeline_ids(&page).is_empty());
    // The sign-in arrives later, in another request, out of order in time.
    api.post(
        "/api/v1/interactions",
        json!([interaction(
            "signed-in",
            "portal_viewblogpost",
            Some("c-late"),
            "tab-9",
            "2026-03-01T10:02:00Z"
        )]),
    )
    .await;
    api.post(
        "/api/v1/interactions",
        json!([interaction(
            "anon-3",
            "portal_search",
            None,
            "tab-9",
            "2026-03-01T10:10:00Z"
        )]),
    )
    .await;
    let (_, page) = api.get("/api/v1/contacts/c-late/interactions").await;
    assert_eq!(
        timeline_ids(&page),
        ["anon-1", "signed-in", "anon-2", "anon-3"]
    );
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["portal_contactid"] == "c-late")
    );
    server.stop().await;
}

#[tokio::test]
async fn contacts_are_upserted_exported_and_erased_without_a_trace() {
    let server = TestServer::start().await;
    let api = Api::new(&server, "manage").await;
    let (status, report) = api
        .post(
            "/api/v1/contacts",
            json!([
                {"id": "erase-me-7731", "name": "Zebulon Quartermaine", "email": "zq@example.com",
                 "attributes": {"tier": "gold"}},
                {"id": "keep-me", "name": "Ada"},
                {"id": ""},
            ]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (report["accepted"].as_u64(), report["created"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(report["rejected"][0]["index"], 2);
    api.post(
        "/api/v1/contacts",
        json!({"id": "erase-me-7731", "attributes": {"city": "Oslo"}}),
    )
    .await;
    let (_, contact) = api.get("/api/v1/contacts/erase-me-7731").await;
    assert_eq!(contact["name"], "Zebulon Quartermaine");
    assert_eq!(
        contact["attributes"],
        json!({"tier": "gold", "city": "Oslo"})
    );
    let (_, page) = api.get("/api/v1/contacts?limit=1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = api
        .get(&format!("/api/v1/contacts?limit=5&cursor={cursor}"))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);

    let mut secret = article_view(
        "x1",
        "KA-SECRET-TITLE",
        None,
        "tab-e",
        "2026-03-01T09:00:00Z",
    );
    secret["portal_knowledgetitle"] = json!("Pemberton Ossifrage Recovery");
    api.post(
        "/api/v1/interactions",
        json!([
            secret,
            interaction(
                "x2",
                "portal_search",
                Some("erase-me-7731"),
                "tab-e",
                "2026-03-01T10:00:00Z"
            ),
            interaction(
                "x3",
                "portal_search",
                Some("keep-me"),
                "tab-k",
                "2026-03-01T10:00:00Z"
            ),
        ]),
    )
    .await;
    api.post(
        "/api/v1/cases",
        json!({"id": "CASE-E", "contact_id": "erase-me-7731", "title": "Quartermaine billing"}),
    )
    .await;

    let (status, export) = api.get("/api/v1/contacts/erase-me-7731/export").await;
    assert_eq!(status, 200);
    assert_eq!(export["profile"]["email"], "zq@example.com");
    assert_eq!(export["interactions"].as_array().unwrap().len(), 2);
    assert_eq!(export["cases"][0]["id"], "CASE-E");

    let (status, _) = api
        .call(Method::DELETE, "/api/v1/contacts/erase-me-7731", None)
        .await;
    assert_eq!(status, 400, "erasure needs erase=true");
    let (status, erased) = api
        .call(
            Method::DELETE,
            "/api/v1/contacts/erase-me-7731?erase=true",
            None,
        )
        .await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["interactions"], 2);
    assert_eq!(erased["profile"], true);
    assert_eq!(erased["cases"], 1);

    // Nothing left over the API…
    assert_eq!(api.get("/api/v1/contacts/erase-me-7731").await.0, 404);
    assert_eq!(api.get("/api/v1/cases/CASE-E").await.0, 404);
    let (_, page) = api.get("/api/v1/contacts/erase-me-7731/interactions").await;
    assert!(timeline_ids(&page).is_empty());
    let (_, kept) = api.get("/api/v1/contacts/keep-me/interactions").await;
    assert_eq!(timeline_ids(&kept), ["x3"]);
    // …nor in any table of the store…
    let db = rusqlite::Connection::open(server.dir.path().join("tracklog.db")).unwrap();
    tracklog_store::sqlite::register_sql_functions(&db).unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for table in &tables {
        if table.starts_with("sqlite_") {
            continue;
        }
        // The activity log keeps the erasure's own record, which names the
        // contact id (and only that); no content survives anywhere.
        let markers: &[&str] = if table.starts_with("audit_") {
            &["Quartermaine", "Ossifrage", "zq@example.com"]
        } else {
            &[
                "erase-me-7731",
                "Quartermaine",
                "Ossifrage",
                "zq@example.com",
            ]
        };
        let rows: Vec<String> = db
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .unwrap()
            .query_map([], |row| {
                let mut text = String::new();
                for i in 0..row.as_ref().column_count() {
                    if let Ok(
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t),
                    ) = row.get_ref(i)
                    {
                        text.push_str(&String::from_utf8_lossy(t));
                    }
                }
                Ok(text)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for marker in markers {
            assert!(
                !rows.iter().any(|r| r.contains(*marker)),
                "{marker} is still in table {table}"
            );
        }
    }
    drop(db);
    // …nor in the files on disk, once the log is checkpointed.
    let mut clean = false;
    for _ in 0..100 {
        let mut found = false;
        for entry in std::fs::read_dir(server.dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            for marker in ["Ossifrage", "zq@example.com", "Quartermaine billing"] {
                if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                    found = true;
                }
            }
        }
        if !found {
            clean = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        clean,
        "erased content is still in the data directory's files"
    );
    // The erasure and the export are audited, without the erased content.
    let operations = audited_operations(&server);
    assert!(operations.iter().any(|o| o == "ExportContact"));
    assert!(operations.iter().any(|o| o == "EraseContact"));
    server.stop().await;
}

#[tokio::test]
async fn the_retention_job_purges_a_portals_old_interactions_in_the_background() {
    let server = TestServer::start_with(|config| config.retention.interval_seconds = 1).await;
    let admin = Api::new(&server, "manage").await;
    let (status, body) = admin
        .post(
            "/api/v1/portals",
            json!({"id": "help", "name": "Help", "allowed_origins": ["https://help.example.com"],
                   "retention_days": 30}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let now = jiff::Timestamp::now();
    let old = now
        .checked_sub(jiff::SignedDuration::from_hours(40 * 24))
        .unwrap();
    let recent = now
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap();
    let (status, report) = admin
        .post(
            "/api/v1/interactions",
            json!([
                interaction(
                    "old",
                    "portal_search",
                    Some("c-r"),
                    "s-old",
                    &old.to_string()
                ),
                interaction(
                    "new",
                    "portal_search",
                    Some("c-r"),
                    "s-new",
                    &recent.to_string()
                ),
            ]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["accepted"], 2, "{report}");
    // The job runs every second; give it ten.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ids = loop {
        let (_, page) = admin.get("/api/v1/contacts/c-r/interactions").await;
        let ids: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["portal_interactionid"].as_str().unwrap().to_owned())
            .collect();
        if ids.len() < 2 || std::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        ids,
        ["new"],
        "the 40-day-old interaction went, the recent one stayed"
    );
    server.stop().await;
}
