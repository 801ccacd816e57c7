//! Conformance: channel analytics records, buckets and rollups.

use super::*;

fn channel_init(conversation: &str, provider: &str, queued: &str, answered: Option<&str>) -> Init {
    let mut session = json!({
        "providerSessionId": format!("{conversation}-s"),
        "queueId": "billing",
        "queueAssignedTimestamp": queued,
        "participants": [{"participantId": "agent-1", "type": "agent"}],
    });
    if let Some(answered) = answered {
        session["agentAssignedTimestamp"] = json!(answered);
    }
    payload::parse_init(&json!({"conversation": {
        "conversationId": conversation, "providerId": provider, "channel": "voice",
        "session": session}}))
    .unwrap()
}

fn channel_events(conversation: &str, events: &[(&str, &str)]) -> Vec<KpiEvent> {
    let body = json!({
        "conversationId": conversation,
        "providerSessionId": format!("{conversation}-s"),
        "participantId": "agent-1",
        "events": events.iter().map(|(name, at)| json!({"kpiEventName": name, "eventTimestamp": at}))
            .collect::<Vec<_>>(),
    });
    payload::parse_events(&body, UtcMillis::from_millis(0))
        .unwrap()
        .events
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

async fn all_buckets(stores: &Stores, org: tracklog_domain::ids::OrgId) -> Vec<Row> {
    let mut rows = stores
        .channel
        .aggregate(
            org,
            AggregateQuery {
                parts: Part::ALL.to_vec(),
                from_bucket: 0,
                to_bucket: i64::MAX,
                group_by: Dimension::ALL.to_vec(),
                filters: Vec::new(),
                granularity_ms: 900_000,
            },
        )
        .await
        .unwrap();
    rows.sort_by(|a, b| (a.bucket, a.part, &a.group).cmp(&(b.bucket, b.part, &b.group)));
    rows
}

pub async fn channel_buckets_ignore_arrival_order_and_equal_a_rebuild(stores: Stores) {
    let first = default_org(&stores).await;
    let second = stores
        .meta
        .ensure_org(&OrgName::parse("second").unwrap())
        .await
        .unwrap()
        .id;
    let events = channel_events(
        "c1",
        &[
            ("HoldStarted", "2026-03-01T10:01:00Z"),
            ("HoldEnded", "2026-03-01T10:01:30Z"),
            ("TransferRequested", "2026-03-01T10:02:00Z"),
            ("SessionClosed", "2026-03-01T10:05:00Z"),
            ("WrapUpStarted", "2026-03-01T10:05:00Z"),
            ("WrapUpEnded", "2026-03-01T10:06:00Z"),
        ],
    );
    let init = channel_init(
        "c1",
        "p",
        "2026-03-01T10:00:00Z",
        Some("2026-03-01T10:00:12Z"),
    );
    // In order, in one org...
    let rules = ChannelRules::default();
    stores
        .channel
        .ingest_init(first, vec![init.clone()], rules.clone())
        .await
        .unwrap();
    stores
        .channel
        .ingest_events(first, events.clone(), rules.clone())
        .await
        .unwrap();
    // ...and backwards, before the init, with repeats, in another.
    let mut backwards = events.clone();
    backwards.reverse();
    for event in &backwards {
        stores
            .channel
            .ingest_events(second, vec![event.clone(), event.clone()], rules.clone())
            .await
            .unwrap();
    }
    stores
        .channel
        .ingest_init(second, vec![init], rules)
        .await
        .unwrap();
    let in_order = all_buckets(&stores, first).await;
    assert!(!in_order.is_empty());
    assert_eq!(all_buckets(&stores, second).await, in_order);
    let facts = stores
        .channel
        .session(first, "c1-s")
        .await
        .unwrap()
        .unwrap();
    let facts = facts.facts.unwrap();
    assert_eq!(facts.hold_ms, 30_000);
    assert_eq!(facts.handle_ms, Some(348_000), "10:06:00 - 10:00:12");
    assert!(facts.transferred);
    let summary = stores
        .channel
        .rebuild_analytics(first, Box::new(|_, _| {}))
        .await
        .unwrap();
    assert_eq!(summary.sessions, 1);
    assert_eq!(all_buckets(&stores, first).await, in_order);
}

/// The per-agent buckets folded, in the test, to `grain` without the agent:
/// what the dashboards' rollups must hold.
/// The per-agent rows summed into `grain` buckets and the dimensions of
/// `keep` (indexes into `Dimension::ALL`: queue, channel, agent, provider,
/// band).
fn folded(
    rows: &[Row],
    grain: i64,
    keep: &[usize],
) -> BTreeMap<(u8, i64, Vec<String>), (f64, i64)> {
    let mut out: BTreeMap<(u8, i64, Vec<String>), (f64, i64)> = BTreeMap::new();
    for row in rows {
        let group = keep.iter().map(|i| row.group[*i].clone()).collect();
        let entry = out
            .entry((row.part.code(), row.bucket.div_euclid(grain) * grain, group))
            .or_default();
        entry.0 += row.sum;
        entry.1 += row.count;
    }
    out.retain(|_, (sum, count)| *sum != 0.0 || *count != 0);
    out
}

async fn rollup(
    stores: &Stores,
    org: tracklog_domain::ids::OrgId,
    granularity_ms: i64,
    group_by: Vec<Dimension>,
    filters: Vec<(Dimension, String)>,
) -> BTreeMap<(u8, i64, Vec<String>), (f64, i64)> {
    let rows = stores
        .channel
        .aggregate(
            org,
            AggregateQuery {
                parts: Part::ALL.to_vec(),
                from_bucket: 0,
                to_bucket: i64::MAX,
                group_by,
                filters,
                granularity_ms,
            },
        )
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for row in rows {
        assert_eq!(
            row.bucket.rem_euclid(granularity_ms),
            0,
            "a bucket of the {granularity_ms} ms grain"
        );
        out.insert(
            (row.part.code(), row.bucket, row.group.to_vec()),
            (row.sum, row.count),
        );
    }
    out
}

fn assert_same_sums(
    ours: &BTreeMap<(u8, i64, Vec<String>), (f64, i64)>,
    reference: &BTreeMap<(u8, i64, Vec<String>), (f64, i64)>,
    what: &str,
) {
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "{what}: the same buckets"
    );
    for (key, (sum, count)) in ours {
        let (want_sum, want_count) = reference[key];
        assert_eq!(*count, want_count, "{what}: count of {key:?}");
        assert!(
            (sum - want_sum).abs() <= 1e-9 * want_sum.abs().max(1.0),
            "{what}: sum of {key:?} is {sum}, the per-agent buckets say {want_sum}"
        );
    }
}

/// The dashboards read rollups without the agent, by quarter and by hour.
/// Whatever arrives, corrections included, they hold exactly the per-agent
/// buckets' sums, and so does a rebuild.
pub async fn channel_rollups_without_the_agent_equal_the_per_agent_buckets(stores: Stores) {
    let org = default_org(&stores).await;
    let rules = ChannelRules::default();
    // Four agents in one queue, across quarters of two hours; two providers.
    let sessions = [
        (
            "r1",
            "agent-1",
            "p",
            "2026-03-01T10:05:00Z",
            "2026-03-01T10:05:20Z",
            "2026-03-01T10:12:00Z",
        ),
        (
            "r2",
            "agent-2",
            "p",
            "2026-03-01T10:20:00Z",
            "2026-03-01T10:20:05Z",
            "2026-03-01T10:31:00Z",
        ),
        (
            "r3",
            "agent-3",
            "q",
            "2026-03-01T10:50:00Z",
            "2026-03-01T10:51:00Z",
            "2026-03-01T11:04:00Z",
        ),
        (
            "r4",
            "agent-1",
            "p",
            "2026-03-01T11:10:00Z",
            "2026-03-01T11:10:30Z",
            "2026-03-01T11:20:00Z",
        ),
        (
            "r5",
            "agent-4",
            "q",
            "2026-03-01T11:40:00Z",
            "2026-03-01T11:41:00Z",
            "2026-03-01T11:58:00Z",
        ),
    ];
    for (conversation, agent, provider, queued, answered, closed) in sessions {
        let mut init = json!({"conversation": {
        "conversationId": conversation, "providerId": provider, "channel": "voice",
        "session": {
            "providerSessionId": format!("{conversation}-s"),
            "queueId": "billing",
            "queueAssignedTimestamp": queued,
            "agentAssignedTimestamp": answered,
            "participants": [{"participantId": agent, "type": "agent"}],
        }}});
        if conversation == "r5" {
            init["conversation"]["session"]["queueId"] = json!("sales");
        }
        stores
            .channel
            .ingest_init(
                org,
                vec![payload::parse_init(&init).unwrap()],
                rules.clone(),
            )
            .await
            .unwrap();
        let events = payload::parse_events(
            &json!({
                "conversationId": conversation,
                "providerSessionId": format!("{conversation}-s"),
                "participantId": agent,
                "events": [
                    {"kpiEventName": "HoldStarted", "eventTimestamp": answered},
                    {"kpiEventName": "HoldEnded", "eventTimestamp": closed},
                    {"kpiEventName": "SessionClosed", "eventTimestamp": closed},
                ],
            }),
            UtcMillis::from_millis(0),
        )
        .unwrap()
        .events
        .into_iter()
        .map(Result::unwrap)
        .collect();
        stores
            .channel
            .ingest_events(org, events, rules.clone())
            .await
            .unwrap();
    }
    // A correction: a transfer arriving late moves r2's contributions.
    let late = channel_events("r2", &[("TransferRequested", "2026-03-01T10:25:00Z")]);
    stores
        .channel
        .ingest_events(org, late, rules.clone())
        .await
        .unwrap();

    let check = |label: &'static str| {
        let stores = stores.clone();
        async move {
            let per_agent = all_buckets(&stores, org).await;
            assert!(per_agent.len() > 5, "{label}: buckets for several agents");
            let fine = vec![Dimension::Queue, Dimension::Channel, Dimension::Provider];
            let quarters = rollup(&stores, org, 900_000, fine.clone(), Vec::new()).await;
            let hours = rollup(&stores, org, 3_600_000, fine, Vec::new()).await;
            assert!(
                hours.len() < quarters.len(),
                "{label}: hours hold fewer rows"
            );
            assert_same_sums(&quarters, &folded(&per_agent, 900_000, &[0, 1, 3]), label);
            assert_same_sums(&hours, &folded(&per_agent, 3_600_000, &[0, 1, 3]), label);
            // By queue alone, by the whole centre, and for one queue.
            let queue = vec![Dimension::Queue];
            let by_queue = rollup(&stores, org, 3_600_000, queue.clone(), Vec::new()).await;
            assert!(by_queue.len() < hours.len(), "{label}: two providers fold");
            assert_same_sums(&by_queue, &folded(&per_agent, 3_600_000, &[0]), label);
            let whole = rollup(&stores, org, 3_600_000, Vec::new(), Vec::new()).await;
            assert_same_sums(&whole, &folded(&per_agent, 3_600_000, &[]), label);
            let billing = vec![(Dimension::Queue, "billing".to_owned())];
            let one = rollup(&stores, org, 3_600_000, queue, billing).await;
            let mut expected = folded(&per_agent, 3_600_000, &[0]);
            expected.retain(|(_, _, group), _| group[0] == "billing");
            assert!(!expected.is_empty() && expected.len() < by_queue.len());
            assert_same_sums(&one, &expected, label);
        }
    };
    check("after ingest").await;
    stores
        .channel
        .rebuild_analytics(org, Box::new(|_, _| {}))
        .await
        .unwrap();
    check("after a rebuild").await;
}

pub async fn channel_records_merge_and_refuse_by_provider(stores: Stores) {
    let org = default_org(&stores).await;
    let rules = ChannelRules::default();
    let outcome = stores
        .channel
        .ingest_init(
            org,
            vec![channel_init("c1", "p", "2026-03-01T10:00:00Z", None)],
            rules.clone(),
        )
        .await
        .unwrap();
    assert_eq!(outcome, vec![ItemOutcome::Accepted]);
    // A repeated init with one new field keeps the rest.
    let again = payload::parse_init(&json!({"conversation": {"conversationId": "c1",
        "session": {"providerSessionId": "c1-s", "agentAssignedTimestamp": "2026-03-01T10:00:07Z"}}}))
    .unwrap();
    stores
        .channel
        .ingest_init(org, vec![again.clone()], rules.clone())
        .await
        .unwrap();
    let detail = stores.channel.session(org, "c1-s").await.unwrap().unwrap();
    assert_eq!(detail.session.queue_id.as_deref(), Some("billing"));
    assert_eq!(
        detail.facts.unwrap().answered_at.map(UtcMillis::as_millis),
        Some(1_772_359_207_000)
    );
    assert_eq!(
        stores
            .channel
            .ingest_init(org, vec![again], rules)
            .await
            .unwrap(),
        vec![ItemOutcome::Duplicate]
    );
    let provider = stores.channel.provider(org, "p").await.unwrap().unwrap();
    assert!(
        provider.enable_analytics,
        "registered at its first init, enabled"
    );
    // A disabled provider's events and a scoped credential's other providers.
    let disabled = ChannelRules {
        disabled_providers: ["p".to_owned()].into(),
        provider_scope: None,
    };
    let outcome = stores
        .channel
        .ingest_events(
            org,
            channel_events("c1", &[("SessionClosed", "2026-03-01T10:09:00Z")]),
            disabled,
        )
        .await
        .unwrap();
    assert!(matches!(
        &outcome[0].outcome,
        ItemOutcome::Refused {
            reason: Reason::AnalyticsDisabled,
            ..
        }
    ));
    assert_eq!(outcome[0].provider.as_deref(), Some("p"));
    let scoped = ChannelRules {
        disabled_providers: Default::default(),
        provider_scope: Some("q".into()),
    };
    let outcome = stores
        .channel
        .ingest_init(
            org,
            vec![channel_init("c2", "p", "2026-03-01T10:00:00Z", None)],
            scoped,
        )
        .await
        .unwrap();
    assert!(matches!(
        &outcome[0],
        ItemOutcome::Refused {
            reason: Reason::ProviderOutOfScope,
            ..
        }
    ));
    let page = stores
        .channel
        .conversations(
            org,
            ChannelList {
                limit: 10,
                ..ChannelList::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.items.len(),
        1,
        "the refused conversation was not stored"
    );
}

/// A session: its id, when it closed, its sentiment updates and its CSAT.
type Scored<'a> = (&'a str, &'a str, &'a [(&'a str, f64)], Option<u8>);

/// Sentiment and CSAT events as a provider sends them, by session.
fn scored_events(
    conversation: &str,
    closed: &str,
    updates: &[(&str, f64)],
    csat: Option<u8>,
) -> Vec<KpiEvent> {
    let mut events: Vec<Value> = updates
        .iter()
        .map(|(at, score)| {
            json!({"kpiEventName": "SentimentUpdated", "eventTimestamp": at,
            "customData": {"score": score}})
        })
        .collect();
    events.push(json!({"kpiEventName": "SessionClosed", "eventTimestamp": closed}));
    if let Some(score) = csat {
        events.push(
            json!({"kpiEventName": "CsatSubmitted", "eventTimestamp": closed,
            "customData": {"score": score}}),
        );
    }
    let body = json!({
        "conversationId": conversation,
        "providerSessionId": format!("{conversation}-s"),
        "participantId": "agent-1",
        "events": events,
    });
    payload::parse_events(&body, UtcMillis::from_millis(0))
        .unwrap()
        .events
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

pub async fn channel_sentiment_bands_and_dissatisfied_sessions(stores: Stores) {
    let org = default_org(&stores).await;
    let rules = ChannelRules::default();
    // s1: negative at close; s2: positive, CSAT 1; s3: positive, CSAT 5;
    // s4: negative, but only after it closed; s5 and s6 close at the same
    // time as s2, both negative; s7: open.
    let cases: [Scored; 6] = [
        (
            "s1",
            "2026-03-01T10:10:00Z",
            &[
                ("2026-03-01T10:02:00Z", 0.5),
                ("2026-03-01T10:08:00Z", -0.4),
            ],
            None,
        ),
        (
            "s2",
            "2026-03-01T10:20:00Z",
            &[("2026-03-01T10:15:00Z", 0.7)],
            Some(1),
        ),
        (
            "s3",
            "2026-03-01T10:30:00Z",
            &[("2026-03-01T10:25:00Z", 0.2)],
            Some(5),
        ),
        (
            "s4",
            "2026-03-01T10:40:00Z",
            &[
                ("2026-03-01T10:35:00Z", 0.0),
                ("2026-03-01T10:45:00Z", -0.9),
            ],
            None,
        ),
        (
            "s5",
            "2026-03-01T10:20:00Z",
            &[("2026-03-01T10:16:00Z", -0.7)],
            None,
        ),
        (
            "s6",
            "2026-03-01T10:20:00Z",
            &[("2026-03-01T10:17:00Z", -0.2)],
            None,
        ),
    ];
    for (id, closed, updates, csat) in cases {
        stores
            .channel
            .ingest_init(
                org,
                vec![channel_init(
                    id,
                    "p",
                    "2026-03-01T10:00:00Z",
                    Some("2026-03-01T10:00:10Z"),
                )],
                rules.clone(),
            )
            .await
            .unwrap();
        let mut events = scored_events(id, closed, updates, csat);
        events.reverse();
        let outcomes = stores
            .channel
            .ingest_events(org, events, rules.clone())
            .await
            .unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| o.outcome == ItemOutcome::Accepted && o.provider.as_deref() == Some("p")),
            "{outcomes:?}"
        );
    }
    let detail = stores.channel.session(org, "s1-s").await.unwrap().unwrap();
    let facts = detail.facts.unwrap();
    assert_eq!(facts.sentiment.closing, Some(-0.4));
    assert_eq!(facts.sentiment.lowest, Some(-0.4));
    assert!(facts.sentiment.dropped, "0.5 to -0.4");
    assert_eq!(facts.sentiment.negative_ms, 120_000, "10:08 to 10:10");
    let s4 = stores.channel.session(org, "s4-s").await.unwrap().unwrap();
    let s4 = s4.facts.unwrap();
    assert_eq!(
        (s4.sentiment.closing, s4.sentiment.current),
        (Some(0.0), Some(-0.9))
    );

    // AHT by closing band reads the per-agent rows, and equals the sessions'.
    let rows = stores
        .channel
        .aggregate(
            org,
            AggregateQuery {
                parts: vec![Part::Handle, Part::ClosingSentiment, Part::NegativeClosing],
                from_bucket: 0,
                to_bucket: i64::MAX,
                group_by: vec![Dimension::SentimentBand],
                filters: Vec::new(),
                granularity_ms: 3_600_000,
            },
        )
        .await
        .unwrap();
    let sum = |part: Part, band: &str| -> (f64, i64) {
        rows.iter()
            .filter(|r| r.part == part && *r.group == [band])
            .fold((0.0, 0), |(s, c), r| (s + r.sum, c + r.count))
    };
    assert_eq!(sum(Part::Handle, "negative").1, 1, "s1 at -0.4");
    assert_eq!(sum(Part::Handle, "slightly_negative").1, 1, "s6 at -0.2");
    assert_eq!(sum(Part::Handle, "very_positive").1, 1, "s2");
    assert_eq!(sum(Part::Handle, "very_negative").1, 1, "s5");
    assert_eq!(sum(Part::Handle, "neutral").1, 1, "s4 closed neutral");
    let negative: i64 = ["very_negative", "negative", "slightly_negative"]
        .iter()
        .map(|band| sum(Part::NegativeClosing, band).1)
        .sum();
    assert_eq!(negative, 3);

    // The report: CSAT of 2 or less, or negative at close; paged through
    // a tie of three sessions closed at 10:20.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = stores
            .channel
            .dissatisfied(
                org,
                DissatisfiedQuery {
                    from: UtcMillis::parse_rfc3339("2026-03-01T00:00:00Z").unwrap(),
                    to: UtcMillis::parse_rfc3339("2026-03-02T00:00:00Z").unwrap(),
                    filters: vec![(Dimension::Queue, "billing".into())],
                    limit: 2,
                    cursor,
                },
            )
            .await
            .unwrap();
        assert_eq!(page.count, 4);
        seen.extend(page.items.into_iter().map(|f| f.session_id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["s1-s", "s2-s", "s5-s", "s6-s"]);
    let other_queue = stores
        .channel
        .dissatisfied(
            org,
            DissatisfiedQuery {
                from: UtcMillis::from_millis(0),
                to: UtcMillis::parse_rfc3339("2027-01-01T00:00:00Z").unwrap(),
                filters: vec![(Dimension::Queue, "sales".into())],
                limit: 10,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(other_queue.count, 0);
    // The derivation version is kept.
    stores.channel.set_derivation(3).await.unwrap();
    assert_eq!(stores.channel.derivation().await.unwrap(), 3);
}
