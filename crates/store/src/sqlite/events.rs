//! Interactions in SQLite.

use async_trait::async_trait;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::ids::{ContactId, InteractionId, OrgId, PortalId, SessionId};
use tracklog_domain::interaction::{Interaction, decode_fields, encode_fields};
use tracklog_domain::time::UtcMillis;

use super::apply::apply_interactions;
use super::compact::{decode_id, encode_id};
use super::journeys;
use super::pipeline::{KeyHasher, Materialise};
use super::writer::{Dictionary, WriteContext};
use super::{SqliteStore, sql_error};
use crate::log::item::{ItemError, ItemReader, ItemWriter};
use crate::log::{Admitted, Frame, Kind};
use crate::{
    AppendSummary, Cursor, ErasedActivity, EventStore, JourneyData, JourneyQuery, Page,
    PortalInsights, StoreError, TimelineQuery, TopArticle, TopSearch,
};

const DAY_MS: i64 = 86_400_000;

/// The UTC day number of a timestamp: the contact index's bucket.
pub(super) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// An interaction as the log carries it: everything that costs CPU (JSON
/// encoding) is done on the caller's task, so the log thread only frames
/// bytes and the materialiser only inserts.
pub(crate) struct Row {
    pub(super) ts: i64,
    pub(super) id: String,
    pub(super) interaction_type: String,
    pub(super) portal: String,
    pub(super) contact: Option<String>,
    pub(super) session: Option<String>,
    pub(super) fields: String,
}

impl Row {
    fn from_interaction(item: Interaction) -> Self {
        Self {
            ts: item.timestamp.as_millis(),
            fields: encode_fields(&item.interaction_type, &item.fields),
            id: item.id.as_str().to_owned(),
            interaction_type: item.interaction_type,
            portal: item.portal_id.into(),
            contact: item.contact_id.map(|c| c.as_str().to_owned()),
            session: item.session_id.map(|s| s.as_str().to_owned()),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut item = ItemWriter::with_capacity(64 + self.fields.len());
        item.i64(self.ts)
            .str(&self.id)
            .str(&self.interaction_type)
            .str(&self.portal)
            .opt(self.contact.as_deref())
            .opt(self.session.as_deref())
            .str(&self.fields);
        item.finish()
    }

    fn decode(bytes: &[u8]) -> Result<Self, ItemError> {
        let mut item = ItemReader::new(bytes);
        let row = Self {
            ts: item.i64()?,
            id: item.str()?.to_owned(),
            interaction_type: item.str()?.to_owned(),
            portal: item.str()?.to_owned(),
            contact: item.opt()?.map(str::to_owned),
            session: item.opt()?.map(str::to_owned),
            fields: item.str()?.to_owned(),
        };
        item.end()?;
        Ok(row)
    }

    /// The idempotency key: the id at its time, in the org.
    fn key(&self, org: OrgId, hasher: &KeyHasher) -> u128 {
        hasher.digest(&[
            &org.0.to_le_bytes(),
            &self.ts.to_le_bytes(),
            self.id.as_bytes(),
        ])
    }
}

/// Which rows the tables already hold, by the unique (org, ts, id) index.
fn stored(conn: &Connection, org: OrgId, rows: &[Row]) -> Result<Vec<bool>, StoreError> {
    let mut probe = conn
        .prepare_cached("SELECT 1 FROM interactions WHERE org_id = ?1 AND ts = ?2 AND id = ?3")
        .map_err(sql_error)?;
    rows.iter()
        .map(|row| {
            probe
                .exists(params![org.0, row.ts, encode_id(&row.id)])
                .map_err(sql_error)
        })
        .collect()
}

/// The interactions materialiser: inserts the frames' interactions, sorted
/// by the contact index's key, with stitching. Idempotent: a row already
/// stored is skipped by the unique (org, ts, id) index.
pub(crate) struct Interactions;

impl Materialise for Interactions {
    type Item = (OrgId, Row);

    fn decode(&self, frame: &Frame) -> Result<Vec<Self::Item>, String> {
        frame
            .items
            .iter()
            .map(|item| Row::decode(item).map(|row| (OrgId(frame.org), row)))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("interaction frame {}: {e}", frame.seq))
    }

    fn apply(&self, ctx: &mut WriteContext<'_>, rows: Vec<Self::Item>) -> Result<(), StoreError> {
        apply_interactions(ctx, rows)
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_interactions(
        &self,
        org: OrgId,
        items: Vec<Interaction>,
    ) -> Result<AppendSummary, StoreError> {
        if items.is_empty() {
            return Ok(AppendSummary::default());
        }
        let log = self.log()?.clone();
        self.await_recovery().await?;
        let rows: Vec<Row> = items.into_iter().map(Row::from_interaction).collect();
        // Which rows the tables hold already, as of a watermark read first:
        // every frame up to it is in what the probe sees.
        let probed_at = self.materialised(Kind::Interactions);
        let (rows, found) = self
            .read(move |conn| {
                let found = stored(conn, org, &rows)?;
                Ok((rows, found))
            })
            .await?;
        let count = rows.len();
        let (summary, _) = log
            .append(Kind::Interactions, org.0, count, move |pending, seq| {
                // A probe older than the keys the log dropped may have missed
                // rows applied since: ask the tables again.
                let found = if probed_at < pending.floor {
                    stored(&pending.probe, org, &rows)?
                } else {
                    found
                };
                let mut summary = AppendSummary::default();
                let mut fresh = Vec::with_capacity(rows.len());
                for (row, stored) in rows.iter().zip(found) {
                    let key = row.key(org, &pending.hasher);
                    if stored || pending.contains(Kind::Interactions, key) {
                        summary.duplicates += 1;
                    } else {
                        pending.insert(Kind::Interactions, key, seq);
                        summary.inserted += 1;
                        fresh.push(row.encode());
                    }
                }
                Ok(Admitted {
                    items: fresh,
                    answer: summary,
                })
            })
            .await?;
        Ok(summary)
    }

    async fn contact_interactions(
        &self,
        org: OrgId,
        contact: &ContactId,
        query: TimelineQuery,
    ) -> Result<Page<Interaction>, StoreError> {
        self.settle(Kind::Interactions, org).await?;
        let contact = contact.clone();
        self.read(move |conn| timeline(conn, org, &contact, &query))
            .await
    }

    async fn erase_contact(
        &self,
        org: OrgId,
        contact: &ContactId,
    ) -> Result<ErasedActivity, StoreError> {
        // Whatever the log holds for the contact is erased too.
        self.settle(Kind::Interactions, org).await?;
        let key = encode_id(contact.as_str());
        self.write(1, move |ctx| {
            let mut erased = ErasedActivity::default();
            // The contact index leads with the day, so the erasure visits each
            // day of the org's span once.
            if let Some((first, last)) = org_time_span(ctx.conn, org)? {
                let mut delete = ctx
                    .conn
                    .prepare_cached(
                        "DELETE FROM interactions WHERE day = ?1 AND org_id = ?2 AND contact_id = ?3",
                    )
                    .map_err(sql_error)?;
                for day in day_of(first)..=day_of(last) {
                    erased.interactions +=
                        delete.execute(params![day, org.0, key]).map_err(sql_error)? as u64;
                }
                journeys::erase(ctx.conn, org, &key, day_of(first)..=day_of(last))?;
            }
            erased.sessions = ctx
                .conn
                .execute(
                    "DELETE FROM session_contacts WHERE org_id = ?1 AND contact_id = ?2",
                    params![org.0, key],
                )
                .map_err(sql_error)? as u64;
            Ok(erased)
        })
        .await
    }

    async fn purge_interactions(
        &self,
        org: OrgId,
        portal: &PortalId,
        before: Option<UtcMillis>,
        max: usize,
    ) -> Result<u64, StoreError> {
        // What the log holds for the portal is purged too.
        self.settle(Kind::Interactions, org).await?;
        let portal = portal.clone();
        let before = before.map_or(i64::MAX, UtcMillis::as_millis);
        self.write(1, move |ctx| {
            let Some(portal_id) = dict_id(ctx.conn, Dictionary::PORTAL, portal.as_str())? else {
                return Ok(0);
            };
            let mut deleted = 0u64;
            // The hours of journeys it touched are folded again.
            let mut touched = journeys::Delta::default();
            {
                let mut statement = ctx
                    .conn
                    .prepare_cached(
                        "DELETE FROM interactions WHERE seq IN (
                            SELECT seq FROM interactions
                            WHERE org_id = ?1 AND ts < ?2 AND portal_id = ?3 LIMIT ?4)
                         RETURNING contact_id, ts",
                    )
                    .map_err(sql_error)?;
                let mut rows = statement
                    .query(params![org.0, before, portal_id, max as i64])
                    .map_err(sql_error)?;
                while let Some(row) = rows.next().map_err(sql_error)? {
                    deleted += 1;
                    let contact: Value = row.get(0).map_err(sql_error)?;
                    if contact != Value::Null {
                        touched.mark_dirty(org.0, &contact, row.get(1).map_err(sql_error)?);
                    }
                }
            }
            touched.apply(ctx.conn)?;
            Ok(deleted)
        })
        .await
    }

    async fn journey(
        &self,
        org: OrgId,
        contact: &ContactId,
        query: JourneyQuery,
    ) -> Result<JourneyData, StoreError> {
        self.settle(Kind::Interactions, org).await?;
        let contact = contact.clone();
        self.read(move |conn| {
            let key = encode_id(contact.as_str());
            let (from, to) = (query.from.as_millis(), query.to.as_millis());
            let (cells, searches, more_searches) =
                journeys::summary(conn, org, &key, from, to, query.searches)?;
            let page = newest_first(conn, org, &key, from, to, query.cursor, query.limit)?;
            Ok(JourneyData {
                cells,
                searches,
                more_searches,
                page,
            })
        })
        .await
    }

    async fn portal_insights(
        &self,
        org: OrgId,
        portal: &PortalId,
        from: UtcMillis,
        to: UtcMillis,
    ) -> Result<PortalInsights, StoreError> {
        self.settle(Kind::Interactions, org).await?;
        let portal = portal.clone();
        self.read(move |conn| insights(conn, org, &portal, from.as_millis(), to.as_millis()))
            .await
    }
}

fn dict_id(conn: &Connection, kind: u8, text: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT id FROM dict WHERE kind = ?1 AND text = ?2")
        .and_then(|mut s| s.query_row(params![kind, text], |r| r.get(0)).optional())
        .map_err(sql_error)
}

/// The insight page's aggregates. Built-in fields are stored positionally
/// (see `encode_fields`), so `$[0]` is the article id or the search text and
/// `$[1]` the article title.
fn insights(
    conn: &Connection,
    org: OrgId,
    portal: &PortalId,
    from: i64,
    to: i64,
) -> Result<PortalInsights, StoreError> {
    let mut out = PortalInsights::default();
    let Some(portal_id) = dict_id(conn, Dictionary::PORTAL, portal.as_str())? else {
        return Ok(out);
    };
    let mut daily = conn
        .prepare_cached(
            "SELECT i.day, t.text, count(*) FROM interactions i JOIN dict t ON t.id = i.type_id
             WHERE i.org_id = ?1 AND i.ts >= ?2 AND i.ts < ?3 AND i.portal_id = ?4
             GROUP BY i.day, t.text ORDER BY i.day, t.text",
        )
        .map_err(sql_error)?;
    let rows = daily
        .query_map(params![org.0, from, to, portal_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })
        .map_err(sql_error)?;
    out.daily = rows.collect::<Result<_, _>>().map_err(sql_error)?;

    let article = dict_id(
        conn,
        Dictionary::INTERACTION_TYPE,
        "portal_viewknowledgearticle",
    )?;
    if let Some(article) = article {
        let mut top = conn
            .prepare_cached(
                "SELECT json_extract(fields, '$[0]') AS article, max(json_extract(fields, '$[1]')),
                        count(*) AS views
                 FROM interactions
                 WHERE org_id = ?1 AND ts >= ?2 AND ts < ?3 AND portal_id = ?4 AND type_id = ?5
                   AND json_valid(fields) AND json_type(fields) = 'array'
                 GROUP BY article ORDER BY views DESC, article LIMIT 10",
            )
            .map_err(sql_error)?;
        let rows = top
            .query_map(params![org.0, from, to, portal_id, article], |r| {
                Ok(TopArticle {
                    id: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    title: r.get(1)?,
                    views: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(sql_error)?;
        out.top_articles = rows.collect::<Result<_, _>>().map_err(sql_error)?;
    }
    if let Some(search) = dict_id(conn, Dictionary::INTERACTION_TYPE, "portal_search")? {
        let mut top = conn
            .prepare_cached(
                "SELECT lower(trim(json_extract(fields, '$[0]'))) AS text, count(*) AS n
                 FROM interactions
                 WHERE org_id = ?1 AND ts >= ?2 AND ts < ?3 AND portal_id = ?4 AND type_id = ?5
                   AND json_valid(fields) AND json_type(fields) = 'array'
                 GROUP BY text ORDER BY n DESC, text LIMIT 10",
            )
            .map_err(sql_error)?;
        let rows = top
            .query_map(params![org.0, from, to, portal_id, search], |r| {
                Ok(TopSearch {
                    text: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    count: r.get::<_, i64>(1)? as u64,
                })
            })
            .map_err(sql_error)?;
        out.top_searches = rows.collect::<Result<_, _>>().map_err(sql_error)?;

        let mut before_case = conn
            .prepare_cached(
                "SELECT lower(trim(json_extract(i.fields, '$[0]'))) AS text, count(*) AS n
                 FROM interactions i
                 WHERE i.org_id = ?1 AND i.ts >= ?2 AND i.ts < ?3 AND i.portal_id = ?4
                   AND i.type_id = ?5 AND i.contact_id IS NOT NULL
                   AND json_valid(i.fields) AND json_type(i.fields) = 'array'
                   AND EXISTS (SELECT 1 FROM cases c
                               WHERE c.org_id = i.org_id AND c.contact_id = i.contact_id
                                 AND c.created_at > i.ts AND c.created_at <= i.ts + 86400000)
                 GROUP BY text ORDER BY n DESC, text LIMIT 10",
            )
            .map_err(sql_error)?;
        let rows = before_case
            .query_map(params![org.0, from, to, portal_id, search], |r| {
                Ok(TopSearch {
                    text: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    count: r.get::<_, i64>(1)? as u64,
                })
            })
            .map_err(sql_error)?;
        out.searches_before_case = rows.collect::<Result<_, _>>().map_err(sql_error)?;
    }
    Ok(out)
}

/// The first and last timestamps an org has, from the time index.
fn org_time_span(conn: &Connection, org: OrgId) -> Result<Option<(i64, i64)>, StoreError> {
    conn.prepare_cached(
        "SELECT (SELECT min(ts) FROM interactions WHERE org_id = ?1),
                (SELECT max(ts) FROM interactions WHERE org_id = ?1)",
    )
    .and_then(|mut s| {
        s.query_row([org.0], |r| {
            Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?))
        })
    })
    .map_err(sql_error)
}

fn timeline(
    conn: &Connection,
    org: OrgId,
    contact: &ContactId,
    query: &TimelineQuery,
) -> Result<Page<Interaction>, StoreError> {
    let empty = Page {
        items: Vec::new(),
        next_cursor: None,
    };
    let (after_ts, after_seq) = query
        .cursor
        .map_or((i64::MIN, i64::MIN), |c| (c.time, c.seq));
    let from = query
        .from
        .map_or(i64::MIN, UtcMillis::as_millis)
        .max(after_ts);
    let to = query.to.map_or(i64::MAX, UtcMillis::as_millis);
    // Only the days that can hold a match are visited: the query window
    // clamped to the org's own span.
    let Some((first, last)) = org_time_span(conn, org)? else {
        return Ok(empty);
    };
    let (from_day, to_day) = (
        day_of(from.max(first)),
        day_of(to.saturating_sub(1).min(last)),
    );
    if from_day > to_day {
        return Ok(empty);
    }
    let limit = query.limit.max(1);
    // One indexed range per day, in order: within a day the index yields rows
    // by (ts, seq) already, so each query stops at the rows still wanted and
    // a page costs what it returns, not the contact's whole history.
    let mut stmt = conn.prepare_cached(TIMELINE_DAY).map_err(sql_error)?;
    let mut items = Vec::with_capacity(limit.min(1024));
    let mut last = None;
    let mut more = false;
    'days: for day in from_day..=to_day {
        let wanted = (limit + 1 - items.len()) as i64;
        let mut rows = stmt
            .query(params![
                day,
                org.0,
                encode_id(contact.as_str()),
                from,
                to,
                after_ts,
                after_seq,
                wanted
            ])
            .map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            if items.len() == limit {
                more = true;
                break 'days;
            }
            let (seq, interaction) = row_to_interaction(row)?;
            last = Some(Cursor {
                time: interaction.timestamp.as_millis(),
                seq,
            });
            items.push(interaction);
        }
    }
    Ok(Page {
        items,
        next_cursor: if more { last } else { None },
    })
}

/// One day of one contact's timeline, in order.
/// A page of a contact's interactions in `[from, to)`, newest first, older
/// than `cursor`: one indexed range per day, newest day first, each
/// stopping at the rows still wanted.
fn newest_first(
    conn: &Connection,
    org: OrgId,
    contact: &Value,
    from: i64,
    to: i64,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<Page<Interaction>, StoreError> {
    let (before_ts, before_seq) = cursor.map_or((i64::MAX, i64::MAX), |c| (c.time, c.seq));
    let to = to.min(before_ts.saturating_add(1));
    let mut page = Page {
        items: Vec::new(),
        next_cursor: None,
    };
    let Some((first, last)) = org_time_span(conn, org)? else {
        return Ok(page);
    };
    let (from_day, to_day) = (
        day_of(from.max(first)),
        day_of(to.saturating_sub(1).min(last)),
    );
    let limit = limit.max(1);
    let mut statement = conn.prepare_cached(TIMELINE_DAY_DESC).map_err(sql_error)?;
    let mut last_seen = None;
    'days: for day in (from_day..=to_day).rev() {
        let wanted = (limit + 1 - page.items.len()) as i64;
        let mut rows = statement
            .query(params![
                day, org.0, contact, from, to, before_ts, before_seq, wanted
            ])
            .map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            if page.items.len() == limit {
                page.next_cursor = last_seen;
                break 'days;
            }
            let (seq, interaction) = row_to_interaction(row)?;
            last_seen = Some(Cursor {
                time: interaction.timestamp.as_millis(),
                seq,
            });
            page.items.push(interaction);
        }
    }
    Ok(page)
}

const TIMELINE_DAY_DESC: &str =
    "SELECT i.seq, i.id, t.text, p.text, i.contact_id, i.session_id, i.ts, i.fields
     FROM interactions i
     JOIN dict t ON t.id = i.type_id
     JOIN dict p ON p.id = i.portal_id
     WHERE i.day = ?1 AND i.org_id = ?2 AND i.contact_id = ?3 AND i.ts >= ?4 AND i.ts < ?5
       AND (i.ts < ?6 OR (i.ts = ?6 AND i.seq < ?7))
     ORDER BY i.ts DESC, i.seq DESC
     LIMIT ?8";

const TIMELINE_DAY: &str =
    "SELECT i.seq, i.id, t.text, p.text, i.contact_id, i.session_id, i.ts, i.fields
     FROM interactions i
     JOIN dict t ON t.id = i.type_id
     JOIN dict p ON p.id = i.portal_id
     WHERE i.day = ?1 AND i.org_id = ?2 AND i.contact_id = ?3 AND i.ts >= ?4 AND i.ts < ?5
       AND (i.ts > ?6 OR (i.ts = ?6 AND i.seq > ?7))
     ORDER BY i.ts, i.seq
     LIMIT ?8";

fn row_to_interaction(row: &rusqlite::Row<'_>) -> Result<(i64, Interaction), StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("stored interaction has a bad {what}"));
    let id_at = |index: usize, what: &str| -> Result<Option<String>, StoreError> {
        match row.get_ref(index).map_err(sql_error)? {
            ValueRef::Null => Ok(None),
            stored => decode_id(stored).map(Some).ok_or_else(|| corrupt(what)),
        }
    };
    let seq: i64 = row.get(0).map_err(sql_error)?;
    let id = id_at(1, "id")?.ok_or_else(|| corrupt("id"))?;
    let interaction_type: String = row.get(2).map_err(sql_error)?;
    let portal: String = row.get(3).map_err(sql_error)?;
    let contact = id_at(4, "contact")?;
    let session = id_at(5, "session")?;
    let ts: i64 = row.get(6).map_err(sql_error)?;
    let fields: String = row.get(7).map_err(sql_error)?;
    let fields = decode_fields(&interaction_type, &fields).map_err(|_| corrupt("fields"))?;
    Ok((
        seq,
        Interaction {
            id: InteractionId::parse(id).map_err(|_| corrupt("id"))?,
            interaction_type,
            contact_id: contact
                .map(ContactId::parse)
                .transpose()
                .map_err(|_| corrupt("contact"))?,
            timestamp: UtcMillis::from_millis(ts),
            portal_id: PortalId::parse(portal).map_err(|_| corrupt("portal"))?,
            session_id: session
                .map(SessionId::parse)
                .transpose()
                .map_err(|_| corrupt("session"))?,
            fields,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Log, LogOptions};
    use crate::sqlite::pipeline::Pending;
    use crate::sqlite::{LOG_DIR, SqliteOptions};
    use crate::{EventStore, Lifecycle, StoreMetrics, TimelineQuery};
    use tracklog_domain::ids::{ContactId, InteractionId, PortalId, SessionId};

    fn search(id: &str, contact: &str, ts: i64) -> Interaction {
        let mut fields = serde_json::Map::new();
        fields.insert("portal_searchstring".into(), serde_json::json!("printer"));
        Interaction {
            id: InteractionId::parse(id).unwrap(),
            interaction_type: "portal_search".into(),
            contact_id: Some(ContactId::parse(contact).unwrap()),
            timestamp: UtcMillis::from_millis(ts),
            portal_id: PortalId::parse("support").unwrap(),
            session_id: Some(SessionId::parse(format!("s-{id}")).unwrap()),
            fields,
        }
    }

    /// A crash after the log acknowledged a frame and before the tables had
    /// it: the next start applies it, once, and a retry of it is a
    /// duplicate.
    #[tokio::test]
    async fn frames_acknowledged_before_a_crash_are_applied_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let org = {
            let store = SqliteStore::open(
                dir.path(),
                SqliteOptions::default(),
                StoreMetrics::default(),
            )
            .unwrap();
            let org = crate::MetaStore::org_by_name(
                &store,
                &tracklog_domain::ids::OrgName::parse("default").unwrap(),
            )
            .await
            .unwrap()
            .unwrap()
            .id;
            store
                .append_interactions(org, vec![search("a", "c1", 1_000)])
                .await
                .unwrap();
            store.close().await;
            org
        };
        // As the log thread writes it, with no materialiser running: the
        // state of a process killed right after its reply.
        {
            let probe = Connection::open_in_memory().unwrap();
            let log = Log::open(
                &dir.path().join(LOG_DIR),
                LogOptions::default(),
                &[("interactions", 1)],
                Pending::new(probe),
            )
            .unwrap();
            let row = Row::from_interaction(search("b", "c1", 2_000)).encode();
            log.append(Kind::Interactions, org.0, 1, move |_, _| {
                Ok(Admitted {
                    items: vec![row],
                    answer: (),
                })
            })
            .await
            .unwrap();
            log.close();
        }
        let store = SqliteStore::open(
            dir.path(),
            SqliteOptions::default(),
            StoreMetrics::default(),
        )
        .unwrap();
        // A retry right after the start, before anything waited for the
        // recovered frame: it is a duplicate, not a new interaction.
        let retry = store
            .append_interactions(org, vec![search("b", "c1", 2_000)])
            .await
            .unwrap();
        assert_eq!((retry.inserted, retry.duplicates), (0, 1));
        let contact = ContactId::parse("c1").unwrap();
        let query = TimelineQuery {
            from: None,
            to: None,
            limit: 10,
            cursor: None,
        };
        // The read waits for the replayed frame only if it knows of it; the
        // materialiser applies it shortly after the start either way.
        let mut ids = Vec::new();
        for _ in 0..200 {
            let page = store
                .contact_interactions(org, &contact, query.clone())
                .await
                .unwrap();
            ids = page.items.iter().map(|i| i.id.to_string()).collect();
            if ids.len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(ids, ["a", "b"]);
        let again = store
            .append_interactions(
                org,
                vec![search("b", "c1", 2_000), search("a", "c1", 1_000)],
            )
            .await
            .unwrap();
        assert_eq!((again.inserted, again.duplicates), (0, 2));
        store.close().await;
    }

    #[test]
    fn days_are_utc_and_floor_negative_times() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(-1), -1);
    }

    #[test]
    fn stitching_finds_anonymous_rows_through_their_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN UPDATE interactions SET contact_id = ?3
                 WHERE org_id = ?1 AND session_id = ?2 AND contact_id IS NULL",
            )
            .unwrap()
            .query_map(params![1, "s", "c"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("interactions_anonymous")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_timeline_day_is_read_in_index_order_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {TIMELINE_DAY}"))
            .unwrap()
            .query_map(params![1, 1, "c", 0, 9, 0, 0, 10], |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("interactions_by_contact")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }
}
