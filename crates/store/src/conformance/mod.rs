//! The backend conformance suite: what every storage backend must do.
//!
//! Each check is a public async function taking a fresh, empty [`Stores`].
//! A backend's test file instantiates all of them with
//! [`conformance_suite!`](crate::conformance_suite), passing an expression
//! that builds fresh stores for one test.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tracklog_domain::audit::{AuditRecord, Category};
use tracklog_domain::auth::{PolicyKey, Rights};
use tracklog_domain::contact::{Case, CaseStatus, Contact};
use tracklog_domain::ids::{
    CaseId, ContactId, InteractionId, OrgId, OrgName, PolicyName, PortalId, SessionId, TypeName,
    UserName,
};
use tracklog_domain::interaction::Interaction;
use tracklog_domain::portal::{Origin, Portal, TypeDef, TypeState};
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;

use tracklog_domain::audit::chain::{ChainVerifier, Checkpoint, GENESIS};
use tracklog_domain::audit::reports::REPORTS;
use tracklog_domain::audit::settings::{EntityAuditSettings, OrgAuditSettings};

use tracklog_domain::channel::metrics::{Dimension, Part};
use tracklog_domain::channel::payload::{self, Init, KpiEvent};
use tracklog_domain::channel::series::Row;
use tracklog_domain::ingest::Reason;

mod channel;
mod journeys;

pub use channel::*;
pub use journeys::*;

use crate::{
    AggregateQuery, AuditFilter, ChannelList, ChannelRules, DissatisfiedQuery, ItemOutcome,
    KeySlot, Policy, StoreError, Stores, TimelineQuery, User, UserChange, WebSession,
};

/// Expands to one `#[tokio::test]` per conformance check.
///
/// ```ignore
/// tracklog_store::conformance_suite!(fresh_sqlite_stores().await);
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@tests $make;
            interactions_round_trip_oldest_first,
            interaction_retries_store_one_copy,
            timeline_pages_with_a_cursor_and_a_window,
            timelines_span_days_and_years,
            uuid_ids_read_back_exactly,
            orgs_are_isolated,
            policies_create_rotate_delete,
            users_and_web_sessions,
            audit_sequences_categories_and_idempotency,
            audit_large_records_split_and_read_back_whole,
            audit_search_filters_pages_and_counts,
            audit_free_text_is_never_query_syntax,
            audit_reports_agree_with_their_predicates,
            audit_settings_round_trip,
            audit_chain_links_checkpoints_and_purges,
            audit_forward_cursors_only_move_forward,
            store_is_writable,
            anonymous_sessions_are_stitched_in_any_order,
            erasure_removes_a_contacts_activity_and_profile,
            portals_register_update_and_delete,
            type_definitions_and_contacts_and_cases,
            purges_and_insights_follow_the_portal,
            channel_buckets_ignore_arrival_order_and_equal_a_rebuild,
            channel_rollups_without_the_agent_equal_the_per_agent_buckets,
            journey_summaries_equal_a_fold_of_the_timeline,
            channel_records_merge_and_refuse_by_provider,
            channel_sentiment_bands_and_dissatisfied_sessions,
        );
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let stores = $make;
                $crate::conformance::$check(stores.clone()).await;
                stores.lifecycle.close().await;
            }
        )*
    };
}

fn interaction(id: &str, contact: Option<&str>, ts: i64) -> Interaction {
    let mut fields = serde_json::Map::new();
    fields.insert("portal_searchstring".into(), json!(format!("query {id}")));
    Interaction {
        id: InteractionId::parse(id).unwrap(),
        interaction_type: "portal_search".into(),
        contact_id: contact.map(|c| ContactId::parse(c).unwrap()),
        timestamp: UtcMillis::from_millis(ts),
        portal_id: PortalId::parse("support").unwrap(),
        // A session of its own, so that no test stitches by accident.
        session_id: Some(SessionId::parse(format!("s-{id}")).unwrap()),
        fields,
    }
}

fn all(limit: usize) -> TimelineQuery {
    TimelineQuery {
        from: None,
        to: None,
        limit,
        cursor: None,
    }
}

async fn default_org(stores: &Stores) -> tracklog_domain::ids::OrgId {
    stores
        .meta
        .ensure_org(&OrgName::parse("default").unwrap())
        .await
        .unwrap()
        .id
}

fn contact(text: &str) -> ContactId {
    ContactId::parse(text).unwrap()
}

pub async fn interactions_round_trip_oldest_first(stores: Stores) {
    let org = default_org(&stores).await;
    let items = vec![
        interaction("b", Some("c1"), 2_000),
        interaction("a", Some("c1"), 1_000),
        interaction("x", Some("c2"), 1_500),
        interaction("anon", None, 1_200),
    ];
    let summary = stores
        .events
        .append_interactions(org, items.clone())
        .await
        .unwrap();
    assert_eq!(summary.inserted, 4);
    let page = stores
        .events
        .contact_interactions(org, &contact("c1"), all(100))
        .await
        .unwrap();
    assert_eq!(page.items, vec![items[1].clone(), items[0].clone()]);
    assert_eq!(page.next_cursor, None);
}

pub async fn interaction_retries_store_one_copy(stores: Stores) {
    let org = default_org(&stores).await;
    let item = interaction("dup", Some("c1"), 1_000);
    let first = stores
        .events
        .append_interactions(org, vec![item.clone()])
        .await
        .unwrap();
    let again = stores
        .events
        .append_interactions(org, vec![item.clone(), item.clone()])
        .await
        .unwrap();
    assert_eq!((first.inserted, first.duplicates), (1, 0));
    assert_eq!((again.inserted, again.duplicates), (0, 2));
    let page = stores
        .events
        .contact_interactions(org, &contact("c1"), all(100))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

pub async fn timeline_pages_with_a_cursor_and_a_window(stores: Stores) {
    let org = default_org(&stores).await;
    // Two items share a timestamp: paging must neither skip nor repeat them.
    let items: Vec<_> = (0..7)
        .map(|i| interaction(&format!("i{i}"), Some("c1"), 1_000 + (i / 2) * 10))
        .collect();
    stores
        .events
        .append_interactions(org, items.clone())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = stores
            .events
            .contact_interactions(org, &contact("c1"), TimelineQuery { cursor, ..all(3) })
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|i| i.id.to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = items.iter().map(|i| i.id.to_string()).collect();
    assert_eq!(seen, expected);

    let window = stores
        .events
        .contact_interactions(
            org,
            &contact("c1"),
            TimelineQuery {
                from: Some(UtcMillis::from_millis(1_010)),
                to: Some(UtcMillis::from_millis(1_030)),
                ..all(100)
            },
        )
        .await
        .unwrap();
    let ids: Vec<String> = window.items.iter().map(|i| i.id.to_string()).collect();
    assert_eq!(
        ids,
        ["i2", "i3", "i4", "i5"],
        "from is inclusive, to exclusive"
    );
}

pub async fn timelines_span_days_and_years(stores: Stores) {
    let org = default_org(&stores).await;
    const DAY: i64 = 86_400_000;
    let base = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let times = [
        base - 400 * DAY,
        base - 1,
        base,
        base + DAY - 1,
        base + 3 * DAY,
        base + 900 * DAY,
    ];
    let items: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, ts)| interaction(&format!("d{i}"), Some("c1"), *ts))
        .collect();
    // Another contact's rows on the same days must not leak in.
    let mut others: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, ts)| interaction(&format!("o{i}"), Some("c2"), *ts))
        .collect();
    others.extend(items.iter().rev().cloned());
    stores
        .events
        .append_interactions(org, others)
        .await
        .unwrap();
    let ids = |page: &crate::Page<Interaction>| -> Vec<String> {
        page.items.iter().map(|i| i.id.to_string()).collect()
    };
    let all_of_it = stores
        .events
        .contact_interactions(org, &contact("c1"), all(100))
        .await
        .unwrap();
    assert_eq!(ids(&all_of_it), ["d0", "d1", "d2", "d3", "d4", "d5"]);
    let journey = stores
        .events
        .contact_interactions(
            org,
            &contact("c1"),
            TimelineQuery {
                from: Some(UtcMillis::from_millis(base + 3 * DAY - 72 * 3_600_000)),
                to: Some(UtcMillis::from_millis(base + 3 * DAY)),
                ..all(100)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&journey),
        ["d2", "d3"],
        "from is inclusive; d4, at the end, is not"
    );
    let mut cursor = None;
    let mut paged = Vec::new();
    for _ in 0..10 {
        let page = stores
            .events
            .contact_interactions(org, &contact("c1"), TimelineQuery { cursor, ..all(2) })
            .await
            .unwrap();
        paged.extend(ids(&page));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, ids(&all_of_it));
}

pub async fn uuid_ids_read_back_exactly(stores: Stores) {
    let org = default_org(&stores).await;
    let lower = "0a0d8709-711e-e811-a952-000d3a732d76";
    let upper = "0A0D8709-711E-E811-A952-000D3A732D76";
    let mut first = interaction("3f2504e0-4f89-41d3-9a0c-0305e82c3301", Some(lower), 10);
    first.session_id = Some(SessionId::parse("9b2d1c3e-0000-4000-8000-00000000abcd").unwrap());
    let second = interaction("{3F2504E0-4F89-41D3-9A0C-0305E82C3301}", Some(upper), 20);
    stores
        .events
        .append_interactions(org, vec![first.clone(), second.clone()])
        .await
        .unwrap();
    let read = |c: &'static str| {
        let stores = stores.clone();
        async move {
            stores
                .events
                .contact_interactions(org, &contact(c), all(10))
                .await
                .unwrap()
                .items
        }
    };
    assert_eq!(
        read(lower).await,
        vec![first],
        "ids are case-sensitive and exact"
    );
    assert_eq!(read(upper).await, vec![second]);
}

pub async fn orgs_are_isolated(stores: Stores) {
    let first = default_org(&stores).await;
    let second = stores
        .meta
        .ensure_org(&OrgName::parse("acme").unwrap())
        .await
        .unwrap()
        .id;
    assert_ne!(first, second);
    stores
        .events
        .append_interactions(first, vec![interaction("shared-id", Some("c1"), 1)])
        .await
        .unwrap();
    let other = stores
        .events
        .contact_interactions(second, &contact("c1"), all(10))
        .await
        .unwrap();
    assert!(other.items.is_empty());
    // The same id in another org is a different interaction.
    let summary = stores
        .events
        .append_interactions(second, vec![interaction("shared-id", Some("c1"), 1)])
        .await
        .unwrap();
    assert_eq!(summary.inserted, 1);
    let orgs = stores.meta.list_orgs().await.unwrap();
    assert_eq!(orgs.len(), 2);
}

fn policy(org: tracklog_domain::ids::OrgId, name: &str) -> Policy {
    Policy {
        org,
        name: PolicyName::parse(name).unwrap(),
        rights: Rights::parse_list("write,read").unwrap(),
        primary_key: PolicyKey::from_random_bytes([1; 32]),
        secondary_key: PolicyKey::from_random_bytes([2; 32]),
        portal: Some(PortalId::parse("support").unwrap()),
        provider: None,
        created_at: UtcMillis::from_millis(1),
        updated_at: UtcMillis::from_millis(1),
    }
}

pub async fn policies_create_rotate_delete(stores: Stores) {
    let org = default_org(&stores).await;
    let other = stores
        .meta
        .ensure_org(&OrgName::parse("acme").unwrap())
        .await
        .unwrap()
        .id;
    let name = PolicyName::parse("portal-writer").unwrap();
    stores
        .meta
        .create_policy(policy(org, "portal-writer"))
        .await
        .unwrap();
    let conflict = stores
        .meta
        .create_policy(policy(other, "portal-writer"))
        .await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict(_))),
        "names are unique per instance"
    );

    let stored = stores.meta.policy(&name).await.unwrap().unwrap();
    assert_eq!(stored, policy(org, "portal-writer"));
    assert_eq!(stores.meta.list_policies(org).await.unwrap().len(), 1);
    assert!(stores.meta.list_policies(other).await.unwrap().is_empty());

    let new_key = PolicyKey::from_random_bytes([9; 32]);
    let rotated = stores
        .meta
        .replace_policy_key(org, &name, KeySlot::Secondary, new_key.clone())
        .await
        .unwrap();
    assert_eq!(rotated.secondary_key, new_key);
    assert_eq!(
        rotated.primary_key, stored.primary_key,
        "the other key is kept"
    );

    let wrong_org = stores
        .meta
        .replace_policy_key(other, &name, KeySlot::Primary, new_key)
        .await;
    assert!(matches!(wrong_org, Err(StoreError::NotFound(_))));
    assert!(matches!(
        stores.meta.delete_policy(other, &name).await,
        Err(StoreError::NotFound(_))
    ));
    stores.meta.delete_policy(org, &name).await.unwrap();
    assert!(stores.meta.policy(&name).await.unwrap().is_none());
}

pub async fn users_and_web_sessions(stores: Stores) {
    let org = default_org(&stores).await;
    let name = UserName::parse("ana").unwrap();
    let user = User {
        org,
        name: name.clone(),
        role: Role::Auditor,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: UtcMillis::from_millis(5),
        disabled: false,
        last_sign_in: None,
    };
    stores.meta.create_user(user.clone()).await.unwrap();
    assert!(matches!(
        stores.meta.create_user(user.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(stores.meta.user(&name).await.unwrap(), Some(user));
    assert_eq!(stores.meta.list_users(org).await.unwrap().len(), 1);

    let now = UtcMillis::now();
    let session = WebSession {
        token_hash: "h1".into(),
        org,
        user: name.clone(),
        csrf_token: "csrf".into(),
        expires_at: now.saturating_add_millis(60_000),
    };
    stores
        .meta
        .create_web_session(session.clone())
        .await
        .unwrap();
    assert_eq!(
        stores.meta.web_session("h1", now).await.unwrap(),
        Some(session.clone())
    );
    let later = now.saturating_add_millis(120_000);
    assert_eq!(
        stores.meta.web_session("h1", later).await.unwrap(),
        None,
        "expired"
    );
    stores.meta.delete_web_session("h1").await.unwrap();
    assert_eq!(stores.meta.web_session("h1", now).await.unwrap(), None);

    // A leaver: disabling ends every session at once; the role changes in
    // place; another org cannot touch the user; removal ends sessions too.
    let session = |hash: &str| WebSession {
        token_hash: hash.into(),
        ..session.clone()
    };
    for hash in ["h2", "h3"] {
        stores.meta.create_web_session(session(hash)).await.unwrap();
    }
    stores
        .meta
        .record_sign_in(&name, UtcMillis::from_millis(77))
        .await
        .unwrap();
    let other = stores
        .meta
        .ensure_org(&OrgName::parse("elsewhere").unwrap())
        .await
        .unwrap()
        .id;
    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    assert!(matches!(
        stores.meta.update_user(other, &name, disable.clone()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(stores.meta.web_session("h2", now).await.unwrap().is_some());
    let changed = stores.meta.update_user(org, &name, disable).await.unwrap();
    assert!(changed.disabled);
    assert_eq!(changed.last_sign_in, Some(UtcMillis::from_millis(77)));
    assert_eq!(stores.meta.user(&name).await.unwrap(), Some(changed));
    for hash in ["h2", "h3"] {
        assert_eq!(stores.meta.web_session(hash, now).await.unwrap(), None);
    }
    let promoted = stores
        .meta
        .update_user(
            org,
            &name,
            UserChange {
                role: Some(Role::Admin),
                disabled: Some(false),
                ..UserChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((promoted.role, promoted.disabled), (Role::Admin, false));
    stores.meta.create_web_session(session("h4")).await.unwrap();
    let reset = stores
        .meta
        .update_user(
            org,
            &name,
            UserChange {
                password_hash: Some("$argon2id$new".into()),
                ..UserChange::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(reset.password_hash, "$argon2id$new");
    assert_eq!(stores.meta.web_session("h4", now).await.unwrap(), None);
    stores.meta.create_web_session(session("h5")).await.unwrap();
    assert!(matches!(
        stores.meta.delete_user(other, &name).await,
        Err(StoreError::NotFound(_))
    ));
    stores.meta.delete_user(org, &name).await.unwrap();
    assert_eq!(stores.meta.user(&name).await.unwrap(), None);
    assert_eq!(stores.meta.web_session("h5", now).await.unwrap(), None);
    assert!(matches!(
        stores.meta.delete_user(org, &name).await,
        Err(StoreError::NotFound(_))
    ));
}

fn audit_record(id: &str, operation: &str) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        creation_time: "2026-03-01T10:00:00Z".into(),
        operation: operation.into(),
        user: Some("ana@example.com".into()),
        ..AuditRecord::default()
    }
}

pub async fn audit_sequences_categories_and_idempotency(stores: Stores) {
    let org = default_org(&stores).await;
    let other = stores
        .meta
        .ensure_org(&OrgName::parse("acme").unwrap())
        .await
        .unwrap()
        .id;
    let stored = stores
        .audit
        .append_audit(
            org,
            vec![
                audit_record("r1", "RetrieveMultiple"),
                audit_record("r2", "Create"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(stored, [true, true]);
    let first = sequence_of(&stores, org, "r1").await;
    assert_eq!(first.sequence, Some(1));
    assert_eq!(first.category, Some(Category::ReadMultiple));
    assert_eq!(sequence_of(&stores, org, "r2").await.sequence, Some(2));

    let retry = stores
        .audit
        .append_audit(
            org,
            vec![
                audit_record("r1", "RetrieveMultiple"),
                audit_record("r3", "Delete"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(retry, [false, true], "a retried Id is stored once");
    assert_eq!(sequence_of(&stores, org, "r3").await.sequence, Some(3));

    let elsewhere = stores
        .audit
        .append_audit(other, vec![audit_record("r1", "Update")])
        .await
        .unwrap();
    assert_eq!(elsewhere, [true]);
    assert_eq!(
        sequence_of(&stores, other, "r1").await.sequence,
        Some(1),
        "sequences are per org"
    );

    let recent = stores.audit.recent_audit(org, None, 10).await.unwrap();
    let sequences: Vec<i64> = recent.iter().filter_map(|r| r.sequence).collect();
    assert_eq!(sequences, [3, 2, 1]);
    let older = stores.audit.recent_audit(org, Some(3), 1).await.unwrap();
    assert_eq!(older[0].id, "r2");
}

/// A record as stored, read back by its `Id`.
async fn sequence_of(stores: &Stores, org: OrgId, id: &str) -> AuditRecord {
    stores
        .audit
        .audit_record(org, id.into())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} is stored"))
        .record
}

fn record_at(id: &str, operation: &str, minute: u32, user: &str) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        organization_id: "default".into(),
        creation_time: format!("2026-03-01T10:{minute:02}:00.000Z"),
        operation: operation.into(),
        user: Some(user.into()),
        entity_name: Some("account".into()),
        entity_id: Some(format!("e-{id}")),
        result_status: Some("Success".into()),
        client_ip: Some("10.0.0.1".into()),
        ..AuditRecord::default()
    }
}

pub async fn audit_large_records_split_and_read_back_whole(stores: Stores) {
    let org = default_org(&stores).await;
    let mut big = record_at("big", "RetrieveMultiple", 1, "ana");
    let ids: Vec<String> = (0..400).map(|i| format!("id-{i:05}-ä")).collect();
    big.query_results = Some(ids);
    big.fields = Some(json!({"note": "x".repeat(5000)}));
    stores
        .audit
        .append_audit(org, vec![big.clone()])
        .await
        .unwrap();
    let stored = sequence_of(&stores, org, "big").await;
    assert!(
        stored.correlation_id.is_some(),
        "parts share a CorrelationId"
    );
    let hit = stores
        .audit
        .audit_record(org, "big".into())
        .await
        .unwrap()
        .unwrap();
    assert!(hit.parts > 1, "stored as {} parts", hit.parts);
    assert_eq!(hit.integrity, None);
    assert_eq!(hit.record, stored);
    let page = stores
        .audit
        .search_audit(org, AuditFilter::default(), 10, None, true)
        .await
        .unwrap();
    assert_eq!(page.items[0].record, stored);
}

pub async fn audit_search_filters_pages_and_counts(stores: Stores) {
    let org = default_org(&stores).await;
    let other = stores
        .meta
        .ensure_org(&OrgName::parse("acme").unwrap())
        .await
        .unwrap()
        .id;
    let records: Vec<AuditRecord> = (0..25)
        .map(|i| {
            let user = if i % 2 == 0 { "ana" } else { "bea" };
            let operation = if i % 5 == 0 { "Delete" } else { "Retrieve" };
            record_at(&format!("r{i}"), operation, i, user)
        })
        .collect();
    stores.audit.append_audit(org, records).await.unwrap();
    stores
        .audit
        .append_audit(other, vec![record_at("x", "Delete", 3, "ana")])
        .await
        .unwrap();

    let ana = AuditFilter {
        user: Some("ana".into()),
        ..AuditFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = stores
            .audit
            .search_audit(org, ana.clone(), 5, cursor, true)
            .await
            .unwrap();
        assert_eq!(page.count, Some(13));
        seen.extend(page.items.into_iter().map(|h| h.record.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..25)
        .rev()
        .filter(|i| i % 2 == 0)
        .map(|i| format!("r{i}"))
        .collect();
    assert_eq!(seen, expected, "newest first, every one once");

    let window = AuditFilter {
        from: Some(UtcMillis::parse_rfc3339("2026-03-01T10:05:00Z").unwrap()),
        to: Some(UtcMillis::parse_rfc3339("2026-03-01T10:15:00Z").unwrap()),
        category: Some(Category::Delete),
        ..AuditFilter::default()
    };
    let page = stores
        .audit
        .search_audit(org, window, 100, None, true)
        .await
        .unwrap();
    let ids: Vec<&str> = page.items.iter().map(|h| h.record.id.as_str()).collect();
    assert_eq!(ids, ["r10", "r5"]);
    assert_eq!(page.count, Some(2));

    let elsewhere = stores
        .audit
        .search_audit(other, AuditFilter::default(), 100, None, true)
        .await
        .unwrap();
    assert_eq!(elsewhere.count, Some(1), "orgs see only their own records");
}

pub async fn audit_free_text_is_never_query_syntax(stores: Stores) {
    let org = default_org(&stores).await;
    let mut update = record_at("u1", "Update", 1, "ana");
    update.fields = Some(json!({"name": {"old": "Ana Lima", "new": "Ana Souza"}}));
    let mut query = record_at("q1", "RetrieveMultiple", 2, "bea");
    query.query = Some(r#"<condition column="statecode" operator="eq" value="0"/>"#.into());
    stores
        .audit
        .append_audit(org, vec![update, query])
        .await
        .unwrap();
    let search = |q: &str| {
        let stores = stores.clone();
        let q = q.to_owned();
        async move {
            stores
                .audit
                .search_audit(
                    org,
                    AuditFilter {
                        q: Some(q),
                        ..AuditFilter::default()
                    },
                    10,
                    None,
                    true,
                )
                .await
                .map(|p| p.count.unwrap())
        }
    };
    assert_eq!(search("souza").await, Ok(1));
    assert_eq!(search("statecode").await, Ok(1));
    assert_eq!(search("ana souza").await, Ok(1));
    assert_eq!(search("ana nobody").await, Ok(0));
    for hostile in [
        "\"",
        "ana OR",
        "NEAR(",
        "*",
        "a:b",
        "(",
        "-x",
        "^",
        "AND AND",
        "'; DROP TABLE x",
    ] {
        assert!(search(hostile).await.is_ok(), "{hostile}");
    }
}

pub async fn audit_reports_agree_with_their_predicates(stores: Stores) {
    let org = default_org(&stores).await;
    let shapes: [(&str, Option<&str>, Option<&str>); 13] = [
        ("UserLoggedIn", None, Some("AzureActiveDirectory")),
        ("UserLoginFailed", None, None),
        ("PortalVisitorSignedIn", None, None),
        ("Retrieve", Some("Account"), None),
        ("Update", Some("new_project"), None),
        ("Update", Some("msdyn_workorder"), None),
        ("Create", Some("systemuser"), None),
        ("BulkDelete", None, None),
        ("Retrieve", Some("sharepointsite"), None),
        ("Open", None, Some("AdminCenter")),
        ("SignIn", Some("user"), Some("Tracklog")),
        ("ActivateWorkflow", None, None),
        ("RetrieveMultiple", Some("contact"), None),
    ];
    let records: Vec<AuditRecord> = shapes
        .iter()
        .enumerate()
        .map(|(i, (operation, entity, service))| AuditRecord {
            entity_name: entity.map(Into::into),
            service_name: service.map(Into::into),
            ..record_at(&format!("p{i}"), operation, i as u32, "ana")
        })
        .collect();
    stores
        .audit
        .append_audit(org, records.clone())
        .await
        .unwrap();
    // The org names one sign-in operation of its own.
    let own = vec!["PortalVisitorSignedIn".to_owned()];
    for report in REPORTS {
        let expected = records
            .iter()
            .filter(|r| report.predicate.matches_in(r, &own))
            .count() as u64;
        let filter = AuditFilter {
            report: Some(report.predicate),
            sign_in_operations: own.clone(),
            ..AuditFilter::default()
        };
        let page = stores
            .audit
            .search_audit(org, filter.clone(), 100, None, true)
            .await
            .unwrap();
        assert_eq!(page.count, Some(expected), "{}", report.name);
        let buckets = stores
            .audit
            .audit_histogram(org, filter, 3_600_000)
            .await
            .unwrap();
        let total: u64 = buckets.iter().map(|(_, n)| n).sum();
        assert_eq!(total, expected, "{}", report.name);
        if report.name == "signed-in-or-out" {
            assert_eq!(
                expected, 4,
                "SignIn, UserLoggedIn, UserLoginFailed and the org's own"
            );
        }
    }
}

pub async fn audit_settings_round_trip(stores: Stores) {
    let org = default_org(&stores).await;
    let settings = stores.audit.audit_settings(org).await.unwrap();
    assert_eq!(settings, OrgAuditSettings::default());
    let changed = OrgAuditSettings {
        read_auditing: false,
        excluded_messages: vec!["WhoAmI".into()],
        ..settings
    };
    stores
        .audit
        .put_audit_settings(org, changed.clone())
        .await
        .unwrap();
    assert_eq!(stores.audit.audit_settings(org).await.unwrap(), changed);
    let entity = EntityAuditSettings {
        auditing: true,
        single_record_read: false,
        multiple_record_read: true,
    };
    stores
        .audit
        .put_entity_audit_settings(org, "Account".into(), entity)
        .await
        .unwrap();
    let found = stores
        .audit
        .entity_audit_settings(org, vec!["ACCOUNT".into(), "contact".into()])
        .await
        .unwrap();
    assert_eq!(found.get("account"), Some(&entity));
    assert!(!found.contains_key("contact"));
    stores
        .audit
        .set_retention_days(org, Some(30))
        .await
        .unwrap();
    assert_eq!(stores.audit.retention_days(org).await.unwrap(), Some(30));
    assert_eq!(stores.audit.audit_settings(org).await.unwrap(), changed);
}

pub async fn audit_chain_links_checkpoints_and_purges(stores: Stores) {
    let org = default_org(&stores).await;
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let public = key.verifying_key();
    let records: Vec<AuditRecord> = (0..6)
        .map(|i| record_at(&format!("c{i}"), "Create", i, "ana"))
        .collect();
    stores.audit.append_audit(org, records).await.unwrap();
    let (head, head_hash) = stores.audit.chain_head(org).await.unwrap().unwrap();
    assert_eq!(head, 6);
    let checkpoint = Checkpoint::sign(&key, "default", 1, head, head_hash, 0, GENESIS, 1);
    stores
        .audit
        .add_checkpoint(org, checkpoint.clone())
        .await
        .unwrap();
    assert!(matches!(
        stores.audit.add_checkpoint(org, checkpoint.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        stores.audit.latest_checkpoint(org).await.unwrap(),
        Some(checkpoint)
    );

    let verify = |stores: Stores| async move {
        let anchor = stores.audit.chain_anchor(org).await.unwrap();
        let rows = stores
            .audit
            .chain_rows(org, anchor.0, i64::MAX, 1000)
            .await
            .unwrap();
        let checkpoints = stores.audit.checkpoints(org).await.unwrap();
        let mut verifier = ChainVerifier::new("default", &public, anchor, false);
        verifier.expect_head(stores.audit.written_head(org).await.unwrap());
        for row in &rows {
            verifier.push(row);
        }
        verifier.finish(&checkpoints, anchor, |s| {
            rows.iter().find(|r| r.sequence == s).map(|r| r.hash)
        })
    };
    let result = verify(stores.clone()).await;
    assert!(result.ok, "{result:?}");
    assert_eq!(result.records_checked, 6);

    // Purge everything stored so far: the anchor keeps the last link.
    let anchor = stores
        .audit
        .purge_audit(org, UtcMillis::now().saturating_add_millis(1), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(anchor, (6, head_hash));
    assert_eq!(stores.audit.chain_anchor(org).await.unwrap(), anchor);
    // The written head stays where the writer left it, now the anchor.
    assert_eq!(stores.audit.written_head(org).await.unwrap(), Some(anchor));
    stores
        .audit
        .append_audit(org, vec![record_at("c6", "Create", 7, "ana")])
        .await
        .unwrap();
    assert_eq!(sequence_of(&stores, org, "c6").await.sequence, Some(7));
    let unsigned = verify(stores.clone()).await;
    assert!(!unsigned.ok, "a purge no checkpoint signed is reported");
    let (head, head_hash) = stores.audit.chain_head(org).await.unwrap().unwrap();
    let signed = Checkpoint::sign(&key, "default", 2, head, head_hash, anchor.0, anchor.1, 2);
    stores.audit.add_checkpoint(org, signed).await.unwrap();
    let result = verify(stores.clone()).await;
    assert!(result.ok, "{result:?}");
    assert_eq!(result.records_checked, 1);
    // What a publisher has not sent yet: above a number, by number, bounded.
    let all = stores.audit.checkpoints(org).await.unwrap();
    assert_eq!(all.iter().map(|c| c.number).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        stores.audit.checkpoints_after(org, 0, 10).await.unwrap(),
        all
    );
    assert_eq!(
        stores.audit.checkpoints_after(org, 0, 1).await.unwrap(),
        all[..1]
    );
    assert_eq!(
        stores.audit.checkpoints_after(org, 1, 10).await.unwrap(),
        all[1..]
    );
    assert!(
        stores
            .audit
            .checkpoints_after(org, 2, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A purge with a signer writes its checkpoint with the deletion: the
    // chain verifies at once, with no checkpoint added afterwards.
    stores
        .audit
        .append_audit(org, vec![record_at("c7", "Create", 8, "ana")])
        .await
        .unwrap();
    let (kept, kept_hash) = stores.audit.chain_head(org).await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let cutoff = UtcMillis::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    stores
        .audit
        .append_audit(org, vec![record_at("c8", "Create", 9, "ana")])
        .await
        .unwrap();
    let signing_key = key.clone();
    let signer: crate::PurgeSigner = Box::new(move |draft: crate::CheckpointDraft| {
        Checkpoint::sign(
            &signing_key,
            "default",
            draft.number,
            draft.sequence,
            draft.hash,
            draft.anchor_sequence,
            draft.anchor_hash,
            3,
        )
    });
    let anchor = stores
        .audit
        .purge_audit(org, cutoff, Some(signer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(anchor, (kept, kept_hash), "c6 and c7 went, c8 stays");
    let latest = stores.audit.latest_checkpoint(org).await.unwrap().unwrap();
    assert_eq!(latest.number, 3);
    assert_eq!((latest.anchor_sequence, latest.anchor_hash), anchor);
    assert_eq!(
        latest.sequence,
        kept + 1,
        "it signs the head after the purge"
    );
    let result = verify(stores.clone()).await;
    assert!(result.ok, "{result:?}");
    assert_eq!(result.records_checked, 1);
}

pub async fn audit_forward_cursors_only_move_forward(stores: Stores) {
    let org = default_org(&stores).await;
    let records: Vec<AuditRecord> = (0..3)
        .map(|i| record_at(&format!("f{i}"), "Create", i, "ana"))
        .collect();
    stores.audit.append_audit(org, records).await.unwrap();
    let name = "siem".to_owned();
    assert_eq!(stores.audit.forward_cursor(name.clone(), org).await, Ok(0));
    let batch = stores.audit.audit_after(org, 0, 2).await.unwrap();
    assert_eq!(batch.len(), 2);
    stores
        .audit
        .save_forward_cursor(name.clone(), org, 2)
        .await
        .unwrap();
    stores
        .audit
        .save_forward_cursor(name.clone(), org, 1)
        .await
        .unwrap();
    assert_eq!(stores.audit.forward_cursor(name, org).await, Ok(2));
    let rest = stores.audit.audit_after(org, 2, 10).await.unwrap();
    assert_eq!(rest[0].record.id, "f2");
}

pub async fn store_is_writable(stores: Stores) {
    stores.meta.check_writable().await.unwrap();
}

fn in_session(id: &str, contact: Option<&str>, session: &str, ts: i64) -> Interaction {
    Interaction {
        session_id: Some(SessionId::parse(session).unwrap()),
        ..interaction(id, contact, ts)
    }
}

async fn timeline_ids(
    stores: &Stores,
    org: tracklog_domain::ids::OrgId,
    contact: &str,
) -> Vec<String> {
    stores
        .events
        .contact_interactions(org, &ContactId::parse(contact).unwrap(), all(1000))
        .await
        .unwrap()
        .items
        .iter()
        .map(|i| i.id.to_string())
        .collect()
}

/// An anonymous session joins its contact once any of its interactions
/// carries the contact id: earlier anonymous ones, and later ones too.
pub async fn anonymous_sessions_are_stitched_in_any_order(stores: Stores) {
    let org = default_org(&stores).await;
    let events = &stores.events;
    events
        .append_interactions(
            org,
            vec![
                in_session("anon-1", None, "browser-1", 1_000),
                in_session("anon-2", None, "browser-1", 2_000),
                in_session("other", None, "browser-2", 2_500),
            ],
        )
        .await
        .unwrap();
    assert!(timeline_ids(&stores, org, "c-7").await.is_empty());
    // The identified interaction arrives later but happened in between.
    events
        .append_interactions(
            org,
            vec![in_session("known", Some("c-7"), "browser-1", 1_500)],
        )
        .await
        .unwrap();
    assert_eq!(
        timeline_ids(&stores, org, "c-7").await,
        ["anon-1", "known", "anon-2"]
    );
    // Later anonymous activity in the session follows the contact as well.
    events
        .append_interactions(org, vec![in_session("anon-3", None, "browser-1", 3_000)])
        .await
        .unwrap();
    let timeline = events
        .contact_interactions(org, &ContactId::parse("c-7").unwrap(), all(10))
        .await
        .unwrap();
    assert_eq!(timeline.items.len(), 4);
    assert!(
        timeline
            .items
            .iter()
            .all(|i| i.contact_id.as_ref().map(|c| c.as_str()) == Some("c-7"))
    );
    // An unrelated session stays anonymous.
    assert!(!timeline.items.iter().any(|i| i.id.as_str() == "other"));
}

pub async fn erasure_removes_a_contacts_activity_and_profile(stores: Stores) {
    let org = default_org(&stores).await;
    let day = 86_400_000;
    stores
        .events
        .append_interactions(
            org,
            vec![
                in_session("e-anon", None, "s-e", 10),
                in_session("e-1", Some("erase-me"), "s-e", 20),
                in_session("e-2", Some("erase-me"), "s-f", 3 * day),
                in_session("keep", Some("keep-me"), "s-k", 30),
            ],
        )
        .await
        .unwrap();
    let contact = ContactId::parse("erase-me").unwrap();
    stores
        .portals
        .upsert_contacts(
            org,
            vec![Contact {
                id: contact.clone(),
                name: Some("Eve".into()),
                email: None,
                attributes: Default::default(),
                updated_at: UtcMillis::from_millis(1),
            }],
        )
        .await
        .unwrap();
    stores
        .portals
        .upsert_case(org, case("K-e", "erase-me", 4 * day))
        .await
        .unwrap();
    let erased = stores.events.erase_contact(org, &contact).await.unwrap();
    assert_eq!(erased.interactions, 3);
    assert_eq!(erased.sessions, 2);
    assert!(timeline_ids(&stores, org, "erase-me").await.is_empty());
    assert_eq!(timeline_ids(&stores, org, "keep-me").await, ["keep"]);
    assert_eq!(
        stores.portals.delete_contact(org, &contact).await.unwrap(),
        (true, 1)
    );
    assert!(
        stores
            .portals
            .contact(org, &contact)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        stores
            .portals
            .case(org, &CaseId::parse("K-e").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // The session link is gone: new anonymous activity stays anonymous.
    stores
        .events
        .append_interactions(org, vec![in_session("after", None, "s-e", 40)])
        .await
        .unwrap();
    assert!(timeline_ids(&stores, org, "erase-me").await.is_empty());
}

fn portal(id: &str, key: &str) -> Portal {
    Portal {
        id: PortalId::parse(id).unwrap(),
        name: format!("Portal {id}"),
        allowed_origins: vec![Origin::parse("https://help.example.com").unwrap()],
        policy: None,
        retention_days: Some(30),
        public_key: key.into(),
        created_at: UtcMillis::from_millis(1),
        updated_at: UtcMillis::from_millis(1),
    }
}

fn case(id: &str, contact: &str, at: i64) -> Case {
    Case {
        id: CaseId::parse(id).unwrap(),
        contact_id: ContactId::parse(contact).unwrap(),
        title: format!("Case {id}"),
        created_at: UtcMillis::from_millis(at),
        status: CaseStatus::Active,
    }
}

pub async fn portals_register_update_and_delete(stores: Stores) {
    let org = default_org(&stores).await;
    let other = stores
        .meta
        .ensure_org(&OrgName::parse("other").unwrap())
        .await
        .unwrap()
        .id;
    let portals = &stores.portals;
    portals
        .create_portal(org, portal("help", "pk-1"))
        .await
        .unwrap();
    assert!(matches!(
        portals.create_portal(org, portal("help", "pk-2")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        portals.create_portal(other, portal("other", "pk-1")).await,
        Err(StoreError::Conflict(_))
    ));
    let (found_org, found) = portals.portal_by_public_key("pk-1").await.unwrap().unwrap();
    assert_eq!((found_org, found.id.as_str()), (org, "help"));
    assert!(portals.portal(other, &found.id).await.unwrap().is_none());

    let mut changed = found.clone();
    changed.name = "Help centre".into();
    changed.public_key = "pk-3".into();
    portals.update_portal(org, changed).await.unwrap();
    assert!(
        portals
            .portal_by_public_key("pk-1")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        portals.portal(org, &found.id).await.unwrap().unwrap().name,
        "Help centre"
    );
    assert_eq!(portals.list_portals(org).await.unwrap().len(), 1);

    portals.delete_portal(org, &found.id).await.unwrap();
    assert!(portals.portal(org, &found.id).await.unwrap().is_none());
    assert!(
        portals
            .portal_by_public_key("pk-3")
            .await
            .unwrap()
            .is_none()
    );
    let deleted = portals.deleted_portals(org).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0], found.id);
    assert!(matches!(
        portals.delete_portal(org, &found.id).await,
        Err(StoreError::NotFound(_))
    ));
    // The id can be registered again.
    portals
        .create_portal(org, portal("help", "pk-4"))
        .await
        .unwrap();
    assert!(portals.deleted_portals(org).await.unwrap().is_empty());
}

pub async fn type_definitions_and_contacts_and_cases(stores: Stores) {
    let org = default_org(&stores).await;
    let portals = &stores.portals;
    let video = TypeDef {
        name: TypeName::parse("video_view").unwrap(),
        display_name: "Video".into(),
        fields_schema: Some(json!({"type": "object", "required": ["video_id"]})),
        state: TypeState::Enabled,
        builtin: false,
        updated_at: UtcMillis::from_millis(5),
    };
    portals.create_type(org, video.clone()).await.unwrap();
    assert!(matches!(
        portals.create_type(org, video.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    let disabled = TypeDef {
        state: TypeState::Disabled,
        ..video.clone()
    };
    portals.put_type(org, disabled.clone()).await.unwrap();
    assert_eq!(portals.stored_types(org).await.unwrap(), [disabled]);

    let contact = |id: &str, name: Option<&str>, email: Option<&str>| Contact {
        id: ContactId::parse(id).unwrap(),
        name: name.map(Into::into),
        email: email.map(Into::into),
        attributes: serde_json::Map::from_iter([("tier".to_owned(), json!(id))]),
        updated_at: UtcMillis::from_millis(9),
    };
    let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let created = portals
        .upsert_contacts(
            org,
            vec![contact("c-1", Some("Ada"), None), contact(uuid, None, None)],
        )
        .await
        .unwrap();
    assert_eq!(created, 2);
    let created = portals
        .upsert_contacts(org, vec![contact("c-1", None, Some("ada@example.com"))])
        .await
        .unwrap();
    assert_eq!(created, 0);
    let stored = portals
        .contact(org, &ContactId::parse("c-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name.as_deref(), Some("Ada"));
    assert_eq!(stored.email.as_deref(), Some("ada@example.com"));
    let first = portals.list_contacts(org, None, 1).await.unwrap();
    let rest = portals
        .list_contacts(org, Some(first[0].id.clone()), 10)
        .await
        .unwrap();
    let mut ids: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|c| c.id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, [uuid.to_owned(), "c-1".to_owned()]);

    portals
        .upsert_case(org, case("K-1", uuid, 100))
        .await
        .unwrap();
    portals
        .upsert_case(org, case("K-2", uuid, 200))
        .await
        .unwrap();
    portals
        .upsert_case(org, case("K-3", "c-1", 300))
        .await
        .unwrap();
    let mut resolved = case("K-1", uuid, 100);
    resolved.status = CaseStatus::Resolved;
    portals.upsert_case(org, resolved.clone()).await.unwrap();
    assert_eq!(
        portals
            .case(org, &CaseId::parse("K-1").unwrap())
            .await
            .unwrap(),
        Some(resolved)
    );
    let of_contact: Vec<String> = portals
        .list_cases(org, Some(ContactId::parse(uuid).unwrap()), 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(of_contact, ["K-2", "K-1"]);
    assert_eq!(portals.list_cases(org, None, 10).await.unwrap().len(), 3);
}

pub async fn purges_and_insights_follow_the_portal(stores: Stores) {
    let org = default_org(&stores).await;
    let day = 86_400_000;
    let article = |id: &str, portal: &str, ts: i64, ka: &str| {
        let mut fields = serde_json::Map::new();
        fields.insert("portal_knowledgearticleid".into(), json!(ka));
        fields.insert("portal_knowledgetitle".into(), json!(format!("Title {ka}")));
        Interaction {
            interaction_type: "portal_viewknowledgearticle".into(),
            portal_id: PortalId::parse(portal).unwrap(),
            fields,
            ..interaction(id, Some("c-i"), ts)
        }
    };
    let search = |id: &str, ts: i64, text: &str| {
        let mut fields = serde_json::Map::new();
        fields.insert("portal_searchstring".into(), json!(text));
        Interaction {
            fields,
            portal_id: PortalId::parse("help").unwrap(),
            ..interaction(id, Some("c-i"), ts)
        }
    };
    stores
        .events
        .append_interactions(
            org,
            vec![
                article("old", "help", day, "KA-1"),
                article("a1", "help", 10 * day, "KA-1"),
                article("a2", "help", 10 * day + 1, "KA-1"),
                article("a3", "help", 11 * day, "KA-2"),
                search("s1", 11 * day + 5, "Printer Offline "),
                search("s2", 12 * day, "printer offline"),
                article("elsewhere", "forum", 10 * day, "KA-9"),
            ],
        )
        .await
        .unwrap();
    stores
        .portals
        .upsert_case(org, case("K-i", "c-i", 11 * day + 3_600_000))
        .await
        .unwrap();
    let help = PortalId::parse("help").unwrap();
    let insights = stores
        .events
        .portal_insights(
            org,
            &help,
            UtcMillis::from_millis(5 * day),
            UtcMillis::from_millis(20 * day),
        )
        .await
        .unwrap();
    assert_eq!(
        insights.daily,
        [
            (10, "portal_viewknowledgearticle".to_owned(), 2),
            (11, "portal_search".to_owned(), 1),
            (11, "portal_viewknowledgearticle".to_owned(), 1),
            (12, "portal_search".to_owned(), 1),
        ]
    );
    assert_eq!(insights.top_articles[0].id, "KA-1");
    assert_eq!(insights.top_articles[0].views, 2);
    assert_eq!(
        insights.top_articles[0].title.as_deref(),
        Some("Title KA-1")
    );
    assert_eq!(insights.top_searches[0].text, "printer offline");
    assert_eq!(insights.top_searches[0].count, 2);
    // Only s1 came within 24 hours before the case.
    assert_eq!(insights.searches_before_case.len(), 1);
    assert_eq!(insights.searches_before_case[0].count, 1);

    let purged = stores
        .events
        .purge_interactions(org, &help, Some(UtcMillis::from_millis(5 * day)), 100)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let mut total = 0;
    loop {
        let n = stores
            .events
            .purge_interactions(org, &help, None, 2)
            .await
            .unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 5);
    assert_eq!(timeline_ids(&stores, org, "c-i").await, ["elsewhere"]);
}
