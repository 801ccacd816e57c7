//! Escaping for the line formats Tracklog writes: CSV cells, CEF header
//! fields and extension values, and RFC 5424 structured-data values.
//!
//! Every value in these formats comes from a client, so each function here
//! guarantees that no value can end the line, start a new field or record,
//! or run as a spreadsheet formula. The property tests in
//! `tests/output_injection.rs` hold every export format to that.
//!
//! These rules are written here rather than taken from a crate: the `csv`
//! crate quotes cells but leaves formulas alone (OWASP's advice is the
//! caller's job), and no maintained crate writes CEF or RFC 5424
//! structured data.

use std::borrow::Cow;

/// Whether `c` ends a line for some reader: CR and LF, and also VT, FF,
/// NEL and the Unicode line and paragraph separators.
pub fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// A control character other than tab, or a line break: what the CEF and
/// syslog writers never let through raw.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t') || is_line_break(c)
}

/// A CSV cell that a spreadsheet will show as text, as OWASP advises for
/// CSV injection: a cell starting with `=`, `+`, `-`, `@`, tab or CR gets a
/// leading `'`. A plain decimal number (`-0.4`, `+1e3`) is left alone, since
/// it is data, not a formula; `-inf` or `-1+1` is not a plain number.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let plain_number = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.parse::<f64>().is_ok();
    if risky && !plain_number {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Escapes a CEF header field: `\` and `|`; line breaks and other control
/// characters become spaces.
pub fn cef_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c if is_unsafe(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a CEF extension value: `\`, `=`, and CR and LF as `\r` and `\n`,
/// as the CEF specification says; other line breaks and control characters
/// become spaces.
pub fn cef_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an RFC 5424 structured-data parameter value: `"`, `\` and `]`
/// get a backslash, as the RFC says. So that an export stays one message a
/// line, CR and LF are written as `\r` and `\n` (unambiguous, since a real
/// backslash is doubled), and other control characters as spaces.
pub fn sd_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_neutralised() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("+1-2"), "'+1-2");
        assert_eq!(csv_cell("-1+1"), "'-1+1");
        assert_eq!(csv_cell("-inf"), "'-inf");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("\r=1"), "'\r=1");
        assert_eq!(csv_cell("-0.4"), "-0.4", "a number stays a number");
        assert_eq!(csv_cell("+1e3"), "+1e3");
        assert_eq!(csv_cell("agent-7"), "agent-7");
        assert_eq!(csv_cell(""), "");
    }

    #[test]
    fn no_control_character_passes_raw() {
        let nasty = "a\u{0}b\u{1b}[31mc\u{85}d\u{2028}e\tf";
        for escaped in [cef_header(nasty), cef_value(nasty), sd_value(nasty)] {
            assert!(!escaped.chars().any(is_unsafe), "{escaped:?}");
            assert!(escaped.contains('\t'), "a tab is kept");
        }
    }

    #[test]
    fn structured_data_keeps_one_message_a_line() {
        assert_eq!(sd_value("a\nb\\n\"]"), "a\\nb\\\\n\\\"\\]");
    }
}
