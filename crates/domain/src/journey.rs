//! A case's journey (PRODUCT.md §6.2): what the contact did on the portal in
//! the window before the case was created, shaped for the agent who opens it.
//!
//! A journey is a summary of the whole window plus one page of the newest
//! interactions. The summary is folded from [`Cells`]: per session and type,
//! how many interactions, their first and last time and whether the session
//! was stitched; per article, its views; and the searches. The store keeps
//! cells per contact and hour as interactions are materialised, so a
//! journey reads a few cells per hour of the window however busy the contact
//! was, and folds raw interactions only for the partial hours at its edges.
//! Both go through [`Cells::add`], so they agree by construction.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::contact::Case;
use crate::interaction::Builtin;
use crate::time::UtcMillis;

/// The most sessions a journey lists: the newest ones.
pub const SESSION_CAP: usize = 200;
/// The most articles a journey lists: the most recently viewed.
pub const ARTICLE_CAP: usize = 100;
/// The most searches a journey lists: the newest.
pub const SEARCH_CAP: usize = 100;
/// Interactions on one page of a journey, by default and at most.
pub const PAGE_DEFAULT: usize = 100;
pub const PAGE_MAX: usize = 1000;

/// The window `[start, end)` before a case: an interaction exactly at the
/// case's creation is not part of it, because the agent wants to know what
/// happened *before* the customer asked for help.
pub fn window(case: &Case, length_ms: i64) -> (UtcMillis, UtcMillis) {
    let end = case.created_at;
    (
        UtcMillis::from_millis(end.as_millis().saturating_sub(length_ms)),
        end,
    )
}

/// What a summary needs of one interaction of the contact.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub ts: i64,
    pub interaction_type: &'a str,
    pub session: Option<&'a str>,
    /// It came without a contact, and took it from its session's link.
    pub stitched: bool,
    pub fields: &'a Map<String, Value>,
}

fn text_field(fields: &Map<String, Value>, name: &str) -> Option<String> {
    fields.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// Whether an interaction of this type adds more to a summary than a
/// count: only article views and searches are read for their fields.
pub fn reads_fields(interaction_type: &str) -> bool {
    matches!(
        Builtin::from_name(interaction_type),
        Some(Builtin::ViewKnowledgeArticle | Builtin::Search)
    )
}

/// The article a knowledge-article view is of, with its title when sent.
pub fn article_of(
    interaction_type: &str,
    fields: &Map<String, Value>,
) -> Option<(String, Option<String>)> {
    (Builtin::from_name(interaction_type) == Some(Builtin::ViewKnowledgeArticle))
        .then(|| text_field(fields, "portal_knowledgearticleid"))
        .flatten()
        .map(|id| (id, text_field(fields, "portal_knowledgetitle")))
}

/// The text a search interaction searched for.
pub fn search_of(interaction_type: &str, fields: &Map<String, Value>) -> Option<String> {
    (Builtin::from_name(interaction_type) == Some(Builtin::Search))
        .then(|| text_field(fields, "portal_searchstring"))
        .flatten()
}

/// One session's interactions of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCell {
    pub count: u64,
    pub first: i64,
    pub last: i64,
    /// The first interaction that named the contact itself.
    pub identified: Option<i64>,
    /// How many took the contact from the session's link.
    pub stitched: u64,
}

impl SessionCell {
    fn of(seen: &Seen<'_>) -> Self {
        SessionCell {
            count: 1,
            first: seen.ts,
            last: seen.ts,
            identified: (!seen.stitched).then_some(seen.ts),
            stitched: u64::from(seen.stitched),
        }
    }

    pub fn merge(&mut self, other: &SessionCell) {
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.identified = match (self.identified, other.identified) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.stitched += other.stitched;
    }
}

/// One article's views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleCell {
    pub count: u64,
    pub last: i64,
    /// The title the latest view with a title sent, and that view's time.
    pub title: Option<(i64, String)>,
}

impl ArticleCell {
    fn of(ts: i64, title: Option<String>) -> Self {
        ArticleCell {
            count: 1,
            last: ts,
            title: title.map(|t| (ts, t)),
        }
    }

    pub fn merge(&mut self, other: &ArticleCell) {
        self.count += other.count;
        self.last = self.last.max(other.last);
        if let Some((at, title)) = &other.title
            && self.title.as_ref().is_none_or(|(mine, _)| at > mine)
        {
            self.title = Some((*at, title.clone()));
        }
    }
}

/// A summary of some interactions of one contact, before it is shaped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cells {
    /// By session (none for interactions without one) and type.
    pub sessions: BTreeMap<(Option<String>, String), SessionCell>,
    pub articles: BTreeMap<String, ArticleCell>,
}

impl Cells {
    /// Counts one interaction.
    pub fn add(&mut self, seen: &Seen<'_>) {
        let cell = SessionCell::of(seen);
        self.merge_session(
            seen.session.map(str::to_owned),
            seen.interaction_type.to_owned(),
            &cell,
        );
        if let Some((id, title)) = article_of(seen.interaction_type, seen.fields) {
            self.merge_article(id, &ArticleCell::of(seen.ts, title));
        }
    }

    pub fn merge_session(&mut self, session: Option<String>, kind: String, cell: &SessionCell) {
        self.sessions
            .entry((session, kind))
            .and_modify(|mine| mine.merge(cell))
            .or_insert(*cell);
    }

    pub fn merge_article(&mut self, id: String, cell: &ArticleCell) {
        self.articles
            .entry(id)
            .and_modify(|mine| mine.merge(cell))
            .or_insert_with(|| cell.clone());
    }

    pub fn merge(&mut self, other: Cells) {
        for ((session, kind), cell) in other.sessions {
            self.merge_session(session, kind, &cell);
        }
        for (id, cell) in other.articles {
            self.merge_article(id, &cell);
        }
    }
}

/// One browser session of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    pub session_id: Option<String>,
    pub start: String,
    pub end: String,
    pub count: u64,
    pub by_type: BTreeMap<String, u64>,
    /// When the anonymous session became identified: present when some of
    /// its interactions were stitched to the contact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identified_at: Option<String>,
}

/// A knowledge article the contact already viewed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArticleViewed {
    pub id: String,
    pub title: Option<String>,
    pub count: u64,
    pub last_viewed: String,
}

/// A search the contact ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchRun {
    pub text: String,
    pub at: String,
}

/// The journey of a case: a summary of the whole window and the newest
/// page of its interactions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    pub case_id: String,
    pub contact_id: String,
    pub window_start: String,
    pub window_end: String,
    /// Every interaction of the window.
    pub total: u64,
    pub by_type: BTreeMap<String, u64>,
    /// Oldest first; the newest [`SESSION_CAP`] when there are more.
    pub sessions: Vec<SessionSummary>,
    /// Most recently viewed first.
    pub articles_viewed: Vec<ArticleViewed>,
    /// Newest first.
    pub searches: Vec<SearchRun>,
    /// True when a summary list was capped.
    pub truncated: bool,
    /// Newest first, in the stored shape.
    pub items: Vec<Value>,
    /// Leads to the page of older interactions.
    pub next_cursor: Option<String>,
}

/// One page of a journey's interactions, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JourneyPage {
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    UtcMillis::from_millis(ms).to_rfc3339()
}

/// Shapes a journey from the window's cells, its searches (newest first,
/// with whether there were more) and its page of interactions.
pub fn assemble(
    case: &Case,
    window: (UtcMillis, UtcMillis),
    cells: Cells,
    searches: (Vec<(i64, String)>, bool),
    page: JourneyPage,
) -> Journey {
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0;
    let mut sessions: BTreeMap<Option<String>, (SessionCell, BTreeMap<String, u64>)> =
        BTreeMap::new();
    for ((session, kind), cell) in cells.sessions {
        total += cell.count;
        *by_type.entry(kind.clone()).or_default() += cell.count;
        let entry = sessions.entry(session).or_insert_with(|| {
            (
                SessionCell {
                    count: 0,
                    first: cell.first,
                    last: cell.last,
                    identified: None,
                    stitched: 0,
                },
                BTreeMap::new(),
            )
        });
        entry.0.merge(&cell);
        *entry.1.entry(kind).or_default() += cell.count;
    }
    let mut sessions: Vec<(Option<String>, SessionCell, BTreeMap<String, u64>)> = sessions
        .into_iter()
        .map(|(id, (cell, kinds))| (id, cell, kinds))
        .collect();
    sessions.sort_by(|a, b| (a.1.first, &a.0).cmp(&(b.1.first, &b.0)));
    let mut truncated = false;
    if sessions.len() > SESSION_CAP {
        sessions.drain(..sessions.len() - SESSION_CAP);
        truncated = true;
    }
    let mut articles: Vec<(String, ArticleCell)> = cells.articles.into_iter().collect();
    articles.sort_by(|a, b| b.1.last.cmp(&a.1.last).then_with(|| a.0.cmp(&b.0)));
    if articles.len() > ARTICLE_CAP {
        articles.truncate(ARTICLE_CAP);
        truncated = true;
    }
    let (searches, more_searches) = searches;
    Journey {
        case_id: case.id.to_string(),
        contact_id: case.contact_id.to_string(),
        window_start: window.0.to_rfc3339(),
        window_end: window.1.to_rfc3339(),
        total,
        by_type,
        sessions: sessions
            .into_iter()
            .map(|(session_id, cell, by_type)| SessionSummary {
                session_id,
                start: rfc3339(cell.first),
                end: rfc3339(cell.last),
                count: cell.count,
                by_type,
                identified_at: (cell.stitched > 0)
                    .then_some(cell.identified)
                    .flatten()
                    .map(rfc3339),
            })
            .collect(),
        articles_viewed: articles
            .into_iter()
            .map(|(id, cell)| ArticleViewed {
                id,
                title: cell.title.map(|(_, t)| t),
                count: cell.count,
                last_viewed: rfc3339(cell.last),
            })
            .collect(),
        searches: searches
            .into_iter()
            .take(SEARCH_CAP)
            .map(|(at, text)| SearchRun {
                text,
                at: rfc3339(at),
            })
            .collect(),
        truncated: truncated || more_searches,
        items: page.items,
        next_cursor: page.next_cursor,
    }
}

#[cfg(test)]
mod tests;
