//! # tracklog-domain
//!
//! The vocabulary of Tracklog as typed values, and the rules that apply to them.
//! Nothing here performs I/O: every function is pure and unit-tested, so the
//! server and the stores can rely on a value once it exists.
//!
//! - [`time`]: UTC millisecond timestamps, RFC 3339 in and out.
//! - [`ids`]: identifiers (org, portal, contact, session, interaction, policy, user).
//! - [`interaction`]: portal interactions, the four built-in types, and the decoder
//!   that turns one untrusted JSON item into an [`interaction::Interaction`] or a
//!   [`ingest::Rejection`].
//! - [`ingest`]: request bodies (object, array, NDJSON) split into items, per-item
//!   outcomes, reasons and limits.
//! - [`segment`]: Segment-spec messages (track, page, identify, batch) mapped onto
//!   interaction and contact objects.
//! - [`auth`]: rights, Azure SAS tokens (sign, parse, verify) and Basic credentials.
//! - [`audit`]: the activity-log record of PRODUCT.md §5.1 and its categorisation.
//! - [`portal`]: portals, their origins and public keys, and interaction-type
//!   definitions (built-in and custom).
//! - [`cursor`]: opaque paging cursors, encoded and decoded.
//! - [`escape`]: escaping for CSV, CEF and syslog lines, so that no value can
//!   break a line or run as a spreadsheet formula.
//! - [`contact`]: contacts (profiles) and support cases.
//! - [`journey`]: what a contact did before a case, grouped for an agent.
//! - [`user`]: roles of people who sign in to the web UI.
//! - [`channel`]: channel analytics — the provider payloads, KPI event
//!   definitions, session facts, the metric catalogue and DST-aware intervals.
//! - [`forecast`]: per-interval volume forecasts (double-seasonal Holt-Winters)
//!   and their backtest.
//! - [`staffing`]: Erlang C: agents needed for a service-level target.

pub mod audit;
pub mod auth;
pub mod channel;
pub mod contact;
pub mod cursor;
pub mod escape;
pub mod forecast;
pub mod ids;
pub mod ingest;
pub mod interaction;
pub mod journey;
pub mod portal;
pub mod segment;
pub mod staffing;
pub mod time;
pub mod user;
