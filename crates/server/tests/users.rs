//! People leave: an admin disables, demotes, resets and removes users
//! through the API and the users page, and a disabled or removed user's
//! sessions end at once. Each change is in the activity log.

mod common;

use std::time::Duration;

use common::browser::{Browser, sign_in};
use common::{TestServer, basic};
use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracklog_domain::ids::UserName;
use tracklog_domain::user::Role;
use tracklog_server::services::{Actor, users};

type Auth = (String, Option<String>);

/// A browser-less session: signs in through the form, keeping the cookie.
struct Session {
    cookie: String,
}

/// Signs in with the form; the answer's status and the session, if any.
async fn form_sign_in(
    server: &TestServer,
    name: &str,
    password: &str,
) -> (StatusCode, Option<Session>, String) {
    let answer = server.form_sign_in(name, password).await;
    let session = answer.session.map(|cookie| Session { cookie });
    (answer.status, session, answer.page)
}

impl Session {
    /// The status of the home page for this session: 200, or 303 to sign in.
    async fn home(&self, server: &TestServer) -> StatusCode {
        server
            .http
            .get(server.url("/"))
            .header("cookie", format!("tracklog_session={}", self.cookie))
            .send()
            .await
            .unwrap()
            .status()
    }
}

async fn call(
    server: &TestServer,
    auth: &Auth,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = server
        .http
        .request(method, server.url(path))
        .basic_auth(&auth.0, auth.1.as_ref());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn operations(server: &TestServer, auth: &Auth, entity_id: &str) -> Vec<String> {
    let (_, page) = call(
        server,
        auth,
        reqwest::Method::GET,
        &format!("/api/v1/audit/search?entity_name=user&entity_id={entity_id}&limit=100"),
        None,
    )
    .await;
    let mut found: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Operation"].as_str().unwrap().to_owned())
        .collect();
    found.reverse();
    found
}

#[tokio::test]
async fn an_admin_locks_a_leaver_out_through_the_api() {
    let server = TestServer::start().await;
    let auth = basic(&server.policy("ops", "manage,read").await);
    use reqwest::Method;

    let (status, created) = call(
        &server,
        &auth,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": "bo", "role": "agent"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["disabled"], false);
    let password = created["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 10, "a generated password is shown once");
    let (status, _) = call(
        &server,
        &auth,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": "admin1", "role": "admin", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, weak) = call(
        &server,
        &auth,
        Method::POST,
        "/api/v1/users",
        Some(json!({"name": "cy", "role": "agent", "password": "short"})),
    )
    .await;
    assert_eq!(
        (status, weak["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("password"))
    );

    // Bo signs in twice; the last sign-in shows.
    let (_, first, _) = form_sign_in(&server, "bo", &password).await;
    let (_, second, _) = form_sign_in(&server, "bo", &password).await;
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.home(&server).await, 200);
    let (_, bo) = call(&server, &auth, Method::GET, "/api/v1/users/bo", None).await;
    assert!(bo["last_sign_in"].is_string(), "{bo}");

    // Disabled: both sessions end at once, and signing in is refused.
    let (status, bo) = call(
        &server,
        &auth,
        Method::PATCH,
        "/api/v1/users/bo",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(
        (status, bo["disabled"].clone()),
        (StatusCode::OK, json!(true))
    );
    assert_eq!(first.home(&server).await, StatusCode::SEE_OTHER);
    assert_eq!(second.home(&server).await, StatusCode::SEE_OTHER);
    let (status, none, page) = form_sign_in(&server, "bo", &password).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(none.is_none());
    assert!(page.contains("This account is disabled"), "{page}");
    let (status, _, page) = form_sign_in(&server, "bo", "not the password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        !page.contains("disabled"),
        "a wrong password learns nothing"
    );

    // Enabled and promoted; a new password ends the new session.
    let (status, bo) = call(
        &server,
        &auth,
        Method::PATCH,
        "/api/v1/users/bo",
        Some(json!({"disabled": false, "role": "supervisor"})),
    )
    .await;
    assert_eq!(
        (status, bo["role"].clone()),
        (StatusCode::OK, json!("supervisor"))
    );
    let (_, session, _) = form_sign_in(&server, "bo", &password).await;
    let session = session.expect("enabled again");
    let (status, reset) = call(
        &server,
        &auth,
        Method::POST,
        "/api/v1/users/bo/password",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let new_password = reset["password"].as_str().unwrap().to_owned();
    assert_eq!(session.home(&server).await, StatusCode::SEE_OTHER);
    assert_eq!(
        form_sign_in(&server, "bo", &password).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, session, _) = form_sign_in(&server, "bo", &new_password).await;
    let session = session.expect("the new password works");

    // Removed: the session ends and the name is free again.
    let (status, _) = call(&server, &auth, Method::DELETE, "/api/v1/users/bo", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(session.home(&server).await, StatusCode::SEE_OTHER);
    let (status, _) = call(&server, &auth, Method::GET, "/api/v1/users/bo", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The last enabled admin stays.
    for (method, path, body) in [
        (
            Method::PATCH,
            "/api/v1/users/admin1",
            Some(json!({"disabled": true})),
        ),
        (
            Method::PATCH,
            "/api/v1/users/admin1",
            Some(json!({"role": "agent"})),
        ),
        (Method::DELETE, "/api/v1/users/admin1", None),
    ] {
        let (status, body) = call(&server, &auth, method, path, body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("last enabled admin")
        );
    }
    let (_, listed) = call(&server, &auth, Method::GET, "/api/v1/users", None).await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin1"]);

    // Another org's manager cannot touch this org's users.
    let other = basic(&server.policy_in("other", "ops2", "manage", None).await);
    let (status, _) = call(
        &server,
        &other,
        Method::DELETE,
        "/api/v1/users/admin1",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A policy without `manage` cannot list users.
    let reader = basic(&server.policy("reader", "read").await);
    let (status, _) = call(&server, &reader, Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert_eq!(
        operations(&server, &auth, "bo").await,
        [
            "CreateUser",
            "SignIn",
            "SignIn",
            "DisableUser",
            "SignInFailed",
            "SignInFailed",
            "ChangeUserRole",
            "EnableUser",
            "SignIn",
            "ResetUserPassword",
            "SignInFailed",
            "SignIn",
            "DeleteUser"
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_disables_and_removes_a_user_on_the_users_page() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = TestServer::start().await;
    let org = server.org("default").await;
    for (name, role) in [("ana", Role::Admin), ("bo", Role::Agent)] {
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
    let (_, bo, _) = form_sign_in(&server, "bo", "correct horse battery").await;
    let bo = bo.unwrap();
    let page = &browser.client;
    sign_in(page, &server, "ana", "correct horse battery").await;
    page.goto(&server.url("/ui/users")).await.unwrap();
    let wait = || page.wait().at_most(Duration::from_secs(10));
    let click = |css: String| async move {
        page.find(Locator::Css(&css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    };

    click("tr[data-user=bo] button[data-action=disable]".into()).await;
    let notice = wait()
        .for_element(Locator::Css("[data-testid=notice]"))
        .await
        .unwrap();
    assert!(notice.text().await.unwrap().contains("Disabled bo"));
    assert_eq!(
        bo.home(&server).await,
        StatusCode::SEE_OTHER,
        "bo's session ended"
    );
    let row = page
        .find(Locator::Css("tr[data-user=bo]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("disabled"), "{row}");

    // The admin cannot lock herself out as the last admin.
    click("tr[data-user=ana] button[data-action=disable]".into()).await;
    let error = wait()
        .for_element(Locator::Css("[data-testid=error]"))
        .await
        .unwrap();
    assert!(error.text().await.unwrap().contains("last enabled admin"));

    // A new password, shown once.
    click("tr[data-user=bo] button[data-action=password]".into()).await;
    let shown = wait()
        .for_element(Locator::Css("[data-testid=new-password] code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.len() >= 10);

    // Removing asks for the box to be ticked.
    click("tr[data-user=bo] button[data-action=remove]".into()).await;
    let error = wait()
        .for_element(Locator::Css("[data-testid=error]"))
        .await
        .unwrap();
    assert!(error.text().await.unwrap().contains("confirm"));
    click("tr[data-user=bo] input[name=confirm]".into()).await;
    click("tr[data-user=bo] button[data-action=remove]".into()).await;
    wait()
        .for_element(Locator::Css("[data-testid=notice]"))
        .await
        .unwrap();
    assert!(page.find(Locator::Css("tr[data-user=bo]")).await.is_err());
    assert!(
        server
            .stores
            .meta
            .user(&UserName::parse("bo").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    let auth = basic(&server.policy("ops", "read").await);
    let done = operations(&server, &auth, "bo").await;
    for operation in ["DisableUser", "ResetUserPassword", "DeleteUser"] {
        assert!(
            done.iter().any(|o| o == operation),
            "{operation} not audited: {done:?}"
        );
    }
    browser.close().await;
    server.stop().await;
}
