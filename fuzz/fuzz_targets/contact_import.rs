//! Any bytes, as a contact import file (CSV with a header, or JSONL), must
//! become one outcome per row without panicking, with the rows' line
//! numbers in file order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracklog_domain::contact::import::{parse_csv, parse_jsonl};
use tracklog_domain::time::UtcMillis;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = UtcMillis::from_millis(1_790_000_000_000);
    let lines = text.lines().count() as u64 + 1;
    let jsonl = parse_jsonl(text, now);
    assert!(jsonl.len() as u64 <= lines);
    assert!(jsonl.windows(2).all(|w| w[0].0 < w[1].0));
    for (line, row) in jsonl {
        assert!(line >= 1 && line <= lines, "line {line} of {lines}");
        if let Ok(contact) = row {
            let _ = contact.to_json();
        }
    }
    if let Ok(rows) = parse_csv(text, now) {
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0));
        for (_, row) in rows {
            if let Ok(contact) = row {
                let _ = contact.to_json();
            }
        }
    }
});
