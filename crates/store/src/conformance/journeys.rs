//! Conformance: journey summaries against a fold of the contact's timeline.

use super::*;

fn article_view(
    id: &str,
    contact: Option<&str>,
    session: &str,
    ts: i64,
    article: &str,
) -> Interaction {
    let mut fields = serde_json::Map::new();
    fields.insert("portal_knowledgearticleid".into(), json!(article));
    if ts % 2 == 0 {
        fields.insert("portal_knowledgetitle".into(), json!(format!("Title {ts}")));
    }
    Interaction {
        interaction_type: "portal_viewknowledgearticle".into(),
        fields,
        ..in_session(id, contact, session, ts)
    }
}

/// The summary's cells with what only the store knows (stitching) left
/// out, to compare with a fold of the timeline.
fn comparable(cells: &tracklog_domain::journey::Cells) -> tracklog_domain::journey::Cells {
    let mut cells = cells.clone();
    for cell in cells.sessions.values_mut() {
        cell.identified = None;
        cell.stitched = 0;
    }
    cells
}

async fn journey_against_timeline(
    stores: &Stores,
    org: tracklog_domain::ids::OrgId,
    who: &str,
    from: i64,
    to: i64,
) -> crate::JourneyData {
    let query = crate::JourneyQuery {
        from: UtcMillis::from_millis(from),
        to: UtcMillis::from_millis(to),
        limit: 3,
        cursor: None,
        searches: 1000,
    };
    let data = stores
        .events
        .journey(org, &contact(who), query)
        .await
        .unwrap();
    let timeline = stores
        .events
        .contact_interactions(
            org,
            &contact(who),
            TimelineQuery {
                from: Some(UtcMillis::from_millis(from)),
                to: Some(UtcMillis::from_millis(to)),
                limit: 10_000,
                cursor: None,
            },
        )
        .await
        .unwrap()
        .items;
    let mut reference = tracklog_domain::journey::Cells::default();
    let mut searches = Vec::new();
    for i in &timeline {
        reference.add(&tracklog_domain::journey::Seen {
            ts: i.timestamp.as_millis(),
            interaction_type: &i.interaction_type,
            session: i.session_id.as_ref().map(|s| s.as_str()),
            stitched: false,
            fields: &i.fields,
        });
        if let Some(text) = tracklog_domain::journey::search_of(&i.interaction_type, &i.fields) {
            searches.push((i.timestamp.as_millis(), text));
        }
    }
    searches.sort_by_key(|s| std::cmp::Reverse(s.0));
    assert_eq!(
        comparable(&data.cells),
        comparable(&reference),
        "[{from}, {to})"
    );
    let found: Vec<i64> = data.searches.iter().map(|(at, _)| *at).collect();
    let want: Vec<i64> = searches.iter().map(|(at, _)| *at).collect();
    assert_eq!(found, want, "searches, newest first");
    // The page: the newest three of the timeline.
    let newest: Vec<&str> = timeline
        .iter()
        .rev()
        .take(3)
        .map(|i| i.id.as_str())
        .collect();
    let page: Vec<&str> = data.page.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(page, newest, "[{from}, {to})");
    data
}

/// A journey's summary comes from per-hour cells kept by the materialiser
/// and raw rows at its edges. Whatever the window, through stitching,
/// retries, purges and erasure, it equals a fold of the contact's timeline.
pub async fn journey_summaries_equal_a_fold_of_the_timeline(stores: Stores) {
    let org = default_org(&stores).await;
    const H: i64 = 3_600_000;
    let base = 1_772_000_000_000 - 1_772_000_000_000 % H;
    // Anonymous first: the session is stitched when it is identified, in a
    // later batch.
    let anonymous = vec![
        article_view("j1", None, "sj", base + 10 * 60_000, "KA-1"),
        in_session("j2", None, "sj", base + H + 5 * 60_000),
    ];
    stores
        .events
        .append_interactions(org, anonymous)
        .await
        .unwrap();
    let mut later = Vec::new();
    for n in 0..40i64 {
        let ts = base + n * 977_123;
        let id = format!("k{n}");
        let session = ["sa", "sb", "sj"][n as usize % 3];
        later.push(if n % 4 == 0 {
            in_session(&id, Some("c-j"), session, ts)
        } else {
            article_view(
                &id,
                Some("c-j"),
                session,
                ts,
                ["KA-1", "KA-2", "KA-3"][n as usize % 3],
            )
        });
    }
    // Someone else, interleaved.
    later.push(article_view(
        "o1",
        Some("c-other"),
        "so",
        base + 2 * H,
        "KA-1",
    ));
    stores
        .events
        .append_interactions(org, later.clone())
        .await
        .unwrap();
    // A retry of part of it stores nothing twice.
    stores
        .events
        .append_interactions(org, later[5..15].to_vec())
        .await
        .unwrap();
    let end = base + 40 * 977_123;
    for (from, to) in [
        (base - H, end + H),
        (base + 1_234, end - 5_678),
        (base + 25 * 60_000, base + 50 * 60_000),
        (base + H, base + 3 * H),
        (base + H + 1, base + 3 * H - 1),
    ] {
        journey_against_timeline(&stores, org, "c-j", from, to).await;
    }
    // The stitched session says so.
    let data = journey_against_timeline(&stores, org, "c-j", base - H, end + H).await;
    let stitched: u64 = data
        .cells
        .sessions
        .iter()
        .filter(|((session, _), _)| session.as_deref() == Some("sj"))
        .map(|(_, cell)| cell.stitched)
        .sum();
    assert_eq!(stitched, 2, "j1 and j2 took the contact from their session");
    // Pages follow each other to the oldest.
    let mut cursor = None;
    let mut pages = Vec::new();
    for _ in 0..100 {
        let page = stores
            .events
            .journey(
                org,
                &contact("c-j"),
                crate::JourneyQuery {
                    from: UtcMillis::from_millis(base - H),
                    to: UtcMillis::from_millis(end + H),
                    limit: 7,
                    cursor,
                    searches: 10,
                },
            )
            .await
            .unwrap()
            .page;
        pages.extend(page.items.iter().map(|i| i.timestamp.as_millis()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages.len(), 42, "40 of the contact's and the 2 stitched");
    assert!(pages.windows(2).all(|w| w[0] >= w[1]), "newest first");
    // A purge of the oldest part re-folds the hours it touched.
    let purged = stores
        .events
        .purge_interactions(
            org,
            &PortalId::parse("support").unwrap(),
            Some(UtcMillis::from_millis(base + H + 30 * 60_000)),
            1000,
        )
        .await
        .unwrap();
    assert!(purged > 0);
    for (from, to) in [(base - H, end + H), (base + H, base + 3 * H)] {
        journey_against_timeline(&stores, org, "c-j", from, to).await;
    }
    // Erasure leaves nothing to summarise.
    stores
        .events
        .erase_contact(org, &contact("c-j"))
        .await
        .unwrap();
    let data = journey_against_timeline(&stores, org, "c-j", base - H, end + H).await;
    assert!(data.cells.sessions.is_empty() && data.searches.is_empty());
    journey_against_timeline(&stores, org, "c-other", base - H, end + H).await;
}
