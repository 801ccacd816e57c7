//! The web UI in real headless Chromium: sign-in, the shell, sign-out.

mod common;

use std::time::Duration;

use common::TestServer;
use common::browser::Browser;
use fantoccini::Locator;
use tracklog_domain::ids::UserName;
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
