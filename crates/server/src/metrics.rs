//! Prometheus metrics, served at `/metrics`. Every metric Tracklog exports is
//! registered here, with its help text:
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `tracklog_events_ingested_total` | counter | `kind` | items accepted and durable (retries included); `kind="contact"` counts contacts upserted by Segment `identify` |
//! | `tracklog_events_duplicate_total` | counter | `kind` | accepted items that were already stored |
//! | `tracklog_events_rejected_total` | counter | `kind`, `reason` | items refused, by reason; whole requests refused for overload or size count every item they carried where it is known |
//! | `tracklog_requests_refused_total` | counter | `reason` | ingestion requests refused before their items were read (`body_too_large`, `too_many_items`, `invalid_body`) |
//! | `tracklog_batch_commit_seconds` | histogram | | time from the start of a group commit until it is durable |
//! | `tracklog_batch_commit_items` | histogram | | items per group commit |
//! | `tracklog_queue_depth` | gauge | | items waiting for the writer |
//! | `tracklog_log_sync_seconds` | histogram | | how long the log's fdatasync of one group took |
//! | `tracklog_log_queue_depth` | gauge | | items waiting for the log |
//! | `tracklog_storage_faults_total` | counter | | failed writes or syncs of the log or the database, each latched until the file was re-established |
//! | `tracklog_storage_faulted` | gauge | | 1 while a storage fault stops writes |
//! | `tracklog_http_requests_total` | counter | `method`, `status` | HTTP responses |
//! | `tracklog_connections_open` | gauge | | HTTP connections open |
//! | `tracklog_connections_refused_total` | counter | | connections answered 503 and closed because `http.max_connections` were open |
//! | `tracklog_auth_failures_total` | counter | `status` | 401 and 403 answers |
//! | `tracklog_logins_total` | counter | `outcome` | web UI sign-ins: `succeeded`, `failed`, or `throttled` (refused by a lockout, [`crate::ui::throttle`]) |
//! | `tracklog_audit_excluded_total` | counter | `reason` | audit records not recorded by the org's settings (`excluded_message`, `read_auditing_off`, ...) |
//! | `tracklog_audit_job_failures_total` | counter | `job` | failed runs of the activity log's background jobs (`checkpoint`, `purge`, `checkpoint_file`) |
//! | `tracklog_audit_checkpoints_total` | counter | | signed checkpoints made |
//! | `tracklog_audit_checkpoints_published_total` | counter | | checkpoints appended to `audit.checkpoint_file` |
//! | `tracklog_audit_checkpoints_forwarded_total` | counter | `forwarder` | checkpoints sent to a SIEM (resends included) |
//! | `tracklog_audit_purged_total` | counter | | records removed by retention |
//! | `tracklog_retention_purged_total` | counter | | portal interactions removed by their portal's `retention_days` |
//! | `tracklog_retention_failures_total` | counter | | failed purges of a portal's interactions (each is tried again at the next pass) |
//! | `tracklog_audit_exported_total` | counter | `format` | records written by exports |
//! | `tracklog_audit_forwarded_total` | counter | `forwarder` | records sent to a SIEM (resends included) |
//! | `tracklog_audit_forward_failures_total` | counter | `forwarder` | failed deliveries to a SIEM (each is retried) |
//! | `tracklog_channel_provider_events_total` | counter | `org`, `provider` | KPI events that arrived from a provider (duplicates included) |
//! | `tracklog_channel_provider_rejected_total` | counter | `org`, `provider`, `reason` | a provider's KPI events refused, by reason |
//! | `tracklog_channel_notification_timeouts_total` | counter | `org`, `provider` | `NotificationResponse` events with `Timeout` |
//! | `tracklog_channel_provider_last_event_timestamp_seconds` | gauge | `org`, `provider` | when a provider's last event arrived (Unix seconds) |
//! | `tracklog_channel_provider_silent` | gauge | `org`, `provider` | 1 while a provider is silent past `channel.provider_silence_seconds` |
//! | `tracklog_channel_event_lag_seconds` | histogram | `org`, `provider` | arrival minus `eventTimestamp` |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tracklog_store::StoreMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabel {
    pub kind: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// The server's metrics; one registry per server, no globals.
pub struct Metrics {
    registry: Registry,
    pub ingested: Family<KindLabel, Counter>,
    pub duplicates: Family<KindLabel, Counter>,
    pub rejected: Family<RejectLabel, Counter>,
    pub refused_requests: Family<ReasonLabel, Counter>,
    pub http_requests: Family<HttpLabel, Counter>,
    pub auth_failures: Family<StatusLabel, Counter>,
    pub logins: Family<OutcomeLabel, Counter>,
    pub audit_excluded: Family<ReasonLabel, Counter>,
    pub audit_job_failures: Family<JobLabel, Counter>,
    pub audit_checkpoints: Counter,
    pub audit_checkpoints_published: Counter,
    pub audit_checkpoints_forwarded: Family<ForwarderLabel, Counter>,
    pub audit_purged: Counter,
    pub retention_purged: Counter,
    pub retention_failures: Counter,
    pub audit_exported: Family<FormatLabel, Counter>,
    pub audit_forwarded: Family<ForwarderLabel, Counter>,
    pub audit_forward_failures: Family<ForwarderLabel, Counter>,
    pub materialiser_lag_items: Family<MaterialiserLabel, Gauge>,
    pub materialiser_lag_seconds: Family<MaterialiserLabel, Gauge<f64, AtomicU64>>,
    pub log_bytes: Gauge,
    pub connections_open: Gauge,
    pub connections_refused: Counter,
    pub storage_faults: Counter,
    pub storage_faulted: Gauge,
    pub provider_events: Family<ProviderLabel, Counter>,
    pub provider_rejected: Family<ProviderReasonLabel, Counter>,
    pub provider_timeouts: Family<ProviderLabel, Counter>,
    pub provider_last_event: Family<ProviderLabel, Gauge<f64, AtomicU64>>,
    pub provider_silent: Family<ProviderLabel, Gauge>,
    pub provider_lag: Family<ProviderLabel, Histogram, fn() -> Histogram>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    pub org: String,
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderReasonLabel {
    pub org: String,
    pub provider: String,
    pub reason: String,
}

/// Arrival lag buckets, in seconds: from sub-second to an hour late.
fn lag_histogram() -> Histogram {
    Histogram::new([
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    ])
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MaterialiserLabel {
    pub materialiser: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForwarderLabel {
    pub forwarder: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub job: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FormatLabel {
    pub format: &'static str,
}

impl Metrics {
    /// Registers every metric, including the store's.
    pub fn new(store: &StoreMetrics) -> Self {
        let mut registry = Registry::with_prefix("tracklog");
        let metrics = Self {
            registry: Registry::default(),
            ingested: Family::default(),
            duplicates: Family::default(),
            rejected: Family::default(),
            refused_requests: Family::default(),
            http_requests: Family::default(),
            auth_failures: Family::default(),
            logins: Family::default(),
            audit_excluded: Family::default(),
            audit_job_failures: Family::default(),
            audit_checkpoints: Counter::default(),
            audit_checkpoints_published: Counter::default(),
            audit_checkpoints_forwarded: Family::default(),
            audit_purged: Counter::default(),
            retention_purged: Counter::default(),
            retention_failures: Counter::default(),
            audit_exported: Family::default(),
            audit_forwarded: Family::default(),
            audit_forward_failures: Family::default(),
            materialiser_lag_items: Family::default(),
            materialiser_lag_seconds: Family::default(),
            log_bytes: Gauge::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            storage_faults: Counter::default(),
            storage_faulted: Gauge::default(),
            provider_events: Family::default(),
            provider_rejected: Family::default(),
            provider_timeouts: Family::default(),
            provider_last_event: Family::default(),
            provider_silent: Family::default(),
            provider_lag: Family::new_with_constructor(lag_histogram),
        };
        registry.register(
            "channel_provider_events",
            "KPI events that arrived from a provider, duplicates included",
            metrics.provider_events.clone(),
        );
        registry.register(
            "channel_provider_rejected",
            "A provider's KPI events refused, by reason",
            metrics.provider_rejected.clone(),
        );
        registry.register(
            "channel_notification_timeouts",
            "NotificationResponse events with Timeout, by provider",
            metrics.provider_timeouts.clone(),
        );
        registry.register(
            "channel_provider_last_event_timestamp_seconds",
            "When a provider's last KPI event arrived, in Unix seconds",
            metrics.provider_last_event.clone(),
        );
        registry.register(
            "channel_provider_silent",
            "1 while a provider has sent nothing for longer than channel.provider_silence_seconds",
            metrics.provider_silent.clone(),
        );
        registry.register(
            "channel_event_lag_seconds",
            "Seconds from a KPI event's eventTimestamp to its arrival",
            metrics.provider_lag.clone(),
        );
        registry.register(
            "materialiser_lag_items",
            "Items in the write-ahead log a materialiser has not applied",
            metrics.materialiser_lag_items.clone(),
        );
        registry.register(
            "materialiser_lag_seconds",
            "Age of the oldest item a materialiser has not applied",
            metrics.materialiser_lag_seconds.clone(),
        );
        registry.register(
            "log_bytes",
            "Bytes the write-ahead log holds on disk",
            metrics.log_bytes.clone(),
        );
        registry.register(
            "connections_open",
            "HTTP connections open",
            metrics.connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "HTTP connections refused because http.max_connections were open",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "storage_faults",
            "Failed writes or syncs of the log or the database, each latched until the file was re-established",
            metrics.storage_faults.clone(),
        );
        registry.register(
            "storage_faulted",
            "1 while a storage fault stops writes",
            metrics.storage_faulted.clone(),
        );
        registry.register(
            "events_ingested",
            "Items accepted and durable, retries included",
            metrics.ingested.clone(),
        );
        registry.register(
            "events_duplicate",
            "Accepted items whose id was already stored",
            metrics.duplicates.clone(),
        );
        registry.register(
            "events_rejected",
            "Items refused, by reason",
            metrics.rejected.clone(),
        );
        registry.register(
            "requests_refused",
            "Ingestion requests refused before their items were read",
            metrics.refused_requests.clone(),
        );
        registry.register(
            "batch_commit_seconds",
            "Seconds from the start of a group commit until it is durable",
            store.commit_seconds.clone(),
        );
        registry.register(
            "batch_commit_items",
            "Items per group commit",
            store.commit_items.clone(),
        );
        registry.register(
            "log_sync_seconds",
            "Seconds the log's fdatasync of one group took",
            store.log_sync_seconds.clone(),
        );
        registry.register(
            "log_queue_depth",
            "Items waiting for the log",
            store.log_queue_depth.clone(),
        );
        registry.register(
            "queue_depth",
            "Items waiting for the writer",
            store.queue_depth.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP responses by method and status",
            metrics.http_requests.clone(),
        );
        registry.register(
            "auth_failures",
            "401 and 403 answers",
            metrics.auth_failures.clone(),
        );
        registry.register(
            "logins",
            "Web UI sign-ins by outcome",
            metrics.logins.clone(),
        );
        registry.register(
            "audit_excluded",
            "Audit records not recorded by the org's settings, by reason",
            metrics.audit_excluded.clone(),
        );
        registry.register(
            "audit_job_failures",
            "Failed runs of the activity log's background jobs",
            metrics.audit_job_failures.clone(),
        );
        registry.register(
            "audit_checkpoints",
            "Signed checkpoints made",
            metrics.audit_checkpoints.clone(),
        );
        registry.register(
            "audit_checkpoints_published",
            "Checkpoints appended to the checkpoint file",
            metrics.audit_checkpoints_published.clone(),
        );
        registry.register(
            "audit_checkpoints_forwarded",
            "Checkpoints sent to a SIEM, resends included",
            metrics.audit_checkpoints_forwarded.clone(),
        );
        registry.register(
            "audit_purged",
            "Audit records removed by retention",
            metrics.audit_purged.clone(),
        );
        registry.register(
            "retention_purged",
            "Portal interactions removed by their portal's retention",
            metrics.retention_purged.clone(),
        );
        registry.register(
            "retention_failures",
            "Failed purges of a portal's interactions, each tried again at the next pass",
            metrics.retention_failures.clone(),
        );
        registry.register(
            "audit_exported",
            "Audit records written by exports, by format",
            metrics.audit_exported.clone(),
        );
        registry.register(
            "audit_forwarded",
            "Audit records sent to a SIEM, resends included",
            metrics.audit_forwarded.clone(),
        );
        registry.register(
            "audit_forward_failures",
            "Failed deliveries to a SIEM; each is retried",
            metrics.audit_forward_failures.clone(),
        );
        for job in ["checkpoint", "purge", "checkpoint_file"] {
            let _ = metrics.audit_job_failures.get_or_create(&JobLabel { job });
        }
        // Pre-create the reason series so dashboards see zeros, not gaps.
        for reason in tracklog_domain::ingest::Reason::ALL {
            let _ = metrics.rejected.get_or_create(&RejectLabel {
                kind: "interaction",
                reason: reason.code(),
            });
        }
        Self {
            registry,
            ..metrics
        }
    }

    /// The text exposition format.
    /// Sets the gauges read from the store at scrape time.
    pub fn observe_store(&self, stores: &tracklog_store::Stores) {
        for status in stores.lifecycle.materialisers() {
            let label = MaterialiserLabel {
                materialiser: status.name,
            };
            self.materialiser_lag_items
                .get_or_create(&label)
                .set(status.lag_items as i64);
            self.materialiser_lag_seconds
                .get_or_create(&label)
                .set(status.lag_seconds);
        }
        self.log_bytes.set(stores.lifecycle.log_bytes() as i64);
        let tripped = stores.lifecycle.faults_tripped();
        self.storage_faults
            .inc_by(tripped.saturating_sub(self.storage_faults.get()));
        self.storage_faulted
            .set(i64::from(stores.lifecycle.fault().is_some()));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts `count` items of `kind` refused for `reason`.
    pub fn reject(&self, kind: &'static str, reason: &'static str, count: usize) {
        self.rejected
            .get_or_create(&RejectLabel { kind, reason })
            .inc_by(count as u64);
    }
}
