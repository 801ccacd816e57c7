//! The derived tables of a data directory, compared cell by cell with those
//! that `tracklog analytics rebuild` makes from the raw rows on a copy.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::types::Value as Cell;
use rusqlite::{Connection, OpenFlags};

use super::channel::close;
use super::common::tracklog;

/// Every table the channel materialiser derives: session facts, each
/// session's contributions, and the rollups at every grain.
const DERIVED: [&str; 6] = [
    "ch_facts",
    "ch_contrib",
    "ch_agg",
    "ch_agg_q",
    "ch_agg_h",
    "ch_agg_hq",
];

/// A table's rows by primary key (every column but the sums and counts),
/// with the rest of their cells.
fn rows(conn: &Connection, table: &str) -> BTreeMap<Vec<String>, Vec<Cell>> {
    let mut statement = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
    let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
    // `ch_agg_hq` keeps a sum and a count per part, as `s<code>` and
    // `c<code>`.
    let measure = |name: &str| {
        matches!(name, "sum" | "count")
            || name
                .strip_prefix(['s', 'c'])
                .is_some_and(|code| !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut rows = statement.query([]).unwrap();
    let mut out = BTreeMap::new();
    while let Some(row) = rows.next().unwrap() {
        let mut key = Vec::new();
        let mut cells = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let cell: Cell = row.get(i).unwrap();
            if measure(name) {
                cells.push(cell);
            } else {
                key.push(format!("{name}={cell:?}"));
            }
        }
        out.insert(key, cells);
    }
    out
}

fn same_cell(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Real(x), Cell::Real(y)) => close(*x, *y),
        (Cell::Real(x), Cell::Integer(y)) | (Cell::Integer(y), Cell::Real(x)) => {
            close(*x, *y as f64)
        }
        _ => a == b,
    }
}

/// Copies the stopped server's data directory, rebuilds the copy's
/// analytics from its raw rows, and requires every derived table to equal
/// the original cell by cell (sums up to the order they were added in).
/// Returns how many cells were compared.
pub fn equal_to_a_rebuild(data_dir: &Path) -> usize {
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", data_dir.display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let output = tracklog(copy.path(), &["analytics", "rebuild"]);
    assert!(
        output.status.success(),
        "analytics rebuild: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let open = |dir: &Path| {
        Connection::open_with_flags(dir.join("tracklog.db"), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
    };
    let (kept, rebuilt) = (open(data_dir), open(copy.path()));
    let mut cells = 0;
    for table in DERIVED {
        let (a, b) = (rows(&kept, table), rows(&rebuilt, table));
        let missing: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).take(3).collect();
        let extra: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).take(3).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{table}: rows the rebuild has and the kept table lacks: {missing:?}; rows only kept: {extra:?}"
        );
        for (key, cells_a) in &a {
            let cells_b = &b[key];
            cells += key.len() + cells_a.len();
            assert!(
                cells_a.len() == cells_b.len()
                    && cells_a.iter().zip(cells_b).all(|(x, y)| same_cell(x, y)),
                "{table} {key:?}: kept {cells_a:?}, rebuilt {cells_b:?}"
            );
        }
        assert!(!a.is_empty(), "{table} is empty: the test derived nothing");
    }
    cells
}
