//! The activity log under kill -9: records sent in batches, checked found
//! once each through search.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::common::Server;
use super::load::Cutoff;

fn user(round: usize) -> String {
    format!("chaos-audit-{round}")
}

pub fn record(id: &str, round: usize, n: u64) -> Value {
    let operation = ["Create", "Update", "Retrieve"][(n % 3) as usize];
    json!({
        "Id": id, "CreationTime": format!("2026-03-01T10:{:02}:00Z", n % 60),
        "Operation": operation,
        "User": user(round), "EntityName": "account", "EntityId": format!("e-{}", n % 7),
        "Fields": {"note": format!("chaos {round} {n}")},
    })
}

/// Sends batches of records until the cutoff or a refusal; returns the
/// acknowledged ids, and those answered only after the cutoff.
pub async fn send(
    base: String,
    key: String,
    round: usize,
    cutoff: Cutoff,
) -> (Vec<String>, Vec<String>) {
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/audit/records");
    let mut acknowledged = Vec::new();
    for batch in 0..10_000u64 {
        if cutoff.passed() {
            break;
        }
        let ids: Vec<String> = (0..20).map(|i| format!("r{round}-a{batch}-{i}")).collect();
        let body: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| record(id, round, batch * 20 + i as u64))
            .collect();
        match http
            .post(&url)
            .basic_auth("app", Some(&key))
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(response) if response.status() == 200 => {
                let Ok(report) = response.json::<Value>().await else {
                    break;
                };
                assert_eq!(report["accepted"], 20, "{report}");
                assert_eq!(report["duplicates"], 0, "{report}");
                if cutoff.passed() {
                    return (acknowledged, ids);
                }
                acknowledged.extend(ids);
            }
            _ => break,
        }
    }
    (acknowledged, Vec::new())
}

/// Every acknowledged record of the rounds is found by search, once.
pub async fn check(
    http: &reqwest::Client,
    server: &Server,
    key: &str,
    acknowledged: &HashMap<usize, Vec<String>>,
    rounds: std::ops::Range<usize>,
    after: usize,
) {
    for round in rounds {
        let mut found: HashMap<String, usize> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = server.url(&format!(
                "/api/v1/audit/search?user={}&limit=1000",
                user(round)
            ));
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = http
                .get(url)
                .basic_auth("app", Some(key))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let items = page["items"].as_array().unwrap_or_else(|| panic!("{page}"));
            for item in items {
                *found
                    .entry(item["Id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let twice: Vec<_> = found.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "after round {after}: audit records of round {round} found twice: {twice:?}"
        );
        let mine = acknowledged.get(&round).map_or(&[][..], Vec::as_slice);
        let lost: Vec<&String> = mine.iter().filter(|id| !found.contains_key(*id)).collect();
        assert!(
            lost.is_empty(),
            "after round {after}: {} acknowledged audit records of round {round} lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(3)]
        );
    }
}
