//! `tracklog doctor`: every check of a data directory in one command, with
//! its findings printed. It reads only, and works beside a running server.
//!
//! 1. The database: SQLite's full `integrity_check`.
//! 2. The log: every frame of every segment read and its checksum checked,
//!    with the sequence running on from one segment to the next.
//! 3. Tracklog's own invariants: no materialiser past the log's end.
//! 4. The activity log of every org, verified as `tracklog audit verify`
//!    does (chain, checkpoints, search columns, indexes, free text).
//!
//! The exit status is 0 when nothing is wrong, 1 when something is.

use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use serde::Serialize;
use tracklog_server::config::Config;
use tracklog_server::services::{audit, signing_key};
use tracklog_store::sqlite::DB_FILE;
use tracklog_store::sqlite::doctor::{Depth, check_database, watermarks};

/// One part of the check and what it found.
#[derive(Debug, Serialize)]
struct Section {
    name: &'static str,
    /// What was checked, in a few words.
    checked: String,
    problems: Vec<String>,
    /// Facts worth knowing that are not problems.
    notes: Vec<String>,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    data_dir: String,
    ok: bool,
    sections: Vec<Section>,
}

pub async fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    if !dir.join(DB_FILE).exists() {
        bail!(
            "{} holds no Tracklog data ({DB_FILE} is missing)",
            dir.display()
        );
    }
    let mut sections = Vec::new();

    let started = Instant::now();
    let problems = check_database(&dir.join(DB_FILE), Depth::Full);
    let database_ok = problems.is_empty();
    sections.push(Section {
        name: "database",
        checked: format!("{DB_FILE}: SQLite integrity_check"),
        problems,
        notes: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
    });

    let started = Instant::now();
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    let log_dir = dir.join("log");
    let (frames, head) =
        tracklog_store::log::segment::check_dir(&log_dir, &mut problems, &mut notes);
    sections.push(Section {
        name: "log",
        checked: format!("{frames} frames read and their checksums checked"),
        problems,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    });

    if database_ok {
        let started = Instant::now();
        let (problems, notes) = materialisers(&dir.join(DB_FILE), head);
        sections.push(Section {
            name: "materialisers",
            checked: "each watermark against the log's end".into(),
            problems,
            notes,
            seconds: started.elapsed().as_secs_f64(),
        });
        sections.push(activity_log(config).await);
    }

    let report = Report {
        data_dir: dir.display().to_string(),
        ok: sections.iter().all(|s| s.problems.is_empty()),
        sections,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if !report.ok {
        let count: usize = report.sections.iter().map(|s| s.problems.len()).sum();
        bail!("{count} problems found in {}", report.data_dir);
    }
    Ok(())
}

fn print_report(report: &Report) {
    println!("tracklog doctor: {}", report.data_dir);
    for section in &report.sections {
        let verdict = if section.problems.is_empty() {
            "ok".to_owned()
        } else {
            format!("{} PROBLEMS", section.problems.len())
        };
        println!(
            "  {:<14} {verdict:<12} {} ({:.1} s)",
            section.name, section.checked, section.seconds
        );
        for problem in &section.problems {
            println!("      problem: {problem}");
        }
        for note in &section.notes {
            println!("      note: {note}");
        }
    }
    if !report.ok {
        println!(
            "Restore the damaged files from a backup before starting Tracklog on this directory."
        );
    }
}

fn materialisers(db: &Path, head: Option<u64>) -> (Vec<String>, Vec<String>) {
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    match watermarks(db) {
        Err(error) => problems.push(format!("cannot read the watermarks: {error}")),
        Ok(rows) => {
            for (name, frame) in rows {
                match head {
                    Some(head) if frame > head => problems.push(format!(
                        "the {name} materialiser has applied frame {frame}, but the log ends at \
                         {head}: the log directory was replaced or lost frames"
                    )),
                    Some(head) if frame < head => notes.push(format!(
                        "the {name} materialiser is {} frames behind the log (applied at the next start)",
                        head - frame
                    )),
                    _ => notes.push(format!("{name}: at frame {frame}")),
                }
            }
        }
    }
    (problems, notes)
}

async fn activity_log(config: &Config) -> Section {
    let started = Instant::now();
    let mut section = Section {
        name: "activity log",
        checked: String::new(),
        problems: Vec::new(),
        notes: Vec::new(),
        seconds: 0.0,
    };
    // `execute` has turned the check at start off for every command but
    // `serve`: the database was checked in full above.
    let stores = match tracklog_server::open_stores(config) {
        Ok(stores) => stores,
        Err(error) => {
            section
                .problems
                .push(format!("cannot open the store: {error}"));
            return section;
        }
    };
    let (mut records, mut checkpoints) = (0, 0);
    match stores.meta.list_orgs().await {
        Ok(orgs) => {
            for org in &orgs {
                let name = org.name.as_str();
                let key = match signing_key::verifying_key_for(config, &stores, org.id).await {
                    Ok(key) => key,
                    Err(error) => {
                        section.problems.push(format!(
                            "org {}: cannot read the signing key: {error}",
                            org.name
                        ));
                        continue;
                    }
                };
                match audit::verify(&stores, &key, org.id, name, None, None).await {
                    Ok(result) => {
                        records += result.records_checked;
                        checkpoints += result.checkpoints_checked;
                        if let Some(found) = result.first_break {
                            section.problems.push(match found.object {
                                Some(object) if found.sequence == 0 => {
                                    format!("org {}: {object}: {}", org.name, found.message)
                                }
                                _ => format!(
                                    "org {}: at sequence {}: {}",
                                    org.name, found.sequence, found.message
                                ),
                            });
                        }
                    }
                    Err(error) => section
                        .problems
                        .push(format!("org {}: cannot verify: {error}", org.name)),
                }
            }
            section.checked = format!(
                "{} orgs: {records} records and {checkpoints} checkpoints verified",
                orgs.len()
            );
        }
        Err(error) => section.problems.push(format!("cannot list orgs: {error}")),
    }
    stores.lifecycle.close().await;
    section.seconds = started.elapsed().as_secs_f64();
    section
}
