//! Customer sentiment against a real server: `SentimentUpdated` events,
//! refused when out of range, the sentiment metrics and the
//! `sentiment_band` dimension, and the dissatisfied-conversations report
//! as JSON pages and as CSV, whose counts equal a count over the events
//! sent, and whose opening is recorded.

mod common;

use common::{TestServer, basic};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DAY: &str = "2026-03-01";

fn t(clock: &str) -> String {
    format!("{DAY}T{clock}Z")
}

async fn post(
    server: &TestServer,
    auth: &(String, Option<String>),
    path: &str,
    body: Value,
) -> Value {
    let response = server
        .http
        .post(server.url(path))
        .basic_auth(&auth.0, auth.1.as_ref())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let reply: Value = response.json().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {reply}");
    reply
}

async fn get(
    server: &TestServer,
    auth: &(String, Option<String>),
    path: &str,
) -> (StatusCode, String) {
    let response = server
        .http
        .get(server.url(path))
        .basic_auth(&auth.0, auth.1.as_ref())
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// One session: its queue and agent, when it closed, its sentiment updates
/// and its CSAT.
struct Case {
    id: &'static str,
    queue: &'static str,
    agent: &'static str,
    closed: Option<&'static str>,
    updates: &'static [(&'static str, f64)],
    csat: Option<u8>,
}

const CASES: [Case; 6] = [
    Case {
        id: "n1",
        queue: "billing",
        agent: "agent-1",
        closed: Some("10:20:00"),
        updates: &[("10:05:00", 0.4), ("10:15:00", -0.5)],
        csat: None,
    },
    Case {
        id: "n2",
        queue: "billing",
        agent: "agent-2",
        closed: Some("10:30:00"),
        updates: &[("10:25:00", 0.8)],
        csat: Some(2),
    },
    Case {
        id: "n3",
        queue: "billing",
        agent: "agent-1",
        closed: Some("10:40:00"),
        updates: &[("10:35:00", 0.3)],
        csat: Some(5),
    },
    Case {
        id: "n4",
        queue: "sales",
        agent: "agent-2",
        closed: Some("10:45:00"),
        updates: &[("10:44:00", -0.9)],
        csat: Some(1),
    },
    Case {
        id: "n5",
        queue: "sales",
        agent: "agent-1",
        closed: None,
        updates: &[("10:50:00", -0.8)],
        csat: None,
    },
    Case {
        id: "n6",
        queue: "billing",
        agent: "agent-2",
        closed: Some("10:55:00"),
        updates: &[],
        csat: Some(4),
    },
];

fn init(case: &Case) -> Value {
    json!({"conversation": {"conversationId": case.id, "channel": "chat", "providerId": "contoso",
        "session": {"providerSessionId": format!("{}-s", case.id), "queueId": case.queue,
            "queueAssignedTimestamp": t("10:00:00"), "agentAssignedTimestamp": t("10:01:00"),
            "participants": [{"participantId": case.agent, "type": "agent", "addedTimestamp": t("10:01:00")}]}}})
}

fn events(case: &Case) -> Value {
    let mut list: Vec<Value> = case
        .updates
        .iter()
        .map(|(clock, score)| {
            json!({"kpiEventName": "SentimentUpdated", "eventTimestamp": t(clock),
            "customData": {"score": score, "label": "model"}})
        })
        .collect();
    if let Some(closed) = case.closed {
        list.push(json!({"kpiEventName": "SessionClosed", "eventTimestamp": t(closed)}));
    }
    if let Some(score) = case.csat {
        list.push(
            json!({"kpiEventName": "CsatSubmitted", "eventTimestamp": t("10:58:00"),
            "customData": [{"attribute": "score", "value": score}]}),
        );
    }
    list.reverse();
    json!({"conversationId": case.id, "providerSessionId": format!("{}-s", case.id),
        "participantId": case.agent, "events": list})
}

/// The report as the contract defines it, from what was sent.
fn expected(queue: Option<&str>) -> Vec<String> {
    CASES
        .iter()
        .filter(|c| c.closed.is_some() && queue.is_none_or(|q| q == c.queue))
        .filter(|c| {
            let closing = c
                .updates
                .iter()
                .rfind(|(at, _)| *at <= c.closed.unwrap())
                .map(|(_, s)| *s);
            c.csat.is_some_and(|s| s <= 2) || closing.is_some_and(|s| s < -0.1)
        })
        .map(|c| format!("{}-s", c.id))
        .collect()
}

#[tokio::test]
async fn sentiment_metrics_bands_and_the_dissatisfied_report() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("ops", "manage").await);
    for case in &CASES {
        post(&server, &auth, "/api/v1/channel/init", init(case)).await;
        let reply = post(&server, &auth, "/api/v1/channel/events", events(case)).await;
        assert!(reply["rejected"].as_array().unwrap().is_empty(), "{reply}");
    }
    // Out of range: refused per item, with the field.
    let reply = post(
        &server,
        &auth,
        "/api/v1/channel/events",
        json!({"conversationId": "n1", "providerSessionId": "n1-s", "events": [
            {"kpiEventName": "SentimentUpdated", "eventTimestamp": t("10:16:00"), "customData": {"score": -1.2}},
            {"kpiEventName": "SentimentUpdated", "eventTimestamp": t("10:17:00"), "customData": {"score": -0.2}}]}),
    )
    .await;
    assert_eq!(reply["accepted"], 1, "{reply}");
    assert_eq!(reply["rejected"][0]["index"], 0, "{reply}");
    assert_eq!(
        reply["rejected"][0]["field"], "events[0].customData.score",
        "{reply}"
    );

    // n1 closed at -0.2 after the accepted update; n2 at 0.8, n3 at 0.3, n4
    // at -0.9; n5 is open; n6 has no sentiment.
    let metrics = post(
        &server,
        &auth,
        "/api/v1/metrics/query",
        json!({"metrics": ["mean_sentiment", "negative_sentiment_rate", "sentiment_drop_rate", "aht"],
               "from": t("10:00:00"), "to": t("11:00:00"), "interval": "1h"}),
    )
    .await;
    let value = |name: &str| {
        metrics["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["metric"] == name)
            .unwrap()["points"][0]["value"]
            .as_f64()
            .unwrap()
    };
    assert!((value("mean_sentiment") - (-0.2 + 0.8 + 0.3 - 0.9) / 4.0).abs() < 1e-9);
    assert!(
        (value("negative_sentiment_rate") - 0.5).abs() < 1e-9,
        "n1 and n4 of four"
    );
    assert!(
        (value("sentiment_drop_rate") - 0.25).abs() < 1e-9,
        "n1: 0.4 to -0.5"
    );
    let by_band = post(
        &server,
        &auth,
        "/api/v1/metrics/query",
        json!({"metrics": "aht", "from": t("10:00:00"), "to": t("11:00:00"), "interval": "1h",
               "group_by": "sentiment_band"}),
    )
    .await;
    let bands: Vec<&str> = by_band["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["group"]["sentiment_band"].as_str().unwrap())
        .collect();
    for band in [
        "",
        "slightly_negative",
        "very_positive",
        "slightly_positive",
        "very_negative",
    ] {
        assert!(bands.contains(&band), "{band:?} in {bands:?}");
    }

    // The report: every page, then the CSV, against the sent events.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, text) = get(
            &server,
            &auth,
            &format!(
                "/api/v1/reports/dissatisfied?from={}&to={}&limit=2{cursor}",
                t("00:00:00"),
                t("23:00:00")
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let page: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(page["count"], expected(None).len(), "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push(item["session_id"].as_str().unwrap().to_owned());
            assert!(
                item["timeline"]
                    .as_str()
                    .unwrap()
                    .starts_with("/ui/analytics/sessions/")
            );
            assert!(!item["reasons"].as_array().unwrap().is_empty());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, expected(None));
    let (status, csv) = get(
        &server,
        &auth,
        &format!(
            "/api/v1/reports/dissatisfied?from={}&to={}&queue=billing&format=csv",
            t("00:00:00"),
            t("23:00:00")
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let ids: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(ids, expected(Some("billing")), "one row per session");
    let (status, bad) = get(
        &server,
        &auth,
        "/api/v1/reports/dissatisfied?from=yesterday",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert!(bad.contains("\"from\""), "{bad}");

    // Each opening is an activity-log record: every JSON page, and the CSV.
    let (_, opened) = get(
        &server,
        &auth,
        "/api/v1/audit/search?operation=RetrieveDissatisfiedConversations",
    )
    .await;
    let opened: Value = serde_json::from_str(&opened).unwrap();
    let pages = expected(None).len().div_ceil(2);
    assert_eq!(opened["count"], pages + 1, "{opened}");
    server.stop().await;
}

#[tokio::test]
async fn an_alert_fires_when_sentiment_turns_negative_and_on_drops() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("ops", "manage").await);
    let now = jiff::Timestamp::now().as_millisecond();
    let at = |ms: i64| tracklog_domain::time::UtcMillis::from_millis(ms).to_rfc3339();
    // Three sessions closed in the last minutes: two negative at close, one
    // of them after a drop from 0.6.
    for (id, scores) in [
        ("a1", vec![0.6, -0.4]),
        ("a2", vec![-0.7]),
        ("a3", vec![0.5]),
    ] {
        let start = now - 10 * 60_000;
        post(&server, &auth, "/api/v1/channel/init", json!({"conversation": {
            "conversationId": id, "providerId": "contoso", "session": {
                "providerSessionId": format!("{id}-s"), "queueId": "care",
                "queueAssignedTimestamp": at(start), "agentAssignedTimestamp": at(start + 5_000)}}})).await;
        let mut list: Vec<Value> = scores
            .iter()
            .enumerate()
            .map(|(i, score)| json!({"kpiEventName": "SentimentUpdated",
                "eventTimestamp": at(start + 60_000 * (i as i64 + 1)), "customData": {"score": score}}))
            .collect();
        list.push(json!({"kpiEventName": "SessionClosed", "eventTimestamp": at(now - 60_000)}));
        post(
            &server,
            &auth,
            "/api/v1/channel/events",
            json!({"conversationId": id,
            "providerSessionId": format!("{id}-s"), "events": list}),
        )
        .await;
    }
    for (id, metric, threshold) in [
        ("negative", "negative_sentiment_rate", 0.5),
        ("drops", "sentiment_drop_rate", 0.2),
        ("calm", "sentiment_drop_rate", 0.5),
    ] {
        post(
            &server,
            &auth,
            "/api/v1/alert-rules",
            json!({"id": id, "metric": metric,
            "comparison": "above", "threshold": threshold, "window_minutes": 60}),
        )
        .await;
    }
    let checks = post(&server, &auth, "/api/v1/alerts/evaluate", json!({})).await;
    let state = |id: &str| {
        checks["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["rule_id"] == id)
            .unwrap_or_else(|| panic!("{id}: {checks}"))["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(state("negative"), "firing", "2 of 3 negative: {checks}");
    assert_eq!(state("drops"), "firing", "1 of 3 dropped: {checks}");
    assert_eq!(state("calm"), "ok", "{checks}");
    server.stop().await;
}
