//! Orgs, policies, users and web sessions in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tracklog_domain::auth::{PolicyKey, Rights};
use tracklog_domain::ids::{OrgId, OrgName, PolicyName, PortalId, UserName};
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;

use super::{SqliteStore, is_unique_violation, org_name_of, sql_error};
use crate::{KeySlot, MetaStore, Org, Policy, StoreError, User, UserChange, WebSession};

const POLICY_COLUMNS: &str = "org_id, name, rights, primary_key, secondary_key, portal_id, provider_id, created_at, updated_at";

/// A UNIQUE violation is a conflict over `what`; anything else is the engine's.
fn conflict_or(error: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict(what())
    } else {
        sql_error(error)
    }
}

fn row_to_org(row: &Row<'_>) -> rusqlite::Result<(i64, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn org_from(parts: (i64, String, i64)) -> Result<Org, StoreError> {
    Ok(Org {
        id: OrgId(parts.0),
        name: org_name_of(parts.1)?,
        created_at: UtcMillis::from_millis(parts.2),
    })
}

fn row_to_policy(row: &Row<'_>) -> rusqlite::Result<Result<Policy, StoreError>> {
    let name: String = row.get(1)?;
    let portal: Option<String> = row.get(5)?;
    let bad = |what: &str| StoreError::Internal(format!("stored policy has a bad {what}"));
    Ok((|| {
        Ok(Policy {
            org: OrgId(row.get(0).map_err(sql_error)?),
            name: PolicyName::parse(name).map_err(|_| bad("name"))?,
            rights: Rights::from_bits(row.get::<_, u8>(2).map_err(sql_error)?),
            primary_key: PolicyKey::from_stored(row.get(3).map_err(sql_error)?),
            secondary_key: PolicyKey::from_stored(row.get(4).map_err(sql_error)?),
            portal: portal
                .map(PortalId::parse)
                .transpose()
                .map_err(|_| bad("portal"))?,
            provider: row.get(6).map_err(sql_error)?,
            created_at: UtcMillis::from_millis(row.get(7).map_err(sql_error)?),
            updated_at: UtcMillis::from_millis(row.get(8).map_err(sql_error)?),
        })
    })())
}

fn query_policies(
    conn: &Connection,
    filter: &str,
    param: &dyn rusqlite::ToSql,
) -> Result<Vec<Policy>, StoreError> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policies WHERE {filter} ORDER BY name");
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    let rows = stmt.query_map([param], row_to_policy).map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error)?).collect()
}

fn row_to_user(row: &Row<'_>) -> rusqlite::Result<Result<User, StoreError>> {
    let name: String = row.get(1)?;
    let role: String = row.get(2)?;
    Ok((|| {
        Ok(User {
            org: OrgId(row.get(0).map_err(sql_error)?),
            name: UserName::parse(name)
                .map_err(|_| StoreError::Internal("stored user has a bad name".into()))?,
            role: role.parse::<Role>().map_err(StoreError::Internal)?,
            password_hash: row.get(3).map_err(sql_error)?,
            created_at: UtcMillis::from_millis(row.get(4).map_err(sql_error)?),
            disabled: row.get(5).map_err(sql_error)?,
            last_sign_in: row
                .get::<_, Option<i64>>(6)
                .map_err(sql_error)?
                .map(UtcMillis::from_millis),
        })
    })())
}

const USER_COLUMNS: &str = "org_id, name, role, password_hash, created_at, disabled, last_sign_in";

#[async_trait]
impl MetaStore for SqliteStore {
    async fn ensure_org(&self, name: &OrgName) -> Result<Org, StoreError> {
        let name = name.clone();
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT INTO orgs (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
                    params![name.as_str(), UtcMillis::now().as_millis()],
                )
                .map_err(sql_error)?;
            let parts = ctx
                .conn
                .query_row(
                    "SELECT id, name, created_at FROM orgs WHERE name = ?1",
                    [name.as_str()],
                    row_to_org,
                )
                .map_err(sql_error)?;
            org_from(parts)
        })
        .await
    }

    async fn org_by_name(&self, name: &OrgName) -> Result<Option<Org>, StoreError> {
        let name = name.clone();
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, name, created_at FROM orgs WHERE name = ?1",
                [name.as_str()],
                row_to_org,
            )
            .optional()
            .map_err(sql_error)?
            .map(org_from)
            .transpose()
        })
        .await
    }

    async fn org_by_id(&self, id: OrgId) -> Result<Option<Org>, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, name, created_at FROM orgs WHERE id = ?1",
                [id.0],
                row_to_org,
            )
            .optional()
            .map_err(sql_error)?
            .map(org_from)
            .transpose()
        })
        .await
    }

    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, name, created_at FROM orgs ORDER BY id")
                .map_err(sql_error)?;
            let rows = stmt.query_map([], row_to_org).map_err(sql_error)?;
            rows.map(|r| org_from(r.map_err(sql_error)?)).collect()
        })
        .await
    }

    async fn create_policy(&self, policy: Policy) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    &format!("INSERT INTO policies ({POLICY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                    params![
                        policy.org.0,
                        policy.name.as_str(),
                        policy.rights.bits(),
                        policy.primary_key.expose(),
                        policy.secondary_key.expose(),
                        policy.portal.as_ref().map(PortalId::as_str),
                        policy.provider,
                        policy.created_at.as_millis(),
                        policy.updated_at.as_millis(),
                    ],
                )
                .map_err(|e| conflict_or(e, || format!("policy {}", policy.name)))?;
            Ok(())
        })
        .await
    }

    async fn policy(&self, name: &PolicyName) -> Result<Option<Policy>, StoreError> {
        let name = name.clone();
        self.read(move |conn| {
            Ok(query_policies(conn, "name = ?1", &name.as_str())?
                .into_iter()
                .next())
        })
        .await
    }

    async fn list_policies(&self, org: OrgId) -> Result<Vec<Policy>, StoreError> {
        self.read(move |conn| query_policies(conn, "org_id = ?1", &org.0))
            .await
    }

    async fn replace_policy_key(
        &self,
        org: OrgId,
        name: &PolicyName,
        slot: KeySlot,
        key: PolicyKey,
    ) -> Result<Policy, StoreError> {
        let name = name.clone();
        self.write(1, move |ctx| {
            let column = match slot {
                KeySlot::Primary => "primary_key",
                KeySlot::Secondary => "secondary_key",
            };
            let changed = ctx
                .conn
                .execute(
                    &format!(
                        "UPDATE policies SET {column} = ?1, updated_at = ?2 WHERE org_id = ?3 AND name = ?4"
                    ),
                    params![key.expose(), UtcMillis::now().as_millis(), org.0, name.as_str()],
                )
                .map_err(sql_error)?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("policy {name}")));
            }
            query_policies(ctx.conn, "name = ?1", &name.as_str())?
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::NotFound(format!("policy {name}")))
        })
        .await
    }

    async fn delete_policy(&self, org: OrgId, name: &PolicyName) -> Result<(), StoreError> {
        let name = name.clone();
        self.write(1, move |ctx| {
            let deleted = ctx
                .conn
                .execute(
                    "DELETE FROM policies WHERE org_id = ?1 AND name = ?2",
                    params![org.0, name.as_str()],
                )
                .map_err(sql_error)?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!("policy {name}")));
            }
            Ok(())
        })
        .await
    }

    async fn create_user(&self, user: User) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT INTO users (org_id, name, role, password_hash, created_at, disabled, last_sign_in)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        user.org.0,
                        user.name.as_str(),
                        user.role.as_str(),
                        user.password_hash,
                        user.created_at.as_millis(),
                        user.disabled,
                        user.last_sign_in.map(UtcMillis::as_millis),
                    ],
                )
                .map_err(|e| conflict_or(e, || format!("user {}", user.name)))?;
            Ok(())
        })
        .await
    }

    async fn user(&self, name: &UserName) -> Result<Option<User>, StoreError> {
        let name = name.clone();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                [name.as_str()],
                row_to_user,
            )
            .optional()
            .map_err(sql_error)?
            .transpose()
        })
        .await
    }

    async fn list_users(&self, org: OrgId) -> Result<Vec<User>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE org_id = ?1 ORDER BY name"
                ))
                .map_err(sql_error)?;
            let rows = stmt.query_map([org.0], row_to_user).map_err(sql_error)?;
            rows.map(|r| r.map_err(sql_error)?).collect()
        })
        .await
    }

    async fn update_user(
        &self,
        org: OrgId,
        name: &UserName,
        change: UserChange,
    ) -> Result<User, StoreError> {
        let name = name.clone();
        self.write(1, move |ctx| {
            let conn = ctx.conn;
            let found = conn
                .query_row(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE org_id = ?1 AND name = ?2"),
                    params![org.0, name.as_str()],
                    row_to_user,
                )
                .optional()
                .map_err(sql_error)?
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(format!("user {name}")))?;
            let role = change.role.unwrap_or(found.role);
            let disabled = change.disabled.unwrap_or(found.disabled);
            let hash = change
                .password_hash
                .clone()
                .unwrap_or_else(|| found.password_hash.clone());
            conn.execute(
                "UPDATE users SET role = ?1, disabled = ?2, password_hash = ?3 WHERE name = ?4",
                params![role.as_str(), disabled, hash, name.as_str()],
            )
            .map_err(sql_error)?;
            if change.disabled == Some(true) || change.password_hash.is_some() {
                conn.execute(
                    "DELETE FROM web_sessions WHERE user_name = ?1",
                    [name.as_str()],
                )
                .map_err(sql_error)?;
            }
            Ok(User {
                role,
                disabled,
                password_hash: hash,
                ..found
            })
        })
        .await
    }

    async fn delete_user(&self, org: OrgId, name: &UserName) -> Result<(), StoreError> {
        let name = name.clone();
        self.write(1, move |ctx| {
            let deleted = ctx
                .conn
                .execute(
                    "DELETE FROM users WHERE org_id = ?1 AND name = ?2",
                    params![org.0, name.as_str()],
                )
                .map_err(sql_error)?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!("user {name}")));
            }
            ctx.conn
                .execute(
                    "DELETE FROM web_sessions WHERE user_name = ?1",
                    [name.as_str()],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn record_sign_in(&self, name: &UserName, at: UtcMillis) -> Result<(), StoreError> {
        let name = name.clone();
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "UPDATE users SET last_sign_in = ?1 WHERE name = ?2",
                    params![at.as_millis(), name.as_str()],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn create_web_session(&self, session: WebSession) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            let now = UtcMillis::now().as_millis();
            ctx.conn
                .execute("DELETE FROM web_sessions WHERE expires_at <= ?1", [now])
                .map_err(sql_error)?;
            ctx.conn
                .execute(
                    "INSERT INTO web_sessions (token_hash, org_id, user_name, csrf_token, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        session.token_hash,
                        session.org.0,
                        session.user.as_str(),
                        session.csrf_token,
                        session.expires_at.as_millis()
                    ],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn web_session(
        &self,
        token_hash: &str,
        now: UtcMillis,
    ) -> Result<Option<WebSession>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT org_id, user_name, csrf_token, expires_at FROM web_sessions
                     WHERE token_hash = ?1 AND expires_at > ?2",
                    params![token_hash, now.as_millis()],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql_error)?;
            row.map(|(org, user, csrf_token, expires_at)| {
                Ok(WebSession {
                    token_hash,
                    org: OrgId(org),
                    user: UserName::parse(user)
                        .map_err(|_| StoreError::Internal("stored session user".into()))?,
                    csrf_token,
                    expires_at: UtcMillis::from_millis(expires_at),
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_web_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "DELETE FROM web_sessions WHERE token_hash = ?1",
                    [token_hash],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        // An empty job still opens, commits and syncs a write transaction.
        self.write(1, |ctx| {
            ctx.conn
                .execute_batch(
                    "CREATE TEMP TABLE IF NOT EXISTS readiness (x); DELETE FROM readiness;",
                )
                .map_err(sql_error)
        })
        .await
    }
}
