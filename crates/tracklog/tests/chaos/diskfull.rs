//! The disk fills while all three pillars ingest. The data directory is a
//! small tmpfs, filled by a file of zeros until only a little more than
//! the log's reserve (`ingest.log_min_free_bytes`) is left.
//!
//! Once the reserve is reached, every write is answered 503 with
//! Retry-After and `/readyz` says the disk is full, while every item
//! acknowledged so far is applied and served by reads. When the file is
//! deleted, writes resume by themselves. Every acknowledged item is then
//! found once, before and after a kill -9, the activity log verifies, and
//! the derived channel tables equal a rebuild.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::common::{Server, create_policy};
use super::load::{
    check_found_once, load, metric, refused_everywhere, verify_and_rebuild, wait_ready,
};
use super::{audit, channel, portal};

const RESERVE: u64 = 8 << 20;

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (scripts/test runs as root in CI)"
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills what is left but `leave` bytes with a file of zeros; returns
    /// the file, whose removal frees the space again.
    pub fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.path().join("filler");
        let size = self.free_bytes().saturating_sub(leave);
        std::fs::write(&filler, vec![0u8; size as usize]).unwrap();
        if leave == 0 {
            // To the last byte: whatever rounding `df` did is taken too.
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&filler)
                .unwrap();
            while file.write_all(&[0u8; 4096]).is_ok() {}
        }
        filler
    }

    pub fn free_bytes(&self) -> u64 {
        let output = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(self.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|line| line.trim().parse().ok())
            .expect("df's free bytes")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_resumes_when_space_is_freed() {
    let disk = Tmpfs::mount("96m");
    let dir: PathBuf = disk.path().join("data");
    let (key, _) = create_policy(&dir, "app", "write,read,manage");
    let http = reqwest::Client::new();
    let reserve = RESERVE.to_string();
    let server = Server::start_with(
        &[],
        &[("TRACKLOG_INGEST__LOG_MIN_FREE_BYTES", reserve.as_str())],
        &dir,
    );
    for round in [0, 1] {
        let contacts: Vec<usize> =
            (round * portal::CONTACTS..(round + 1) * portal::CONTACTS).collect();
        portal::add_cases(&http, &server, &key, &contacts).await;
    }
    // Leave 3 MiB above the reserve.
    let filler = disk.path().join("filler");
    let fill = disk.free_bytes().saturating_sub(RESERVE + (3 << 20));
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();

    // Round 0: load until the disk is full.
    let started = Instant::now();
    let full = load(&server, &key, 0, async {
        loop {
            let response = http.get(server.url("/readyz")).send().await.unwrap();
            if response.status() == 503 && response.text().await.unwrap().contains("disk is full") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the disk was not full after 60 s of load"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        !full.interactions.is_empty() && !full.records.is_empty(),
        "nothing was acknowledged before the disk filled"
    );

    // While it is full: writes are refused, reads are served.
    refused_everywhere(&http, &server, &key, "on a full disk").await;
    assert_eq!(
        metric(&http, &server, "tracklog_storage_faulted").await,
        1.0
    );
    let contacts: Vec<usize> = (0..portal::CONTACTS).collect();
    let mut interactions = std::collections::HashMap::new();
    for (contact, id) in &full.interactions {
        interactions
            .entry(*contact)
            .or_insert_with(Vec::new)
            .push(id.clone());
    }
    portal::check(&http, &server, &key, &interactions, &contacts, 0).await;
    let records = std::collections::HashMap::from([(0, full.records.clone())]);
    audit::check(&http, &server, &key, &records, 0..1, 0).await;
    channel::check(&http, &server, &key, &full.channel, 0).await;

    // Space is freed: writes resume without a restart.
    std::fs::remove_file(&filler).unwrap();
    wait_ready(&http, &server, "space was freed").await;
    let after = load(&server, &key, 1, async {
        tokio::time::sleep(Duration::from_millis(600)).await;
    })
    .await;
    assert!(
        !after.interactions.is_empty() && !after.records.is_empty(),
        "nothing was acknowledged after space was freed"
    );

    let server = check_found_once(&http, server, &dir, &key, &[&full, &after]).await;
    assert!(server.terminate().success());
    let cells = verify_and_rebuild(&dir, "the disk filled");
    eprintln!(
        "disk full: acknowledged and found once: {} + {} interactions, {} + {} audit records, \
         {} + {} sessions, before the disk filled and after space was freed; \
         {cells} derived cells equal to a rebuild",
        full.interactions.len(),
        after.interactions.len(),
        full.records.len(),
        after.records.len(),
        full.channel.sessions.len(),
        after.channel.sessions.len(),
    );
    drop(disk);
}
