//! The wire and load formats of the dataset's events.
//!
//! Tracklog receives the §4.1 JSON shape over its API; ClickHouse receives
//! `JSONEachRow` rows; PostgreSQL receives `COPY` text. All three carry the
//! same values, and the type-specific fields travel as the same JSON text
//! that Tracklog stores, so the stores hold equivalent data.

use std::fmt::Write as _;
use std::sync::Arc;

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

/// Above this many events, a batch's JSON is rendered when it is sent
/// instead of once for the whole dataset (about 360 bytes an event would
/// not fit in memory at 100 M events).
pub const PRERENDER_MAX_EVENTS: usize = 20_000_000;

/// The events' API JSON as the ingest clients send it. Up to a size, every
/// event is rendered once, so that the clients only copy bytes while they
/// are being timed; above it, each batch is rendered from the compact
/// events when a client takes it, and nothing per event is kept.
pub struct Payloads {
    dataset: Arc<Dataset>,
    /// `None` when batches are rendered on the fly.
    rendered: Option<Rendered>,
}

/// Events' JSON, back to back, and where each ends.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    text: String,
    ends: Vec<usize>,
}

impl Rendered {
    fn of(dataset: &Dataset, events: &[Event]) -> Self {
        let mut text = String::with_capacity(events.len() * 360);
        let mut ends = Vec::with_capacity(events.len());
        for event in events {
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

    /// Average bytes of one event's JSON.
    pub fn average_bytes(&self) -> f64 {
        self.text.len() as f64 / self.len().max(1) as f64
    }
}

impl Payloads {
    /// Pre-renders every event unless there are more than
    /// `prerender_max_events`.
    pub fn new(dataset: Arc<Dataset>, prerender_max_events: usize) -> Self {
        let rendered = (dataset.events.len() <= prerender_max_events)
            .then(|| Rendered::of(&dataset, &dataset.events));
        Self { dataset, rendered }
    }

    /// Every event pre-rendered, whatever the size.
    pub fn render(dataset: Arc<Dataset>) -> Self {
        Self::new(dataset, usize::MAX)
    }

    /// Whether batches are rendered when they are sent.
    pub fn on_the_fly(&self) -> bool {
        self.rendered.is_none()
    }

    pub fn len(&self) -> usize {
        self.dataset.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dataset.events.is_empty()
    }

    /// The JSON of the first `n` events (or of every event, when they are
    /// pre-rendered): what the parse probe reads.
    pub fn sample(&self, n: usize) -> std::borrow::Cow<'_, Rendered> {
        match &self.rendered {
            Some(rendered) => std::borrow::Cow::Borrowed(rendered),
            None => {
                let events = &self.dataset.events[..n.min(self.len())];
                std::borrow::Cow::Owned(Rendered::of(&self.dataset, events))
            }
        }
    }

    /// A JSON array of the events in `range`.
    pub fn array(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        let Some(rendered) = &self.rendered else {
            let events = &self.dataset.events[range];
            let mut body = Vec::with_capacity(events.len() * 380 + 2);
            body.push(b'[');
            for event in events {
                if body.len() > 1 {
                    body.push(b',');
                }
                push_api_json(&mut body, &self.dataset, event);
            }
            body.push(b']');
            return body;
        };
        let start = if range.start == 0 {
            0
        } else {
            rendered.ends[range.start - 1]
        };
        let end = rendered.ends[range.end - 1];
        let mut body = Vec::with_capacity(end - start + range.len() + 2);
        body.push(b'[');
        for index in range {
            if body.len() > 1 {
                body.push(b',');
            }
            body.extend_from_slice(rendered.item(index).as_bytes());
        }
        body.push(b']');
        body
    }
}

/// The §4.1 JSON of one event.
pub fn api_json(dataset: &Dataset, event: &Event) -> String {
    let mut out = Vec::with_capacity(380);
    push_api_json(&mut out, dataset, event);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Appends the §4.1 JSON of one event.
pub fn push_api_json(out: &mut Vec<u8>, dataset: &Dataset, event: &Event) {
    let item = ApiItem {
        portal_interactionid: dataset.interaction_id(event),
        interaction_type: event.kind.name(),
        portal_contactid: dataset.contact_id(event),
        portal_timestamp: Dataset::timestamp(event),
        portal_portalid: Dataset::portal(event),
        session_id: dataset.session_id(event),
        fields: type_fields(event),
    };
    serde_json::to_writer(out, &item).expect("plain structs serialise");
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
        let dataset = Arc::new(PortalWorkload.generate(2_000, 3));
        let payloads = Payloads::render(dataset.clone());
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
    fn batches_rendered_on_the_fly_are_the_pre_rendered_bytes() {
        let dataset = Arc::new(PortalWorkload.generate(3_000, 5));
        let ahead = Payloads::new(dataset.clone(), 3_000);
        let on_the_fly = Payloads::new(dataset, 2_999);
        assert!(!ahead.on_the_fly() && on_the_fly.on_the_fly());
        for range in [0..1, 0..500, 1..2, 499..1_000, 2_500..3_000] {
            assert_eq!(ahead.array(range.clone()), on_the_fly.array(range));
        }
        let sample = on_the_fly.sample(100);
        assert_eq!(sample.len(), 100);
        assert_eq!(sample.item(42), ahead.sample(100).item(42));
        assert_eq!(ahead.sample(100).len(), 3_000);
    }

    #[test]
    fn copy_text_escapes_specials() {
        assert_eq!(copy_escape("a\tb\\c\nd"), "a\\tb\\\\c\\nd");
    }
}
