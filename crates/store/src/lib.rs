//! # tracklog-store
//!
//! Where Tracklog keeps its data. Handlers and services see only the narrow
//! traits defined here; which engine sits behind them is a start-up choice.
//!
//! - [`EventStore`]: append-mostly activity — portal interactions today.
//! - [`MetaStore`]: the small, transactional metadata — orgs, access policies,
//!   users and their web sessions.
//! - [`PortalStore`]: the portal pillar's records — portals, interaction-type
//!   definitions, contacts and cases.
//! - [`AuditStore`]: the activity log, with server-assigned sequence numbers.
//! - [`ChannelStore`]: channel analytics — providers, KPI event definitions,
//!   conversations, sessions, participants, KPI events, and the session facts
//!   and 15-minute pre-aggregates kept up to date in the same transaction.
//! - [`sqlite`]: the embedded backend. One writer thread owns the write
//!   connection and commits in groups; a small pool serves reads.
//! - [`conformance`]: the behaviour every backend must show, as a test suite that
//!   each backend's tests instantiate with [`conformance_suite!`].
//!
//! Every write returns only once it is durable under the configured
//! [`Durability`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use serde::{Deserialize, Serialize};
use tracklog_domain::audit::chain::{Break, ChainRow, Checkpoint};
use tracklog_domain::audit::reports::Predicate;
use tracklog_domain::audit::settings::{EntityAuditSettings, OrgAuditSettings};
use tracklog_domain::audit::{AuditRecord, Category};
use tracklog_domain::auth::{PolicyKey, Rights};
use tracklog_domain::channel::alerts::AlertRule;
use tracklog_domain::channel::definitions::Definition;
use tracklog_domain::channel::facts::{SessionFacts, Thresholds};
use tracklog_domain::channel::metrics::{Dimension, Part};
use tracklog_domain::channel::payload::{Conversation, Init, KpiEvent, Participant, Session};
use tracklog_domain::channel::series::Row;
use tracklog_domain::contact::{Case, Contact};
use tracklog_domain::ids::{CaseId, ContactId, OrgId, OrgName, PolicyName, PortalId, UserName};
use tracklog_domain::ingest::Reason;
use tracklog_domain::interaction::Interaction;
use tracklog_domain::portal::{Portal, TypeDef};
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;

pub mod conformance;
pub mod fault;
pub mod log;
pub mod sqlite;

pub use tracklog_domain::cursor::{BadCursor, Cursor};
pub use tracklog_domain::ingest::Durability;

/// Errors at the storage boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The write queue is full; the caller should retry later.
    #[error("the write queue is full")]
    Overloaded,
    /// The store is shutting down or cannot be reached.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A unique name is already taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The named thing does not exist.
    #[error("{0} was not found")]
    NotFound(String),
    /// A cursor that this store did not issue.
    #[error("the cursor is not valid")]
    BadCursor,
    /// A query the engine could not run as asked (never a store fault).
    #[error("the query is not valid: {0}")]
    BadQuery(String),
    /// Anything else the engine reported.
    #[error("storage failure: {0}")]
    Internal(String),
}

impl From<BadCursor> for StoreError {
    fn from(_: BadCursor) -> Self {
        StoreError::BadCursor
    }
}

/// Metrics every backend keeps, registered by the server under `tracklog_`.
#[derive(Clone)]
pub struct StoreMetrics {
    /// Seconds from the start of a group commit until it is durable.
    pub commit_seconds: Histogram,
    /// Items waiting in the write queue.
    pub queue_depth: Gauge,
    /// Items per group commit.
    pub commit_items: Histogram,
    /// Seconds the log's fdatasync of a group took.
    pub log_sync_seconds: Histogram,
    /// Items waiting for the log.
    pub log_queue_depth: Gauge,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            commit_seconds: Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            queue_depth: Gauge::default(),
            commit_items: Histogram::new([
                1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0,
            ]),
            log_sync_seconds: Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            log_queue_depth: Gauge::default(),
        }
    }
}

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Cursor>,
}

/// A window over a contact's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineQuery {
    /// Inclusive lower bound.
    pub from: Option<UtcMillis>,
    /// Exclusive upper bound.
    pub to: Option<UtcMillis>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// A journey read: the range, the page and how many searches to list.
#[derive(Debug, Clone)]
pub struct JourneyQuery {
    pub from: UtcMillis,
    /// Exclusive.
    pub to: UtcMillis,
    /// Interactions on the page, newest first.
    pub limit: usize,
    /// The page's `next_cursor`: interactions older than it.
    pub cursor: Option<Cursor>,
    /// The most searches to list, newest first.
    pub searches: usize,
}

/// What a journey read found.
#[derive(Debug, Clone)]
pub struct JourneyData {
    pub cells: tracklog_domain::journey::Cells,
    /// Newest first.
    pub searches: Vec<(i64, String)>,
    /// The range held more searches than were listed.
    pub more_searches: bool,
    pub page: Page<Interaction>,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendSummary {
    pub inserted: usize,
    /// Items whose id was already stored: idempotent retries, stored once.
    pub duplicates: usize,
}

/// Append-mostly activity.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores interactions durably; an id already stored for the org is skipped.
    async fn append_interactions(
        &self,
        org: OrgId,
        items: Vec<Interaction>,
    ) -> Result<AppendSummary, StoreError>;

    /// A contact's interactions, oldest first.
    async fn contact_interactions(
        &self,
        org: OrgId,
        contact: &ContactId,
        query: TimelineQuery,
    ) -> Result<Page<Interaction>, StoreError>;

    /// Deletes every interaction of the contact, including anonymous ones
    /// stitched to it, and forgets its session links. Deleted content is
    /// overwritten on disk, not only unlinked.
    async fn erase_contact(
        &self,
        org: OrgId,
        contact: &ContactId,
    ) -> Result<ErasedActivity, StoreError>;

    /// Deletes up to `max` interactions of a portal older than `before` (all
    /// of them when `None`); returns how many went. Callers loop until 0, so
    /// a large purge never holds the writer for long.
    async fn purge_interactions(
        &self,
        org: OrgId,
        portal: &PortalId,
        before: Option<UtcMillis>,
        max: usize,
    ) -> Result<u64, StoreError>;

    /// A contact's journey over `[from, to)`: the summary of the whole
    /// range, its newest searches, and one page of its interactions, newest
    /// first. What it costs follows the range's length and the page, not
    /// how many interactions the contact has.
    async fn journey(
        &self,
        org: OrgId,
        contact: &ContactId,
        query: JourneyQuery,
    ) -> Result<JourneyData, StoreError>;

    /// A portal's activity in `[from, to)`.
    async fn portal_insights(
        &self,
        org: OrgId,
        portal: &PortalId,
        from: UtcMillis,
        to: UtcMillis,
    ) -> Result<PortalInsights, StoreError>;
}

/// What erasing a contact's activity removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ErasedActivity {
    pub interactions: u64,
    /// Anonymous sessions that were linked to the contact.
    pub sessions: u64,
}

/// A portal's activity over a window, for its insight page.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PortalInsights {
    /// `(UTC day number, type, count)`, by day then type.
    pub daily: Vec<(i64, String, u64)>,
    pub top_articles: Vec<TopArticle>,
    pub top_searches: Vec<TopSearch>,
    /// Searches that the same contact followed with a case within 24 hours.
    pub searches_before_case: Vec<TopSearch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopArticle {
    pub id: String,
    pub title: Option<String>,
    pub views: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopSearch {
    pub text: String,
    pub count: u64,
}

/// The portal pillar's records: portals, interaction-type definitions,
/// contacts and cases.
#[async_trait]
pub trait PortalStore: Send + Sync {
    /// Fails with [`StoreError::Conflict`] when the id or the public key is
    /// taken by a live portal; a deleted portal's id may be registered again.
    async fn create_portal(&self, org: OrgId, portal: Portal) -> Result<(), StoreError>;
    /// A live portal.
    async fn portal(&self, org: OrgId, id: &PortalId) -> Result<Option<Portal>, StoreError>;
    /// The live portal a public ingest key belongs to.
    async fn portal_by_public_key(&self, key: &str) -> Result<Option<(OrgId, Portal)>, StoreError>;
    async fn list_portals(&self, org: OrgId) -> Result<Vec<Portal>, StoreError>;
    /// Replaces a live portal's settings.
    async fn update_portal(&self, org: OrgId, portal: Portal) -> Result<(), StoreError>;
    /// Marks a portal deleted: its capture stops and its id stays known.
    async fn delete_portal(&self, org: OrgId, id: &PortalId) -> Result<(), StoreError>;
    /// Ids of portals whose integration was deleted.
    async fn deleted_portals(&self, org: OrgId) -> Result<Vec<PortalId>, StoreError>;

    /// The org's stored type definitions: custom types, and built-ins whose
    /// state it changed.
    async fn stored_types(&self, org: OrgId) -> Result<Vec<TypeDef>, StoreError>;
    /// Fails with [`StoreError::Conflict`] when the name is taken.
    async fn create_type(&self, org: OrgId, def: TypeDef) -> Result<(), StoreError>;
    /// Inserts or replaces a definition.
    async fn put_type(&self, org: OrgId, def: TypeDef) -> Result<(), StoreError>;

    /// Inserts or merges contacts (see [`Contact::merge`]); returns how many
    /// were new.
    async fn upsert_contacts(
        &self,
        org: OrgId,
        contacts: Vec<Contact>,
    ) -> Result<usize, StoreError>;
    async fn contact(&self, org: OrgId, id: &ContactId) -> Result<Option<Contact>, StoreError>;
    /// Contacts in id order, after `after` when given.
    async fn list_contacts(
        &self,
        org: OrgId,
        after: Option<ContactId>,
        limit: usize,
    ) -> Result<Vec<Contact>, StoreError>;
    /// Removes the profile and the contact's cases; returns whether a profile
    /// existed and how many cases went.
    async fn delete_contact(&self, org: OrgId, id: &ContactId) -> Result<(bool, u64), StoreError>;

    /// Inserts or replaces a case.
    async fn upsert_case(&self, org: OrgId, case: Case) -> Result<(), StoreError>;
    async fn case(&self, org: OrgId, id: &CaseId) -> Result<Option<Case>, StoreError>;
    /// The newest cases first, optionally of one contact.
    async fn list_cases(
        &self,
        org: OrgId,
        contact: Option<ContactId>,
        limit: usize,
    ) -> Result<Vec<Case>, StoreError>;
}

/// An organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: OrgName,
    pub created_at: UtcMillis,
}

/// An access policy with its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub org: OrgId,
    pub name: PolicyName,
    pub rights: Rights,
    pub primary_key: PolicyKey,
    pub secondary_key: PolicyKey,
    /// Limits the policy to one portal.
    pub portal: Option<PortalId>,
    /// Limits the policy to one channel provider.
    pub provider: Option<String>,
    pub created_at: UtcMillis,
    pub updated_at: UtcMillis,
}

/// Which of a policy's two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySlot {
    Primary,
    Secondary,
}

/// A person who signs in to the web UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub org: OrgId,
    pub name: UserName,
    pub role: Role,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub created_at: UtcMillis,
    /// A disabled user cannot sign in, and has no sessions.
    pub disabled: bool,
    pub last_sign_in: Option<UtcMillis>,
}

/// A change to one user: each field given is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    /// Disabling also ends every session of the user, in the same
    /// transaction.
    pub disabled: Option<bool>,
    /// A new password also ends every session of the user.
    pub password_hash: Option<String>,
}

/// A signed-in browser session. Only a hash of the cookie's token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub token_hash: String,
    pub org: OrgId,
    pub user: UserName,
    pub csrf_token: String,
    pub expires_at: UtcMillis,
}

/// Orgs, policies, users and web sessions.
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Returns the org, creating it if needed.
    async fn ensure_org(&self, name: &OrgName) -> Result<Org, StoreError>;
    async fn org_by_name(&self, name: &OrgName) -> Result<Option<Org>, StoreError>;
    async fn org_by_id(&self, id: OrgId) -> Result<Option<Org>, StoreError>;
    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError>;

    /// Fails with [`StoreError::Conflict`] when the name is taken in any org.
    async fn create_policy(&self, policy: Policy) -> Result<(), StoreError>;
    /// Policy names are unique across the instance, so credentials need no org.
    async fn policy(&self, name: &PolicyName) -> Result<Option<Policy>, StoreError>;
    async fn list_policies(&self, org: OrgId) -> Result<Vec<Policy>, StoreError>;
    /// Replaces one key, leaving the other as it was.
    async fn replace_policy_key(
        &self,
        org: OrgId,
        name: &PolicyName,
        slot: KeySlot,
        key: PolicyKey,
    ) -> Result<Policy, StoreError>;
    async fn delete_policy(&self, org: OrgId, name: &PolicyName) -> Result<(), StoreError>;

    async fn create_user(&self, user: User) -> Result<(), StoreError>;
    async fn user(&self, name: &UserName) -> Result<Option<User>, StoreError>;
    async fn list_users(&self, org: OrgId) -> Result<Vec<User>, StoreError>;
    /// Applies `change` to the org's user and returns it as it now is.
    /// [`StoreError::NotFound`] when the org has no such user.
    async fn update_user(
        &self,
        org: OrgId,
        name: &UserName,
        change: UserChange,
    ) -> Result<User, StoreError>;
    /// Removes the org's user and every session of theirs.
    async fn delete_user(&self, org: OrgId, name: &UserName) -> Result<(), StoreError>;
    /// Notes a successful sign-in.
    async fn record_sign_in(&self, name: &UserName, at: UtcMillis) -> Result<(), StoreError>;

    async fn create_web_session(&self, session: WebSession) -> Result<(), StoreError>;
    /// Returns the session if it exists and has not expired at `now`.
    async fn web_session(
        &self,
        token_hash: &str,
        now: UtcMillis,
    ) -> Result<Option<WebSession>, StoreError>;
    async fn delete_web_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Proves the store accepts a durable write (for `/readyz`).
    async fn check_writable(&self) -> Result<(), StoreError>;
}

/// A filter over the activity log, shared by search, export and reports.
/// Every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Inclusive lower bound on `CreationTime`.
    pub from: Option<UtcMillis>,
    /// Exclusive upper bound on `CreationTime`.
    pub to: Option<UtcMillis>,
    /// `User`, exactly.
    pub user: Option<String>,
    pub operation: Option<String>,
    pub category: Option<Category>,
    pub entity_name: Option<String>,
    pub entity_id: Option<String>,
    pub result_status: Option<String>,
    pub client_ip: Option<String>,
    /// Free text over `Fields` and `Query`: every word must appear. Never
    /// passed to the engine as query syntax.
    pub q: Option<String>,
    /// One of the preconfigured reports.
    pub report: Option<Predicate>,
    /// The org's own sign-in and sign-out operations, which a `report`
    /// that takes them (`Predicate::org_sign_in_operations`) also counts.
    pub sign_in_operations: Vec<String>,
    /// Only records up to this sequence: an export fixes it when it starts,
    /// so that records arriving meanwhile (its own audit record among them)
    /// do not change what it returns.
    pub until_sequence: Option<i64>,
}

pub use tracklog_domain::audit::split::PartsIntegrity;

/// One record as read back. When a split record cannot be reassembled,
/// `record` holds only what the searchable columns know and `integrity`
/// says what is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditHit {
    pub record: AuditRecord,
    /// Parts the record was stored as (0 when whole).
    pub parts: u32,
    pub integrity: Option<PartsIntegrity>,
    /// When the record was stored, in milliseconds, as its chained bytes
    /// say; `None` when they could not be read. JSON-lines exports carry it
    /// so that the bytes can be rebuilt and checked outside the server.
    pub stored_at: Option<i64>,
}

/// A page of search results, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub items: Vec<AuditHit>,
    /// How many records match the filter in all, when asked for.
    pub count: Option<u64>,
    pub next_cursor: Option<Cursor>,
}

/// Where an org's chain starts: after a retention purge, the last purged
/// record's sequence and link; `(0, GENESIS)` before any.
pub type Anchor = (i64, [u8; 32]);

/// What the checkpoint written with a purge signs: the next number, the
/// chain's head after the purge and the new anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointDraft {
    pub number: i64,
    pub sequence: i64,
    pub hash: [u8; 32],
    pub anchor_sequence: i64,
    pub anchor_hash: [u8; 32],
}

/// Signs the checkpoint a purge writes in its own transaction, so that no
/// reader ever sees an anchor that no checkpoint vouches for.
pub type PurgeSigner = Box<dyn FnOnce(CheckpointDraft) -> Checkpoint + Send>;

/// The activity log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends records durably. Each is given its `Category` and, in the
    /// order appended, its `Sequence` and link in the org's hash chain;
    /// one whose JSON is over the split threshold is stored as parts. A
    /// record whose `Id` the org holds already is skipped. Returns, for
    /// each record, whether it is new (`false`: a retry of a stored `Id`).
    /// Reads that start after the return see the records.
    async fn append_audit(
        &self,
        org: OrgId,
        records: Vec<AuditRecord>,
    ) -> Result<Vec<bool>, StoreError>;

    /// The newest records first, before the sequence `before` when given.
    async fn recent_audit(
        &self,
        org: OrgId,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Records matching `filter`, newest `CreationTime` first, paged.
    async fn search_audit(
        &self,
        org: OrgId,
        filter: AuditFilter,
        limit: usize,
        cursor: Option<Cursor>,
        with_count: bool,
    ) -> Result<AuditPage, StoreError>;

    /// One record by its `Id`.
    async fn audit_record(&self, org: OrgId, id: String) -> Result<Option<AuditHit>, StoreError>;

    /// Matching records counted per bucket of `bucket_ms` (aligned to the
    /// Unix epoch), oldest bucket first; empty buckets are left out.
    async fn audit_histogram(
        &self,
        org: OrgId,
        filter: AuditFilter,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, u64)>, StoreError>;

    /// The org's settings; the defaults when never set.
    async fn audit_settings(&self, org: OrgId) -> Result<OrgAuditSettings, StoreError>;
    async fn put_audit_settings(
        &self,
        org: OrgId,
        settings: OrgAuditSettings,
    ) -> Result<(), StoreError>;
    /// Settings of the named entities that were ever set (names compare
    /// case-insensitively; keys are lower case).
    async fn entity_audit_settings(
        &self,
        org: OrgId,
        entities: Vec<String>,
    ) -> Result<HashMap<String, EntityAuditSettings>, StoreError>;
    async fn put_entity_audit_settings(
        &self,
        org: OrgId,
        entity: String,
        settings: EntityAuditSettings,
    ) -> Result<(), StoreError>;

    /// Chain rows with a sequence in `(after, until]`, in order, at most
    /// `limit`; `record_sha256` is computed from the stored bytes.
    async fn chain_rows(
        &self,
        org: OrgId,
        after: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<ChainRow>, StoreError>;
    /// Checks what lies beside the org's chain and is read by search,
    /// reports and export: that the log's schema is this build's, that
    /// nothing was moved to no organisation, that every index of the log
    /// holds exactly the org's rows, and that the free-text index matches
    /// every record's text. The first problem found, or `None`.
    async fn audit_structure(&self, org: OrgId) -> Result<Option<Break>, StoreError>;
    /// The stored link of one record.
    async fn chain_link(&self, org: OrgId, sequence: i64) -> Result<Option<[u8; 32]>, StoreError>;
    /// The newest record's sequence and link, once every record the org
    /// had acknowledged is linked.
    async fn chain_head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError>;
    /// The newest record linked so far, without waiting for records still
    /// on their way in: what a checkpoint signs while ingest runs.
    async fn applied_chain_head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.chain_head(org).await
    }
    /// The sequence and link the writer last wrote, kept beside the log and
    /// updated in the same transaction as every append; `None` when the org
    /// never wrote a record. Unlike [`AuditStore::chain_head`] it does not
    /// move back when records are deleted at the tail.
    async fn written_head(&self, org: OrgId) -> Result<Option<(i64, [u8; 32])>, StoreError>;
    async fn chain_anchor(&self, org: OrgId) -> Result<Anchor, StoreError>;
    /// The org's checkpoints, by number.
    async fn checkpoints(&self, org: OrgId) -> Result<Vec<Checkpoint>, StoreError>;
    /// The org's checkpoints numbered above `after`, by number, at most
    /// `limit`: what a publisher has not sent yet.
    async fn checkpoints_after(
        &self,
        org: OrgId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError>;
    /// The org's newest checkpoint.
    async fn latest_checkpoint(&self, org: OrgId) -> Result<Option<Checkpoint>, StoreError>;
    async fn add_checkpoint(&self, org: OrgId, checkpoint: Checkpoint) -> Result<(), StoreError>;
    /// Deletes the oldest records stored before `stored_before`, as a prefix
    /// of the chain, and returns the new anchor when anything went. It first
    /// waits until every acknowledged record is applied. With a
    /// `signer`, the checkpoint of the new anchor is written in the same
    /// transaction; without one (tests of what verification reports) the
    /// purge is left unsigned.
    async fn purge_audit(
        &self,
        org: OrgId,
        stored_before: UtcMillis,
        signer: Option<PurgeSigner>,
    ) -> Result<Option<Anchor>, StoreError>;
    /// The org's retention in days, when set.
    async fn retention_days(&self, org: OrgId) -> Result<Option<u32>, StoreError>;
    async fn set_retention_days(&self, org: OrgId, days: Option<u32>) -> Result<(), StoreError>;

    /// Records after `after` in sequence order, for forwarding.
    async fn audit_after(
        &self,
        org: OrgId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditHit>, StoreError>;
    /// A forwarder's saved position in an org's log (0 when none).
    async fn forward_cursor(&self, forwarder: String, org: OrgId) -> Result<i64, StoreError>;
    async fn save_forward_cursor(
        &self,
        forwarder: String,
        org: OrgId,
        sequence: i64,
    ) -> Result<(), StoreError>;
}

/// A channel provider (PRODUCT.md §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub enable_analytics: bool,
    #[serde(with = "tracklog_domain::time::rfc3339")]
    pub created_at: UtcMillis,
    #[serde(with = "tracklog_domain::time::rfc3339")]
    pub updated_at: UtcMillis,
}

/// A queue's thresholds, as set by an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueSettings {
    pub queue: String,
    pub service_level_seconds: i64,
    pub short_abandon_seconds: i64,
    #[serde(with = "tracklog_domain::time::rfc3339")]
    pub updated_at: UtcMillis,
}

impl QueueSettings {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            service_level_ms: self.service_level_seconds * 1000,
            short_abandon_ms: self.short_abandon_seconds * 1000,
        }
    }
}

/// What decides, per item, whether channel data is captured.
#[derive(Debug, Clone, Default)]
pub struct ChannelRules {
    /// Providers whose `enable_analytics` is false.
    pub disabled_providers: HashSet<String>,
    /// The only provider a provider-scoped credential may write for.
    pub provider_scope: Option<String>,
}

/// A KPI event's outcome, with the provider of its conversation when the
/// outcome was decided: none before the conversation's init arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOutcome {
    pub outcome: ItemOutcome,
    pub provider: Option<String>,
}

/// One item's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Accepted,
    /// Already stored: an idempotent retry.
    Duplicate,
    Refused {
        reason: Reason,
        field: Option<String>,
        message: String,
    },
}

/// Filters of the channel record lists; each applies to the lists whose
/// records carry it.
#[derive(Debug, Clone, Default)]
pub struct ChannelFilter {
    pub conversation: Option<String>,
    pub session: Option<String>,
    pub participant: Option<String>,
    pub provider: Option<String>,
    pub channel: Option<String>,
    pub queue: Option<String>,
    /// KPI event name, or participant type.
    pub name: Option<String>,
    /// Inclusive lower bound on the record's time.
    pub from: Option<UtcMillis>,
    /// Exclusive upper bound on the record's time.
    pub to: Option<UtcMillis>,
}

/// A page request over a channel list.
#[derive(Debug, Clone, Default)]
pub struct ChannelList {
    pub filter: ChannelFilter,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// Everything about one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDetail {
    pub session: Session,
    pub conversation: Option<Conversation>,
    pub participants: Vec<Participant>,
    pub facts: Option<SessionFacts>,
    pub events: Vec<KpiEvent>,
}

/// A pre-aggregate read: parts over `[from_bucket, to_bucket)`, grouped and
/// filtered by dimensions.
#[derive(Debug, Clone)]
pub struct AggregateQuery {
    pub parts: Vec<Part>,
    pub from_bucket: i64,
    pub to_bucket: i64,
    pub group_by: Vec<Dimension>,
    pub filters: Vec<(Dimension, String)>,
    /// Every boundary the caller folds the rows into is a multiple of this
    /// many milliseconds since the epoch (of 15 minutes, at least), so the
    /// store may answer from buckets that large. Rows keep the stored
    /// bucket's start.
    pub granularity_ms: i64,
}

/// Which time of a session places it in an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactTime {
    Queued,
    Answered,
    Closed,
}

/// Sessions whose `time` falls in `[from, to)`, filtered by dimensions.
#[derive(Debug, Clone)]
pub struct FactsQuery {
    pub time: FactTime,
    pub from: UtcMillis,
    pub to: UtcMillis,
    pub filters: Vec<(Dimension, String)>,
    pub limit: usize,
}

/// A page of the dissatisfied-conversations report: sessions closed in
/// `[from, to)` with a CSAT of 2 or less or a negative closing sentiment,
/// oldest closed first, filtered by dimensions (queue, agent...).
#[derive(Debug, Clone)]
pub struct DissatisfiedQuery {
    pub from: UtcMillis,
    pub to: UtcMillis,
    pub filters: Vec<(Dimension, String)>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// One page of the report, with how many sessions the whole report holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DissatisfiedPage {
    pub items: Vec<SessionFacts>,
    pub count: u64,
    pub next_cursor: Option<Cursor>,
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RebuildSummary {
    pub sessions: usize,
    pub agents: usize,
    pub buckets: usize,
}

/// Called during a rebuild with (done, total) sessions.
pub type RebuildProgress = Box<dyn Fn(usize, usize) + Send + Sync>;

/// An alert a rule raised: predicted, firing, then resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub rule_id: String,
    pub metric: String,
    /// `predicted`, `firing` or `resolved`.
    pub state: String,
    pub value: Option<f64>,
    pub projected: Option<f64>,
    pub threshold: f64,
    #[serde(with = "tracklog_domain::time::rfc3339")]
    pub started_at: UtcMillis,
    #[serde(with = "tracklog_domain::time::rfc3339")]
    pub updated_at: UtcMillis,
    #[serde(default, with = "tracklog_domain::time::rfc3339_opt")]
    pub resolved_at: Option<UtcMillis>,
}

/// Channel analytics records and their pre-aggregates.
#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// Creates or replaces a provider.
    async fn put_provider(&self, org: OrgId, provider: Provider) -> Result<(), StoreError>;
    async fn provider(&self, org: OrgId, id: &str) -> Result<Option<Provider>, StoreError>;
    async fn providers(&self, org: OrgId) -> Result<Vec<Provider>, StoreError>;
    /// The providers whose `enable_analytics` is false. A provider the
    /// ingest path registers is enabled, so this does not wait for ingest
    /// behind the log: it is what decides capture on the ingest path.
    async fn disabled_providers(&self, org: OrgId) -> Result<HashSet<String>, StoreError>;
    async fn delete_provider(&self, org: OrgId, id: &str) -> Result<bool, StoreError>;

    /// Creates or replaces a custom KPI event definition.
    async fn put_definition(&self, org: OrgId, definition: Definition) -> Result<(), StoreError>;
    async fn custom_definitions(&self, org: OrgId) -> Result<Vec<Definition>, StoreError>;
    async fn delete_definition(&self, org: OrgId, name: &str) -> Result<bool, StoreError>;

    /// Sets a queue's thresholds and re-derives the facts of its sessions.
    async fn put_queue(&self, org: OrgId, queue: QueueSettings) -> Result<(), StoreError>;
    async fn queues(&self, org: OrgId) -> Result<Vec<QueueSettings>, StoreError>;

    /// Stores `initLogAnalytics` items: conversations, sessions and
    /// participants are created, or merged into what is stored.
    async fn ingest_init(
        &self,
        org: OrgId,
        items: Vec<Init>,
        rules: ChannelRules,
    ) -> Result<Vec<ItemOutcome>, StoreError>;
    /// Stores KPI events; an event already stored is a duplicate. Each
    /// outcome comes with the provider the event's conversation had.
    async fn ingest_events(
        &self,
        org: OrgId,
        events: Vec<KpiEvent>,
        rules: ChannelRules,
    ) -> Result<Vec<EventOutcome>, StoreError>;

    async fn conversations(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<Conversation>, StoreError>;
    async fn conversation(&self, org: OrgId, id: &str) -> Result<Option<Conversation>, StoreError>;
    async fn sessions(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<(Session, Option<SessionFacts>)>, StoreError>;
    async fn session(&self, org: OrgId, id: &str) -> Result<Option<SessionDetail>, StoreError>;
    async fn participants(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<Participant>, StoreError>;
    async fn kpi_events(&self, org: OrgId, list: ChannelList)
    -> Result<Page<KpiEvent>, StoreError>;

    /// Pre-aggregated rows for a metrics query.
    async fn aggregate(&self, org: OrgId, query: AggregateQuery) -> Result<Vec<Row>, StoreError>;
    /// Session facts by one of their times: the sessions behind a figure.
    async fn facts(&self, org: OrgId, query: FactsQuery) -> Result<Vec<SessionFacts>, StoreError>;
    /// The dissatisfied conversations of a period.
    async fn dissatisfied(
        &self,
        org: OrgId,
        query: DissatisfiedQuery,
    ) -> Result<DissatisfiedPage, StoreError>;
    /// Facts of sessions with an event named in `names` in `[from, to)`.
    async fn facts_with_events(
        &self,
        org: OrgId,
        names: Vec<String>,
        query: FactsQuery,
    ) -> Result<Vec<SessionFacts>, StoreError>;
    /// Sessions not closed (waiting, active, wrapping up) with activity since
    /// `since`.
    async fn live_sessions(
        &self,
        org: OrgId,
        since: UtcMillis,
    ) -> Result<Vec<SessionFacts>, StoreError>;
    /// The signed-in spans of every agent with sign-in activity since
    /// `since`, for the real-time view.
    async fn agent_spans(
        &self,
        org: OrgId,
        since: UtcMillis,
    ) -> Result<Vec<(String, Vec<(UtcMillis, Option<UtcMillis>)>)>, StoreError>;

    async fn put_alert_rule(&self, org: OrgId, rule: AlertRule) -> Result<(), StoreError>;
    /// Every rule of the org, with webhook secrets.
    async fn alert_rules(&self, org: OrgId) -> Result<Vec<AlertRule>, StoreError>;
    async fn delete_alert_rule(&self, org: OrgId, id: &str) -> Result<bool, StoreError>;
    /// Creates or replaces an alert by its id.
    async fn put_alert(&self, org: OrgId, alert: Alert) -> Result<(), StoreError>;
    /// Alerts newest first; only those not resolved with `open_only`.
    async fn alerts(
        &self,
        org: OrgId,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError>;

    /// The version of the derivation (`facts::DERIVATION`) the stored facts
    /// and rollups were made by.
    async fn derivation(&self) -> Result<i64, StoreError>;
    /// Records that every org's facts and rollups are now of `version`.
    async fn set_derivation(&self, version: i64) -> Result<(), StoreError>;

    /// Re-derives every fact and pre-aggregate of the org from the raw
    /// records.
    async fn rebuild_analytics(
        &self,
        org: OrgId,
        progress: RebuildProgress,
    ) -> Result<RebuildSummary, StoreError>;
}

/// Lifecycle of a backend.
#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// Finishes queued writes and stops accepting new ones.
    async fn close(&self);
    /// How far behind the write-ahead log each materialiser is; empty for a
    /// backend without one.
    fn materialisers(&self) -> Vec<MaterialiserStatus> {
        Vec::new()
    }
    /// Bytes the write-ahead log holds on disk.
    fn log_bytes(&self) -> u64 {
        0
    }
    /// A failed write or sync that stops writes until the store has
    /// re-established its files ([`fault`]).
    fn fault(&self) -> Option<fault::Fault> {
        None
    }
    /// Storage faults since start.
    fn faults_tripped(&self) -> u64 {
        0
    }
}

/// One materialiser's lag behind the log.
#[derive(Debug, Clone, PartialEq)]
pub struct MaterialiserStatus {
    pub name: &'static str,
    /// Items in durable frames it has not applied.
    pub lag_items: usize,
    /// Age of the oldest of them, in seconds.
    pub lag_seconds: f64,
}

/// The set of stores one server runs on.
#[derive(Clone)]
pub struct Stores {
    pub events: Arc<dyn EventStore>,
    pub meta: Arc<dyn MetaStore>,
    pub audit: Arc<dyn AuditStore>,
    pub portals: Arc<dyn PortalStore>,
    pub channel: Arc<dyn ChannelStore>,
    pub lifecycle: Arc<dyn Lifecycle>,
    pub metrics: StoreMetrics,
}

impl Stores {
    /// One backend that implements every trait.
    pub fn single<S>(store: S, metrics: StoreMetrics) -> Self
    where
        S: EventStore + MetaStore + AuditStore + PortalStore + ChannelStore + Lifecycle + 'static,
    {
        let store = Arc::new(store);
        Self {
            events: store.clone(),
            meta: store.clone(),
            audit: store.clone(),
            portals: store.clone(),
            channel: store.clone(),
            lifecycle: store,
            metrics,
        }
    }
}
