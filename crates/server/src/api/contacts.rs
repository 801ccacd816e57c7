//! Contacts and cases: `/api/v1/contacts`, `/api/v1/cases`, journeys, and
//! the privacy endpoints (export and erasure).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tracklog_domain::auth::Right;
use tracklog_domain::contact::{Case, CaseInput, Contact, RecordError};
use tracklog_domain::ids::{CaseId, ContactId};
use tracklog_domain::time::{UtcMillis, parse_iso8601_duration};
use utoipa::IntoParams;

use super::extract::{ApiJsonItems, ApiQuery, Caller, one_or_many};
use super::interactions::limit_param;
use crate::auth::{Authorized, Principal, need};
use crate::error::ApiError;
use crate::services::portals;
use crate::state::AppState;

/// The most contacts one request may upsert.
pub const MAX_CONTACTS_PER_REQUEST: usize = 1_000;

fn contact_id(text: &str) -> Result<ContactId, ApiError> {
    ContactId::parse(text).map_err(|e| ApiError::bad_field("id", format!("contact id {e}")))
}

fn case_id(text: &str) -> Result<CaseId, ApiError> {
    CaseId::parse(text).map_err(|e| ApiError::bad_field("id", format!("case id {e}")))
}

/// One object or an array of them, at most [`MAX_CONTACTS_PER_REQUEST`];
/// any other JSON is refused whole.
fn bounded_batch(body: Value, what: &str) -> Result<Vec<Value>, ApiError> {
    if !(body.is_object() || body.is_array()) {
        return Err(ApiError::BadRequest {
            code: "invalid_body",
            message: format!("the body must be one of the {what} as a JSON object, or an array"),
            field: None,
        });
    }
    let items = one_or_many(body);
    if items.len() > MAX_CONTACTS_PER_REQUEST {
        return Err(ApiError::PayloadTooLarge {
            limit: "max_batch_items",
            message: format!("at most {MAX_CONTACTS_PER_REQUEST} {what} per request"),
        });
    }
    Ok(items)
}

/// A refused record in a batch's report.
fn rejection(index: usize, id: Option<String>, error: RecordError) -> Value {
    json!({
        "index": index, "id": id, "reason": "invalid_field",
        "field": error.field, "message": error.message,
    })
}

/// Parses contacts item by item: the good ones and a rejection for each bad one.
pub fn parse_contacts(items: Vec<Value>, now: UtcMillis) -> (Vec<Contact>, Vec<Value>) {
    let mut good = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let id = item.get("id").and_then(Value::as_str).map(str::to_owned);
        match Contact::from_json(item, now) {
            Ok(contact) => good.push(contact),
            Err(e) => rejected.push(rejection(index, id, e)),
        }
    }
    (good, rejected)
}

/// Upserts one contact or an array of them. Fields left out keep their
/// stored value; attributes merge key by key.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts",
    request_body(content = super::ItemsBody, description = "A contact `{id, name?, email?, attributes?}` or an array of them"),
    responses((status = 200, description = "`{\"accepted\", \"created\", \"rejected\": [...]}`", body = Object),
        (status = 413, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn upsert_contacts(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Write>,
    ApiJsonItems(body): ApiJsonItems,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Write)?;
    let items = bounded_batch(body, "contacts")?;
    let (good, rejected) = parse_contacts(items, UtcMillis::now());
    let accepted = good.len();
    let created = state
        .stores
        .portals
        .upsert_contacts(principal.org, good)
        .await?;
    Ok(Json(
        json!({"accepted": accepted, "created": created, "rejected": rejected}),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 1000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Contacts, a page at a time.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ListParams),
    responses((status = 200, description = "`{\"items\", \"next_cursor\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_contacts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let limit = limit_param(params.limit, 100, 1000)?;
    let after = params
        .cursor
        .map(|c| {
            ContactId::parse(c)
                .map_err(|_| ApiError::bad_field("cursor", "the cursor is not valid"))
        })
        .transpose()?;
    let items = state
        .stores
        .portals
        .list_contacts(principal.org, after, limit)
        .await?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|c| c.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "items": items.iter().map(Contact::to_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// One contact's profile.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = tracklog_domain::ids::ContactId, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_contact(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let id = contact_id(&id)?;
    let contact = state
        .stores
        .portals
        .contact(principal.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("contact {id} was not found")))?;
    Ok(Json(contact.to_json()))
}

/// Everything held about a contact: profile, cases and interactions. The
/// export is recorded in the activity log.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/export", tag = "privacy", params(("id" = tracklog_domain::ids::ContactId, Path)),
    responses((status = 200, body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn export_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Read)?;
    let id = contact_id(&id)?;
    let export =
        portals::export_contact(&state.stores, caller.principal.org, &caller.actor, &id).await?;
    Ok(Json(export))
}

/// `true`, the only value that erases.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Documents `erase`; the handler refuses anything else.
pub enum ConfirmErase {
    True,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EraseParams {
    /// Must be `true`: erasure cannot be undone.
    #[param(value_type = ConfirmErase)]
    pub erase: Option<bool>,
}

/// Erases a contact: interactions (stitched anonymous ones too), session
/// links, cases and profile. The erasure itself is audited, with counts only.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "privacy",
    params(("id" = tracklog_domain::ids::ContactId, Path), EraseParams),
    responses((status = 200, description = "What was erased", body = Object),
        (status = 400, description = "`erase=true` is missing", body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn erase_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<EraseParams>,
) -> Result<Json<Value>, ApiError> {
    caller.principal.require(Right::Manage)?;
    if params.erase != Some(true) {
        return Err(ApiError::bad_field(
            "erase",
            "deleting a contact erases all its data; confirm with ?erase=true",
        ));
    }
    let id = contact_id(&id)?;
    let erasure =
        portals::erase_contact(&state.stores, caller.principal.org, &caller.actor, &id).await?;
    Ok(Json(json!(erasure)))
}

/// Creates or replaces a case, or an array of them.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases",
    request_body(content = super::ItemsBody, description = "A case `{id, contact_id, title, created_at?, status?}` or an array"),
    responses((status = 200, description = "`{\"accepted\", \"rejected\": [...]}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn upsert_cases(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<need::Write>,
    ApiJsonItems(body): ApiJsonItems,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Write)?;
    let items = bounded_batch(body, "cases")?;
    let now = UtcMillis::now();
    let mut accepted = 0;
    let mut rejected = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let id = item.get("id").and_then(Value::as_str).map(str::to_owned);
        let parsed = serde_json::from_value::<CaseInput>(item)
            .map_err(|e| RecordError::new("case", e.to_string()))
            .and_then(|input| Case::from_input(input, now));
        match parsed {
            Ok(case) => {
                state
                    .stores
                    .portals
                    .upsert_case(principal.org, case)
                    .await?;
                accepted += 1;
            }
            Err(e) => rejected.push(rejection(index, id, e)),
        }
    }
    Ok(Json(json!({"accepted": accepted, "rejected": rejected})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseListParams {
    /// Only this contact's cases.
    #[param(value_type = Option<tracklog_domain::ids::ContactId>)]
    pub contact_id: Option<String>,
    /// 1 to 1000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// The newest cases first.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", params(CaseListParams),
    responses((status = 200, description = "`{\"items\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_cases(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<CaseListParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let limit = limit_param(params.limit, 100, 1000)?;
    let contact = params.contact_id.as_deref().map(contact_id).transpose()?;
    let items = state
        .stores
        .portals
        .list_cases(principal.org, contact, limit)
        .await?;
    Ok(Json(
        json!({"items": items.iter().map(Case::to_json).collect::<Vec<_>>()}),
    ))
}

/// One case.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases", params(("id" = tracklog_domain::ids::CaseId, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_case(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let id = case_id(&id)?;
    let case = state
        .stores
        .portals
        .case(principal.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("case {id} was not found")))?;
    Ok(Json(case.to_json()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JourneyParams {
    /// ISO 8601 duration before the case's creation; `PT72H` by default, at
    /// most 366 days.
    pub window: Option<String>,
    /// Interactions on the page, newest first: 1 to 1000, 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page: older interactions.
    pub cursor: Option<String>,
}

/// The longest journey window accepted.
pub const MAX_WINDOW_MS: i64 = 366 * 86_400_000;

/// Parses the `window` parameter.
pub fn window_param(text: Option<&str>) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(72 * 3_600_000);
    };
    match parse_iso8601_duration(text) {
        Some(ms) if ms > 0 && ms <= MAX_WINDOW_MS => Ok(ms),
        Some(_) => Err(ApiError::bad_field(
            "window",
            "window must be positive and at most 366 days",
        )),
        None => Err(ApiError::bad_field(
            "window",
            "window must be an ISO 8601 duration such as PT72H",
        )),
    }
}

/// Reads a journey page's cursor.
pub fn journey_cursor(text: Option<&str>) -> Result<Option<tracklog_store::Cursor>, ApiError> {
    text.map(|c| {
        tracklog_store::Cursor::decode(c)
            .map_err(|_| ApiError::bad_field("cursor", "the cursor is not valid"))
    })
    .transpose()
}

/// What the contact did on the portal in the window before the case was
/// created: a summary of the whole window (the total, counts by type, each
/// session, the knowledge articles they already viewed and the searches
/// they ran) and the newest interactions, a page at a time. An interaction
/// at the case's creation time or later is not part of it.
#[utoipa::path(get, path = "/api/v1/cases/{id}/journey", tag = "cases",
    params(("id" = tracklog_domain::ids::CaseId, Path), JourneyParams),
    responses((status = 200, description = "The journey (PRODUCT.md §8)", body = Object),
        (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn case_journey(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<JourneyParams>,
) -> Result<Json<tracklog_domain::journey::Journey>, ApiError> {
    principal.require(Right::Read)?;
    let id = case_id(&id)?;
    let window = window_param(params.window.as_deref())?;
    let limit = limit_param(
        params.limit,
        tracklog_domain::journey::PAGE_DEFAULT,
        tracklog_domain::journey::PAGE_MAX,
    )?;
    let cursor = journey_cursor(params.cursor.as_deref())?;
    let (_, journey) =
        portals::journey(&state.stores, principal.org, &id, window, limit, cursor).await?;
    Ok(Json(journey))
}
