//! Portals, interaction-type definitions, contacts and cases in SQLite.

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Row, params};
use serde_json::{Map, Value};
use tracklog_domain::contact::{Case, CaseStatus, Contact};
use tracklog_domain::ids::{CaseId, ContactId, OrgId, PolicyName, PortalId, TypeName};
use tracklog_domain::portal::{Origin, Portal, TypeDef, TypeState};
use tracklog_domain::time::UtcMillis;

use super::compact::{decode_id, encode_id};
use super::{SqliteStore, is_unique_violation, sql_error};
use crate::{PortalStore, StoreError};

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} is not valid"))
}

const PORTAL_COLUMNS: &str =
    "id, name, allowed_origins, policy, retention_days, public_key, created_at, updated_at";

fn row_to_portal(row: &Row<'_>) -> Result<Portal, StoreError> {
    let get_text = |i: usize| row.get::<_, String>(i).map_err(sql_error);
    let origins: Vec<String> =
        serde_json::from_str(&get_text(2)?).map_err(|_| corrupt("portal origins"))?;
    Ok(Portal {
        id: PortalId::parse(get_text(0)?).map_err(|_| corrupt("portal id"))?,
        name: get_text(1)?,
        allowed_origins: origins
            .iter()
            .map(|o| Origin::parse(o))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("portal origin"))?,
        policy: row
            .get::<_, Option<String>>(3)
            .map_err(sql_error)?
            .map(PolicyName::parse)
            .transpose()
            .map_err(|_| corrupt("portal policy"))?,
        retention_days: row.get(4).map_err(sql_error)?,
        public_key: get_text(5)?,
        created_at: UtcMillis::from_millis(row.get(6).map_err(sql_error)?),
        updated_at: UtcMillis::from_millis(row.get(7).map_err(sql_error)?),
    })
}

fn origins_json(portal: &Portal) -> String {
    serde_json::to_string(&portal.allowed_origins).unwrap_or_else(|_| "[]".into())
}

fn row_to_type(row: &Row<'_>) -> Result<TypeDef, StoreError> {
    let schema: Option<String> = row.get(2).map_err(sql_error)?;
    let state: String = row.get(3).map_err(sql_error)?;
    Ok(TypeDef {
        name: TypeName::parse(row.get::<_, String>(0).map_err(sql_error)?)
            .map_err(|_| corrupt("type name"))?,
        display_name: row.get(1).map_err(sql_error)?,
        fields_schema: schema
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|_| corrupt("type schema"))?,
        state: TypeState::parse(&state).ok_or_else(|| corrupt("type state"))?,
        builtin: row.get(4).map_err(sql_error)?,
        updated_at: UtcMillis::from_millis(row.get(5).map_err(sql_error)?),
    })
}

fn id_text(row: &Row<'_>, index: usize, what: &str) -> Result<String, StoreError> {
    match row.get_ref(index).map_err(sql_error)? {
        ValueRef::Null => Err(corrupt(what)),
        stored => decode_id(stored).ok_or_else(|| corrupt(what)),
    }
}

const CONTACT_COLUMNS: &str = "id, name, email, attributes, updated_at";

fn row_to_contact(row: &Row<'_>) -> Result<Contact, StoreError> {
    let attributes: String = row.get(3).map_err(sql_error)?;
    let attributes: Map<String, Value> =
        serde_json::from_str(&attributes).map_err(|_| corrupt("contact attributes"))?;
    Ok(Contact {
        id: ContactId::parse(id_text(row, 0, "contact id")?).map_err(|_| corrupt("contact id"))?,
        name: row.get(1).map_err(sql_error)?,
        email: row.get(2).map_err(sql_error)?,
        attributes,
        updated_at: UtcMillis::from_millis(row.get(4).map_err(sql_error)?),
    })
}

const CASE_COLUMNS: &str = "id, contact_id, title, created_at, status";

fn row_to_case(row: &Row<'_>) -> Result<Case, StoreError> {
    let status: String = row.get(4).map_err(sql_error)?;
    Ok(Case {
        id: CaseId::parse(row.get::<_, String>(0).map_err(sql_error)?)
            .map_err(|_| corrupt("case id"))?,
        contact_id: ContactId::parse(id_text(row, 1, "case contact")?)
            .map_err(|_| corrupt("case contact"))?,
        title: row.get(2).map_err(sql_error)?,
        created_at: UtcMillis::from_millis(row.get(3).map_err(sql_error)?),
        status: CaseStatus::parse(&status).ok_or_else(|| corrupt("case status"))?,
    })
}

/// Runs a query and maps every row with a fallible mapper.
fn collect<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
    let mut rows = stmt.query(params).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(map(row)?);
    }
    Ok(out)
}

fn first<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    Ok(collect(conn, sql, params, map)?.into_iter().next())
}

#[async_trait]
impl PortalStore for SqliteStore {
    async fn create_portal(&self, org: OrgId, portal: Portal) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            let live: bool = ctx
                .conn
                .query_row(
                    "SELECT count(*) FROM portals WHERE org_id = ?1 AND id = ?2 AND deleted = 0",
                    params![org.0, portal.id.as_str()],
                    |r| r.get(0),
                )
                .map_err(sql_error)?;
            if live {
                return Err(StoreError::Conflict(format!("portal {}", portal.id)));
            }
            // A deleted portal's row gives way to the new registration.
            ctx.conn
                .execute(
                    "DELETE FROM portals WHERE org_id = ?1 AND id = ?2 AND deleted = 1",
                    params![org.0, portal.id.as_str()],
                )
                .map_err(sql_error)?;
            ctx.conn
                .execute(
                    "INSERT INTO portals (org_id, id, name, allowed_origins, policy,
                        retention_days, public_key, deleted, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9)",
                    params![
                        org.0,
                        portal.id.as_str(),
                        portal.name,
                        origins_json(&portal),
                        portal.policy.as_ref().map(|p| p.as_str()),
                        portal.retention_days,
                        portal.public_key,
                        portal.created_at.as_millis(),
                        portal.updated_at.as_millis(),
                    ],
                )
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Conflict("the public key".into())
                    } else {
                        sql_error(e)
                    }
                })?;
            Ok(())
        })
        .await
    }

    async fn portal(&self, org: OrgId, id: &PortalId) -> Result<Option<Portal>, StoreError> {
        let id = id.clone();
        self.read(move |conn| {
            first(
                conn,
                &format!(
                    "SELECT {PORTAL_COLUMNS} FROM portals WHERE org_id = ?1 AND id = ?2 AND deleted = 0"
                ),
                params![org.0, id.as_str()],
                row_to_portal,
            )
        })
        .await
    }

    async fn portal_by_public_key(&self, key: &str) -> Result<Option<(OrgId, Portal)>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            let org: Option<i64> = conn
                .query_row(
                    "SELECT org_id FROM portals WHERE public_key = ?1 AND deleted = 0",
                    [&key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql_error)?;
            let Some(org) = org else { return Ok(None) };
            let portal = first(
                conn,
                &format!("SELECT {PORTAL_COLUMNS} FROM portals WHERE public_key = ?1"),
                [&key],
                row_to_portal,
            )?;
            Ok(portal.map(|p| (OrgId(org), p)))
        })
        .await
    }

    async fn list_portals(&self, org: OrgId) -> Result<Vec<Portal>, StoreError> {
        self.read(move |conn| {
            collect(
                conn,
                &format!(
                    "SELECT {PORTAL_COLUMNS} FROM portals WHERE org_id = ?1 AND deleted = 0 ORDER BY id"
                ),
                [org.0],
                row_to_portal,
            )
        })
        .await
    }

    async fn update_portal(&self, org: OrgId, portal: Portal) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            let changed = ctx
                .conn
                .execute(
                    "UPDATE portals SET name = ?3, allowed_origins = ?4, policy = ?5,
                        retention_days = ?6, public_key = ?7, updated_at = ?8
                     WHERE org_id = ?1 AND id = ?2 AND deleted = 0",
                    params![
                        org.0,
                        portal.id.as_str(),
                        portal.name,
                        origins_json(&portal),
                        portal.policy.as_ref().map(|p| p.as_str()),
                        portal.retention_days,
                        portal.public_key,
                        portal.updated_at.as_millis(),
                    ],
                )
                .map_err(sql_error)?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("portal {}", portal.id)));
            }
            Ok(())
        })
        .await
    }

    async fn delete_portal(&self, org: OrgId, id: &PortalId) -> Result<(), StoreError> {
        let id = id.clone();
        self.write(1, move |ctx| {
            // The public key is replaced by a value no one holds, so the old
            // key stops working and stays unique.
            let changed = ctx
                .conn
                .execute(
                    "UPDATE portals SET deleted = 1, public_key = 'deleted:' || hex(randomblob(16)),
                        updated_at = ?3
                     WHERE org_id = ?1 AND id = ?2 AND deleted = 0",
                    params![org.0, id.as_str(), UtcMillis::now().as_millis()],
                )
                .map_err(sql_error)?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("portal {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn deleted_portals(&self, org: OrgId) -> Result<Vec<PortalId>, StoreError> {
        self.read(move |conn| {
            collect(
                conn,
                "SELECT id FROM portals WHERE org_id = ?1 AND deleted = 1",
                [org.0],
                |row| {
                    PortalId::parse(row.get::<_, String>(0).map_err(sql_error)?)
                        .map_err(|_| corrupt("portal id"))
                },
            )
        })
        .await
    }

    async fn stored_types(&self, org: OrgId) -> Result<Vec<TypeDef>, StoreError> {
        self.read(move |conn| {
            collect(
                conn,
                "SELECT name, display_name, fields_schema, state, builtin, updated_at
                 FROM interaction_types WHERE org_id = ?1 ORDER BY name",
                [org.0],
                row_to_type,
            )
        })
        .await
    }

    async fn create_type(&self, org: OrgId, def: TypeDef) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            insert_type(ctx.conn, org, &def, false).map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("interaction type {}", def.name))
                } else {
                    sql_error(e)
                }
            })
        })
        .await
    }

    async fn put_type(&self, org: OrgId, def: TypeDef) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            insert_type(ctx.conn, org, &def, true).map_err(sql_error)
        })
        .await
    }

    async fn upsert_contacts(
        &self,
        org: OrgId,
        contacts: Vec<Contact>,
    ) -> Result<usize, StoreError> {
        if contacts.is_empty() {
            return Ok(0);
        }
        self.write(contacts.len(), move |ctx| {
            let mut created = 0;
            for update in contacts {
                let key = encode_id(update.id.as_str());
                let existing = first(
                    ctx.conn,
                    &format!(
                        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE org_id = ?1 AND id = ?2"
                    ),
                    params![org.0, key],
                    row_to_contact,
                )?;
                let contact = match existing {
                    Some(mut stored) => {
                        stored.merge(update);
                        stored
                    }
                    None => {
                        created += 1;
                        update
                    }
                };
                ctx.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO contacts (org_id, id, name, email, attributes, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            org.0,
                            key,
                            contact.name,
                            contact.email,
                            Value::Object(contact.attributes).to_string(),
                            contact.updated_at.as_millis(),
                        ])
                    })
                    .map_err(sql_error)?;
            }
            Ok(created)
        })
        .await
    }

    async fn contact(&self, org: OrgId, id: &ContactId) -> Result<Option<Contact>, StoreError> {
        let key = encode_id(id.as_str());
        self.read(move |conn| {
            first(
                conn,
                &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE org_id = ?1 AND id = ?2"),
                params![org.0, key],
                row_to_contact,
            )
        })
        .await
    }

    async fn list_contacts(
        &self,
        org: OrgId,
        after: Option<ContactId>,
        limit: usize,
    ) -> Result<Vec<Contact>, StoreError> {
        self.read(move |conn| {
            // Ids sort in their stored order (compact UUIDs, then text); the
            // cursor is the last id of the previous page in that same order.
            match after {
                Some(after) => collect(
                    conn,
                    &format!(
                        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE org_id = ?1 AND id > ?2
                         ORDER BY id LIMIT ?3"
                    ),
                    params![org.0, encode_id(after.as_str()), limit as i64],
                    row_to_contact,
                ),
                None => collect(
                    conn,
                    &format!(
                        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE org_id = ?1 ORDER BY id LIMIT ?2"
                    ),
                    params![org.0, limit as i64],
                    row_to_contact,
                ),
            }
        })
        .await
    }

    async fn delete_contact(&self, org: OrgId, id: &ContactId) -> Result<(bool, u64), StoreError> {
        let key = encode_id(id.as_str());
        self.write(1, move |ctx| {
            let profile = ctx
                .conn
                .execute(
                    "DELETE FROM contacts WHERE org_id = ?1 AND id = ?2",
                    params![org.0, key],
                )
                .map_err(sql_error)?;
            let cases = ctx
                .conn
                .execute(
                    "DELETE FROM cases WHERE org_id = ?1 AND contact_id = ?2",
                    params![org.0, key],
                )
                .map_err(sql_error)?;
            Ok((profile > 0, cases as u64))
        })
        .await
    }

    async fn upsert_case(&self, org: OrgId, case: Case) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT OR REPLACE INTO cases (org_id, id, contact_id, title, created_at, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        org.0,
                        case.id.as_str(),
                        encode_id(case.contact_id.as_str()),
                        case.title,
                        case.created_at.as_millis(),
                        case.status.as_str(),
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn case(&self, org: OrgId, id: &CaseId) -> Result<Option<Case>, StoreError> {
        let id = id.clone();
        self.read(move |conn| {
            first(
                conn,
                &format!("SELECT {CASE_COLUMNS} FROM cases WHERE org_id = ?1 AND id = ?2"),
                params![org.0, id.as_str()],
                row_to_case,
            )
        })
        .await
    }

    async fn list_cases(
        &self,
        org: OrgId,
        contact: Option<ContactId>,
        limit: usize,
    ) -> Result<Vec<Case>, StoreError> {
        self.read(move |conn| match contact {
            Some(contact) => collect(
                conn,
                &format!(
                    "SELECT {CASE_COLUMNS} FROM cases WHERE org_id = ?1 AND contact_id = ?2
                     ORDER BY created_at DESC LIMIT ?3"
                ),
                params![org.0, encode_id(contact.as_str()), limit as i64],
                row_to_case,
            ),
            None => collect(
                conn,
                &format!(
                    "SELECT {CASE_COLUMNS} FROM cases WHERE org_id = ?1
                     ORDER BY created_at DESC LIMIT ?2"
                ),
                params![org.0, limit as i64],
                row_to_case,
            ),
        })
        .await
    }
}

fn insert_type(
    conn: &rusqlite::Connection,
    org: OrgId,
    def: &TypeDef,
    replace: bool,
) -> rusqlite::Result<()> {
    let verb = if replace {
        "INSERT OR REPLACE"
    } else {
        "INSERT"
    };
    conn.execute(
        &format!(
            "{verb} INTO interaction_types
                (org_id, name, display_name, fields_schema, state, builtin, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ),
        params![
            org.0,
            def.name.as_str(),
            def.display_name,
            def.fields_schema.as_ref().map(Value::to_string),
            def.state.as_str(),
            def.builtin,
            def.updated_at.as_millis(),
        ],
    )
    .map(|_| ())
}
