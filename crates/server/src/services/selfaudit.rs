//! Tracklog audits itself: every management action becomes an activity-log
//! record with the PRODUCT.md §5.1 fields Tracklog knows.

use serde_json::Value;
use tracklog_domain::audit::settings::{
    Decision, EntityAuditSettings, USER_ACCESS_OPERATIONS, decide,
};
use tracklog_domain::audit::{AuditRecord, UserType, categorise};
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;
use tracklog_store::Stores;

/// Who performed a management action, and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    /// A policy (`policy:NAME`), a user name, or `cli` for the local CLI.
    pub name: String,
    pub user_type: UserType,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// The local command line, run by whoever can read the data directory.
    pub fn cli() -> Self {
        Self {
            name: "cli".into(),
            user_type: UserType::System,
            client_ip: None,
            user_agent: Some(format!("tracklog-cli/{}", env!("CARGO_PKG_VERSION"))),
        }
    }
}

/// What happened.
pub struct Action<'a> {
    pub operation: &'a str,
    pub entity_name: &'a str,
    pub entity_id: &'a str,
    pub success: bool,
    /// Changed values; never secrets.
    pub fields: Option<Value>,
}

/// Writes the record. A failure to audit is logged loudly but does not undo
/// the action, which has already happened.
///
/// Sign-ins and sign-outs to Tracklog's own pages go through the same
/// [`decide`] as those sent by clients (`auditing_enabled`,
/// `user_access_auditing`, the exclusion list); management actions are
/// always recorded.
pub async fn record(stores: &Stores, org: OrgId, actor: &Actor, action: Action<'_>) {
    if USER_ACCESS_OPERATIONS.contains(&action.operation) {
        match stores.audit.audit_settings(org).await {
            Ok(settings) => {
                let decision = decide(
                    &settings,
                    &EntityAuditSettings::default(),
                    action.operation,
                    Some(action.operation),
                    categorise(action.operation),
                );
                if decision != Decision::Keep {
                    return;
                }
            }
            // Record rather than lose it when the settings cannot be read.
            Err(error) => tracing::warn!(%error, "could not read the org's audit settings"),
        }
    }
    let org_name = match stores.meta.org_by_id(org).await {
        Ok(Some(found)) => found.name.to_string(),
        _ => org.0.to_string(),
    };
    let record = AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: org_name.clone(),
        creation_time: UtcMillis::now().to_rfc3339(),
        client_ip: actor.client_ip.clone(),
        operation: action.operation.to_owned(),
        user_key: Some(actor.name.clone()),
        user_type: Some(actor.user_type),
        user: Some(actor.name.clone()),
        result_status: Some(if action.success { "Success" } else { "Failed" }.to_owned()),
        crm_organization_unique_name: Some(org_name),
        item_type: Some(action.entity_name.to_owned()),
        message: Some(action.operation.to_owned()),
        user_agent: actor.user_agent.clone(),
        entity_id: Some(action.entity_id.to_owned()),
        entity_name: Some(action.entity_name.to_owned()),
        fields: action.fields,
        service_name: Some("Tracklog".into()),
        ..AuditRecord::default()
    };
    if let Err(error) = stores.audit.append_audit(org, vec![record]).await {
        tracing::error!(%error, operation = action.operation, "could not write the audit record");
    }
}
