use std::collections::HashSet;

use super::*;

/// A toy admission: items are keys, and a key seen before is a duplicate.
#[derive(Default)]
struct Keys {
    seen: HashMap<Vec<u8>, u64>,
    passed: u64,
}

impl Admission for Keys {
    fn rollback(&mut self, durable: u64) {
        self.seen.retain(|_, seq| *seq <= durable);
    }
    fn passed(&mut self, upto: u64) {
        self.passed = upto;
    }
}

fn options() -> LogOptions {
    LogOptions {
        segment_bytes: 4096,
        ..LogOptions::default()
    }
}

async fn offer(log: &Log<Keys>, org: i64, keys: &[&str]) -> (Vec<bool>, u64) {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    log.append(Kind::Interactions, org, keys.len(), move |state, seq| {
        let mut fresh = Vec::new();
        let mut outcome = Vec::new();
        for key in keys {
            let new = !state.seen.contains_key(&key);
            if new {
                state.seen.insert(key.clone(), seq);
                fresh.push(key);
            }
            outcome.push(new);
        }
        Ok(Admitted {
            items: fresh,
            answer: outcome,
        })
    })
    .await
    .unwrap()
}

fn read_all(log: &Log<Keys>, after: u64) -> Vec<Frame> {
    let mut reader = log.reader(after);
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        frames.push(frame);
    }
    frames
}

#[tokio::test]
async fn appends_are_admitted_in_order_durable_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(), &[("m", 0)], Keys::default()).unwrap();
    let (first, seq) = offer(&log, 7, &["a", "b", "a"]).await;
    assert_eq!(first, [true, true, false]);
    assert_eq!(seq, 1);
    let (again, _) = offer(&log, 7, &["b"]).await;
    assert_eq!(again, [false], "a key already in the log is a duplicate");
    assert_eq!(log.head(), 1, "nothing new, no frame");
    assert_eq!(log.latest(Kind::Interactions, 7), 1);
    let frames = read_all(&log, 0);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].items, [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(frames[0].org, 7);
    log.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_groups_and_every_one_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(), &[("m", 0)], Keys::default()).unwrap();
    let mut tasks = Vec::new();
    for client in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let key = format!("{client}-{i}");
                offer(&log, client, &[&key]).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(log.head(), 400);
    let frames = read_all(&log, 0);
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
    let keys: HashSet<Vec<u8>> = frames.iter().flat_map(|f| f.items.clone()).collect();
    assert_eq!(keys.len(), 400);
    // Small segments: the log rotated, and a reader crosses them.
    assert!(std::fs::read_dir(dir.path()).unwrap().count() > 3);
    assert_eq!(read_all(&log, 200).first().map(|f| f.seq), Some(201));
    log.close();
}

#[tokio::test]
async fn reopening_finds_every_acknowledged_frame_and_continues_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), options(), &[("m", 0)], Keys::default()).unwrap();
        for i in 0..30 {
            offer(&log, 1, &[&format!("k{i}")]).await;
        }
        log.close();
    }
    let log = Log::open(dir.path(), options(), &[("m", 0)], Keys::default()).unwrap();
    assert_eq!(log.head(), 30);
    // A read after the restart waits for what was recovered, whatever org
    // it asks about: which org each recovered frame holds is not known.
    assert_eq!(log.latest(Kind::Interactions, 1), 30);
    assert_eq!(log.latest(Kind::Interactions, 99), 30);
    let (_, seq) = offer(&log, 1, &["after"]).await;
    assert_eq!(log.latest(Kind::Interactions, 1), 31);
    assert_eq!(seq, 31);
    assert_eq!(read_all(&log, 0).len(), 31);
    log.close();
    // Once the consumer has passed everything, a reopened log holds no one
    // back.
    let log = Log::open(dir.path(), options(), &[("m", 31)], Keys::default()).unwrap();
    assert_eq!(log.latest(Kind::Interactions, 99), 0);
    log.close();
}

#[tokio::test]
async fn segments_go_once_every_consumer_has_passed_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        options(),
        &[("fast", 0), ("slow", 0)],
        Keys::default(),
    )
    .unwrap();
    for i in 0..200 {
        offer(&log, 1, &[&format!("{i:0>40}")]).await;
    }
    let segments = || std::fs::read_dir(dir.path()).unwrap().count();
    let before = segments();
    assert!(before > 3, "{before}");
    log.release("fast", 200);
    offer(&log, 1, &["wake"]).await;
    assert_eq!(segments(), before, "the slow consumer still needs them");
    log.release("slow", 150);
    offer(&log, 1, &["wake again"]).await;
    let after = segments();
    assert!(after < before, "{after} < {before}");
    // What the slowest consumer has not passed is still readable.
    assert_eq!(read_all(&log, 150).first().map(|f| f.seq), Some(151));
    log.close();
}

#[tokio::test]
async fn a_full_log_refuses_appends_until_it_drains() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        max_bytes: 2_000,
        ..options()
    };
    let log = Log::open(dir.path(), options, &[("m", 0)], Keys::default()).unwrap();
    let mut refused = false;
    for i in 0..200 {
        let keys = vec![format!("{i:0>60}").into_bytes()];
        let result = log
            .append(Kind::Audit, 1, 1, move |_state: &mut Keys, _| {
                Ok(Admitted {
                    items: keys,
                    answer: (),
                })
            })
            .await;
        if matches!(result, Err(StoreError::Overloaded)) {
            refused = true;
            break;
        }
    }
    assert!(refused, "the bound holds");
    log.close();
}

#[tokio::test]
async fn a_refused_admission_is_answered_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), options(), &[("m", 0)], Keys::default()).unwrap();
    let result = log
        .append(
            Kind::Audit,
            1,
            1,
            |_state: &mut Keys, _| -> Result<Admitted<()>, _> {
                Err(StoreError::Conflict("no".into()))
            },
        )
        .await;
    assert_eq!(result.unwrap_err(), StoreError::Conflict("no".into()));
    assert_eq!(log.head(), 0);
    log.close();
}

#[test]
fn a_log_behind_its_consumers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A log directory replaced by an older copy: the derived state has
    // applied frames the log no longer has.
    let (file, _) = segment::create(dir.path(), 1).unwrap();
    drop(file);
    let error = Log::open(dir.path(), options(), &[("m", 40)], Keys::default())
        .err()
        .unwrap();
    assert!(error.to_string().contains("replaced"), "{error}");
}
