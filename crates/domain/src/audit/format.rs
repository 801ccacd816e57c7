//! Export formats of the activity log: CSV, JSON lines, CEF, RFC 5424
//! syslog and OCSF (API Activity, class 6003). Each renders one record per
//! line; CSV has a header line first.
//!
//! The escaping rules are the formats' own ([`crate::escape`]): CEF escapes
//! `\` and `|` in the header and `\`, `=` and line breaks in extension
//! values; RFC 5424 escapes `"`, `\` and `]` in structured-data values; CSV
//! cells are quoted by the `csv` crate and neutralised against formulas.
//! Golden tests pin them, and `tests/output_injection.rs` shows that no
//! field value can break a line of any format.

use serde::Serialize;
use serde_json::{Value, json};

pub use crate::escape::{cef_header, cef_value, csv_cell, sd_value};

use super::split::PartsIntegrity;
use super::{AuditRecord, Category, FIELD_NAMES};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(rename_all = "lowercase"))]
pub enum Format {
    Csv,
    Jsonl,
    Cef,
    Syslog,
    Ocsf,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "csv" => Ok(Format::Csv),
            "jsonl" => Ok(Format::Jsonl),
            "cef" => Ok(Format::Cef),
            "syslog" => Ok(Format::Syslog),
            "ocsf" => Ok(Format::Ocsf),
            other => Err(format!(
                "{other:?} is not a format: csv, jsonl, cef, syslog or ocsf"
            )),
        }
    }
}

impl Format {
    /// The media type of the whole export.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl | Format::Ocsf => "application/x-ndjson",
            Format::Cef | Format::Syslog => "text/plain; charset=utf-8",
        }
    }

    /// The file extension for downloads.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl | Format::Ocsf => "jsonl",
            Format::Cef => "cef",
            Format::Syslog => "log",
        }
    }

    /// What comes before the first record. CSV ends with an `Integrity`
    /// column, empty for a whole record.
    pub fn header(self) -> String {
        match self {
            Format::Csv => csv_line(
                FIELD_NAMES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .chain(["Integrity".to_owned()]),
            ),
            _ => String::new(),
        }
    }

    /// One record as one line, ending in `\n`. A split record that could not
    /// be read back whole says so in every format (`damage`): JSON lines and
    /// OCSF carry an `integrity` object, CSV its `Integrity` column, CEF a
    /// `cs6` labelled `Integrity`, and syslog an `Integrity` parameter.
    pub fn line(
        self,
        record: &AuditRecord,
        hostname: &str,
        damage: Option<&PartsIntegrity>,
    ) -> String {
        self.line_at(record, hostname, damage, None)
    }

    /// [`Format::line`] for a record whose stored time is known: a JSON
    /// line is then the record exactly as it was chained (its fields in key
    /// order, absent ones left out, and [`super::columns::STORED_AT_KEY`]),
    /// which `tracklog audit verify --export` checks outside the server.
    pub fn line_at(
        self,
        record: &AuditRecord,
        hostname: &str,
        damage: Option<&PartsIntegrity>,
        stored_at: Option<i64>,
    ) -> String {
        let described = damage.map(ToString::to_string);
        if let (Format::Jsonl, None, Some(at)) = (self, damage, stored_at) {
            let mut line = String::from_utf8(record.stored_json_at(at)).unwrap_or_default();
            line.push('\n');
            return line;
        }
        match self {
            Format::Csv => csv_line(csv_values(record).chain([described.unwrap_or_default()])),
            Format::Jsonl => {
                let mut line = match damage {
                    None => serde_json::to_string(record).unwrap_or_default(),
                    Some(damage) => {
                        let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
                        if let Value::Object(map) = &mut value {
                            map.insert("integrity".into(), json!(damage));
                        }
                        value.to_string()
                    }
                };
                line.push('\n');
                line
            }
            Format::Cef => cef(record, described.as_deref()),
            Format::Syslog => {
                let mut line = syslog(record, hostname, described.as_deref());
                line.push('\n');
                line
            }
            Format::Ocsf => {
                let mut event = ocsf(record);
                if let (Some(damage), Value::Object(map)) = (damage, &mut event) {
                    map.insert("unmapped".into(), json!({ "integrity": damage }));
                }
                let mut line = event.to_string();
                line.push('\n');
                line
            }
        }
    }
}

fn as_text(value: &Value) -> String {
    match value {
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

/// The record's values by wire name, as text.
fn values(record: &AuditRecord) -> serde_json::Map<String, Value> {
    match serde_json::to_value(record) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

fn csv_values(record: &AuditRecord) -> impl Iterator<Item = String> {
    let map = values(record);
    FIELD_NAMES.iter().map(move |name| {
        let text = map.get(*name).map(as_text).unwrap_or_default();
        csv_cell(&text).into_owned()
    })
}

fn csv_line(values: impl Iterator<Item = String>) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let row: Vec<String> = values.collect();
    // Writing to memory cannot fail.
    let _ = writer.write_record(&row);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

fn severity(record: &AuditRecord) -> u8 {
    let failed = record.result_status.as_deref().is_some_and(|s| {
        !s.eq_ignore_ascii_case("success") && !s.eq_ignore_ascii_case("succeeded")
    });
    match (record.category, failed) {
        (_, true) => 7,
        (Some(Category::Delete), _) => 5,
        (Some(Category::Create | Category::Update), _) => 3,
        _ => 1,
    }
}

fn label_key(key: &str) -> &'static str {
    match key {
        "cs1" => "cs1Label",
        "cs2" => "cs2Label",
        "cs3" => "cs3Label",
        "cs4" => "cs4Label",
        "cs5" => "cs5Label",
        _ => "cn1Label",
    }
}

/// One CEF line; `damage` describes a record that could not be read whole.
pub fn cef(record: &AuditRecord, damage: Option<&str>) -> String {
    let map = values(record);
    let text = |name: &str| map.get(name).map(as_text).unwrap_or_default();
    let mut extension: Vec<(&str, String)> = vec![
        ("rt", record.creation_millis().to_string()),
        ("externalId", record.id.clone()),
        ("suser", text("User")),
        ("suid", text("UserKey")),
        ("src", text("ClientIP")),
        ("outcome", text("ResultStatus")),
        ("cat", text("Category")),
    ];
    extension.retain(|(_, v)| !v.is_empty());
    // Custom strings come with their labels, both left out when empty.
    let custom = [
        ("cs1", "EntityName"),
        ("cs2", "EntityId"),
        ("cs3", "Fields"),
        ("cs4", "Query"),
        ("cs5", "OrganizationId"),
        ("cn1", "Sequence"),
    ];
    for (key, name) in custom {
        let value = text(name);
        if !value.is_empty() {
            extension.push((label_key(key), name.to_owned()));
            extension.push((key, value));
        }
    }
    if let Some(damage) = damage {
        extension.push(("cs6Label", "Integrity".to_owned()));
        extension.push(("cs6", damage.to_owned()));
    }
    let agent = text("UserAgent");
    if !agent.is_empty() {
        extension.push(("requestClientApplication", agent));
    }
    let extension: Vec<String> = extension
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_value(&v)))
        .collect();
    format!(
        "CEF:0|Tracklog|Tracklog|{}|{}|{}|{}|{}\n",
        env!("CARGO_PKG_VERSION"),
        cef_header(&record.operation),
        cef_header(&record.operation),
        severity(record),
        extension.join(" ")
    )
}

/// A header field of RFC 5424: printable US-ASCII without spaces, at most
/// `max` characters, `-` when empty.
fn header_token(text: &str, max: usize) -> String {
    let token: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if token.is_empty() { "-".into() } else { token }
}

/// One RFC 5424 message (without framing or line end): facility 13 (log
/// audit), severity notice (5) or warning (4) for failures; structured data
/// `tracklog@32473` with the key fields; the message is the record's JSON.
pub fn syslog(record: &AuditRecord, hostname: &str, damage: Option<&str>) -> String {
    let failed = severity(record) == 7;
    let pri = 13 * 8 + if failed { 4 } else { 5 };
    let map = values(record);
    let mut params = String::new();
    for name in [
        "Id",
        "Sequence",
        "Operation",
        "Category",
        "User",
        "ClientIP",
        "EntityName",
        "EntityId",
        "ResultStatus",
    ] {
        if let Some(value) = map.get(name).map(as_text).filter(|v| !v.is_empty()) {
            params.push_str(&format!(" {name}=\"{}\"", sd_value(&value)));
        }
    }
    if let Some(damage) = damage {
        params.push_str(&format!(" Integrity=\"{}\"", sd_value(damage)));
    }
    let json = serde_json::to_string(record).unwrap_or_default();
    format!(
        "<{pri}>1 {} {} tracklog - {} [tracklog@32473{params}] \u{feff}{json}",
        record.creation_time,
        header_token(hostname, 255),
        header_token(&record.operation, 32),
    )
}

/// One RFC 5424 message carrying a signed checkpoint, so that a SIEM keeps
/// every checkpoint beside the records it vouches for: MSGID `checkpoint`,
/// severity notice, structured data naming the org, number and sequence,
/// and the published line ([`super::standalone::PublishedCheckpoint`]) as the
/// message, which `tracklog audit verify --checkpoints` reads back.
pub fn syslog_checkpoint(
    published: &super::standalone::PublishedCheckpoint,
    hostname: &str,
) -> String {
    format!(
        "<{}>1 {} {} tracklog - checkpoint [tracklog@32473 Org=\"{}\" Checkpoint=\"{}\" Sequence=\"{}\"] \u{feff}{}",
        13 * 8 + 5,
        crate::time::UtcMillis::from_millis(published.created_at_ms).to_rfc3339(),
        header_token(hostname, 255),
        sd_value(&published.org),
        published.number,
        published.sequence,
        published.to_line(),
    )
}

/// Frames one syslog message for TCP with RFC 6587 octet counting:
/// `LEN SP MSG`, where LEN counts the message's bytes.
pub fn octet_frame(message: &str) -> String {
    format!("{} {message}", message.len())
}

/// The signature a webhook forwarder sends in `X-Tracklog-Signature`:
/// `sha256=` and the hex HMAC-SHA256 of the body under the shared secret.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The body a webhook forwarder posts: the items as one JSON array.
pub fn webhook_body<T: Serialize>(items: &[T]) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(items)
}

/// One OCSF API Activity event (class 6003).
pub fn ocsf(record: &AuditRecord) -> Value {
    let (activity_id, activity_name) = match record.category {
        Some(Category::Create) => (1, "Create"),
        Some(Category::Read | Category::ReadMultiple) => (2, "Read"),
        Some(Category::Update) => (3, "Update"),
        Some(Category::Delete) => (4, "Delete"),
        _ => (99, "Other"),
    };
    let status = record.result_status.as_deref().unwrap_or("Success");
    let status_id =
        if status.eq_ignore_ascii_case("success") || status.eq_ignore_ascii_case("succeeded") {
            1
        } else {
            2
        };
    json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 600300 + activity_id,
        "time": record.creation_millis(),
        "severity_id": 1,
        "status": status,
        "status_id": status_id,
        "metadata": {
            "version": "1.1.0",
            "uid": record.id,
            "correlation_uid": record.correlation_id,
            "sequence": record.sequence,
            "product": {"name": "Tracklog", "vendor_name": "Tracklog", "version": env!("CARGO_PKG_VERSION")},
        },
        "actor": {
            "user": {
                "name": record.user,
                "uid": record.user_key,
                "type": record.user_type.map(|t| t.as_str()),
                "email_addr": record.user_upn,
            },
            "app_name": record.service_name,
        },
        "src_endpoint": {"ip": record.client_ip},
        "http_request": {"user_agent": record.user_agent, "url": record.item_url.as_ref().map(|u| json!({"url_string": u}))},
        "api": {
            "operation": record.operation,
            "service": {"name": record.service_name},
            "request": {"uid": record.correlation_id},
        },
        "resources": [{
            "type": record.entity_name,
            "uid": record.entity_id,
            "data": record.fields,
        }],
        "unmapped": {
            "Category": record.category.map(Category::as_str),
            "OrganizationId": record.organization_id,
            "Query": record.query,
            "QueryResults": record.query_results,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tricky() -> AuditRecord {
        AuditRecord {
            id: "r-1".into(),
            organization_id: "default".into(),
            creation_time: "2026-03-01T10:00:00.000Z".into(),
            client_ip: Some("10.0.0.1".into()),
            operation: "Update|Weird\\Op".into(),
            user: Some("Jörg \"J\" Müller=1]".into()),
            result_status: Some("Success".into()),
            entity_name: Some("account".into()),
            entity_id: Some("a-1".into()),
            fields: Some(json!({"note": "line1\nline2", "eq": "a=b|c\\d]"})),
            category: Some(Category::Update),
            sequence: Some(7),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn cef_golden() {
        assert_eq!(
            cef(&tricky(), None),
            concat!(
                "CEF:0|Tracklog|Tracklog|",
                env!("CARGO_PKG_VERSION"),
                "|Update\\|Weird\\\\Op|Update\\|Weird\\\\Op|3|",
                "rt=1772359200000 externalId=r-1 suser=Jörg \"J\" Müller\\=1] src=10.0.0.1 ",
                "outcome=Success cat=Update cs1Label=EntityName cs1=account cs2Label=EntityId cs2=a-1 ",
                "cs3Label=Fields cs3={\"eq\":\"a\\=b|c\\\\\\\\d]\",\"note\":\"line1\\\\nline2\"} ",
                "cs5Label=OrganizationId cs5=default cn1Label=Sequence cn1=7\n"
            )
        );
        // A raw line break in a value never ends the line.
        let mut record = tricky();
        record.user = Some("a\nb\r".into());
        let line = cef(&record, None);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.contains("suser=a\\nb\\r "));
    }

    #[test]
    fn syslog_golden() {
        let line = syslog(&tricky(), "host one", None);
        let expected_prefix = concat!(
            "<109>1 2026-03-01T10:00:00.000Z hostone tracklog - Update|Weird\\Op ",
            "[tracklog@32473 Id=\"r-1\" Sequence=\"7\" Operation=\"Update|Weird\\\\Op\" Category=\"Update\" ",
            "User=\"Jörg \\\"J\\\" Müller=1\\]\" ClientIP=\"10.0.0.1\" EntityName=\"account\" ",
            "EntityId=\"a-1\" ResultStatus=\"Success\"] \u{feff}{"
        );
        assert!(line.starts_with(expected_prefix), "{line}");
        assert!(!line.contains('\n'));
        let json: Value = serde_json::from_str(line.split('\u{feff}').nth(1).unwrap()).unwrap();
        assert_eq!(json["Fields"]["note"], "line1\nline2");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let header = Format::Csv.header();
        assert!(header.starts_with("Id,OrganizationId,CreationTime,ClientIP"));
        let line = Format::Csv.line(&tricky(), "h", None);
        assert!(line.contains("\"Jörg \"\"J\"\" Müller=1]\""), "{line}");
        let whole = header + &line;
        let mut reader = csv::ReaderBuilder::new().from_reader(whole.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[8], "Jörg \"J\" Müller=1]");
        assert_eq!(&row[28], "7");
    }

    /// A record whose parts could not all be read says so in every format.
    #[test]
    fn damage_is_never_papered_over() {
        let damage = PartsIntegrity {
            total_parts: 4,
            missing_parts: vec![1, 3],
            digest_matches: false,
        };
        let text = "incomplete: 2 of 4 parts missing (index 1, 3)";
        assert_eq!(damage.to_string(), text);
        let record = tricky();
        let line = |format: Format| format.line(&record, "h", Some(&damage));
        let json: Value = serde_json::from_str(&line(Format::Jsonl)).unwrap();
        assert_eq!(json["integrity"]["missing_parts"], json!([1, 3]));
        let ocsf: Value = serde_json::from_str(&line(Format::Ocsf)).unwrap();
        assert_eq!(ocsf["unmapped"]["integrity"]["total_parts"], 4);
        assert!(line(Format::Cef).contains(&format!("cs6Label=Integrity cs6={text}")));
        assert!(line(Format::Syslog).contains(&format!("Integrity=\"{text}\"]")));
        let csv = Format::Csv.header() + &line(Format::Csv);
        let mut reader = csv::ReaderBuilder::new().from_reader(csv.as_bytes());
        assert_eq!(&reader.headers().unwrap()[29], "Integrity");
        assert_eq!(&reader.records().next().unwrap().unwrap()[29], text);
        // A whole record has none of it.
        assert!(!Format::Jsonl.line(&record, "h", None).contains("integrity"));
        assert!(!Format::Cef.line(&record, "h", None).contains("cs6"));
    }

    #[test]
    fn octet_counting_counts_bytes() {
        assert_eq!(octet_frame("<13>1 - ü"), "10 <13>1 - ü");
    }

    #[test]
    fn webhook_signature_is_rfc_4231_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            webhook_signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ocsf_is_api_activity() {
        let event = ocsf(&tricky());
        assert_eq!(event["class_uid"], 6003);
        assert_eq!(event["activity_id"], 3);
        assert_eq!(event["type_uid"], 600303);
        assert_eq!(event["actor"]["user"]["name"], "Jörg \"J\" Müller=1]");
        assert_eq!(event["time"], 1772359200000i64);
    }
}
