use rusqlite::Connection;
use tracklog_domain::audit::AuditRecord;
use tracklog_domain::audit::chain::{GENESIS, link};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::super::SqliteStore;
use super::search::{fts_query, renumber};
use crate::{AuditFilter, AuditStore};

#[test]
fn free_text_is_quoted() {
    assert_eq!(fts_query("  "), None);
    assert_eq!(
        fts_query(r#"ana "OR bea* NEAR("#).unwrap(),
        r#""ana" AND """OR" AND "bea*" AND "NEAR(""#
    );
}

#[tokio::test]
async fn records_of_schema_version_1_are_linked_and_indexed_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::super::DB_FILE);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(super::super::schema::MIGRATIONS[0])
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO orgs (id, name, created_at) VALUES (1, 'default', 0)",
            [],
        )
        .unwrap();
        let record = r#"{"Id":"old","OrganizationId":"default","CreationTime":"2026-01-01T00:00:00.000Z","Operation":"Update","Fields":{"name":"legacy"},"Category":"Update","Sequence":1}"#;
        conn.execute(
            "INSERT INTO audit_records VALUES (1, 1, 'old', 0, 'Update', 'Update', NULL, ?1)",
            [record],
        )
        .unwrap();
    }
    let store = SqliteStore::open(
        dir.path(),
        super::super::SqliteOptions::default(),
        crate::StoreMetrics::default(),
    )
    .unwrap();
    let rows = store.chain_rows(OrgId(1), 0, i64::MAX, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].previous, GENESIS);
    assert_eq!(
        Some(rows[0].hash),
        rows[0].record_sha256.map(|d| link(&GENESIS, 1, &d))
    );
    let filter = AuditFilter {
        q: Some("legacy".into()),
        ..AuditFilter::default()
    };
    let page = store
        .search_audit(OrgId(1), filter, 10, None, true)
        .await
        .unwrap();
    assert_eq!(page.count, Some(1));
    store
        .append_audit(
            OrgId(1),
            vec![AuditRecord {
                id: "new".into(),
                creation_time: "2026-01-02T00:00:00Z".into(),
                operation: "Create".into(),
                ..AuditRecord::default()
            }],
        )
        .await
        .unwrap();
    let next = store.audit_record(OrgId(1), "new".into()).await.unwrap();
    assert_eq!(next.unwrap().record.sequence, Some(2));
    crate::Lifecycle::close(&store).await;
}

/// A free-text search answers the same whether it starts from the FTS
/// index or walks the log in time order.
#[tokio::test]
async fn free_text_answers_the_same_from_either_side() {
    let words = ["amber", "birch", "cedar"];
    let records: Vec<AuditRecord> = (0..60)
        .map(|i| AuditRecord {
            id: format!("r{i}"),
            // Out of arrival order, with ties broken by sequence.
            creation_time: UtcMillis::from_millis(1_700_000_000_000 + (i * 7 % 20) * 60_000)
                .to_rfc3339(),
            operation: if i % 2 == 0 { "Update" } else { "Retrieve" }.into(),
            user: Some(format!("u{}", i % 3)),
            fields: Some(serde_json::json!({ "note": words[(i % 3) as usize] })),
            query: (i % 5 == 0).then(|| "amber".to_owned()),
            ..AuditRecord::default()
        })
        .collect();
    let mut answers = Vec::new();
    for below in [0, i64::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let options = super::super::SqliteOptions {
            audit_fts_driven_below: below,
            ..super::super::SqliteOptions::default()
        };
        let store = SqliteStore::open(dir.path(), options, crate::StoreMetrics::default()).unwrap();
        store.append_audit(OrgId(1), records.clone()).await.unwrap();
        let mut seen = Vec::new();
        for (q, user) in [("amber", None), ("birch", Some("u1")), ("cedar nope", None)] {
            let filter = AuditFilter {
                q: Some(q.into()),
                user: user.map(Into::into),
                ..AuditFilter::default()
            };
            let mut cursor = None;
            let mut ids = Vec::new();
            let mut counts = Vec::new();
            loop {
                let page = store
                    .search_audit(OrgId(1), filter.clone(), 4, cursor, true)
                    .await
                    .unwrap();
                counts.push(page.count);
                ids.extend(page.items.into_iter().map(|h| h.record.id));
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
            let histogram = store
                .audit_histogram(OrgId(1), filter, 600_000)
                .await
                .unwrap();
            seen.push((q, ids, counts, histogram));
        }
        crate::Lifecycle::close(&store).await;
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1]);
    let amber = &answers[0][0];
    assert_eq!(amber.1.len(), 28, "every 3rd note and every 5th query");
    assert!(amber.2.iter().all(|c| *c == Some(28)));
    assert!(answers[0][2].1.is_empty());
}

proptest::proptest! {
    /// Whatever people type, the quoted query is valid FTS5 syntax.
    #[test]
    fn any_text_is_a_valid_match_expression(text in "\\PC{0,40}") {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(body, content='', contentless_delete=1);
             INSERT INTO t (rowid, body) VALUES (1, 'ana \"souza\" NEAR( x*');",
        )
        .unwrap();
        if let Some(query) = fts_query(&text) {
            let result: rusqlite::Result<i64> = conn.query_row(
                "SELECT count(*) FROM t WHERE t MATCH ?1",
                [query.as_str()],
                |r| r.get(0),
            );
            proptest::prop_assert!(result.is_ok(), "{text:?} -> {query:?}: {result:?}");
        }
    }
}

#[test]
fn placeholders_are_renumbered() {
    assert_eq!(renumber("a ?1 b ? c ? ?1"), "a ?1 b ?2 c ?3 ?1");
}

#[tokio::test]
async fn a_damaged_compressed_record_is_served_from_its_columns_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let options = || super::super::SqliteOptions {
        audit_compress_after_records: 5,
        ..super::super::SqliteOptions::default()
    };
    let records: Vec<AuditRecord> = (0..20)
        .map(|i| AuditRecord {
            id: format!("r{i}"),
            creation_time: UtcMillis::from_millis(1_700_000_000_000 + i * 60_000).to_rfc3339(),
            operation: "Update".into(),
            user: Some(format!("u{}", i % 3)),
            fields: Some(serde_json::json!({ "note": "amber", "n": i })),
            ..AuditRecord::default()
        })
        .collect();
    {
        let store =
            SqliteStore::open(dir.path(), options(), crate::StoreMetrics::default()).unwrap();
        store.append_audit(OrgId(1), records).await.unwrap();
        crate::Lifecycle::close(&store).await;
    }
    let path = dir.path().join(super::super::DB_FILE);
    {
        let conn = Connection::open(&path).unwrap();
        let (compressed, first): (i64, Vec<u8>) = conn
            .query_row(
                "SELECT count(*), min(record) FROM audit_log WHERE substr(record, 1, 1) = x'00'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(compressed >= 10, "records after the fifth are compressed");
        assert_eq!(first[0], 0);
        // One byte of record 12's frame flipped.
        conn.execute(
            "UPDATE audit_log
             SET record = CAST(substr(record, 1, 12) || x'FF' || substr(record, 14) AS BLOB)
             WHERE seq = 12",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path(), options(), crate::StoreMetrics::default()).unwrap();
    let page = store
        .search_audit(OrgId(1), AuditFilter::default(), 100, None, true)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 20, "the other records are still served");
    let damaged: Vec<_> = page
        .items
        .iter()
        .filter(|h| h.integrity.is_some())
        .collect();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].record.sequence, Some(12));
    assert_eq!(damaged[0].record.id, "r11");
    assert_eq!(damaged[0].record.fields, None, "nothing is guessed");
    assert!(
        page.items
            .iter()
            .all(|h| h.integrity.is_some() || h.record.fields.is_some())
    );
    // The chain walk hashes the damaged bytes as stored, so its link fails.
    let rows = store.chain_rows(OrgId(1), 11, 12, 1).await.unwrap();
    assert_ne!(
        rows[0]
            .record_sha256
            .map(|d| link(&rows[0].previous, 12, &d)),
        Some(rows[0].hash)
    );
    crate::Lifecycle::close(&store).await;
}
