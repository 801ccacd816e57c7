//! The activity log verified by someone who trusts neither the server nor
//! its data directory: the signing key lives outside the data directory,
//! every checkpoint is appended to a file outside it, and `tracklog audit
//! verify --public-key --checkpoints --export` checks what the server
//! exported against them. A lying server's forged page, forged checkpoint
//! or truncated export must fail it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{BIN, Server, create_policy, tracklog};

/// Runs `tracklog audit verify` in standalone mode; no data directory is
/// given, so none can be trusted by mistake.
fn verify(dir: &Path, export: &Path, as_of: Option<&str>) -> (bool, String) {
    let mut command = Command::new(BIN);
    command
        .args(["audit", "verify", "--public-key"])
        .arg(dir.join("public.key"))
        .arg("--checkpoints")
        .arg(dir.join("checkpoints.jsonl"))
        .arg("--export")
        .arg(export)
        .env("TRACKLOG_DATA_DIR", dir.join("no-such-data-dir"))
        .stdin(Stdio::null());
    if let Some(as_of) = as_of {
        command.args(["--as-of", as_of]);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The highest sequence a kept checkpoint of `default` vouches for.
fn kept_up_to(file: &Path) -> i64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|c| c["org"] == "default")
        .filter_map(|c| c["sequence"].as_i64())
        .max()
        .unwrap_or(0)
}

async fn wait_until_kept(file: &Path, sequence: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while kept_up_to(file) < sequence {
        assert!(
            Instant::now() < deadline,
            "no checkpoint reached {sequence} in {}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sequence(line: &str) -> i64 {
    serde_json::from_str::<Value>(line).unwrap()["Sequence"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_verifies_against_checkpoints_kept_outside_and_a_lying_server_fails() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path();
    let data = outside.join("data");
    let (key_file, kept) = (
        outside.join("signing.key"),
        outside.join("checkpoints.jsonl"),
    );

    // A key made outside the data directory; auditors keep its public half.
    let output = tracklog(
        &data,
        &["audit", "keygen", "--out", key_file.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let public = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    std::fs::write(outside.join("public.key"), &public).unwrap();
    let again = tracklog(
        &data,
        &["audit", "keygen", "--out", key_file.to_str().unwrap()],
    );
    assert!(!again.status.success(), "keygen never overwrites a key");

    let (key, _) = create_policy(&data, "crm", "write,read");
    // A checkpoint file that cannot be written stops the start.
    let refused = Server::try_start(
        &[],
        &[
            (
                "TRACKLOG_AUDIT__SIGNING_KEY_FILE",
                key_file.to_str().unwrap(),
            ),
            (
                "TRACKLOG_AUDIT__CHECKPOINT_FILE",
                outside
                    .join("no-such-dir/checkpoints.jsonl")
                    .to_str()
                    .unwrap(),
            ),
        ],
        &data,
    );
    if let Ok(mut started) = refused {
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = started.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the server kept running with an unwritable checkpoint file"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success());
    }

    let server = Server::start_with(
        &[],
        &[
            (
                "TRACKLOG_AUDIT__SIGNING_KEY_FILE",
                key_file.to_str().unwrap(),
            ),
            ("TRACKLOG_AUDIT__CHECKPOINT_FILE", kept.to_str().unwrap()),
            ("TRACKLOG_AUDIT__CHECKPOINT_EVERY_SECONDS", "1"),
        ],
        &data,
    );
    let http = reqwest::Client::new();
    let served: Value = http
        .get(server.url("/api/v1/audit/public-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        served["public_key"],
        public.as_str(),
        "the server signs with the external key"
    );
    assert!(
        !data.join("audit-signing.key").exists(),
        "no key was made in the data directory"
    );

    for batch in 0..3 {
        let records: Vec<Value> = (0..40)
            .map(|i| {
                json!({"Id": format!("r-{batch}-{i}"), "CreationTime": "2026-12-01T10:00:00Z",
                       "Operation": "Update", "User": format!("user{}@x", i % 4),
                       "EntityName": "account", "EntityId": format!("a-{i}"),
                       "Fields": {"name": {"old": "x", "new": format!("y{i}")}}})
            })
            .collect();
        let response = http
            .post(server.url("/api/v1/audit/records"))
            .basic_auth("crm", Some(&key))
            .json(&records)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let all: Value = http
        .get(server.url("/api/v1/audit/search?limit=1"))
        .basic_auth("crm", Some(&key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Sequences run from 1 without gaps: the last is the count.
    let head = all["count"].as_i64().unwrap();
    assert!(head >= 120, "{all}");
    wait_until_kept(&kept, head).await;

    // The auditor notes the time, then takes the export from the server.
    let as_of = jiff::Timestamp::now().to_string();
    let body = http
        .get(server.url("/api/v1/audit/export?format=jsonl"))
        .basic_auth("crm", Some(&key))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let export = outside.join("export.jsonl");
    std::fs::write(&export, &body).unwrap();
    let last = body.lines().map(sequence).max().unwrap();
    assert_eq!(
        body.lines().count() as i64,
        last,
        "the whole log, from sequence 1"
    );

    let (ok, text) = verify(outside, &export, Some(&as_of));
    assert!(ok, "{text}");
    assert!(
        text.starts_with(&format!("ok: {last} records of default")),
        "{text}"
    );

    // The export's own record is checkpointed later: without the time the
    // export was taken, a later checkpoint makes it look truncated.
    wait_until_kept(&kept, last + 1).await;
    let (ok, text) = verify(outside, &export, None);
    assert!(!ok && text.contains("truncated"), "{text}");
    let (ok, text) = verify(outside, &export, Some(&as_of));
    assert!(ok, "{text}");

    // What a lying server might send instead, each in its own file.
    let lie = |name: &str, text: String| {
        let path = outside.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let forged_page = lie(
        "forged-page.jsonl",
        body.replacen("\"User\":\"user1@x\"", "\"User\":\"someone@else\"", 1),
    );
    assert_ne!(std::fs::read_to_string(&forged_page).unwrap(), body);
    let (ok, text) = verify(outside, &forged_page, Some(&as_of));
    assert!(!ok && text.contains("does not match checkpoint"), "{text}");

    let truncated = lie(
        "truncated.jsonl",
        body.lines()
            .filter(|l| sequence(l) < head)
            .map(|l| format!("{l}\n"))
            .collect(),
    );
    let (ok, text) = verify(outside, &truncated, Some(&as_of));
    assert!(!ok && text.contains("truncated"), "{text}");

    let dropped = lie(
        "dropped.jsonl",
        body.lines()
            .filter(|l| sequence(l) != 50)
            .map(|l| format!("{l}\n"))
            .collect(),
    );
    let (ok, text) = verify(outside, &dropped, Some(&as_of));
    assert!(!ok && text.contains("sequence 50 is missing"), "{text}");

    // A checkpoint the key did not sign is refused, even appended to the
    // kept file (the domain's tests sign them with an impostor's key).
    let genuine = std::fs::read_to_string(&kept).unwrap();
    let mut forged: Value = serde_json::from_str(genuine.lines().last().unwrap()).unwrap();
    forged["number"] = json!(forged["number"].as_i64().unwrap() + 1);
    std::fs::write(&kept, format!("{genuine}{forged}\n")).unwrap();
    let (ok, text) = verify(outside, &export, Some(&as_of));
    assert!(
        !ok && text.contains("not signed by the given public key"),
        "{text}"
    );
    std::fs::write(&kept, &genuine).unwrap();

    tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();

    // The server's own check runs with the external key too.
    let output = Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .env("TRACKLOG_AUDIT__SIGNING_KEY_FILE", &key_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Without it, the data directory holds no key to check against, and the
    // command says so rather than making one.
    let output = tracklog(&data, &["audit", "verify"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("audit.signing_key_file"), "{stderr}");
    assert!(!data.join("audit-signing.key").exists());
}
