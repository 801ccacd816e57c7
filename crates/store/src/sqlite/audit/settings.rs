//! The activity log's settings: what each org records (§5.3), how long it
//! keeps its records, and where each forwarder has got to.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};
use tracklog_domain::audit::settings::{EntityAuditSettings, OrgAuditSettings};
use tracklog_domain::ids::OrgId;

use super::super::sql_error;
use super::internal;
use crate::StoreError;

type SettingsRow = (bool, bool, bool, String, String);

fn settings_row(row: &Row<'_>) -> rusqlite::Result<SettingsRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

pub(super) fn org_settings(conn: &Connection, org: OrgId) -> Result<OrgAuditSettings, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT auditing_enabled, user_access_auditing, read_auditing, excluded_messages,
                sign_in_operations
             FROM audit_settings WHERE org_id = ?1",
        )
        .and_then(|mut s| s.query_row([org.0], settings_row).optional())
        .map_err(sql_error)?;
    match found {
        None => Ok(OrgAuditSettings::default()),
        Some((enabled, access, read, excluded, sign_in)) => Ok(OrgAuditSettings {
            auditing_enabled: enabled,
            user_access_auditing: access,
            read_auditing: read,
            excluded_messages: serde_json::from_str(&excluded).map_err(internal)?,
            sign_in_operations: serde_json::from_str(&sign_in).map_err(internal)?,
        }),
    }
}

pub(super) fn put_org_settings(
    conn: &Connection,
    org: OrgId,
    settings: &OrgAuditSettings,
) -> Result<(), StoreError> {
    let excluded = serde_json::to_string(&settings.excluded_messages).map_err(internal)?;
    let sign_in = serde_json::to_string(&settings.sign_in_operations).map_err(internal)?;
    conn.execute(
        "INSERT INTO audit_settings
               (org_id, auditing_enabled, user_access_auditing, read_auditing,
                excluded_messages, sign_in_operations)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(org_id) DO UPDATE SET auditing_enabled = ?2,
               user_access_auditing = ?3, read_auditing = ?4, excluded_messages = ?5,
               sign_in_operations = ?6",
        params![
            org.0,
            settings.auditing_enabled,
            settings.user_access_auditing,
            settings.read_auditing,
            excluded,
            sign_in
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn entity_settings(
    conn: &Connection,
    org: OrgId,
    entities: Vec<String>,
) -> Result<HashMap<String, EntityAuditSettings>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT auditing, single_record_read, multiple_record_read
             FROM audit_entity_settings WHERE org_id = ?1 AND entity = ?2",
        )
        .map_err(sql_error)?;
    let mut out = HashMap::new();
    for entity in entities {
        let key = entity.to_lowercase();
        if out.contains_key(&key) {
            continue;
        }
        let found = stmt
            .query_row(params![org.0, key], |r| {
                Ok(EntityAuditSettings {
                    auditing: r.get(0)?,
                    single_record_read: r.get(1)?,
                    multiple_record_read: r.get(2)?,
                })
            })
            .optional()
            .map_err(sql_error)?;
        if let Some(settings) = found {
            out.insert(key, settings);
        }
    }
    Ok(out)
}

pub(super) fn put_entity_settings(
    conn: &Connection,
    org: OrgId,
    entity: &str,
    settings: EntityAuditSettings,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit_entity_settings
               (org_id, entity, auditing, single_record_read, multiple_record_read)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(org_id, entity) DO UPDATE SET auditing = ?3,
               single_record_read = ?4, multiple_record_read = ?5",
        params![
            org.0,
            entity.to_lowercase(),
            settings.auditing,
            settings.single_record_read,
            settings.multiple_record_read
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn retention_days(conn: &Connection, org: OrgId) -> Result<Option<u32>, StoreError> {
    let found: Option<Option<u32>> = conn
        .query_row(
            "SELECT retention_days FROM audit_settings WHERE org_id = ?1",
            [org.0],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    Ok(found.flatten())
}

pub(super) fn set_retention_days(
    conn: &Connection,
    org: OrgId,
    days: Option<u32>,
) -> Result<(), StoreError> {
    let defaults = OrgAuditSettings::default();
    let excluded = serde_json::to_string(&defaults.excluded_messages).map_err(internal)?;
    conn.execute(
        "INSERT INTO audit_settings (org_id, auditing_enabled, user_access_auditing,
               read_auditing, excluded_messages, retention_days)
             VALUES (?1, 1, 1, 1, ?2, ?3)
             ON CONFLICT(org_id) DO UPDATE SET retention_days = ?3",
        params![org.0, excluded, days],
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn forward_cursor(
    conn: &Connection,
    forwarder: &str,
    org: OrgId,
) -> Result<i64, StoreError> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT seq FROM audit_forward_cursors WHERE forwarder = ?1 AND org_id = ?2",
            params![forwarder, org.0],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)?;
    Ok(found.unwrap_or(0))
}

pub(super) fn save_forward_cursor(
    conn: &Connection,
    forwarder: &str,
    org: OrgId,
    sequence: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit_forward_cursors (forwarder, org_id, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT(forwarder, org_id) DO UPDATE SET seq = max(seq, ?3)",
        params![forwarder, org.0, sequence],
    )
    .map_err(sql_error)?;
    Ok(())
}
