//! A record's stored form, written directly: its JSON with the fields it
//! has, keys in byte order, as compact as `serde_json` writes a map.
//!
//! Written field by field rather than through a `serde_json::Value` (whose
//! map sorts its keys the same way) because the activity log's
//! materialiser writes one per record and the detour through a tree of
//! values was a large share of its time. The bytes are those the detour
//! gives, which a property test checks, so records stored either way hash
//! and read alike.

use serde::Serialize;
use serde_json::Value;

use super::{AuditRecord, Category, UserType};

/// The stored fields in byte order of their keys; absent ones are left out.
#[derive(Serialize)]
struct Stored<'a> {
    #[serde(rename = "Category", skip_serializing_if = "Option::is_none")]
    category: Option<Category>,
    #[serde(rename = "ClientIP", skip_serializing_if = "Option::is_none")]
    client_ip: Option<&'a str>,
    #[serde(rename = "CorrelationId", skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(rename = "CreationTime")]
    creation_time: &'a str,
    #[serde(
        rename = "CrmOrganizationUniqueName",
        skip_serializing_if = "Option::is_none"
    )]
    crm_organization_unique_name: Option<&'a str>,
    #[serde(rename = "EntityId", skip_serializing_if = "Option::is_none")]
    entity_id: Option<&'a str>,
    #[serde(rename = "EntityName", skip_serializing_if = "Option::is_none")]
    entity_name: Option<&'a str>,
    #[serde(rename = "Fields", skip_serializing_if = "Option::is_none")]
    fields: Option<&'a Value>,
    #[serde(rename = "Id")]
    id: &'a str,
    #[serde(rename = "InstanceUrl", skip_serializing_if = "Option::is_none")]
    instance_url: Option<&'a str>,
    #[serde(rename = "ItemType", skip_serializing_if = "Option::is_none")]
    item_type: Option<&'a str>,
    #[serde(rename = "ItemUrl", skip_serializing_if = "Option::is_none")]
    item_url: Option<&'a str>,
    #[serde(rename = "Message", skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(rename = "Operation")]
    operation: &'a str,
    #[serde(rename = "OrganizationId")]
    organization_id: &'a str,
    #[serde(rename = "Query", skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    #[serde(rename = "QueryResults", skip_serializing_if = "Option::is_none")]
    query_results: Option<&'a [String]>,
    #[serde(rename = "ResultStatus", skip_serializing_if = "Option::is_none")]
    result_status: Option<&'a str>,
    #[serde(rename = "Sequence", skip_serializing_if = "Option::is_none")]
    sequence: Option<i64>,
    #[serde(rename = "ServiceContextId", skip_serializing_if = "Option::is_none")]
    service_context_id: Option<&'a str>,
    #[serde(
        rename = "ServiceContextIdType",
        skip_serializing_if = "Option::is_none"
    )]
    service_context_id_type: Option<&'a str>,
    #[serde(rename = "ServiceName", skip_serializing_if = "Option::is_none")]
    service_name: Option<&'a str>,
    #[serde(rename = "SystemUserId", skip_serializing_if = "Option::is_none")]
    system_user_id: Option<&'a str>,
    #[serde(rename = "TracklogStoredAt", skip_serializing_if = "Option::is_none")]
    stored_at: Option<i64>,
    #[serde(rename = "User", skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(rename = "UserAgent", skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(rename = "UserId", skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(rename = "UserKey", skip_serializing_if = "Option::is_none")]
    user_key: Option<&'a str>,
    #[serde(rename = "UserType", skip_serializing_if = "Option::is_none")]
    user_type: Option<UserType>,
    #[serde(rename = "UserUpn", skip_serializing_if = "Option::is_none")]
    user_upn: Option<&'a str>,
}

/// The record's stored bytes, with the time it was stored when given.
pub(super) fn to_vec(record: &AuditRecord, stored_at: Option<i64>) -> Vec<u8> {
    let stored = Stored {
        category: record.category,
        client_ip: record.client_ip.as_deref(),
        correlation_id: record.correlation_id.as_deref(),
        creation_time: &record.creation_time,
        crm_organization_unique_name: record.crm_organization_unique_name.as_deref(),
        entity_id: record.entity_id.as_deref(),
        entity_name: record.entity_name.as_deref(),
        // A JSON null is no value: the field is absent.
        fields: record.fields.as_ref().filter(|v| !v.is_null()),
        id: &record.id,
        instance_url: record.instance_url.as_deref(),
        item_type: record.item_type.as_deref(),
        item_url: record.item_url.as_deref(),
        message: record.message.as_deref(),
        operation: &record.operation,
        organization_id: &record.organization_id,
        query: record.query.as_deref(),
        query_results: record.query_results.as_deref(),
        result_status: record.result_status.as_deref(),
        sequence: record.sequence,
        service_context_id: record.service_context_id.as_deref(),
        service_context_id_type: record.service_context_id_type.as_deref(),
        service_name: record.service_name.as_deref(),
        system_user_id: record.system_user_id.as_deref(),
        stored_at,
        user: record.user.as_deref(),
        user_agent: record.user_agent.as_deref(),
        user_id: record.user_id.as_deref(),
        user_key: record.user_key.as_deref(),
        user_type: record.user_type,
        user_upn: record.user_upn.as_deref(),
    };
    serde_json::to_vec(&stored).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The stored form as it was made before: through a `Value`, whose map
    /// sorts keys, with the null fields taken out.
    fn through_a_value(record: &AuditRecord, stored_at: Option<i64>) -> Vec<u8> {
        let mut value = serde_json::to_value(record).unwrap();
        if let Value::Object(map) = &mut value {
            map.retain(|_, v| !v.is_null());
            if let Some(at) = stored_at {
                map.insert(super::super::columns::STORED_AT_KEY.into(), Value::from(at));
            }
        }
        serde_json::to_vec(&value).unwrap()
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("\\PC{0,12}")
    }

    fn fields() -> impl Strategy<Value = Option<Value>> {
        proptest::option::of(prop_oneof![
            Just(Value::Null),
            "\\PC{0,8}".prop_map(Value::from),
            (any::<i64>(), "\\PC{0,6}", any::<bool>()).prop_map(|(n, s, b)| {
                serde_json::json!({"zeta": n, "alpha": [s, b, null], "m": {"b": 1.5, "a": "x"}})
            }),
        ])
    }

    prop_compose! {
        fn record()(
            a in text(), b in text(), c in text(), d in text(), e in text(), f in text(),
            g in text(), h in text(), i in text(), j in text(), k in text(), l in text(),
            m in text(), n in text(), o in text(), p in text(), q in text(), r in text(),
            id in "\\PC{0,10}", op in "[A-Za-z]{0,12}", time in "\\PC{0,24}", org in "\\PC{0,6}",
            fields in fields(),
            results in proptest::option::of(prop::collection::vec("\\PC{0,6}", 0..3)),
            sequence in proptest::option::of(any::<i64>()),
            user_type in proptest::option::of(prop_oneof![
                Just(UserType::Admin), Just(UserType::Regular), Just(UserType::System)
            ]),
            categorised in any::<bool>(),
        ) -> AuditRecord {
            AuditRecord {
                id, organization_id: org, creation_time: time,
                category: categorised.then(|| super::super::categorise(&op)),
                operation: op,
                client_ip: a, correlation_id: b, user_key: c, user: d, result_status: e,
                user_id: f, crm_organization_unique_name: g, instance_url: h, item_url: i,
                item_type: j, message: k, user_agent: l, entity_id: m, entity_name: n,
                query: o, service_context_id: p, service_context_id_type: q, service_name: r,
                system_user_id: None, user_upn: None,
                fields, query_results: results, sequence, user_type,
            }
        }
    }

    proptest! {
        #[test]
        fn the_stored_bytes_are_those_a_value_gives(
            mut record in record(),
            stored_at in proptest::option::of(any::<i64>()),
            tail in text(),
        ) {
            record.system_user_id = tail.clone();
            record.user_upn = tail;
            prop_assert_eq!(
                String::from_utf8(to_vec(&record, stored_at)).unwrap(),
                String::from_utf8(through_a_value(&record, stored_at)).unwrap()
            );
        }
    }
}
