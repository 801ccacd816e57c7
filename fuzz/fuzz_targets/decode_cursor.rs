//! Any text, as a paging cursor, must be refused or decode to a cursor whose
//! encoding is that same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracklog_domain::cursor::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cursor) = Cursor::decode(text) {
        assert_eq!(cursor.encode(), text);
    }
});
