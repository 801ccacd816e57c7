//! The conformance suite against the embedded SQLite backend, one fresh data
//! directory per test.

use tracklog_store::Stores;
use tracklog_store::sqlite::{SqliteOptions, SqliteStore};

fn fresh_sqlite_stores() -> Stores {
    // The directory lives as long as the test process; each test gets its own.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    SqliteStore::open_stores(&dir, SqliteOptions::default()).expect("open store")
}

tracklog_store::conformance_suite!(fresh_sqlite_stores());
