//! Any Authorization header must parse or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracklog_domain::auth::{Credential, PolicyKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(Credential::Sas(token)) = Credential::parse(text) {
            let _ = token.signed_with(&PolicyKey::from_stored("key".into()));
            let _ = token.covers_path("/api/v1/interactions");
        }
    }
});
