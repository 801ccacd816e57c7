//! The activity-log record (PRODUCT.md §5.1) and its category (§5.2).
//!
//! - [`settings`]: what is recorded (§5.3) and the decision that applies it.
//! - [`split`]: large records as parts, and their byte-exact reassembly (§5.4).
//! - [`chain`]: the per-org hash chain, signed checkpoints and the verifier (§5.6).
//! - [`columns`]: the searchable columns a stored record implies, for the
//!   verifier to recompute.
//! - [`format`]: export formats: CSV, JSON lines, CEF, RFC 5424 syslog, OCSF.
//! - [`reports`]: the nine preconfigured reports, as data (§5.5).

pub mod chain;
pub mod columns;
pub mod format;
pub mod reports;
pub mod settings;
pub mod split;
pub mod standalone;
mod stored;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ingest::{Reason, Rejection};
use crate::time::UtcMillis;

/// The Office 365 audit user type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserType {
    Admin,
    Regular,
    System,
}

/// The category of an operation, from the prefix table of §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Category {
    ReadMultiple,
    Read,
    Create,
    Update,
    Delete,
    Other,
}

impl Category {
    /// The category's name as stored and searched.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::ReadMultiple => "ReadMultiple",
            Category::Read => "Read",
            Category::Create => "Create",
            Category::Update => "Update",
            Category::Delete => "Delete",
            Category::Other => "Other",
        }
    }
}

impl std::str::FromStr for Category {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [
            Category::ReadMultiple,
            Category::Read,
            Category::Create,
            Category::Update,
            Category::Delete,
            Category::Other,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            format!(
                "{text:?} is not a category: ReadMultiple, Read, Create, Update, Delete or Other"
            )
        })
    }
}

impl UserType {
    /// The type's name as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Admin => "Admin",
            UserType::Regular => "Regular",
            UserType::System => "System",
        }
    }
}

/// The prefix table of §5.2.
const PREFIXES: [(&str, Category); 16] = [
    ("RetrieveMultiple", Category::ReadMultiple),
    ("ExportToExcel", Category::ReadMultiple),
    ("RollUp", Category::ReadMultiple),
    ("RetrieveEntitiesForAggregateQuery", Category::ReadMultiple),
    ("RetrieveRecordWall", Category::ReadMultiple),
    ("RetrievePersonalWall", Category::ReadMultiple),
    ("ExecuteFetch", Category::ReadMultiple),
    ("Retrieve", Category::Read),
    ("Search", Category::Read),
    ("Get", Category::Read),
    ("Export", Category::Read),
    ("Create", Category::Create),
    ("Update", Category::Update),
    ("Upsert", Category::Update),
    ("Delete", Category::Delete),
    ("", Category::Other),
];

/// Categorises an operation: the longest matching prefix wins, so
/// `RetrieveMultiple` is `ReadMultiple` while `Retrieve` is `Read`.
pub fn categorise(operation: &str) -> Category {
    PREFIXES
        .iter()
        .filter(|(prefix, _)| operation.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(Category::Other, |(_, category)| *category)
}

/// One activity-log record, with the field names of §5.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct AuditRecord {
    pub id: String,
    pub organization_id: String,
    pub creation_time: String,
    #[serde(rename = "ClientIP")]
    pub client_ip: Option<String>,
    pub correlation_id: Option<String>,
    pub operation: String,
    pub user_key: Option<String>,
    pub user_type: Option<UserType>,
    pub user: Option<String>,
    pub result_status: Option<String>,
    pub user_id: Option<String>,
    pub crm_organization_unique_name: Option<String>,
    pub instance_url: Option<String>,
    pub item_url: Option<String>,
    pub item_type: Option<String>,
    pub message: Option<String>,
    pub user_agent: Option<String>,
    pub entity_id: Option<String>,
    pub entity_name: Option<String>,
    pub fields: Option<Value>,
    pub query: Option<String>,
    pub query_results: Option<Vec<String>>,
    pub service_context_id: Option<String>,
    pub service_context_id_type: Option<String>,
    pub service_name: Option<String>,
    pub system_user_id: Option<String>,
    pub user_upn: Option<String>,
    /// Assigned by the server from `Operation`.
    pub category: Option<Category>,
    /// Assigned by the server: the record's place in its org's log.
    pub sequence: Option<i64>,
}

/// Longest `Id` and `Operation`, in characters.
pub const MAX_KEY_CHARS: usize = 256;

/// What the server fills in for a record that leaves it out: the reference
/// marks every field but the organisation optional, and an audit record is
/// better kept with a server-made `Id` or time than lost.
pub struct Receipt<'a> {
    /// `OrganizationId` when absent: the caller's org name.
    pub org_name: &'a str,
    /// `CreationTime` when absent: when the record arrived.
    pub received: UtcMillis,
    /// Makes an `Id` for a record without one. Such a record cannot be
    /// retried idempotently: each attempt gets a new `Id`.
    pub new_id: &'a (dyn Fn() -> String + Sync),
}

/// Turns one untrusted item into a record, or says why not. `Category` and
/// `Sequence` sent by a client are ignored: the server assigns them. A
/// missing `OrganizationId`, `Id` or `CreationTime` is filled in from
/// `receipt`; a missing `Operation` is empty and so of category `Other`.
pub fn decode_record(
    raw: &str,
    receipt: &Receipt<'_>,
    max_item_bytes: usize,
) -> Result<AuditRecord, Rejection> {
    let org_name = receipt.org_name;
    if raw.len() > max_item_bytes {
        return Err(Rejection::item(
            Reason::ItemTooLarge,
            format!("the item is over the limit max_item_bytes = {max_item_bytes}"),
        ));
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| Rejection::item(Reason::InvalidJson, e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(Rejection::item(
            Reason::NotAnObject,
            "an audit record must be a JSON object",
        ));
    };
    map.remove("Category");
    map.remove("Sequence");
    match map.get("OrganizationId") {
        Some(Value::String(text)) if !text.is_empty() => {}
        Some(Value::String(_)) | None | Some(Value::Null) => {
            map.insert("OrganizationId".into(), Value::String(org_name.to_owned()));
        }
        Some(_) => {
            return Err(Rejection::field(
                Reason::InvalidField,
                "OrganizationId",
                "OrganizationId must be a string",
            ));
        }
    }
    for name in ["Id", "CreationTime", "Operation"] {
        match map.get(name) {
            Some(Value::String(text)) if !text.trim().is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                // Made only when needed: this runs for every record.
                let value = match name {
                    "Id" => (receipt.new_id)(),
                    "CreationTime" => receipt.received.to_rfc3339(),
                    _ => String::new(),
                };
                map.insert(name.into(), Value::String(value));
            }
            Some(_) => {
                return Err(Rejection::field(
                    Reason::InvalidField,
                    name,
                    format!("{name} must be a string"),
                ));
            }
        }
    }
    // `QueryResults` may come as one comma-separated string, as in the
    // reference's examples.
    if let Some(Value::String(text)) = map.get("QueryResults") {
        let ids: Vec<Value> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_owned()))
            .collect();
        map.insert("QueryResults".into(), Value::Array(ids));
    }
    // `Fields` may come as the JSON text the reference describes.
    if let Some(Value::String(text)) = map.get("Fields")
        && let Ok(parsed @ (Value::Object(_) | Value::Array(_))) =
            serde_json::from_str::<Value>(text)
    {
        map.insert("Fields".into(), parsed);
    }
    let mut record: AuditRecord = serde_json::from_value(Value::Object(map)).map_err(|e| {
        let message = e.to_string();
        let field = FIELD_NAMES
            .iter()
            .find(|name| message.contains(&format!("`{name}`")))
            .map(|s| (*s).to_owned());
        Rejection {
            index: 0,
            id: None,
            reason: Reason::InvalidField,
            field,
            message,
        }
    })?;
    for (name, value) in [("Id", &record.id), ("Operation", &record.operation)] {
        if value.chars().count() > MAX_KEY_CHARS {
            return Err(Rejection::field(
                Reason::FieldTooLong,
                name,
                format!("{name} is longer than {MAX_KEY_CHARS} characters"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(Rejection::field(
                Reason::InvalidField,
                name,
                format!("{name} contains a control character"),
            ));
        }
    }
    let time = UtcMillis::parse_rfc3339(&record.creation_time).map_err(|_| {
        Rejection::field(
            Reason::InvalidField,
            "CreationTime",
            "CreationTime must be an RFC 3339 time",
        )
    })?;
    record.creation_time = time.to_rfc3339();
    record.category = Some(categorise(&record.operation));
    record.sequence = None;
    Ok(record)
}

/// Every wire name of §5.1, in the order exports list them.
pub const FIELD_NAMES: [&str; 29] = [
    "Id",
    "OrganizationId",
    "CreationTime",
    "ClientIP",
    "CorrelationId",
    "Operation",
    "UserKey",
    "UserType",
    "User",
    "ResultStatus",
    "UserId",
    "CrmOrganizationUniqueName",
    "InstanceUrl",
    "ItemUrl",
    "ItemType",
    "Message",
    "UserAgent",
    "EntityId",
    "EntityName",
    "Fields",
    "Query",
    "QueryResults",
    "ServiceContextId",
    "ServiceContextIdType",
    "ServiceName",
    "SystemUserId",
    "UserUpn",
    "Category",
    "Sequence",
];

impl AuditRecord {
    /// The record as stored, hashed into the chain and measured against the
    /// split threshold (§5.4): its JSON without the fields it does not have,
    /// so that a record's size is what it says rather than 29 keys' worth
    /// of `null`. Reads give the absent fields back as `null`.
    pub fn stored_json(&self) -> Vec<u8> {
        self.stored_value(None)
    }

    /// [`AuditRecord::stored_json`] with the time it was stored, in
    /// milliseconds, under [`columns::STORED_AT_KEY`]: the bytes the store
    /// keeps and the chain hashes, so that the time retention purges by is
    /// covered by the chain too. Reads drop the key.
    pub fn stored_json_at(&self, stored_at: i64) -> Vec<u8> {
        self.stored_value(Some(stored_at))
    }

    fn stored_value(&self, stored_at: Option<i64>) -> Vec<u8> {
        stored::to_vec(self, stored_at)
    }

    /// The text free-text search covers: `Fields` and `Query`.
    pub fn search_text(&self) -> String {
        let mut text = String::new();
        if let Some(fields) = &self.fields {
            collect_text(fields, &mut text);
        }
        if let Some(query) = &self.query {
            text.push_str(query);
        }
        text
    }

    /// The record's creation time in milliseconds (it was checked on the way in).
    pub fn creation_millis(&self) -> i64 {
        UtcMillis::parse_rfc3339(&self.creation_time)
            .map(UtcMillis::as_millis)
            .unwrap_or(0)
    }
}

/// The text free-text search covers, from a record's stored bytes: what
/// [`AuditRecord::search_text`] gives for the record they hold, without
/// reading the other fields. Bytes that are not a JSON object give no text.
pub fn search_text_of_stored(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Searched {
        #[serde(rename = "Fields")]
        fields: Option<Value>,
        #[serde(rename = "Query")]
        query: Option<String>,
    }
    match serde_json::from_slice::<Searched>(bytes) {
        Ok(found) => AuditRecord {
            fields: found.fields,
            query: found.query,
            ..AuditRecord::default()
        }
        .search_text(),
        Err(_) => String::new(),
    }
}

/// Keys and values of a JSON value as plain words, so that `name:Ana` in
/// `Fields` is found by searching for either.
fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                out.push_str(key);
                out.push(' ');
                collect_text(value, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::String(text) => {
            out.push_str(text);
            out.push(' ');
        }
        Value::Null => {}
        other => {
            out.push_str(&other.to_string());
            out.push(' ');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated() -> String {
        "generated".to_owned()
    }

    fn receipt(org_name: &str) -> Receipt<'_> {
        Receipt {
            org_name,
            received: UtcMillis::parse_rfc3339("2026-03-02T00:00:00Z").unwrap(),
            new_id: &generated,
        }
    }

    #[test]
    fn decodes_and_refuses_with_the_field() {
        let ok = decode_record(
            r#"{"Id":"1","CreationTime":"2026-03-01T10:00:00+01:00","Operation":"RetrieveMultiple",
                "Category":"Delete","Sequence":99,"QueryResults":"a, b","UserType":"Admin"}"#,
            &receipt("default"),
            10_000,
        )
        .unwrap();
        assert_eq!(ok.category, Some(Category::ReadMultiple));
        assert_eq!(ok.sequence, None);
        assert_eq!(ok.creation_time, "2026-03-01T09:00:00.000Z");
        assert_eq!(ok.organization_id, "default");
        assert_eq!(ok.query_results, Some(vec!["a".into(), "b".into()]));

        // Only the organisation is mandatory in the reference: the rest is
        // filled in rather than the record lost.
        let bare = decode_record(r#"{"User":"ana"}"#, &receipt("o"), 10_000).unwrap();
        assert_eq!(bare.id, "generated");
        assert_eq!(bare.creation_time, "2026-03-02T00:00:00.000Z");
        assert_eq!(bare.operation, "");
        assert_eq!(bare.category, Some(Category::Other));
        let blank = decode_record(
            r#"{"Id":" ","CreationTime":null,"Operation":""}"#,
            &receipt("o"),
            10_000,
        )
        .unwrap();
        assert_eq!(
            (blank.id.as_str(), blank.category),
            ("generated", Some(Category::Other))
        );
        let number = decode_record(r#"{"Id":7}"#, &receipt("o"), 10_000).unwrap_err();
        assert_eq!(number.field.as_deref(), Some("Id"));

        let bad = decode_record(
            r#"{"Id":"1","CreationTime":"2026-03-01T10:00:00Z","Operation":"Create","UserType":"Boss"}"#,
            &receipt("o"),
            10_000,
        )
        .unwrap_err();
        assert_eq!(bad.reason, Reason::InvalidField);

        let time = decode_record(
            r#"{"Id":"1","CreationTime":"yesterday","Operation":"Create"}"#,
            &receipt("o"),
            10_000,
        )
        .unwrap_err();
        assert_eq!(time.field.as_deref(), Some("CreationTime"));
        assert_eq!(
            decode_record("[]", &receipt("o"), 10).unwrap_err().reason,
            Reason::NotAnObject
        );
    }

    proptest::proptest! {
        /// Any JSON value either decodes or is refused with a reason; and a
        /// record that decodes has the server's category and no sequence.
        #[test]
        fn decoding_never_panics(
            id in proptest::option::of("\\PC{0,300}"),
            time in proptest::option::of(proptest::prop_oneof![
                proptest::strategy::Just("2026-03-01T10:00:00Z".to_owned()),
                "\\PC{0,30}",
            ]),
            operation in proptest::option::of("[A-Za-z]{0,20}"),
            user_type in proptest::option::of("[A-Za-z]{0,8}"),
            extra in proptest::collection::btree_map("[A-Za-z]{1,12}", "\\PC{0,20}", 0..4),
        ) {
            let mut map = serde_json::Map::new();
            for (key, value) in extra {
                map.insert(key, Value::String(value));
            }
            if let Some(id) = id { map.insert("Id".into(), Value::String(id)); }
            if let Some(time) = time { map.insert("CreationTime".into(), Value::String(time)); }
            if let Some(op) = operation { map.insert("Operation".into(), Value::String(op)); }
            if let Some(t) = user_type { map.insert("UserType".into(), Value::String(t)); }
            let raw = Value::Object(map).to_string();
            if let Ok(record) = decode_record(&raw, &receipt("default"), 64 * 1024) {
                proptest::prop_assert_eq!(record.category, Some(categorise(&record.operation)));
                proptest::prop_assert_eq!(record.sequence, None);
                proptest::prop_assert!(UtcMillis::parse_rfc3339(&record.creation_time).is_ok());
            }
        }
    }

    #[test]
    fn search_text_from_stored_bytes_is_the_records() {
        let record = AuditRecord {
            id: "x".into(),
            fields: Some(serde_json::json!({"b": [1, true, null], "a": {"k": "v w"}})),
            query: Some("q".into()),
            ..AuditRecord::default()
        };
        let bytes = record.stored_json_at(1);
        assert_eq!(search_text_of_stored(&bytes), record.search_text());
        assert_eq!(search_text_of_stored(b"{not json"), "");
    }

    #[test]
    fn search_text_covers_fields_and_query() {
        let record = AuditRecord {
            fields: Some(serde_json::json!({"name": {"old": "Ana", "new": "Bea"}, "n": 3})),
            query: Some("<filter/>".into()),
            ..AuditRecord::default()
        };
        let text = record.search_text();
        for word in ["name", "Ana", "Bea", "3", "<filter/>"] {
            assert!(text.contains(word), "{text}");
        }
    }

    #[test]
    fn prefix_table() {
        let cases = [
            ("RetrieveMultiple", Category::ReadMultiple),
            ("RetrieveMultipleRequest", Category::ReadMultiple),
            ("Retrieve", Category::Read),
            ("RetrieveRecordWall", Category::ReadMultiple),
            ("RetrieveAttribute", Category::Read),
            ("ExportToExcel", Category::ReadMultiple),
            ("ExportToWord", Category::Read),
            ("ExecuteFetch", Category::ReadMultiple),
            ("Execute", Category::Other),
            ("RollUp", Category::ReadMultiple),
            ("SearchByKeywords", Category::Read),
            ("GetQuantityDecimal", Category::Read),
            ("Create", Category::Create),
            ("Update", Category::Update),
            ("Upsert", Category::Update),
            ("Delete", Category::Delete),
            ("Assign", Category::Other),
            ("retrieve", Category::Other),
            ("", Category::Other),
        ];
        for (operation, expected) in cases {
            assert_eq!(categorise(operation), expected, "{operation}");
        }
    }

    #[test]
    fn wire_names_are_pascal_case() {
        let record = AuditRecord {
            client_ip: Some("10.0.0.1".into()),
            operation: "Create".into(),
            ..AuditRecord::default()
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["ClientIP"], "10.0.0.1");
        assert_eq!(json["Operation"], "Create");
        assert!(json.get("CrmOrganizationUniqueName").is_some());
    }
}
