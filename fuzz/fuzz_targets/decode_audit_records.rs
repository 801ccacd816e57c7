//! Any bytes, as an audit-record body, must split and decode without
//! panicking; a record that decodes must serialise, split and reassemble
//! byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracklog_domain::audit::split::{reassemble, split};
use tracklog_domain::audit::{Receipt, decode_record};
use tracklog_domain::ingest::{Limits, RawItem, split_items};
use tracklog_domain::time::UtcMillis;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let new_id = || "made-by-the-server".to_owned();
    let receipt = Receipt {
        org_name: "default",
        received: UtcMillis::from_millis(1_790_000_000_000),
        new_id: &new_id,
    };
    for ndjson in [false, true] {
        let Ok(items) = split_items(data, ndjson, &limits) else {
            continue;
        };
        for item in items {
            if let RawItem::Json(raw) = item
                && let Ok(record) = decode_record(raw.get(), &receipt, limits.max_item_bytes)
            {
                let bytes = serde_json::to_vec(&record).unwrap();
                if let Some(parts) = split(&bytes, 64) {
                    assert_eq!(reassemble(parts).unwrap(), bytes);
                }
            }
        }
    }
});
