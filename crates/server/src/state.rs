//! What every handler shares.

use std::sync::Arc;

use tracklog_domain::ingest::Limits;
use tracklog_store::Stores;

use crate::catalogue::Catalogues;
use crate::config::Config;
use crate::metrics::Metrics;

/// Shared, cheaply cloned state of one running server.
#[derive(Clone)]
pub struct AppState {
    pub stores: Stores,
    pub config: Arc<Config>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// Each org's captured types and portals, for ingestion.
    pub catalogues: Arc<Catalogues>,
    /// Signs the activity log's checkpoints.
    pub audit_key: Arc<ed25519_dalek::SigningKey>,
    /// Outgoing HTTP (alert webhooks).
    pub http: reqwest::Client,
    /// Each provider's health, recorded by the KPI event ingest path.
    pub channel_health: Arc<crate::channel_health::ChannelHealth>,
    /// Failed sign-ins per user name and client address.
    pub sign_in: Arc<crate::ui::throttle::SignInThrottle>,
}

impl AppState {
    pub fn new(stores: Stores, config: Config, audit_key: ed25519_dalek::SigningKey) -> Self {
        let metrics = Arc::new(Metrics::new(&stores.metrics));
        let sign_in = Arc::new(crate::ui::throttle::SignInThrottle::new(
            config.ui.sign_in.clone(),
        ));
        Self {
            limits: config.limits(),
            stores,
            config: Arc::new(config),
            metrics,
            catalogues: Arc::default(),
            audit_key: Arc::new(audit_key),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            channel_health: Arc::default(),
            sign_in,
        }
    }
}
