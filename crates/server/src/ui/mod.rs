//! The web UI: server-rendered pages with compile-checked askama templates,
//! one stylesheet, no JavaScript build and no CDN.

pub mod analytics;
pub mod audit;
pub mod charts;
pub mod health;
pub mod journeys;
pub mod pages;
pub mod sentiment;
pub mod session;
pub mod throttle;
pub mod users;

use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use tracklog_domain::user::Role;

/// The stylesheet, compiled into the binary.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        include_str!("../../static/app.css"),
    )
}

/// One entry of the navigation.
pub struct NavItem {
    pub label: &'static str,
    pub href: &'static str,
    /// Pages not built yet are shown, greyed, so people see what is coming.
    pub available: bool,
    pub current: bool,
}

/// A group of entries under a heading.
pub struct NavSection {
    pub heading: &'static str,
    pub items: Vec<NavItem>,
}

/// The navigation a role sees; `current` is the path being shown.
pub fn navigation(role: Role, current: &str) -> Vec<NavSection> {
    use Role::*;
    let entries: [(&str, &str, &str, bool, &[Role]); 11] = [
        (
            "Home",
            "Overview",
            "/",
            true,
            &[Admin, Supervisor, Agent, Auditor],
        ),
        (
            "Customers",
            "Case journeys",
            "/ui/cases",
            true,
            &[Admin, Supervisor, Agent],
        ),
        (
            "Customers",
            "Portals",
            "/ui/portals",
            true,
            &[Admin, Supervisor],
        ),
        (
            "Contact centre",
            "Live",
            "/ui/analytics/live",
            true,
            &[Admin, Supervisor],
        ),
        (
            "Contact centre",
            "History",
            "/ui/analytics/history",
            true,
            &[Admin, Supervisor],
        ),
        (
            "Contact centre",
            "Dissatisfied conversations",
            "/ui/reports/dissatisfied",
            true,
            &[Admin, Supervisor],
        ),
        (
            "Contact centre",
            "Channel health",
            "/ui/analytics/health",
            true,
            &[Admin, Supervisor],
        ),
        (
            "Contact centre",
            "My performance",
            "/ui/analytics/me",
            true,
            &[Admin, Supervisor, Agent],
        ),
        (
            "Compliance",
            "Activity log",
            "/ui/audit",
            true,
            &[Admin, Auditor],
        ),
        ("Administration", "Users", "/ui/users", true, &[Admin]),
        (
            "Administration",
            "Access policies",
            "/ui/policies",
            false,
            &[Admin],
        ),
    ];
    let mut sections: Vec<NavSection> = Vec::new();
    for (heading, label, href, available, roles) in entries {
        if !roles.contains(&role) {
            continue;
        }
        let item = NavItem {
            label,
            href,
            available,
            current: href == current || (href != "/" && current.starts_with(href)),
        };
        match sections.last_mut() {
            Some(section) if section.heading == heading => section.items.push(item),
            _ => sections.push(NavSection {
                heading,
                items: vec![item],
            }),
        }
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_see_their_sections() {
        let headings =
            |role| -> Vec<&str> { navigation(role, "/").iter().map(|s| s.heading).collect() };
        assert_eq!(
            headings(Role::Admin),
            [
                "Home",
                "Customers",
                "Contact centre",
                "Compliance",
                "Administration"
            ]
        );
        assert_eq!(headings(Role::Auditor), ["Home", "Compliance"]);
        assert_eq!(
            headings(Role::Agent),
            ["Home", "Customers", "Contact centre"]
        );
        assert!(navigation(Role::Agent, "/")[0].items[0].current);
    }
}
