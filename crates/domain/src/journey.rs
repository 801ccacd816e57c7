//! A case's journey (PRODUCT.md §6.2): what the contact did on the portal in
//! the window before the case was created, shaped for the agent who opens it.

use serde::Serialize;
use serde_json::Value;

use crate::contact::Case;
use crate::interaction::{Builtin, Interaction};
use crate::time::UtcMillis;

/// The window `[start, end)` before a case: an interaction exactly at the
/// case's creation is not part of it, because the agent wants to know what
/// happened *before* the customer asked for help.
pub fn window(case: &Case, length_ms: i64) -> (UtcMillis, UtcMillis) {
    let end = case.created_at;
    (
        UtcMillis::from_millis(end.as_millis().saturating_sub(length_ms)),
        end,
    )
}

/// One browser session's interactions, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionGroup {
    pub session_id: Option<String>,
    pub started: String,
    pub ended: String,
    pub interactions: Vec<Value>,
}

/// A knowledge article the contact already viewed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArticleViewed {
    pub id: String,
    pub title: Option<String>,
    pub count: u64,
    pub last_viewed: String,
}

/// A search the contact ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchRun {
    pub text: String,
    pub at: String,
}

/// The journey of a case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    pub case_id: String,
    pub contact_id: String,
    pub window_start: String,
    pub window_end: String,
    pub sessions: Vec<SessionGroup>,
    pub articles_viewed: Vec<ArticleViewed>,
    pub searches: Vec<SearchRun>,
    /// How many interactions of each type, in catalogue order then by name.
    pub counts: Vec<TypeCount>,
    /// True when the window held more interactions than one journey shows;
    /// the contact timeline API pages through all of them.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeCount {
    #[serde(rename = "type")]
    pub interaction_type: String,
    pub count: u64,
}

fn text_field(interaction: &Interaction, name: &str) -> Option<String> {
    interaction
        .fields
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Builds the journey from the window's interactions, oldest first. Items
/// outside the window are ignored, so a caller cannot leak them in.
pub fn build(
    case: &Case,
    window: (UtcMillis, UtcMillis),
    interactions: &[Interaction],
    truncated: bool,
) -> Journey {
    let (start, end) = window;
    let inside = interactions
        .iter()
        .filter(|i| i.timestamp >= start && i.timestamp < end);

    let mut sessions: Vec<(Option<&str>, Vec<&Interaction>)> = Vec::new();
    let mut articles: Vec<ArticleViewed> = Vec::new();
    let mut article_times: Vec<UtcMillis> = Vec::new();
    let mut searches = Vec::new();
    let mut counts: Vec<TypeCount> = Vec::new();
    for interaction in inside {
        let session = interaction.session_id.as_ref().map(|s| s.as_str());
        match sessions.iter_mut().find(|(s, _)| *s == session) {
            Some((_, items)) => items.push(interaction),
            None => sessions.push((session, vec![interaction])),
        }
        match counts
            .iter_mut()
            .find(|c| c.interaction_type == interaction.interaction_type)
        {
            Some(c) => c.count += 1,
            None => counts.push(TypeCount {
                interaction_type: interaction.interaction_type.clone(),
                count: 1,
            }),
        }
        match Builtin::from_name(&interaction.interaction_type) {
            Some(Builtin::ViewKnowledgeArticle) => {
                let Some(id) = text_field(interaction, "portal_knowledgearticleid") else {
                    continue;
                };
                let title = text_field(interaction, "portal_knowledgetitle");
                match articles.iter().position(|a| a.id == id) {
                    Some(at) => {
                        let article = &mut articles[at];
                        article.count += 1;
                        article.last_viewed = interaction.timestamp.to_rfc3339();
                        article_times[at] = interaction.timestamp;
                        if title.is_some() {
                            article.title = title;
                        }
                    }
                    None => {
                        articles.push(ArticleViewed {
                            id,
                            title,
                            count: 1,
                            last_viewed: interaction.timestamp.to_rfc3339(),
                        });
                        article_times.push(interaction.timestamp);
                    }
                }
            }
            Some(Builtin::Search) => {
                if let Some(text) = text_field(interaction, "portal_searchstring") {
                    searches.push(SearchRun {
                        text,
                        at: interaction.timestamp.to_rfc3339(),
                    });
                }
            }
            _ => {}
        }
    }
    // Most recently viewed first: what the agent checks before answering.
    let mut order: Vec<usize> = (0..articles.len()).collect();
    order.sort_by(|&a, &b| article_times[b].cmp(&article_times[a]).then(a.cmp(&b)));
    let articles_viewed = order.into_iter().map(|i| articles[i].clone()).collect();
    let rank = |name: &str| {
        Builtin::ALL
            .iter()
            .position(|b| b.name() == name)
            .unwrap_or(Builtin::ALL.len())
    };
    counts.sort_by(|a, b| {
        rank(&a.interaction_type)
            .cmp(&rank(&b.interaction_type))
            .then_with(|| a.interaction_type.cmp(&b.interaction_type))
    });
    Journey {
        case_id: case.id.to_string(),
        contact_id: case.contact_id.to_string(),
        window_start: start.to_rfc3339(),
        window_end: end.to_rfc3339(),
        sessions: sessions
            .into_iter()
            .map(|(session, items)| SessionGroup {
                session_id: session.map(str::to_owned),
                started: items[0].timestamp.to_rfc3339(),
                ended: items[items.len() - 1].timestamp.to_rfc3339(),
                interactions: items.iter().map(|i| i.to_json()).collect(),
            })
            .collect(),
        articles_viewed,
        searches,
        counts,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::CaseStatus;
    use crate::ids::{CaseId, ContactId, InteractionId, PortalId, SessionId};
    use serde_json::{Map, json};

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

    fn item(id: &str, kind: &str, ms: i64, session: Option<&str>, fields: Value) -> Interaction {
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        Interaction {
            id: InteractionId::parse(id).unwrap(),
            interaction_type: kind.into(),
            contact_id: Some(ContactId::parse("c1").unwrap()),
            timestamp: UtcMillis::from_millis(ms),
            portal_id: PortalId::parse("p").unwrap(),
            session_id: session.map(|s| SessionId::parse(s).unwrap()),
            fields,
        }
    }

    fn article(id: &str, ms: i64, session: &str, ka: &str, title: Option<&str>) -> Interaction {
        let mut fields = Map::new();
        fields.insert("portal_knowledgearticleid".into(), json!(ka));
        if let Some(t) = title {
            fields.insert("portal_knowledgetitle".into(), json!(t));
        }
        item(
            id,
            "portal_viewknowledgearticle",
            ms,
            Some(session),
            Value::Object(fields),
        )
    }

    #[test]
    fn the_window_ends_just_before_the_case() {
        let case = case_at(100 * HOUR);
        let w = window(&case, 72 * HOUR);
        let items = vec![
            article("before-window", 28 * HOUR - 1, "s0", "KA-0", None),
            article("at-start", 28 * HOUR, "s1", "KA-1", Some("Reset")),
            article("last", 100 * HOUR - 1, "s1", "KA-1", Some("Reset v2")),
            article("at-case", 100 * HOUR, "s1", "KA-2", None),
        ];
        let journey = build(&case, w, &items, false);
        let ids: Vec<&str> = journey
            .sessions
            .iter()
            .flat_map(|s| &s.interactions)
            .map(|i| i["portal_interactionid"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["at-start", "last"]);
        assert_eq!(journey.articles_viewed.len(), 1);
        assert_eq!(journey.articles_viewed[0].count, 2);
        assert_eq!(
            journey.articles_viewed[0].title.as_deref(),
            Some("Reset v2")
        );
    }

    #[test]
    fn sessions_group_in_order_of_first_activity_and_searches_are_listed() {
        let case = case_at(10 * HOUR);
        let items = vec![
            article("a", HOUR, "s1", "KA-1", None),
            item(
                "b",
                "portal_search",
                2 * HOUR,
                Some("s2"),
                json!({"portal_searchstring": "printer offline"}),
            ),
            article("c", 3 * HOUR, "s1", "KA-2", None),
            item("d", "video_view", 4 * HOUR, None, json!({})),
        ];
        let journey = build(&case, window(&case, 72 * HOUR), &items, false);
        let sessions: Vec<Option<&str>> = journey
            .sessions
            .iter()
            .map(|s| s.session_id.as_deref())
            .collect();
        assert_eq!(sessions, [Some("s1"), Some("s2"), None]);
        assert_eq!(journey.sessions[0].interactions.len(), 2);
        assert_eq!(journey.searches[0].text, "printer offline");
        // Most recent article first.
        assert_eq!(journey.articles_viewed[0].id, "KA-2");
        let counts: Vec<(&str, u64)> = journey
            .counts
            .iter()
            .map(|c| (c.interaction_type.as_str(), c.count))
            .collect();
        assert_eq!(
            counts,
            [
                ("portal_viewknowledgearticle", 2),
                ("portal_search", 1),
                ("video_view", 1)
            ]
        );
    }
}
