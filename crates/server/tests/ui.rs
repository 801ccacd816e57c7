//! The web UI in real headless Chromium: sign-in, the shell, sign-out.

mod common;

use std::time::Duration;

use common::TestServer;
use common::browser::{Browser, sign_in};
use fantoccini::Locator;
use tracklog_domain::ids::UserName;
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;
use tracklog_server::services::{Actor, users};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_sees_the_shell_and_signs_out() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let org = server.org("default").await;
    users::add(
        &server.stores,
        org,
        &Actor::cli(),
        UserName::parse("ana").unwrap(),
        Role::Admin,
        "correct horse battery".into(),
    )
    .await
    .unwrap();
    let page = &browser.client;

    // Not signed in: the shell sends the browser to the sign-in form.
    page.goto(&server.url("/")).await.unwrap();
    let url = page.current_url().await.unwrap();
    assert_eq!(url.path(), "/login");

    // A wrong password is refused with a message.
    page.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("ana")
        .await
        .unwrap();
    page.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("wrong password!")
        .await
        .unwrap();
    page.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let alert = page
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[role=alert]"))
        .await
        .unwrap();
    assert!(
        alert
            .text()
            .await
            .unwrap()
            .contains("Wrong user name or password")
    );

    // The right password reaches the shell.
    let password = page
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap();
    password.send_keys("correct horse battery").await.unwrap();
    page.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let who = page
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=signed-in-user]"))
        .await
        .unwrap();
    assert!(who.text().await.unwrap().contains("ana"));
    let nav = page
        .find(Locator::Css("nav.sidebar"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for entry in [
        "Overview",
        "Case journeys",
        "Live",
        "Activity log",
        "Access policies",
    ] {
        assert!(nav.contains(entry), "navigation lacks {entry}: {nav}");
    }
    let activity = page
        .find(Locator::Css("[data-testid=recent-activity]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        activity.contains("SignIn") && activity.contains("SignInFailed"),
        "{activity}"
    );
    // The stylesheet loaded: the sidebar is laid out beside the content.
    let sidebar_width: f64 = page
        .execute(
            "return document.querySelector('nav.sidebar').getBoundingClientRect().width",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(
        (150.0..400.0).contains(&sidebar_width),
        "sidebar width {sidebar_width}"
    );

    // Signing out ends the session.
    page.find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_url(&url::Url::parse(&server.url("/login")).unwrap())
        .await
        .unwrap();
    page.goto(&server.url("/")).await.unwrap();
    assert_eq!(page.current_url().await.unwrap().path(), "/login");

    browser.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_filters_the_activity_log_and_reads_a_diff() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let org = server.org("default").await;
    for (name, role) in [("audra", Role::Auditor), ("agnes", Role::Agent)] {
        users::add(
            &server.stores,
            org,
            &Actor::cli(),
            UserName::parse(name).unwrap(),
            role,
            "correct horse battery".into(),
        )
        .await
        .unwrap();
    }
    let records = vec![
        tracklog_domain::audit::AuditRecord {
            id: "u1".into(),
            organization_id: "default".into(),
            creation_time: UtcMillis::now().to_rfc3339(),
            operation: "Update".into(),
            user: Some("crm-user@example.com".into()),
            entity_name: Some("account".into()),
            entity_id: Some("a-1".into()),
            result_status: Some("Success".into()),
            fields: Some(serde_json::json!({"name": {"old": "Contoso <Ltd>", "new": "Fabrikam"}})),
            ..Default::default()
        },
        tracklog_domain::audit::AuditRecord {
            id: "s1".into(),
            organization_id: "default".into(),
            creation_time: UtcMillis::now().to_rfc3339(),
            operation: "SignIn".into(),
            user: Some("someone".into()),
            ..Default::default()
        },
    ];
    server
        .stores
        .audit
        .append_audit(org, records)
        .await
        .unwrap();
    let page = &browser.client;

    // An agent does not see the log.
    sign_in(page, &server, "agnes", "correct horse battery").await;
    let nav = page
        .find(Locator::Css("nav.sidebar"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!nav.contains("Activity log"), "{nav}");
    page.goto(&server.url("/ui/audit")).await.unwrap();
    let body = page
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("auditors and admins"), "{body}");
    page.delete_all_cookies().await.unwrap();

    // An auditor follows the enabled link, filters and opens a record.
    sign_in(page, &server, "audra", "correct horse battery").await;
    page.find(Locator::Css("nav.sidebar a[href='/ui/audit']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let verification = page
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=verification]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(verification.contains("Chain intact"), "{verification}");
    let tiles = page
        .find_all(Locator::Css(".tile.report svg.chart"))
        .await
        .unwrap();
    assert_eq!(tiles.len(), 9);
    let signed = page
        .find(Locator::Css("[data-report=signed-in-or-out] .value"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(signed.parse::<u64>().unwrap() >= 2, "sign-ins: {signed}");

    page.find(Locator::Css("form.filters input[name=entity_name]"))
        .await
        .unwrap()
        .send_keys("account")
        .await
        .unwrap();
    page.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(10))
        .for_url(&url::Url::parse(&server.url("/ui/audit?from=&to=&user=&operation=&category=&entity_name=account&entity_id=&result_status=&client_ip=&q=")).unwrap())
        .await
        .unwrap();
    let count = page
        .find(Locator::Css("[data-testid=count]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(count, "1");
    let export = page
        .find(Locator::Css("[data-testid=export-csv]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(export.contains("entity_name=account"), "{export}");

    page.find(Locator::Css("[data-testid=results] tbody a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let diff = page
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("[data-testid=diff]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        diff.contains("Contoso <Ltd>") && diff.contains("Fabrikam"),
        "{diff}"
    );

    // The export link downloads the filtered records as CSV.
    let cookie = page.get_named_cookie("tracklog_session").await.unwrap();
    let csv = server
        .http
        .get(server.url(&export))
        .header("Cookie", format!("tracklog_session={}", cookie.value()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");

    browser.close().await;
    server.stop().await;
}

/// The Overview shows each role only what that role's own pages show: the
/// activity log's records only to auditors and admins, and there only
/// Tracklog's own management records, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_sees_on_the_overview_only_what_its_pages_may_show() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let org = server.org("default").await;
    let roles = [
        ("ada", Role::Admin),
        ("sam", Role::Supervisor),
        ("al", Role::Agent),
        ("aud", Role::Auditor),
    ];
    for (name, role) in roles {
        users::add(
            &server.stores,
            org,
            &Actor::cli(),
            UserName::parse(name).unwrap(),
            role,
            "correct horse battery".into(),
        )
        .await
        .unwrap();
    }
    // A CRM's reads, with record ids, and a Tracklog record stored last but
    // dated first.
    let record = |id: &str, operation: &str, time: &str, service: Option<&str>| {
        tracklog_domain::audit::AuditRecord {
            id: id.into(),
            organization_id: "default".into(),
            creation_time: time.into(),
            operation: operation.into(),
            user: Some("crm-user@example.com".into()),
            entity_name: Some("account".into()),
            entity_id: Some(format!("secret-{id}")),
            service_name: service.map(Into::into),
            ..Default::default()
        }
    };
    let now = UtcMillis::now().to_rfc3339();
    let records = vec![
        record("r1", "Retrieve", &now, None),
        record("r2", "RetrieveMultiple", &now, None),
        tracklog_domain::audit::AuditRecord {
            user: Some("policy:ops".into()),
            ..record(
                "old",
                "RotateKeyLongAgo",
                "2020-01-01T00:00:00Z",
                Some("Tracklog"),
            )
        },
    ];
    server
        .stores
        .audit
        .append_audit(org, records)
        .await
        .unwrap();
    let page = &browser.client;
    for (name, role) in roles {
        page.delete_all_cookies().await.unwrap();
        sign_in(page, &server, name, "correct horse battery").await;
        page.goto(&server.url("/")).await.unwrap();
        let html = page.source().await.unwrap();
        let sees_log = matches!(role, Role::Admin | Role::Auditor);
        for secret in ["secret-r1", "secret-r2", "Retrieve", "crm-user@example.com"] {
            assert!(
                !html.contains(secret),
                "{name} sees {secret} on the Overview"
            );
        }
        assert_eq!(
            html.contains("recent-activity"),
            sees_log,
            "{name}: recent management activity"
        );
        assert_eq!(
            html.contains("access policies"),
            role == Role::Admin,
            "{name}"
        );
        if sees_log {
            let rows: Vec<String> = {
                let mut out = Vec::new();
                for row in page
                    .find_all(Locator::Css("[data-testid=recent-activity] tbody tr"))
                    .await
                    .unwrap()
                {
                    out.push(row.text().await.unwrap());
                }
                out
            };
            assert!(rows.iter().any(|r| r.contains("SignIn")), "{rows:?}");
            assert!(
                rows.last().unwrap().contains("RotateKeyLongAgo"),
                "newest first: {rows:?}"
            );
        } else {
            let links = page
                .find(Locator::Css("[data-testid=your-pages]"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(links.contains("Case journeys"), "{name}: {links}");
            assert!(!links.contains("Activity log"), "{name}: {links}");
        }
    }
    browser.close().await;
    server.stop().await;
}
