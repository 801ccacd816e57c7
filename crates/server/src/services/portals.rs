//! The portal pillar's management: portals and their keys, interaction
//! types, contact erasure and export, and case journeys. Every management
//! change is recorded in the activity log.

use std::sync::Arc;

use base64::Engine;
use rand::RngCore;
use serde_json::{Value, json};
use tracklog_domain::contact::{Case, RecordError};
use tracklog_domain::ids::{CaseId, ContactId, OrgId, PolicyName, PortalId, TypeName};
use tracklog_domain::interaction::Interaction;
use tracklog_domain::journey::{self, Journey, JourneyPage};
use tracklog_domain::portal::{
    Origin, Portal, TypeDef, TypeState, catalogue, check_custom_type_name,
};
use tracklog_domain::time::UtcMillis;
use tracklog_store::{
    Cursor, ErasedActivity, JourneyQuery, KeySlot, Policy, StoreError, Stores, TimelineQuery,
};

use super::ServiceError;
use super::selfaudit::{self, Action, Actor};
use crate::catalogue::{Catalogues, compile_schema};

/// A fresh public ingest key: `tlpk_` and 24 random bytes, URL-safe.
pub fn new_public_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "tlpk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Settings of a new or changed portal, already parsed.
pub struct PortalSettings {
    pub name: String,
    pub allowed_origins: Vec<Origin>,
    pub policy: Option<PolicyName>,
    pub retention_days: Option<u32>,
}

fn check_name(name: &str) -> Result<String, RecordError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(RecordError::new("name", "must have 1 to 200 characters"));
    }
    Ok(name.to_owned())
}

async fn check_policy(
    stores: &Stores,
    org: OrgId,
    policy: Option<&PolicyName>,
) -> Result<(), ServiceError> {
    if let Some(name) = policy {
        let found = stores.meta.policy(name).await?;
        if found.is_none_or(|p| p.org != org) {
            return Err(RecordError::new("policy", format!("there is no policy {name}")).into());
        }
    }
    Ok(())
}

fn portal_fields(portal: &Portal) -> Value {
    json!({
        "name": portal.name,
        "allowed_origins": portal.allowed_origins,
        "policy": portal.policy,
        "retention_days": portal.retention_days,
    })
}

async fn audit(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    operation: &str,
    entity: (&str, &str),
    success: bool,
    fields: Option<Value>,
) {
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation,
            entity_name: entity.0,
            entity_id: entity.1,
            success,
            fields,
        },
    )
    .await;
}

pub async fn create_portal(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    id: PortalId,
    settings: PortalSettings,
) -> Result<Portal, ServiceError> {
    let name = check_name(&settings.name)?;
    check_policy(stores, org, settings.policy.as_ref()).await?;
    let now = UtcMillis::now();
    let portal = Portal {
        id,
        name,
        allowed_origins: settings.allowed_origins,
        policy: settings.policy,
        retention_days: settings.retention_days,
        public_key: new_public_key(),
        created_at: now,
        updated_at: now,
    };
    let result = stores.portals.create_portal(org, portal.clone()).await;
    audit(
        stores,
        org,
        actor,
        "CreatePortal",
        ("portal", portal.id.as_str()),
        result.is_ok(),
        Some(portal_fields(&portal)),
    )
    .await;
    result?;
    Ok(portal)
}

async fn live_portal(stores: &Stores, org: OrgId, id: &PortalId) -> Result<Portal, ServiceError> {
    stores
        .portals
        .portal(org, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("portal {id} was not found")))
}

pub async fn update_portal(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    id: &PortalId,
    settings: PortalSettings,
) -> Result<Portal, ServiceError> {
    let name = check_name(&settings.name)?;
    check_policy(stores, org, settings.policy.as_ref()).await?;
    let mut portal = live_portal(stores, org, id).await?;
    let before = portal_fields(&portal);
    portal.name = name;
    portal.allowed_origins = settings.allowed_origins;
    portal.policy = settings.policy;
    portal.retention_days = settings.retention_days;
    portal.updated_at = UtcMillis::now();
    let result = stores.portals.update_portal(org, portal.clone()).await;
    audit(
        stores,
        org,
        actor,
        "UpdatePortal",
        ("portal", id.as_str()),
        result.is_ok(),
        Some(json!({"before": before, "after": portal_fields(&portal)})),
    )
    .await;
    result?;
    Ok(portal)
}

/// "Update configuration": replaces the portal's public ingest key and, when
/// the portal sends with a policy, that policy's primary key. The secondary
/// key keeps working, so servers can switch over without a gap.
pub async fn update_configuration(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    id: &PortalId,
) -> Result<(Portal, Option<Policy>), ServiceError> {
    let mut portal = live_portal(stores, org, id).await?;
    portal.public_key = new_public_key();
    portal.updated_at = UtcMillis::now();
    let result = stores.portals.update_portal(org, portal.clone()).await;
    audit(
        stores,
        org,
        actor,
        "UpdatePortalConfiguration",
        ("portal", id.as_str()),
        result.is_ok(),
        Some(json!({"rotated": ["public_key"], "policy": portal.policy})),
    )
    .await;
    result?;
    let policy = match &portal.policy {
        Some(name) => {
            Some(super::policies::rotate(stores, org, actor, name, KeySlot::Primary).await?)
        }
        None => None,
    };
    Ok((portal, policy))
}

/// Interactions deleted per writer job while purging.
const PURGE_CHUNK: usize = 5_000;

/// Deletes a portal's interactions (older than `before`, or all), chunk by
/// chunk so other writes interleave. Returns how many went.
pub async fn purge(
    stores: &Stores,
    org: OrgId,
    portal: &PortalId,
    before: Option<UtcMillis>,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let deleted = stores
            .events
            .purge_interactions(org, portal, before, PURGE_CHUNK)
            .await?;
        total += deleted;
        if deleted == 0 {
            return Ok(total);
        }
    }
}

/// "Delete integration": capture from the portal stops at once. With
/// `purge_data`, its interactions are deleted in the background.
pub async fn delete_portal(
    stores: &Stores,
    catalogues: &Arc<Catalogues>,
    org: OrgId,
    actor: &Actor,
    id: &PortalId,
    purge_data: bool,
) -> Result<(), ServiceError> {
    let result = stores.portals.delete_portal(org, id).await;
    catalogues.invalidate(org);
    audit(
        stores,
        org,
        actor,
        "DeletePortal",
        ("portal", id.as_str()),
        result.is_ok(),
        Some(json!({"data": if purge_data { "purge" } else { "keep" }})),
    )
    .await;
    result?;
    if purge_data {
        let stores = stores.clone();
        let actor = actor.clone();
        let id = id.clone();
        let span = tracing::info_span!("purge_portal", portal = %id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let outcome = purge(&stores, org, &id, None).await;
                match &outcome {
                    Ok(n) => tracing::info!(deleted = n, "purged the portal's interactions"),
                    Err(error) => {
                        tracing::error!(%error, "purging the portal's interactions failed")
                    }
                }
                audit(
                    &stores,
                    org,
                    &actor,
                    "PurgePortalData",
                    ("portal", id.as_str()),
                    outcome.is_ok(),
                    outcome.ok().map(|n| json!({"interactions": n})),
                )
                .await;
            },
            span,
        ));
    }
    Ok(())
}

/// Every type of the org, built-ins first.
pub async fn list_types(stores: &Stores, org: OrgId) -> Result<Vec<TypeDef>, ServiceError> {
    Ok(catalogue(stores.portals.stored_types(org).await?))
}

pub async fn find_type(stores: &Stores, org: OrgId, name: &str) -> Result<TypeDef, ServiceError> {
    list_types(stores, org)
        .await?
        .into_iter()
        .find(|t| t.name.as_str() == name)
        .ok_or_else(|| ServiceError::NotFound(format!("interaction type {name} was not found")))
}

fn check_schema(schema: &Value) -> Result<(), RecordError> {
    if !schema.is_object() {
        return Err(RecordError::new(
            "fields_schema",
            "must be a JSON Schema object",
        ));
    }
    compile_schema(schema)
        .map(|_| ())
        .map_err(|e| RecordError::new("fields_schema", format!("is not a valid JSON Schema: {e}")))
}

pub async fn create_type(
    stores: &Stores,
    catalogues: &Catalogues,
    org: OrgId,
    actor: &Actor,
    name: &str,
    display_name: Option<String>,
    fields_schema: Option<Value>,
) -> Result<TypeDef, ServiceError> {
    let name = check_custom_type_name(name)?;
    if let Some(schema) = &fields_schema {
        check_schema(schema)?;
    }
    let def = TypeDef {
        display_name: display_name
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| name.to_string()),
        name,
        fields_schema,
        state: TypeState::Enabled,
        builtin: false,
        updated_at: UtcMillis::now(),
    };
    let result = stores.portals.create_type(org, def.clone()).await;
    catalogues.invalidate(org);
    audit(
        stores,
        org,
        actor,
        "CreateInteractionType",
        ("interactiontype", def.name.as_str()),
        result.is_ok(),
        Some(json!({"display_name": def.display_name, "fields_schema": def.fields_schema})),
    )
    .await;
    result?;
    Ok(def)
}

/// A change to a type: its state, and for custom types its name and schema.
#[derive(Default)]
pub struct TypeChange {
    pub state: Option<TypeState>,
    pub display_name: Option<String>,
    pub fields_schema: Option<Value>,
}

pub async fn change_type(
    stores: &Stores,
    catalogues: &Catalogues,
    org: OrgId,
    actor: &Actor,
    name: &str,
    change: TypeChange,
) -> Result<TypeDef, ServiceError> {
    let mut def = find_type(stores, org, name).await?;
    let before = def.to_json();
    if def.builtin && (change.display_name.is_some() || change.fields_schema.is_some()) {
        return Err(RecordError::new(
            "fields_schema",
            "the fields of a built-in type cannot be changed; only its state",
        )
        .into());
    }
    if let Some(schema) = change.fields_schema {
        check_schema(&schema)?;
        def.fields_schema = Some(schema);
    }
    if let Some(display_name) = change.display_name {
        def.display_name = display_name;
    }
    if let Some(state) = change.state {
        def.state = state;
    }
    def.updated_at = UtcMillis::now();
    let operation = match change.state {
        Some(TypeState::Deleted) => "DeleteInteractionType",
        Some(TypeState::Enabled) if before["state"] == "deleted" => "RestoreInteractionType",
        _ => "UpdateInteractionType",
    };
    let result = stores.portals.put_type(org, def.clone()).await;
    catalogues.invalidate(org);
    audit(
        stores,
        org,
        actor,
        operation,
        ("interactiontype", def.name.as_str()),
        result.is_ok(),
        Some(json!({"before": before, "after": def.to_json()})),
    )
    .await;
    result?;
    Ok(def)
}

/// Reads a contact's whole timeline, page by page.
async fn whole_timeline(
    stores: &Stores,
    org: OrgId,
    contact: &ContactId,
    from: Option<UtcMillis>,
    to: Option<UtcMillis>,
    cap: usize,
) -> Result<(Vec<Interaction>, bool), StoreError> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = stores
            .events
            .contact_interactions(
                org,
                contact,
                TimelineQuery {
                    from,
                    to,
                    limit: 1000.min(cap + 1 - items.len()),
                    cursor,
                },
            )
            .await?;
        items.extend(page.items);
        if items.len() > cap {
            items.truncate(cap);
            return Ok((items, true));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok((items, false)),
        }
    }
}

/// A case's journey: the summary of its window and one page of the newest
/// interactions, older ones through `cursor`.
pub async fn journey(
    stores: &Stores,
    org: OrgId,
    case_id: &CaseId,
    window_ms: i64,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<(Case, Journey), ServiceError> {
    let case = stores
        .portals
        .case(org, case_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("case {case_id} was not found")))?;
    let window = journey::window(&case, window_ms);
    let data = stores
        .events
        .journey(
            org,
            &case.contact_id,
            JourneyQuery {
                from: window.0,
                to: window.1,
                limit,
                cursor,
                searches: journey::SEARCH_CAP,
            },
        )
        .await?;
    let page = JourneyPage {
        items: data.page.items.iter().map(Interaction::to_json).collect(),
        next_cursor: data.page.next_cursor.map(|c| c.encode()),
    };
    let journey = journey::assemble(
        &case,
        window,
        data.cells,
        (data.searches, data.more_searches),
        page,
    );
    Ok((case, journey))
}

/// The most interactions one export holds; beyond it the export says so.
pub const EXPORT_CAP: usize = 1_000_000;

/// Everything held about a contact. Exporting moves personal data out of
/// Tracklog, so it is audited.
pub async fn export_contact(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    contact: &ContactId,
) -> Result<Value, ServiceError> {
    let profile = stores.portals.contact(org, contact).await?;
    let cases = stores
        .portals
        .list_cases(org, Some(contact.clone()), 10_000)
        .await?;
    let (interactions, truncated) =
        whole_timeline(stores, org, contact, None, None, EXPORT_CAP).await?;
    audit(
        stores,
        org,
        actor,
        "ExportContact",
        ("contact", contact.as_str()),
        true,
        Some(json!({"interactions": interactions.len(), "cases": cases.len()})),
    )
    .await;
    Ok(json!({
        "contact_id": contact,
        "exported_at": UtcMillis::now().to_rfc3339(),
        "profile": profile.map(|p| p.to_json()),
        "cases": cases.iter().map(Case::to_json).collect::<Vec<_>>(),
        "interactions": interactions.iter().map(Interaction::to_json).collect::<Vec<_>>(),
        "truncated": truncated,
    }))
}

/// What an erasure removed.
#[derive(Debug, serde::Serialize)]
pub struct Erasure {
    pub contact_id: String,
    pub interactions: u64,
    pub sessions: u64,
    pub profile: bool,
    pub cases: u64,
}

/// Erases a contact's interactions, session links, cases and profile. The
/// erasure is audited with counts only, never the erased content.
pub async fn erase_contact(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    contact: &ContactId,
) -> Result<Erasure, ServiceError> {
    let result: Result<(ErasedActivity, (bool, u64)), StoreError> = async {
        let activity = stores.events.erase_contact(org, contact).await?;
        let profile = stores.portals.delete_contact(org, contact).await?;
        Ok((activity, profile))
    }
    .await;
    let erasure = result
        .as_ref()
        .ok()
        .map(|(activity, (profile, cases))| Erasure {
            contact_id: contact.to_string(),
            interactions: activity.interactions,
            sessions: activity.sessions,
            profile: *profile,
            cases: *cases,
        });
    audit(
        stores,
        org,
        actor,
        "EraseContact",
        ("contact", contact.as_str()),
        result.is_ok(),
        erasure.as_ref().map(|e| json!(e)),
    )
    .await;
    result?;
    Ok(erasure.expect("set on success"))
}

/// A type name from a path, named in errors.
pub fn type_name(text: &str) -> Result<TypeName, RecordError> {
    TypeName::parse(text).map_err(|e| RecordError::new("name", e.to_string()))
}
