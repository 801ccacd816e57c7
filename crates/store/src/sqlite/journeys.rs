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

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::types::Value;
use rusqlite::{Connection, params};
use tracklog_domain::ids::OrgId;
use tracklog_domain::interaction::decode_fields;
use tracklog_domain::journey::{
    ArticleCell, Cells, Seen, SessionCell, article_of, reads_fields, search_of,
};

use super::sql_error;
use crate::StoreError;

pub(super) const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

pub(super) fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(HOUR_MS) * HOUR_MS
}

/// A contact and hour: where a summary cell lives, as day, org, the stored
/// contact's bytes (values are not hashable) and hour. The tables lead
/// with the day, like the contact index: a batch's writes then fall in the
/// few pages of the days it covers rather than all over a table that grows
/// with every contact, and a window reads one key range per day.
type Place = (i64, i64, Vec<u8>, i64);

fn place(org: i64, contact: &Value, ts: i64) -> Place {
    (ts.div_euclid(DAY_MS), org, value_key(contact), hour_of(ts))
}
/// A place, a session's bytes and a type id.
type SessionKey = (Place, Vec<u8>, i64);
/// A summary, the newest searches, and whether there were more.
type Summary = (Cells, Vec<(i64, String)>, bool);

/// What a batch adds to the summaries, applied once at its end.
#[derive(Default)]
pub(super) struct Delta {
    /// By place, session and type: the contact, the session and the cell;
    /// in key order, which is the order they are written in.
    sessions: BTreeMap<SessionKey, (Value, Value, SessionCell)>,
    articles: BTreeMap<(Place, String), (Value, ArticleCell)>,
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
        let place = place(row.org, row.contact, row.ts);
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
        if self.dirty.insert(place(org, contact, ts)) {
            self.dirty_places.push((org, contact.clone(), hour_of(ts)));
        }
    }

    /// Writes the batch's additions, in key order and many rows to a
    /// statement, then re-folds its dirty places.
    pub fn apply(self, conn: &Connection) -> Result<(), StoreError> {
        let dirty = |place: &Place| self.dirty.contains(place);
        upsert_many(
            conn,
            "INSERT INTO journey_hours (day, org_id, contact_id, hour, session_id, type_id, count,
                first_ts, last_ts, identified_ts, stitched) VALUES",
            "ON CONFLICT DO UPDATE SET count = count + excluded.count,
                first_ts = MIN(first_ts, excluded.first_ts),
                last_ts = MAX(last_ts, excluded.last_ts),
                identified_ts = COALESCE(MIN(identified_ts, excluded.identified_ts),
                                         identified_ts, excluded.identified_ts),
                stitched = stitched + excluded.stitched",
            self.sessions
                .iter()
                .filter(|((place, _, _), _)| !dirty(place))
                .map(
                    |(((day, org, _, hour), _, type_id), (contact, session, cell))| {
                        vec![
                            Value::Integer(*day),
                            Value::Integer(*org),
                            contact.clone(),
                            Value::Integer(*hour),
                            session.clone(),
                            Value::Integer(*type_id),
                            Value::Integer(cell.count as i64),
                            Value::Integer(cell.first),
                            Value::Integer(cell.last),
                            cell.identified.map_or(Value::Null, Value::Integer),
                            Value::Integer(cell.stitched as i64),
                        ]
                    },
                ),
        )?;
        upsert_many(
            conn,
            "INSERT INTO journey_articles (day, org_id, contact_id, hour, article, count, last_ts,
                title, title_ts) VALUES",
            "ON CONFLICT DO UPDATE SET count = count + excluded.count,
                last_ts = MAX(last_ts, excluded.last_ts),
                title = CASE WHEN excluded.title_ts > COALESCE(title_ts, excluded.title_ts - 1)
                             THEN excluded.title ELSE title END,
                title_ts = COALESCE(MAX(title_ts, excluded.title_ts), title_ts,
                                    excluded.title_ts)",
            self.articles
                .iter()
                .filter(|((place, _), _)| !dirty(place))
                .map(|(((day, org, _, hour), article), (contact, cell))| {
                    let (title_ts, title) = cell.title.clone().unzip();
                    vec![
                        Value::Integer(*day),
                        Value::Integer(*org),
                        contact.clone(),
                        Value::Integer(*hour),
                        Value::Text(article.clone()),
                        Value::Integer(cell.count as i64),
                        Value::Integer(cell.last),
                        title.map_or(Value::Null, Value::Text),
                        title_ts.map_or(Value::Null, Value::Integer),
                    ]
                }),
        )?;
        upsert_many(
            conn,
            "INSERT INTO journey_searches (day, org_id, contact_id, ts, id, text) VALUES",
            "ON CONFLICT DO NOTHING",
            self.searches
                .iter()
                .filter(|(org, contact, ts, _, _)| !dirty(&place(*org, contact, *ts)))
                .map(|(org, contact, ts, id, text)| {
                    vec![
                        Value::Integer(ts.div_euclid(DAY_MS)),
                        Value::Integer(*org),
                        contact.clone(),
                        Value::Integer(*ts),
                        id.clone(),
                        Value::Text(text.clone()),
                    ]
                }),
        )?;
        for (org, contact, hour) in &self.dirty_places {
            refold(conn, *org, contact, *hour)?;
        }
        Ok(())
    }
}

/// Rows per statement in [`upsert_many`].
const UPSERT_ROWS: usize = 64;

/// Runs `head VALUES (…), (…) tail` for the rows, [`UPSERT_ROWS`] at a
/// time: one statement for many rows saves most of SQLite's per-statement
/// cost. The rows' keys must differ from each other.
fn upsert_many(
    conn: &Connection,
    head: &str,
    tail: &str,
    rows: impl Iterator<Item = Vec<Value>>,
) -> Result<(), StoreError> {
    let mut values: Vec<Value> = Vec::new();
    let mut count = 0;
    let mut width = 0;
    let flush = |values: &mut Vec<Value>, count: &mut usize, width: usize| {
        if *count == 0 {
            return Ok(());
        }
        let one = format!("({})", vec!["?"; width].join(", "));
        let sql = format!("{head} {} {tail}", vec![one; *count].join(", "));
        *count = 0;
        conn.prepare_cached(&sql)
            .and_then(|mut s| s.execute(rusqlite::params_from_iter(values.drain(..))))
            .map(|_| ())
            .map_err(sql_error)
    };
    for row in rows {
        width = row.len();
        values.extend(row);
        count += 1;
        if count == UPSERT_ROWS {
            flush(&mut values, &mut count, width)?;
        }
    }
    flush(&mut values, &mut count, width)
}

/// Deletes a contact's summaries over the days `days` (the org's span).
pub(super) fn erase(
    conn: &Connection,
    org: OrgId,
    contact: &Value,
    days: std::ops::RangeInclusive<i64>,
) -> Result<(), StoreError> {
    for table in ["journey_hours", "journey_articles", "journey_searches"] {
        let mut statement = conn
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE day = ?1 AND org_id = ?2 AND contact_id = ?3"
            ))
            .map_err(sql_error)?;
        for day in days.clone() {
            statement
                .execute(params![day, org.0, contact])
                .map_err(sql_error)?;
        }
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
        "DELETE FROM journey_hours WHERE day = ?4 AND org_id = ?1 AND contact_id = ?2
           AND hour = ?3",
        "DELETE FROM journey_articles WHERE day = ?4 AND org_id = ?1 AND contact_id = ?2
           AND hour = ?3",
        "DELETE FROM journey_searches WHERE day = ?4 AND org_id = ?1 AND contact_id = ?2
           AND ts >= ?3 AND ts < ?3 + 3600000",
    ] {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute(params![org, contact, hour, hour.div_euclid(DAY_MS)]))
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
    if from >= to {
        return Ok((cells, Vec::new(), false));
    }
    let whole_from = hour_of(from + HOUR_MS - 1);
    let whole_to = hour_of(to);
    if whole_from >= whole_to {
        fold_raw(conn, org, contact, from, to, &mut cells)?;
    } else {
        fold_raw(conn, org, contact, from, whole_from, &mut cells)?;
        fold_raw(conn, org, contact, whole_to, to, &mut cells)?;
        let mut hours = conn
            .prepare_cached(
                "SELECT h.session_id, t.text, h.count, h.first_ts, h.last_ts, h.identified_ts,
                        h.stitched
                 FROM journey_hours h JOIN dict t ON t.id = h.type_id
                 WHERE h.day = ?1 AND h.org_id = ?2 AND h.contact_id = ?3
                   AND h.hour >= ?4 AND h.hour < ?5",
            )
            .map_err(sql_error)?;
        let mut articles = conn
            .prepare_cached(
                "SELECT article, count, last_ts, title, title_ts FROM journey_articles
                 WHERE day = ?1 AND org_id = ?2 AND contact_id = ?3 AND hour >= ?4 AND hour < ?5",
            )
            .map_err(sql_error)?;
        for day in whole_from.div_euclid(DAY_MS)..=(whole_to - 1).div_euclid(DAY_MS) {
            let mut rows = hours
                .query(params![day, org.0, contact, whole_from, whole_to])
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
            let mut rows = articles
                .query(params![day, org.0, contact, whole_from, whole_to])
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
    }
    // The newest searches: day by day, newest day first, until enough.
    let mut statement = conn
        .prepare_cached(
            "SELECT ts, text FROM journey_searches
             WHERE day = ?1 AND org_id = ?2 AND contact_id = ?3 AND ts >= ?4 AND ts < ?5
             ORDER BY ts DESC, id DESC LIMIT ?6",
        )
        .map_err(sql_error)?;
    let mut found: Vec<(i64, String)> = Vec::new();
    for day in (from.div_euclid(DAY_MS)..=(to - 1).div_euclid(DAY_MS)).rev() {
        let wanted = (searches + 1 - found.len()) as i64;
        let rows = statement
            .query_map(params![day, org.0, contact, from, to, wanted], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(sql_error)?;
        for row in rows {
            found.push(row.map_err(sql_error)?);
        }
        if found.len() > searches {
            break;
        }
    }
    let more = found.len() > searches;
    found.truncate(searches);
    Ok((cells, found, more))
}
