//! What search, reports and export read beside the chained record: its
//! searchable columns, derived from the record's stored bytes alone.
//!
//! The store writes these columns from [`SearchColumns::of`] and the
//! verifier recomputes them from the hashed bytes and compares, so that
//! editing a column (say `user_name`, to hide a record from a search by
//! user) is found even though the record itself is untouched. The time the
//! record was stored, which retention purges by, travels inside the stored
//! bytes under [`STORED_AT_KEY`] for the same reason.

use serde::Deserialize;

use super::{AuditRecord, Category};

/// The key of the stored time in a record's stored bytes. Reads parse the
/// bytes into [`AuditRecord`], which has no such field, so search and the
/// API never show it; JSON-lines exports carry it, so that the chained
/// bytes can be rebuilt from an export alone.
pub const STORED_AT_KEY: &str = "TracklogStoredAt";

/// The stored time in a record's stored bytes, if they hold one.
pub fn stored_at(bytes: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct StoredAt {
        #[serde(rename = "TracklogStoredAt")]
        at: Option<i64>,
    }
    serde_json::from_slice::<StoredAt>(bytes).ok()?.at
}

/// The columns of one stored record that queries read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchColumns {
    pub id: String,
    pub creation_time: i64,
    pub operation: String,
    pub category: String,
    pub user: Option<String>,
    pub entity_name: Option<String>,
    pub entity_id: Option<String>,
    pub result_status: Option<String>,
    pub client_ip: Option<String>,
    pub service_name: Option<String>,
    pub correlation_id: Option<String>,
    /// When the record was stored; `None` for records stored before this
    /// was kept in the bytes, whose column cannot be checked.
    pub stored_at: Option<i64>,
}

/// The fields of a record's stored bytes that columns are made of; the
/// rest (`Fields` above all) is skipped unread, which makes the verifier's
/// pass over every record several times cheaper than parsing whole records.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Columned {
    id: String,
    creation_time: String,
    operation: String,
    category: Option<Category>,
    user: Option<String>,
    entity_name: Option<String>,
    entity_id: Option<String>,
    result_status: Option<String>,
    #[serde(rename = "ClientIP")]
    client_ip: Option<String>,
    service_name: Option<String>,
    correlation_id: Option<String>,
    #[serde(rename = "TracklogStoredAt")]
    stored_at: Option<i64>,
}

impl SearchColumns {
    /// The columns of `record` as stored at `stored_at`.
    pub fn of(record: &AuditRecord, stored_at: Option<i64>) -> Self {
        Self {
            id: record.id.clone(),
            creation_time: record.creation_millis(),
            operation: record.operation.clone(),
            category: record
                .category
                .unwrap_or(Category::Other)
                .as_str()
                .to_owned(),
            user: record.user.clone(),
            entity_name: record.entity_name.clone(),
            entity_id: record.entity_id.clone(),
            result_status: record.result_status.clone(),
            client_ip: record.client_ip.clone(),
            service_name: record.service_name.clone(),
            correlation_id: record.correlation_id.clone(),
            stored_at,
        }
    }

    /// The columns the stored bytes of a record imply, or why the bytes
    /// are not a record.
    pub fn from_stored(bytes: &[u8]) -> Result<Self, String> {
        let found: Columned = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let record = AuditRecord {
            id: found.id,
            creation_time: found.creation_time,
            operation: found.operation,
            category: found.category,
            user: found.user,
            entity_name: found.entity_name,
            entity_id: found.entity_id,
            result_status: found.result_status,
            client_ip: found.client_ip,
            service_name: found.service_name,
            correlation_id: found.correlation_id,
            ..AuditRecord::default()
        };
        Ok(Self::of(&record, found.stored_at))
    }

    /// The first column of `stored` that differs from `self`, the columns
    /// the record implies. `stored_at` is compared only when the record
    /// carries it.
    pub fn first_difference(&self, stored: &SearchColumns) -> Option<ColumnMismatch> {
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".into());
        let pairs: [(&'static str, String, String); 11] = [
            ("id", self.id.clone(), stored.id.clone()),
            (
                "creation_time",
                self.creation_time.to_string(),
                stored.creation_time.to_string(),
            ),
            (
                "operation",
                self.operation.clone(),
                stored.operation.clone(),
            ),
            ("category", self.category.clone(), stored.category.clone()),
            ("user_name", text(&self.user), text(&stored.user)),
            (
                "entity_name",
                text(&self.entity_name),
                text(&stored.entity_name),
            ),
            ("entity_id", text(&self.entity_id), text(&stored.entity_id)),
            (
                "result_status",
                text(&self.result_status),
                text(&stored.result_status),
            ),
            ("client_ip", text(&self.client_ip), text(&stored.client_ip)),
            (
                "service_name",
                text(&self.service_name),
                text(&stored.service_name),
            ),
            (
                "correlation_id",
                text(&self.correlation_id),
                text(&stored.correlation_id),
            ),
        ];
        let found = pairs
            .into_iter()
            .find(|(_, expected, found)| expected != found)
            .map(|(column, expected, found)| ColumnMismatch {
                column,
                expected,
                found,
            });
        found.or_else(|| match (self.stored_at, stored.stored_at) {
            (Some(expected), Some(found)) if expected != found => Some(ColumnMismatch {
                column: "stored_at",
                expected: expected.to_string(),
                found: found.to_string(),
            }),
            _ => None,
        })
    }
}

/// A column whose stored value is not what the chained record implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMismatch {
    pub column: &'static str,
    /// What the record implies.
    pub expected: String,
    /// What the column holds.
    pub found: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            id: "r-1".into(),
            organization_id: "default".into(),
            creation_time: "2026-11-20T10:00:00.000Z".into(),
            operation: "Retrieve".into(),
            user: Some("cross@x".into()),
            entity_name: Some("account".into()),
            category: Some(Category::Read),
            sequence: Some(7),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn stored_bytes_give_back_the_columns_they_were_written_with() {
        let record = record();
        let bytes = record.stored_json_at(1_700_000_000_000);
        let columns = SearchColumns::from_stored(&bytes).unwrap();
        assert_eq!(columns, SearchColumns::of(&record, Some(1_700_000_000_000)));
        // The stored time never reaches a reader.
        let read: AuditRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(read, record);
    }

    #[test]
    fn every_edited_column_is_named() {
        let expected = SearchColumns::of(&record(), Some(5));
        assert_eq!(expected.first_difference(&expected.clone()), None);
        let mut edited = expected.clone();
        edited.user = Some("someone@else".into());
        let found = expected.first_difference(&edited).unwrap();
        assert_eq!(
            (found.column, found.expected.as_str(), found.found.as_str()),
            ("user_name", "cross@x", "someone@else")
        );
        let mut edited = expected.clone();
        edited.entity_id = Some("x".into());
        assert_eq!(
            expected.first_difference(&edited).unwrap().column,
            "entity_id"
        );
        let mut edited = expected.clone();
        edited.stored_at = Some(1);
        assert_eq!(
            expected.first_difference(&edited).unwrap().column,
            "stored_at"
        );
        // A record stored before the time was kept in its bytes.
        let legacy = SearchColumns::of(&record(), None);
        assert_eq!(legacy.first_difference(&edited), None);
    }
}
