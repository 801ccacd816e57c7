//! The activity log's pages (`/ui/audit`), for auditors and admins: filters,
//! results, one record with its changed fields, report tiles with small
//! server-drawn charts, the export links and the verification status.

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracklog_domain::audit::AuditRecord;
use tracklog_domain::audit::format::Format;
use tracklog_domain::audit::reports::REPORTS;
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;
use tracklog_store::{AuditFilter, Cursor};

use super::pages::render;
use super::session::WebUser;
use super::{NavSection, navigation};
use crate::api::audit::{FilterParams, export_stream};
use crate::api::extract::ApiQuery;
use crate::services::audit as audit_service;
use crate::services::selfaudit::Actor;
use crate::state::AppState;

/// How many of the newest records the page verifies on each view.
const UI_VERIFY_RECORDS: i64 = 10_000;

pub(crate) fn allowed(user: &WebUser) -> bool {
    matches!(user.role, Role::Admin | Role::Auditor)
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "the activity log is for auditors and admins",
    )
        .into_response()
}

/// One row of the results table.
pub struct Row {
    pub id: String,
    pub time: String,
    pub user: String,
    pub operation: String,
    pub category: String,
    pub entity: String,
    pub status: String,
    pub damaged: bool,
}

/// A report tile.
pub struct Tile {
    pub name: &'static str,
    pub title: &'static str,
    pub count: u64,
    /// A small bar chart, drawn here from numbers only.
    pub chart: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    filter: FilterParams,
    query: String,
    error: Option<String>,
    count: u64,
    rows: Vec<Row>,
    next: Option<String>,
    tiles: Vec<Tile>,
    verified: Option<bool>,
    verification: String,
}

/// Query parameters of the page: the filter and a cursor.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
}

/// Draws counts as bars in a `width` x `height` SVG. Only numbers reach the
/// markup, so it needs no escaping.
pub fn bar_chart(counts: &[u64], width: u32, height: u32) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = counts.len().max(1) as f64;
    let slot = f64::from(width) / n;
    let bar = (slot * 0.8).max(1.0);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"counts over time\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, count) in counts.iter().enumerate() {
        let h = (*count as f64 / max * f64::from(height)).round();
        let x = i as f64 * slot;
        let y = f64::from(height) - h;
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\"><title>{count}</title></rect>"
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The last 30 days, one bar a day.
async fn tiles(state: &AppState, user: &WebUser) -> Vec<Tile> {
    const DAY: i64 = 86_400_000;
    let now = UtcMillis::now().as_millis();
    let start = (now - 29 * DAY).div_euclid(DAY) * DAY;
    let mut out = Vec::with_capacity(REPORTS.len());
    for report in REPORTS {
        let window = AuditFilter {
            from: Some(UtcMillis::from_millis(start)),
            ..AuditFilter::default()
        };
        let buckets =
            match audit_service::report_filter(&state.stores, user.org, report.predicate, window)
                .await
            {
                Ok(filter) => state
                    .stores
                    .audit
                    .audit_histogram(user.org, filter, DAY)
                    .await
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
        let mut counts = vec![0u64; 30];
        for (bucket, count) in &buckets {
            let index = ((bucket - start) / DAY) as usize;
            if let Some(slot) = counts.get_mut(index) {
                *slot += count;
            }
        }
        out.push(Tile {
            name: report.name,
            title: report.title,
            count: counts.iter().sum(),
            chart: bar_chart(&counts, 150, 36),
        });
    }
    out
}

fn row(record: &AuditRecord, damaged: bool) -> Row {
    Row {
        id: record.id.clone(),
        time: record.creation_time.clone(),
        user: record.user.clone().unwrap_or_default(),
        operation: record.operation.clone(),
        category: record.category.map(|c| c.as_str()).unwrap_or("").to_owned(),
        entity: match (&record.entity_name, &record.entity_id) {
            (Some(name), Some(id)) => format!("{name} {id}"),
            (Some(name), None) => name.clone(),
            _ => String::new(),
        },
        status: record.result_status.clone().unwrap_or_default(),
        damaged,
    }
}

async fn org_name(state: &AppState, user: &WebUser) -> String {
    state
        .stores
        .meta
        .org_by_id(user.org)
        .await
        .ok()
        .flatten()
        .map_or_else(String::new, |o| o.name.to_string())
}

/// The query string of a filter, for links that keep it.
fn query_string(filter: &FilterParams) -> String {
    serde_urlencoded::to_string(filter).unwrap_or_default()
}

/// The activity log: filters, results, report tiles, export, verification.
#[utoipa::path(get, path = "/ui/audit", tag = "ui",
    responses((status = 200, description = "The activity log page", content_type = "text/html"),
        (status = 303, description = "Not signed in"), (status = 403, description = "Not an auditor or admin")))]
pub async fn audit_page(
    State(state): State<AppState>,
    user: WebUser,
    ApiQuery(filter): ApiQuery<FilterParams>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Response {
    if !allowed(&user) {
        return forbidden();
    }
    let org = org_name(&state, &user).await;
    let mut error = None;
    let mut rows = Vec::new();
    let mut count = 0;
    let mut next = None;
    let cursor = page.cursor.as_deref().and_then(|c| Cursor::decode(c).ok());
    match filter.parse() {
        Err(problem) => error = Some(problem.to_string()),
        Ok(parsed) => match state
            .stores
            .audit
            .search_audit(user.org, parsed, 50, cursor, true)
            .await
        {
            Ok(found) => {
                count = found.count.unwrap_or(0);
                rows = found
                    .items
                    .iter()
                    .map(|hit| row(&hit.record, hit.integrity.is_some()))
                    .collect();
                next = found.next_cursor.map(|c| c.encode());
            }
            Err(problem) => error = Some(problem.to_string()),
        },
    }
    // The page checks the newest records (with their columns) and every
    // checkpoint; the whole chain and what lies beside it (indexes, the
    // free-text index, the schema) are for `GET /api/v1/audit/verify` and
    // `tracklog audit verify`.
    let head = state
        .stores
        .audit
        .chain_head(user.org)
        .await
        .ok()
        .flatten()
        .map_or(0, |h| h.0);
    let from = (head > UI_VERIFY_RECORDS).then(|| head - UI_VERIFY_RECORDS + 1);
    let verification = audit_service::verify_with(
        &state.stores,
        &state.audit_key.verifying_key(),
        user.org,
        &org,
        from,
        None,
        false,
    )
    .await;
    let (verified, verification) = match verification {
        Ok(result) if result.ok => (
            Some(true),
            format!(
                "Chain intact: {} records and {} signed checkpoints verified.",
                result.records_checked, result.checkpoints_checked
            ),
        ),
        Ok(result) => (
            Some(false),
            result
                .first_break
                .map(|b| format!("Broken at sequence {}: {}", b.sequence, b.message))
                .unwrap_or_default(),
        ),
        Err(problem) => (None, format!("Could not verify: {problem}")),
    };
    let page = AuditPage {
        user: user.name.to_string(),
        role: user.role.as_str(),
        org,
        csrf: user.csrf_token.clone(),
        nav: navigation(user.role, "/ui/audit"),
        query: query_string(&filter),
        filter,
        error,
        count,
        rows,
        next,
        tiles: tiles(&state, &user).await,
        verified,
        verification,
    };
    render(&page)
}

/// One changed field of a record.
pub struct FieldChange {
    pub name: String,
    pub old: String,
    pub new: String,
}

#[derive(Template)]
#[template(path = "audit_record.html")]
struct RecordPage {
    user: String,
    role: &'static str,
    org: String,
    csrf: String,
    nav: Vec<NavSection>,
    id: String,
    properties: Vec<(String, String)>,
    changes: Vec<FieldChange>,
    missing_parts: Option<String>,
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `Fields` as a list of changes: `{"name": {"old": .., "new": ..}}` pairs
/// show both sides; any other value shows as the new side.
pub fn changes(fields: Option<&Value>) -> Vec<FieldChange> {
    let Some(Value::Object(map)) = fields else {
        return match fields {
            Some(other) if !other.is_null() => vec![FieldChange {
                name: "Fields".into(),
                old: String::new(),
                new: text(other),
            }],
            _ => Vec::new(),
        };
    };
    map.iter()
        .map(|(name, value)| match value {
            Value::Object(pair) if pair.contains_key("old") || pair.contains_key("new") => {
                FieldChange {
                    name: name.clone(),
                    old: pair.get("old").map(text).unwrap_or_default(),
                    new: pair.get("new").map(text).unwrap_or_default(),
                }
            }
            other => FieldChange {
                name: name.clone(),
                old: String::new(),
                new: text(other),
            },
        })
        .collect()
}

/// One record: its fields, and `Fields` as a diff.
#[utoipa::path(get, path = "/ui/audit/records/{id}", tag = "ui",
    params(("id" = String, Path)),
    responses((status = 200, description = "One record", content_type = "text/html"),
        (status = 404, description = "No such record")))]
pub async fn record_page(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<String>,
) -> Response {
    if !allowed(&user) {
        return forbidden();
    }
    let hit = match state.stores.audit.audit_record(user.org, id.clone()).await {
        Ok(Some(hit)) => hit,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such record").into_response(),
        Err(_) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable").into_response();
        }
    };
    let properties = match serde_json::to_value(&hit.record) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter(|(k, v)| k != "Fields" && !v.is_null())
            .map(|(k, v)| (k, text(&v)))
            .collect(),
        _ => Vec::new(),
    };
    let page = RecordPage {
        user: user.name.to_string(),
        role: user.role.as_str(),
        org: org_name(&state, &user).await,
        csrf: user.csrf_token.clone(),
        nav: navigation(user.role, "/ui/audit"),
        id,
        properties,
        changes: changes(hit.record.fields.as_ref()),
        missing_parts: hit.integrity.map(|i| {
            i.missing_parts
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }),
    };
    render(&page)
}

/// The export's format for the page's download links.
#[derive(Debug, serde::Deserialize)]
pub struct ExportQuery {
    format: String,
}

/// Downloads the filtered records; audited like the API's export.
#[utoipa::path(get, path = "/ui/audit/export", tag = "ui",
    responses((status = 200, description = "The records as a download")))]
pub async fn export_download(
    State(state): State<AppState>,
    user: WebUser,
    ApiQuery(filter_params): ApiQuery<FilterParams>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Response {
    if !allowed(&user) {
        return forbidden();
    }
    let Ok(format) = query.format.parse::<Format>() else {
        return (StatusCode::BAD_REQUEST, "unknown export format").into_response();
    };
    let Ok(mut filter) = filter_params.parse() else {
        return (StatusCode::BAD_REQUEST, "the filter is not valid").into_response();
    };
    filter.until_sequence = Some(
        state
            .stores
            .audit
            .chain_head(user.org)
            .await
            .ok()
            .flatten()
            .map_or(0, |h| h.0),
    );
    let actor = Actor {
        name: user.name.to_string(),
        user_type: if user.role == Role::Admin {
            tracklog_domain::audit::UserType::Admin
        } else {
            tracklog_domain::audit::UserType::Regular
        },
        client_ip: None,
        user_agent: None,
    };
    audit_service::record_export(
        &state.stores,
        user.org,
        &actor,
        &query.format,
        serde_json::to_value(&filter_params).unwrap_or(Value::Null),
    )
    .await;
    let mut response =
        Body::from_stream(export_stream(state, user.org, filter, format)).into_response();
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
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn charts_scale_to_the_largest_count() {
        let svg = bar_chart(&[0, 5, 10], 30, 10);
        assert!(svg.contains("height=\"10.0\"><title>10</title>"), "{svg}");
        assert!(svg.contains("height=\"5.0\"><title>5</title>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(bar_chart(&[], 10, 10).ends_with("</svg>"));
    }

    #[test]
    fn fields_become_a_diff() {
        let found = changes(Some(
            &json!({"name": {"old": "Ana", "new": "Bea"}, "score": 3}),
        ));
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].old.as_str(), found[0].new.as_str()),
            ("Ana", "Bea")
        );
        assert_eq!((found[1].old.as_str(), found[1].new.as_str()), ("", "3"));
        assert!(changes(None).is_empty());
    }
}
