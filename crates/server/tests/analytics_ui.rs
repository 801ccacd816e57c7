//! The contact centre's pages in real headless Chromium: the supervisor's
//! live view kept current by its event stream, drill-down to a session's
//! timeline, history with forecast and staffing, and an agent's own figures.

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
use tracklog_server::ui::analytics::duration;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn iso(ms: i64) -> String {
    UtcMillis::from_millis(ms).to_rfc3339()
}

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

    async fn post(&self, path: &str, body: Value) {
        let response = self
            .server
            .http
            .post(self.server.url(path))
            .basic_auth(&self.auth.0, self.auth.1.as_ref())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "POST {path}: {status} {text}");
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        // Every item must be accepted.
        assert_eq!(reply["rejected"], json!([]), "POST {path}: {reply}");
    }

    async fn ingest(&self, inits: Vec<Value>, events: Vec<Value>) {
        for chunk in inits.chunks(500) {
            self.post("/api/v1/channel/init", json!(chunk)).await;
        }
        for chunk in events.chunks(500) {
            self.post("/api/v1/channel/events", json!(chunk)).await;
        }
    }
}

/// A session queued at `queued` (ms); answered by `agent` after `wait`
/// seconds when given.
fn init(id: &str, queue: &str, queued: i64, answered: Option<(i64, &str)>) -> Value {
    let mut session = json!({
        "providerSessionId": format!("{id}-s"), "queueId": queue,
        "queueAssignedTimestamp": iso(queued),
        "participants": [{"participantId": format!("cust-{id}"), "type": "customer"}],
    });
    if let Some((wait, agent)) = answered {
        session["agentAssignedTimestamp"] = json!(iso(queued + wait * 1000));
        session["participants"]
            .as_array_mut()
            .unwrap()
            .push(json!({"participantId": agent, "type": "agent"}));
    }
    json!({"conversation": {"conversationId": id, "channel": "chat", "providerId": "contoso",
        "session": session}})
}

fn events(id: &str, participant: &str, list: Vec<(&str, i64)>) -> Value {
    json!({
        "conversationId": id, "providerSessionId": format!("{id}-s"), "participantId": participant,
        "events": list.iter().map(|(name, at)| json!({"kpiEventName": name, "eventTimestamp": iso(*at)}))
            .collect::<Vec<_>>(),
    })
}

fn csat(id: &str, participant: &str, at: i64, score: u8) -> Value {
    json!({
        "conversationId": id, "providerSessionId": format!("{id}-s"), "participantId": participant,
        "events": [{"kpiEventName": "CsatSubmitted", "eventTimestamp": iso(at),
                    "customData": {"score": score}}],
    })
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

/// An element's text, its white space collapsed to single spaces.
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

/// The texts of every element `css` matches.
async fn texts(page: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in page.find_all(Locator::Css(css)).await.unwrap() {
        out.push(element.text().await.unwrap().trim().to_owned());
    }
    out
}

async fn count(page: &Client, css: &str) -> usize {
    page.find_all(Locator::Css(css)).await.unwrap().len()
}

async fn html(page: &Client, css: &str) -> String {
    page.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .html(false)
        .await
        .unwrap()
}

/// Waits until `css`'s text is `expected`, up to `within`.
async fn wait_for_text(page: &Client, css: &str, expected: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let now = text(page, css).await;
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} still shows {now:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_watches_the_live_view_update_and_drills_down_to_a_session() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let now = UtcMillis::now().as_millis();
    // Two waiting in billing (the longest for 90 s), one active in sales
    // with a hold and a notification.
    api.ingest(
        vec![
            init("w1", "billing", now - 90_000, None),
            init("w2", "billing", now - 20_000, None),
            init("a1", "sales", now - 120_000, Some((10, "dana"))),
        ],
        vec![events(
            "a1",
            "dana",
            vec![
                ("NotificationDisplayed", now - 115_000),
                ("HoldStarted", now - 60_000),
                ("HoldEnded", now - 50_000),
            ],
        )],
    )
    .await;
    add_user(&server, "sam", Role::Supervisor).await;
    let page = &browser.client;
    sign_in(page, &server, "sam", "sam password 1").await;
    page.goto(&server.url("/ui/analytics/live")).await.unwrap();
    assert_eq!(text(page, "[data-live=waiting]").await, "2");
    assert_eq!(text(page, "[data-live=active]").await, "1");
    assert_eq!(text(page, "[data-live=agents_busy]").await, "1");
    let longest = text(page, "[data-live=longest_wait]").await;
    // 90 s and the time signing in took: "1 m 30 s" or a little more.
    let seconds = longest
        .strip_prefix("1 m ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|s| s.parse::<u32>().ok());
    assert!(
        seconds.is_some_and(|s| (30..60).contains(&s)),
        "longest wait {longest:?}"
    );
    let queues = text(page, "[data-testid=live-queues]").await;
    assert!(queues.contains("billing 2 0 0"), "{queues}");
    assert!(queues.contains("sales 0 1 0"), "{queues}");
    assert!(
        text(page, "[data-testid=open-alerts]")
            .await
            .contains("No open alerts")
    );
    // The navigation offers the page as available.
    assert!(
        page.find(Locator::Css(
            "nav.sidebar a[href='/ui/analytics/live'][aria-current]"
        ))
        .await
        .is_ok()
    );

    // A session starts waiting after the page loaded: the stream brings it.
    api.ingest(vec![init("w3", "billing", now - 1_000, None)], vec![])
        .await;
    wait_for_text(page, "[data-live=waiting]", "3", Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !text(page, "[data-testid=live-queues]")
        .await
        .contains("billing 3 0 0")
    {
        assert!(Instant::now() < deadline, "the queue table did not update");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The clock on the page moves: updates keep coming.
    let first = text(page, "[data-live=at]").await;
    let deadline = Instant::now() + Duration::from_secs(4);
    while text(page, "[data-live=at]").await == first {
        assert!(Instant::now() < deadline, "no update within 4 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Drill down: the waiting tile lists the three waiting sessions.
    page.find(Locator::Css("[data-testid=tile-waiting]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=drill-sessions]"))
        .await
        .unwrap();
    assert_eq!(
        count(page, "[data-testid=drill-sessions] tbody tr").await,
        3
    );
    let listed = text(page, "[data-testid=drill-sessions]").await;
    for id in ["w1-s", "w2-s", "w3-s"] {
        assert!(listed.contains(id), "{listed}");
    }
    // The active session, and from it the session's timeline.
    page.goto(&server.url("/ui/analytics/drilldown?status=active"))
        .await
        .unwrap();
    page.find(Locator::LinkText("a1-s"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=session-timeline] svg.plot"))
        .await
        .unwrap();
    assert_eq!(
        page.current_url().await.unwrap().path(),
        "/ui/analytics/sessions/a1-s"
    );
    // One lane per event kind, one mark per event.
    assert_eq!(
        count(page, "[data-testid=session-timeline] circle.mark").await,
        3
    );
    let chart = html(page, "[data-testid=session-timeline]").await;
    assert!(chart.contains("HoldStarted (1)"), "{chart}");
    let facts = text(page, "[data-testid=session-facts]").await;
    assert!(facts.contains("Agent dana"), "{facts}");
    assert!(facts.contains("Hold 10 s"), "{facts}");
    assert!(facts.contains("Wait 10 s"), "{facts}");

    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_sees_history_per_queue_with_forecast_and_staffing() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let now = UtcMillis::now().as_millis();
    let this_hour = now.div_euclid(HOUR) * HOUR;
    // Two weeks of billing, one session an hour; and eleven sales sessions
    // in the last day, each in an hour of its own.
    let mut inits = Vec::new();
    let mut closes = Vec::new();
    let mut hour = this_hour - 14 * DAY;
    while hour + 5 * 60_000 + 320_000 < now {
        let id = format!("b{hour}");
        let queued = hour + 5 * 60_000;
        inits.push(init(&id, "billing", queued, Some((5, "dana"))));
        closes.push(events(
            &id,
            "dana",
            vec![("SessionClosed", queued + 305_000)],
        ));
        hour += HOUR;
    }
    for k in 1..=11 {
        let id = format!("s{k}");
        let queued = now - 2 * k * HOUR;
        inits.push(init(&id, "sales", queued, Some((5, "erin"))));
        closes.push(events(
            &id,
            "erin",
            vec![("SessionClosed", queued + 65_000)],
        ));
    }
    api.ingest(inits, closes).await;
    add_user(&server, "sam", Role::Supervisor).await;
    let page = &browser.client;
    sign_in(page, &server, "sam", "sam password 1").await;
    page.goto(&server.url(
        "/ui/analytics/history?metric=conversations_offered&group_by=queue&interval=1h&days=1&timezone=UTC&queue=billing&weeks=2",
    ))
    .await
    .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=history-chart] svg.plot"))
        .await
        .unwrap();
    // A line per queue, a point per hour: the 24 hours back and this one.
    assert_eq!(
        count(page, "[data-testid=history-chart] svg.plot g.series").await,
        2
    );
    assert_eq!(
        count(page, "[data-testid=history-chart] g.series circle.point").await,
        50
    );
    let chart = html(page, "[data-testid=history-chart]").await;
    assert_eq!(chart.matches("sales: 1</title>").count(), 11, "{chart}");
    assert_eq!(chart.matches("sales: 0</title>").count(), 14);
    assert_eq!(
        count(page, "[data-testid=history-table] tbody tr").await,
        25
    );
    let head = text(page, "[data-testid=history-table] thead").await;
    assert_eq!(head, "Interval billing sales");
    // Values link to the sessions behind them.
    assert!(
        page.find(Locator::Css(
            "[data-testid=history-table] a[href*='metric=conversations_offered'][href*='queue=sales']"
        ))
        .await
        .is_ok()
    );

    // A sales hour with one conversation lists that one session.
    let mut link = None;
    for a in page
        .find_all(Locator::Css(
            "[data-testid=history-table] a[href*='queue=sales']",
        ))
        .await
        .unwrap()
    {
        if a.text().await.unwrap() == "1" {
            link = Some(a.attr("href").await.unwrap().unwrap());
            break;
        }
    }
    let link = link.expect("a sales hour with one conversation");
    let history_url = page.current_url().await.unwrap();
    page.goto(history_url.join(&link).unwrap().as_str())
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=drill-sessions]"))
        .await
        .unwrap();
    assert_eq!(
        count(page, "[data-testid=drill-sessions] tbody tr").await,
        1
    );
    let row = text(page, "[data-testid=drill-sessions] tbody tr").await;
    assert!(
        row.starts_with('s') && row.contains("-s sales erin"),
        "{row}"
    );
    assert!(row.ends_with("closed yes"), "{row}");
    page.goto(history_url.as_str()).await.unwrap();

    // Forecast against what happened on the held-out week, then the next
    // week with its range and the agents it needs.
    let forecast = text(page, "[data-testid=forecast]").await;
    assert!(!forecast.contains("No forecast"), "{forecast}");
    assert!(
        forecast.contains("average handle time 5 m 00 s"),
        "{forecast}"
    );
    assert_eq!(
        count(page, "[data-testid=backtest-chart] g.series").await,
        2
    );
    assert_eq!(
        count(page, "[data-testid=backtest-chart] circle.point").await,
        2 * 168
    );
    assert_eq!(
        count(page, "[data-testid=next-week-chart] circle.point").await,
        168
    );
    assert_eq!(
        count(page, "[data-testid=next-week-chart] path.band").await,
        1
    );
    assert_eq!(
        count(page, "[data-testid=staffing-chart] circle.point").await,
        168
    );
    let days = count(page, "[data-testid=staffing-table] tbody tr").await;
    assert!((7..=8).contains(&days), "{days} days of staffing");
    // One call an hour of 5 minutes needs one agent at the peak.
    let peaks = texts(page, "[data-testid=staffing-table] tbody td:nth-child(3)").await;
    assert_eq!(peaks.len(), days);
    assert!(peaks.iter().all(|p| p == "1"), "{peaks:?}");

    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_their_own_figures_and_burndown_but_not_the_live_view() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let api = Api::new(&server).await;
    let now = UtcMillis::now().as_millis();
    let today = now.div_euclid(DAY) * DAY;
    let span = now - today;
    // Today, inside the day whatever the clock: two sessions closed with
    // CSAT 5 and 4, one still active; another agent's poor rating; and,
    // three days ago, a session of 120 s rated 2.
    let handle = (span / 10).min(60_000) / 1000 * 1000;
    let at = |tenth: i64| today + span * tenth / 10;
    let mut inits = Vec::new();
    let mut list = Vec::new();
    for (id, queued, score) in [("t1", at(1), 5), ("t2", at(3), 4)] {
        inits.push(init(id, "billing", queued, Some((0, "dana"))));
        list.push(events(id, "dana", vec![("SessionClosed", queued + handle)]));
        list.push(csat(id, "dana", queued + handle, score));
    }
    inits.push(init("t3", "billing", at(5), Some((0, "dana"))));
    inits.push(init("e1", "billing", at(4), Some((0, "erin"))));
    list.push(events("e1", "erin", vec![("SessionClosed", at(4) + 1_000)]));
    list.push(csat("e1", "erin", at(4) + 1_000, 1));
    let old = today - 3 * DAY + 10 * HOUR;
    inits.push(init("o1", "billing", old, Some((0, "dana"))));
    list.push(events("o1", "dana", vec![("SessionClosed", old + 120_000)]));
    list.push(csat("o1", "dana", old + 120_000, 2));
    api.ingest(inits, list).await;

    add_user(&server, "dana", Role::Agent).await;
    let page = &browser.client;
    sign_in(page, &server, "dana", "dana password 1").await;
    page.goto(&server.url("/ui/analytics/me")).await.unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=burndown-chart] svg.plot"))
        .await
        .unwrap();
    assert_eq!(text(page, "[data-testid=csat-today] .value").await, "4.50");
    assert_eq!(text(page, "[data-testid=csat-week] .value").await, "3.67");
    assert_eq!(
        text(page, "[data-testid=aht-today] .value").await,
        duration(handle as f64 / 1000.0)
    );
    assert_eq!(
        text(page, "[data-testid=aht-week] .value").await,
        duration((2.0 * handle as f64 / 1000.0 + 120.0) / 3.0)
    );
    assert!(
        text(page, "[data-testid=csat-week] .label")
            .await
            .contains("3 ratings")
    );
    // The burndown: assigned, closed and remaining, a point an hour and now.
    assert!(
        text(page, "main")
            .await
            .contains("Today's work: 3 assigned, 2 closed")
    );
    let points = (span + HOUR - 1) / HOUR + 1;
    assert_eq!(
        count(page, "[data-testid=burndown-chart] g.series").await,
        3
    );
    assert_eq!(
        count(page, "[data-testid=burndown-chart] circle.point").await as i64,
        3 * points
    );
    let chart = html(page, "[data-testid=burndown-chart]").await;
    assert!(
        chart.contains("Remaining: 1</title></circle></g>"),
        "{chart}"
    );
    assert!(
        chart.contains("Assigned: 3</title></circle></g>"),
        "{chart}"
    );

    // The live view, its stream and history are not for agents.
    assert!(
        page.find(Locator::Css("nav.sidebar a[href='/ui/analytics/live']"))
            .await
            .is_err()
    );
    for path in [
        "/ui/analytics/live",
        "/ui/analytics/live/stream",
        "/ui/analytics/history",
        "/ui/analytics/drilldown?status=waiting",
    ] {
        let status = page
            .execute(
                "return fetch(arguments[0]).then(r => r.status)",
                vec![json!(path)],
            )
            .await
            .unwrap();
        assert_eq!(status, json!(403), "{path}");
    }
    page.goto(&server.url("/ui/analytics/live")).await.unwrap();
    assert!(
        text(page, "body")
            .await
            .contains("for supervisors and admins")
    );

    browser.close().await;
    server.stop().await;
}
