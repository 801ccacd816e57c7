//! Channel analytics against a real server: providers, definitions,
//! ingestion in any order, server-side records, every metric on a
//! hand-computed hour, drill-down, rebuild, DST, real time.

mod common;

use common::{TestServer, basic};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Api<'a> {
    server: &'a TestServer,
    auth: (String, Option<String>),
}

impl<'a> Api<'a> {
    async fn new(server: &'a TestServer) -> Self {
        Self {
            server,
            auth: basic(&server.policy("ops", "manage").await),
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

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, reply) = self.call(Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {status} {reply}");
        reply
    }
}

const DAY: &str = "2026-03-01";

fn t(clock: &str) -> String {
    format!("{DAY}T{clock}Z")
}

fn init(conversation: &str, queued: &str, answered: Option<&str>, agent: &str) -> Value {
    let mut session = json!({
        "providerSessionId": format!("{conversation}-s"),
        "queueId": "billing",
        "queueAssignedTimestamp": t(queued),
        "participants": [
            {"participantId": format!("cust-{conversation}"), "type": "customer"},
        ],
    });
    if let Some(answered) = answered {
        session["agentAssignedTimestamp"] = json!(t(answered));
        session["participants"]
            .as_array_mut()
            .unwrap()
            .push(json!({"participantId": agent, "type": "agent", "addedTimestamp": t(answered)}));
    }
    json!({
        "conversation": {
            "conversationId": conversation, "channel": "voice", "providerId": "contoso",
            "providerName": "Contoso Voice", "session": session,
        },
        "correlationId": format!("corr-{conversation}"),
    })
}

fn event(name: &str, clock: &str) -> Value {
    json!({"kpiEventName": name, "eventTimestamp": t(clock)})
}

fn events(conversation: &str, participant: &str, events: Vec<Value>) -> Value {
    json!({
        "conversationId": conversation,
        "providerSessionId": format!("{conversation}-s"),
        "participantId": participant,
        "events": events,
    })
}

/// Four sessions in the 10:00–11:00 hour, with figures worked out by hand:
/// - c1: queued 10:00:00, answered 10:00:10 (10 s), holds 30–40 s and
///   60–75 s (25 s), closed 10:01:40, wrap-up to 10:02:10: handle 120 s.
///   Notification shown to agent-7 at :05, accepted at :09. CSAT 5.
/// - c2: queued 10:01:00, answered 10:01:30 (30 s, over 20 s), transfer,
///   closed 10:04:00: handle 150 s, no hold. Shown to agent-8 at 10:01:05,
///   timed out at 10:01:25; shown to agent-7 at 10:01:26, accepted at
///   10:01:29. CSAT 3.
/// - c3: queued 10:05:00, closed 10:05:03: a short abandon (≤ 5 s).
/// - c4: queued 10:06:00, closed 10:06:40: an abandon.
fn fixture() -> (Vec<Value>, Vec<Value>) {
    let inits = vec![
        init("c1", "10:00:00", Some("10:00:10"), "agent-7"),
        init("c2", "10:01:00", Some("10:01:30"), "agent-7"),
        init("c3", "10:05:00", None, ""),
        init("c4", "10:06:00", None, ""),
    ];
    let mut c1 = vec![
        event("HoldStarted", "10:00:30"),
        event("HoldEnded", "10:00:40"),
        event("HoldStarted", "10:01:00"),
        event("HoldEnded", "10:01:15"),
        event("SessionClosed", "10:01:40"),
        event("WrapUpStarted", "10:01:40"),
        event("WrapUpEnded", "10:02:10"),
        event("NotificationDisplayed", "10:00:05"),
        json!({"kpiEventName": "NotificationResponse", "eventTimestamp": t("10:00:09"),
               "notificationResponseAction": "Accept"}),
        json!({"kpiEventName": "CsatSubmitted", "eventTimestamp": t("10:03:00"),
               "customData": [{"attribute": "score", "value": "5"}]}),
    ];
    c1.reverse();
    let c2_agent8 = events(
        "c2",
        "agent-8",
        vec![
            event("NotificationDisplayed", "10:01:05"),
            json!({"kpiEventName": "NotificationResponse", "eventTimestamp": t("10:01:25"),
                   "notificationResponseAction": "Timeout"}),
        ],
    );
    let c2 = events(
        "c2",
        "agent-7",
        vec![
            event("SessionClosed", "10:04:00"),
            event("TransferRequested", "10:02:00"),
            event("NotificationDisplayed", "10:01:26"),
            json!({"kpiEventName": "NotificationResponse", "eventTimestamp": t("10:01:29"),
                   "notificationResponseAction": "Accept"}),
            json!({"kpiEventName": "CsatSubmitted", "eventTimestamp": t("10:05:00"),
                   "customData": {"score": 3}}),
        ],
    );
    let batches = vec![
        events("c1", "agent-7", c1),
        c2_agent8,
        c2,
        events("c3", "cust-c3", vec![event("SessionClosed", "10:05:03")]),
        events("c4", "cust-c4", vec![event("SessionClosed", "10:06:40")]),
    ];
    (inits, batches)
}

async fn hour_values(api: &Api<'_>, extra: Value) -> serde_json::Map<String, Value> {
    let mut request = json!({
        "from": t("10:00:00"), "to": t("11:00:00"), "interval": "1h", "timezone": "UTC",
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    let answer = api.post("/api/v1/metrics/query", request).await;
    let mut values = serde_json::Map::new();
    for series in answer["series"].as_array().unwrap() {
        assert_eq!(series["points"].as_array().unwrap().len(), 1, "{series}");
        values.insert(
            series["metric"].as_str().unwrap().to_owned(),
            series["points"][0]["value"].clone(),
        );
    }
    values
}

fn close(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
}

fn assert_hand_computed(values: &serde_json::Map<String, Value>) {
    let expected = [
        ("conversations_offered", 4.0),
        ("aht", 135.0),
        ("asa", 20.0),
        ("service_level", 1.0 / 3.0),
        ("abandon_rate", 1.0 / 3.0),
        ("transfer_rate", 0.5),
        ("hold_time", 12.5),
        ("wrap_up_time", 15.0),
        ("talk_time", (65.0 + 150.0) / 2.0),
        ("notification_accept_rate", 2.0 / 3.0),
        ("notification_response_time", (4.0 + 20.0 + 3.0) / 3.0),
        ("csat", 4.0),
        ("csat_top2", 0.5),
    ];
    for (metric, value) in expected {
        assert!(
            close(&values[metric], value),
            "{metric}: expected {value}, got {}",
            values[metric]
        );
    }
}

#[tokio::test]
async fn every_metric_on_a_hand_computed_hour_in_any_arrival_order() {
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let (inits, batches) = fixture();
    // Events first (before their sessions exist), then the inits, then every
    // event again as a retry: the figures must not move.
    for batch in &batches[..2] {
        api.post("/api/v1/channel/events", batch.clone()).await;
    }
    let reply = api.post("/api/v1/channel/init", json!(inits)).await;
    assert_eq!(reply["accepted"], 4, "{reply}");
    let reply = api.post("/api/v1/channel/events", json!(batches)).await;
    assert!(reply["rejected"].as_array().unwrap().is_empty(), "{reply}");
    assert!(reply["duplicates"].as_u64().unwrap() >= 12, "{reply}");
    let values = hour_values(&api, json!({})).await;
    assert_hand_computed(&values);

    // A repeated init is an update that changes nothing here.
    let reply = api.post("/api/v1/channel/init", json!(inits[0])).await;
    assert_eq!(reply["duplicates"], 1, "{reply}");

    // Rebuilding from raw events gives the same figures.
    let summary = api.post("/api/v1/analytics/rebuild", json!({})).await;
    assert_eq!(summary["sessions"], 4, "{summary}");
    assert_eq!(hour_values(&api, json!({})).await, values);

    // Drill-down: the service level's sessions, and which count as met.
    let drill = api
        .post(
            "/api/v1/metrics/drilldown",
            json!({"metric": "service_level", "start": t("10:00:00"), "interval": "1h"}),
        )
        .await;
    let mut sessions: Vec<(String, bool)> = drill["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["session_id"].as_str().unwrap().to_owned(),
                s["in_numerator"].as_bool().unwrap(),
            )
        })
        .collect();
    sessions.sort();
    assert_eq!(
        sessions,
        vec![
            ("c1-s".to_owned(), true),
            ("c2-s".to_owned(), false),
            ("c4-s".to_owned(), false)
        ]
    );
    // ...and a session's event timeline, the last step of a drill-down.
    let session = api.get("/api/v1/sessions/c1-s").await;
    assert_eq!(session["facts"]["hold_ms"], 25_000);
    assert_eq!(session["facts"]["holds"], 2);
    let names: Vec<&str> = session["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kpiEventName"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"NotificationDisplayed"));
    assert_eq!(names.len(), 10);
    server.stop().await;
}

#[tokio::test]
async fn thresholds_per_queue_recompute_past_figures() {
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let (inits, batches) = fixture();
    api.post("/api/v1/channel/init", json!(inits)).await;
    api.post("/api/v1/channel/events", json!(batches)).await;
    // With T = 30 s, c2 (answered after 30 s) is within; with a 2 s short
    // abandon, c3 (3 s) is a real abandon.
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v1/queues/billing",
            Some(json!({"service_level_seconds": 30, "short_abandon_seconds": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let values = hour_values(&api, json!({})).await;
    assert!(close(&values["service_level"], 2.0 / 4.0), "{values:?}");
    assert!(close(&values["abandon_rate"], 2.0 / 4.0), "{values:?}");
    let queues = api.get("/api/v1/queues").await;
    assert_eq!(queues["items"][0]["service_level_seconds"], 30);
    let (status, _) = api
        .call(
            Method::PUT,
            "/api/v1/queues/billing",
            Some(json!({"service_level_seconds": -1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    server.stop().await;
}

#[tokio::test]
async fn occupancy_is_handle_time_over_signed_in_time() {
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let (inits, batches) = fixture();
    api.post("/api/v1/channel/init", json!(inits)).await;
    api.post("/api/v1/channel/events", json!(batches)).await;
    api.post(
        "/api/v1/channel/events",
        events(
            "c1",
            "agent-7",
            vec![
                event("AgentSignedOut", "10:10:00"),
                event("AgentSignedIn", "10:00:00"),
            ],
        ),
    )
    .await;
    let answer = api
        .post(
            "/api/v1/metrics/query",
            json!({"metrics": ["occupancy", "aht"], "from": t("10:00:00"), "to": t("11:00:00"),
                   "interval": "1h", "group_by": "agent"}),
        )
        .await;
    let occupancy = answer["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"] == "occupancy" && s["group"]["agent"] == "agent-7")
        .unwrap_or_else(|| panic!("{answer}"));
    // (120 + 150) s handled over 600 s signed in.
    assert!(
        close(&occupancy["points"][0]["value"], 270.0 / 600.0),
        "{occupancy}"
    );
    // Occupancy has no queue.
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/metrics/query",
            Some(json!({"metrics": ["occupancy"], "group_by": "queue"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn intervals_follow_the_time_zone_across_a_dst_change() {
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST. 00:30Z is 01:30
    // local, 01:30Z is 03:30 local.
    for (id, queued) in [
        ("d1", "2026-03-29T00:30:00Z"),
        ("d2", "2026-03-29T01:30:00Z"),
    ] {
        api.post(
            "/api/v1/channel/init",
            json!({"conversation": {"conversationId": id, "providerId": "contoso",
                "session": {"providerSessionId": format!("{id}-s"), "queueId": "billing",
                            "queueAssignedTimestamp": queued}}}),
        )
        .await;
    }
    let answer = api
        .post(
            "/api/v1/metrics/query",
            json!({"metrics": "conversations_offered", "from": "2026-03-28T23:00:00Z",
                   "to": "2026-03-29T22:00:00Z", "interval": "1h", "timezone": "Europe/Berlin"}),
        )
        .await;
    let points = answer["series"][0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 23, "a 23-hour day");
    assert_eq!(points[1]["start"], "2026-03-29T00:00:00.000Z");
    assert_eq!(points[1]["value"], 1.0);
    assert_eq!(points[2]["start"], "2026-03-29T01:00:00.000Z");
    assert_eq!(
        answer["intervals"][2]["local_start"],
        "2026-03-29T03:00:00+02:00"
    );
    assert_eq!(points[2]["value"], 1.0);
    let day = api
        .post(
            "/api/v1/metrics/query",
            json!({"metrics": ["conversations_offered"], "from": "2026-03-29T10:00:00Z",
                   "to": "2026-03-29T11:00:00Z", "interval": "1d", "timezone": "Europe/Berlin"}),
        )
        .await;
    assert_eq!(
        day["series"][0]["points"][0]["start"],
        "2026-03-28T23:00:00.000Z"
    );
    assert_eq!(day["series"][0]["points"][0]["value"], 2.0);
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/metrics/query",
            Some(json!({"timezone": "Mars/Olympus"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "timezone");
    server.stop().await;
}

#[tokio::test]
async fn providers_definitions_and_refusals() {
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    api.post(
        "/api/v1/providers",
        json!({"id": "muted", "name": "Muted SMS", "enable_analytics": false}),
    )
    .await;
    let reply = api
        .post(
            "/api/v1/channel/init",
            json!({"conversation": {"conversationId": "m1", "providerId": "muted"}}),
        )
        .await;
    assert_eq!(
        reply["rejected"][0]["reason"], "analytics_disabled",
        "{reply}"
    );
    // An unregistered provider is registered, enabled, at its first init.
    api.post("/api/v1/channel/init", init("c1", "10:00:00", None, ""))
        .await;
    let contoso = api.get("/api/v1/providers/contoso").await;
    let listed = api.get("/api/v1/providers").await;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["contoso", "muted"]);
    assert_eq!(contoso["enable_analytics"], true);
    assert_eq!(contoso["name"], "Contoso Voice");
    // Disabling it refuses its events from then on.
    let (status, _) = api
        .call(
            Method::PATCH,
            "/api/v1/providers/contoso",
            Some(json!({"enable_analytics": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let reply = api
        .post(
            "/api/v1/channel/events",
            events("c1", "x", vec![event("SessionClosed", "10:01:00")]),
        )
        .await;
    assert_eq!(
        reply["rejected"][0]["reason"], "analytics_disabled",
        "{reply}"
    );
    api.call(
        Method::PATCH,
        "/api/v1/providers/contoso",
        Some(json!({"enable_analytics": true})),
    )
    .await;

    // Definitions: built-ins plus custom ones; undefined names refused.
    let all = api.get("/api/v1/kpi-event-definitions").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 15);
    let reply = api
        .post(
            "/api/v1/channel/events",
            events(
                "c1",
                "x",
                vec![event("CallHold", "10:00:20"), event("Nope", "10:00:21")],
            ),
        )
        .await;
    let reasons: Vec<&str> = reply["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["unknown_kpi_event", "unknown_kpi_event"],
        "{reply}"
    );
    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/kpi-event-definitions",
            Some(json!({"name": "CallHold", "display_name": "Call on hold"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let reply = api
        .post(
            "/api/v1/channel/events",
            events("c1", "x", vec![event("CallHold", "10:00:20")]),
        )
        .await;
    assert_eq!(reply["accepted"], 1, "{reply}");
    api.call(
        Method::PATCH,
        "/api/v1/kpi-event-definitions/CallHold",
        Some(json!({"enabled": false})),
    )
    .await;
    let reply = api
        .post(
            "/api/v1/channel/events",
            events("c1", "x", vec![event("CallHold", "10:00:30")]),
        )
        .await;
    assert_eq!(
        reply["rejected"][0]["reason"], "kpi_event_not_captured",
        "{reply}"
    );
    let (status, _) = api
        .call(
            Method::DELETE,
            "/api/v1/kpi-event-definitions/HoldStarted",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "built-ins stay");
    let (status, _) = api
        .call(
            Method::DELETE,
            "/api/v1/kpi-event-definitions/CallHold",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(Method::GET, "/api/v1/kpi-event-definitions/CallHold", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bad items are refused one by one, naming the field.
    let reply = api
        .post(
            "/api/v1/channel/init",
            json!([{"conversation": {"session": {}}},
                   {"conversation": {"conversationId": "ok"}}]),
        )
        .await;
    assert_eq!(reply["accepted"], 1);
    assert_eq!(reply["rejected"][0]["reason"], "missing_field");
    assert_eq!(reply["rejected"][0]["field"], "conversation.conversationId");
    let (status, _) = api
        .call(Method::DELETE, "/api/v1/providers/muted", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.call(Method::GET, "/api/v1/providers/muted", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Changes to providers and definitions are in the activity log.
    let search = api
        .get("/api/v1/audit/search?operation=CreateKpiEventDefinition")
        .await;
    assert_eq!(search["count"], 1, "{search}");
    server.stop().await;
}

#[tokio::test]
async fn records_are_created_read_and_listed_with_filters() {
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let (inits, batches) = fixture();
    api.post("/api/v1/channel/init", json!(inits)).await;
    api.post("/api/v1/channel/events", json!(batches)).await;
    // Server-side creation without the init envelope.
    api.post(
        "/api/v1/conversations",
        json!({"conversationId": "c9", "channel": "chat", "providerId": "contoso"}),
    )
    .await;
    api.post(
        "/api/v1/sessions",
        json!({"conversationId": "c9", "providerSessionId": "c9-s", "queueId": "sales",
               "queueAssignedTimestamp": t("12:00:00")}),
    )
    .await;
    api.post(
        "/api/v1/participants",
        json!({"conversationId": "c9", "providerSessionId": "c9-s", "participantId": "bot-1",
               "type": "bot"}),
    )
    .await;
    let reply = api
        .post(
            "/api/v1/kpi-events",
            json!({"conversationId": "c9", "providerSessionId": "c9-s",
                   "kpiEventName": "SessionClosed", "eventTimestamp": t("12:00:30")}),
        )
        .await;
    assert_eq!(reply["accepted"], 1, "{reply}");

    let conversations = api.get("/api/v1/conversations?limit=2").await;
    assert_eq!(conversations["items"].as_array().unwrap().len(), 2);
    let cursor = conversations["next_cursor"].as_str().unwrap();
    let rest = api
        .get(&format!("/api/v1/conversations?limit=10&cursor={cursor}"))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    let chat = api.get("/api/v1/conversations?channel=chat").await;
    assert_eq!(chat["items"][0]["conversationId"], "c9");
    let c9 = api.get("/api/v1/conversations/c9").await;
    assert_eq!(c9["sessions"][0]["providerSessionId"], "c9-s");

    let sales = api.get("/api/v1/sessions?queue=sales").await;
    assert_eq!(sales["items"].as_array().unwrap().len(), 1);
    assert_eq!(sales["items"][0]["facts"]["abandoned"], true);
    let bots = api.get("/api/v1/participants?type=bot").await;
    assert_eq!(bots["items"][0]["participantId"], "bot-1");
    let holds = api
        .get("/api/v1/kpi-events?session_id=c1-s&name=HoldStarted")
        .await;
    assert_eq!(holds["items"].as_array().unwrap().len(), 2);
    let window = api
        .get(&format!(
            "/api/v1/kpi-events?from={}&to={}",
            t("10:01:00"),
            t("10:01:30")
        ))
        .await;
    assert_eq!(window["items"].as_array().unwrap().len(), 6, "{window}");
    let (status, _) = api.call(Method::GET, "/api/v1/sessions/none", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let catalogue = api.get("/api/v1/metrics").await;
    assert!(
        catalogue["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "service_level" && m["interval_of"] == "queued")
    );
    server.stop().await;
}

/// Reads Server-Sent Events until `count` snapshots arrived.
async fn snapshots(server: &TestServer, api: &Api<'_>, query: &str, count: usize) -> Vec<Value> {
    let mut response = server
        .http
        .get(server.url(&format!("/api/v1/realtime?{query}")))
        .basic_auth(&api.auth.0, api.auth.1.as_ref())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut buffer = String::new();
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while found.len() < count && tokio::time::Instant::now() < deadline {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("an update in time")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            if message.contains("event: snapshot") {
                let data: String = message
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                found.push((
                    tokio::time::Instant::now(),
                    serde_json::from_str::<Value>(&data).unwrap(),
                ));
            }
        }
    }
    assert_eq!(found.len(), count, "snapshots in 15 s");
    if count >= 2 {
        let gap = found[1].0 - found[0].0;
        assert!(
            gap <= std::time::Duration::from_millis(1_500),
            "updates {gap:?} apart"
        );
    }
    found.into_iter().map(|(_, v)| v).collect()
}

#[tokio::test]
async fn real_time_counts_live_sessions_and_agrees_with_history() {
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let quarter = 15 * 60 * 1000;
    let current = now.div_euclid(quarter) * quarter;
    let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
    // Two sessions in the last closed quarter hour: one answered and
    // closed, one abandoned; and one waiting now, queued in this quarter.
    let previous = current - quarter + 60_000;
    let waiting_since = (now - 30_000).max(current);
    api.post(
        "/api/v1/channel/init",
        json!([
            {"conversation": {"conversationId": "p1", "providerId": "contoso", "session": {
                "providerSessionId": "p1-s", "queueId": "billing",
                "queueAssignedTimestamp": at(previous), "agentAssignedTimestamp": at(previous + 8_000),
                "participants": [{"participantId": "agent-1", "type": "agent"}]}}},
            {"conversation": {"conversationId": "p2", "providerId": "contoso", "session": {
                "providerSessionId": "p2-s", "queueId": "billing",
                "queueAssignedTimestamp": at(previous + 1_000)}}},
            {"conversation": {"conversationId": "w1", "providerId": "contoso", "session": {
                "providerSessionId": "w1-s", "queueId": "billing",
                "queueAssignedTimestamp": at(waiting_since)}}},
        ]),
    )
    .await;
    api.post(
        "/api/v1/channel/events",
        json!([
            {"conversationId": "p1", "providerSessionId": "p1-s",
             "events": [{"kpiEventName": "SessionClosed", "eventTimestamp": at(previous + 60_000)}]},
            {"conversationId": "p2", "providerSessionId": "p2-s",
             "events": [{"kpiEventName": "SessionClosed", "eventTimestamp": at(previous + 31_000)}]},
            // agent-1 is signed in; agent-2 signed in and out again.
            {"conversationId": "p1", "providerSessionId": "p1-s", "participantId": "agent-1",
             "events": [{"kpiEventName": "AgentSignedIn", "eventTimestamp": at(now - 120_000)}]},
            {"conversationId": "p1", "providerSessionId": "p1-s", "participantId": "agent-2",
             "events": [{"kpiEventName": "AgentSignedIn", "eventTimestamp": at(now - 120_000)},
                        {"kpiEventName": "AgentSignedOut", "eventTimestamp": at(now - 60_000)}]},
        ]),
    )
    .await;
    let got = snapshots(&server, &api, "interval=15m&timezone=UTC", 2).await;
    let snapshot = &got[1];
    assert_eq!(snapshot["waiting"], 1, "{snapshot}");
    assert_eq!(snapshot["agents_signed_in"], 1, "{snapshot}");
    let waited = (now - waiting_since) as f64 / 1000.0;
    assert!(snapshot["longest_wait_seconds"].as_f64().unwrap() >= waited);
    assert_eq!(snapshot["queues"][0]["queue"], "billing");
    // Waiting longer than 20 s is flagged while it waits.
    let breaching = snapshot["breaching"].as_array().unwrap();
    let snapshot_at = snapshot["at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let over = snapshot_at - waiting_since > 20_000;
    assert_eq!(breaching.len(), usize::from(over), "{snapshot}");
    // The closed interval's figures are the history's, exactly.
    let history = api
        .post(
            "/api/v1/metrics/query",
            json!({"from": at(current - quarter), "to": at(current), "interval": "15m",
                   "timezone": "UTC"}),
        )
        .await;
    if snapshot["previous"]["intervals"][0]["start"] == history["intervals"][0]["start"] {
        assert_eq!(snapshot["previous"]["series"], history["series"]);
        let offered = history["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["metric"] == "conversations_offered")
            .unwrap();
        assert_eq!(offered["points"][0]["value"], 2.0, "{history}");
    } else {
        // The quarter hour turned during the test: the snapshot's previous
        // interval is the one this test's "current" was.
        let later = api
            .post(
                "/api/v1/metrics/query",
                json!({"from": at(current), "to": at(current + quarter), "interval": "15m"}),
            )
            .await;
        assert_eq!(snapshot["previous"]["series"], later["series"]);
    }
    server.stop().await;
}

fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// One answered and closed session in `queue`: queued at `queued`,
/// answered `wait` s later, closed `handle` s after that.
fn handled(id: &str, queue: &str, queued: i64, wait: i64, handle: i64) -> (Value, Value) {
    let init = json!({"conversation": {"conversationId": id, "providerId": "contoso",
        "session": {"providerSessionId": format!("{id}-s"), "queueId": queue,
            "queueAssignedTimestamp": iso(queued),
            "agentAssignedTimestamp": iso(queued + wait * 1000),
            "participants": [{"participantId": "agent-1", "type": "agent"}]}}});
    let closed = json!({"conversationId": id, "providerSessionId": format!("{id}-s"),
        "events": [{"kpiEventName": "SessionClosed",
                    "eventTimestamp": iso(queued + (wait + handle) * 1000)}]});
    (init, closed)
}

#[tokio::test]
async fn alerts_fire_and_resolve_and_reach_their_webhook() {
    use std::sync::{Arc, Mutex};
    /// (signature header, body) of each delivery.
    type Deliveries = Arc<Mutex<Vec<(Option<String>, String)>>>;
    let received: Deliveries = Arc::default();
    let sink = received.clone();
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", hook.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let signature = headers
                    .get("x-tracklog-signature")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                sink.lock().unwrap().push((signature, body));
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(hook, app).await });

    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let (init, closed) = handled("a1", "billing", now - 10 * 60_000, 90, 60);
    api.post("/api/v1/channel/init", init).await;
    api.post("/api/v1/channel/events", closed).await;
    let rule = json!({"id": "asa-billing", "metric": "asa", "comparison": "above",
        "threshold": 60, "window_minutes": 60, "filters": {"queue": "billing"},
        "webhook_url": hook_url, "webhook_secret": "s3cret"});
    let saved = api.post("/api/v1/alert-rules", rule.clone()).await;
    assert!(
        saved.get("webhook_secret").is_none(),
        "secrets are not shown: {saved}"
    );
    let checks = api.post("/api/v1/alerts/evaluate", json!({})).await;
    assert_eq!(checks["checks"][0]["state"], "firing", "{checks}");
    assert_eq!(checks["checks"][0]["value"], 90.0);
    let open = api.get("/api/v1/alerts?state=open").await;
    assert_eq!(open["items"].as_array().unwrap().len(), 1);
    // Evaluating again changes nothing and sends nothing.
    api.post("/api/v1/alerts/evaluate", json!({})).await;
    // A higher threshold resolves it.
    let mut relaxed = rule.clone();
    relaxed["threshold"] = json!(120);
    api.post("/api/v1/alert-rules", relaxed).await;
    let checks = api.post("/api/v1/alerts/evaluate", json!({})).await;
    assert_eq!(checks["checks"][0]["state"], "ok", "{checks}");
    assert_eq!(checks["checks"][0]["alert"]["state"], "resolved");
    let all = api.get("/api/v1/alerts").await;
    assert_eq!(all["items"][0]["state"], "resolved");
    assert!(all["items"][0]["resolved_at"].is_string());
    let deliveries = received.lock().unwrap().clone();
    let states: Vec<String> = deliveries
        .iter()
        .map(|(_, body)| {
            let body: Value = serde_json::from_str(body).unwrap();
            body["alert"]["state"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(states, ["firing", "resolved"]);
    for (signature, body) in &deliveries {
        let expected =
            tracklog_domain::audit::format::webhook_signature(b"s3cret", body.as_bytes());
        assert_eq!(
            signature.as_deref(),
            Some(expected.as_str()),
            "signed with the secret"
        );
    }
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/alert-rules",
            Some(
                json!({"id": "x", "metric": "asa", "comparison": "above", "threshold": 1,
                        "window_minutes": 7}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "window_minutes");
    let (status, _) = api
        .call(Method::DELETE, "/api/v1/alert-rules/asa-billing", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    server.stop().await;
}

#[tokio::test]
async fn a_week_of_forecast_and_staffing_from_three_weeks_of_history() {
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let hour = 3_600_000;
    let now = jiff::Timestamp::now().as_millisecond();
    let end = now.div_euclid(hour) * hour;
    // Three weeks: six calls an hour from 09:00 to 17:00 UTC on weekdays,
    // none otherwise; each answered after 5 s and handled for 300 s.
    let mut inits = Vec::new();
    let mut events = Vec::new();
    let mut start = end - 21 * 24 * hour;
    while start < end {
        let t = jiff::Timestamp::from_millisecond(start)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC);
        let weekday = t.weekday().to_monday_one_offset() <= 5;
        if weekday && (9..17).contains(&t.hour()) {
            for k in 0..6 {
                let (init, closed) = handled(
                    &format!("f{start}-{k}"),
                    "billing",
                    start + k * 600_000,
                    5,
                    300,
                );
                inits.push(init);
                events.push(closed);
            }
        }
        start += hour;
    }
    for chunk in inits.chunks(2_000) {
        api.post("/api/v1/channel/init", json!(chunk)).await;
    }
    for chunk in events.chunks(2_000) {
        api.post("/api/v1/channel/events", json!(chunk)).await;
    }
    let forecast = api
        .get("/api/v1/forecast?queue=billing&weeks=3&interval=1h&target=0.8&target_seconds=20")
        .await;
    assert_eq!(forecast["model"], "daily_weekly", "{}", forecast["model"]);
    assert!(
        close(&forecast["history"]["aht_seconds"], 300.0),
        "{}",
        forecast["history"]
    );
    let points = forecast["points"].as_array().unwrap();
    assert_eq!(points.len(), 168);
    let mut busy = 0;
    for point in points {
        let start = point["start"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
        let t = start.to_zoned(jiff::tz::TimeZone::UTC);
        let calls = point["forecast"].as_f64().unwrap();
        assert!(calls >= 0.0);
        let weekday = t.weekday().to_monday_one_offset() <= 5;
        if weekday && (10..16).contains(&t.hour()) {
            busy += 1;
            assert!((calls - 6.0).abs() < 1.0, "{point}");
            // 6 calls × 300 s in an hour is 0.5 Erlang: one agent answers
            // 80 % within 20 s? Erlang C says two are needed.
            assert!(point["agents"].as_u64().unwrap() >= 1, "{point}");
            assert!(point["service_level"].as_f64().unwrap() >= 0.8, "{point}");
        } else if t.hour() < 6 {
            assert!(calls < 0.5, "{point}");
        }
    }
    assert_eq!(busy, 30, "five weekdays of six busy hours");
    assert!(
        forecast["backtest"]["mape_percent"].as_f64().is_some(),
        "{}",
        forecast["backtest"]
    );
    let (status, _) = api
        .call(Method::GET, "/api/v1/forecast?interval=1d", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    server.stop().await;
}
