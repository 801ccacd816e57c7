//! The ingestion edge: request bodies split into items, per-item outcomes and
//! the reasons an item is refused.
//!
//! A body is one JSON object, a JSON array of objects, or NDJSON. Each item is
//! decoded on its own, so one bad item is refused with a reason while the rest
//! of the batch goes on.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Limits applied to every ingestion request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, after decompression, in bytes.
    pub max_body_bytes: usize,
    /// Most items in one request.
    pub max_batch_items: usize,
    /// Longest string field, in bytes.
    pub max_field_bytes: usize,
    /// Largest single item, in bytes of JSON.
    pub max_item_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_batch_items: 10_000,
            max_field_bytes: 8 * 1024,
            max_item_bytes: 64 * 1024,
        }
    }
}

/// Why a whole request body was refused before any item was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not JSON: {0}")]
    InvalidJson(String),
    #[error("the body must be a JSON object, an array of objects, or NDJSON")]
    WrongShape,
    #[error("the batch has {items} items, over the limit max_batch_items = {limit}")]
    TooManyItems { items: usize, limit: usize },
    #[error("the body is empty")]
    Empty,
}

/// One item of a batch, not yet decoded: either its raw JSON or the reason it
/// could not even be cut out of the body (a bad NDJSON line).
#[derive(Debug)]
pub enum RawItem<'a> {
    Json(&'a RawValue),
    Unparsable(String),
}

/// Splits a body into items. `ndjson` is true when the content type says so;
/// otherwise the first non-blank byte decides between object and array.
pub fn split_items<'a>(
    body: &'a [u8],
    ndjson: bool,
    limits: &Limits,
) -> Result<Vec<RawItem<'a>>, BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| BodyError::InvalidJson(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(BodyError::Empty);
    }
    let items = if ndjson {
        split_ndjson(text)
    } else {
        match trimmed.as_bytes()[0] {
            b'[' => serde_json::from_str::<Vec<&RawValue>>(text)
                .map_err(|e| BodyError::InvalidJson(e.to_string()))?
                .into_iter()
                .map(RawItem::Json)
                .collect(),
            b'{' => match serde_json::from_str::<&RawValue>(text) {
                Ok(one) => vec![RawItem::Json(one)],
                // `{..}\n{..}` sent without the NDJSON content type.
                Err(_) if text.trim().contains('\n') => split_ndjson(text),
                Err(e) => return Err(BodyError::InvalidJson(e.to_string())),
            },
            _ => return Err(BodyError::WrongShape),
        }
    };
    if items.len() > limits.max_batch_items {
        return Err(BodyError::TooManyItems {
            items: items.len(),
            limit: limits.max_batch_items,
        });
    }
    Ok(items)
}

fn split_ndjson(text: &str) -> Vec<RawItem<'_>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| match serde_json::from_str::<&RawValue>(line) {
            Ok(raw) => RawItem::Json(raw),
            Err(e) => RawItem::Unparsable(e.to_string()),
        })
        .collect()
}

/// Why one item was refused. The code is stable: integrators match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    InvalidJson,
    NotAnObject,
    MissingField,
    InvalidField,
    FieldTooLong,
    ItemTooLarge,
    UnknownInteractionType,
    InteractionTypeNotCaptured,
    PortalOutOfScope,
    PortalNotCaptured,
    /// A KPI event whose name has no definition.
    UnknownKpiEvent,
    /// A KPI event whose custom definition is disabled or deleted.
    KpiEventNotCaptured,
    /// The provider's `enable_analytics` is false.
    AnalyticsDisabled,
    /// A provider-scoped credential writing for another provider.
    ProviderOutOfScope,
}

impl Reason {
    /// The reason code as sent to clients and used as a metric label.
    pub fn code(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingField => "missing_field",
            Reason::InvalidField => "invalid_field",
            Reason::FieldTooLong => "field_too_long",
            Reason::ItemTooLarge => "item_too_large",
            Reason::UnknownInteractionType => "unknown_interaction_type",
            Reason::InteractionTypeNotCaptured => "interaction_type_not_captured",
            Reason::PortalOutOfScope => "portal_out_of_scope",
            Reason::PortalNotCaptured => "portal_not_captured",
            Reason::UnknownKpiEvent => "unknown_kpi_event",
            Reason::KpiEventNotCaptured => "kpi_event_not_captured",
            Reason::AnalyticsDisabled => "analytics_disabled",
            Reason::ProviderOutOfScope => "provider_out_of_scope",
        }
    }

    /// Every reason, for pre-registering metric labels and documenting them.
    pub const ALL: [Reason; 14] = [
        Reason::InvalidJson,
        Reason::NotAnObject,
        Reason::MissingField,
        Reason::InvalidField,
        Reason::FieldTooLong,
        Reason::ItemTooLarge,
        Reason::UnknownInteractionType,
        Reason::InteractionTypeNotCaptured,
        Reason::PortalOutOfScope,
        Reason::PortalNotCaptured,
        Reason::UnknownKpiEvent,
        Reason::KpiEventNotCaptured,
        Reason::AnalyticsDisabled,
        Reason::ProviderOutOfScope,
    ];
}

/// A refused item: its place in the batch, its id when one could be read, the
/// reason, and for field problems the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rejection {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Rejection {
    /// A rejection about one field.
    pub fn field(reason: Reason, field: &str, message: impl Into<String>) -> Self {
        Self {
            index: 0,
            id: None,
            reason,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// A rejection about the item as a whole.
    pub fn item(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            index: 0,
            id: None,
            reason,
            field: None,
            message: message.into(),
        }
    }

    /// Places the rejection in its batch.
    pub fn at(mut self, index: usize, id: Option<String>) -> Self {
        self.index = index;
        if self.id.is_none() {
            self.id = id;
        }
        self
    }
}

/// The reply to an ingestion request: every item ends in exactly one outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestReport {
    /// Items now durable, counting retries of items already stored.
    pub accepted: usize,
    /// Of the accepted, how many were already stored (idempotent retries).
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

/// How far a write must go before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Flushed to stable storage (fsync) before the reply: survives power loss.
    #[default]
    Fsync,
    /// Handed to the operating system before the reply: survives a crash of
    /// Tracklog (kill -9), not a power cut.
    Os,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(body: &str, ndjson: bool) -> Result<usize, BodyError> {
        split_items(body.as_bytes(), ndjson, &Limits::default()).map(|v| v.len())
    }

    #[test]
    fn object_array_and_ndjson() {
        assert_eq!(count(r#"{"a":1}"#, false), Ok(1));
        assert_eq!(count(r#" [{"a":1},{"b":2}] "#, false), Ok(2));
        assert_eq!(count("{\"a\":1}\n\n{\"b\":2}\n", true), Ok(2));
        assert_eq!(count("{\"a\":1}\n{\"b\":2}", false), Ok(2));
        assert_eq!(count("[]", false), Ok(0));
    }

    #[test]
    fn bad_ndjson_lines_become_items_not_failures() {
        let items =
            split_items(b"{\"a\":1}\nnot json\n{\"b\":2}", true, &Limits::default()).unwrap();
        assert!(matches!(items[1], RawItem::Unparsable(_)));
        assert!(matches!(items[2], RawItem::Json(_)));
    }

    #[test]
    fn body_level_errors() {
        assert_eq!(count("", false), Err(BodyError::Empty));
        assert_eq!(count("42", false), Err(BodyError::WrongShape));
        assert!(matches!(count("[{", false), Err(BodyError::InvalidJson(_))));
        let limits = Limits {
            max_batch_items: 2,
            ..Limits::default()
        };
        assert_eq!(
            split_items(b"[{},{},{}]", false, &limits).map(|v| v.len()),
            Err(BodyError::TooManyItems { items: 3, limit: 2 })
        );
    }
}
