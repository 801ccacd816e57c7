//! Every page of the web UI, tried signed out and signed in as each role,
//! and every form, with and without the session's CSRF token. [`PAGES`] says
//! who may see what; a page missing from it, or a row whose page is gone,
//! fails the test.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestServer, basic};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tracklog_domain::ids::UserName;
use tracklog_domain::user::Role;
use tracklog_server::services::{Actor, users};

/// Who may use a page.
#[derive(Debug, Clone, Copy)]
enum Allowed {
    /// Anyone, signed in or not.
    Open,
    /// Not by a session at all: the embeddable page takes a SAS token.
    Token,
    /// Signed-in users with one of these roles.
    Roles(&'static [Role]),
}

use Allowed::*;
use Role::{Admin, Agent, Auditor, Supervisor};

const EVERY_ROLE: &[Role] = &[Admin, Supervisor, Agent, Auditor];
const MANAGERS: &[Role] = &[Admin, Supervisor];
const CUSTOMER_SIDE: &[Role] = &[Admin, Supervisor, Agent];
const COMPLIANCE: &[Role] = &[Admin, Auditor];
const ADMINS: &[Role] = &[Admin];

/// Every page and form, in the order tried (signing out comes last).
const PAGES: &[(&str, &str, Allowed)] = &[
    ("GET", "/login", Open),
    ("GET", "/static/app.css", Open),
    ("GET", "/static/live.js", Open),
    ("GET", "/embed/cases/{id}", Token),
    ("GET", "/", Roles(EVERY_ROLE)),
    ("GET", "/ui/cases", Roles(CUSTOMER_SIDE)),
    ("GET", "/ui/cases/open", Roles(CUSTOMER_SIDE)),
    ("GET", "/ui/cases/{id}", Roles(CUSTOMER_SIDE)),
    ("GET", "/ui/portals", Roles(MANAGERS)),
    ("GET", "/ui/portals/{id}", Roles(MANAGERS)),
    ("GET", "/ui/analytics/live", Roles(MANAGERS)),
    ("GET", "/ui/analytics/live/stream", Roles(MANAGERS)),
    ("GET", "/ui/analytics/history", Roles(MANAGERS)),
    ("GET", "/ui/analytics/drilldown", Roles(MANAGERS)),
    ("GET", "/ui/analytics/health", Roles(MANAGERS)),
    ("GET", "/ui/analytics/sessions/{id}", Roles(MANAGERS)),
    ("GET", "/ui/reports/dissatisfied", Roles(MANAGERS)),
    ("GET", "/ui/analytics/me", Roles(CUSTOMER_SIDE)),
    ("GET", "/ui/analytics/me/stream", Roles(CUSTOMER_SIDE)),
    ("GET", "/ui/audit", Roles(COMPLIANCE)),
    ("GET", "/ui/audit/export", Roles(COMPLIANCE)),
    ("GET", "/ui/audit/records/{id}", Roles(COMPLIANCE)),
    ("GET", "/ui/users", Roles(ADMINS)),
    ("POST", "/ui/users", Roles(ADMINS)),
    ("POST", "/ui/users/{name}/{action}", Roles(ADMINS)),
    ("POST", "/login", Open),
    ("POST", "/logout", Roles(EVERY_ROLE)),
];

fn fill(path: &str) -> String {
    path.replace("/embed/cases/{id}", "/embed/cases/CAS-1")
        .replace("/ui/cases/{id}", "/ui/cases/CAS-1")
        .replace("/ui/portals/{id}", "/ui/portals/help")
        .replace("/ui/analytics/sessions/{id}", "/ui/analytics/sessions/none")
        .replace("/ui/audit/records/{id}", "/ui/audit/records/r-1")
        .replace("{name}/{action}", "nobody-here/disable")
        + match path {
            "/ui/cases/open" => "?id=CAS-1",
            "/ui/analytics/drilldown" => "?metric=conversations_offered",
            "/ui/audit/export" => "?format=csv",
            _ => "",
        }
}

/// A signed-in user: the session cookie and the CSRF token its pages carry.
struct Session {
    role: Role,
    cookie: String,
    csrf: String,
}

async fn sign_in(server: &TestServer, role: Role) -> Session {
    let name = format!("{}-user", role.as_str());
    let password = "a long enough password";
    users::add(
        &server.stores,
        server.org("default").await,
        &Actor::cli(),
        UserName::parse(&name).unwrap(),
        role,
        password.into(),
    )
    .await
    .unwrap();
    let answer = server.form_sign_in(&name, password).await;
    let cookie = answer.session.expect("signed in");
    let home = server
        .http
        .get(server.url("/"))
        .header("cookie", format!("tracklog_session={cookie}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = home
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("every page carries the session's CSRF token")
        .to_owned();
    Session { role, cookie, csrf }
}

/// The status, and for a redirect where it goes; an event stream is left
/// after its head.
async fn ask(
    server: &TestServer,
    method: &Method,
    path: &str,
    session: Option<&Session>,
    csrf: Option<&str>,
) -> (StatusCode, String) {
    let mut request = server
        .http
        .request(method.clone(), server.url(&fill(path)))
        .timeout(Duration::from_secs(30));
    if let Some(session) = session {
        request = request.header("cookie", format!("tracklog_session={}", session.cookie));
    }
    if *method == Method::POST {
        let mut form = vec![
            ("name", "matrix-new".to_owned()),
            ("role", "agent".to_owned()),
            ("password", "another long password".to_owned()),
        ];
        if let Some(csrf) = csrf {
            form.push(("csrf", csrf.to_owned()));
        }
        request = request.form(&form);
    }
    let response = request.send().await.unwrap();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status(), location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_with_every_role_and_without_the_csrf_token() {
    let server = TestServer::start().await;
    let manage = basic(&server.policy("setup", "manage").await);
    for (path, body) in [
        ("/api/v1/portals", json!({"id": "help", "name": "Help"})),
        ("/api/v1/contacts", json!({"id": "c-1", "name": "Dana"})),
        (
            "/api/v1/cases",
            json!({"id": "CAS-1", "contact_id": "c-1", "title": "Printer",
                   "created_at": "2026-03-01T12:00:00Z"}),
        ),
        (
            "/api/v1/audit/records",
            json!({"Id": "r-1", "CreationTime": "2026-03-01T10:00:00Z",
                   "Operation": "Update", "EntityName": "account"}),
        ),
    ] {
        let response = server
            .http
            .post(server.url(path))
            .basic_auth(&manage.0, manage.1.as_ref())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}");
    }
    let mut sessions = Vec::new();
    for role in [Admin, Supervisor, Agent, Auditor] {
        sessions.push(sign_in(&server, role).await);
    }

    let (served, _) = server.documented_operations().await;
    let tabled: BTreeSet<(String, String)> = PAGES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        served.difference(&tabled).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "pages without a row"
    );
    assert_eq!(
        tabled.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "rows for pages no longer served"
    );

    let mut wrong = Vec::new();
    let mut cells = 0;
    for (method, path, allowed) in PAGES {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let post = method == Method::POST;
        // Signed out.
        let (status, location) = ask(&server, &method, path, None, None).await;
        cells += 1;
        let fine = match allowed {
            Open => !status.is_server_error(),
            Token => status == StatusCode::UNAUTHORIZED,
            Roles(_) if post => status == StatusCode::FORBIDDEN || location.starts_with("/login"),
            Roles(_) => status == StatusCode::SEE_OTHER && location.starts_with("/login"),
        };
        if !fine {
            wrong.push(format!("{method} {path} signed out: {status} {location}"));
        }
        for session in &sessions {
            let may = match allowed {
                Open => true,
                Token => false,
                Roles(roles) => roles.contains(&session.role),
            };
            let mut tries = vec![Some(session.csrf.as_str())];
            if post && !matches!(allowed, Open) {
                // Without the token first: signing out with it ends the session.
                tries.insert(0, None);
            }
            for csrf in tries {
                let (status, location) = ask(&server, &method, path, Some(session), csrf).await;
                cells += 1;
                let expected = match allowed {
                    Open => "any",
                    Token => "401",
                    _ if post && csrf.is_none() => "403",
                    _ if may => "allowed",
                    _ => "403",
                };
                let fine = match expected {
                    "any" => !status.is_server_error(),
                    "401" => status == StatusCode::UNAUTHORIZED,
                    "403" => status == StatusCode::FORBIDDEN,
                    _ => {
                        !status.is_server_error()
                            && status != StatusCode::UNAUTHORIZED
                            && status != StatusCode::FORBIDDEN
                            && (!location.starts_with("/login") || *path == "/logout")
                    }
                };
                if !fine {
                    wrong.push(format!(
                        "{method} {path} as {:?}{}: {status} {location}, expected {expected}",
                        session.role,
                        if csrf.is_some() {
                            ""
                        } else {
                            " without the CSRF token"
                        },
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells are wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Signing out with the token ended every session.
    for session in &sessions {
        let (status, location) = ask(&server, &Method::GET, "/", Some(session), None).await;
        assert!(status == StatusCode::SEE_OTHER && location.starts_with("/login"));
    }
    server.stop().await;
}
