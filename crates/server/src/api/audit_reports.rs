//! The activity log's preconfigured reports (PRODUCT.md §5): each report's
//! count in a window, and one report's counts over time in buckets.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use tracklog_domain::audit::reports::{REPORTS, report};
use tracklog_domain::auth::Right;
use tracklog_domain::time::UtcMillis;
use tracklog_store::AuditFilter;
use utoipa::{IntoParams, ToSchema};

use super::extract::ApiQuery;
use super::interactions::time_param;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::services::audit;
use crate::state::AppState;

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
