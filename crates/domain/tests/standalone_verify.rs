//! The standalone verifier against a lying server: every way a server could
//! doctor an export or its checkpoints must fail it, and an honest export
//! must pass.

use ed25519_dalek::SigningKey;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracklog_domain::audit::chain::{Checkpoint, GENESIS, link};
use tracklog_domain::audit::format::{Format, syslog_checkpoint};
use tracklog_domain::audit::standalone::{
    PublishedCheckpoint, StandaloneReport, parse_public_key, verify_export, verify_export_as_of,
};
use tracklog_domain::audit::{AuditRecord, Category};

const ORG: &str = "default";

/// When the record at `sequence` was stored, in milliseconds.
fn stored_at(sequence: i64) -> i64 {
    1_796_000_000_000 + sequence * 7
}

fn record(sequence: i64) -> AuditRecord {
    AuditRecord {
        id: format!("r-{sequence}"),
        organization_id: ORG.into(),
        creation_time: "2026-03-01T10:00:00.000Z".into(),
        operation: "Update".into(),
        user: Some(format!("user{}@x", sequence % 3)),
        fields: Some(json!({"n": sequence, "note": "a \"quoted\" value"})),
        category: Some(Category::Update),
        sequence: Some(sequence),
        ..AuditRecord::default()
    }
}

/// An honest server's log of `n` records, with a checkpoint every `every`
/// records and one at the end.
struct Log {
    key: SigningKey,
    records: Vec<AuditRecord>,
    checkpoints: Vec<Checkpoint>,
}

impl Log {
    fn new(n: i64, every: i64) -> Self {
        let key = SigningKey::from_bytes(&[7; 32]);
        let records: Vec<AuditRecord> = (1..=n).map(record).collect();
        let mut checkpoints = Vec::new();
        let mut previous = GENESIS;
        for r in &records {
            let sequence = r.sequence.unwrap();
            let digest: [u8; 32] = Sha256::digest(r.stored_json_at(stored_at(sequence))).into();
            previous = link(&previous, sequence, &digest);
            if sequence % every == 0 || sequence == n {
                let number = checkpoints.len() as i64 + 1;
                checkpoints.push(Checkpoint::sign(
                    &key,
                    ORG,
                    number,
                    sequence,
                    previous,
                    0,
                    GENESIS,
                    1_000 + sequence,
                ));
            }
        }
        Self {
            key,
            records,
            checkpoints,
        }
    }

    fn export(&self) -> String {
        self.records
            .iter()
            .map(|r| Format::Jsonl.line_at(r, "h", None, r.sequence.map(stored_at)))
            .collect()
    }

    fn kept(&self) -> String {
        self.checkpoints
            .iter()
            .map(|c| PublishedCheckpoint::new(ORG, c).to_line() + "\n")
            .collect()
    }

    fn verify(&self, kept: &str, export: &str) -> Result<String, String> {
        verify_export(
            &self.key.verifying_key(),
            ORG,
            kept.as_bytes(),
            export.as_bytes(),
        )
        .map(|report| format!("{report:?}"))
        .map_err(|e| e.to_string())
    }

    /// The report on this log's honest export against `kept`.
    fn report(&self, kept: &str) -> StandaloneReport {
        verify_export(
            &self.key.verifying_key(),
            ORG,
            kept.as_bytes(),
            self.export().as_bytes(),
        )
        .unwrap()
    }
}

#[test]
fn an_honest_export_verifies() {
    let log = Log::new(25, 10);
    let report = log.report(&log.kept());
    assert_eq!(report.records, 25);
    assert_eq!(report.checkpoints_matched, 3);
    assert_eq!(report.covered_to, 25);
    assert_eq!(report.uncovered_tail, 0);
    // Newest first, as a search pages them, verifies the same.
    let reversed: String = log
        .export()
        .lines()
        .rev()
        .map(|l| format!("{l}\n"))
        .collect();
    log.verify(&log.kept(), &reversed).unwrap();
}

#[test]
fn a_forged_page_fails() {
    let log = Log::new(25, 10);
    let export = log.export().replace("user1@x", "someone@else");
    let error = log.verify(&log.kept(), &export).unwrap_err();
    assert!(error.contains("does not match checkpoint #1"), "{error}");

    // A record left out of the middle, or added.
    let without: String = log
        .export()
        .lines()
        .filter(|l| !l.contains("\"Id\":\"r-7\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let error = log.verify(&log.kept(), &without).unwrap_err();
    assert!(error.contains("sequence 7 is missing"), "{error}");
    let mut extra = record(26);
    extra.sequence = Some(12);
    let doubled = log.export() + &Format::Jsonl.line_at(&extra, "h", None, Some(stored_at(12)));
    let error = log.verify(&log.kept(), &doubled).unwrap_err();
    assert!(error.contains("sequence 12 appears twice"), "{error}");
}

#[test]
fn a_truncated_export_fails() {
    let log = Log::new(25, 10);
    let head: String = log
        .export()
        .lines()
        .take(22)
        .map(|l| format!("{l}\n"))
        .collect();
    let error = log.verify(&log.kept(), &head).unwrap_err();
    assert!(error.contains("the export is truncated"), "{error}");
    // An export that starts late cannot be tied to the chain.
    let tail: String = log
        .export()
        .lines()
        .skip(3)
        .map(|l| format!("{l}\n"))
        .collect();
    let error = log.verify(&log.kept(), &tail).unwrap_err();
    assert!(
        error.contains("no checkpoint vouches for the link"),
        "{error}"
    );
    // But one that starts right after a checkpoint can.
    let after: String = log
        .export()
        .lines()
        .skip(10)
        .map(|l| format!("{l}\n"))
        .collect();
    log.verify(&log.kept(), &after).unwrap();
    // An empty export proves nothing.
    assert!(log.verify(&log.kept(), "").is_err());
}

#[test]
fn an_export_older_than_later_checkpoints_verifies_as_of_when_it_was_taken() {
    // Checkpoints: #1 at 10 (signed at 1010), #2 at 20 (1020), #3 at 25 (1025).
    let log = Log::new(25, 10);
    let first = |n: usize| -> String {
        log.export()
            .lines()
            .take(n)
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let verify = |export: &str, as_of: i64| {
        verify_export_as_of(
            &log.key.verifying_key(),
            ORG,
            log.kept().as_bytes(),
            export.as_bytes(),
            Some(as_of),
        )
    };
    // Taken at 1022: #3 came later and vouches for what the export could not hold.
    let report = verify(&first(22), 1022).unwrap();
    assert_eq!(report.checkpoints_matched, 2);
    assert_eq!(report.checkpoints_after_export, 1);
    // But a checkpoint signed before the export was taken still finds it cut short.
    let error = verify(&first(15), 1022).unwrap_err().to_string();
    assert!(error.contains("checkpoint #2"), "{error}");
    assert!(error.contains("truncated"), "{error}");
    // And later checkpoints inside the export must still match it.
    let mut records = log.records.clone();
    records[11].user = Some("someone@else".into());
    let forged: String = records
        .iter()
        .take(22)
        .map(|r| Format::Jsonl.line_at(r, "h", None, r.sequence.map(stored_at)))
        .collect();
    let error = verify(&forged, 1015).unwrap_err().to_string();
    assert!(error.contains("does not match checkpoint #2"), "{error}");
}

#[test]
fn a_forged_checkpoint_fails() {
    let log = Log::new(25, 10);
    // A server that rewrote the log and re-signed it with a key of its own.
    let impostor = SigningKey::from_bytes(&[9; 32]);
    let rewritten = Log {
        key: impostor,
        ..Log::new(25, 10)
    };
    let forged: String = rewritten
        .checkpoints
        .iter()
        .map(|c| {
            let c = Checkpoint::sign(
                &rewritten.key,
                ORG,
                c.number,
                c.sequence,
                c.hash,
                0,
                GENESIS,
                c.created_at_ms,
            );
            PublishedCheckpoint::new(ORG, &c).to_line() + "\n"
        })
        .collect();
    let error = log.verify(&forged, &log.export()).unwrap_err();
    assert!(
        error.contains("not signed by the given public key"),
        "{error}"
    );

    // A checkpoint line with its hash changed.
    let mut line = PublishedCheckpoint::new(ORG, &log.checkpoints[1]);
    line.hash = PublishedCheckpoint::new(ORG, &log.checkpoints[0]).hash;
    let kept = log.kept() + &line.to_line() + "\n";
    let error = log.verify(&kept, &log.export()).unwrap_err();
    assert!(error.contains("line 4"), "{error}");

    // Two validly signed checkpoints under one number: two histories.
    let other = Checkpoint::sign(&log.key, ORG, 2, 20, [1; 32], 0, GENESIS, 5);
    let kept = log.kept() + &PublishedCheckpoint::new(ORG, &other).to_line() + "\n";
    let error = log.verify(&kept, &log.export()).unwrap_err();
    assert!(error.contains("signed two histories"), "{error}");

    // A checkpoint moved to another org does not verify for this one.
    let moved = PublishedCheckpoint {
        org: "other".into(),
        ..PublishedCheckpoint::new(ORG, &log.checkpoints[0])
    };
    let error = verify_export(
        &log.key.verifying_key(),
        "other",
        (moved.to_line() + "\n").as_bytes(),
        log.export().as_bytes(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("not signed by the given public key"),
        "{error}"
    );

    // No kept checkpoints at all: nothing vouches.
    assert!(log.verify("", &log.export()).is_err());
}

#[test]
fn a_damaged_record_flag_is_not_believed_as_proof() {
    let log = Log::new(5, 10);
    let export = log
        .export()
        .replacen("}\n", ",\"integrity\":{\"status\":\"damaged\"}}\n", 1);
    let error = log.verify(&log.kept(), &export).unwrap_err();
    assert!(error.contains("could not be read back whole"), "{error}");
}

#[test]
fn the_tail_after_the_newest_checkpoint_is_reported_not_vouched_for() {
    let log = Log::new(25, 10);
    let kept: String = log.checkpoints[..2]
        .iter()
        .map(|c| PublishedCheckpoint::new(ORG, c).to_line() + "\n")
        .collect();
    let report = log.report(&kept);
    assert_eq!(report.covered_to, 20);
    assert_eq!(report.uncovered_tail, 5);
}

#[test]
fn public_keys_are_read_in_every_form_the_server_gives() {
    let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let base64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.to_bytes());
    let json = json!({"algorithm": "Ed25519", "public_key": base64}).to_string();
    for form in [json.as_bytes(), base64.as_bytes(), &key.to_bytes()[..]] {
        assert_eq!(parse_public_key(form).unwrap(), key);
    }
    assert!(parse_public_key(b"short").is_err());
}

#[test]
fn a_line_torn_by_a_crash_is_named_and_skipped_but_a_bad_signature_is_not() {
    let log = Log::new(20, 10);
    let lines: Vec<String> = log.kept().lines().map(str::to_owned).collect();
    // The server crashed while appending #2, then appended it again.
    let torn = format!(
        "{}\n{}\n{}\n",
        lines[0],
        &lines[1][..lines[1].len() / 2],
        lines[1]
    );
    let report = log.report(&torn);
    assert_eq!(report.unreadable_lines, [2]);
    assert_eq!(report.checkpoints_matched, 2);

    // Whole JSON with a signature that does not hold is never skipped.
    let mut forged: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    forged["sequence"] = json!(19);
    let kept = format!("{}\n{forged}\n", lines[0]);
    let error = log.verify(&kept, &log.export()).unwrap_err();
    assert!(
        error.contains("not signed by the given public key"),
        "{error}"
    );
}

#[test]
fn checkpoints_kept_by_a_siem_as_syslog_messages_verify() {
    let log = Log::new(12, 5);
    let kept: String = log
        .checkpoints
        .iter()
        .map(|c| {
            let message = syslog_checkpoint(&PublishedCheckpoint::new(ORG, c), "node-1");
            // What rsyslog's file output writes: its own prefix, then the message.
            format!("2026-12-07T10:00:00+00:00 node-1 {message}\n")
        })
        .collect();
    let report = log.report(&kept);
    assert_eq!(report.checkpoints_matched, 3);
    assert!(report.unreadable_lines.is_empty());
}

#[test]
fn the_stored_time_is_chained_and_required() {
    let log = Log::new(10, 5);
    // A stored time moved (to dodge retention, say) breaks the chain.
    let moved = log.export().replacen(
        &format!("\"TracklogStoredAt\":{}", stored_at(3)),
        &format!("\"TracklogStoredAt\":{}", stored_at(3) + 86_400_000),
        1,
    );
    assert_ne!(moved, log.export());
    let error = log.verify(&log.kept(), &moved).unwrap_err();
    assert!(error.contains("does not match checkpoint #1"), "{error}");
    // A line in the API's shape, without it, cannot be rebuilt: said so.
    let plain: String = log
        .records
        .iter()
        .map(|r| Format::Jsonl.line(r, "h", None))
        .collect();
    let error = log.verify(&log.kept(), &plain).unwrap_err();
    assert!(error.contains("no TracklogStoredAt"), "{error}");
}
