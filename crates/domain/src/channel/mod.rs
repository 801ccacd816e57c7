//! Channel analytics: what channel providers (telephony, chat, SMS) log about
//! conversations, and the KPIs a contact centre reads from it.
//!
//! - [`payload`]: the `initLogAnalytics` and `logAnalyticsEvent` payloads of
//!   PRODUCT.md §4.2, parsed into typed records at the edge.
//! - [`definitions`]: the built-in KPI event definitions and custom ones.
//! - [`facts`]: a session's facts (queued, answered, closed, hold, wrap-up,
//!   handle time, abandon...) derived from its record and all its events.
//!   Derivation sorts its input, so the facts never depend on arrival order.
//! - [`metrics`]: the metric catalogue as data (§6.1) and the contributions
//!   each session or agent makes to the pre-aggregated buckets.
//! - [`query`]: a metrics query as sent, parsed into metrics, a range, an
//!   interval, a zone and dimensions; [`query_schema`] (with the `openapi`
//!   feature) documents the values it takes.
//! - [`series`]: the fold of those buckets into a query's series, one point
//!   per interval.
//! - [`interval`]: query intervals aligned in an IANA time zone, DST-aware.
//! - [`sentiment`]: the seven sentiment bands and what a session's
//!   `SentimentUpdated` events amount to.
//! - [`alerts`]: threshold rules, their states and the predictive breach.

pub mod alerts;
pub mod definitions;
pub mod facts;
pub mod interval;
pub mod metrics;
pub mod payload;
pub mod query;
#[cfg(feature = "openapi")]
pub mod query_schema;
pub mod sentiment;
pub mod series;
mod series_json;
