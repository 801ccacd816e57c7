//! Management services shared by the HTTP API, the web UI and the CLI. They
//! know nothing of HTTP: each takes the stores and an [`Actor`] and records
//! what it did in the activity log.

pub mod alerts;
pub mod analytics;
pub mod audit;
pub mod channel;
pub mod forecast;
pub mod policies;
pub mod portals;
pub mod realtime;
pub mod reports;
pub mod selfaudit;
pub mod signing_key;
pub mod users;

pub use selfaudit::Actor;

use tracklog_domain::contact::RecordError;
use tracklog_store::StoreError;

/// Why a management service refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input is well-formed but not acceptable; names the field.
    #[error(transparent)]
    Invalid(#[from] RecordError),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
