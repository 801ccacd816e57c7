//! Any bytes, as the body of `initLogAnalytics` or `logAnalyticsEvent`
//! (object, array or NDJSON), must parse to records or refusals without
//! panicking, and each event of an `events` list must end in exactly one
//! outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tracklog_domain::channel::payload::{parse_events, parse_init};
use tracklog_domain::ingest::{Limits, RawItem, split_items};
use tracklog_domain::time::UtcMillis;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let now = UtcMillis::from_millis(1_790_000_000_000);
    for ndjson in [false, true] {
        let Ok(items) = split_items(data, ndjson, &limits) else {
            continue;
        };
        for item in items {
            let RawItem::Json(raw) = item else { continue };
            let Ok(value) = serde_json::from_str::<Value>(raw.get()) else {
                continue;
            };
            let _ = parse_init(&value);
            if let Ok(batch) = parse_events(&value, now) {
                let listed = value
                    .get("events")
                    .and_then(Value::as_array)
                    .map_or(1, Vec::len);
                assert_eq!(batch.events.len(), listed);
            }
        }
    }
});
