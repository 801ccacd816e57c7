//! No field value can break a line of any export or forwarding format.
//!
//! Every text field of a record is drawn from characters chosen to break
//! formats: line breaks of every kind, NUL and escape, the separators and
//! escapes of CSV, CEF and RFC 5424, and formula openers. Each format is then
//! parsed back the way a SIEM or a spreadsheet would, and must give back
//! exactly one line, the same fields, and the values that were sent.

use hmac::{Hmac, Mac};
use proptest::prelude::*;
use serde_json::{Value, json};
use tracklog_domain::audit::format::{
    Format, cef, csv_cell, octet_frame, syslog, webhook_body, webhook_signature,
};
use tracklog_domain::audit::{AuditRecord, Category, FIELD_NAMES};
use tracklog_domain::escape::is_line_break;

const NASTY: &[char] = &[
    '\n', '\r', '\t', '\u{0}', '\u{b}', '\u{c}', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}',
    '\u{2029}', '=', '+', '-', '@', '|', '\\', '"', '\'', ']', '[', ',', ';', ' ', '<', '>', '&',
    '{', '}', '\u{feff}',
];

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(NASTY),
            1 => any::<char>(),
            2 => proptest::char::range('a', 'z'),
        ],
        0..24,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn some_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.9, text())
}

prop_compose! {
    fn record()(
        id in text(), operation in text(), user in some_text(), client_ip in some_text(),
        result_status in some_text(), entity_name in some_text(), entity_id in some_text(),
        message in some_text(), user_agent in some_text(), query in some_text(),
        item_url in some_text(), user_upn in some_text(), field in text(),
        results in proptest::collection::vec(text(), 0..3),
        millis in 0i64..4_000_000_000_000, sequence in proptest::option::of(1i64..1_000_000),
    ) -> AuditRecord {
        AuditRecord {
            id,
            organization_id: "default".into(),
            creation_time: tracklog_domain::time::UtcMillis::from_millis(millis).to_rfc3339(),
            client_ip,
            operation,
            user,
            result_status,
            entity_name,
            entity_id,
            message,
            user_agent,
            query,
            item_url,
            user_upn,
            fields: Some(json!({ "note": field })),
            query_results: Some(results),
            category: Some(Category::Update),
            sequence,
            ..AuditRecord::default()
        }
    }
}

/// What the CEF and syslog writers make of a value: control characters
/// other than tab, and line breaks other than CR and LF, become spaces.
fn sanitised(text: &str) -> String {
    text.chars()
        .map(|c| {
            let unsafe_char = (c.is_control() && c != '\t') || is_line_break(c);
            if unsafe_char && c != '\n' && c != '\r' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn assert_one_line(line: &str) -> Result<(), TestCaseError> {
    prop_assert!(line.ends_with('\n'), "{line:?}");
    let body = &line[..line.len() - 1];
    prop_assert!(!body.contains(['\n', '\r']), "a raw line break: {line:?}");
    Ok(())
}

/// The key/value pairs of a CEF extension, unescaped. A key is the word
/// before an unescaped `=`; its value runs to the space before the next key.
fn cef_extension(extension: &str) -> Vec<(String, String)> {
    // Split at unescaped `=`, keeping the raw (escaped) text between.
    let mut pieces = vec![String::new()];
    let mut chars = extension.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let last = pieces.last_mut().expect("one piece");
                last.push('\\');
                if let Some(next) = chars.next() {
                    last.push(next);
                }
            }
            '=' => pieces.push(String::new()),
            c => pieces.last_mut().expect("one piece").push(c),
        }
    }
    let mut pairs = Vec::new();
    let mut key = pieces[0].clone();
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        let (value, next_key) = if i + 1 == pieces.len() {
            (piece.as_str(), "")
        } else {
            piece.rsplit_once(' ').unwrap_or((piece.as_str(), ""))
        };
        pairs.push((key.clone(), unescape_cef(value)));
        key = next_key.to_owned();
    }
    pairs
}

fn unescape_cef(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The header fields of a CEF line, split at unescaped `|`.
fn cef_header_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let last = fields.last_mut().expect("one field");
                last.push(c);
                if let Some(next) = chars.next() {
                    last.push(next);
                }
            }
            '|' if fields.len() < 8 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// The parameters of the first RFC 5424 SD element, unescaped, and the rest
/// of the message after it.
fn sd_params(message: &str) -> (Vec<(String, String)>, String) {
    let start = message.find('[').expect("an SD element");
    let mut chars = message[start + 1..].char_indices();
    let mut params = Vec::new();
    let mut name = String::new();
    let mut rest = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            ']' => {
                rest = chars.map(|(_, c)| c).collect();
                break;
            }
            '=' => {
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "a quoted value");
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some(c @ ('"' | '\\' | ']')) => value.push(c),
                            Some('n') => value.push('\n'),
                            Some('r') => value.push('\r'),
                            Some(other) => {
                                value.push('\\');
                                value.push(other);
                            }
                            None => break,
                        },
                        Some('"') | None => break,
                        Some(c) => value.push(c),
                    }
                }
                params.push((name.clone(), value));
                name.clear();
            }
            ' ' => name.clear(),
            c => name.push(c),
        }
    }
    (params, rest)
}

fn field_text(record: &AuditRecord, name: &str) -> String {
    let map = serde_json::to_value(record).expect("a record is JSON");
    match &map[name] {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// CSV is left out: a line break inside a quoted cell is part of the cell
    /// (RFC 4180), and the CSV test below reads back exactly one record.
    #[test]
    fn every_line_format_writes_exactly_one_line(record in record()) {
        for format in [Format::Jsonl, Format::Cef, Format::Syslog, Format::Ocsf] {
            assert_one_line(&format.line(&record, "host", None))?;
        }
    }

    #[test]
    fn csv_gives_back_every_value_and_runs_no_formula(record in record()) {
        let whole = Format::Csv.header() + &Format::Csv.line(&record, "host", None);
        let mut reader = csv::ReaderBuilder::new().from_reader(whole.as_bytes());
        let rows: Vec<csv::StringRecord> =
            reader.records().collect::<Result<_, _>>().expect("valid CSV");
        prop_assert_eq!(rows.len(), 1);
        prop_assert_eq!(rows[0].len(), FIELD_NAMES.len() + 1);
        for (i, name) in FIELD_NAMES.iter().enumerate() {
            let expected = field_text(&record, name);
            let expected = csv_cell(&expected).into_owned();
            prop_assert_eq!(&rows[0][i], expected.as_str(), "column {}", name);
            let cell = &rows[0][i];
            let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
            prop_assert!(!formula || cell.parse::<f64>().is_ok(), "{} runs: {:?}", name, cell);
        }
    }

    #[test]
    fn cef_keeps_its_header_and_every_extension_value(record in record()) {
        let line = cef(&record, None);
        assert_one_line(&line)?;
        let fields = cef_header_fields(line.trim_end_matches('\n'));
        prop_assert_eq!(fields.len(), 8, "seven header separators: {:?}", line);
        prop_assert_eq!(&fields[0], "CEF:0");
        prop_assert_eq!(unescape_cef(&fields[4]), sanitised(&record.operation).replace(['\n', '\r'], " "));
        let pairs = cef_extension(&fields[7]);
        let known = [
            "rt", "externalId", "suser", "suid", "src", "outcome", "cat", "cs1Label", "cs1",
            "cs2Label", "cs2", "cs3Label", "cs3", "cs4Label", "cs4", "cs5Label", "cs5",
            "cn1Label", "cn1", "requestClientApplication",
        ];
        for (key, _) in &pairs {
            prop_assert!(known.contains(&key.as_str()), "an injected key {:?} in {:?}", key, line);
        }
        let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        prop_assert_eq!(value("externalId").unwrap_or_default(), sanitised(&record.id));
        prop_assert_eq!(value("suser").unwrap_or_default(), sanitised(record.user.as_deref().unwrap_or_default()));
        prop_assert_eq!(value("cs2").unwrap_or_default(), sanitised(record.entity_id.as_deref().unwrap_or_default()));
        prop_assert_eq!(
            value("requestClientApplication").unwrap_or_default(),
            sanitised(record.user_agent.as_deref().unwrap_or_default())
        );
    }

    #[test]
    fn syslog_keeps_its_structured_data_and_message(record in record(), host in text()) {
        let message = syslog(&record, &host, None);
        prop_assert!(!message.contains(['\n', '\r']), "{:?}", message);
        let header: Vec<&str> = message.splitn(7, ' ').collect();
        prop_assert_eq!(header.len(), 7);
        prop_assert!(header[2].chars().all(|c| c.is_ascii_graphic()), "HOSTNAME {:?}", header[2]);
        prop_assert!(header[5].chars().all(|c| c.is_ascii_graphic()), "MSGID {:?}", header[5]);
        let (params, rest) = sd_params(header[6]);
        let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        for name in &names {
            prop_assert!(
                ["Id", "Sequence", "Operation", "Category", "User", "ClientIP", "EntityName",
                 "EntityId", "ResultStatus"].contains(name),
                "an injected parameter {:?} in {:?}", name, message
            );
        }
        let param = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        prop_assert_eq!(param("User").unwrap_or_default(), sanitised(record.user.as_deref().unwrap_or_default()));
        prop_assert_eq!(param("EntityId").unwrap_or_default(), sanitised(record.entity_id.as_deref().unwrap_or_default()));
        let json = rest.strip_prefix(" \u{feff}").expect("the message after the SD element");
        let back: AuditRecord = serde_json::from_str(json).expect("the message is the record");
        prop_assert_eq!(back, record.clone());
        let framed = octet_frame(&message);
        let (length, body) = framed.split_once(' ').expect("LEN SP MSG");
        prop_assert_eq!(length.parse::<usize>().ok(), Some(body.len()));
    }

    #[test]
    fn json_lines_and_ocsf_give_back_the_record(record in record()) {
        let line = Format::Jsonl.line(&record, "host", None);
        let back: AuditRecord = serde_json::from_str(&line).expect("one JSON object");
        prop_assert_eq!(&back, &record);
        let ocsf: Value = serde_json::from_str(&Format::Ocsf.line(&record, "host", None))
            .expect("one JSON object");
        prop_assert_eq!(ocsf["actor"]["user"]["name"].as_str(), record.user.as_deref());
        prop_assert_eq!(ocsf["resources"][0]["data"].clone(), record.fields.clone().unwrap_or(Value::Null));
    }

    #[test]
    fn a_webhook_body_is_the_records_and_its_signature_covers_them(
        records in proptest::collection::vec(record(), 0..4),
        secret in proptest::collection::vec(any::<u8>(), 1..40),
    ) {
        let body = webhook_body(&records).expect("records are JSON");
        let back: Vec<AuditRecord> = serde_json::from_slice(&body).expect("a JSON array");
        prop_assert_eq!(&back, &records);
        let signature = webhook_signature(&secret, &body);
        let hex = signature.strip_prefix("sha256=").expect("sha256=");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).expect("any key length");
        mac.update(&body);
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        prop_assert_eq!(hex, expected);
    }
}
