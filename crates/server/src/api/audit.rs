//! The activity log's API (PRODUCT.md §5): writing records, search, export
//! and integrity. What is recorded is in [`super::audit_settings`], the
//! reports in [`super::audit_reports`].

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
use tracklog_domain::audit::{Category, Receipt, decode_record};
use tracklog_domain::auth::Right;
use tracklog_domain::ingest::{BodyError, RawItem, Rejection, split_items};
use tracklog_domain::time::UtcMillis;
use tracklog_store::{AuditFilter, AuditHit, Cursor};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiQuery, ClientAddr};
use super::interactions::{limit_param, time_param};
use super::policies::api_actor;
use crate::auth::Principal;
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
