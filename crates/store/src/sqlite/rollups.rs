//! The channel rollups: pre-aggregated sums and counts per metric part, and
//! the aggregate queries that read them.
//!
//! The same sums are kept at four grains, each a table:
//!
//! | table | bucket | dimensions | read by |
//! |---|---|---|---|
//! | `ch_agg` | 15 minutes | queue, channel, agent, provider, sentiment band | queries that filter or group by agent or band |
//! | `ch_agg_q` | 15 minutes | queue, channel, provider | queries whose intervals are not whole hours |
//! | `ch_agg_h` | 1 hour | queue, channel, provider | dashboards by channel or provider |
//! | `ch_agg_hq` | 1 hour | queue, with a column pair per part | dashboards by queue or of the whole centre |
//!
//! A contact centre has tens of agents per queue, so dropping the agent
//! dimension divides the rows a dashboard reads by about that many, the
//! hour divides them by four again, and the queue alone by the queue's
//! channels and providers (three in the bench's centre); `ch_agg_hq` keeps
//! every part of an hour and queue in one row (see `queue_hours.rs`). Every
//! change moves all four tables in the writer's transaction, by the same
//! delta, so they always agree with each other and with a rebuild from the
//! raw records. A transaction sums the deltas of every session it
//! re-derives ([`Pending`]) and writes each changed row once.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use tracklog_domain::channel::metrics::{Contribution, Dimension, Part};
use tracklog_domain::channel::series::Row;
use tracklog_domain::ids::OrgId;

use super::{queue_hours, sql_error};
use crate::{AggregateQuery, StoreError};

/// The tables that hold rollups, for a rebuild to empty.
pub(super) const TABLES: [&str; 4] = ["ch_agg", "ch_agg_q", "ch_agg_h", "ch_agg_hq"];

const QUARTER_MS: i64 = 900_000;
const HOUR_MS: i64 = 3_600_000;

/// part, bucket, queue, channel, agent, provider, sentiment band.
type ContribKey = (u8, i64, String, String, String, String, String);

/// A stored contribution: as written since the sentiment band, or as
/// written before it (six fields), whose band is none.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StoredKey {
    Banded(ContribKey),
    Before((u8, i64, String, String, String, String)),
}

impl From<StoredKey> for ContribKey {
    fn from(key: StoredKey) -> Self {
        match key {
            StoredKey::Banded(key) => key,
            StoredKey::Before((part, bucket, queue, channel, agent, provider)) => {
                (part, bucket, queue, channel, agent, provider, String::new())
            }
        }
    }
}

fn keyed(contributions: &[Contribution]) -> BTreeMap<ContribKey, (f64, i64)> {
    let mut map: BTreeMap<ContribKey, (f64, i64)> = BTreeMap::new();
    for c in contributions {
        let key = (
            c.part.code(),
            c.bucket,
            c.dims.queue.clone(),
            c.dims.channel.clone(),
            c.dims.agent.clone(),
            c.dims.provider.clone(),
            c.dims.band.clone(),
        );
        let entry = map.entry(key).or_default();
        entry.0 += c.sum;
        entry.1 += c.count;
    }
    map
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored {what} is not valid"))
}

/// The rollup deltas of one transaction, by org: every session and agent it
/// re-derives adds its difference here, and [`Pending::flush`] writes each
/// changed rollup row once. A batch of a thousand sessions in one queue and
/// hour moves that hour's coarse rows once instead of a thousand times.
#[derive(Default)]
pub(super) struct Pending {
    deltas: BTreeMap<i64, BTreeMap<ContribKey, (f64, i64)>>,
}

impl Pending {
    /// Writes every accumulated delta to the four grains and empties itself.
    pub(super) fn flush(&mut self, conn: &Connection) -> Result<(), StoreError> {
        for (org, mut delta) in std::mem::take(&mut self.deltas) {
            delta.retain(|_, (sum, count)| *sum != 0.0 || *count != 0);
            write_deltas(conn, OrgId(org), &delta)?;
        }
        Ok(())
    }
}

/// Replaces `owner`'s contributions (kept in `ch_contrib`) and adds the
/// difference to `pending`, which moves the rollups when flushed in the same
/// transaction. Returns how many 15-minute, per-agent buckets change.
pub(super) fn apply_contributions(
    conn: &Connection,
    org: OrgId,
    owner: &str,
    new: &[Contribution],
    pending: &mut Pending,
) -> Result<usize, StoreError> {
    let old_text: Option<String> = conn
        .prepare_cached("SELECT entries FROM ch_contrib WHERE org_id = ?1 AND owner = ?2")
        .and_then(|mut s| s.query_row(params![org.0, owner], |r| r.get(0)).optional())
        .map_err(sql_error)?;
    let old: Vec<(ContribKey, (f64, i64))> = match &old_text {
        Some(text) => serde_json::from_str::<Vec<(StoredKey, (f64, i64))>>(text)
            .map_err(|_| corrupt("contributions"))?
            .into_iter()
            .map(|(key, value)| (key.into(), value))
            .collect(),
        None => Vec::new(),
    };
    let new = keyed(new);
    let mut delta: BTreeMap<&ContribKey, (f64, i64)> = BTreeMap::new();
    for (key, (sum, count)) in &old {
        let entry = delta.entry(key).or_default();
        entry.0 -= sum;
        entry.1 -= count;
    }
    for (key, (sum, count)) in &new {
        let entry = delta.entry(key).or_default();
        entry.0 += sum;
        entry.1 += count;
    }
    delta.retain(|_, (sum, count)| *sum != 0.0 || *count != 0);
    let changed = delta.len();
    let org_pending = pending.deltas.entry(org.0).or_default();
    for (key, (sum, count)) in delta {
        // Clones only keys that change; most re-derivations change few.
        let entry = org_pending.entry(key.clone()).or_default();
        entry.0 += sum;
        entry.1 += count;
    }

    if new.is_empty() {
        if old_text.is_some() {
            conn.prepare_cached("DELETE FROM ch_contrib WHERE org_id = ?1 AND owner = ?2")
                .and_then(|mut s| s.execute(params![org.0, owner]))
                .map_err(sql_error)?;
        }
    } else if changed > 0 || old_text.is_none() {
        let entries: Vec<(&ContribKey, &(f64, i64))> = new.iter().collect();
        let entries_json =
            serde_json::to_string(&entries).map_err(|e| StoreError::Internal(e.to_string()))?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO ch_contrib (org_id, owner, entries) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![org.0, owner, entries_json]))
        .map_err(sql_error)?;
    }
    Ok(changed)
}

/// Moves the four grains by one org's per-agent delta: `ch_agg` by it as
/// is, the coarser tables by the same delta without the agent.
fn write_deltas(
    conn: &Connection,
    org: OrgId,
    delta: &BTreeMap<ContribKey, (f64, i64)>,
) -> Result<(), StoreError> {
    type Coarse<'a> = (u8, i64, &'a str, &'a str, &'a str);
    let mut quarters: BTreeMap<Coarse<'_>, (f64, i64)> = BTreeMap::new();
    let mut hours: BTreeMap<Coarse<'_>, (f64, i64)> = BTreeMap::new();
    let mut queue_hours: BTreeMap<(i64, &str), queue_hours::Delta> = BTreeMap::new();
    for (key, (sum, count)) in delta {
        let (part, bucket, queue, channel, _, provider, _) = key;
        let hour = bucket.div_euclid(HOUR_MS) * HOUR_MS;
        for (map, bucket) in [(&mut quarters, *bucket), (&mut hours, hour)] {
            let entry = map
                .entry((*part, bucket, queue, channel, provider))
                .or_default();
            entry.0 += sum;
            entry.1 += count;
        }
        let entry = &mut queue_hours
            .entry((hour, queue))
            .or_insert([(0.0, 0); Part::ALL.len()])[usize::from(*part)];
        entry.0 += sum;
        entry.1 += count;
    }

    for (key, (sum, count)) in delta {
        conn.prepare_cached(
            "INSERT INTO ch_agg (org_id, part, bucket, queue, channel, agent, provider,
                sentiment_band, sum, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT DO UPDATE SET sum = sum + excluded.sum, count = count + excluded.count",
        )
        .and_then(|mut s| {
            s.execute(params![
                org.0, key.0, key.1, key.2, key.3, key.4, key.5, key.6, sum, count
            ])
        })
        .map_err(sql_error)?;
        if *count < 0 {
            conn.prepare_cached(
                "DELETE FROM ch_agg WHERE org_id = ?1 AND part = ?2 AND bucket = ?3 AND queue = ?4
                 AND channel = ?5 AND agent = ?6 AND provider = ?7 AND sentiment_band = ?8
                 AND count <= 0",
            )
            .and_then(|mut s| {
                s.execute(params![
                    org.0, key.0, key.1, key.2, key.3, key.4, key.5, key.6
                ])
            })
            .map_err(sql_error)?;
        }
    }
    for (table, map) in [("ch_agg_q", &quarters), ("ch_agg_h", &hours)] {
        for ((part, bucket, queue, channel, provider), (sum, count)) in map {
            if *sum == 0.0 && *count == 0 {
                continue;
            }
            conn.prepare_cached(&format!(
                "INSERT INTO {table} (org_id, part, bucket, queue, channel, provider, sum, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT DO UPDATE SET sum = sum + excluded.sum, count = count + excluded.count"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    org.0, part, bucket, queue, channel, provider, sum, count
                ])
            })
            .map_err(sql_error)?;
            if *count < 0 {
                conn.prepare_cached(&format!(
                    "DELETE FROM {table} WHERE org_id = ?1 AND part = ?2 AND bucket = ?3
                     AND queue = ?4 AND channel = ?5 AND provider = ?6 AND count <= 0"
                ))
                .and_then(|mut s| s.execute(params![org.0, part, bucket, queue, channel, provider]))
                .map_err(sql_error)?;
            }
        }
    }

    queue_hours::apply(conn, org, &queue_hours)?;
    Ok(())
}

pub(super) fn dimension_column(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::Queue => "queue",
        Dimension::Channel => "channel",
        Dimension::Agent => "agent",
        Dimension::Provider => "provider",
        Dimension::SentimentBand => "sentiment_band",
    }
}

/// The coarsest table that answers `query` exactly: per-agent rows only
/// when it needs the agent or the sentiment band, hourly rows when every
/// boundary the caller folds into is a whole hour.
pub(super) fn table_for(query: &AggregateQuery) -> &'static str {
    let fine = |d: &Dimension| matches!(d, Dimension::Agent | Dimension::SentimentBand);
    let needs_agent = query.group_by.iter().any(fine) || query.filters.iter().any(|(d, _)| fine(d));
    let hourly = |ms: i64| ms.rem_euclid(HOUR_MS) == 0 || ms == i64::MAX;
    if needs_agent {
        "ch_agg"
    } else if query.granularity_ms > 0
        && query.granularity_ms % HOUR_MS == 0
        && hourly(query.from_bucket)
        && hourly(query.to_bucket)
    {
        if queue_hours::answers(query) {
            "ch_agg_hq"
        } else {
            "ch_agg_h"
        }
    } else {
        "ch_agg_q"
    }
}

/// Sums by bucket, part and the query's groups, from the table
/// [`table_for`] picks. Buckets are the table's: hour starts from the
/// hourly table, which the caller folds into intervals of whole hours.
pub(super) fn aggregate(
    conn: &Connection,
    org: OrgId,
    query: &AggregateQuery,
) -> Result<Vec<Row>, StoreError> {
    debug_assert!(query.granularity_ms % QUARTER_MS == 0);
    let table = table_for(query);
    if table == "ch_agg_hq" {
        return queue_hours::aggregate(conn, org, query);
    }
    let mut clauses = vec![
        "org_id = ?".to_owned(),
        "bucket >= ?".into(),
        "bucket < ?".into(),
    ];
    let mut values = vec![
        SqlValue::Integer(org.0),
        SqlValue::Integer(query.from_bucket),
        SqlValue::Integer(query.to_bucket),
    ];
    let parts: Vec<String> = query.parts.iter().map(|p| p.code().to_string()).collect();
    // Part codes are small integers from an enum, never input.
    clauses.push(format!("part IN ({})", parts.join(",")));
    for (dimension, value) in &query.filters {
        clauses.push(format!("{} = ?", dimension_column(*dimension)));
        values.push(SqlValue::Text(value.clone()));
    }
    let groups: Vec<&str> = query
        .group_by
        .iter()
        .map(|d| dimension_column(*d))
        .collect();
    let group_select = groups.iter().map(|c| format!(", {c}")).collect::<String>();
    let sql = format!(
        "SELECT bucket, part, SUM(sum), SUM(count){group_select} FROM {table} WHERE {}
         GROUP BY bucket, part{group_select}",
        clauses.join(" AND ")
    );
    let mut statement = conn.prepare_cached(&sql).map_err(sql_error)?;
    let width = groups.len();
    let rows = statement
        .query_map(params_from_iter(values), |r| {
            let mut group = Vec::with_capacity(width);
            for i in 0..width {
                group.push(r.get::<_, String>(4 + i)?);
            }
            let code = r.get::<_, u8>(1)?;
            let part = Part::from_code(code)
                .ok_or(rusqlite::Error::IntegralValueOutOfRange(1, i64::from(code)))?;
            Ok(Row {
                bucket: r.get(0)?,
                group: group.into(),
                part,
                sum: r.get(2)?,
                count: r.get(3)?,
            })
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>();
    rows.map_err(|err| match err {
        rusqlite::Error::IntegralValueOutOfRange(1, _) => corrupt("part"),
        other => sql_error(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributions_stored_before_the_sentiment_band_read_as_having_none() {
        let stored = r#"[[[0,900000,"q","voice","a","p"],[1.0,1]],
                        [[1,900000,"q","voice","a","p","negative"],[90.5,1]]]"#;
        let read: Vec<(ContribKey, (f64, i64))> =
            serde_json::from_str::<Vec<(StoredKey, (f64, i64))>>(stored)
                .unwrap()
                .into_iter()
                .map(|(key, value)| (key.into(), value))
                .collect();
        assert_eq!(read[0].0.6, "");
        assert_eq!(read[1].0.6, "negative");
        assert_eq!(read[1].1, (90.5, 1));
    }
}
