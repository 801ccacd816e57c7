//! A real server on 127.0.0.1:0 with its own data directory, for each test.

#![allow(dead_code)]

pub mod browser;

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
