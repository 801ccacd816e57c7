//! Background jobs of a running server: signed checkpoints of every org's
//! activity log and their publication ([`crate::publish`]), the retention
//! purge, SIEM forwarders ([`crate::forward`]),
//! and the channel analytics alert rules. Each run has its own tracing span;
//! failures are logged and counted in `tracklog_audit_job_failures_total`.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::metrics::JobLabel;
use crate::services::audit::{self, CheckpointPolicy};
use crate::state::AppState;

/// The running jobs.
pub struct Jobs {
    handles: Vec<JoinHandle<()>>,
}

impl Jobs {
    /// Waits for the jobs to notice the stop signal.
    pub async fn stop(self) {
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// The checkpoint policy of a configuration.
pub fn checkpoint_policy(state: &AppState) -> CheckpointPolicy {
    CheckpointPolicy {
        every_records: state.config.audit.checkpoint_every_records,
        every_millis: state.config.audit.checkpoint_every_seconds as i64 * 1000,
    }
}

/// Derives every org's channel facts and rollups again when they were made
/// by an older derivation than this build's (after an upgrade), then
/// records the new version. Queries answer meanwhile, from the old figures
/// for the sessions not yet derived again.
pub async fn derive_again_if_outdated(state: AppState) -> anyhow::Result<()> {
    use tracklog_domain::channel::facts::DERIVATION;
    let stored = state.stores.channel.derivation().await?;
    if stored >= DERIVATION {
        return Ok(());
    }
    tracing::info!(
        from = stored,
        to = DERIVATION,
        "channel analytics were derived by an older version; deriving them again"
    );
    for org in state.stores.meta.list_orgs().await? {
        let name = org.name.to_string();
        let summary = state
            .stores
            .channel
            .rebuild_analytics(
                org.id,
                Box::new(move |done, total| {
                    if total > 0 && (done == total || done % 10_000 == 0) {
                        tracing::info!(org = %name, done, total, "deriving channel analytics again");
                    }
                }),
            )
            .await?;
        tracing::info!(org = %org.name, sessions = summary.sessions, "channel analytics derived again");
    }
    state.stores.channel.set_derivation(DERIVATION).await?;
    Ok(())
}

/// Starts the jobs; they stop when `stopping` turns true.
pub fn spawn(state: AppState, stopping: watch::Receiver<bool>) -> Jobs {
    let checkpoint_tick = Duration::from_millis(
        (state.config.audit.checkpoint_every_seconds * 1000).clamp(200, 1000),
    );
    let purge_tick = Duration::from_secs(state.config.audit.purge_interval_seconds);
    let checkpoints = tokio::spawn(every(
        checkpoint_tick,
        stopping.clone(),
        state.clone(),
        "checkpoint",
        |state| Box::pin(checkpoint_all(state)),
    ));
    let upgrade = state.clone();
    let mut handles = vec![
        checkpoints,
        tokio::spawn(async move {
            if let Err(error) = derive_again_if_outdated(upgrade).await {
                tracing::error!(%error, "could not derive channel analytics again; run `tracklog analytics rebuild`");
            }
        }),
    ];
    if let Some(path) = state.config.audit.checkpoint_file.clone() {
        handles.push(tokio::spawn(crate::publish::run(
            state.clone(),
            path,
            checkpoint_tick,
            stopping.clone(),
        )));
    }
    for forwarder in state.config.audit.forwarders.clone() {
        handles.push(tokio::spawn(crate::forward::run(
            state.clone(),
            forwarder,
            stopping.clone(),
        )));
    }
    let alert_tick = Duration::from_secs(state.config.channel.alert_interval_seconds.max(1));
    handles.push(tokio::spawn(every(
        alert_tick,
        stopping.clone(),
        state.clone(),
        "alerts",
        |state| Box::pin(alerts_all(state)),
    )));
    handles.push(tokio::spawn(every(
        purge_tick,
        stopping,
        state,
        "purge",
        |state| Box::pin(purge_all(state)),
    )));
    Jobs { handles }
}

type RunFuture = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

async fn every(
    period: Duration,
    mut stopping: watch::Receiver<bool>,
    state: AppState,
    job: &'static str,
    run: impl Fn(AppState) -> RunFuture,
) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let span = tracing::info_span!("background_job", job);
        if let Err(error) = run(state.clone()).instrument(span).await {
            tracing::warn!(job, %error, "background job failed");
            state
                .metrics
                .audit_job_failures
                .get_or_create(&JobLabel { job })
                .inc();
        }
    }
}

/// Signs a checkpoint for every org that is due one.
pub async fn checkpoint_all(state: AppState) -> anyhow::Result<()> {
    let policy = checkpoint_policy(&state);
    for org in state.stores.meta.list_orgs().await? {
        let made = audit::checkpoint_if_due(
            &state.stores,
            &state.audit_key,
            org.id,
            org.name.as_str(),
            policy,
            false,
        )
        .await?;
        if let Some(checkpoint) = made {
            tracing::debug!(org = %org.name, number = checkpoint.number, sequence = checkpoint.sequence, "checkpoint signed");
            state.metrics.audit_checkpoints.inc();
        }
    }
    Ok(())
}

/// Evaluates every org's alert rules, and raises or resolves the alerts of
/// silent channel providers.
pub async fn alerts_all(state: AppState) -> anyhow::Result<()> {
    let now = tracklog_domain::time::UtcMillis::now();
    crate::channel_health::raise_silence_alerts(
        &state.stores,
        &state.channel_health,
        &state.metrics,
        now,
        state.config.channel.provider_silence_seconds as i64 * 1000,
    )
    .await?;
    for org in state.stores.meta.list_orgs().await? {
        let checks =
            crate::services::alerts::evaluate_alerts(&state.stores, org.id, now, &state.http)
                .await?;
        for check in checks.iter().filter(|c| c.alert.is_some()) {
            tracing::info!(org = %org.name, rule = %check.rule_id, state = ?check.state, "alert changed");
        }
    }
    Ok(())
}

/// Applies every org's retention.
pub async fn purge_all(state: AppState) -> anyhow::Result<()> {
    for org in state.stores.meta.list_orgs().await? {
        let purged = audit::purge(
            &state.stores,
            &state.audit_key,
            org.id,
            org.name.as_str(),
            state.config.audit.retention_days,
        )
        .await?;
        if purged > 0 {
            tracing::info!(org = %org.name, purged, "retention purge");
            state.metrics.audit_purged.inc_by(purged);
        }
    }
    Ok(())
}
