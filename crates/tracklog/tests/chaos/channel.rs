//! Channel analytics under kill -9: a conversation per step, its init and
//! then its KPI events, with some events sent twice. After each restart
//! every acknowledged session and event is stored once, and the dashboard's
//! figures, kept by the materialiser, equal those of a rebuild from the raw
//! events.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::common::Server;
use super::load::Cutoff;

/// What one round got acknowledged: sessions, and events per session.
#[derive(Default)]
pub struct Acknowledged {
    pub sessions: Vec<String>,
    pub events: HashMap<String, usize>,
}

fn at(step: u64, seconds: u64) -> String {
    let total = (step % 600) * 5 + seconds;
    format!(
        "2026-03-01T{:02}:{:02}:{:02}Z",
        10 + total / 3600,
        total / 60 % 60,
        total % 60
    )
}

fn init(conversation: &str, agent: &str, step: u64) -> Value {
    json!({
        "conversation": {
            "conversationId": conversation, "channel": "voice", "providerId": "chaos",
            "session": {
                "providerSessionId": format!("{conversation}-s"),
                "queueId": format!("q{}", step % 2),
                "queueAssignedTimestamp": at(step, 0),
                "agentAssignedTimestamp": at(step, 4 + step % 20),
                "participants": [
                    {"participantId": format!("cust-{conversation}"), "type": "customer"},
                    {"participantId": agent, "type": "agent", "addedTimestamp": at(step, 4)},
                ],
            },
        },
    })
}

fn events(conversation: &str, agent: &str, step: u64) -> (Value, usize) {
    let mut list = vec![
        json!({"kpiEventName": "AgentSignedIn", "eventTimestamp": at(step, 1)}),
        json!({"kpiEventName": "NotificationDisplayed", "eventTimestamp": at(step, 2)}),
        json!({"kpiEventName": "NotificationResponse", "eventTimestamp": at(step, 3),
               "notificationResponseAction": if step.is_multiple_of(4) { "Reject" } else { "Accept" }}),
        json!({"kpiEventName": "HoldStarted", "eventTimestamp": at(step, 30)}),
        json!({"kpiEventName": "HoldEnded", "eventTimestamp": at(step, 30 + step % 40)}),
        json!({"kpiEventName": "SessionClosed", "eventTimestamp": at(step, 120 + step % 60)}),
        json!({"kpiEventName": "CsatSubmitted", "eventTimestamp": at(step, 200),
               "customData": {"score": 1 + step % 5}}),
    ];
    if step.is_multiple_of(3) {
        list.push(json!({"kpiEventName": "TransferRequested", "eventTimestamp": at(step, 60)}));
    }
    // Out of order, as providers send them.
    list.reverse();
    let count = list.len();
    (
        json!({
            "conversationId": conversation, "providerSessionId": format!("{conversation}-s"),
            "participantId": agent, "events": list,
        }),
        count,
    )
}

async fn post(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> Option<Value> {
    let response = http
        .post(url)
        .basic_auth("app", Some(key))
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

/// Sends conversations one after another until the cutoff or a refusal;
/// returns what was acknowledged, and the sessions whose start was
/// answered only after the cutoff.
pub async fn send(
    base: String,
    key: String,
    round: usize,
    cutoff: Cutoff,
) -> (Acknowledged, Vec<String>) {
    let http = reqwest::Client::new();
    let mut acknowledged = Acknowledged::default();
    let mut previous: Option<Value> = None;
    for step in 0..10_000u64 {
        if cutoff.passed() {
            break;
        }
        let conversation = format!("r{round}-k{step}");
        let agent = format!("agent-{}", step % 3);
        let Some(report) = post(
            &http,
            &format!("{base}/api/v1/channel/init"),
            &key,
            &init(&conversation, &agent, step),
        )
        .await
        else {
            break;
        };
        assert_eq!(report["accepted"], 1, "{report}");
        let session = format!("{conversation}-s");
        if cutoff.passed() {
            return (acknowledged, vec![session]);
        }
        acknowledged.sessions.push(session.clone());
        let (body, count) = events(&conversation, &agent, step);
        let Some(report) = post(&http, &format!("{base}/api/v1/channel/events"), &key, &body).await
        else {
            break;
        };
        assert_eq!(report["accepted"], count, "{report}");
        assert_eq!(report["rejected"], json!([]), "{report}");
        if cutoff.passed() {
            break;
        }
        acknowledged.events.insert(session, count);
        // Now and then the previous step's events again: a retry stores
        // nothing twice.
        if step % 5 == 4
            && let Some(again) = previous.take()
            && post(
                &http,
                &format!("{base}/api/v1/channel/events"),
                &key,
                &again,
            )
            .await
            .is_none()
        {
            break;
        }
        previous = Some(body);
    }
    (acknowledged, Vec::new())
}

async fn get(http: &reqwest::Client, server: &Server, key: &str, path: &str) -> Value {
    http.get(server.url(path))
        .basic_auth("app", Some(key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Every acknowledged session of the round is stored with each of its
/// acknowledged events once.
pub async fn check(
    http: &reqwest::Client,
    server: &Server,
    key: &str,
    acknowledged: &Acknowledged,
    round: usize,
) {
    for session in &acknowledged.sessions {
        let found = get(http, server, key, &format!("/api/v1/sessions/{session}")).await;
        assert_eq!(
            found["providerSessionId"], *session,
            "round {round}: acknowledged session {session} lost: {found}"
        );
        assert!(
            found["facts"].is_object(),
            "round {round}: {session} has no facts"
        );
        let Some(expected) = acknowledged.events.get(session) else {
            continue;
        };
        let page = get(
            http,
            server,
            key,
            &format!("/api/v1/kpi-events?session_id={session}&limit=1000"),
        )
        .await;
        let items = page["items"].as_array().unwrap_or_else(|| panic!("{page}"));
        assert_eq!(
            items.len(),
            *expected,
            "round {round}: the events of {session}, each stored once"
        );
    }
}

/// Every figure of the day, by agent and hour.
async fn figures(http: &reqwest::Client, server: &Server, key: &str) -> Value {
    let response = http
        .post(server.url("/api/v1/metrics/query"))
        .basic_auth("app", Some(key))
        .json(&json!({
            "from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z",
            "interval": "1h", "group_by": "agent",
        }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// Whether two numbers agree but for the order their sums were taken in.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => close(x.as_f64().unwrap(), y.as_f64().unwrap()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The dashboard's figures, as the materialiser keeps them after the
/// restart, equal those a rebuild from the raw events gives.
pub async fn check_rollups(http: &reqwest::Client, server: &Server, key: &str, round: usize) {
    let kept = figures(http, server, key).await;
    let response = http
        .post(server.url("/api/v1/analytics/rebuild"))
        .basic_auth("app", Some(key))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let rebuilt = figures(http, server, key).await;
    assert!(
        same(&kept, &rebuilt),
        "round {round}: the figures kept behind the log differ from a rebuild\nkept: {kept}\nrebuilt: {rebuilt}"
    );
}
