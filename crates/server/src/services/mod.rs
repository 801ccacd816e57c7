//! Management services shared by the HTTP API, the web UI and the CLI. They
//! know nothing of HTTP: each takes the stores and an [`Actor`] and records
//! what it did in the activity log.

pub mod audit;
pub mod policies;
pub mod selfaudit;
pub mod users;

pub use selfaudit::Actor;
