//! Channel analytics in SQLite.
//!
//! Raw records (conversations, sessions, participants, KPI events) are the
//! truth. They reach the tables through the log: admission ([`admit`])
//! decides each item's outcome before the 2xx, and the channel
//! materialiser ([`write`]) applies them in batches, re-deriving the facts of every
//! session a batch touched ([`derive`]) and moving the
//! rollups ([`super::rollups`]) by the difference between the session's old
//! contributions (kept in `ch_contrib`) and its new ones. A dashboard query
//! therefore reads buckets, never events, and the buckets always equal what
//! [`ChannelStore::rebuild_analytics`] computes from scratch, whatever order
//! the events came in. Reads wait for what their org had acknowledged when
//! they began.

mod admin;
mod admit;
mod derive;
mod lists;
mod records;
mod write;

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tracklog_domain::channel::alerts::AlertRule;
use tracklog_domain::channel::definitions::Definition;
use tracklog_domain::channel::facts::SessionFacts;
use tracklog_domain::channel::payload::{Conversation, Init, KpiEvent, Participant, Session};
use tracklog_domain::channel::series::Row;
use tracklog_domain::ids::OrgId;
use tracklog_domain::time::UtcMillis;

use super::rollups;
use super::rollups::Pending;
use super::{SqliteStore, sql_error};
use crate::log::{Admitted, Kind};
use crate::{
    AggregateQuery, Alert, ChannelList, ChannelRules, ChannelStore, DissatisfiedPage,
    DissatisfiedQuery, EventOutcome, FactsQuery, ItemOutcome, Page, Provider, QueueSettings,
    RebuildProgress, RebuildSummary, SessionDetail, StoreError,
};
pub(crate) use admit::ChannelState;
use derive::{rederive_agent, rederive_session};
use records::{
    corrupt, fact_column, from_json, load_conversation, load_events, load_facts, load_participants,
    load_record, load_records, load_session, thresholds, to_json,
};
pub(crate) use write::Channel;

/// Sessions re-derived per write job during a rebuild or a threshold change.
const REBUILD_CHUNK: usize = 500;

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn put_provider(&self, org: OrgId, provider: Provider) -> Result<(), StoreError> {
        self.write(1, move |ctx| admin::put_provider(ctx.conn, org, &provider))
            .await
    }

    async fn provider(&self, org: OrgId, id: &str) -> Result<Option<Provider>, StoreError> {
        // A provider is registered by its first init.
        self.settle(Kind::ChannelInit, org).await?;
        let id = id.to_owned();
        self.read(move |conn| admin::provider(conn, org, &id)).await
    }

    async fn providers(&self, org: OrgId) -> Result<Vec<Provider>, StoreError> {
        self.settle(Kind::ChannelInit, org).await?;
        self.read(move |conn| admin::providers(conn, org)).await
    }

    async fn disabled_providers(&self, org: OrgId) -> Result<HashSet<String>, StoreError> {
        self.read(move |conn| admin::disabled_providers(conn, org))
            .await
    }

    async fn delete_provider(&self, org: OrgId, id: &str) -> Result<bool, StoreError> {
        self.settle(Kind::ChannelInit, org).await?;
        let id = id.to_owned();
        self.write(1, move |ctx| admin::delete_provider(ctx.conn, org, &id))
            .await
    }

    async fn put_definition(&self, org: OrgId, definition: Definition) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            admin::put_definition(ctx.conn, org, &definition)
        })
        .await
    }

    async fn custom_definitions(&self, org: OrgId) -> Result<Vec<Definition>, StoreError> {
        self.read(move |conn| admin::custom_definitions(conn, org))
            .await
    }

    async fn delete_definition(&self, org: OrgId, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(1, move |ctx| admin::delete_definition(ctx.conn, org, &name))
            .await
    }

    async fn put_queue(&self, org: OrgId, queue: QueueSettings) -> Result<(), StoreError> {
        let name = queue.queue.clone();
        // Sessions still in the log are re-derived with the new thresholds
        // once applied; those in the tables are re-derived here.
        self.settle(Kind::ChannelInit, org).await?;
        self.write(1, move |ctx| admin::put_queue(ctx.conn, org, &queue))
            .await?;
        let ids: Vec<String> = self
            .read(move |conn| {
                let mut statement = conn
                    .prepare("SELECT id FROM ch_sessions WHERE org_id = ?1 AND queue = ?2")
                    .map_err(sql_error)?;
                statement
                    .query_map(params![org.0, name], |r| r.get(0))
                    .map_err(sql_error)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_error)
            })
            .await?;
        for chunk in ids.chunks(REBUILD_CHUNK) {
            let chunk = chunk.to_vec();
            self.write(chunk.len(), move |ctx| {
                let mut pending = Pending::default();
                for id in &chunk {
                    rederive_session(ctx.conn, org, id, None, &mut pending)?;
                }
                pending.flush(ctx.conn)
            })
            .await?;
        }
        Ok(())
    }

    async fn queues(&self, org: OrgId) -> Result<Vec<QueueSettings>, StoreError> {
        self.read(move |conn| admin::queues(conn, org)).await
    }

    async fn ingest_init(
        &self,
        org: OrgId,
        items: Vec<Init>,
        rules: ChannelRules,
    ) -> Result<Vec<ItemOutcome>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let log = self.log()?.clone();
        self.await_recovery().await?;
        let at = UtcMillis::now();
        let encoded: Vec<Vec<u8>> = items.iter().map(|i| write::encode_init(at, i)).collect();
        // What the tables hold of the records, as of a watermark read first.
        let probed_at = self.materialised(Kind::ChannelInit);
        let (items, stored) = self
            .read(move |conn| {
                let stored = admit::probe_inits(conn, org, &items)?;
                Ok((items, stored))
            })
            .await?;
        let count = items.len();
        let (outcomes, _) = log
            .append(Kind::ChannelInit, org.0, count, move |pending, seq| {
                let stored = if probed_at < pending.floor {
                    admit::probe_inits(&pending.probe, org, &items)?
                } else {
                    stored
                };
                let mut outcomes = Vec::with_capacity(count);
                let mut fresh = Vec::with_capacity(count);
                for ((init, bytes), stored) in items.iter().zip(encoded).zip(stored) {
                    let outcome =
                        admit::admit_init(&mut pending.channel, org, init, stored, &rules, seq);
                    if outcome == ItemOutcome::Accepted {
                        fresh.push(bytes);
                    }
                    outcomes.push(outcome);
                }
                Ok(Admitted {
                    items: fresh,
                    answer: outcomes,
                })
            })
            .await?;
        Ok(outcomes)
    }

    async fn ingest_events(
        &self,
        org: OrgId,
        events: Vec<KpiEvent>,
        rules: ChannelRules,
    ) -> Result<Vec<EventOutcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let log = self.log()?.clone();
        self.await_recovery().await?;
        let encoded: Vec<Vec<u8>> = events.iter().map(write::encode_event).collect();
        let probed_at = self.materialised(Kind::ChannelEvents);
        let (events, stored) = self
            .read(move |conn| {
                let stored = admit::probe_events(conn, org, &events)?;
                Ok((events, stored))
            })
            .await?;
        let count = events.len();
        let (outcomes, _) = log
            .append(Kind::ChannelEvents, org.0, count, move |pending, seq| {
                let stored = if probed_at < pending.floor {
                    admit::probe_events(&pending.probe, org, &events)?
                } else {
                    stored
                };
                let mut outcomes = Vec::with_capacity(count);
                let mut fresh = Vec::with_capacity(count);
                for ((index, event), bytes) in events.iter().enumerate().zip(encoded) {
                    let provider = admit::event_provider(&pending.channel, &stored, org, event)
                        .map(str::to_owned);
                    let decided = |outcome| EventOutcome {
                        outcome,
                        provider: provider.clone(),
                    };
                    if provider.is_some()
                        && let Some(refusal) = admit::check_provider(&rules, provider.as_deref())
                    {
                        outcomes.push(decided(refusal));
                        continue;
                    }
                    let key = write::event_key(&pending.hasher, org, event);
                    if stored.exists[index] || pending.contains(Kind::ChannelEvents, key) {
                        outcomes.push(decided(ItemOutcome::Duplicate));
                        continue;
                    }
                    pending.insert(Kind::ChannelEvents, key, seq);
                    fresh.push(bytes);
                    outcomes.push(decided(ItemOutcome::Accepted));
                }
                Ok(Admitted {
                    items: fresh,
                    answer: outcomes,
                })
            })
            .await?;
        Ok(outcomes)
    }

    async fn conversations(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<Conversation>, StoreError> {
        self.settle(Kind::ChannelInit, org).await?;
        self.read(move |conn| lists::conversations(conn, org, list))
            .await
    }

    async fn conversation(&self, org: OrgId, id: &str) -> Result<Option<Conversation>, StoreError> {
        self.settle(Kind::ChannelInit, org).await?;
        let id = id.to_owned();
        self.read(move |conn| load_conversation(conn, org, &id))
            .await
    }

    async fn sessions(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<(Session, Option<SessionFacts>)>, StoreError> {
        self.settle(Kind::ChannelInit, org).await?;
        self.read(move |conn| lists::sessions(conn, org, list))
            .await
    }

    async fn session(&self, org: OrgId, id: &str) -> Result<Option<SessionDetail>, StoreError> {
        self.settle(Kind::ChannelInit, org).await?;
        let id = id.to_owned();
        self.read(move |conn| lists::session(conn, org, &id)).await
    }

    async fn participants(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<Participant>, StoreError> {
        self.settle(Kind::ChannelInit, org).await?;
        self.read(move |conn| lists::participants(conn, org, list))
            .await
    }

    async fn kpi_events(
        &self,
        org: OrgId,
        list: ChannelList,
    ) -> Result<Page<KpiEvent>, StoreError> {
        self.settle(Kind::ChannelEvents, org).await?;
        self.read(move |conn| lists::kpi_events(conn, org, list))
            .await
    }

    async fn aggregate(&self, org: OrgId, query: AggregateQuery) -> Result<Vec<Row>, StoreError> {
        self.settle(Kind::ChannelEvents, org).await?;
        self.read(move |conn| rollups::aggregate(conn, org, &query))
            .await
    }

    async fn facts(&self, org: OrgId, query: FactsQuery) -> Result<Vec<SessionFacts>, StoreError> {
        self.settle(Kind::ChannelEvents, org).await?;
        self.read(move |conn| lists::facts(conn, org, query)).await
    }

    async fn dissatisfied(
        &self,
        org: OrgId,
        query: DissatisfiedQuery,
    ) -> Result<DissatisfiedPage, StoreError> {
        self.settle(Kind::ChannelEvents, org).await?;
        self.read(move |conn| lists::dissatisfied(conn, org, query))
            .await
    }

    async fn facts_with_events(
        &self,
        org: OrgId,
        names: Vec<String>,
        query: FactsQuery,
    ) -> Result<Vec<SessionFacts>, StoreError> {
        self.settle(Kind::ChannelEvents, org).await?;
        self.read(move |conn| lists::facts_with_events(conn, org, names, query))
            .await
    }

    async fn live_sessions(
        &self,
        org: OrgId,
        since: UtcMillis,
    ) -> Result<Vec<SessionFacts>, StoreError> {
        self.settle(Kind::ChannelEvents, org).await?;
        self.read(move |conn| lists::live_sessions(conn, org, since))
            .await
    }

    async fn agent_spans(
        &self,
        org: OrgId,
        since: UtcMillis,
    ) -> Result<Vec<(String, Vec<(UtcMillis, Option<UtcMillis>)>)>, StoreError> {
        self.settle(Kind::ChannelEvents, org).await?;
        self.read(move |conn| lists::agent_spans(conn, org, since))
            .await
    }

    async fn put_alert_rule(&self, org: OrgId, rule: AlertRule) -> Result<(), StoreError> {
        self.write(1, move |ctx| admin::put_alert_rule(ctx.conn, org, &rule))
            .await
    }

    async fn alert_rules(&self, org: OrgId) -> Result<Vec<AlertRule>, StoreError> {
        self.read(move |conn| admin::alert_rules(conn, org)).await
    }

    async fn delete_alert_rule(&self, org: OrgId, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(1, move |ctx| admin::delete_alert_rule(ctx.conn, org, &id))
            .await
    }

    async fn put_alert(&self, org: OrgId, alert: Alert) -> Result<(), StoreError> {
        self.write(1, move |ctx| admin::put_alert(ctx.conn, org, &alert))
            .await
    }

    async fn alerts(
        &self,
        org: OrgId,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError> {
        self.read(move |conn| admin::alerts(conn, org, open_only, limit))
            .await
    }

    async fn derivation(&self) -> Result<i64, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT version FROM derivations WHERE name = 'channel'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map(|found| found.unwrap_or(0))
            .map_err(sql_error)
        })
        .await
    }

    async fn set_derivation(&self, version: i64) -> Result<(), StoreError> {
        self.write(1, move |ctx| {
            ctx.conn
                .execute(
                    "INSERT INTO derivations (name, version) VALUES ('channel', ?1)
                     ON CONFLICT (name) DO UPDATE SET version = ?1",
                    params![version],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    async fn rebuild_analytics(
        &self,
        org: OrgId,
        progress: RebuildProgress,
    ) -> Result<RebuildSummary, StoreError> {
        // What the log holds for the org is applied first, then rebuilt.
        self.settle(Kind::ChannelEvents, org).await?;
        self.write(1, move |ctx| {
            for table in rollups::TABLES.iter().chain(&["ch_contrib", "ch_facts"]) {
                ctx.conn
                    .execute(
                        &format!("DELETE FROM {table} WHERE org_id = ?1"),
                        params![org.0],
                    )
                    .map_err(sql_error)?;
            }
            Ok(())
        })
        .await?;
        let (sessions, agents): (Vec<String>, Vec<String>) = self
            .read(move |conn| {
                let ids = |sql: &str| -> Result<Vec<String>, StoreError> {
                    let mut statement = conn.prepare(sql).map_err(sql_error)?;
                    statement
                        .query_map(params![org.0], |r| r.get(0))
                        .map_err(sql_error)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(sql_error)
                };
                Ok((
                    ids("SELECT id FROM ch_sessions WHERE org_id = ?1 ORDER BY rid")?,
                    ids(
                        "SELECT DISTINCT participant_id FROM ch_events WHERE org_id = ?1
                           AND name IN ('AgentSignedIn', 'AgentSignedOut')
                           AND participant_id IS NOT NULL",
                    )?,
                ))
            })
            .await?;
        let total = sessions.len() + agents.len();
        let mut done = 0;
        progress(0, total);
        for chunk in sessions.chunks(REBUILD_CHUNK) {
            let chunk = chunk.to_vec();
            let count = chunk.len();
            self.write(count, move |ctx| {
                let mut pending = Pending::default();
                for id in &chunk {
                    rederive_session(ctx.conn, org, id, None, &mut pending)?;
                }
                pending.flush(ctx.conn)
            })
            .await?;
            done += count;
            progress(done, total);
        }
        for chunk in agents.chunks(REBUILD_CHUNK) {
            let chunk = chunk.to_vec();
            let count = chunk.len();
            self.write(count, move |ctx| {
                let mut pending = Pending::default();
                for agent in &chunk {
                    rederive_agent(ctx.conn, org, agent, &mut pending)?;
                }
                pending.flush(ctx.conn)
            })
            .await?;
            done += count;
            progress(done, total);
        }
        let buckets: i64 = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT COUNT(*) FROM ch_agg WHERE org_id = ?1",
                    params![org.0],
                    |r| r.get(0),
                )
                .map_err(sql_error)
            })
            .await?;
        Ok(RebuildSummary {
            sessions: sessions.len(),
            agents: agents.len(),
            buckets: buckets as usize,
        })
    }
}
