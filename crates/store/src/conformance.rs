//! The backend conformance suite: what every storage backend must do.
//!
//! Each check is a public async function taking a fresh, empty [`Stores`].
//! A backend's test file instantiates all of them with
//! [`conformance_suite!`](crate::conformance_suite), passing an expression
//! that builds fresh stores for one test.

use serde_json::json;
use tracklog_domain::audit::{AuditRecord, Category};
use tracklog_domain::auth::{PolicyKey, Rights};
use tracklog_domain::ids::{
    ContactId, InteractionId, OrgName, PolicyName, PortalId, SessionId, UserName,
};
use tracklog_domain::interaction::Interaction;
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;

use crate::{KeySlot, Policy, StoreError, Stores, TimelineQuery, User, WebSession};

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
            store_is_writable,
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
        session_id: Some(SessionId::parse("s-1").unwrap()),
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
        user: name,
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
    let first = stored[0].as_ref().unwrap();
    assert_eq!(first.sequence, Some(1));
    assert_eq!(first.category, Some(Category::ReadMultiple));
    assert_eq!(stored[1].as_ref().unwrap().sequence, Some(2));

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
    assert!(retry[0].is_none(), "a retried Id is stored once");
    assert_eq!(retry[1].as_ref().unwrap().sequence, Some(3));

    let elsewhere = stores
        .audit
        .append_audit(other, vec![audit_record("r1", "Update")])
        .await
        .unwrap();
    assert_eq!(
        elsewhere[0].as_ref().unwrap().sequence,
        Some(1),
        "sequences are per org"
    );

    let recent = stores.audit.recent_audit(org, None, 10).await.unwrap();
    let sequences: Vec<i64> = recent.iter().filter_map(|r| r.sequence).collect();
    assert_eq!(sequences, [3, 2, 1]);
    let older = stores.audit.recent_audit(org, Some(3), 1).await.unwrap();
    assert_eq!(older[0].id, "r2");
}

pub async fn store_is_writable(stores: Stores) {
    stores.meta.check_writable().await.unwrap();
}
