//! Channel analytics services: providers, KPI event definitions and queues
//! (audited), ingestion rules, metrics queries, drill-down and the real-time
//! snapshot. The API and the web pages both call these, so a figure on a
//! page is the figure the API gives.

use std::collections::{BTreeMap, HashSet};

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracklog_domain::channel::alerts::{self, AlertRule, AlertState};
use tracklog_domain::channel::definitions::{self, Definition, names};
use tracklog_domain::channel::facts::{SessionFacts, Status};
use tracklog_domain::channel::interval::{self, Interval};
use tracklog_domain::channel::metrics::{self, Dimension, Metric, Series};
use tracklog_domain::contact::RecordError;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;
use tracklog_store::{
    AggregateQuery, Alert, ChannelRules, FactTime, FactsQuery, Provider, QueueSettings, Stores,
};

use super::ServiceError;
use super::selfaudit::{self, Action, Actor};

async fn audit(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    operation: &str,
    entity: (&str, &str),
    fields: Value,
) {
    selfaudit::record(
        stores,
        org,
        actor,
        Action {
            operation,
            entity_name: entity.0,
            entity_id: entity.1,
            success: true,
            fields: Some(fields),
        },
    )
    .await;
}

// ---- providers ----------------------------------------------------------------

/// A provider as an admin sends it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderInput {
    pub id: String,
    pub name: Option<String>,
    pub enable_analytics: Option<bool>,
}

fn provider_id(id: &str) -> Result<String, RecordError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(RecordError::new(
            "id",
            "must be 1 to 256 characters without control characters",
        ));
    }
    Ok(id.to_owned())
}

/// Creates or updates a provider; unset fields keep their stored values.
pub async fn put_provider(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    input: ProviderInput,
) -> Result<Provider, ServiceError> {
    let id = provider_id(&input.id)?;
    let now = UtcMillis::now();
    let existing = stores.channel.provider(org, &id).await?;
    let provider = Provider {
        name: input
            .name
            .or_else(|| existing.as_ref().map(|p| p.name.clone()))
            .unwrap_or_else(|| id.clone()),
        enable_analytics: input
            .enable_analytics
            .or(existing.as_ref().map(|p| p.enable_analytics))
            .unwrap_or(true),
        created_at: existing.as_ref().map_or(now, |p| p.created_at),
        updated_at: now,
        id,
    };
    stores.channel.put_provider(org, provider.clone()).await?;
    audit(
        stores,
        org,
        actor,
        if existing.is_some() {
            "UpdateChannelProvider"
        } else {
            "CreateChannelProvider"
        },
        ("channelprovider", &provider.id),
        json!({"name": provider.name, "enable_analytics": provider.enable_analytics}),
    )
    .await;
    Ok(provider)
}

pub async fn delete_provider(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    id: &str,
) -> Result<(), ServiceError> {
    if !stores.channel.delete_provider(org, id).await? {
        return Err(ServiceError::NotFound(format!(
            "provider {id} was not found"
        )));
    }
    audit(
        stores,
        org,
        actor,
        "DeleteChannelProvider",
        ("channelprovider", id),
        json!({}),
    )
    .await;
    Ok(())
}

/// What decides capture for a credential: the disabled providers and the
/// credential's provider scope.
pub async fn rules(
    stores: &Stores,
    org: OrgId,
    scope: Option<String>,
) -> Result<ChannelRules, ServiceError> {
    let disabled_providers = stores.channel.disabled_providers(org).await?;
    Ok(ChannelRules {
        disabled_providers,
        provider_scope: scope,
    })
}

// ---- KPI event definitions ------------------------------------------------------------

/// The built-ins, then the org's custom definitions.
pub async fn definitions(stores: &Stores, org: OrgId) -> Result<Vec<Definition>, ServiceError> {
    let mut all = definitions::builtins();
    all.extend(stores.channel.custom_definitions(org).await?);
    Ok(all)
}

/// Names captured now: built-ins and enabled custom definitions; and the
/// names defined but disabled.
pub async fn captured_names(
    stores: &Stores,
    org: OrgId,
) -> Result<(HashSet<String>, HashSet<String>), ServiceError> {
    let mut captured = HashSet::new();
    let mut disabled = HashSet::new();
    for definition in definitions(stores, org).await? {
        if definition.enabled {
            captured.insert(definition.name);
        } else {
            disabled.insert(definition.name);
        }
    }
    Ok((captured, disabled))
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefinitionInput {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

pub async fn put_definition(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    input: DefinitionInput,
) -> Result<Definition, ServiceError> {
    let name = definitions::parse_custom_name(&input.name)?;
    let existing = stores
        .channel
        .custom_definitions(org)
        .await?
        .into_iter()
        .find(|d| d.name == name);
    let definition = Definition {
        display_name: input
            .display_name
            .or_else(|| existing.as_ref().and_then(|d| d.display_name.clone())),
        description: input
            .description
            .or_else(|| existing.as_ref().and_then(|d| d.description.clone())),
        builtin: false,
        enabled: input
            .enabled
            .or(existing.as_ref().map(|d| d.enabled))
            .unwrap_or(true),
        name,
    };
    stores
        .channel
        .put_definition(org, definition.clone())
        .await?;
    audit(
        stores,
        org,
        actor,
        if existing.is_some() {
            "UpdateKpiEventDefinition"
        } else {
            "CreateKpiEventDefinition"
        },
        ("kpieventdefinition", &definition.name),
        json!({"enabled": definition.enabled}),
    )
    .await;
    Ok(definition)
}

pub async fn delete_definition(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    name: &str,
) -> Result<(), ServiceError> {
    if definitions::is_builtin(name) {
        return Err(
            RecordError::new("name", format!("{name} is built in and cannot be deleted")).into(),
        );
    }
    if !stores.channel.delete_definition(org, name).await? {
        return Err(ServiceError::NotFound(format!(
            "KPI event definition {name} was not found"
        )));
    }
    audit(
        stores,
        org,
        actor,
        "DeleteKpiEventDefinition",
        ("kpieventdefinition", name),
        json!({}),
    )
    .await;
    Ok(())
}

// ---- queues ---------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueInput {
    /// Answered within this many seconds counts toward service level (20 by default).
    pub service_level_seconds: Option<i64>,
    /// Abandoned within this many seconds is a short abandon (5 by default).
    pub short_abandon_seconds: Option<i64>,
}

pub async fn put_queue(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    queue: &str,
    input: QueueInput,
) -> Result<QueueSettings, ServiceError> {
    let check = |field: &str, value: Option<i64>, default: i64| {
        let value = value.unwrap_or(default);
        if (0..=86_400).contains(&value) {
            Ok(value)
        } else {
            Err(RecordError::new(
                field,
                "must be between 0 and 86400 seconds",
            ))
        }
    };
    if queue.is_empty() || queue.len() > 256 {
        return Err(RecordError::new("queue", "must be 1 to 256 characters").into());
    }
    let settings = QueueSettings {
        queue: queue.to_owned(),
        service_level_seconds: check("service_level_seconds", input.service_level_seconds, 20)?,
        short_abandon_seconds: check("short_abandon_seconds", input.short_abandon_seconds, 5)?,
        updated_at: UtcMillis::now(),
    };
    stores.channel.put_queue(org, settings.clone()).await?;
    audit(
        stores,
        org,
        actor,
        "UpdateQueueThresholds",
        ("queue", queue),
        json!({"service_level_seconds": settings.service_level_seconds,
               "short_abandon_seconds": settings.short_abandon_seconds}),
    )
    .await;
    Ok(settings)
}

// ---- metrics queries ------------------------------------------------------------------

/// One string or a list of them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// `POST /api/v1/metrics/query` as sent.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsRequest {
    /// Metric names; every metric when absent.
    #[schema(value_type = Option<Vec<String>>)]
    pub metrics: Option<OneOrMany>,
    /// RFC 3339; 24 hours before `to` when absent.
    pub from: Option<String>,
    /// RFC 3339, exclusive; now when absent.
    pub to: Option<String>,
    /// 15m, 30m, 1h, 1d or 1w; 1h by default.
    pub interval: Option<String>,
    /// An IANA time zone; UTC by default.
    pub timezone: Option<String>,
    /// queue, channel, agent, provider or sentiment_band (the closing
    /// sentiment's band), one or a list.
    #[schema(value_type = Option<Vec<String>>)]
    pub group_by: Option<OneOrMany>,
    /// `{"queue": "billing"}` or `{"queue": ["billing", "sales"]}`.
    #[schema(value_type = Option<Object>)]
    pub filters: Option<BTreeMap<String, OneOrMany>>,
}

/// A metrics query, parsed.
#[derive(Debug, Clone)]
pub struct MetricsQuery {
    pub metrics: Vec<Metric>,
    pub from: UtcMillis,
    pub to: UtcMillis,
    pub interval: Interval,
    pub tz: TimeZone,
    pub tz_name: String,
    pub group_by: Vec<Dimension>,
    pub filters: Vec<(Dimension, String)>,
}

fn time_field(field: &str, value: Option<&str>) -> Result<Option<UtcMillis>, RecordError> {
    value
        .map(|text| {
            UtcMillis::parse_rfc3339(text)
                .map_err(|_| RecordError::new(field, "must be an RFC 3339 time"))
        })
        .transpose()
}

impl MetricsQuery {
    pub fn parse(request: MetricsRequest, now: UtcMillis) -> Result<Self, RecordError> {
        let catalogue = metrics::catalogue();
        let metrics = match request.metrics.map(OneOrMany::into_vec) {
            None => catalogue.clone(),
            Some(names) if names.is_empty() => catalogue.clone(),
            Some(names) => names
                .iter()
                .map(|name| {
                    catalogue
                        .iter()
                        .find(|m| m.name == name)
                        .cloned()
                        .ok_or_else(|| {
                            RecordError::new(
                                "metrics",
                                format!("unknown metric {name:?}; GET /api/v1/metrics lists them"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let to = time_field("to", request.to.as_deref())?.unwrap_or(now);
        let from = time_field("from", request.from.as_deref())?
            .unwrap_or(UtcMillis::from_millis(to.as_millis() - 86_400_000));
        if from >= to {
            return Err(RecordError::new("from", "must be before to"));
        }
        let interval_text = request.interval.unwrap_or_else(|| "1h".into());
        let interval = Interval::parse(&interval_text)
            .ok_or_else(|| RecordError::new("interval", "must be 15m, 30m, 1h, 1d or 1w"))?;
        let tz_name = request.timezone.unwrap_or_else(|| "UTC".into());
        let tz = interval::zone(&tz_name).ok_or_else(|| {
            RecordError::new("timezone", format!("{tz_name:?} is not an IANA time zone"))
        })?;
        let dimension = |field: &str, text: &str| {
            Dimension::parse(text).ok_or_else(|| {
                RecordError::new(
                    field,
                    format!("{text:?} is not queue, channel, agent, provider or sentiment_band"),
                )
            })
        };
        let mut group_by = Vec::new();
        for text in request
            .group_by
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
        {
            let d = dimension("group_by", &text)?;
            if !group_by.contains(&d) {
                group_by.push(d);
            }
        }
        let mut filters = Vec::new();
        for (key, values) in request.filters.unwrap_or_default() {
            let d = dimension("filters", &key)?;
            for value in values.into_vec() {
                filters.push((d, value));
            }
        }
        for metric in &metrics {
            for d in group_by.iter().chain(filters.iter().map(|(d, _)| d)) {
                if !metric.dimensions.contains(d) {
                    return Err(RecordError::new(
                        "group_by",
                        format!(
                            "{} cannot be grouped or filtered by {}",
                            metric.name,
                            d.code()
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            metrics,
            from,
            to,
            interval,
            tz,
            tz_name,
            group_by,
            filters,
        })
    }

    /// The interval starts, bounded.
    pub fn starts(&self) -> Result<Vec<UtcMillis>, RecordError> {
        interval::starts(self.from, self.to, self.interval, &self.tz).ok_or_else(|| {
            RecordError::new(
                "interval",
                format!(
                    "the range holds more than {} intervals; use a larger interval",
                    interval::MAX_INTERVALS
                ),
            )
        })
    }
}

/// The answer of a metrics query.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsAnswer {
    pub series: Vec<Series>,
    pub interval: &'static str,
    pub timezone: String,
    /// Every interval: its start in UTC and on the zone's clock.
    pub intervals: Vec<Value>,
}

impl MetricsAnswer {
    /// The answer as JSON, byte for byte its `Serialize`, with the series
    /// written by [`Series::write_json`] into one buffer sized up front: a
    /// dashboard's answer is megabytes.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let points: usize = self.series.iter().map(|s| s.points.len()).sum();
        let mut out = Vec::with_capacity(1024 + 72 * points + 96 * self.intervals.len());
        out.extend_from_slice(b"{\"series\":[");
        for (i, series) in self.series.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            series.write_json(&mut out)?;
        }
        out.extend_from_slice(b"],\"interval\":");
        serde_json::to_writer(&mut out, self.interval)?;
        out.extend_from_slice(b",\"timezone\":");
        serde_json::to_writer(&mut out, &self.timezone)?;
        out.extend_from_slice(b",\"intervals\":");
        serde_json::to_writer(&mut out, &self.intervals)?;
        out.push(b'}');
        Ok(out)
    }
}

/// The largest bucket every boundary is a multiple of: an hour when all of
/// them are whole hours (hourly, daily and weekly intervals in zones with
/// whole-hour offsets), else the 15 minutes every bucket is.
fn granularity(boundaries: impl IntoIterator<Item = i64>) -> i64 {
    const HOUR_MS: i64 = 3_600_000;
    if boundaries.into_iter().all(|ms| ms.rem_euclid(HOUR_MS) == 0) {
        HOUR_MS
    } else {
        900_000
    }
}

/// Runs a metrics query on the pre-aggregates.
pub async fn query_metrics(
    stores: &Stores,
    org: OrgId,
    query: &MetricsQuery,
) -> Result<MetricsAnswer, ServiceError> {
    let starts = query.starts()?;
    let series = if let (Some(first), Some(last)) = (starts.first(), starts.last()) {
        let end = interval::next(*last, query.interval, &query.tz);
        let mut parts: Vec<_> = query
            .metrics
            .iter()
            .flat_map(|m| m.computed.parts())
            .collect();
        parts.sort();
        parts.dedup();
        let rows = stores
            .channel
            .aggregate(
                org,
                AggregateQuery {
                    parts,
                    from_bucket: first.as_millis(),
                    to_bucket: end.as_millis(),
                    group_by: query.group_by.clone(),
                    filters: query.filters.clone(),
                    granularity_ms: granularity(starts.iter().chain([&end]).map(|s| s.as_millis())),
                },
            )
            .await?;
        metrics::assemble(
            &query.metrics,
            &query.group_by,
            &starts,
            query.interval,
            &query.tz,
            &rows,
        )
    } else {
        Vec::new()
    };
    Ok(MetricsAnswer {
        series,
        interval: query.interval.code(),
        timezone: query.tz_name.clone(),
        intervals: starts
            .iter()
            .map(|s| json!({"start": s.to_rfc3339(), "local_start": interval::local_rfc3339(*s, &query.tz)}))
            .collect(),
    })
}

// ---- drill-down ----------------------------------------------------------------------

/// `POST /api/v1/metrics/drilldown` as sent: one figure of a query.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrilldownRequest {
    pub metric: String,
    /// The interval's start, as the query answered it.
    pub start: String,
    pub interval: Option<String>,
    pub timezone: Option<String>,
    /// The series' group, e.g. `{"queue": "billing"}`.
    #[schema(value_type = Option<Object>)]
    pub group: Option<BTreeMap<String, String>>,
    #[schema(value_type = Option<Object>)]
    pub filters: Option<BTreeMap<String, OneOrMany>>,
    /// At most this many sessions (1000 by default, 10000 at most).
    pub limit: Option<usize>,
}

/// Which sessions stand behind a metric, and which of them count in its
/// numerator.
/// Whether a session is behind a figure (`Some`) and in its numerator.
type Rule = fn(&SessionFacts) -> Option<bool>;

fn drill_rule(metric: &str) -> Option<(FactTime, Rule)> {
    let rule: (FactTime, Rule) = match metric {
        "conversations_offered" => (FactTime::Queued, |_| Some(true)),
        "aht" | "hold_time" | "wrap_up_time" | "talk_time" | "occupancy" => {
            (FactTime::Closed, |f| f.handled().then_some(true))
        }
        "transfer_rate" => (FactTime::Closed, |f| f.handled().then_some(f.transferred)),
        "asa" => (FactTime::Answered, |f| {
            f.queued_at.is_some().then_some(true)
        }),
        "service_level" => (FactTime::Queued, |f| {
            (f.answered_at.is_some() || (f.abandoned && !f.short_abandon))
                .then_some(f.answered_within_sl)
        }),
        "abandon_rate" => (FactTime::Queued, |f| {
            (!f.short_abandon).then_some(f.abandoned)
        }),
        "mean_sentiment" => (FactTime::Closed, |f| {
            (f.handled() && f.sentiment.closing.is_some()).then_some(true)
        }),
        "negative_sentiment_rate" => (FactTime::Closed, |f| {
            let band = f.sentiment.closing_band().filter(|_| f.handled())?;
            Some(band.is_negative())
        }),
        "sentiment_drop_rate" => (FactTime::Closed, |f| {
            (f.handled() && f.sentiment.closing.is_some()).then_some(f.sentiment.dropped)
        }),
        _ => return None,
    };
    Some(rule)
}

fn event_names(metric: &str) -> Option<Vec<String>> {
    let names: &[&str] = match metric {
        "notification_accept_rate" => &[names::NOTIFICATION_DISPLAYED],
        "notification_response_time" => &[names::NOTIFICATION_RESPONSE],
        "csat" | "csat_top2" => &[names::CSAT_SUBMITTED],
        _ => return None,
    };
    Some(names.iter().map(|n| (*n).to_owned()).collect())
}

/// The sessions behind one figure.
pub async fn drilldown(
    stores: &Stores,
    org: OrgId,
    request: DrilldownRequest,
) -> Result<Value, ServiceError> {
    let query = MetricsQuery::parse(
        MetricsRequest {
            metrics: Some(OneOrMany::One(request.metric.clone())),
            from: Some(request.start.clone()),
            to: None,
            interval: request.interval.clone(),
            timezone: request.timezone.clone(),
            group_by: None,
            filters: request.filters.clone(),
        },
        UtcMillis::from_millis(i64::MAX / 2),
    )?;
    let start = UtcMillis::parse_rfc3339(&request.start)
        .map_err(|_| RecordError::new("start", "must be an RFC 3339 time"))?;
    let start = interval::floor(start, query.interval, &query.tz);
    let end = interval::next(start, query.interval, &query.tz);
    let mut filters = query.filters.clone();
    for (key, value) in request.group.unwrap_or_default() {
        let d = Dimension::parse(&key)
            .ok_or_else(|| RecordError::new("group", format!("{key:?} is not a dimension")))?;
        filters.push((d, value));
    }
    let limit = request.limit.unwrap_or(1000).clamp(1, 10_000);
    let facts_query = |time| FactsQuery {
        time,
        from: start,
        to: end,
        filters: filters.clone(),
        limit,
    };
    let (sessions, numerator): (Vec<SessionFacts>, Vec<Option<bool>>) =
        if let Some((time, rule)) = drill_rule(&request.metric) {
            let facts = stores.channel.facts(org, facts_query(time)).await?;
            facts
                .into_iter()
                .filter_map(|f| rule(&f).map(|n| (f, Some(n))))
                .unzip()
        } else if let Some(names) = event_names(&request.metric) {
            let facts = stores
                .channel
                .facts_with_events(org, names, facts_query(FactTime::Closed))
                .await?;
            let n = facts.len();
            (facts, vec![None; n])
        } else {
            return Err(
                RecordError::new("metric", format!("unknown metric {:?}", request.metric)).into(),
            );
        };
    let items: Vec<Value> = sessions
        .iter()
        .zip(numerator)
        .map(|(facts, numerator)| {
            let mut value = json!(facts);
            if let Some(numerator) = numerator {
                value["in_numerator"] = json!(numerator);
            }
            value
        })
        .collect();
    Ok(json!({
        "metric": request.metric,
        "start": start.to_rfc3339(),
        "end": end.to_rfc3339(),
        "count": items.len(),
        "sessions": items,
    }))
}

// ---- real time --------------------------------------------------------------------------

/// Sessions quiet for longer than this are not live any more.
pub const LIVE_HORIZON_MS: i64 = 24 * 3_600_000;

/// One queue's live counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueueLive {
    pub queue: String,
    pub waiting: usize,
    pub active: usize,
    pub wrapping_up: usize,
    pub longest_wait_seconds: f64,
}

/// What the supervisor's live view shows, as of `at`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    #[serde(with = "tracklog_domain::time::rfc3339")]
    pub at: UtcMillis,
    pub waiting: usize,
    pub active: usize,
    pub wrapping_up: usize,
    pub longest_wait_seconds: f64,
    pub agents_busy: usize,
    pub agents_signed_in: usize,
    pub queues: Vec<QueueLive>,
    /// Waiting sessions already past their queue's service-level threshold:
    /// flagged before they are answered late.
    pub breaching: Vec<Value>,
    /// Ongoing sessions whose customer's sentiment is now below neutral,
    /// most negative first.
    pub turned_negative: Vec<SessionFacts>,
    /// The current interval so far and the last closed one, from the same
    /// pre-aggregates as `POST /api/v1/metrics/query`.
    pub current: MetricsAnswer,
    pub previous: MetricsAnswer,
}

/// Counts live sessions: pure, for tests and the page.
pub fn live_counts(facts: &[SessionFacts], now: UtcMillis) -> (Vec<QueueLive>, QueueLive, usize) {
    let mut queues: BTreeMap<String, QueueLive> = BTreeMap::new();
    let mut total = QueueLive::default();
    let mut busy = HashSet::new();
    for f in facts {
        let queue = f.queue.clone().unwrap_or_default();
        let entry = queues.entry(queue.clone()).or_insert_with(|| QueueLive {
            queue,
            ..QueueLive::default()
        });
        for counts in [&mut *entry, &mut total] {
            match f.status {
                Status::Waiting => {
                    counts.waiting += 1;
                    if let Some(queued) = f.queued_at {
                        let wait = (now.as_millis() - queued.as_millis()).max(0) as f64 / 1000.0;
                        counts.longest_wait_seconds = counts.longest_wait_seconds.max(wait);
                    }
                }
                Status::Active => counts.active += 1,
                Status::WrappingUp => counts.wrapping_up += 1,
                Status::New | Status::Closed => {}
            }
        }
        if matches!(f.status, Status::Active | Status::WrappingUp)
            && let Some(agent) = &f.agent
        {
            busy.insert(agent.clone());
        }
    }
    (queues.into_values().collect(), total, busy.len())
}

/// The live snapshot for an org; `base` gives the metrics, interval, time
/// zone and filters of the interval figures.
pub async fn snapshot(
    stores: &Stores,
    org: OrgId,
    base: &MetricsQuery,
    now: UtcMillis,
) -> Result<Snapshot, ServiceError> {
    let live = stores
        .channel
        .live_sessions(
            org,
            UtcMillis::from_millis(now.as_millis() - LIVE_HORIZON_MS),
        )
        .await?;
    let (queues, total, agents_busy) = live_counts(&live, now);
    let thresholds: BTreeMap<String, i64> = stores
        .channel
        .queues(org)
        .await?
        .into_iter()
        .map(|q| (q.queue, q.service_level_seconds * 1000))
        .collect();
    let breaching = live
        .iter()
        .filter(|f| f.status == Status::Waiting)
        .filter_map(|f| {
            let queued = f.queued_at?;
            let queue = f.queue.clone().unwrap_or_default();
            let limit = thresholds.get(&queue).copied().unwrap_or(20_000);
            let waited = now.as_millis() - queued.as_millis();
            (waited > limit).then(|| {
                json!({"session_id": f.session_id, "queue": queue, "kpi": "service_level",
                       "waited_seconds": waited as f64 / 1000.0, "threshold_seconds": limit / 1000})
            })
        })
        .collect();
    let turned_negative = turned_negative(&live);
    let spans = stores
        .channel
        .agent_spans(
            org,
            UtcMillis::from_millis(now.as_millis() - LIVE_HORIZON_MS),
        )
        .await?;
    // An agent is signed in while their last span is open.
    let agents_signed_in = spans
        .iter()
        .filter(|(_, spans)| spans.last().is_some_and(|(_, end)| end.is_none()))
        .count();
    let current_start = interval::floor(now, base.interval, &base.tz);
    let previous_start = interval::floor(
        UtcMillis::from_millis(current_start.as_millis() - 1),
        base.interval,
        &base.tz,
    );
    let at = |from: UtcMillis, to: UtcMillis| MetricsQuery {
        from,
        to,
        ..base.clone()
    };
    let current = query_metrics(
        stores,
        org,
        &at(
            current_start,
            UtcMillis::from_millis(current_start.as_millis() + 1),
        ),
    )
    .await?;
    let previous = query_metrics(stores, org, &at(previous_start, current_start)).await?;
    Ok(Snapshot {
        at: now,
        waiting: total.waiting,
        active: total.active,
        wrapping_up: total.wrapping_up,
        longest_wait_seconds: total.longest_wait_seconds,
        agents_busy,
        agents_signed_in,
        queues,
        breaching,
        turned_negative,
        current,
        previous,
    })
}

/// The live sessions whose sentiment turned negative: not closed, with a
/// current score below the neutral band; most negative first.
pub fn turned_negative(live: &[SessionFacts]) -> Vec<SessionFacts> {
    let mut flagged: Vec<SessionFacts> = live
        .iter()
        .filter(|f| f.status != Status::Closed)
        .filter(|f| {
            f.sentiment
                .current_band()
                .is_some_and(|band| band.is_negative())
        })
        .cloned()
        .collect();
    flagged.sort_by(|a, b| {
        a.sentiment
            .current
            .partial_cmp(&b.sentiment.current)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.session_id.cmp(&b.session_id))
    });
    flagged
}

// ---- forecast and staffing -------------------------------------------------------------

/// `GET /api/v1/forecast` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ForecastParams {
    /// The queue; every queue together when absent.
    pub queue: Option<String>,
    /// 15m, 30m or 1h; 1h by default.
    pub interval: Option<String>,
    /// Weeks of history to fit on, 1 to 26; 8 by default.
    pub weeks: Option<u32>,
    pub timezone: Option<String>,
    /// Service-level target, 0 to 1; 0.8 by default.
    pub target: Option<f64>,
    /// Answer-time target in seconds; the queue's threshold by default.
    pub target_seconds: Option<i64>,
    /// Highest occupancy staffed for, 0 to 1; none by default.
    pub max_occupancy: Option<f64>,
}

/// A 7-day volume forecast per interval with its backtest, and the agents
/// Erlang C says each interval needs.
pub async fn forecast(
    stores: &Stores,
    org: OrgId,
    params: ForecastParams,
    now: UtcMillis,
) -> Result<Value, ServiceError> {
    use tracklog_domain::{forecast, staffing};
    let interval_text = params.interval.clone().unwrap_or_else(|| "1h".into());
    let interval = match Interval::parse(&interval_text) {
        Some(i @ (Interval::M15 | Interval::M30 | Interval::H1)) => i,
        _ => return Err(RecordError::new("interval", "must be 15m, 30m or 1h").into()),
    };
    let weeks = params.weeks.unwrap_or(8);
    if !(1..=26).contains(&weeks) {
        return Err(RecordError::new("weeks", "must be between 1 and 26").into());
    }
    let target = params.target.unwrap_or(0.8);
    if !(0.0..=1.0).contains(&target) {
        return Err(RecordError::new("target", "must be between 0 and 1").into());
    }
    let tz_name = params.timezone.clone().unwrap_or_else(|| "UTC".into());
    let tz = interval::zone(&tz_name).ok_or_else(|| {
        RecordError::new("timezone", format!("{tz_name:?} is not an IANA time zone"))
    })?;
    let end = interval::floor(now, interval, &tz);
    let start = UtcMillis::from_millis(end.as_millis() - i64::from(weeks) * 7 * 86_400_000);
    let filters: Vec<(Dimension, String)> = params
        .queue
        .iter()
        .map(|q| (Dimension::Queue, q.clone()))
        .collect();
    let query = MetricsQuery {
        metrics: ["conversations_offered", "aht"]
            .iter()
            .filter_map(|name| metrics::metric(name))
            .collect(),
        from: start,
        to: end,
        interval,
        tz: tz.clone(),
        tz_name: tz_name.clone(),
        group_by: Vec::new(),
        filters,
    };
    let answer = query_metrics(stores, org, &query).await?;
    let series = |name: &str| answer.series.iter().find(|s| s.metric == name);
    let history: Vec<f64> = series("conversations_offered")
        .map(|s| s.points.iter().map(|p| p.value.unwrap_or(0.0)).collect())
        .unwrap_or_default();
    let (handle_sum, handled) = series("aht").map_or((0.0, 0), |s| {
        s.points.iter().fold((0.0, 0i64), |(sum, n), p| {
            (sum + p.value.unwrap_or(0.0) * p.count as f64, n + p.count)
        })
    });
    let aht = if handled > 0 {
        handle_sum / handled as f64
    } else {
        0.0
    };
    let interval_secs = (interval.nominal_ms() / 1000) as u32;
    let per_day = forecast::intervals_per_day(interval_secs)
        .map_err(|e| RecordError::new("interval", e.to_string()))?;
    let predicted = forecast::forecast_week(&history, interval_secs)
        .map_err(|e| RecordError::new("history", e.to_string()))?;
    let backtest = forecast::backtest(&history, interval_secs, 7 * per_day).ok();
    let threshold = match (&params.queue, params.target_seconds) {
        (_, Some(seconds)) => seconds,
        (Some(queue), None) => stores
            .channel
            .queues(org)
            .await?
            .into_iter()
            .find(|q| &q.queue == queue)
            .map_or(20, |q| q.service_level_seconds),
        (None, None) => 20,
    };
    let mut at = end;
    let mut points = Vec::with_capacity(predicted.points.len());
    for (i, calls) in predicted.points.iter().enumerate() {
        let staffed = staffing::agents_required(
            *calls,
            f64::from(interval_secs),
            aht,
            target,
            threshold as f64,
            params.max_occupancy,
        )
        .ok();
        points.push(json!({
            "start": at.to_rfc3339(),
            "local_start": interval::local_rfc3339(at, &tz),
            "forecast": calls,
            "lower": predicted.lower.get(i),
            "upper": predicted.upper.get(i),
            "agents": staffed.map(|s| s.agents),
            "service_level": staffed.map(|s| s.service_level),
            "asa_seconds": staffed.map(|s| s.asa_secs),
            "occupancy": staffed.map(|s| s.occupancy),
        }));
        at = interval::next(at, interval, &tz);
    }
    Ok(json!({
        "queue": params.queue,
        "interval": interval.code(),
        "timezone": tz_name,
        "history": {"from": start.to_rfc3339(), "to": end.to_rfc3339(), "intervals": history.len(),
                    "offered": history.iter().sum::<f64>(), "aht_seconds": aht},
        "model": predicted.model,
        "smoothing": predicted.smoothing,
        "backtest": backtest.as_ref().map(|b| json!({
            "held_out_intervals": b.points, "mape_percent": b.mape, "wape_percent": b.wape,
            "smape_percent": b.smape, "mae": b.mae, "coverage": b.coverage,
            "forecast": b.forecast.points,
            "actual": history[history.len() - b.points..].to_vec(),
        })),
        "staffing_target": {"service_level": target, "seconds": threshold,
                            "max_occupancy": params.max_occupancy},
        "points": points,
    }))
}

// ---- alerts ------------------------------------------------------------------------------

pub async fn put_alert_rule(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    rule: AlertRule,
) -> Result<AlertRule, ServiceError> {
    let rule = rule.validate()?;
    stores.channel.put_alert_rule(org, rule.clone()).await?;
    audit(
        stores,
        org,
        actor,
        "SaveAlertRule",
        ("alertrule", &rule.id),
        json!({"metric": rule.metric, "threshold": rule.threshold,
               "window_minutes": rule.window_minutes, "predictive": rule.predictive}),
    )
    .await;
    Ok(rule)
}

pub async fn delete_alert_rule(
    stores: &Stores,
    org: OrgId,
    actor: &Actor,
    id: &str,
) -> Result<(), ServiceError> {
    if !stores.channel.delete_alert_rule(org, id).await? {
        return Err(ServiceError::NotFound(format!(
            "alert rule {id} was not found"
        )));
    }
    audit(
        stores,
        org,
        actor,
        "DeleteAlertRule",
        ("alertrule", id),
        json!({}),
    )
    .await;
    Ok(())
}

/// A metric's value over `[from, to)` of the pre-aggregates.
async fn value_over(
    stores: &Stores,
    org: OrgId,
    metric: &Metric,
    filters: &[(Dimension, String)],
    from: i64,
    to: i64,
) -> Result<Option<f64>, ServiceError> {
    if to <= from {
        return Ok(None);
    }
    let rows = stores
        .channel
        .aggregate(
            org,
            AggregateQuery {
                parts: metric.computed.parts(),
                from_bucket: from,
                to_bucket: to,
                group_by: Vec::new(),
                filters: filters.to_vec(),
                granularity_ms: granularity([from, to]),
            },
        )
        .await?;
    Ok(metrics::total(metric, &rows).0)
}

/// What evaluating one rule found.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCheck {
    pub rule_id: String,
    pub state: AlertState,
    pub value: Option<f64>,
    pub projected: Option<f64>,
    /// The alert raised, moved or resolved by this check, if any.
    pub alert: Option<Alert>,
}

/// Evaluates every enabled rule of the org at `now`, stores what changed,
/// and posts changes to the rules' webhooks.
pub async fn evaluate_alerts(
    stores: &Stores,
    org: OrgId,
    now: UtcMillis,
    http: &reqwest::Client,
) -> Result<Vec<RuleCheck>, ServiceError> {
    let rules = stores.channel.alert_rules(org).await?;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let open = stores.channel.alerts(org, true, 10_000).await?;
    let mut checks = Vec::new();
    for rule in rules.into_iter().filter(|r| r.enabled) {
        let Some(metric) = metrics::metric(&rule.metric) else {
            continue;
        };
        let filters = rule.filters();
        let window = rule.window_minutes * 60_000;
        let now_ms = now.as_millis();
        let end = interval::bucket_of(now) + interval::BUCKET_MS;
        let current = value_over(stores, org, &metric, &filters, end - window, end).await?;
        // The aligned window holding now, its value so far and half-way.
        let start = now_ms.div_euclid(window) * window;
        let elapsed_buckets = (interval::bucket_of(now) - start) / interval::BUCKET_MS;
        let projected = if rule.predictive && elapsed_buckets >= 2 {
            let half = start + (elapsed_buckets / 2) * interval::BUCKET_MS;
            let earlier = value_over(stores, org, &metric, &filters, start, half).await?;
            let so_far = value_over(stores, org, &metric, &filters, start, end).await?;
            match (earlier, so_far) {
                (Some(v1), Some(v2)) => alerts::project(half, v1, now_ms, v2, start + window),
                _ => None,
            }
        } else {
            None
        };
        let state = alerts::evaluate(&rule, current, projected);
        let existing = open.iter().find(|a| a.rule_id == rule.id).cloned();
        let code = |s: AlertState| match s {
            AlertState::Ok => "resolved",
            AlertState::Predicted => "predicted",
            AlertState::Firing => "firing",
        };
        let changed = match (&existing, state) {
            (None, AlertState::Ok) => None,
            (None, state) => Some(Alert {
                id: format!("{}-{}", rule.id, now_ms),
                rule_id: rule.id.clone(),
                metric: rule.metric.clone(),
                state: code(state).into(),
                value: current,
                projected,
                threshold: rule.threshold,
                started_at: now,
                updated_at: now,
                resolved_at: None,
            }),
            (Some(alert), state) if alert.state != code(state) => Some(Alert {
                state: code(state).into(),
                value: current,
                projected,
                updated_at: now,
                resolved_at: (state == AlertState::Ok).then_some(now),
                ..alert.clone()
            }),
            (Some(_), _) => None,
        };
        if let Some(alert) = &changed {
            stores.channel.put_alert(org, alert.clone()).await?;
            if let Some(url) = &rule.webhook_url {
                post_webhook(http, url, rule.webhook_secret.as_deref(), alert).await;
            }
        }
        checks.push(RuleCheck {
            rule_id: rule.id,
            state,
            value: current,
            projected,
            alert: changed,
        });
    }
    Ok(checks)
}

/// Posts an alert, retrying three times with backoff; a failure is logged
/// and counted by the caller's job, never fatal.
async fn post_webhook(http: &reqwest::Client, url: &str, secret: Option<&str>, alert: &Alert) {
    let body = json!({ "alert": alert }).to_string();
    let mut delay = std::time::Duration::from_millis(200);
    for attempt in 1..=3 {
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .timeout(std::time::Duration::from_secs(5))
            .body(body.clone());
        if let Some(secret) = secret {
            request = request.header(
                "X-Tracklog-Signature",
                tracklog_domain::audit::format::webhook_signature(
                    secret.as_bytes(),
                    body.as_bytes(),
                ),
            );
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                tracing::warn!(url, attempt, status = %response.status(), "alert webhook refused")
            }
            Err(error) => tracing::warn!(url, attempt, %error, "alert webhook failed"),
        }
        tokio::time::sleep(delay).await;
        delay *= 4;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tracklog_domain::channel::metrics::Point;

    use super::*;

    /// The answer written by hand is the answer serde_json would write.
    #[test]
    fn the_written_answer_is_its_serialization() {
        let start = UtcMillis::from_millis(1_772_409_600_000);
        let answer = MetricsAnswer {
            series: vec![
                Series {
                    metric: "aht".into(),
                    group: BTreeMap::from([("queue".to_owned(), "sales \"west\"".to_owned())]),
                    points: vec![Point {
                        start,
                        value: Some(1.5),
                        count: 2,
                    }],
                },
                Series {
                    metric: "csat".into(),
                    group: BTreeMap::new(),
                    points: vec![Point {
                        start,
                        value: None,
                        count: 0,
                    }],
                },
            ],
            interval: "1h",
            timezone: "Europe/Paris".into(),
            intervals: vec![json!({"start": start.to_rfc3339(), "local_start": "x"})],
        };
        assert_eq!(
            String::from_utf8(answer.to_json().unwrap()).unwrap(),
            serde_json::to_string(&answer).unwrap()
        );
    }
}
