//! The interactions materialiser's apply step: a batch of rows from the log
//! stitched once per session, inserted many rows to a statement in the
//! contact index's order, and added to the journey summaries, all in the
//! writer's transaction.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::ids::OrgId;

use super::compact::encode_id;
use super::events::{Row, day_of};
use super::journeys;
use super::sql_error;
use super::writer::{Dictionary, WriteContext};
use crate::StoreError;

/// The sessions that have anonymous interactions stored and are not linked
/// to a contact yet: the only ones whose earlier rows a new link must
/// stitch. Almost every session is new when it is first identified, so
/// knowing this saves an UPDATE per session. Kept on the writer thread; any
/// rollback makes it read the set again from the partial index
/// `interactions_anonymous`. Digests, so a collision only costs an UPDATE
/// that finds nothing.
#[derive(Default)]
pub(crate) struct AnonymousSessions {
    sessions: std::collections::HashSet<u64>,
    trusted: bool,
}

impl AnonymousSessions {
    fn digest(org: i64, session: &Value) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        org.hash(&mut hasher);
        match session {
            Value::Text(text) => (1u8, text.as_bytes()).hash(&mut hasher),
            Value::Blob(bytes) => (2u8, bytes.as_slice()).hash(&mut hasher),
            _ => 0u8.hash(&mut hasher),
        }
        hasher.finish()
    }

    pub fn distrust(&mut self) {
        self.sessions.clear();
        self.trusted = false;
    }

    fn load(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if self.trusted {
            return Ok(());
        }
        let mut statement = conn
            .prepare(
                "SELECT org_id, session_id FROM interactions INDEXED BY interactions_anonymous
                 WHERE contact_id IS NULL AND session_id IS NOT NULL",
            )
            .map_err(sql_error)?;
        let mut rows = statement.query([]).map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            let org: i64 = row.get(0).map_err(sql_error)?;
            let session: Value = row.get(1).map_err(sql_error)?;
            self.sessions.insert(Self::digest(org, &session));
        }
        self.trusted = true;
        Ok(())
    }
}

pub(super) fn apply_interactions(
    ctx: &mut WriteContext<'_>,
    rows: Vec<(OrgId, Row)>,
) -> Result<(), StoreError> {
    ctx.dict.anonymous.load(ctx.conn)?;
    let mut linked_contact = ctx
        .conn
        .prepare_cached(
            "SELECT contact_id FROM session_contacts WHERE org_id = ?1 AND session_id = ?2",
        )
        .map_err(sql_error)?;
    let mut link = ctx
        .conn
        .prepare_cached(
            "INSERT INTO session_contacts (org_id, session_id, contact_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (org_id, session_id) DO NOTHING",
        )
        .map_err(sql_error)?;
    let mut stitch = ctx
        .conn
        .prepare_cached(
            "UPDATE interactions SET contact_id = ?3, stitched = 1
             WHERE org_id = ?1 AND session_id = ?2 AND contact_id IS NULL
             RETURNING ts, id, type_id, fields",
        )
        .map_err(sql_error)?;

    // Stitching, once per session of the batch rather than once per row:
    // the first contact a session's rows carry (in arrival order, which is
    // the rows' order here) links it unless it is linked already, and its
    // anonymous rows take the contact it is linked to.
    let mut first_contact: HashMap<(i64, &str), Option<&str>> = HashMap::new();
    // Sessions with anonymous rows in this batch: only they need to know
    // the contact a session is linked to.
    let mut anonymous: std::collections::HashSet<(i64, &str)> = std::collections::HashSet::new();
    for (org, row) in &rows {
        if let Some(session) = row.session.as_deref() {
            if row.contact.is_none() {
                anonymous.insert((org.0, session));
            }
            let slot = first_contact.entry((org.0, session)).or_insert(None);
            if slot.is_none() {
                *slot = row.contact.as_deref();
            }
        }
    }
    let mut linked: HashMap<(i64, &str), Option<Value>> =
        HashMap::with_capacity(first_contact.len());
    let mut journey_delta = journeys::Delta::default();
    let mut type_names: HashMap<i64, String> = HashMap::new();
    for ((org, session), contact) in first_contact {
        let key = encode_id(session);
        let contact = match contact {
            Some(contact) => {
                let contact = encode_id(contact);
                if link
                    .execute(params![org, key, contact])
                    .map_err(sql_error)?
                    == 1
                {
                    // Newly linked: the session's anonymous rows of earlier
                    // batches, if it has any, follow.
                    if ctx
                        .dict
                        .anonymous
                        .sessions
                        .remove(&AnonymousSessions::digest(org, &key))
                    {
                        // The rows it gives the contact join its journey.
                        let mut rows = stitch
                            .query(params![org, key, contact])
                            .map_err(sql_error)?;
                        while let Some(row) = rows.next().map_err(sql_error)? {
                            let ts: i64 = row.get(0).map_err(sql_error)?;
                            let id: Value = row.get(1).map_err(sql_error)?;
                            let type_id: i64 = row.get(2).map_err(sql_error)?;
                            let fields: String = row.get(3).map_err(sql_error)?;
                            let kind = type_name(ctx.conn, type_id, &mut type_names)?;
                            journey_delta.add(&journeys::Stored {
                                org,
                                contact: &contact,
                                ts,
                                id: &id,
                                type_id,
                                interaction_type: &kind,
                                session: Some(&key),
                                stitched: true,
                                fields: &fields,
                            });
                        }
                    }
                    Some(contact)
                } else if anonymous.contains(&(org, session)) {
                    // Linked before, perhaps to another contact: that one
                    // is what its anonymous rows take.
                    linked_contact
                        .query_row(params![org, key], |r| r.get(0))
                        .optional()
                        .map_err(sql_error)?
                } else {
                    None
                }
            }
            None => linked_contact
                .query_row(params![org, key], |r| r.get(0))
                .optional()
                .map_err(sql_error)?,
        };
        linked.insert((org, session), contact);
    }

    // Rows sorted by the contact index's key, so that each contact's leaf
    // of that index is visited once per batch.
    let prepared: Vec<(i64, Option<Value>, &Row)> = rows
        .iter()
        .map(|(org, row)| {
            let contact = match (&row.contact, &row.session) {
                (Some(contact), _) => Some(encode_id(contact)),
                (None, Some(session)) => linked.get(&(org.0, session.as_str())).cloned().flatten(),
                (None, None) => None,
            };
            (org.0, contact, row)
        })
        .collect();
    // SQLite orders NULL, then text, then blobs, each by its bytes.
    fn order(value: &Option<Value>) -> (u8, &[u8]) {
        match value {
            None => (0, &[]),
            Some(Value::Text(text)) => (1, text.as_bytes()),
            Some(Value::Blob(bytes)) => (2, bytes),
            Some(_) => (3, &[]),
        }
    }
    // The first eight bytes of the contact decide almost every comparison
    // (ids are mostly UUIDs), so they are compared as one number first.
    fn prefix(bytes: &[u8]) -> u64 {
        let mut head = [0u8; 8];
        let n = bytes.len().min(8);
        head[..n].copy_from_slice(&bytes[..n]);
        u64::from_be_bytes(head)
    }
    let mut keyed: Vec<((i64, i64, u8, u64), usize)> = prepared
        .iter()
        .enumerate()
        .map(|(index, (org, contact, row))| {
            let (class, bytes) = order(contact);
            ((day_of(row.ts), *org, class, prefix(bytes)), index)
        })
        .collect();
    keyed.sort_unstable_by(|(ka, a), (kb, b)| {
        ka.cmp(kb).then_with(|| {
            let (pa, pb) = (&prepared[*a], &prepared[*b]);
            (order(&pa.1).1, pa.2.ts, a).cmp(&(order(&pb.1).1, pb.2.ts, b))
        })
    });
    let mut slots: Vec<Option<(i64, Option<Value>, &Row)>> =
        prepared.into_iter().map(Some).collect();
    let prepared: Vec<(i64, Option<Value>, &Row)> = keyed
        .into_iter()
        .filter_map(|(_, index)| slots[index].take())
        .collect();
    // Most rows share a few types and portals.
    let mut types: HashMap<&str, i64> = HashMap::new();
    let mut portals: HashMap<&str, i64> = HashMap::new();
    let mut values: Vec<Value> = Vec::with_capacity(INSERT_ROWS * COLUMNS);
    // The rows of the statement being built: what the journey summaries
    // take from them once it is known they were inserted.
    let mut chunk: Vec<(usize, i64, Value, Option<Value>)> = Vec::with_capacity(INSERT_ROWS);
    for (index, (org, contact, row)) in prepared.iter().enumerate() {
        let (org, row) = (*org, *row);
        let type_id = match types.get(row.interaction_type.as_str()) {
            Some(id) => *id,
            None => {
                let id = ctx.dict.intern(
                    ctx.conn,
                    Dictionary::INTERACTION_TYPE,
                    &row.interaction_type,
                )?;
                types.insert(&row.interaction_type, id);
                id
            }
        };
        let portal_id = match portals.get(row.portal.as_str()) {
            Some(id) => *id,
            None => {
                let id = ctx.dict.intern(ctx.conn, Dictionary::PORTAL, &row.portal)?;
                portals.insert(&row.portal, id);
                id
            }
        };
        let session = row.session.as_deref().map(encode_id);
        if contact.is_none()
            && let Some(session) = &session
        {
            ctx.dict
                .anonymous
                .sessions
                .insert(AnonymousSessions::digest(org, session));
        }
        // It came without a contact and takes its session's.
        let stitched = row.contact.is_none() && contact.is_some();
        let id = encode_id(&row.id);
        if contact.is_some() {
            chunk.push((index, type_id, id.clone(), session.clone()));
        }
        values.extend([
            Value::Integer(org),
            Value::Integer(day_of(row.ts)),
            Value::Integer(row.ts),
            id,
            Value::Integer(type_id),
            Value::Integer(portal_id),
            contact.clone().unwrap_or(Value::Null),
            session.unwrap_or(Value::Null),
            Value::Text(row.fields.clone()),
            if stitched {
                Value::Integer(1)
            } else {
                Value::Null
            },
        ]);
        if values.len() == INSERT_ROWS * COLUMNS {
            let all = insert_rows(ctx.conn, &mut values)?;
            summarise(&prepared, &mut chunk, all, &mut journey_delta);
        }
    }
    let all = insert_rows(ctx.conn, &mut values)?;
    summarise(&prepared, &mut chunk, all, &mut journey_delta);
    journey_delta.apply(ctx.conn)
}

/// The name of an interaction type, by its dictionary id.
fn type_name(
    conn: &Connection,
    id: i64,
    names: &mut HashMap<i64, String>,
) -> Result<String, StoreError> {
    if let Some(name) = names.get(&id) {
        return Ok(name.clone());
    }
    let name: String = conn
        .prepare_cached("SELECT text FROM dict WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)))
        .map_err(sql_error)?;
    names.insert(id, name.clone());
    Ok(name)
}

/// Adds a statement's rows with a contact to the journey summaries, or,
/// when some were already stored (a retry that got past the probe), marks
/// their hours to be folded again from the table.
fn summarise(
    prepared: &[(i64, Option<Value>, &Row)],
    chunk: &mut Vec<(usize, i64, Value, Option<Value>)>,
    all_inserted: bool,
    journeys: &mut journeys::Delta,
) {
    for (index, type_id, id, session) in chunk.drain(..) {
        let (org, contact, row) = &prepared[index];
        let Some(contact) = contact else { continue };
        if !all_inserted {
            journeys.mark_dirty(*org, contact, row.ts);
            continue;
        }
        journeys.add(&journeys::Stored {
            org: *org,
            contact,
            ts: row.ts,
            id: &id,
            type_id,
            interaction_type: &row.interaction_type,
            session: session.as_ref(),
            stitched: row.contact.is_none(),
            fields: &row.fields,
        });
    }
}

/// Rows per INSERT statement: one statement for many rows saves most of
/// the per-statement cost of SQLite's virtual machine and of binding.
const INSERT_ROWS: usize = 64;
/// Values per interaction row.
const COLUMNS: usize = 10;

/// Inserts the rows whose values are in `values`, and empties it. Answers
/// whether every row was new.
fn insert_rows(conn: &Connection, values: &mut Vec<Value>) -> Result<bool, StoreError> {
    if values.is_empty() {
        return Ok(true);
    }
    let rows = values.len() / COLUMNS;
    let sql = format!(
        "INSERT INTO interactions
            (org_id, day, ts, id, type_id, portal_id, contact_id, session_id, fields, stitched)
         VALUES {}
         ON CONFLICT (org_id, ts, id) DO NOTHING",
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ")
    );
    let inserted = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(values.drain(..))))
        .map_err(sql_error)?;
    Ok(inserted == rows)
}
