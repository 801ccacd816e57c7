//! The journey page, its embeddable variant and the portal insight page in
//! real headless Chromium.

mod common;

use std::time::Duration;

use common::browser::{Browser, sign_in};
use common::{TestServer, basic};
use fantoccini::Locator;
use serde_json::{Value, json};
use tracklog_domain::auth::make_sas_token;
use tracklog_domain::ids::UserName;
use tracklog_domain::user::Role;
use tracklog_server::services::{Actor, users};

fn view(id: &str, ka: &str, title: &str, session: &str, ts: &str) -> Value {
    json!({
        "portal_interactionid": id, "type": "portal_viewknowledgearticle",
        "portal_contactid": "c-42", "portal_timestamp": ts, "portal_portalid": "help",
        "session_id": session, "portal_knowledgearticleid": ka, "portal_knowledgetitle": title,
    })
}

async fn seed(server: &TestServer) -> (String, Option<String>) {
    let auth = basic(&server.policy("crm", "manage").await);
    let post = |path: &'static str, body: Value| {
        let http = server.http.clone();
        let url = server.url(path);
        let auth = auth.clone();
        async move {
            let response = http
                .post(url)
                .basic_auth(&auth.0, auth.1.as_ref())
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
        }
    };
    let now = tracklog_domain::time::UtcMillis::now().as_millis();
    let at = |hours_ago: i64| {
        tracklog_domain::time::UtcMillis::from_millis(now - hours_ago * 3_600_000).to_rfc3339()
    };
    post(
        "/api/v1/portals",
        json!({"id": "help", "name": "Help centre", "allowed_origins": []}),
    )
    .await;
    post(
        "/api/v1/interactions",
        json!([
            view("i1", "KA-100", "Reset your router", "s1", &at(30)),
            {"portal_interactionid": "i2", "type": "portal_search", "portal_contactid": "c-42",
             "portal_timestamp": at(29), "portal_portalid": "help", "session_id": "s1",
             "portal_searchstring": "router blinking red"},
            view("i3", "KA-200", "Blinking lights explained", "s2", &at(5)),
            {"portal_interactionid": "i4", "type": "portal_viewforumthread", "portal_contactid": "c-42",
             "portal_timestamp": at(4), "portal_portalid": "help", "session_id": "s2",
             "portal_forumthreadid": "F-9", "portal_forumthreadtitle": "Red light <b>again</b>"},
        ]),
    )
    .await;
    post(
        "/api/v1/contacts",
        json!({"id": "c-42", "name": "Dana Smith"}),
    )
    .await;
    post(
        "/api/v1/cases",
        json!({"id": "CAS-7", "contact_id": "c-42", "title": "Router keeps dropping", "created_at": at(1)}),
    )
    .await;
    auth
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_the_journey_with_its_chart_and_already_read_articles() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    seed(&server).await;
    let org = server.org("default").await;
    users::add(
        &server.stores,
        org,
        &Actor::cli(),
        UserName::parse("agent").unwrap(),
        Role::Agent,
        "agent password 1".into(),
    )
    .await
    .unwrap();
    let page = &browser.client;
    sign_in(page, &server, "agent", "agent password 1").await;

    // From the case list to the case.
    page.goto(&server.url("/ui/cases")).await.unwrap();
    page.find(Locator::LinkText("CAS-7"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=journey-chart] svg"))
        .await
        .unwrap();
    assert_eq!(page.current_url().await.unwrap().path(), "/ui/cases/CAS-7");
    let header = page
        .find(Locator::Css("header.case-head"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        header.contains("Router keeps dropping") && header.contains("Dana Smith"),
        "{header}"
    );

    // The chart is drawn: one lane per type present, one mark per interaction,
    // the read articles emphasised, and it has a real size on the page.
    let marks = page
        .find_all(Locator::Css("[data-testid=journey-chart] circle.mark"))
        .await
        .unwrap();
    assert_eq!(marks.len(), 4);
    let emphasised = page
        .find_all(Locator::Css(
            "[data-testid=journey-chart] circle.emphasised",
        ))
        .await
        .unwrap();
    assert_eq!(emphasised.len(), 2);
    let width: f64 = page
        .execute(
            "return document.querySelector('[data-testid=journey-chart] svg').getBoundingClientRect().width",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(width > 300.0, "chart width {width}");

    // The already-read list names the articles, most recent first.
    let read = page
        .find(Locator::Css("[data-testid=already-read]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(read.contains("Blinking lights explained"), "{read}");
    assert!(read.contains("Reset your router"), "{read}");
    assert!(read.find("Blinking").unwrap() < read.find("Reset").unwrap());
    let highlighted = page
        .find_all(Locator::Css("[data-testid=already-read] mark"))
        .await
        .unwrap();
    assert_eq!(highlighted.len(), 2);

    // Sessions group the interactions; markup in titles stays text.
    let sessions = page
        .find_all(Locator::Css("[data-testid=session]"))
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    let body = page
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("Red light <b>again</b>"), "{body}");
    assert!(body.contains("router blinking red"));

    // A narrower window leaves out the older session.
    page.goto(&server.url("/ui/cases/CAS-7?window=PT24H"))
        .await
        .unwrap();
    let sessions = page
        .find_all(Locator::Css("[data-testid=session]"))
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);

    // A busy contact: the summary counts everything, the page lists the
    // newest 100 and leads to the older ones.
    let auth = basic(&server.policy("busy", "write").await);
    let now = tracklog_domain::time::UtcMillis::now().as_millis();
    let busy: Vec<Value> = (0..120)
        .map(|n| {
            let at = tracklog_domain::time::UtcMillis::from_millis(now - 3 * 3_600_000 - n * 1000);
            view(&format!("b{n}"), "KA-300", "Busy", "s3", &at.to_rfc3339())
        })
        .collect();
    let response = server
        .http
        .post(server.url("/api/v1/interactions"))
        .basic_auth(&auth.0, auth.1.as_ref())
        .json(&busy)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    page.goto(&server.url("/ui/cases/CAS-7")).await.unwrap();
    let total = page
        .find(Locator::Css("[data-testid=total]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(total, "124");
    let rows = |page: &fantoccini::Client| {
        let page = page.clone();
        async move {
            page.find_all(Locator::Css("[data-testid=interactions] tr"))
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(rows(page).await, 100);
    page.find(Locator::Css("[data-testid=older]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=interactions]"))
        .await
        .unwrap();
    assert!(
        page.current_url()
            .await
            .unwrap()
            .query()
            .unwrap()
            .contains("cursor=")
    );
    assert_eq!(rows(page).await, 24, "the older ones");
    assert!(
        page.find(Locator::Css("[data-testid=older]"))
            .await
            .is_err(),
        "the oldest page"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embed_needs_a_read_token_and_may_be_framed_by_the_crm() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start_with(|c| {
        c.ui.embed_frame_ancestors = "'self' https://crm.example.com".into();
    })
    .await;
    seed(&server).await;
    let reader = server.policy("crm-embed", "read").await;
    let writer = server.policy("writer-only", "write").await;
    let expiry = tracklog_domain::time::UtcMillis::now().as_millis() / 1000 + 3600;
    let resource = server.url("/embed/cases/CAS-7");
    let token = make_sas_token(&resource, &reader.name, &reader.primary_key, expiry);
    let encoded = |t: &str| {
        percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC).to_string()
    };

    let url = server.url(&format!("/embed/cases/CAS-7?token={}", encoded(&token)));
    let response = server.http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'self' https://crm.example.com"),
        "{csp}"
    );
    // Without a token, with a write-only policy's token, or a token for
    // another case: refused.
    assert_eq!(
        server
            .http
            .get(server.url("/embed/cases/CAS-7"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let write_token = make_sas_token(&resource, &writer.name, &writer.primary_key, expiry);
    let refused = server
        .http
        .get(server.url(&format!(
            "/embed/cases/CAS-7?token={}",
            encoded(&write_token)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let other = make_sas_token(
        &server.url("/embed/cases/OTHER"),
        &reader.name,
        &reader.primary_key,
        expiry,
    );
    let refused = server
        .http
        .get(server.url(&format!("/embed/cases/CAS-7?token={}", encoded(&other))))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // In Chromium: the journey without the navigation chrome.
    let page = &browser.client;
    page.goto(&url).await.unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=journey-chart] svg"))
        .await
        .unwrap();
    assert!(page.find(Locator::Css("nav.sidebar")).await.is_err());
    let read = page
        .find(Locator::Css("[data-testid=already-read]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(read.contains("Reset your router"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_sees_portal_insights() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    seed(&server).await;
    let org = server.org("default").await;
    users::add(
        &server.stores,
        org,
        &Actor::cli(),
        UserName::parse("sup").unwrap(),
        Role::Supervisor,
        "supervisor password".into(),
    )
    .await
    .unwrap();
    let page = &browser.client;
    sign_in(page, &server, "sup", "supervisor password").await;
    page.goto(&server.url("/ui/portals")).await.unwrap();
    page.find(Locator::LinkText("help"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=daily-chart] svg"))
        .await
        .unwrap();
    let bars = page
        .find_all(Locator::Css("[data-testid=daily-chart] svg rect"))
        .await
        .unwrap();
    assert!(
        bars.len() >= 3,
        "expected bars and a legend, found {}",
        bars.len()
    );
    let articles = page
        .find(Locator::Css("[data-testid=top-articles]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(articles.contains("Reset your router"), "{articles}");
    let before_case = page
        .find(Locator::Css("[data-testid=searches-before-case]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The search came 28 hours before the case: not within 24 hours.
    assert!(before_case.contains("None"), "{before_case}");
    let searches = page
        .find(Locator::Css("[data-testid=top-searches]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(searches.contains("router blinking red"));
    server.stop().await;
}
