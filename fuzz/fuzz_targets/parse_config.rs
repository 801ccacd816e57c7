//! Any text, as a configuration file, must be refused with a message or give
//! a configuration that passes its own checks, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracklog_config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text) {
        Ok(config) => assert!(config.validate().is_ok()),
        Err(error) => assert!(!error.0.is_empty()),
    }
});
