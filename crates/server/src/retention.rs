//! The background purge: interactions older than their portal's
//! `retention_days` are deleted, a chunk at a time, every
//! `retention.interval_seconds`.

use std::time::Duration;

use tracing::Instrument;
use tracklog_domain::time::UtcMillis;
use tracklog_store::Stores;

use crate::metrics::Metrics;
use crate::services::portals;

/// One pass over every org's portals. Returns how many interactions went.
/// A portal whose purge fails (a full disk, say) is counted in `metrics`
/// and tried again at the next pass; what it deleted before stays deleted,
/// since each chunk is its own transaction.
pub async fn purge_once(stores: &Stores, metrics: &Metrics, now: UtcMillis) -> u64 {
    let mut total = 0;
    let orgs = match stores.meta.list_orgs().await {
        Ok(orgs) => orgs,
        Err(error) => {
            tracing::warn!(%error, "retention: cannot list orgs");
            return 0;
        }
    };
    for org in orgs {
        let Ok(list) = stores.portals.list_portals(org.id).await else {
            continue;
        };
        for portal in list {
            let Some(days) = portal.retention_days else {
                continue;
            };
            let before = now.saturating_add_millis(-(i64::from(days) * 86_400_000));
            match portals::purge(stores, org.id, &portal.id, Some(before)).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(org = %org.name, portal = %portal.id, deleted = n, "retention purge");
                    metrics.retention_purged.inc_by(n);
                    total += n;
                }
                Err(error) => {
                    metrics.retention_failures.inc();
                    tracing::warn!(org = %org.name, portal = %portal.id, %error, "retention purge failed; it is tried again at the next pass");
                }
            }
        }
    }
    total
}

/// Runs [`purge_once`] every `interval`, starting shortly after start-up,
/// until `stopping` turns true.
pub fn spawn(
    stores: Stores,
    metrics: std::sync::Arc<Metrics>,
    interval: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        purge_once(&stores, &metrics, UtcMillis::now()).await;
                    }
                    changed = stopping.changed() => {
                        if changed.is_err() || *stopping.borrow() {
                            return;
                        }
                    }
                }
            }
        }
        .instrument(tracing::info_span!("retention")),
    )
}
