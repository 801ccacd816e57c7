//! Checks of the files on disk, made without opening the store: SQLite's
//! own check of the database's structure, and a read of every frame of the
//! log. The server runs the quick form before it starts
//! (`storage.check_at_start`), and refuses to start on a damaged file, so
//! that it never serves answers read from damaged pages; `tracklog doctor`
//! runs the full form and prints every finding.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::DB_FILE;
use crate::StoreError;

/// How thoroughly the database is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `PRAGMA quick_check`: every page and record, without matching each
    /// index against its table.
    Quick,
    /// `PRAGMA integrity_check`: also every index entry against its row.
    Full,
}

/// The problems SQLite finds in the database at `path` (empty when it is
/// sound). Opens it without creating it, and reads only.
pub fn check_database(path: &Path, depth: Depth) -> Vec<String> {
    if !path.exists() {
        return vec![format!("{} does not exist", path.display())];
    }
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(conn) => conn,
        Err(error) => return vec![format!("cannot open: {error}")],
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(30));
    let pragma = match depth {
        Depth::Quick => "PRAGMA quick_check(100)",
        Depth::Full => "PRAGMA integrity_check(100)",
    };
    let rows: Result<Vec<String>, rusqlite::Error> = conn
        .prepare(pragma)
        .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect());
    match rows {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Vec::new(),
        Ok(rows) => rows,
        Err(error) => vec![format!("the check itself failed: {error}")],
    }
}

/// Each materialiser's watermark (the last log frame it applied), read
/// from the database at `path` beside a running server.
pub fn watermarks(path: &Path) -> Result<Vec<(String, u64)>, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| e.to_string())?;
    conn.prepare("SELECT name, frame FROM materialised ORDER BY name")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
                .collect()
        })
        .map_err(|e| e.to_string())
}

/// Refuses to go on when the quick check finds the database of
/// `data_dir` damaged, with a message that names the file and what to do.
pub(crate) fn refuse_if_damaged(data_dir: &Path) -> Result<(), StoreError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Ok(());
    }
    let problems = check_database(&path, Depth::Quick);
    if problems.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = problems.iter().take(5).map(String::as_str).collect();
    Err(StoreError::Internal(format!(
        "{} is damaged ({}{}). Tracklog does not start on a damaged database, so that it never \
         serves answers read from damaged pages. Restore {DB_FILE} (with {DB_FILE}-wal, if there \
         is one) from a backup; `tracklog doctor --data-dir {}` lists every finding. \
         storage.check_at_start = false skips this check.",
        path.display(),
        shown.join("; "),
        if problems.len() > shown.len() {
            format!("; and {} more", problems.len() - shown.len())
        } else {
            String::new()
        },
        data_dir.display(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn a_damaged_page_is_found_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
                 CREATE INDEX t_v ON t (v);",
            )
            .unwrap();
            let mut insert = conn.prepare("INSERT INTO t (v) VALUES (?1)").unwrap();
            for n in 0..5_000 {
                insert
                    .execute([format!("value {n} {}", "x".repeat(40))])
                    .unwrap();
            }
        }
        assert!(check_database(&path, Depth::Full).is_empty());
        assert!(refuse_if_damaged(dir.path()).is_ok());
        // A torn page: the second half of page 5 zeroed.
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(4 * 4096 + 2048)).unwrap();
        file.write_all(&[0u8; 2048]).unwrap();
        // A flipped page header: page 9's type byte.
        file.seek(SeekFrom::Start(8 * 4096)).unwrap();
        file.write_all(&[0x11]).unwrap();
        drop(file);
        assert!(!check_database(&path, Depth::Quick).is_empty());
        assert!(!check_database(&path, Depth::Full).is_empty());
        let StoreError::Internal(message) = refuse_if_damaged(dir.path()).unwrap_err() else {
            panic!("not Internal");
        };
        assert!(
            message.contains(&path.display().to_string()) && message.contains("backup"),
            "{message}"
        );
    }
}
