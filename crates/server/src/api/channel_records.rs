//! Channel analytics' server-side records over HTTP: conversations,
//! sessions, participants and KPI events, listed and written.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use tracklog_domain::auth::Right;
use tracklog_domain::channel::payload::{self};
use tracklog_domain::ingest::IngestReport;
use tracklog_store::{ChannelFilter, ChannelList, Cursor, Page};
use utoipa::IntoParams;

use super::extract::ApiQuery;
use super::interactions::{limit_param, time_param};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

use super::channel::{body_items, ingest_events, ingest_init};

/// Filters and paging of the record lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordParams {
    pub conversation_id: Option<String>,
    pub session_id: Option<String>,
    /// Participant id; on sessions, the agent.
    pub participant_id: Option<String>,
    pub provider_id: Option<String>,
    pub channel: Option<String>,
    pub queue: Option<String>,
    /// KPI event name (kpi-events) or participant type (participants).
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Inclusive, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Exclusive, RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// 1 to 1000; 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl RecordParams {
    fn list(self) -> Result<ChannelList, ApiError> {
        Ok(ChannelList {
            filter: ChannelFilter {
                conversation: self.conversation_id,
                session: self.session_id,
                participant: self.participant_id,
                provider: self.provider_id,
                channel: self.channel,
                queue: self.queue,
                name: self.name.or(self.kind),
                from: time_param("from", self.from.as_deref())?,
                to: time_param("to", self.to.as_deref())?,
            },
            limit: limit_param(self.limit, 100, 1000)?,
            cursor: self.cursor.as_deref().map(Cursor::decode).transpose()?,
        })
    }
}

fn page_json<T>(page: Page<T>, item: impl Fn(T) -> Value) -> Json<Value> {
    Json(json!({
        "items": page.items.into_iter().map(item).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor.map(|c| c.encode()),
    }))
}

/// Conversations, oldest first; filters `provider_id`, `channel`, `from`, `to`.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "channel",
    params(RecordParams),
    responses((status = 200, description = "`{\"items\", \"next_cursor\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_conversations(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RecordParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let page = state
        .stores
        .channel
        .conversations(principal.org, params.list()?)
        .await?;
    Ok(page_json(page, |c| json!(c)))
}

/// Creates or updates conversations (the conversation object of §4.2,
/// optionally with its `session`): the same path as `/api/v1/channel/init`.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "channel",
    request_body(content = super::ItemsBody, description = "A conversation, or an array"),
    responses((status = 200, description = "Per-item outcomes", body = IngestReport)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_conversations(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(
        ingest_init(
            &state,
            &principal,
            items,
            |conversation| json!({ "conversation": conversation }),
        )
        .await?,
    ))
}

/// One conversation and its sessions.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "channel",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_conversation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let conversation = state
        .stores
        .channel
        .conversation(principal.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("conversation {id} was not found")))?;
    let sessions = state
        .stores
        .channel
        .sessions(
            principal.org,
            ChannelList {
                filter: ChannelFilter {
                    conversation: Some(id),
                    ..ChannelFilter::default()
                },
                limit: 1000,
                cursor: None,
            },
        )
        .await?;
    let mut value = json!(conversation);
    value["sessions"] = json!(
        sessions
            .items
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>()
    );
    Ok(Json(value))
}

fn session_json(
    (session, facts): (
        payload::Session,
        Option<tracklog_domain::channel::facts::SessionFacts>,
    ),
) -> Value {
    let mut value = json!(session);
    value["facts"] = json!(facts);
    value
}

/// Sessions, oldest first, each with its derived facts; filters
/// `conversation_id`, `queue`, `channel`, `participant_id` (the agent),
/// `provider_id`, `from`, `to`.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "channel",
    params(RecordParams),
    responses((status = 200, description = "`{\"items\", \"next_cursor\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_sessions(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RecordParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let page = state
        .stores
        .channel
        .sessions(principal.org, params.list()?)
        .await?;
    Ok(page_json(page, session_json))
}

/// Creates or updates sessions: `{conversationId, providerSessionId, ...,
/// participants?}`.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "channel",
    request_body(content = super::ItemsBody, description = "A session with its conversationId, or an array"),
    responses((status = 200, description = "Per-item outcomes", body = IngestReport)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_sessions(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(
        ingest_init(&state, &principal, items, |session| {
            let conversation = session
                .get("conversationId")
                .cloned()
                .unwrap_or(Value::Null);
            json!({"conversation": {"conversationId": conversation, "session": session}})
        })
        .await?,
    ))
}

/// One session: its record, conversation, participants, facts and every
/// KPI event in time order — the drill-down's last step.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "channel",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorEnvelope)),
    security(("sas" = []), ("basic" = [])))]
pub async fn get_session(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let detail = state
        .stores
        .channel
        .session(principal.org, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("session {id} was not found")))?;
    let mut value = json!(detail.session);
    value["conversation"] = json!(detail.conversation);
    value["participants"] = json!(detail.participants);
    value["facts"] = json!(detail.facts);
    value["events"] = json!(tracklog_domain::channel::facts::sorted(&detail.events));
    Ok(Json(value))
}

/// Participants; filters `session_id`, `conversation_id`, `participant_id`,
/// `type`.
#[utoipa::path(get, path = "/api/v1/participants", tag = "channel",
    params(RecordParams),
    responses((status = 200, description = "`{\"items\", \"next_cursor\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_participants(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RecordParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let page = state
        .stores
        .channel
        .participants(principal.org, params.list()?)
        .await?;
    Ok(page_json(page, |p| json!(p)))
}

/// Creates or updates participants: `{conversationId, providerSessionId,
/// participantId, type, ...}`.
#[utoipa::path(post, path = "/api/v1/participants", tag = "channel",
    request_body(content = super::ItemsBody, description = "A participant with its session's ids, or an array"),
    responses((status = 200, description = "Per-item outcomes", body = IngestReport)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_participants(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(
        ingest_init(&state, &principal, items, |participant| {
            let conversation = participant
                .get("conversationId")
                .cloned()
                .unwrap_or(Value::Null);
            let session = participant
                .get("providerSessionId")
                .cloned()
                .unwrap_or(Value::Null);
            json!({"conversation": {"conversationId": conversation,
                "session": {"providerSessionId": session, "participants": [participant]}}})
        })
        .await?,
    ))
}

/// KPI events, in time order; filters `session_id`, `conversation_id`,
/// `participant_id`, `name`, `from`, `to`.
#[utoipa::path(get, path = "/api/v1/kpi-events", tag = "channel",
    params(RecordParams),
    responses((status = 200, description = "`{\"items\", \"next_cursor\"}`", body = Object)),
    security(("sas" = []), ("basic" = [])))]
pub async fn list_kpi_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<RecordParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Right::Read)?;
    let page = state
        .stores
        .channel
        .kpi_events(principal.org, params.list()?)
        .await?;
    Ok(page_json(page, |e| json!(e)))
}

/// Creates KPI events: each carries its own `conversationId`,
/// `providerSessionId` and `participantId`, or a logAnalyticsEvent payload.
#[utoipa::path(post, path = "/api/v1/kpi-events", tag = "channel",
    request_body(content = super::ItemsBody, description = "A KPI event, an array, or logAnalyticsEvent payloads"),
    responses((status = 200, description = "Per-event outcomes", body = IngestReport)),
    security(("sas" = []), ("basic" = [])))]
pub async fn create_kpi_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    principal.require(Right::Write)?;
    let items = body_items(&state, &headers, body).await?;
    Ok(Json(ingest_events(&state, &principal, items).await?))
}
