//! The channel pillar's settings: providers, custom KPI event definitions,
//! queue thresholds, alert rules and the alerts they raised.

use rusqlite::{Connection, OptionalExtension, params};
use tracklog_domain::channel::alerts::AlertRule;
use tracklog_domain::channel::definitions::Definition;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::super::sql_error;
use super::{corrupt, load_records, to_json};
use crate::{Alert, Provider, QueueSettings, StoreError};

pub(super) fn put_provider(
    conn: &Connection,
    org: OrgId,
    provider: &Provider,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO ch_providers (org_id, id, name, enable_analytics, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (org_id, id) DO UPDATE SET name = excluded.name,
                enable_analytics = excluded.enable_analytics, updated_at = excluded.updated_at",
        params![
            org.0,
            provider.id,
            provider.name,
            provider.enable_analytics,
            provider.created_at.as_millis(),
            provider.updated_at.as_millis()
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn provider(
    conn: &Connection,
    org: OrgId,
    id: &str,
) -> Result<Option<Provider>, StoreError> {
    conn.query_row(
        "SELECT id, name, enable_analytics, created_at, updated_at FROM ch_providers
         WHERE org_id = ?1 AND id = ?2",
        params![org.0, id],
        row_to_provider,
    )
    .optional()
    .map_err(sql_error)
}

pub(super) fn providers(conn: &Connection, org: OrgId) -> Result<Vec<Provider>, StoreError> {
    let mut statement = conn
        .prepare(
            "SELECT id, name, enable_analytics, created_at, updated_at FROM ch_providers
             WHERE org_id = ?1 ORDER BY id",
        )
        .map_err(sql_error)?;
    statement
        .query_map(params![org.0], row_to_provider)
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)
}

pub(super) fn disabled_providers(
    conn: &Connection,
    org: OrgId,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut statement = conn
        .prepare_cached("SELECT id FROM ch_providers WHERE org_id = ?1 AND NOT enable_analytics")
        .map_err(sql_error)?;
    statement
        .query_map(params![org.0], |r| r.get(0))
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)
}

pub(super) fn delete_provider(conn: &Connection, org: OrgId, id: &str) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "DELETE FROM ch_providers WHERE org_id = ?1 AND id = ?2",
            params![org.0, id],
        )
        .map_err(sql_error)?;
    Ok(n > 0)
}

pub(super) fn put_definition(
    conn: &Connection,
    org: OrgId,
    definition: &Definition,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO ch_definitions (org_id, name, display_name, description, enabled)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            org.0,
            definition.name,
            definition.display_name,
            definition.description,
            definition.enabled
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn custom_definitions(
    conn: &Connection,
    org: OrgId,
) -> Result<Vec<Definition>, StoreError> {
    let mut statement = conn
        .prepare(
            "SELECT name, display_name, description, enabled FROM ch_definitions
             WHERE org_id = ?1 ORDER BY name",
        )
        .map_err(sql_error)?;
    statement
        .query_map(params![org.0], |r| {
            Ok(Definition {
                name: r.get(0)?,
                display_name: r.get(1)?,
                description: r.get(2)?,
                builtin: false,
                enabled: r.get(3)?,
            })
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)
}

pub(super) fn delete_definition(
    conn: &Connection,
    org: OrgId,
    name: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "DELETE FROM ch_definitions WHERE org_id = ?1 AND name = ?2",
            params![org.0, name],
        )
        .map_err(sql_error)?;
    Ok(n > 0)
}

pub(super) fn put_queue(
    conn: &Connection,
    org: OrgId,
    queue: &QueueSettings,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO ch_queues (org_id, queue, service_level_seconds,
                short_abandon_seconds, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            org.0,
            queue.queue,
            queue.service_level_seconds,
            queue.short_abandon_seconds,
            queue.updated_at.as_millis()
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn queues(conn: &Connection, org: OrgId) -> Result<Vec<QueueSettings>, StoreError> {
    let mut statement = conn
        .prepare(
            "SELECT queue, service_level_seconds, short_abandon_seconds, updated_at
             FROM ch_queues WHERE org_id = ?1 ORDER BY queue",
        )
        .map_err(sql_error)?;
    statement
        .query_map(params![org.0], |r| {
            Ok(QueueSettings {
                queue: r.get(0)?,
                service_level_seconds: r.get(1)?,
                short_abandon_seconds: r.get(2)?,
                updated_at: UtcMillis::from_millis(r.get(3)?),
            })
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)
}

pub(super) fn put_alert_rule(
    conn: &Connection,
    org: OrgId,
    rule: &AlertRule,
) -> Result<(), StoreError> {
    let text = to_json(&StoredRule(rule))?;
    conn.execute(
        "INSERT OR REPLACE INTO ch_alert_rules (org_id, id, rule) VALUES (?1, ?2, ?3)",
        params![org.0, rule.id, text],
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn alert_rules(conn: &Connection, org: OrgId) -> Result<Vec<AlertRule>, StoreError> {
    let stored: Vec<serde_json::Value> = load_records(
        conn,
        "SELECT rule FROM ch_alert_rules WHERE org_id = ?1 ORDER BY id",
        params![org.0],
        "alert rule",
    )?;
    stored
        .into_iter()
        .map(|mut value| {
            let secret = value
                .get("webhook_secret")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            if let Some(object) = value.as_object_mut() {
                object.remove("webhook_secret");
            }
            let mut rule: AlertRule =
                serde_json::from_value(value).map_err(|_| corrupt("alert rule"))?;
            rule.webhook_secret = secret;
            Ok(rule)
        })
        .collect()
}

pub(super) fn delete_alert_rule(
    conn: &Connection,
    org: OrgId,
    id: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "DELETE FROM ch_alert_rules WHERE org_id = ?1 AND id = ?2",
            params![org.0, id],
        )
        .map_err(sql_error)?;
    Ok(n > 0)
}

pub(super) fn put_alert(conn: &Connection, org: OrgId, alert: &Alert) -> Result<(), StoreError> {
    let text = to_json(alert)?;
    conn.execute(
        "INSERT OR REPLACE INTO ch_alerts (org_id, id, rule_id, state, started_at, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            org.0,
            alert.id,
            alert.rule_id,
            alert.state,
            alert.started_at.as_millis(),
            text
        ],
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(super) fn alerts(
    conn: &Connection,
    org: OrgId,
    open_only: bool,
    limit: usize,
) -> Result<Vec<Alert>, StoreError> {
    let sql = if open_only {
        "SELECT record FROM ch_alerts WHERE org_id = ?1 AND state != 'resolved'
         ORDER BY started_at DESC, id LIMIT ?2"
    } else {
        "SELECT record FROM ch_alerts WHERE org_id = ?1 ORDER BY started_at DESC, id LIMIT ?2"
    };
    load_records(conn, sql, params![org.0, limit as i64], "alert")
}

/// A rule as stored: with its webhook secret, which the API never shows.
struct StoredRule<'a>(&'a AlertRule);

impl serde::Serialize for StoredRule<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(self.0).map_err(serde::ser::Error::custom)?;
        if let (Some(object), Some(secret)) = (value.as_object_mut(), &self.0.webhook_secret) {
            object.insert("webhook_secret".into(), secret.clone().into());
        }
        value.serialize(serializer)
    }
}

fn row_to_provider(r: &rusqlite::Row<'_>) -> rusqlite::Result<Provider> {
    Ok(Provider {
        id: r.get(0)?,
        name: r.get(1)?,
        enable_analytics: r.get(2)?,
        created_at: UtcMillis::from_millis(r.get(3)?),
        updated_at: UtcMillis::from_millis(r.get(4)?),
    })
}
