//! Reports a supervisor prepares from channel analytics: the dissatisfied
//! conversations of a period, for a queue or an agent. A session is in it
//! when it closed in the period with a CSAT of 2 or less, or with a closing
//! sentiment below the neutral band. Opening the report reads conversation
//! data, so it is an activity-log record.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tracklog_domain::channel::facts::SessionFacts;
use tracklog_domain::channel::metrics::Dimension;
use tracklog_domain::contact::RecordError;
use tracklog_domain::escape::csv_cell;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;
use tracklog_store::{Cursor, DissatisfiedQuery, Stores};
use utoipa::{IntoParams, ToSchema};

use super::ServiceError;
use super::selfaudit::{self, Action, Actor};

/// The default period: the week before `to`.
const DEFAULT_DAYS: i64 = 7;
/// The most sessions one CSV export holds.
pub const CSV_MAX_SESSIONS: usize = 1_000_000;

/// `GET /api/v1/reports/dissatisfied` as asked.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DissatisfiedParams {
    /// RFC 3339, inclusive; a week before `to` when absent.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339, exclusive; now when absent.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Only this queue's sessions.
    pub queue: Option<String>,
    /// Only this agent's sessions.
    pub agent: Option<String>,
    /// 1 to 1000; 100 by default. CSV ignores it and holds every session.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

/// The report's period and filters, parsed.
#[derive(Debug, Clone)]
pub struct DissatisfiedRequest {
    pub from: UtcMillis,
    pub to: UtcMillis,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl DissatisfiedRequest {
    /// Reads the parameters, naming the one at fault.
    pub fn parse(params: &DissatisfiedParams, now: UtcMillis) -> Result<Self, RecordError> {
        let time = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| {
                    UtcMillis::parse_rfc3339(text)
                        .map_err(|_| RecordError::new(name, "must be an RFC 3339 time"))
                })
                .transpose()
        };
        let to = time("to", &params.to)?.unwrap_or(now);
        let from = time("from", &params.from)?
            .unwrap_or(to.saturating_add_millis(-DEFAULT_DAYS * 86_400_000));
        if from >= to {
            return Err(RecordError::new("from", "must be before to"));
        }
        let limit = params.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(RecordError::new("limit", "must be from 1 to 1000"));
        }
        let cursor = params
            .cursor
            .as_deref()
            .map(|c| Cursor::decode(c).map_err(|_| RecordError::new("cursor", "is not valid")))
            .transpose()?;
        let text = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        Ok(Self {
            from,
            to,
            queue: text(&params.queue),
            agent: text(&params.agent),
            limit,
            cursor,
        })
    }

    fn query(&self, limit: usize, cursor: Option<Cursor>) -> DissatisfiedQuery {
        let mut filters = Vec::new();
        if let Some(queue) = &self.queue {
            filters.push((Dimension::Queue, queue.clone()));
        }
        if let Some(agent) = &self.agent {
            filters.push((Dimension::Agent, agent.clone()));
        }
        DissatisfiedQuery {
            from: self.from,
            to: self.to,
            filters,
            limit,
            cursor,
        }
    }
}

/// One dissatisfied session, with its facts and why it is in the report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DissatisfiedSession {
    pub session_id: String,
    pub conversation_id: String,
    pub queue: Option<String>,
    pub channel: Option<String>,
    pub provider: Option<String>,
    pub agent: Option<String>,
    pub queued_at: Option<String>,
    pub answered_at: Option<String>,
    pub closed_at: Option<String>,
    pub handle_seconds: Option<f64>,
    pub hold_seconds: f64,
    pub transferred: bool,
    /// The latest CSAT score (1–5).
    pub csat: Option<u8>,
    /// The last `SentimentUpdated` score at or before closed (−1 to 1).
    pub closing_sentiment: Option<f64>,
    /// Its band: `very_negative` ... `very_positive`.
    pub closing_band: Option<String>,
    pub lowest_sentiment: Option<f64>,
    /// Time spent below the neutral band.
    pub negative_seconds: f64,
    /// The score fell by 0.5 or more between two updates.
    pub sentiment_dropped: bool,
    /// `csat` (2 or less), `sentiment` (negative at close), or both.
    pub reasons: Vec<&'static str>,
    /// The session's timeline in the web UI.
    pub timeline: String,
}

impl DissatisfiedSession {
    fn of(facts: SessionFacts) -> Self {
        let mut reasons = Vec::new();
        if facts.csat.is_some_and(|score| score <= 2) {
            reasons.push("csat");
        }
        let band = facts.sentiment.closing_band();
        if band.is_some_and(|band| band.is_negative()) {
            reasons.push("sentiment");
        }
        let time = |t: Option<UtcMillis>| t.map(UtcMillis::to_rfc3339);
        Self {
            timeline: format!(
                "/ui/analytics/sessions/{}",
                crate::ui::journeys::path_segment(&facts.session_id)
            ),
            queued_at: time(facts.queued_at),
            answered_at: time(facts.answered_at),
            closed_at: time(facts.closed_at),
            handle_seconds: facts.handle_ms.map(|ms| ms as f64 / 1000.0),
            hold_seconds: facts.hold_ms as f64 / 1000.0,
            transferred: facts.transferred,
            csat: facts.csat,
            closing_sentiment: facts.sentiment.closing,
            closing_band: band.map(|b| b.code().to_owned()),
            lowest_sentiment: facts.sentiment.lowest,
            negative_seconds: facts.sentiment.negative_ms as f64 / 1000.0,
            sentiment_dropped: facts.sentiment.dropped,
            reasons,
            session_id: facts.session_id,
            conversation_id: facts.conversation_id,
            queue: facts.queue,
            channel: facts.channel,
            provider: facts.provider,
            agent: facts.agent,
        }
    }
}

/// A page of the report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DissatisfiedReport {
    pub from: String,
    pub to: String,
    pub queue: Option<String>,
    pub agent: Option<String>,
    /// Sessions in the whole report, not only this page.
    pub count: u64,
    /// Oldest closed first.
    pub items: Vec<DissatisfiedSession>,
    pub next_cursor: Option<String>,
}

async fn record_opening(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    request: &DissatisfiedRequest,
    format: &str,
) {
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation: "RetrieveDissatisfiedConversations",
            entity_name: "report",
            entity_id: "dissatisfied",
            success: true,
            fields: Some(json!({
                "from": request.from.to_rfc3339(),
                "to": request.to.to_rfc3339(),
                "queue": request.queue,
                "agent": request.agent,
                "format": format,
            })),
        },
    )
    .await;
}

/// One page of the report; its opening is recorded.
pub async fn dissatisfied(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    request: &DissatisfiedRequest,
) -> Result<DissatisfiedReport, ServiceError> {
    let page = stores
        .channel
        .dissatisfied(org, request.query(request.limit, request.cursor))
        .await?;
    record_opening(stores, org, actor, request, "json").await;
    Ok(DissatisfiedReport {
        from: request.from.to_rfc3339(),
        to: request.to.to_rfc3339(),
        queue: request.queue.clone(),
        agent: request.agent.clone(),
        count: page.count,
        items: page
            .items
            .into_iter()
            .map(DissatisfiedSession::of)
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    })
}

/// The CSV header, one column per field of [`DissatisfiedSession`].
const CSV_COLUMNS: [&str; 20] = [
    "session_id",
    "conversation_id",
    "queue",
    "channel",
    "provider",
    "agent",
    "queued_at",
    "answered_at",
    "closed_at",
    "handle_seconds",
    "hold_seconds",
    "transferred",
    "csat",
    "closing_sentiment",
    "closing_band",
    "lowest_sentiment",
    "negative_seconds",
    "sentiment_dropped",
    "reasons",
    "timeline",
];

/// A cell as text a spreadsheet shows as text (OWASP's advice against
/// formula injection, [`csv_cell`]).
pub fn neutralised(text: &str) -> String {
    csv_cell(text).into_owned()
}

fn number(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn csv_row(session: &DissatisfiedSession) -> Vec<String> {
    let text = |value: &Option<String>| neutralised(value.as_deref().unwrap_or_default());
    vec![
        neutralised(&session.session_id),
        neutralised(&session.conversation_id),
        text(&session.queue),
        text(&session.channel),
        text(&session.provider),
        text(&session.agent),
        text(&session.queued_at),
        text(&session.answered_at),
        text(&session.closed_at),
        number(session.handle_seconds),
        session.hold_seconds.to_string(),
        session.transferred.to_string(),
        session.csat.map(|c| c.to_string()).unwrap_or_default(),
        number(session.closing_sentiment),
        text(&session.closing_band),
        number(session.lowest_sentiment),
        session.negative_seconds.to_string(),
        session.sentiment_dropped.to_string(),
        session.reasons.join(" "),
        neutralised(&session.timeline),
    ]
}

/// The whole report as CSV, one row per session (at most
/// [`CSV_MAX_SESSIONS`]); its opening is recorded.
pub async fn dissatisfied_csv(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    request: &DissatisfiedRequest,
) -> Result<String, ServiceError> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let failed =
        |e: csv::Error| ServiceError::Store(tracklog_store::StoreError::Internal(e.to_string()));
    writer.write_record(CSV_COLUMNS).map_err(failed)?;
    let mut cursor = None;
    let mut written = 0;
    // Bounded: pages of 1,000 up to the cap.
    while written < CSV_MAX_SESSIONS {
        let page = stores
            .channel
            .dissatisfied(org, request.query(1000, cursor))
            .await?;
        for facts in page.items {
            writer
                .write_record(csv_row(&DissatisfiedSession::of(facts)))
                .map_err(failed)?;
            written += 1;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    record_opening(stores, org, actor, request, "csv").await;
    let bytes = writer
        .into_inner()
        .map_err(|e| ServiceError::Store(tracklog_store::StoreError::Internal(e.to_string())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_neutralised() {
        assert_eq!(neutralised("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralised("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralised("+1-2"), "'+1-2");
        assert_eq!(neutralised("\tx"), "'\tx");
        assert_eq!(neutralised("-0.4"), "-0.4", "a number stays a number");
        assert_eq!(neutralised("agent-7"), "agent-7");
    }

    #[test]
    fn the_period_defaults_to_the_week_before_now_and_is_checked() {
        let now = UtcMillis::parse_rfc3339("2026-03-08T00:00:00Z").unwrap();
        let request = DissatisfiedRequest::parse(&DissatisfiedParams::default(), now).unwrap();
        assert_eq!(request.from.to_rfc3339(), "2026-03-01T00:00:00.000Z");
        let backwards = DissatisfiedParams {
            from: Some("2026-03-09T00:00:00Z".into()),
            ..DissatisfiedParams::default()
        };
        assert_eq!(
            DissatisfiedRequest::parse(&backwards, now)
                .unwrap_err()
                .field,
            "from"
        );
    }
}
