//! Customer sentiment on the pages, in real headless Chromium: a change of
//! sentiment reaches the agent's ongoing conversations and the supervisor's
//! "Turned negative" flag within 2 s, and the dissatisfied-conversations
//! report lists the sessions with links to their timelines.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, sign_in};
use common::{TestServer, basic};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use tracklog_domain::ids::UserName;
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;
use tracklog_server::services::{Actor, users};

fn iso(ms: i64) -> String {
    UtcMillis::from_millis(ms).to_rfc3339()
}

async fn post(server: &TestServer, auth: &(String, Option<String>), path: &str, body: Value) {
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
    assert_eq!(reply["rejected"], json!([]), "POST {path}: {reply}");
}

fn init(id: &str, agent: &str, queued: i64) -> Value {
    json!({"conversation": {"conversationId": id, "channel": "chat", "providerId": "contoso",
        "session": {"providerSessionId": format!("{id}-s"), "queueId": "care",
            "queueAssignedTimestamp": iso(queued), "agentAssignedTimestamp": iso(queued + 5_000),
            "participants": [{"participantId": agent, "type": "agent", "addedTimestamp": iso(queued + 5_000)}]}}})
}

fn sentiment(id: &str, at: i64, score: f64) -> Value {
    json!({"conversationId": id, "providerSessionId": format!("{id}-s"),
        "events": [{"kpiEventName": "SentimentUpdated", "eventTimestamp": iso(at),
                    "customData": {"score": score}}]})
}

async fn add_user(server: &TestServer, name: &str, role: Role) {
    let org = server.org("default").await;
    users::add(
        &server.stores,
        org,
        &Actor::cli(),
        UserName::parse(name).unwrap(),
        role,
        format!("{name} password 1"),
    )
    .await
    .unwrap();
}

async fn text(page: &Client, css: &str) -> String {
    page.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until `css`'s text contains every one of `wanted`, up to `within`
/// from `since`.
async fn wait_for(page: &Client, css: &str, wanted: &[&str], since: Instant, within: Duration) {
    loop {
        let now = text(page, css).await;
        if wanted.iter().all(|w| now.contains(w)) {
            return;
        }
        assert!(
            since.elapsed() < within,
            "{css} shows {now:?} after {:?}, not {wanted:?}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentiment_change_reaches_the_agent_and_the_supervisor_within_two_seconds() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let auth = basic(&server.policy("ops", "manage").await);
    let now = UtcMillis::now().as_millis();
    post(
        &server,
        &auth,
        "/api/v1/channel/init",
        json!([
            init("c1", "dana", now - 120_000),
            init("c2", "lee", now - 60_000),
        ]),
    )
    .await;
    post(
        &server,
        &auth,
        "/api/v1/channel/events",
        sentiment("c1", now - 100_000, 0.5),
    )
    .await;
    add_user(&server, "dana", Role::Agent).await;
    add_user(&server, "sam", Role::Supervisor).await;
    let page = &browser.client;

    // The agent sees their conversation, positive, and then it falls.
    sign_in(page, &server, "dana", "dana password 1").await;
    page.goto(&server.url("/ui/analytics/me")).await.unwrap();
    let mine = "[data-testid=my-conversations] tbody";
    assert!(text(page, mine).await.contains("c1-s"));
    assert!(
        text(page, mine).await.contains("0.50 Positive"),
        "{}",
        text(page, mine).await
    );
    assert!(
        !text(page, mine).await.contains("c2-s"),
        "another agent's conversation"
    );
    post(
        &server,
        &auth,
        "/api/v1/channel/events",
        sentiment("c1", now - 1_000, -0.45),
    )
    .await;
    let sent = Instant::now();
    wait_for(
        page,
        mine,
        &["\u{2212}0.45 Negative", "↓ falling"],
        sent,
        Duration::from_secs(2),
    )
    .await;

    // The supervisor is flagged when another conversation turns negative.
    page.find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("input[name=username]"))
        .await
        .unwrap();
    sign_in(page, &server, "sam", "sam password 1").await;
    page.goto(&server.url("/ui/analytics/live")).await.unwrap();
    let flagged = "[data-testid=turned-negative] tbody";
    assert!(text(page, flagged).await.contains("c1-s"));
    assert!(!text(page, flagged).await.contains("c2-s"));
    post(
        &server,
        &auth,
        "/api/v1/channel/events",
        sentiment("c2", now - 500, -0.8),
    )
    .await;
    let sent = Instant::now();
    wait_for(
        page,
        flagged,
        &["c2-s", "lee", "Very negative"],
        sent,
        Duration::from_secs(2),
    )
    .await;
    // Most negative first, and the row leads to the session.
    let first = page
        .find(Locator::Css(
            "[data-testid=turned-negative] tbody tr:first-child a",
        ))
        .await
        .unwrap();
    assert_eq!(first.text().await.unwrap(), "c2-s");
    assert_eq!(
        first.attr("href").await.unwrap().as_deref(),
        Some("/ui/analytics/sessions/c2-s")
    );

    // Closed negative, c1 is in the report, and its row leads to it.
    post(
        &server,
        &auth,
        "/api/v1/channel/events",
        json!({"conversationId": "c1",
        "providerSessionId": "c1-s", "events": [{"kpiEventName": "SessionClosed",
        "eventTimestamp": iso(now - 400)}]}),
    )
    .await;
    page.goto(&server.url("/ui/reports/dissatisfied"))
        .await
        .unwrap();
    assert_eq!(text(page, "[data-testid=dissatisfied-count]").await, "1");
    let row = text(page, "[data-testid=dissatisfied-sessions] tbody").await;
    assert!(
        row.contains("c1-s") && row.contains("negative at close"),
        "{row}"
    );
    let csv = page
        .find(Locator::Css("[data-testid=dissatisfied-csv]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(csv.contains("format=csv"), "{csv}");
    browser.close().await;
    server.stop().await;
}
