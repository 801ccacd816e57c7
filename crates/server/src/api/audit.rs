//! The activity log's API (PRODUCT.md §5): writing records, what is recorded,
//! search, export, reports, and integrity.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracklog_domain::audit::chain::Verification;
use tracklog_domain::audit::format::Format;
use tracklog_domain::audit::reports::{REPORTS, report};
use tracklog_domain::audit::settings::{EntityAuditSettings, OrgAuditSettings};
use tracklog_domain::audit::{Category, Receipt, decode_record};
use tracklog_domain::auth::Right;
use tracklog_domain::ingest::{BodyError, RawItem, Rejection, split_items};
use tracklog_domain::time::UtcMillis;
use tracklog_store::{AuditFilter, AuditHit, Cursor};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiQuery, ClientAddr};
use super::interactions::{limit_param, time_param};
use super::policies::api_actor;
use crate::auth::{Authorized, Principal, need};
use crate::edge;
use crate::error::ApiError;
use crate::metrics::{FormatLabel, KindLabel, ReasonLabel};
use crate::services::audit::{self, AuditIngestReport};
use crate::state::AppState;

const KIND: &str = "audit";

async fn org_name(state: &AppState, principal: &Principal) -> Result<String, ApiError> {
    Ok(state
        .stores
        .meta
        .org_by_id(principal.org)
        .await?
        .map_or_else(|| principal.org.0.to_string(), |o| o.name.to_string()))
}

/// Write activity-log records: one object, an array, or NDJSON, optionally
/// gzip-compressed, with the fields of PRODUCT.md §5.1. `Category` and
/// `Sequence` are assigned here. Every item gets one outcome — accepted,
/// rejected, or excluded by the org's settings; a 2xx means every accepted
/// record is durable. A retry with the same `Id` stores one copy.
#[utoipa::path(post, path = "/api/v1/audit/records", tag = "audit",
    request_body(content = super::ItemsBody, description = "An audit record (PRODUCT.md §5.1), an array of them, or NDJSON",
        content_type = "application/json"),
    responses(
        (status = 200, description = "Per-item outcomes", body = AuditIngestReport),
        (status = 400, description = "The body is not JSON", body = super::ErrorEnvelope),
        (status = 401, description = "No valid credential", body = super::ErrorEnvelope),
        (status = 403, description = "The policy lacks the write right", body = super::ErrorEnvelope),
        (status = 413, description = "Body or batch over its limit", body = super::ErrorEnvelope),
        (status = 503, description = "Overloaded; see Retry-After", body = super::ErrorEnvelope),
    ),
    security(("sas" = []), ("basic" = [])))]
pub async fn post_records(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AuditIngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let metrics = &state.metrics;
    let refuse = |reason: &'static str| {
        metrics
            .refused_requests
            .get_or_create(&ReasonLabel { reason })
            .inc();
    };
    let bytes = edge::read_body(&headers, body, &state.limits)
        .await
        .inspect_err(|e| {
            refuse(if e.status() == 413 {
                "body_too_large"
            } else {
                "invalid_body"
            })
        })?;
    let items = split_items(&bytes, edge::is_ndjson(&headers), &state.limits).map_err(|e| {
        refuse(match e {
            BodyError::TooManyItems { .. } => "too_many_items",
            _ => "invalid_body",
        });
        ApiError::from(e)
    })?;
    let org = org_name(&state, &principal).await?;
    let new_id = || uuid::Uuid::new_v4().to_string();
    let receipt = Receipt {
        org_name: &org,
        received: UtcMillis::now(),
        new_id: &new_id,
    };
    let mut records = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let decoded = match item {
            RawItem::Json(raw) => decode_record(raw.get(), &receipt, state.limits.max_item_bytes)
                .map_err(|r| {
                    let id = serde_json::from_str::<Value>(raw.get())
                        .ok()
                        .and_then(|v| v.get("Id").and_then(Value::as_str).map(str::to_owned));
                    r.at(index, id)
                }),
            RawItem::Unparsable(message) => Err(Rejection::item(
                tracklog_domain::ingest::Reason::InvalidJson,
                message,
            )
            .at(index, None)),
        };
        match decoded {
            Ok(record) => records.push((index, record)),
            Err(rejection) => {
                metrics.reject(KIND, rejection.reason.code(), 1);
                rejected.push(rejection);
            }
        }
    }
    let count = records.len();
    let report = audit::ingest(&state.stores, principal.org, records, rejected)
        .await
        .inspect_err(|e| {
            let reason = match e {
                tracklog_store::StoreError::Overloaded => "overloaded",
                _ => "store_unavailable",
            };
            metrics.reject(KIND, reason, count);
        })?;
    for excluded in &report.excluded_items {
        metrics
            .audit_excluded
            .get_or_create(&ReasonLabel {
                reason: excluded.reason.code(),
            })
            .inc();
    }
    metrics
        .ingested
        .get_or_create(&KindLabel { kind: KIND })
        .inc_by(report.accepted as u64);
    metrics
        .duplicates
        .get_or_create(&KindLabel { kind: KIND })
        .inc_by(report.duplicates as u64);
    Ok(Json(report))
}

/// The most days a retention may be set to (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// The org's audit settings and retention, as `GET/PUT
/// /api/v1/audit/settings` carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSettingsBody {
    /// Master switch: nothing sent by clients is recorded when false.
    pub auditing_enabled: bool,
    /// Records of people signing in and out.
    pub user_access_auditing: bool,
    /// Read and ReadMultiple records, subject also to the entity's settings.
    pub read_auditing: bool,
    /// Messages (operations) never recorded.
    #[schema(value_type = Vec<OperationName>)]
    pub excluded_messages: Vec<String>,
    /// Days the org keeps its records, 1 to 36500; the background purge
    /// removes older ones and the chain still verifies. Until set, the
    /// server's `audit.retention_days` (90 by default). On PUT, leaving it
    /// out keeps the current value.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub retention_days: Option<u32>,
    /// The org's own operations that record a sign-in or sign-out, beside
    /// the built-in names (`SignIn`, `UserLoggedIn`, `UserLoginFailed`...):
    /// governed by `user_access_auditing` and counted by the "Signed in or
    /// out" report. On PUT, leaving it out keeps the current list.
    #[serde(default)]
    #[schema(value_type = Option<Vec<OperationName>>)]
    pub sign_in_operations: Option<Vec<String>>,
}

/// An operation's name: 1 to 256 characters, no control characters.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^[^\x00-\x1F\x7F-\x9F]{1,256}$")]
#[allow(dead_code)] // Documents `sign_in_operations`, which are read as text.
pub struct OperationName(String);

impl AuditSettingsBody {
    fn new(settings: OrgAuditSettings, retention_days: u32) -> Self {
        Self {
            auditing_enabled: settings.auditing_enabled,
            user_access_auditing: settings.user_access_auditing,
            read_auditing: settings.read_auditing,
            excluded_messages: settings.excluded_messages,
            retention_days: Some(retention_days),
            sign_in_operations: Some(settings.sign_in_operations),
        }
    }

    /// The settings to store, keeping `current`'s sign-in operations when
    /// the body leaves them out, and the retention asked for.
    fn split(self, current: &OrgAuditSettings) -> (OrgAuditSettings, Option<u32>) {
        (
            OrgAuditSettings {
                auditing_enabled: self.auditing_enabled,
                user_access_auditing: self.user_access_auditing,
                read_auditing: self.read_auditing,
                excluded_messages: self.excluded_messages,
                sign_in_operations: self
                    .sign_in_operations
                    .unwrap_or_else(|| current.sign_in_operations.clone()),
            },
            self.retention_days,
        )
    }
}

/// The org's audit settings, with the days it keeps records.
#[utoipa::path(get, path = "/api/v1/audit/settings", tag = "audit",
    responses((status = 200, body = AuditSettingsBody), (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_settings(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<AuditSettingsBody>, ApiError> {
    principal.require(Right::Manage)?;
    let (settings, days) = audit::settings_with_retention(
        &state.stores,
        principal.org,
        state.config.audit.retention_days,
    )
    .await?;
    Ok(Json(AuditSettingsBody::new(settings, days)))
}

fn check_retention(days: Option<u32>) -> Result<(), ApiError> {
    match days {
        Some(days) if !(1..=MAX_RETENTION_DAYS).contains(&days) => Err(ApiError::bad_field(
            "retention_days",
            format!("retention_days must be 1 to {MAX_RETENTION_DAYS}"),
        )),
        _ => Ok(()),
    }
}

fn check_messages(settings: &OrgAuditSettings) -> Result<(), ApiError> {
    if settings.excluded_messages.len() > 10_000 {
        return Err(ApiError::bad_field(
            "excluded_messages",
            "at most 10000 excluded messages",
        ));
    }
    let bad = |m: &String| m.trim().is_empty() || m.len() > 256 || m.chars().any(char::is_control);
    if settings.excluded_messages.iter().any(bad) {
        return Err(ApiError::bad_field(
            "excluded_messages",
            "each excluded message must be 1 to 256 characters without control characters",
        ));
    }
    if settings.sign_in_operations.len() > 1_000 {
        return Err(ApiError::bad_field(
            "sign_in_operations",
            "at most 1000 sign-in operations",
        ));
    }
    if settings.sign_in_operations.iter().any(bad) {
        return Err(ApiError::bad_field(
            "sign_in_operations",
            "each sign-in operation must be 1 to 256 characters without control characters",
        ));
    }
    Ok(())
}

/// Replaces the org's audit settings, and its retention when
/// `retention_days` is given; the change is itself audited.
#[utoipa::path(put, path = "/api/v1/audit/settings", tag = "audit",
    request_body = AuditSettingsBody,
    responses((status = 200, body = AuditSettingsBody), (status = 400, body = super::ErrorEnvelope),
        (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn put_settings(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Manage>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AuditSettingsBody>,
) -> Result<Json<AuditSettingsBody>, ApiError> {
    principal.require(Right::Manage)?;
    let current = state.stores.audit.audit_settings(principal.org).await?;
    let (settings, retention_days) = body.split(&current);
    check_messages(&settings)?;
    check_retention(retention_days)?;
    let actor = api_actor(&principal, &headers, peer);
    let (saved, days) = audit::put_settings(
        &state.stores,
        principal.org,
        &actor,
        settings,
        retention_days,
        state.config.audit.retention_days,
    )
    .await?;
    Ok(Json(AuditSettingsBody::new(saved, days)))
}

fn entity_name(entity: &str) -> Result<String, ApiError> {
    if entity.is_empty() || entity.len() > 256 || entity.chars().any(char::is_control) {
        return Err(ApiError::bad_field(
            "entity",
            "the entity name must be 1 to 256 characters without control characters",
        ));
    }
    Ok(entity.to_lowercase())
}

/// One entity's audit settings (every switch on when never set).
#[utoipa::path(get, path = "/api/v1/audit/settings/entities/{entity}", tag = "audit",
    params(("entity" = String, Path, description = "The entity's logical name, such as account")),
    responses((status = 200, body = EntityAuditSettings), (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_entity_settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(entity): Path<String>,
) -> Result<Json<EntityAuditSettings>, ApiError> {
    principal.require(Right::Manage)?;
    let entity = entity_name(&entity)?;
    let found = state
        .stores
        .audit
        .entity_audit_settings(principal.org, vec![entity.clone()])
        .await?;
    Ok(Json(found.get(&entity).copied().unwrap_or_default()))
}

/// Replaces one entity's audit settings; the change is itself audited.
#[utoipa::path(put, path = "/api/v1/audit/settings/entities/{entity}", tag = "audit",
    params(("entity" = String, Path)),
    request_body = EntityAuditSettings,
    responses((status = 200, body = EntityAuditSettings), (status = 400, body = super::ErrorEnvelope),
        (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn put_entity_settings(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Manage>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Path(entity): Path<String>,
    ApiJson(settings): ApiJson<EntityAuditSettings>,
) -> Result<Json<EntityAuditSettings>, ApiError> {
    principal.require(Right::Manage)?;
    let entity = entity_name(&entity)?;
    let actor = api_actor(&principal, &headers, peer);
    let saved =
        audit::put_entity_settings(&state.stores, principal.org, &actor, &entity, settings).await?;
    Ok(Json(saved))
}

/// Filters shared by search, export and reports.
#[derive(Debug, Default, Clone, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Inclusive lower bound on `CreationTime`, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Exclusive upper bound on `CreationTime`, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// `User`, exactly.
    pub user: Option<String>,
    pub operation: Option<String>,
    /// ReadMultiple, Read, Create, Update, Delete or Other.
    #[param(value_type = Option<tracklog_domain::audit::Category>)]
    pub category: Option<String>,
    pub entity_name: Option<String>,
    pub entity_id: Option<String>,
    pub result_status: Option<String>,
    pub client_ip: Option<String>,
    /// Free text over `Fields` and `Query`: every word must appear.
    pub q: Option<String>,
}

impl FilterParams {
    /// Parses the filter, naming the parameter at fault.
    pub fn parse(&self) -> Result<AuditFilter, ApiError> {
        let text = |name: &str, value: &Option<String>| -> Result<Option<String>, ApiError> {
            match value.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) if v.len() > 1024 => Err(ApiError::bad_field(
                    name,
                    format!("{name} is longer than 1024 bytes"),
                )),
                Some(v) => Ok(Some(v.to_owned())),
            }
        };
        Ok(AuditFilter {
            from: time_param("from", self.from.as_deref().filter(|s| !s.is_empty()))?,
            to: time_param("to", self.to.as_deref().filter(|s| !s.is_empty()))?,
            user: text("user", &self.user)?,
            operation: text("operation", &self.operation)?,
            category: text("category", &self.category)?
                .map(|c| c.parse::<Category>())
                .transpose()
                .map_err(|e| ApiError::bad_field("category", e))?,
            entity_name: text("entity_name", &self.entity_name)?,
            entity_id: text("entity_id", &self.entity_id)?,
            result_status: text("result_status", &self.result_status)?,
            client_ip: text("client_ip", &self.client_ip)?,
            q: text("q", &self.q)?,
            report: None,
            sign_in_operations: Vec::new(),
            until_sequence: None,
        })
    }
}

/// Paging of a search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 1000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of search results.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPage {
    /// Records (§5.1 names), newest first. A split record that cannot be
    /// reassembled carries what is known and an `integrity` object naming
    /// its missing parts.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    /// Every record matching the filter; equals what export returns.
    pub count: u64,
    pub next_cursor: Option<String>,
}

/// A record as answered: its §5.1 fields, and `integrity` when damaged.
pub fn hit_json(hit: &AuditHit) -> Value {
    let mut value = serde_json::to_value(&hit.record).unwrap_or(Value::Null);
    if let (Some(integrity), Value::Object(map)) = (&hit.integrity, &mut value) {
        map.insert(
            "integrity".into(),
            serde_json::to_value(integrity).unwrap_or(Value::Null),
        );
    }
    value
}

/// Searches the org's activity log, newest first.
#[utoipa::path(get, path = "/api/v1/audit/search", tag = "audit",
    params(FilterParams, PageParams),
    responses((status = 200, body = SearchPage), (status = 400, body = super::ErrorEnvelope),
        (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(filter): ApiQuery<FilterParams>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<SearchPage>, ApiError> {
    principal.require(Right::Read)?;
    let filter = filter.parse()?;
    let limit = limit_param(params.limit, 100, 1000)?;
    let cursor = params.cursor.as_deref().map(Cursor::decode).transpose()?;
    let page = state
        .stores
        .audit
        .search_audit(principal.org, filter, limit, cursor, true)
        .await?;
    Ok(Json(SearchPage {
        items: page.items.iter().map(hit_json).collect(),
        count: page.count.unwrap_or_default(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// One record by its `Id`, reassembled when it was split.
#[utoipa::path(get, path = "/api/v1/audit/records/{id}", tag = "audit",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_record(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let hit = state
        .stores
        .audit
        .audit_record(principal.org, id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("audit record {id} was not found")))?;
    Ok(Json(hit_json(&hit)))
}

/// The export's format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParam {
    /// csv, jsonl, cef, syslog or ocsf.
    #[param(value_type = Format)]
    pub format: String,
}

/// Rows read per page while exporting; memory stays flat however long the export.
const EXPORT_PAGE: usize = 1000;

/// Streams every record matching the filter, newest first, in one format.
/// As many records as search counts for the same filter; no cap. The
/// export itself is audited.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    params(FormatParam, FilterParams),
    responses((status = 200, description = "The records, one per line: CSV (`text/csv`), JSONL and OCSF (`application/x-ndjson`), CEF and syslog (`text/plain`)",
            content((String = "text/csv"), (String = "application/x-ndjson"), (String = "text/plain"))),
        (status = 400, body = super::ErrorEnvelope), (status = 403, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<FormatParam>,
    ApiQuery(filter_params): ApiQuery<FilterParams>,
) -> Result<Response, ApiError> {
    principal.require(Right::Read)?;
    let format: Format = params
        .format
        .parse()
        .map_err(|e: String| ApiError::bad_field("format", e))?;
    let mut filter = filter_params.parse()?;
    // Fix the end before the export's own record is written.
    filter.until_sequence = Some(
        state
            .stores
            .audit
            .chain_head(principal.org)
            .await?
            .map_or(0, |h| h.0),
    );
    let actor = api_actor(&principal, &headers, peer);
    audit::record_export(
        &state.stores,
        principal.org,
        &actor,
        &params.format,
        serde_json::to_value(&filter_params).unwrap_or(Value::Null),
    )
    .await;
    let stream = export_stream(state, principal.org, filter, format);
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"audit.{}\"",
        format.extension()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Pages of the export as chunks of bytes. A task reads the pages ahead
/// into a bounded channel (two pages of [`EXPORT_PAGE`]) while the stream
/// formats and sends the one before, so reading and writing overlap and
/// memory stays flat. The task stops when the client goes away.
pub fn export_stream(
    state: AppState,
    org: tracklog_domain::ids::OrgId,
    filter: AuditFilter,
    format: Format,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let hostname = state.config.listen.ip().to_string();
    let (pages, received) = tokio::sync::mpsc::channel::<Result<Vec<AuditHit>, String>>(2);
    let reader_state = state.clone();
    tokio::spawn(async move {
        let mut cursor = None;
        loop {
            let page = reader_state
                .stores
                .audit
                .search_audit(org, filter.clone(), EXPORT_PAGE, cursor, false)
                .await;
            let (items, next) = match page {
                Ok(page) => (Ok(page.items), page.next_cursor),
                Err(error) => (Err(error.to_string()), None),
            };
            if pages.send(items).await.is_err() {
                return;
            }
            cursor = next;
            if cursor.is_none() {
                return;
            }
        }
    });
    let header = Some(format.header()).filter(|h| !h.is_empty());
    let header = futures::stream::iter(header.map(|h| Ok(Bytes::from(h))));
    let body = futures::stream::unfold(received, move |mut received| {
        let state = state.clone();
        let hostname = hostname.clone();
        async move {
            let items = match received.recv().await? {
                Ok(items) => items,
                Err(error) => {
                    tracing::error!(%error, "export failed mid-stream");
                    received.close();
                    return Some((Err(std::io::Error::other(error)), received));
                }
            };
            let mut chunk = String::new();
            for hit in &items {
                chunk.push_str(&format.line_at(
                    &hit.record,
                    &hostname,
                    hit.integrity.as_ref(),
                    hit.stored_at,
                ));
            }
            state
                .metrics
                .audit_exported
                .get_or_create(&FormatLabel {
                    format: format.extension(),
                })
                .inc_by(items.len() as u64);
            Some((Ok(Bytes::from(chunk)), received))
        }
    });
    futures::StreamExt::chain(header, body)
}

/// A report's time parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// Inclusive lower bound, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Exclusive upper bound, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// hour, day (default) or week.
    #[param(inline, value_type = Option<ReportBucket>)]
    pub bucket: Option<String>,
}

/// The buckets a report counts in.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Documents `bucket`; `reports::Bucket::parse` reads it.
pub enum ReportBucket {
    Hour,
    Day,
    Week,
}

/// One report in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportSummary {
    pub name: &'static str,
    pub title: &'static str,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportList {
    pub items: Vec<ReportSummary>,
}

/// One bucket of a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportPoint {
    pub start: String,
    pub count: u64,
}

/// A report's counts over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportSeries {
    pub name: &'static str,
    pub title: &'static str,
    pub bucket: String,
    pub count: u64,
    pub points: Vec<ReportPoint>,
}

fn window(params: &ReportParams) -> Result<AuditFilter, ApiError> {
    Ok(AuditFilter {
        from: time_param("from", params.from.as_deref())?,
        to: time_param("to", params.to.as_deref())?,
        ..AuditFilter::default()
    })
}

/// The nine preconfigured reports, each with its count in the window.
#[utoipa::path(get, path = "/api/v1/audit/reports", tag = "audit",
    params(ReportParams),
    responses((status = 200, body = ReportList), (status = 400, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_reports(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<ReportList>, ApiError> {
    principal.require(Right::Read)?;
    let base = window(&params)?;
    // Each summary counts the whole window, but a bad bucket is refused
    // here as on each report's page.
    bucket_millis(params.bucket.as_deref())?;
    let mut items = Vec::with_capacity(REPORTS.len());
    for report in REPORTS {
        let filter =
            audit::report_filter(&state.stores, principal.org, report.predicate, base.clone())
                .await?;
        let page = state
            .stores
            .audit
            .search_audit(principal.org, filter, 1, None, true)
            .await?;
        items.push(ReportSummary {
            name: report.name,
            title: report.title,
            count: page.count.unwrap_or_default(),
        });
    }
    Ok(Json(ReportList { items }))
}

/// The length of a bucket by name.
pub fn bucket_millis(bucket: Option<&str>) -> Result<(String, i64), ApiError> {
    match bucket.unwrap_or("day") {
        "hour" => Ok(("hour".into(), 3_600_000)),
        "day" => Ok(("day".into(), 86_400_000)),
        "week" => Ok(("week".into(), 7 * 86_400_000)),
        other => Err(ApiError::bad_field(
            "bucket",
            format!("{other:?} is not a bucket: hour, day or week"),
        )),
    }
}

/// One report's counts over time.
#[utoipa::path(get, path = "/api/v1/audit/reports/{name}", tag = "audit",
    params(("name" = String, Path, description = "Such as signed-in-or-out"), ReportParams),
    responses((status = 200, body = ReportSeries), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_report(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Json<ReportSeries>, ApiError> {
    principal.require(Right::Read)?;
    let report =
        report(&name).ok_or_else(|| ApiError::NotFound(format!("report {name} was not found")))?;
    let (bucket, millis) = bucket_millis(params.bucket.as_deref())?;
    let filter = audit::report_filter(
        &state.stores,
        principal.org,
        report.predicate,
        window(&params)?,
    )
    .await?;
    let counts = state
        .stores
        .audit
        .audit_histogram(principal.org, filter, millis)
        .await?;
    Ok(Json(ReportSeries {
        name: report.name,
        title: report.title,
        bucket,
        count: counts.iter().map(|(_, n)| n).sum(),
        points: counts
            .into_iter()
            .map(|(start, count)| ReportPoint {
                start: UtcMillis::from_millis(start).to_rfc3339(),
                count,
            })
            .collect(),
    }))
}

/// A verification's range, in sequence numbers.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyParams {
    /// First sequence to check, from 1; its link to the one before is taken
    /// on trust.
    #[param(minimum = 1)]
    pub from: Option<i64>,
    /// Last sequence to check, from 1.
    #[param(minimum = 1)]
    pub to: Option<i64>,
}

/// Verifies the org's hash chain and signed checkpoints and reports the
/// first break.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    params(VerifyParams),
    responses((status = 200, body = Verification)),
    security(("sas" = []), ("basic" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<VerifyParams>,
) -> Result<Json<Verification>, ApiError> {
    principal.require(Right::Read)?;
    for (field, value) in [("from", params.from), ("to", params.to)] {
        if value.is_some_and(|v| v < 1) {
            return Err(ApiError::bad_field(
                field,
                format!("{field} must be at least 1"),
            ));
        }
    }
    let org = org_name(&state, &principal).await?;
    let public = state.audit_key.verifying_key();
    let result = audit::verify(
        &state.stores,
        &public,
        principal.org,
        &org,
        params.from,
        params.to,
    )
    .await?;
    Ok(Json(result))
}

/// The public half of the key that signs checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicKey {
    /// Always `Ed25519`.
    pub algorithm: &'static str,
    /// The 32-byte public key, base64.
    pub public_key: String,
}

/// The public key that verifies checkpoint signatures.
#[utoipa::path(get, path = "/api/v1/audit/public-key", tag = "audit",
    responses((status = 200, body = PublicKey)))]
pub async fn public_key(State(state): State<AppState>) -> Json<PublicKey> {
    Json(PublicKey {
        algorithm: "Ed25519",
        public_key: STANDARD.encode(state.audit_key.verifying_key().to_bytes()),
    })
}
