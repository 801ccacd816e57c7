use super::*;
use crate::contact::CaseStatus;
use crate::ids::{CaseId, ContactId};
use proptest::prelude::*;
use serde_json::json;

const HOUR: i64 = 3_600_000;

fn case_at(ms: i64) -> Case {
    Case {
        id: CaseId::parse("K1").unwrap(),
        contact_id: ContactId::parse("c1").unwrap(),
        title: "Printer".into(),
        created_at: UtcMillis::from_millis(ms),
        status: CaseStatus::Active,
    }
}

/// An interaction as the tests write it.
#[derive(Debug, Clone)]
struct Item {
    ts: i64,
    kind: &'static str,
    session: Option<&'static str>,
    stitched: bool,
    fields: Map<String, Value>,
}

fn item(ts: i64, kind: &'static str, session: Option<&'static str>, fields: Value) -> Item {
    let Value::Object(fields) = fields else {
        unreachable!()
    };
    Item {
        ts,
        kind,
        session,
        stitched: false,
        fields,
    }
}

fn view(ts: i64, session: &'static str, article: &str, title: Option<&str>) -> Item {
    let mut fields = json!({"portal_knowledgearticleid": article});
    if let Some(title) = title {
        fields["portal_knowledgetitle"] = json!(title);
    }
    item(ts, "portal_viewknowledgearticle", Some(session), fields)
}

fn cells_of(items: &[Item]) -> Cells {
    let mut cells = Cells::default();
    for i in items {
        cells.add(&Seen {
            ts: i.ts,
            interaction_type: i.kind,
            session: i.session,
            stitched: i.stitched,
            fields: &i.fields,
        });
    }
    cells
}

fn journey_of(items: &[Item]) -> Journey {
    let case = case_at(100 * HOUR);
    let mut searches: Vec<(i64, String)> = items
        .iter()
        .filter_map(|i| search_of(i.kind, &i.fields).map(|t| (i.ts, t)))
        .collect();
    searches.sort_by(|a, b| b.cmp(a));
    assemble(
        &case,
        window(&case, 72 * HOUR),
        cells_of(items),
        (searches, false),
        JourneyPage::default(),
    )
}

#[test]
fn the_window_ends_just_before_the_case() {
    let case = case_at(100 * HOUR);
    assert_eq!(
        window(&case, 72 * HOUR),
        (
            UtcMillis::from_millis(28 * HOUR),
            UtcMillis::from_millis(100 * HOUR)
        )
    );
}

#[test]
fn sessions_are_summarised_in_order_of_first_activity() {
    let mut stitched = item(
        30 * HOUR,
        "portal_search",
        Some("s2"),
        json!({"portal_searchstring": "printer offline"}),
    );
    stitched.stitched = true;
    let items = vec![
        view(31 * HOUR, "s1", "KA-1", Some("Reset")),
        stitched,
        item(
            32 * HOUR,
            "portal_search",
            Some("s2"),
            json!({"portal_searchstring": "toner"}),
        ),
        view(33 * HOUR, "s1", "KA-2", None),
        view(34 * HOUR, "s1", "KA-1", None),
        item(35 * HOUR, "video_view", None, json!({})),
    ];
    let journey = journey_of(&items);
    assert_eq!(journey.total, 6);
    assert_eq!(journey.by_type["portal_viewknowledgearticle"], 3);
    let sessions: Vec<(Option<&str>, u64)> = journey
        .sessions
        .iter()
        .map(|s| (s.session_id.as_deref(), s.count))
        .collect();
    assert_eq!(sessions, [(Some("s2"), 2), (Some("s1"), 3), (None, 1)]);
    // s2 began anonymous, and became identified at its second search.
    assert_eq!(
        journey.sessions[0].identified_at.as_deref(),
        Some(rfc3339(32 * HOUR).as_str())
    );
    assert_eq!(journey.sessions[1].identified_at, None, "never anonymous");
    assert_eq!(journey.sessions[1].start, rfc3339(31 * HOUR));
    assert_eq!(journey.sessions[1].end, rfc3339(34 * HOUR));
    // The most recently viewed article first; a view without a title keeps
    // the title an earlier one sent.
    let articles: Vec<(&str, u64, Option<&str>)> = journey
        .articles_viewed
        .iter()
        .map(|a| (a.id.as_str(), a.count, a.title.as_deref()))
        .collect();
    assert_eq!(articles, [("KA-1", 2, Some("Reset")), ("KA-2", 1, None)]);
    let searches: Vec<&str> = journey.searches.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(searches, ["toner", "printer offline"]);
    assert!(!journey.truncated);
}

#[test]
fn long_lists_keep_the_newest_and_say_they_were_cut() {
    let mut items = Vec::new();
    for n in 0..(SESSION_CAP as i64 + 5) {
        let session: &'static str = Box::leak(format!("s{n:04}").into_boxed_str());
        items.push(item(
            30 * HOUR + n * 1000,
            "video_view",
            Some(session),
            json!({}),
        ));
    }
    let journey = journey_of(&items);
    assert!(journey.truncated);
    assert_eq!(journey.sessions.len(), SESSION_CAP);
    assert_eq!(journey.sessions[0].session_id.as_deref(), Some("s0005"));
    assert_eq!(
        journey.total,
        SESSION_CAP as u64 + 5,
        "the total counts all"
    );
}

fn arb_item() -> impl Strategy<Value = Item> {
    let kinds = prop::sample::select(vec![
        "portal_viewknowledgearticle",
        "portal_search",
        "video_view",
    ]);
    let sessions = prop::sample::select(vec![None, Some("s1"), Some("s2"), Some("s3")]);
    let articles = prop::sample::select(vec!["KA-1", "KA-2", "KA-3"]);
    let titles = prop::option::of(prop::sample::select(vec!["One", "Two"]));
    (
        0..10 * HOUR,
        kinds,
        sessions,
        any::<bool>(),
        articles,
        titles,
    )
        .prop_map(|(ts, kind, session, stitched, article, title)| {
            let fields = match kind {
                "portal_viewknowledgearticle" => {
                    let mut f = json!({"portal_knowledgearticleid": article});
                    if let Some(t) = title {
                        f["portal_knowledgetitle"] = json!(t);
                    }
                    f
                }
                "portal_search" => json!({"portal_searchstring": article}),
                _ => json!({}),
            };
            let Value::Object(fields) = fields else {
                unreachable!()
            };
            Item {
                ts,
                kind,
                session,
                stitched,
                fields,
            }
        })
}

proptest! {
    /// The store folds each hour's interactions into cells as they arrive
    /// and merges the hours when a journey is read: in any grouping and
    /// order, that equals folding every interaction at once.
    #[test]
    fn cells_merged_by_hour_equal_cells_of_every_interaction(
        items in prop::collection::vec(arb_item(), 0..60),
        seed in any::<u64>(),
    ) {
        let whole = cells_of(&items);
        let mut hours: BTreeMap<i64, Vec<Item>> = BTreeMap::new();
        for i in &items {
            hours.entry(i.ts / HOUR).or_default().push(i.clone());
        }
        let mut parts: Vec<Cells> = hours.values().map(|h| cells_of(h)).collect();
        // A deterministic shuffle of the hours.
        let n = parts.len().max(1);
        parts.rotate_left((seed as usize) % n);
        let mut merged = Cells::default();
        for part in parts {
            merged.merge(part);
        }
        // Titles of views at the same millisecond may differ by arrival;
        // everything else must be equal.
        let strip = |cells: &Cells| {
            let mut c = cells.clone();
            for a in c.articles.values_mut() {
                a.title = a.title.as_ref().map(|(at, _)| (*at, String::new()));
            }
            c
        };
        prop_assert_eq!(strip(&merged), strip(&whole));
    }
}
