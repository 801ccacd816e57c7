//! The wire and load formats of the dataset's events.
//!
//! Tracklog receives the §4.1 JSON shape over its API; ClickHouse receives
//! `JSONEachRow` rows; PostgreSQL receives `COPY` text. All three carry the
//! same values, and the type-specific fields travel as the same JSON text
//! that Tracklog stores, so the stores hold equivalent data.

use std::fmt::Write as _;

use serde::Serialize;
use tracklog_domain::interaction::Builtin;

use crate::workload::{Dataset, Event};

/// The org every bench event belongs to, in the peers' tables.
pub const PEER_ORG: i64 = 1;

/// The type-specific fields, in the key order Tracklog stores them (sorted),
/// so the peers' `fields` text is byte-for-byte what Tracklog keeps.
#[derive(Serialize)]
#[serde(untagged)]
enum TypeFields<'a> {
    Article {
        language: &'a str,
        portal_knowledgearticleid: String,
        portal_knowledgetitle: String,
    },
    BlogPost {
        portal_blogpostid: String,
        portal_blogtitle: String,
    },
    ForumThread {
        portal_forumthreadid: String,
        portal_forumthreadtitle: String,
    },
    Search {
        portal_searchstring: String,
    },
}

fn type_fields(event: &Event) -> TypeFields<'static> {
    let item = event.item;
    match event.kind {
        Builtin::ViewKnowledgeArticle => TypeFields::Article {
            language: Dataset::language(event),
            portal_knowledgearticleid: Dataset::item_id(event.kind, item),
            portal_knowledgetitle: Dataset::title(event.kind, item),
        },
        Builtin::ViewBlogPost => TypeFields::BlogPost {
            portal_blogpostid: Dataset::item_id(event.kind, item),
            portal_blogtitle: Dataset::title(event.kind, item),
        },
        Builtin::ViewForumThread => TypeFields::ForumThread {
            portal_forumthreadid: Dataset::item_id(event.kind, item),
            portal_forumthreadtitle: Dataset::title(event.kind, item),
        },
        Builtin::Search => TypeFields::Search {
            portal_searchstring: Dataset::search_phrase(item),
        },
    }
}

/// One item of `POST /api/v1/interactions`.
#[derive(Serialize)]
struct ApiItem<'a> {
    portal_interactionid: String,
    #[serde(rename = "type")]
    interaction_type: &'static str,
    portal_contactid: Option<&'a str>,
    portal_timestamp: String,
    portal_portalid: &'static str,
    session_id: String,
    #[serde(flatten)]
    fields: TypeFields<'static>,
}

/// One `JSONEachRow` row of the ClickHouse table.
#[derive(Serialize)]
struct ClickHouseRow<'a> {
    org: i64,
    contact: &'a str,
    ts: i64,
    id: String,
    #[serde(rename = "type")]
    interaction_type: &'static str,
    portal: &'static str,
    session: String,
    fields: String,
}

/// Every event's API JSON, rendered once so that the ingest clients only
/// copy bytes while they are being timed.
pub struct Payloads {
    text: String,
    ends: Vec<usize>,
}

impl Payloads {
    pub fn render(dataset: &Dataset) -> Self {
        let mut text = String::with_capacity(dataset.events.len() * 360);
        let mut ends = Vec::with_capacity(dataset.events.len());
        for event in &dataset.events {
            text.push_str(&api_json(dataset, event));
            ends.push(text.len());
        }
        Self { text, ends }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The JSON of one event.
    pub fn item(&self, index: usize) -> &str {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.text[start..self.ends[index]]
    }

    /// A JSON array of the events in `range`.
    pub fn array(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        let start = if range.start == 0 {
            0
        } else {
            self.ends[range.start - 1]
        };
        let end = self.ends[range.end - 1];
        let mut body = Vec::with_capacity(end - start + range.len() + 2);
        body.push(b'[');
        for index in range {
            if body.len() > 1 {
                body.push(b',');
            }
            body.extend_from_slice(self.item(index).as_bytes());
        }
        body.push(b']');
        body
    }

    /// Average bytes of one event's JSON.
    pub fn average_bytes(&self) -> f64 {
        self.text.len() as f64 / self.len().max(1) as f64
    }
}

/// The §4.1 JSON of one event.
pub fn api_json(dataset: &Dataset, event: &Event) -> String {
    let item = ApiItem {
        portal_interactionid: dataset.interaction_id(event),
        interaction_type: event.kind.name(),
        portal_contactid: dataset.contact_id(event),
        portal_timestamp: Dataset::timestamp(event),
        portal_portalid: Dataset::portal(event),
        session_id: dataset.session_id(event),
        fields: type_fields(event),
    };
    serde_json::to_string(&item).expect("plain structs serialise")
}

/// The type-specific fields as stored JSON text.
pub fn fields_json(event: &Event) -> String {
    serde_json::to_string(&type_fields(event)).expect("plain structs serialise")
}

/// Appends one `JSONEachRow` line. Anonymous events get an empty contact,
/// since a sort-key column cannot be Nullable in ClickHouse 18.
pub fn push_clickhouse_row(out: &mut Vec<u8>, dataset: &Dataset, event: &Event) {
    let row = ClickHouseRow {
        org: PEER_ORG,
        contact: dataset.contact_id(event).unwrap_or(""),
        ts: event.timestamp_ms,
        id: dataset.interaction_id(event),
        interaction_type: event.kind.name(),
        portal: Dataset::portal(event),
        session: dataset.session_id(event),
        fields: fields_json(event),
    };
    serde_json::to_writer(&mut *out, &row).expect("plain structs serialise");
    out.push(b'\n');
}

/// Appends one line of PostgreSQL `COPY` text format, columns in the order
/// of [`crate::peers::postgres::COPY_COLUMNS`].
pub fn push_copy_line(out: &mut String, dataset: &Dataset, event: &Event) {
    let contact = dataset
        .contact_id(event)
        .map_or_else(|| "\\N".to_owned(), copy_escape);
    let _ = writeln!(
        out,
        "{PEER_ORG}\t{}\t{}\t{}\t{contact}\t{}\t{}\t{}",
        dataset.interaction_id(event),
        event.kind.name(),
        Dataset::portal(event),
        dataset.session_id(event),
        event.timestamp_ms,
        copy_escape(&fields_json(event)),
    );
}

/// Escapes the characters that COPY's text format treats specially.
pub(crate) fn copy_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '\t' => escaped.push_str("\\t"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{PortalWorkload, Workload};
    use tracklog_domain::ingest::Limits;
    use tracklog_domain::interaction::{Builtins, DecodeContext, decode_batch};

    #[test]
    fn every_payload_decodes_and_stores_the_same_fields_text() {
        let dataset = PortalWorkload.generate(2_000, 3);
        let payloads = Payloads::render(&dataset);
        let limits = Limits::default();
        let ctx = DecodeContext {
            limits: &limits,
            portal_scope: None,
            catalogue: &Builtins,
        };
        let batch = decode_batch(&payloads.array(0..payloads.len()), false, &ctx).unwrap();
        assert!(batch.rejected.is_empty(), "{:?}", batch.rejected.first());
        for (decoded, event) in batch.interactions.iter().zip(&dataset.events) {
            let stored = serde_json::to_string(&decoded.fields).unwrap();
            assert_eq!(stored, fields_json(event));
        }
    }

    #[test]
    fn copy_text_escapes_specials() {
        assert_eq!(copy_escape("a\tb\\c\nd"), "a\\tb\\\\c\\nd");
    }
}
