//! A power cut, simulated. The data directory is an ext4 filesystem on a
//! loop device, mounted with a 60 s journal commit interval, and
//! `xfs_io -x -c shutdown` stops it without flushing its journal (the way
//! xfstests simulates a power failure): from then on the disk holds exactly
//! what was fsynced, and everything else in the page cache is dropped. The
//! server is then killed, the filesystem mounted again, and the server
//! started on it.
//!
//! Every item of all three pillars acknowledged before the cut must be
//! found once after it. A real power cut stops the server with the disk;
//! this one leaves the server running, and a flush that straddles the
//! shutdown can return success for what the stopped journal never kept.
//! Under load such 200s, read after the cut began, were seen whose items
//! were gone after the remount, while every item answered before it
//! survived. So the senders stop counting the moment before the cut
//! ([`super::load::Cutoff`]); what is answered later is reported, not
//! required. The negative control makes the same cut with the
//! server under `eatmydata`, which turns every fsync into nothing: the same
//! reads must then find acknowledged items missing (or the server unable to
//! start), or the test could not see the loss it exists to catch.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::channel::Acknowledged;
use super::common::{Server, create_policy};
use super::load::{Late, Round, check_found_once, load_until, verify_and_rebuild};
use super::portal;

/// An ext4 filesystem in a file, mounted through a loop device.
struct Ext4 {
    image: tempfile::NamedTempFile,
    mount: tempfile::TempDir,
}

fn run(program: &str, args: &[&str], path: &Path) {
    let status = Command::new(program)
        .args(args)
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test installs it)"));
    assert!(
        status.success(),
        "{program} {args:?} {} failed (loop mounts need root, as in CI)",
        path.display()
    );
}

impl Ext4 {
    fn new() -> Self {
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(512 << 20).unwrap();
        run("mkfs.ext4", &["-q", "-F", "-m", "0"], image.path());
        let fs = Self {
            image,
            mount: tempfile::tempdir().unwrap(),
        };
        fs.mount();
        fs
    }

    fn mount(&self) {
        let status = Command::new("mount")
            .args(["-o", "loop,commit=60"])
            .arg(self.image.path())
            .arg(self.mount.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -o loop (needs root, as in CI)");
    }

    fn path(&self) -> &Path {
        self.mount.path()
    }

    /// The power cut: the filesystem stops where its last sync left it.
    fn cut(&self) {
        run("xfs_io", &["-x", "-c", "shutdown"], self.path());
    }

    fn remount(&self) {
        run("umount", &[], self.path());
        self.mount();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mount.path()).status();
    }
}

/// What a cut lost: acknowledged items not found after it, or why the
/// server could not start.
#[derive(Debug)]
enum Lost {
    Items {
        interactions: usize,
        records: usize,
        sessions: usize,
    },
    DidNotStart,
}

/// Loads all three pillars on a server started under `wrapper`, cuts the
/// power mid-load, kills the server, remounts, and starts it again.
async fn cut_mid_load(
    fs: &Ext4,
    wrapper: &[&str],
) -> (PathBuf, String, Round, Result<Server, String>) {
    let dir = fs.path().join("data");
    let (key, _) = create_policy(&dir, "app", "write,read,manage");
    // What the test sets up before the load is on the disk, whatever the
    // server does with fsync.
    run("sync", &["-f"], &dir);
    let server = Server::start_under(wrapper, &dir);
    let http = reqwest::Client::new();
    let contacts: Vec<usize> = (0..portal::CONTACTS).collect();
    portal::add_cases(&http, &server, &key, &contacts).await;
    let round = load_until(&server, &key, 0, |cutoff| async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // A real power cut takes the server with it: nothing answered
        // from here on was an acknowledgement a client could receive.
        cutoff.set();
        fs.cut();
    })
    .await;
    server.kill_hard();
    assert!(
        !round.interactions.is_empty() && !round.records.is_empty(),
        "nothing was acknowledged before the cut"
    );
    fs.remount();
    let restarted = Server::try_start(&[], &[], &dir);
    (dir, key, round, restarted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_item_survives_a_power_cut() {
    let fs = Ext4::new();
    let (dir, key, round, server) = cut_mid_load(&fs, &[]).await;
    let server = server.unwrap_or_else(|e| panic!("after a power cut: {e}"));
    let http = reqwest::Client::new();
    let server = check_found_once(&http, server, &dir, &key, &[&round]).await;
    // What the server answered after the cut began is reported, not
    // required: no real client could have been told it.
    let late = round.late.len();
    let late_lost = count_lost(&server, &key, &late_round(&round.late)).await;
    assert!(server.terminate().success());
    let cells = verify_and_rebuild(&dir, "a power cut");
    eprintln!(
        "power cut: acknowledged and found once: {} interactions, {} audit records, \
         {} sessions; {cells} derived cells equal to a rebuild; {late} items answered \
         after the cut began, of which lost: {late_lost:?}",
        round.interactions.len(),
        round.records.len(),
        round.channel.sessions.len()
    );
}

/// The negative control: without fsync, the same cut loses acknowledged
/// items, and the same reads see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_power_cut_test_sees_the_loss_when_fsync_is_disabled() {
    let fs = Ext4::new();
    let (_dir, key, round, server) = cut_mid_load(&fs, &["eatmydata"]).await;
    let lost = match server {
        Err(error) => {
            eprintln!("power cut under eatmydata: {error}");
            Lost::DidNotStart
        }
        Ok(server) => {
            let lost = count_lost(&server, &key, &round).await;
            assert!(server.terminate().success());
            lost
        }
    };
    eprintln!("power cut under eatmydata: {lost:?}");
    assert!(
        !matches!(
            lost,
            Lost::Items {
                interactions: 0,
                records: 0,
                sessions: 0
            }
        ),
        "with fsync disabled a power cut lost nothing that was acknowledged: \
         the power-cut test cannot see a loss"
    );
}

/// The items answered after the cut, as a round to look for.
fn late_round(late: &Late) -> Round {
    Round {
        interactions: late.interactions.clone(),
        records: late.records.clone(),
        channel: Acknowledged {
            sessions: late.sessions.clone(),
            events: Default::default(),
        },
        late: Late::default(),
    }
}

/// Every value of `field` across the pages of `path`; `None` when a page
/// cannot be read.
async fn paged(
    http: &reqwest::Client,
    server: &Server,
    key: &str,
    path: &str,
    field: &str,
) -> Option<HashSet<String>> {
    let mut found = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = server.url(path);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let response = http
            .get(url)
            .basic_auth("app", Some(key))
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        let page: Value = response.json().await.ok()?;
        for item in page["items"].as_array()? {
            found.insert(item[field].as_str()?.to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Some(found),
        }
    }
}

/// Acknowledged items of the round not found, by pillar (all of a pillar
/// when its reads fail).
async fn count_lost(server: &Server, key: &str, round: &Round) -> Lost {
    let http = reqwest::Client::new();
    let mut found: HashSet<String> = HashSet::new();
    for contact in 0..portal::CONTACTS {
        let path = format!("/api/v1/contacts/chaos-{contact}/interactions?limit=1000");
        found.extend(
            paged(&http, server, key, &path, "portal_interactionid")
                .await
                .unwrap_or_default(),
        );
    }
    let interactions = round
        .interactions
        .iter()
        .filter(|(_, id)| !found.contains(id))
        .count();
    let ids = paged(
        &http,
        server,
        key,
        "/api/v1/audit/search?user=chaos-audit-0&limit=1000",
        "Id",
    )
    .await
    .unwrap_or_default();
    let records = round.records.iter().filter(|id| !ids.contains(*id)).count();
    let mut sessions = 0;
    for session in &round.channel.sessions {
        let status = http
            .get(server.url(&format!("/api/v1/sessions/{session}")))
            .basic_auth("app", Some(key))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status != 200 {
            sessions += 1;
        }
    }
    Lost::Items {
        interactions,
        records,
        sessions,
    }
}
