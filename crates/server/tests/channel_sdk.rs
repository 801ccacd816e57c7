//! The channel analytics SDK in real headless Chromium: an agent desktop on
//! another loopback origin loads `/sdk/channel-analytics.js`, authenticates
//! with a provider-scoped SAS token, and its promises resolve to the
//! server's outcomes.

mod common;

use common::TestServer;
use common::browser::Browser;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracklog_domain::auth::{Rights, make_sas_token};
use tracklog_domain::ids::PolicyName;
use tracklog_server::services::{Actor, policies};

/// The agent desktop: a page that loads the SDK from Tracklog.
async fn desktop(listener: TcpListener, sdk_src: String) {
    use axum::response::Html;
    let page = Html(format!(
        r#"<!doctype html><html lang="en-GB"><head><title>Agent desktop</title>
<script src="{sdk_src}"></script></head><body><p>Softphone</p></body></html>"#
    ));
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { page }));
    tokio::spawn(async move { axum::serve(listener, app).await });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_logs_a_conversation_from_another_origin() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let desktop_origin = format!("http://{}", listener.local_addr().unwrap());
    let allowed = desktop_origin.clone();
    let server = TestServer::start_with(move |config| {
        config.channel.sdk_allowed_origins = vec![allowed];
    })
    .await;
    desktop(listener, server.url("/sdk/channel-analytics.js")).await;
    let org = server.org("default").await;
    let policy = policies::create(
        &server.stores,
        org,
        &Actor::cli(),
        policies::NewPolicy {
            name: PolicyName::parse("softphone").unwrap(),
            rights: Rights::parse_list("write").unwrap(),
            portal: None,
            provider: Some("contoso".into()),
        },
    )
    .await
    .unwrap();
    let expiry = jiff::Timestamp::now().as_second() + 3600;
    let token = make_sas_token(
        &server.url("/api/v1/channel"),
        &policy.name,
        &policy.primary_key,
        expiry,
    );

    let page = &browser.client;
    page.goto(&desktop_origin).await.unwrap();
    let script = r#"
        const [token, done] = [arguments[0], arguments[arguments.length - 1]];
        TracklogChannel.configure({ token });
        const conversation = { conversation: {
            conversationId: 'web-1', channel: 'chat', providerId: 'contoso',
            session: { providerSessionId: 'web-1-s', queueId: 'billing',
                queueAssignedTimestamp: '2026-03-01T10:00:00Z',
                agentAssignedTimestamp: '2026-03-01T10:00:12Z',
                participants: [{ participantId: 'agent-7', type: 'agent' }] } } };
        const ids = { conversationId: 'web-1', providerSessionId: 'web-1-s', participantId: 'agent-7' };
        TracklogChannel.initLogAnalytics(conversation, 'corr-1')
          .then(init => TracklogChannel.logAnalyticsEvent(
              Object.assign({ eventTimestamp: '2026-03-01T10:02:00Z' }, ids), 'SessionClosed', 'corr-1')
            .then(closed => TracklogChannel.logAnalyticsEvent(ids, 'NoSuchEvent', 'corr-1')
              .then(unknown => TracklogChannel.initLogAnalytics(
                  { conversation: { conversationId: 'web-2', providerId: 'other' } }, 'corr-2')
                .then(other => done({ init, closed, unknown, other })))))
          .catch(error => done({ error: String(error), status: error.status }));
    "#;
    let outcome: Value = page
        .execute_async(script, vec![json!(token)])
        .await
        .unwrap();
    assert_eq!(outcome["init"]["accepted"], 1, "{outcome}");
    assert_eq!(outcome["closed"]["accepted"], 1, "{outcome}");
    assert_eq!(
        outcome["unknown"]["rejected"][0]["reason"], "unknown_kpi_event",
        "{outcome}"
    );
    assert_eq!(
        outcome["other"]["rejected"][0]["reason"], "provider_out_of_scope",
        "{outcome}"
    );
    // The session is stored with its facts: answered after 12 s, handled.
    let reader = server.policy("reader", "read").await;
    let session: Value = server
        .http
        .get(server.url("/api/v1/sessions/web-1-s"))
        .basic_auth(reader.name.as_str(), Some(reader.primary_key.expose()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["facts"]["handle_ms"], 108_000, "{session}");
    assert_eq!(session["facts"]["agent"], "agent-7");

    // A wrong token makes the promise reject with the status.
    let rejected: Value = page
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               TracklogChannel.configure({ token: 'SharedAccessSignature sr=x&sig=y&se=1&skn=softphone' });
               TracklogChannel.initLogAnalytics({ conversation: { conversationId: 'x' } }, 'c')
                 .then(() => done('resolved'), error => done(error.status));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(rejected, json!(401));
    browser.close().await;
    server.stop().await;
}
