//! Journey summaries in SQLite: per contact and hour, what the journey's
//! summary needs, kept up by the interactions materialiser.
//!
//! - `journey_hours`: per session and type, the count, first and last time,
//!   the first interaction that named the contact and how many were
//!   stitched;
//! - `journey_articles`: per knowledge article, its views, last view and
//!   latest title;
//! - `journey_searches`: one row per search, so the newest are read by key.
//!
//! A journey reads these for the whole hours of its window and folds raw
//! interactions only for the partial hours at its two edges, so what it
//! costs follows the window's length, not how busy the contact was. Every
//! change to interactions moves the summaries in the same transaction:
//! inserts add to them, stitching adds the rows it gives a contact, and an
//! erasure or purge deletes them or re-folds the hours it touched.

use std::collections::{BTreeSet, HashMap};

use rusqlite::types::Value;
use rusqlite::{Connection, params};
use tracklog_domain::ids::OrgId;
use tracklog_domain::interaction::decode_fields;
use tracklog_domain::journey::{ArticleCell, Cells, Seen, SessionCell, article_of, search_of};

use super::sql_error;
use crate::StoreError;

pub(super) const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

pub(super) fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(HOUR_MS) * HOUR_MS
}

/// Whether an interaction of this type adds more than a count: only
/// article views and searches are read for their fields.
pub(super) fn reads_fields(interaction_type: &str) -> bool {
    interaction_type == "portal_viewknowledgearticle" || interaction_type == "portal_search"
}

/// A contact and hour: where a summary cell lives, as org, the stored
/// contact's bytes (values are not hashable) and hour.
type Place = (i64, Vec<u8>, i64);
/// A place, a session's bytes and a type id.
type SessionKey = (Place, Vec<u8>, i64);
/// A summary, the newest searches, and whether there were more.
type Summary = (Cells, Vec<(i64, String)>, bool);

/// What a batch adds to the summaries, applied once at its end.
#[derive(Default)]
pub(super) struct Delta {
    /// By place, session and type: the contact, the session and the cell.
    sessions: HashMap<SessionKey, (Value, Value, SessionCell)>,
    articles: HashMap<(Place, String), (Value, ArticleCell)>,
    /// org, contact, ts, interaction id, text.
    searches: Vec<(i64, Value, i64, Value, String)>,
    /// Places whose rows are re-folded from the table instead.
    dirty: BTreeSet<Place>,
    dirty_places: Vec<(i64, Value, i64)>,
}

/// One interaction with a contact, as the materialiser stores it.
pub(super) struct Stored<'a> {
    pub org: i64,
    pub contact: &'a Value,
    pub ts: i64,
    pub id: &'a Value,
    pub type_id: i64,
    pub interaction_type: &'a str,
    pub session: Option<&'a Value>,
    pub stitched: bool,
    /// The stored (encoded) fields.
    pub fields: &'a str,
}

fn value_key(value: &Value) -> Vec<u8> {
    match value {
        Value::Text(text) => [b"t".as_slice(), text.as_bytes()].concat(),
        Value::Blob(bytes) => [b"b".as_slice(), bytes].concat(),
        _ => Vec::new(),
    }
}

impl Delta {
    pub fn add(&mut self, row: &Stored<'_>) {
        let place: Place = (row.org, value_key(row.contact), hour_of(row.ts));
        let cell = SessionCell {
            count: 1,
            first: row.ts,
            last: row.ts,
            identified: (!row.stitched).then_some(row.ts),
            stitched: u64::from(row.stitched),
        };
        let session = row.session.cloned().unwrap_or(Value::Text(String::new()));
        self.sessions
            .entry((place.clone(), value_key(&session), row.type_id))
            .and_modify(|(_, _, c)| c.merge(&cell))
            .or_insert_with(|| (row.contact.clone(), session, cell));
        if !reads_fields(row.interaction_type) {
            return;
        }
        let Ok(fields) = decode_fields(row.interaction_type, row.fields) else {
            return;
        };
        if let Some((article, title)) = article_of(row.interaction_type, &fields) {
            let cell = ArticleCell {
                count: 1,
                last: row.ts,
                title: title.map(|t| (row.ts, t)),
            };
            self.articles
                .entry((place, article))
                .and_modify(|(_, c)| c.merge(&cell))
                .or_insert_with(|| (row.contact.clone(), cell));
        } else if let Some(text) = search_of(row.interaction_type, &fields) {
            self.searches
                .push((row.org, row.contact.clone(), row.ts, row.id.clone(), text));
        }
    }

    /// The place's rows will be re-folded from the table, whatever this
    /// batch added to it.
    pub fn mark_dirty(&mut self, org: i64, contact: &Value, ts: i64) {
        if self.dirty.insert((org, value_key(contact), hour_of(ts))) {
            self.dirty_places.push((org, contact.clone(), hour_of(ts)));
        }
    }

    /// Writes the batch's additions, then re-folds its dirty places.
    pub fn apply(self, conn: &Connection) -> Result<(), StoreError> {
        let dirty = |place: &Place| self.dirty.contains(place);
        let mut hours = conn
            .prepare_cached(
                "INSERT INTO journey_hours (org_id, contact_id, hour, session_id, type_id, count,
                    first_ts, last_ts, identified_ts, stitched)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT DO UPDATE SET count = count + excluded.count,
                    first_ts = MIN(first_ts, excluded.first_ts),
                    last_ts = MAX(last_ts, excluded.last_ts),
                    identified_ts = COALESCE(MIN(identified_ts, excluded.identified_ts),
                                             identified_ts, excluded.identified_ts),
                    stitched = stitched + excluded.stitched",
            )
            .map_err(sql_error)?;
        for ((place, _, type_id), (contact, session, cell)) in &self.sessions {
            if dirty(place) {
                continue;
            }
            let (org, _, hour) = place;
            hours
                .execute(params![
                    org,
                    contact,
                    hour,
                    session,
                    type_id,
                    cell.count as i64,
                    cell.first,
                    cell.last,
                    cell.identified,
                    cell.stitched as i64
                ])
                .map_err(sql_error)?;
        }
        let mut articles = conn
            .prepare_cached(
                "INSERT INTO journey_articles (org_id, contact_id, hour, article, count, last_ts,
                    title, title_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT DO UPDATE SET count = count + excluded.count,
                    last_ts = MAX(last_ts, excluded.last_ts),
                    title = CASE WHEN excluded.title_ts > COALESCE(title_ts, excluded.title_ts - 1)
                                 THEN excluded.title ELSE title END,
                    title_ts = COALESCE(MAX(title_ts, excluded.title_ts), title_ts,
                                        excluded.title_ts)",
            )
            .map_err(sql_error)?;
        for ((place, article), (contact, cell)) in &self.articles {
            if dirty(place) {
                continue;
            }
            let (org, _, hour) = place;
            let (title_ts, title) = cell.title.clone().unzip();
            articles
                .execute(params![
                    org,
                    contact,
                    hour,
                    article,
                    cell.count as i64,
                    cell.last,
                    title,
                    title_ts
                ])
                .map_err(sql_error)?;
        }
        let mut searches = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO journey_searches (org_id, contact_id, ts, id, text)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql_error)?;
        for (org, contact, ts, id, text) in &self.searches {
            if dirty(&(*org, value_key(contact), hour_of(*ts))) {
                continue;
            }
            searches
                .execute(params![org, contact, ts, id, text])
                .map_err(sql_error)?;
        }
        for (org, contact, hour) in &self.dirty_places {
            refold(conn, *org, contact, *hour)?;
        }
        Ok(())
    }
}

/// Deletes a contact's summaries.
pub(super) fn erase(conn: &Connection, org: OrgId, contact: &Value) -> Result<(), StoreError> {
    for table in ["journey_hours", "journey_articles", "journey_searches"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE org_id = ?1 AND contact_id = ?2"),
            params![org.0, contact],
        )
        .map_err(sql_error)?;
    }
    Ok(())
}

/// Folds one contact-hour's summary again from its stored interactions.
pub(super) fn refold(
    conn: &Connection,
    org: i64,
    contact: &Value,
    hour: i64,
) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM journey_hours WHERE org_id = ?1 AND contact_id = ?2 AND hour = ?3",
        "DELETE FROM journey_articles WHERE org_id = ?1 AND contact_id = ?2 AND hour = ?3",
        "DELETE FROM journey_searches WHERE org_id = ?1 AND contact_id = ?2
           AND ts >= ?3 AND ts < ?3 + 3600000",
    ] {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute(params![org, contact, hour]))
            .map_err(sql_error)?;
    }
    let mut statement = conn
        .prepare_cached(
            "SELECT i.ts, i.id, i.type_id, t.text, i.session_id, i.stitched, i.fields
             FROM interactions i JOIN dict t ON t.id = i.type_id
             WHERE i.day = ?1 AND i.org_id = ?2 AND i.contact_id = ?3
               AND i.ts >= ?4 AND i.ts < ?5",
        )
        .map_err(sql_error)?;
    let mut rows = statement
        .query(params![
            hour.div_euclid(DAY_MS),
            org,
            contact,
            hour,
            hour + HOUR_MS
        ])
        .map_err(sql_error)?;
    let mut delta = Delta::default();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let ts: i64 = row.get(0).map_err(sql_error)?;
        let id: Value = row.get(1).map_err(sql_error)?;
        let type_id: i64 = row.get(2).map_err(sql_error)?;
        let interaction_type: String = row.get(3).map_err(sql_error)?;
        let session: Value = row.get(4).map_err(sql_error)?;
        let stitched: Option<i64> = row.get(5).map_err(sql_error)?;
        let fields: String = row.get(6).map_err(sql_error)?;
        delta.add(&Stored {
            org,
            contact,
            ts,
            id: &id,
            type_id,
            interaction_type: &interaction_type,
            session: (session != Value::Null).then_some(&session),
            stitched: stitched == Some(1),
            fields: &fields,
        });
    }
    drop(rows);
    delta.apply(conn)
}

/// Folds a contact's stored interactions in `[from, to)` into cells: the
/// partial hours at a journey's edges.
fn fold_raw(
    conn: &Connection,
    org: OrgId,
    contact: &Value,
    from: i64,
    to: i64,
    cells: &mut Cells,
) -> Result<(), StoreError> {
    if from >= to {
        return Ok(());
    }
    let mut statement = conn
        .prepare_cached(
            "SELECT i.ts, t.text, i.session_id, i.stitched, i.fields
             FROM interactions i JOIN dict t ON t.id = i.type_id
             WHERE i.day = ?1 AND i.org_id = ?2 AND i.contact_id = ?3
               AND i.ts >= ?4 AND i.ts < ?5",
        )
        .map_err(sql_error)?;
    for day in from.div_euclid(DAY_MS)..=(to - 1).div_euclid(DAY_MS) {
        let mut rows = statement
            .query(params![day, org.0, contact, from, to])
            .map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            let ts: i64 = row.get(0).map_err(sql_error)?;
            let interaction_type: String = row.get(1).map_err(sql_error)?;
            let session = super::compact::decode_id(row.get_ref(2).map_err(sql_error)?);
            let stitched: Option<i64> = row.get(3).map_err(sql_error)?;
            let stored: String = row.get(4).map_err(sql_error)?;
            let fields = if reads_fields(&interaction_type) {
                decode_fields(&interaction_type, &stored).unwrap_or_default()
            } else {
                serde_json::Map::new()
            };
            cells.add(&Seen {
                ts,
                interaction_type: &interaction_type,
                session: session.as_deref(),
                stitched: stitched == Some(1),
                fields: &fields,
            });
        }
    }
    Ok(())
}

/// The summary cells of a contact's `[from, to)`, and its newest searches
/// there (at most `searches`, and whether there were more).
pub(super) fn summary(
    conn: &Connection,
    org: OrgId,
    contact: &Value,
    from: i64,
    to: i64,
    searches: usize,
) -> Result<Summary, StoreError> {
    let mut cells = Cells::default();
    let whole_from = hour_of(from + HOUR_MS - 1);
    let whole_to = hour_of(to);
    if whole_from >= whole_to {
        fold_raw(conn, org, contact, from, to, &mut cells)?;
    } else {
        fold_raw(conn, org, contact, from, whole_from, &mut cells)?;
        fold_raw(conn, org, contact, whole_to, to, &mut cells)?;
        let mut statement = conn
            .prepare_cached(
                "SELECT h.session_id, t.text, h.count, h.first_ts, h.last_ts, h.identified_ts,
                        h.stitched
                 FROM journey_hours h JOIN dict t ON t.id = h.type_id
                 WHERE h.org_id = ?1 AND h.contact_id = ?2 AND h.hour >= ?3 AND h.hour < ?4",
            )
            .map_err(sql_error)?;
        let mut rows = statement
            .query(params![org.0, contact, whole_from, whole_to])
            .map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            let session = match row.get_ref(0).map_err(sql_error)? {
                rusqlite::types::ValueRef::Text(b"") => None,
                stored => super::compact::decode_id(stored),
            };
            let kind: String = row.get(1).map_err(sql_error)?;
            let cell = SessionCell {
                count: row.get::<_, i64>(2).map_err(sql_error)? as u64,
                first: row.get(3).map_err(sql_error)?,
                last: row.get(4).map_err(sql_error)?,
                identified: row.get(5).map_err(sql_error)?,
                stitched: row.get::<_, i64>(6).map_err(sql_error)? as u64,
            };
            cells.merge_session(session, kind, &cell);
        }
        let mut statement = conn
            .prepare_cached(
                "SELECT article, count, last_ts, title, title_ts FROM journey_articles
                 WHERE org_id = ?1 AND contact_id = ?2 AND hour >= ?3 AND hour < ?4",
            )
            .map_err(sql_error)?;
        let mut rows = statement
            .query(params![org.0, contact, whole_from, whole_to])
            .map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            let article: String = row.get(0).map_err(sql_error)?;
            let title: Option<String> = row.get(3).map_err(sql_error)?;
            let title_ts: Option<i64> = row.get(4).map_err(sql_error)?;
            let cell = ArticleCell {
                count: row.get::<_, i64>(1).map_err(sql_error)? as u64,
                last: row.get(2).map_err(sql_error)?,
                title: title_ts.zip(title),
            };
            cells.merge_article(article, &cell);
        }
    }
    let mut statement = conn
        .prepare_cached(
            "SELECT ts, text FROM journey_searches
             WHERE org_id = ?1 AND contact_id = ?2 AND ts >= ?3 AND ts < ?4
             ORDER BY ts DESC, id DESC LIMIT ?5",
        )
        .map_err(sql_error)?;
    let mut found: Vec<(i64, String)> = statement
        .query_map(
            params![org.0, contact, from, to, searches as i64 + 1],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)?;
    let more = found.len() > searches;
    found.truncate(searches);
    Ok((cells, found, more))
}
