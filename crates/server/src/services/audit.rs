//! The activity log's services: taking in records under the org's settings,
//! changing those settings (itself audited), the signing key, checkpoints,
//! retention and verification. Shared by the HTTP API, the UI and the CLI.

use std::collections::HashMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Serialize;
use serde_json::json;
use tracklog_domain::audit::AuditRecord;
use tracklog_domain::audit::chain::{ChainVerifier, Checkpoint, Verification};
use tracklog_domain::audit::reports::Predicate;
use tracklog_domain::audit::settings::{
    Decision, EntityAuditSettings, ExclusionReason, OrgAuditSettings, decide,
};
use tracklog_domain::ids::OrgId;
use tracklog_domain::ingest::Rejection;
use tracklog_domain::time::UtcMillis;
use tracklog_store::{AuditFilter, CheckpointDraft, PurgeSigner, StoreError, Stores};

use super::selfaudit::{self, Action, Actor};

pub use super::signing_key::{KEY_FILE, find_key, load_key, load_or_create_key};

/// An item that was not recorded because of the org's settings.
#[derive(Debug, Clone, Serialize)]
pub struct Excluded {
    pub index: usize,
    pub id: String,
    /// Always `excluded`, the outcome §5.3 names.
    pub outcome: &'static str,
    #[serde(serialize_with = "reason_code")]
    pub reason: ExclusionReason,
}

fn reason_code<S: serde::Serializer>(reason: &ExclusionReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(reason.code())
}

/// Every item's outcome.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AuditIngestReport {
    /// Records now durable, counting retries of records already stored.
    pub accepted: usize,
    /// Of the accepted, how many were already stored.
    pub duplicates: usize,
    #[schema(value_type = Vec<Object>)]
    pub rejected: Vec<Rejection>,
    /// Records not recorded because of the org's settings.
    pub excluded: usize,
    /// Which, and why (`excluded_message`, `read_auditing_off`, ...).
    #[schema(value_type = Vec<Object>)]
    pub excluded_items: Vec<Excluded>,
    /// Each item's outcome in request order: `accepted` (a retry of a
    /// stored record included), `rejected` or `excluded`.
    pub outcomes: Vec<&'static str>,
}

/// Applies the org's settings to decoded records (with their batch index)
/// and stores what is kept.
pub async fn ingest(
    stores: &Stores,
    org: OrgId,
    records: Vec<(usize, AuditRecord)>,
    rejected: Vec<Rejection>,
) -> Result<AuditIngestReport, StoreError> {
    let settings = stores.audit.audit_settings(org).await?;
    let entities: Vec<String> = records
        .iter()
        .filter_map(|(_, r)| r.entity_name.clone())
        .collect();
    let entity_settings = if entities.is_empty() {
        HashMap::new()
    } else {
        stores.audit.entity_audit_settings(org, entities).await?
    };
    let mut kept = Vec::with_capacity(records.len());
    let mut excluded = Vec::new();
    let items = records
        .iter()
        .map(|(index, _)| index + 1)
        .chain(rejected.iter().map(|r| r.index + 1))
        .max()
        .unwrap_or(0);
    let mut outcomes = vec!["accepted"; items];
    for rejection in &rejected {
        outcomes[rejection.index] = "rejected";
    }
    for (index, record) in records {
        let entity = record
            .entity_name
            .as_deref()
            .and_then(|e| entity_settings.get(&e.to_lowercase()))
            .copied()
            .unwrap_or_default();
        let decision = decide(
            &settings,
            &entity,
            &record.operation,
            record.message.as_deref(),
            record
                .category
                .unwrap_or(tracklog_domain::audit::Category::Other),
        );
        match decision {
            Decision::Keep => kept.push(record),
            Decision::Exclude(reason) => excluded.push(Excluded {
                index,
                id: record.id,
                outcome: "excluded",
                reason,
            }),
        }
    }
    for item in &excluded {
        outcomes[item.index] = "excluded";
    }
    let count = kept.len();
    let stored = if kept.is_empty() {
        Vec::new()
    } else {
        stores.audit.append_audit(org, kept).await?
    };
    let duplicates = stored.iter().filter(|fresh| !**fresh).count();
    Ok(AuditIngestReport {
        accepted: count,
        duplicates,
        rejected,
        excluded: excluded.len(),
        excluded_items: excluded,
        outcomes,
    })
}

/// The org's settings with the days it keeps records: its own retention,
/// or `default_days` (`audit.retention_days`) when never set.
pub async fn settings_with_retention(
    stores: &Stores,
    org: OrgId,
    default_days: u32,
) -> Result<(OrgAuditSettings, u32), StoreError> {
    let settings = stores.audit.audit_settings(org).await?;
    let days = stores
        .audit
        .retention_days(org)
        .await?
        .unwrap_or(default_days);
    Ok((settings, days))
}

fn settings_json(settings: &OrgAuditSettings, retention_days: u32) -> serde_json::Value {
    let mut value = json!(settings);
    if let Some(map) = value.as_object_mut() {
        map.insert("retention_days".into(), json!(retention_days));
    }
    value
}

/// Replaces the org's settings, and its retention when `retention_days` is
/// given, and records the change (old and new, retention included). Returns
/// what is now in force.
pub async fn put_settings(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    settings: OrgAuditSettings,
    retention_days: Option<u32>,
    default_days: u32,
) -> Result<(OrgAuditSettings, u32), StoreError> {
    let (old, old_days) = settings_with_retention(stores, org, default_days).await?;
    stores
        .audit
        .put_audit_settings(org, settings.clone())
        .await?;
    if let Some(days) = retention_days {
        stores.audit.set_retention_days(org, Some(days)).await?;
    }
    let days = retention_days.unwrap_or(old_days);
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation: "UpdateAuditSettings",
            entity_name: "audit_settings",
            entity_id: "org",
            success: true,
            fields: Some(json!({
                "old": settings_json(&old, old_days),
                "new": settings_json(&settings, days),
            })),
        },
    )
    .await;
    Ok((settings, days))
}

/// Replaces one entity's settings and records the change.
pub async fn put_entity_settings(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    entity: &str,
    settings: EntityAuditSettings,
) -> Result<EntityAuditSettings, StoreError> {
    let old = stores
        .audit
        .entity_audit_settings(org, vec![entity.to_owned()])
        .await?
        .remove(&entity.to_lowercase())
        .unwrap_or_default();
    stores
        .audit
        .put_entity_audit_settings(org, entity.to_owned(), settings)
        .await?;
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation: "UpdateAuditEntitySettings",
            entity_name: "audit_entity_settings",
            entity_id: &entity.to_lowercase(),
            success: true,
            fields: Some(json!({ "old": old, "new": settings })),
        },
    )
    .await;
    Ok(settings)
}

/// When checkpoints are due.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    pub every_records: u64,
    pub every_millis: i64,
}

/// Signs a checkpoint of the org's chain when one is due under `policy`
/// (or whenever the chain moved or was purged, with `force`). Returns the
/// checkpoint made, if any.
pub async fn checkpoint_if_due(
    stores: &Stores,
    key: &SigningKey,
    org: OrgId,
    org_name: &str,
    policy: CheckpointPolicy,
    force: bool,
) -> Result<Option<Checkpoint>, StoreError> {
    // What is linked now: a checkpoint does not wait for records the
    // materialiser has yet to apply; the next one signs them.
    let head = stores.audit.applied_chain_head(org).await?;
    let anchor = stores.audit.chain_anchor(org).await?;
    let last = stores.audit.latest_checkpoint(org).await?;
    let (sequence, hash) = head.unwrap_or(anchor);
    let now = UtcMillis::now().as_millis();
    let due = match &last {
        None => sequence > 0,
        Some(last) => {
            let moved = sequence > last.sequence;
            let anchor_changed = (last.anchor_sequence, last.anchor_hash) != anchor;
            let many = (sequence - last.sequence) as u64 >= policy.every_records;
            let old = now - last.created_at_ms >= policy.every_millis;
            anchor_changed || (moved && (force || many || old))
        }
    };
    if !due {
        return Ok(None);
    }
    let number = last.map_or(1, |c| c.number + 1);
    let checkpoint = Checkpoint::sign(
        key, org_name, number, sequence, hash, anchor.0, anchor.1, now,
    );
    match stores.audit.add_checkpoint(org, checkpoint.clone()).await {
        Ok(()) => Ok(Some(checkpoint)),
        // Another process signed this number first; theirs stands.
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Removes the org's records older than its retention and signs the new
/// anchor at once. Returns how many sequences went.
pub async fn purge(
    stores: &Stores,
    key: &SigningKey,
    org: OrgId,
    org_name: &str,
    default_days: u32,
) -> Result<u64, StoreError> {
    let days = stores
        .audit
        .retention_days(org)
        .await?
        .unwrap_or(default_days);
    let cutoff = UtcMillis::now().saturating_add_millis(-(i64::from(days) * 86_400_000));
    let before = stores.audit.chain_anchor(org).await?.0;
    let Some(anchor) = stores
        .audit
        .purge_audit(org, cutoff, Some(purge_signer(key, org_name)))
        .await?
    else {
        return Ok(0);
    };
    Ok((anchor.0 - before).max(0) as u64)
}

/// Signs the checkpoint a purge writes with its deletion: verification
/// never sees an anchor that no checkpoint vouches for.
pub fn purge_signer(key: &SigningKey, org_name: &str) -> PurgeSigner {
    let key = key.clone();
    let org_name = org_name.to_owned();
    Box::new(move |draft: CheckpointDraft| {
        Checkpoint::sign(
            &key,
            &org_name,
            draft.number,
            draft.sequence,
            draft.hash,
            draft.anchor_sequence,
            draft.anchor_hash,
            UtcMillis::now().as_millis(),
        )
    })
}

/// `filter` narrowed to one report: its predicate, and the org's own
/// sign-in and sign-out operations when the report counts them.
pub async fn report_filter(
    stores: &Stores,
    org: OrgId,
    predicate: Predicate,
    filter: AuditFilter,
) -> Result<AuditFilter, StoreError> {
    let sign_in_operations = if predicate.org_sign_in_operations {
        stores.audit.audit_settings(org).await?.sign_in_operations
    } else {
        Vec::new()
    };
    Ok(AuditFilter {
        report: Some(predicate),
        sign_in_operations,
        ..filter
    })
}

/// Verifies an org's chain and checkpoints, from sequence `from` (inclusive)
/// to `to` (inclusive) when given. Each record's searchable columns are
/// checked against its chained bytes on the way; a verification of the
/// whole chain also checks the log's indexes, free-text index and schema
/// (`AuditStore::audit_structure`), which are checked as a whole.
pub async fn verify(
    stores: &Stores,
    public: &VerifyingKey,
    org: OrgId,
    org_name: &str,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Verification, StoreError> {
    let whole = from.is_none() && to.is_none();
    verify_with(stores, public, org, org_name, from, to, whole).await
}

/// [`verify`], with the checks beside the chain (`structure`) chosen by the
/// caller: a page that checks the newest records on every view leaves
/// them out, since FTS5's check of the whole free-text index takes the
/// write lock.
pub async fn verify_with(
    stores: &Stores,
    public: &VerifyingKey,
    org: OrgId,
    org_name: &str,
    from: Option<i64>,
    to: Option<i64>,
    structure: bool,
) -> Result<Verification, StoreError> {
    // The checks beside the chain run on the writer (FTS5's) and another
    // read connection while the chain is walked: the two overlap.
    let beside = async {
        if structure {
            stores.audit.audit_structure(org).await
        } else {
            Ok(None)
        }
    };
    let (chain, beside) = tokio::join!(walk_chain(stores, public, org, org_name, from, to), beside);
    let mut verification = chain?;
    verification.add(beside?);
    Ok(verification)
}

async fn walk_chain(
    stores: &Stores,
    public: &VerifyingKey,
    org: OrgId,
    org_name: &str,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Verification, StoreError> {
    const PAGE: usize = 5_000;
    // The head first: records written during the walk lie beyond it.
    let head = stores.audit.written_head(org).await?;
    let anchor = stores.audit.chain_anchor(org).await?;
    let start = from.map_or(anchor.0, |f| f.saturating_sub(1).max(anchor.0));
    let until = to.unwrap_or(i64::MAX);
    let trust_first = start > anchor.0;
    let mut verifier = ChainVerifier::new(org_name, public, anchor, trust_first);
    verifier.expect_head(head);
    let mut after = start;
    loop {
        let rows = stores.audit.chain_rows(org, after, until, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.sequence;
        for row in &rows {
            verifier.push(row);
        }
        if verifier.is_broken() || rows.len() < PAGE {
            break;
        }
    }
    let checkpoints = stores.audit.checkpoints(org).await?;
    let mut links = HashMap::new();
    let sequences = checkpoints
        .iter()
        .map(|c| c.sequence)
        .chain(head.map(|(sequence, _)| sequence));
    for sequence in sequences {
        if let Some(hash) = stores.audit.chain_link(org, sequence).await? {
            links.insert(sequence, hash);
        }
    }
    Ok(verifier.finish(&checkpoints, anchor, |s| links.get(&s).copied()))
}

/// Records an export of the activity log.
pub async fn record_export(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    format: &str,
    filter: serde_json::Value,
) {
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation: "ExportAuditLog",
            entity_name: "audit",
            entity_id: format,
            success: true,
            fields: Some(json!({ "format": format, "filter": filter })),
        },
    )
    .await;
}
