//! The browser tracker, `GET /sdk/tracker.js`: how it is served, and what it
//! does in real headless Chromium on a portal page served from a second
//! loopback origin, through a network outage.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::TestServer;
use common::browser::Browser;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracklog_store::Policy;

#[tokio::test]
async fn the_tracker_is_small_cached_and_revalidated() {
    let server = TestServer::start().await;
    let response = server
        .http
        .get(server.url("/sdk/tracker.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=86400")
    );
    assert_eq!(headers["cross-origin-resource-policy"], "cross-origin");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let body = response.bytes().await.unwrap();
    assert_eq!(&body[..], tracklog_server::sdk::TRACKER_JS.as_bytes());

    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&body).unwrap();
    let gzipped = gzip.finish().unwrap().len();
    assert!(gzipped <= 3 * 1024, "tracker.js is {gzipped} bytes gzipped");

    let response = server
        .http
        .get(server.url("/sdk/tracker.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"], etag.as_str());
    assert!(response.bytes().await.unwrap().is_empty());
    server.stop().await;
}

/// A TCP relay to Tracklog that the test can switch off: while off it drops
/// new connections and cuts open ones, as a network outage would.
struct Relay {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, state) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut state = state.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// The portal's own site, on another loopback origin: pages that load the
/// tracker from Tracklog and send through the relay.
async fn portal_site(listener: TcpListener, tracker_src: String, host: String, key: String) {
    use axum::extract::Path;
    use axum::response::Html;
    let page = move |title: &str, body: &str| {
        Html(format!(
            r#"<!doctype html><html lang="en-GB"><head><title>{title}</title>
<script src="{tracker_src}" data-portal="support" data-key="{key}" data-host="{host}"
        data-blog-pattern="^/blog/([^/]+)$"></script>
<script>tracklog.identify("c-web");</script></head><body>{body}</body></html>"#
        ))
    };
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::get(move |Path(path): Path<String>| {
            let page = page.clone();
            async move {
                match path.as_str() {
                    "article" => page(
                        "Knowledge base",
                        r#"<article data-tracklog-article="KA-1" data-tracklog-title="Reset your password"
                                    data-tracklog-language="en-US">...</article>"#,
                    ),
                    "forum" => page(
                        "Forum",
                        r#"<div data-tracklog-forum="T-3" data-tracklog-title="Printer jams">...</div>"#,
                    ),
                    "search" => page(
                        "Search",
                        r#"<form action="/results" data-tracklog-search="q">
                             <input name="q"><button type="submit">Search</button></form>"#,
                    ),
                    _ => page("What is new", "<p>...</p>"),
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
}

async fn create_portal(server: &TestServer, admin: &Policy, origin: &str) -> String {
    let response = server
        .http
        .post(server.url("/api/v1/portals"))
        .basic_auth(admin.name.as_str(), Some(admin.primary_key.expose()))
        .json(&json!({"id": "support", "name": "Support", "allowed_origins": [origin]}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "POST /api/v1/portals answered {}",
        response.status()
    );
    let portal: Value = response.json().await.unwrap();
    portal["public_key"]
        .as_str()
        .expect("the portal's public_key")
        .to_owned()
}

async fn timeline(server: &TestServer, reader: &Policy) -> Vec<Value> {
    let response = server
        .http
        .get(server.url("/api/v1/contacts/c-web/interactions"))
        .basic_auth(reader.name.as_str(), Some(reader.primary_key.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

/// Polls the timeline until it holds `count` interactions.
async fn wait_for(
    server: &TestServer,
    reader: &Policy,
    count: usize,
    within: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let items = timeline(server, reader).await;
        if items.len() >= count || Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn queued(page: &Client) -> usize {
    let value = page
        .execute(
            "return JSON.parse(localStorage.getItem('tracklog:queue:support') || '[]').length",
            vec![],
        )
        .await
        .unwrap();
    value.as_u64().unwrap() as usize
}

async fn wait_queued(page: &Client, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while queued(page).await < count {
        assert!(Instant::now() < deadline, "{count} events were not queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_and_searches_arrive_exactly_once_across_an_outage() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let admin = server.policy("admin", "manage").await;
    let reader = server.policy("reader", "read").await;
    let relay = Relay::start(server.addr).await;
    let relay_url = format!("http://{}", relay.addr);
    // Bind the site first: its origin goes into the portal's allowed origins.
    let site_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = site_listener.local_addr().unwrap();
    let key = create_portal(&server, &admin, &format!("http://{site}")).await;
    portal_site(site_listener, server.url("/sdk/tracker.js"), relay_url, key).await;
    let site_url = |path: &str| format!("http://{site}{path}");
    let page = &browser.client;
    let within = Duration::from_secs(20);

    // Online: a marked article, then a blog post found by its URL pattern.
    page.goto(&site_url("/article")).await.unwrap();
    assert_eq!(wait_for(&server, &reader, 1, within).await.len(), 1);
    page.goto(&site_url("/blog/B-2")).await.unwrap();
    assert_eq!(wait_for(&server, &reader, 2, within).await.len(), 2);

    // The network fails: a forum thread and a search wait in localStorage.
    relay.set(false);
    page.goto(&site_url("/forum")).await.unwrap();
    wait_queued(page, 1).await;
    page.goto(&site_url("/search")).await.unwrap();
    page.find(Locator::Css("input[name=q]"))
        .await
        .unwrap()
        .send_keys("printer jam")
        .await
        .unwrap();
    page.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(within)
        .for_url(&url::Url::parse(&site_url("/results?q=printer+jam")).unwrap())
        .await
        .unwrap();
    wait_queued(page, 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(timeline(&server, &reader).await.len(), 2);

    // The network is back: the retry timer delivers the queue on its own.
    relay.set(true);
    let items = wait_for(&server, &reader, 4, Duration::from_secs(60)).await;
    let deadline = Instant::now() + within;
    while queued(page).await > 0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reloading resends nothing new, and a retry stores one copy anyway.
    page.goto(&site_url("/results")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let items_after = timeline(&server, &reader).await;
    assert_eq!(items_after, items);

    assert_eq!(items.len(), 4, "{items:#?}");
    let types: Vec<_> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "portal_viewknowledgearticle",
            "portal_viewblogpost",
            "portal_viewforumthread",
            "portal_search"
        ]
    );
    assert_eq!(items[0]["portal_knowledgearticleid"], "KA-1");
    assert_eq!(items[0]["portal_knowledgetitle"], "Reset your password");
    assert_eq!(items[0]["language"], "en-US");
    assert_eq!(items[1]["portal_blogpostid"], "B-2");
    assert_eq!(items[1]["portal_blogtitle"], "What is new");
    assert_eq!(items[2]["portal_forumthreadid"], "T-3");
    assert_eq!(items[3]["portal_searchstring"], "printer jam");
    let mut ids: Vec<_> = items
        .iter()
        .map(|i| i["portal_interactionid"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every interaction id is distinct");
    for item in &items {
        assert_eq!(item["portal_portalid"], "support");
        assert_eq!(item["portal_contactid"], "c-web");
        assert_eq!(item["session_id"], items[0]["session_id"], "one session");
        uuid::Uuid::parse_str(item["portal_interactionid"].as_str().unwrap()).unwrap();
    }
    browser.close().await;
    server.stop().await;
}
