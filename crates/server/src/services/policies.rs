//! Access policies: create, rotate a key, delete.

use rand::RngCore;
use serde_json::json;
use tracklog_domain::auth::{PolicyKey, Rights};
use tracklog_domain::ids::{OrgId, PolicyName, PortalId};
use tracklog_domain::time::UtcMillis;
use tracklog_store::{KeySlot, Policy, StoreError, Stores};

use super::selfaudit::{self, Action, Actor};

/// 32 random bytes from a CSPRNG seeded by the OS, in base64.
pub fn new_key() -> PolicyKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    PolicyKey::from_random_bytes(bytes)
}

/// What a new policy may do.
pub struct NewPolicy {
    pub name: PolicyName,
    pub rights: Rights,
    pub portal: Option<PortalId>,
    pub provider: Option<String>,
}

fn rights_json(rights: Rights) -> serde_json::Value {
    json!(
        rights
            .to_vec()
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
    )
}

pub async fn create(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    new: NewPolicy,
) -> Result<Policy, StoreError> {
    let now = UtcMillis::now();
    let policy = Policy {
        org,
        name: new.name,
        rights: new.rights,
        primary_key: new_key(),
        secondary_key: new_key(),
        portal: new.portal,
        provider: new.provider,
        created_at: now,
        updated_at: now,
    };
    let result = stores.meta.create_policy(policy.clone()).await;
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation: "CreateAccessPolicy",
            entity_name: "accesspolicy",
            entity_id: policy.name.as_str(),
            success: result.is_ok(),
            fields: Some(json!({
                "rights": rights_json(policy.rights),
                "portal": policy.portal.as_ref().map(PortalId::as_str),
                "provider": policy.provider,
            })),
        },
    )
    .await;
    result.map(|()| policy)
}

pub async fn rotate(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    name: &PolicyName,
    slot: KeySlot,
) -> Result<Policy, StoreError> {
    let result = stores
        .meta
        .replace_policy_key(org, name, slot, new_key())
        .await;
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation: "UpdateAccessPolicyKey",
            entity_name: "accesspolicy",
            entity_id: name.as_str(),
            success: result.is_ok(),
            fields: Some(json!({ "key": match slot { KeySlot::Primary => "primary", KeySlot::Secondary => "secondary" } })),
        },
    )
    .await;
    result
}

pub async fn delete(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    name: &PolicyName,
) -> Result<(), StoreError> {
    let result = stores.meta.delete_policy(org, name).await;
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation: "DeleteAccessPolicy",
            entity_name: "accesspolicy",
            entity_id: name.as_str(),
            success: result.is_ok(),
            fields: None,
        },
    )
    .await;
    result
}
