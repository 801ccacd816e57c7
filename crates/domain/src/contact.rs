//! Contacts (profiles) and support cases: the CRM records a journey hangs on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{CaseId, ContactId};
use crate::time::UtcMillis;

pub mod import;

/// A person known to the CRM, keyed by the CRM's contact id.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: ContactId,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Anything else the CRM knows, as it sent it.
    pub attributes: Map<String, Value>,
    pub updated_at: UtcMillis,
}

/// The longest name or email accepted, in characters.
pub const MAX_TEXT: usize = 320;
/// The largest serialised `attributes` object accepted, in bytes.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// Why a contact or case was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RecordError {
    pub field: String,
    pub message: String,
}

impl RecordError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The wire shape of a contact (PRODUCT.md §8).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub attributes: Option<Map<String, Value>>,
}

fn optional_text(field: &str, value: Option<String>) -> Result<Option<String>, RecordError> {
    match value {
        Some(text) if text.chars().count() > MAX_TEXT => Err(RecordError::new(
            field,
            format!("longer than {MAX_TEXT} characters"),
        )),
        Some(text) if text.chars().any(char::is_control) => {
            Err(RecordError::new(field, "contains a control character"))
        }
        Some(text) if text.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

impl Contact {
    /// Parses the wire shape, checking every field.
    pub fn from_input(input: ContactInput, now: UtcMillis) -> Result<Self, RecordError> {
        let id = ContactId::parse(input.id).map_err(|e| RecordError::new("id", e.to_string()))?;
        let attributes = input.attributes.unwrap_or_default();
        let size = serde_json::to_string(&attributes).map_or(0, |s| s.len());
        if size > MAX_ATTRIBUTES_BYTES {
            return Err(RecordError::new(
                "attributes",
                format!("{size} bytes, over the limit of {MAX_ATTRIBUTES_BYTES}"),
            ));
        }
        Ok(Self {
            id,
            name: optional_text("name", input.name)?,
            email: optional_text("email", input.email)?,
            attributes,
            updated_at: now,
        })
    }

    /// Parses one untrusted JSON value.
    pub fn from_json(value: Value, now: UtcMillis) -> Result<Self, RecordError> {
        let input: ContactInput = serde_json::from_value(value)
            .map_err(|e| RecordError::new("contact", e.to_string()))?;
        Self::from_input(input, now)
    }

    /// The wire shape.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "attributes": self.attributes,
            "updated_at": self.updated_at.to_rfc3339(),
        })
    }

    /// Folds a newer partial record into this one: fields the update leaves
    /// out keep their value, attributes merge key by key.
    pub fn merge(&mut self, update: Contact) {
        if update.name.is_some() {
            self.name = update.name;
        }
        if update.email.is_some() {
            self.email = update.email;
        }
        self.attributes.extend(update.attributes);
        self.updated_at = update.updated_at;
    }
}

/// The state of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Active,
    Resolved,
    Cancelled,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Active => "active",
            CaseStatus::Resolved => "resolved",
            CaseStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Resolved, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A support case of a contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: CaseId,
    pub contact_id: ContactId,
    pub title: String,
    pub created_at: UtcMillis,
    pub status: CaseStatus,
}

/// The wire shape of a case (PRODUCT.md §8).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseInput {
    pub id: String,
    pub contact_id: String,
    pub title: String,
    /// RFC 3339; the time of the request when left out.
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

impl Case {
    pub fn from_input(input: CaseInput, now: UtcMillis) -> Result<Self, RecordError> {
        let id = CaseId::parse(input.id).map_err(|e| RecordError::new("id", e.to_string()))?;
        let contact_id = ContactId::parse(input.contact_id)
            .map_err(|e| RecordError::new("contact_id", e.to_string()))?;
        let title = input.title.trim().to_owned();
        if title.is_empty() {
            return Err(RecordError::new("title", "must not be empty"));
        }
        if title.chars().count() > MAX_TEXT {
            return Err(RecordError::new(
                "title",
                format!("longer than {MAX_TEXT} characters"),
            ));
        }
        let created_at = match input.created_at {
            Some(text) => UtcMillis::parse_rfc3339(&text)
                .map_err(|e| RecordError::new("created_at", e.to_string()))?,
            None => now,
        };
        let status = match input.status.as_deref() {
            None => CaseStatus::Active,
            Some(text) => CaseStatus::parse(text).ok_or_else(|| {
                RecordError::new("status", "must be one of active, resolved, cancelled")
            })?,
        };
        Ok(Self {
            id,
            contact_id,
            title,
            created_at,
            status,
        })
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "contact_id": self.contact_id,
            "title": self.title,
            "created_at": self.created_at.to_rfc3339(),
            "status": self.status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: UtcMillis = UtcMillis::from_millis(1_700_000_000_000);

    #[test]
    fn contacts_parse_and_merge() {
        let mut contact = Contact::from_json(
            json!({"id": "c1", "name": "Ada", "attributes": {"tier": "gold"}}),
            NOW,
        )
        .unwrap();
        let update = Contact::from_json(
            json!({"id": "c1", "email": "ada@example.com", "attributes": {"city": "Oslo"}}),
            NOW,
        )
        .unwrap();
        contact.merge(update);
        assert_eq!(contact.name.as_deref(), Some("Ada"));
        assert_eq!(contact.email.as_deref(), Some("ada@example.com"));
        assert_eq!(contact.attributes.len(), 2);
    }

    #[test]
    fn bad_contacts_name_the_field() {
        let err = Contact::from_json(json!({"id": ""}), NOW).unwrap_err();
        assert_eq!(err.field, "id");
        let err = Contact::from_json(json!({"id": "c", "name": "x".repeat(400)}), NOW).unwrap_err();
        assert_eq!(err.field, "name");
        let err = Contact::from_json(json!({"id": "c", "nickname": "x"}), NOW).unwrap_err();
        assert_eq!(err.field, "contact");
    }

    #[test]
    fn cases_default_their_status_and_time() {
        let input: CaseInput =
            serde_json::from_value(json!({"id": "K1", "contact_id": "c1", "title": "Printer"}))
                .unwrap();
        let case = Case::from_input(input, NOW).unwrap();
        assert_eq!(case.created_at, NOW);
        assert_eq!(case.status, CaseStatus::Active);
        let input: CaseInput = serde_json::from_value(
            json!({"id": "K1", "contact_id": "c1", "title": "x", "status": "open"}),
        )
        .unwrap();
        assert_eq!(Case::from_input(input, NOW).unwrap_err().field, "status");
    }
}
