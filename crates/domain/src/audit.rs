//! The activity-log record (PRODUCT.md §5.1) and its category (§5.2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Office 365 audit user type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserType {
    Admin,
    Regular,
    System,
}

/// The category of an operation, from the prefix table of §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
