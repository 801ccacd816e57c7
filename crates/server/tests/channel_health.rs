//! Channel health against a real server: a provider's rate, lag,
//! rejections and notification timeouts through the API and `/metrics`,
//! and the alert raised when it goes silent and resolved when it is heard
//! from again.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, basic};
use serde_json::{Value, json};
use tracklog_domain::time::UtcMillis;

async fn call(
    server: &TestServer,
    auth: &(String, Option<String>),
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = server
        .http
        .request(method, server.url(path))
        .basic_auth(&auth.0, auth.1.as_ref());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn at(ms: i64) -> String {
    UtcMillis::from_millis(ms).to_rfc3339()
}

async fn open_silence_alerts(server: &TestServer, auth: &(String, Option<String>)) -> Vec<Value> {
    let open = call(
        server,
        auth,
        reqwest::Method::GET,
        "/api/v1/alerts?state=open",
        None,
    )
    .await;
    open["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule_id"] == "provider_silence")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_health_and_the_alert_when_it_goes_silent() {
    let server = TestServer::start_with(|config| {
        config.channel.provider_silence_seconds = 1;
        config.channel.alert_interval_seconds = 1;
    })
    .await;
    let auth = basic(&server.policy("ops", "manage").await);
    let post = |path: &'static str, body: Value| {
        call(&server, &auth, reqwest::Method::POST, path, Some(body))
    };
    for (id, provider) in [("h1", "contoso"), ("h2", "muted")] {
        post(
            "/api/v1/channel/init",
            json!({"conversation": {"conversationId": id, "providerId": provider,
            "session": {"providerSessionId": format!("{id}-s")}}}),
        )
        .await;
    }
    // Muted's analytics are turned off after its conversation began.
    call(
        &server,
        &auth,
        reqwest::Method::PATCH,
        "/api/v1/providers/muted",
        Some(json!({"enable_analytics": false})),
    )
    .await;
    let now = UtcMillis::now().as_millis();
    // Three events of contoso, 2, 4 and 6 s late, one a timed-out
    // notification; one undefined; one of the disabled provider.
    let reply = post(
        "/api/v1/channel/events",
        json!([
        {"conversationId": "h1", "providerSessionId": "h1-s", "events": [
            {"kpiEventName": "NotificationDisplayed", "eventTimestamp": at(now - 6_000)},
            {"kpiEventName": "NotificationResponse", "eventTimestamp": at(now - 4_000),
             "notificationResponseAction": "Timeout"},
            {"kpiEventName": "HoldStarted", "eventTimestamp": at(now - 2_000)},
            {"kpiEventName": "NoSuchEvent", "eventTimestamp": at(now - 2_000)}]},
        {"conversationId": "h2", "providerSessionId": "h2-s", "events": [
            {"kpiEventName": "HoldStarted", "eventTimestamp": at(now)}]}]),
    )
    .await;
    assert_eq!(reply["accepted"], 3, "{reply}");
    let health = call(
        &server,
        &auth,
        reqwest::Method::GET,
        "/api/v1/providers/health",
        None,
    )
    .await;
    let item = |id: &str| {
        health["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["provider"] == id)
            .unwrap_or_else(|| panic!("{id}: {health}"))
            .clone()
    };
    let contoso = item("contoso");
    assert_eq!(contoso["events"], 3, "{contoso}");
    assert_eq!(contoso["notification_timeouts"], 1, "{contoso}");
    assert_eq!(contoso["rejected"]["unknown_kpi_event"], 1, "{contoso}");
    let p50 = contoso["lag_p50_seconds"].as_f64().unwrap();
    assert!((4.0..5.0).contains(&p50), "{contoso}");
    assert!(contoso["events_per_minute"].as_f64().unwrap() > 0.0);
    assert_eq!(
        item("muted")["rejected"]["analytics_disabled"],
        1,
        "{health}"
    );
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
        metrics
            .contains("tracklog_channel_provider_events_total{org=\"1\",provider=\"contoso\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tracklog_channel_event_lag_seconds_bucket{"),
        "lag histogram"
    );

    // Silent for more than a second: an alert, within the next ticks.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let silent = open_silence_alerts(&server, &auth).await;
        if silent.iter().any(|a| a["id"] == "provider_silence:contoso") {
            break;
        }
        assert!(Instant::now() < deadline, "no silence alert: {silent:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Heard from again: resolved.
    let now = UtcMillis::now().as_millis();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        post(
            "/api/v1/channel/events",
            json!({"conversationId": "h1", "providerSessionId": "h1-s",
            "events": [{"kpiEventName": "HoldEnded", "eventTimestamp": at(now)}]}),
        )
        .await;
        let silent = open_silence_alerts(&server, &auth).await;
        if !silent.iter().any(|a| a["id"] == "provider_silence:contoso") {
            break;
        }
        assert!(Instant::now() < deadline, "the silence alert stayed open");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.stop().await;
}
