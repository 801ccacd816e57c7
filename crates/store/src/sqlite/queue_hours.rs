//! `ch_agg_hq`, the coarsest channel rollup: one row per org, hour and
//! queue, with a sum and a count column for every metric part (`s<code>`,
//! `c<code>`).
//!
//! The dashboards of a contact centre ask for many metrics by queue (or for
//! the whole centre) over a month of hours. Stored a row per part, as the
//! finer rollups are, a 30-day, 13-metric dashboard of eight queues reads
//! about 92,000 rows (16 parts); stored wide, it reads the 5,760
//! hours-by-queue once and takes the columns of the parts it needs. A new
//! part adds its two columns in a migration of its own; a test holds the
//! table to [`Part::ALL`].

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};
use tracklog_domain::channel::metrics::{Dimension, Part};
use tracklog_domain::channel::series::Row;
use tracklog_domain::ids::OrgId;

use super::sql_error;
use crate::{AggregateQuery, StoreError};

const PARTS: usize = Part::ALL.len();

/// The change to one hour of one queue: (sum, count) by part code.
pub(super) type Delta = [(f64, i64); PARTS];

/// The upsert of one hour of one queue, and the delete of an hour left
/// empty: written out once, for every part.
static STATEMENTS: LazyLock<(String, String)> = LazyLock::new(|| {
    let columns: String = (0..PARTS).map(|p| format!(", s{p}, c{p}")).collect();
    let placeholders: String = (0..PARTS * 2).map(|i| format!(", ?{}", i + 4)).collect();
    let updates: Vec<String> = (0..PARTS)
        .map(|p| format!("s{p} = s{p} + excluded.s{p}, c{p} = c{p} + excluded.c{p}"))
        .collect();
    let upsert = format!(
        "INSERT INTO ch_agg_hq (org_id, bucket, queue{columns}) VALUES (?1, ?2, ?3{placeholders})
         ON CONFLICT DO UPDATE SET {}",
        updates.join(", ")
    );
    let empty: Vec<String> = (0..PARTS)
        .map(|p| format!("s{p} = 0 AND c{p} = 0"))
        .collect();
    let delete_empty = format!(
        "DELETE FROM ch_agg_hq WHERE org_id = ?1 AND bucket = ?2 AND queue = ?3 AND {}",
        empty.join(" AND ")
    );
    (upsert, delete_empty)
});

/// Adds `deltas`, keyed by (hour, queue), to the table. A part whose count
/// falls to zero or below is cleared, as the finer rollups delete such a
/// row, and an hour of a queue with nothing left is deleted, so the table
/// always equals a rebuild from the raw records.
pub(super) fn apply(
    conn: &Connection,
    org: OrgId,
    deltas: &BTreeMap<(i64, &str), Delta>,
) -> Result<(), StoreError> {
    let (upsert, delete_empty) = &*STATEMENTS;
    for ((hour, queue), delta) in deltas {
        if delta.iter().all(|(sum, count)| *sum == 0.0 && *count == 0) {
            continue;
        }
        let mut values = vec![
            SqlValue::Integer(org.0),
            SqlValue::Integer(*hour),
            SqlValue::Text((*queue).to_owned()),
        ];
        for (sum, count) in delta {
            values.push(SqlValue::Real(*sum));
            values.push(SqlValue::Integer(*count));
        }
        conn.prepare_cached(upsert)
            .and_then(|mut s| s.execute(params_from_iter(values)))
            .map_err(sql_error)?;
        let mut shrank = false;
        for (code, (_, count)) in delta.iter().enumerate() {
            if *count < 0 {
                shrank = true;
                conn.prepare_cached(&format!(
                    "UPDATE ch_agg_hq SET s{code} = 0, c{code} = 0
                     WHERE org_id = ?1 AND bucket = ?2 AND queue = ?3 AND c{code} <= 0"
                ))
                .and_then(|mut s| s.execute(rusqlite::params![org.0, hour, queue]))
                .map_err(sql_error)?;
            }
        }
        if shrank {
            conn.prepare_cached(delete_empty)
                .and_then(|mut s| s.execute(rusqlite::params![org.0, hour, queue]))
                .map_err(sql_error)?;
        }
    }
    Ok(())
}

/// Whether `query` is at this table's grain: grouped and filtered by queue
/// alone, if at all.
pub(super) fn answers(query: &AggregateQuery) -> bool {
    query.group_by.iter().all(|d| *d == Dimension::Queue)
        && query.filters.iter().all(|(d, _)| *d == Dimension::Queue)
}

/// The rows of the query's parts with anything in them: one per hour,
/// queue and part when the query groups by queue, else one per hour and
/// part, summed over the queues (or the one queue the query filters by).
pub(super) fn aggregate(
    conn: &Connection,
    org: OrgId,
    query: &AggregateQuery,
) -> Result<Vec<Row>, StoreError> {
    let mut sql = String::from("SELECT bucket, queue");
    for part in &query.parts {
        let code = part.code();
        sql.push_str(&format!(", s{code}, c{code}"));
    }
    sql.push_str(" FROM ch_agg_hq WHERE org_id = ?1 AND bucket >= ?2 AND bucket < ?3");
    let mut values = vec![
        SqlValue::Integer(org.0),
        SqlValue::Integer(query.from_bucket),
        SqlValue::Integer(query.to_bucket),
    ];
    for (_, queue) in &query.filters {
        values.push(SqlValue::Text(queue.clone()));
        sql.push_str(&format!(" AND queue = ?{}", values.len()));
    }
    let grouped = !query.group_by.is_empty();
    let mut statement = conn.prepare_cached(&sql).map_err(sql_error)?;
    let mut rows = statement
        .query(params_from_iter(values))
        .map_err(sql_error)?;
    let mut out = Vec::new();
    // Without grouping, an hour's queues are summed here: the rows come in
    // key order, so an hour's are together.
    let mut hour: Option<(i64, Vec<(f64, i64)>)> = None;
    let flush = |out: &mut Vec<Row>, bucket: i64, group: Arc<[String]>, parts: &[(f64, i64)]| {
        for (part, (sum, count)) in query.parts.iter().zip(parts) {
            if *sum != 0.0 || *count != 0 {
                out.push(Row {
                    bucket,
                    group: Arc::clone(&group),
                    part: *part,
                    sum: *sum,
                    count: *count,
                });
            }
        }
    };
    let whole: Arc<[String]> = Arc::new([]);
    let mut parts = vec![(0.0, 0); query.parts.len()];
    while let Some(r) = rows.next().map_err(sql_error)? {
        let bucket: i64 = r.get(0).map_err(sql_error)?;
        for (i, part) in parts.iter_mut().enumerate() {
            *part = (
                r.get(2 + 2 * i).map_err(sql_error)?,
                r.get(3 + 2 * i).map_err(sql_error)?,
            );
        }
        if grouped {
            let queue: String = r.get(1).map_err(sql_error)?;
            flush(&mut out, bucket, Arc::new([queue]), &parts);
            continue;
        }
        match &mut hour {
            Some((at, sums)) if *at == bucket => {
                for (total, (sum, count)) in sums.iter_mut().zip(&parts) {
                    total.0 += sum;
                    total.1 += count;
                }
            }
            _ => {
                if let Some((at, sums)) = hour.replace((bucket, parts.clone())) {
                    flush(&mut out, at, Arc::clone(&whole), &sums);
                }
            }
        }
    }
    if let Some((at, sums)) = hour {
        flush(&mut out, at, whole, &sums);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// The table has a sum and a count column for every part, so a new
    /// part cannot be forgotten.
    #[test]
    fn every_part_has_its_columns() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::audit_integrity::register_functions(&conn).unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('ch_agg_hq')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for part in Part::ALL {
            let code = part.code();
            for name in [format!("s{code}"), format!("c{code}")] {
                assert!(columns.contains(&name), "ch_agg_hq lacks {name}");
            }
        }
    }

    /// A part whose count falls to zero is cleared, and an hour left with
    /// nothing is deleted, as a rebuild would never write it.
    #[test]
    fn emptied_parts_and_hours_leave_no_trace() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::audit_integrity::register_functions(&conn).unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let org = OrgId(1);
        let change = |changes: &[(usize, f64, i64)]| {
            let mut delta = [(0.0, 0); PARTS];
            for (code, sum, count) in changes {
                delta[*code] = (*sum, *count);
            }
            BTreeMap::from([((3_600_000, "q"), delta)])
        };
        let read = |conn: &Connection| -> Vec<(f64, i64, f64, i64)> {
            conn.prepare("SELECT s0, c0, s1, c1 FROM ch_agg_hq")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        apply(&conn, org, &change(&[(0, 2.0, 1), (1, 3.0, 1)])).unwrap();
        apply(&conn, org, &change(&[(0, 0.5, 1)])).unwrap();
        assert_eq!(read(&conn), [(2.5, 2, 3.0, 1)]);
        apply(&conn, org, &change(&[(0, -2.5, -2)])).unwrap();
        assert_eq!(read(&conn), [(0.0, 0, 3.0, 1)]);
        apply(&conn, org, &change(&[(1, -3.0, -1)])).unwrap();
        assert_eq!(read(&conn), []);
    }
}
