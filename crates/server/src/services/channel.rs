//! Channel analytics services for what providers and administrators write:
//! providers, KPI event definitions and queues (audited), and the ingestion
//! rules they make. What is read from the data is in `analytics.rs`.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Value, json};
use tracklog_domain::channel::definitions::{self, Definition};
use tracklog_domain::contact::RecordError;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;
use tracklog_store::{ChannelRules, Provider, QueueSettings, Stores};

use super::ServiceError;
use super::selfaudit::{self, Action, Actor};

/// An audit record of an administrative change to channel analytics.
pub(super) async fn audit(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    operation: &str,
    entity: (&str, &str),
    fields: Value,
) {
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation,
            entity_name: entity.0,
            entity_id: entity.1,
            success: true,
            fields: Some(fields),
        },
    )
    .await;
}

// ---- providers ----------------------------------------------------------------

/// A provider as an admin sends it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    /// 1 to 256 characters, none of them a control character.
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]{1,256}$")]
    pub id: String,
    pub name: Option<String>,
    pub enable_analytics: Option<bool>,
}

fn provider_id(id: &str) -> Result<String, RecordError> {
    if id.is_empty() || id.chars().count() > 256 || id.chars().any(char::is_control) {
        return Err(RecordError::new(
            "id",
            "must be 1 to 256 characters without control characters",
        ));
    }
    Ok(id.to_owned())
}

/// Creates or updates a provider; unset fields keep their stored values.
pub async fn put_provider(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    input: ProviderInput,
) -> Result<Provider, ServiceError> {
    let id = provider_id(&input.id)?;
    let now = UtcMillis::now();
    let existing = stores.channel.provider(org, &id).await?;
    let provider = Provider {
        name: input
            .name
            .or_else(|| existing.as_ref().map(|p| p.name.clone()))
            .unwrap_or_else(|| id.clone()),
        enable_analytics: input
            .enable_analytics
            .or(existing.as_ref().map(|p| p.enable_analytics))
            .unwrap_or(true),
        created_at: existing.as_ref().map_or(now, |p| p.created_at),
        updated_at: now,
        id,
    };
    stores.channel.put_provider(org, provider.clone()).await?;
    audit(
        stores,
        org,
        actor,
        if existing.is_some() {
            "UpdateChannelProvider"
        } else {
            "CreateChannelProvider"
        },
        ("channelprovider", &provider.id),
        json!({"name": provider.name, "enable_analytics": provider.enable_analytics}),
    )
    .await;
    Ok(provider)
}

pub async fn delete_provider(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    id: &str,
) -> Result<(), ServiceError> {
    if !stores.channel.delete_provider(org, id).await? {
        return Err(ServiceError::NotFound(format!(
            "provider {id} was not found"
        )));
    }
    audit(
        stores,
        org,
        actor,
        "DeleteChannelProvider",
        ("channelprovider", id),
        json!({}),
    )
    .await;
    Ok(())
}

/// What decides capture for a credential: the disabled providers and the
/// credential's provider scope.
pub async fn rules(
    stores: &Stores,
    org: OrgId,
    scope: Option<String>,
) -> Result<ChannelRules, ServiceError> {
    let disabled_providers = stores.channel.disabled_providers(org).await?;
    Ok(ChannelRules {
        disabled_providers,
        provider_scope: scope,
    })
}

// ---- KPI event definitions ------------------------------------------------------------

/// The built-ins, then the org's custom definitions.
pub async fn definitions(stores: &Stores, org: OrgId) -> Result<Vec<Definition>, ServiceError> {
    let mut all = definitions::builtins();
    all.extend(stores.channel.custom_definitions(org).await?);
    Ok(all)
}

/// Names captured now: built-ins and enabled custom definitions; and the
/// names defined but disabled.
pub async fn captured_names(
    stores: &Stores,
    org: OrgId,
) -> Result<(HashSet<String>, HashSet<String>), ServiceError> {
    let mut captured = HashSet::new();
    let mut disabled = HashSet::new();
    for definition in definitions(stores, org).await? {
        if definition.enabled {
            captured.insert(definition.name);
        } else {
            disabled.insert(definition.name);
        }
    }
    Ok((captured, disabled))
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefinitionInput {
    /// 1 to 100 letters, digits, `_`, `-` or `.`, starting with a letter;
    /// not the name of a built-in definition.
    #[schema(pattern = r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")]
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

pub async fn put_definition(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    input: DefinitionInput,
) -> Result<Definition, ServiceError> {
    let name = definitions::parse_custom_name(&input.name)?;
    let existing = stores
        .channel
        .custom_definitions(org)
        .await?
        .into_iter()
        .find(|d| d.name == name);
    let definition = Definition {
        display_name: input
            .display_name
            .or_else(|| existing.as_ref().and_then(|d| d.display_name.clone())),
        description: input
            .description
            .or_else(|| existing.as_ref().and_then(|d| d.description.clone())),
        builtin: false,
        enabled: input
            .enabled
            .or(existing.as_ref().map(|d| d.enabled))
            .unwrap_or(true),
        name,
    };
    stores
        .channel
        .put_definition(org, definition.clone())
        .await?;
    audit(
        stores,
        org,
        actor,
        if existing.is_some() {
            "UpdateKpiEventDefinition"
        } else {
            "CreateKpiEventDefinition"
        },
        ("kpieventdefinition", &definition.name),
        json!({"enabled": definition.enabled}),
    )
    .await;
    Ok(definition)
}

pub async fn delete_definition(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    name: &str,
) -> Result<(), ServiceError> {
    if definitions::is_builtin(name) {
        return Err(
            RecordError::new("name", format!("{name} is built in and cannot be deleted")).into(),
        );
    }
    if !stores.channel.delete_definition(org, name).await? {
        return Err(ServiceError::NotFound(format!(
            "KPI event definition {name} was not found"
        )));
    }
    audit(
        stores,
        org,
        actor,
        "DeleteKpiEventDefinition",
        ("kpieventdefinition", name),
        json!({}),
    )
    .await;
    Ok(())
}

// ---- queues ---------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueInput {
    /// Answered within this many seconds counts toward service level (20 by default).
    #[schema(minimum = 0, maximum = 86400)]
    pub service_level_seconds: Option<i64>,
    /// Abandoned within this many seconds is a short abandon (5 by default).
    #[schema(minimum = 0, maximum = 86400)]
    pub short_abandon_seconds: Option<i64>,
}

pub async fn put_queue(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    queue: &str,
    input: QueueInput,
) -> Result<QueueSettings, ServiceError> {
    let check = |field: &str, value: Option<i64>, default: i64| {
        let value = value.unwrap_or(default);
        if (0..=86_400).contains(&value) {
            Ok(value)
        } else {
            Err(RecordError::new(
                field,
                "must be between 0 and 86400 seconds",
            ))
        }
    };
    if queue.is_empty() || queue.len() > 256 {
        return Err(RecordError::new("queue", "must be 1 to 256 characters").into());
    }
    let settings = QueueSettings {
        queue: queue.to_owned(),
        service_level_seconds: check("service_level_seconds", input.service_level_seconds, 20)?,
        short_abandon_seconds: check("short_abandon_seconds", input.short_abandon_seconds, 5)?,
        updated_at: UtcMillis::now(),
    };
    stores.channel.put_queue(org, settings.clone()).await?;
    audit(
        stores,
        org,
        actor,
        "UpdateQueueThresholds",
        ("queue", queue),
        json!({"service_level_seconds": settings.service_level_seconds,
               "short_abandon_seconds": settings.short_abandon_seconds}),
    )
    .await;
    Ok(settings)
}
