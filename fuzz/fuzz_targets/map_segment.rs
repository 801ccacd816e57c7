//! Any bytes, as the body of each Segment route, must map to per-message
//! outcomes without panicking, and every mapped interaction must then decode
//! to an outcome too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracklog_domain::ingest::Limits;
use tracklog_domain::interaction::{Builtins, DecodeContext, decode_object};
use tracklog_domain::segment::{Endpoint, Message, map_body};
use tracklog_domain::time::UtcMillis;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let ctx = DecodeContext {
        limits: &limits,
        portal_scope: None,
        catalogue: &Builtins,
    };
    let now = UtcMillis::from_millis(1_790_000_000_000);
    for endpoint in [
        Endpoint::Batch,
        Endpoint::Track,
        Endpoint::Page,
        Endpoint::Identify,
    ] {
        let Ok(messages) = map_body(data, endpoint, now, &limits) else {
            continue;
        };
        for (index, message) in messages.into_iter().enumerate() {
            match message {
                Ok(Message::Interaction(object)) => {
                    let _ = decode_object(object, &ctx);
                }
                Ok(Message::Contact(contact)) => assert!(contact.contains_key("id")),
                Err(refused) => assert_eq!(refused.rejection.index, index),
            }
        }
    }
});
