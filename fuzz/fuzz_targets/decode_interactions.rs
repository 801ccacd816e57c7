//! Any bytes, as a JSON, array or NDJSON body, must decode to outcomes without
//! panicking, and every item must end in exactly one outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracklog_domain::ingest::{Limits, split_items};
use tracklog_domain::interaction::{Builtins, DecodeContext, decode_batch};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let ctx = DecodeContext {
        limits: &limits,
        portal_scope: None,
        catalogue: &Builtins,
    };
    for ndjson in [false, true] {
        if let Ok(batch) = decode_batch(data, ndjson, &ctx) {
            let items = split_items(data, ndjson, &limits)
                .map(|v| v.len())
                .unwrap_or(0);
            assert_eq!(batch.interactions.len() + batch.rejected.len(), items);
            for interaction in &batch.interactions {
                let _ = interaction.to_json();
            }
        }
    }
});
