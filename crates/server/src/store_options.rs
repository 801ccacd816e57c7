//! The embedded store's options, as the configuration sets them.

use std::time::Duration;

use tracklog_store::log::LogOptions;
use tracklog_store::sqlite::SqliteOptions;

use crate::Config;

/// The embedded store's options for `config`.
pub fn sqlite_options(config: &Config) -> SqliteOptions {
    let ingest = &config.ingest;
    SqliteOptions {
        durability: ingest.durability,
        batch_max_items: ingest.commit_max_items,
        batch_linger: Duration::from_millis(ingest.commit_linger_ms),
        queue_max_items: ingest.queue_max_items,
        read_connections: config.storage.read_connections,
        busy_timeout: Duration::from_millis(config.storage.busy_timeout_ms),
        wal_autocheckpoint_pages: config.storage.wal_autocheckpoint_pages,
        checkpoint_interval: Duration::from_millis(config.storage.checkpoint_interval_ms.max(10)),
        audit_split_threshold_bytes: config.audit.split_threshold_bytes,
        audit_compress_after_records: config.audit.compress_after_records,
        log: LogOptions {
            durability: ingest.durability,
            queue_max_items: ingest.queue_max_items,
            max_bytes: ingest.log_max_bytes,
            segment_bytes: ingest.log_segment_bytes.max(4096),
            min_free_bytes: ingest.log_min_free_bytes,
            ..LogOptions::default()
        },
        settle_timeout: Duration::from_millis(ingest.read_your_writes_ms.max(1)),
        check_at_start: config.storage.check_at_start,
        ..SqliteOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration states its defaults itself (it does not depend on
    /// the store); they must be the store's own.
    #[test]
    fn the_configurations_defaults_are_the_stores_defaults() {
        let configured = sqlite_options(&Config::default());
        let store = SqliteOptions::default();
        assert_eq!(configured.durability, store.durability);
        assert_eq!(configured.batch_max_items, store.batch_max_items);
        assert_eq!(configured.batch_linger, store.batch_linger);
        assert_eq!(configured.queue_max_items, store.queue_max_items);
        assert_eq!(configured.read_connections, store.read_connections);
        assert_eq!(configured.busy_timeout, store.busy_timeout);
        assert_eq!(
            configured.wal_autocheckpoint_pages,
            store.wal_autocheckpoint_pages
        );
        assert_eq!(configured.checkpoint_interval, store.checkpoint_interval);
        assert_eq!(
            configured.audit_split_threshold_bytes,
            store.audit_split_threshold_bytes
        );
        assert_eq!(
            configured.audit_compress_after_records,
            store.audit_compress_after_records
        );
        assert_eq!(configured.log.max_bytes, store.log.max_bytes);
        assert_eq!(configured.log.segment_bytes, store.log.segment_bytes);
        assert_eq!(configured.log.min_free_bytes, store.log.min_free_bytes);
        assert_eq!(configured.settle_timeout, store.settle_timeout);
    }
}
