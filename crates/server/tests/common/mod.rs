//! A real server on 127.0.0.1:0 with its own data directory, for each test.

#![allow(dead_code)]

pub mod browser;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracklog_domain::auth::Rights;
use tracklog_domain::ids::{OrgId, OrgName, PolicyName, PortalId};
use tracklog_server::config::Config;
use tracklog_server::services::{Actor, policies};
use tracklog_store::{Policy, Stores};

pub struct TestServer {
    pub addr: SocketAddr,
    pub stores: Stores,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        adjust(&mut config);
        let stores = tracklog_server::open_stores(&config).expect("open stores");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(tracklog_server::run_with_stores(
            config,
            stores.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            stores,
            dir,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signs in through the form, with its CSRF double-submit cookie, as a
    /// browser would; no browser needed.
    pub async fn form_sign_in(&self, name: &str, password: &str) -> FormSignIn {
        let form = self.http.get(self.url("/login")).send().await.unwrap();
        let login_cookie = cookie_value(&form, "tracklog_login_csrf").unwrap();
        let html = form.text().await.unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        let response = self
            .http
            .post(self.url("/login"))
            .header("cookie", format!("tracklog_login_csrf={login_cookie}"))
            .form(&[
                ("username", name),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap();
        FormSignIn {
            status: response.status(),
            session: cookie_value(&response, "tracklog_session"),
            headers: response.headers().clone(),
            page: response.text().await.unwrap_or_default(),
        }
    }

    pub async fn org(&self, name: &str) -> OrgId {
        self.stores
            .meta
            .ensure_org(&OrgName::parse(name).unwrap())
            .await
            .unwrap()
            .id
    }

    /// Creates a policy in `org` and returns it with its keys.
    pub async fn policy_in(
        &self,
        org: &str,
        name: &str,
        rights: &str,
        portal: Option<&str>,
    ) -> Policy {
        let org = self.org(org).await;
        policies::create(
            &self.stores,
            org,
            &Actor::cli(),
            policies::NewPolicy {
                name: PolicyName::parse(name).unwrap(),
                rights: Rights::parse_list(rights).unwrap(),
                portal: portal.map(|p| PortalId::parse(p).unwrap()),
                provider: None,
            },
        )
        .await
        .unwrap()
    }

    pub async fn policy(&self, name: &str, rights: &str) -> Policy {
        self.policy_in("default", name, rights, None).await
    }

    /// The served OpenAPI document.
    pub async fn openapi_document(&self) -> serde_json::Value {
        self.http
            .get(self.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The (method, path) of every operation the served OpenAPI document
    /// lists, split into the pages (tag `ui`) and the rest.
    pub async fn documented_operations(
        &self,
    ) -> (BTreeSet<(String, String)>, BTreeSet<(String, String)>) {
        let document = self.openapi_document().await;
        let (mut pages, mut api) = (BTreeSet::new(), BTreeSet::new());
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let page = operation["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|t| t == "ui"));
                let set = if page { &mut pages } else { &mut api };
                set.insert((method.to_uppercase(), path.clone()));
            }
        }
        (pages, api)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

/// `Basic` credentials for a policy's primary key.
/// The answer to a sign-in through the form.
pub struct FormSignIn {
    pub status: reqwest::StatusCode,
    /// The session cookie's value, when one was set.
    pub session: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub page: String,
}

/// The value of the cookie `name` that a response sets, if any.
pub fn cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (key, value) = first.split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.to_owned())
        })
}

pub fn basic(policy: &Policy) -> (String, Option<String>) {
    (
        policy.name.to_string(),
        Some(policy.primary_key.expose().to_owned()),
    )
}

/// A valid knowledge-article interaction.
pub fn article(id: &str, contact: &str, ts: &str) -> serde_json::Value {
    serde_json::json!({
        "portal_interactionid": id,
        "type": "portal_viewknowledgearticle",
        "portal_contactid": contact,
        "portal_timestamp": ts,
        "portal_portalid": "support",
        "session_id": "s-1",
        "portal_knowledgearticleid": format!("KA-{id}"),
        "portal_knowledgetitle": "Reset your password",
    })
}
