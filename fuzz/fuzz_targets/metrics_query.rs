//! Any bytes, as the body of `POST /api/v1/metrics/query`, must be refused
//! or parse to a query whose range is ordered and whose intervals can be
//! listed or refused, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracklog_domain::channel::query::{MetricsQuery, MetricsRequest};
use tracklog_domain::time::UtcMillis;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<MetricsRequest>(data) else {
        return;
    };
    let now = UtcMillis::from_millis(1_790_000_000_000);
    if let Ok(query) = MetricsQuery::parse(request, now) {
        assert!(query.from < query.to);
        assert!(!query.metrics.is_empty());
        if let Ok(starts) = query.starts() {
            assert!(starts.windows(2).all(|w| w[0] < w[1]));
        }
    }
});
