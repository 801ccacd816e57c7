//! The portal pillar under kill -9: interactions sent in batches, checked
//! read back once each, with every journey summary equal to the timeline.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::common::{Server, all_ids};
use super::load::Cutoff;

/// Contacts of one round.
pub const CONTACTS: usize = 3;
/// Clients sending interactions at once.
const CLIENTS: usize = 2;

fn interaction(id: &str, contact: usize, minute: u64) -> Value {
    json!({
        "portal_interactionid": id, "type": "portal_viewknowledgearticle",
        "portal_timestamp": format!("2026-03-01T10:{:02}:00Z", minute % 60),
        "portal_portalid": "support", "portal_contactid": format!("chaos-{contact}"),
        "session_id": format!("s-{contact}-{}", minute % 4),
        "portal_knowledgearticleid": format!("KA-{}", minute % 5),
    })
}

/// Sends batches from several clients until told to stop or refused;
/// returns what was acknowledged, by contact.
pub async fn send(
    base: String,
    key: String,
    round: usize,
    cutoff: Cutoff,
) -> (Vec<(usize, String)>, Vec<(usize, String)>) {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (http, key, cutoff) = (http.clone(), key.clone(), cutoff.clone());
        let url = format!("{base}/api/v1/interactions");
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for batch in 0..10_000u64 {
                if cutoff.passed() {
                    break;
                }
                let items: Vec<(usize, String)> = (0..40u64)
                    .map(|i| {
                        // Each round has contacts of its own, so that a
                        // round's check reads only its own interactions.
                        let contact = round * CONTACTS + (client + i as usize) % CONTACTS;
                        (contact, format!("r{round}-c{client}-b{batch}-{i}"))
                    })
                    .collect();
                let body: Vec<Value> = items
                    .iter()
                    .enumerate()
                    .map(|(i, (contact, id))| interaction(id, *contact, batch + i as u64))
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
                        let report: Value = match response.json().await {
                            Ok(report) => report,
                            Err(_) => break,
                        };
                        // New ids: none may be taken for a retry's.
                        assert_eq!(report["duplicates"], 0, "{report}");
                        assert_eq!(report["accepted"], 40, "{report}");
                        if cutoff.passed() {
                            return (acknowledged, items);
                        }
                        acknowledged.extend(items)
                    }
                    _ => break,
                }
            }
            (acknowledged, Vec::new())
        }));
    }
    let (mut all, mut late) = (Vec::new(), Vec::new());
    for task in tasks {
        let (acknowledged, answered_late) = task.await.unwrap();
        all.extend(acknowledged);
        late.extend(answered_late);
    }
    (all, late)
}

/// The case journey's total over a window that holds every interaction.
async fn journey_total(http: &reqwest::Client, server: &Server, key: &str, contact: usize) -> u64 {
    let journey: Value = http
        .get(server.url(&format!(
            "/api/v1/cases/CHAOS-{contact}/journey?window=PT3H"
        )))
        .basic_auth("app", Some(key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    journey["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("{journey}"))
}

/// Cases whose journeys cover every interaction the test sends.
pub async fn add_cases(http: &reqwest::Client, server: &Server, key: &str, contacts: &[usize]) {
    let cases: Vec<Value> = contacts
        .iter()
        .map(|c| {
            json!({"id": format!("CHAOS-{c}"), "contact_id": format!("chaos-{c}"),
                   "title": "chaos", "created_at": "2026-03-01T11:00:00Z"})
        })
        .collect();
    let response = http
        .post(server.url("/api/v1/cases"))
        .basic_auth("app", Some(key))
        .json(&cases)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// Every acknowledged interaction of the contacts is stored once, and each
/// journey summary (the materialiser's) counts exactly what is stored.
pub async fn check(
    http: &reqwest::Client,
    server: &Server,
    key: &str,
    acknowledged: &HashMap<usize, Vec<String>>,
    contacts: &[usize],
    round: usize,
) {
    for &contact in contacts {
        let stored = all_ids(http, server, key, &format!("chaos-{contact}")).await;
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in &stored {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "round {round}: stored twice: {twice:?}");
        let mine = acknowledged.get(&contact).map_or(&[][..], Vec::as_slice);
        let lost: Vec<&String> = mine
            .iter()
            .filter(|id| !counts.contains_key(id.as_str()))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged interactions lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(3)]
        );
        // A replayed batch counted nothing twice.
        assert_eq!(
            journey_total(http, server, key, contact).await,
            stored.len() as u64,
            "round {round}: the journey of chaos-{contact}"
        );
    }
}
