//! The authorisation matrix: every operation of the OpenAPI document, tried
//! with every kind of credential. [`TABLE`] says what each operation needs;
//! [`expected`] turns that into 2xx-or-other-4xx ("passes authorisation"),
//! 401 or 403 for each credential. A route missing from the table, or a row
//! whose route is gone, fails the test, as does any 5xx.
//!
//! Another org's manage key must never see the default org's data: every
//! answer it gets is searched for markers planted in the default org, and
//! the default org's lists must be the same after its turn as before.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tracklog_domain::auth::{Rights, make_sas_token};
use tracklog_domain::ids::{PolicyName, PortalId};
use tracklog_server::services::{Actor, policies};
use tracklog_store::Policy;

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Nothing: health, metrics, the OpenAPI document, the SDKs, the
    /// public key.
    Open,
    Read,
    Write,
    Manage,
    /// Write, and a portal's scoped policy or public key may call it.
    PortalSend,
    /// Write, and a portal's scoped policy may call it.
    SegmentSend,
    /// Write, and a provider's scoped policy may call it.
    ProviderSend,
    /// Read, and a provider's scoped policy may call it.
    ProviderRead,
}

use Needs::*;

const TABLE: &[(&str, &str, Needs)] = &[
    ("GET", "/healthz", Open),
    ("GET", "/readyz", Open),
    ("GET", "/metrics", Open),
    ("GET", "/api/v1/openapi.json", Open),
    ("GET", "/sdk/tracker.js", Open),
    ("GET", "/sdk/channel-analytics.js", Open),
    ("GET", "/api/v1/audit/public-key", Open),
    ("POST", "/api/v1/interactions", PortalSend),
    ("GET", "/api/v1/contacts/{id}/interactions", Read),
    ("POST", "/v1/batch", SegmentSend),
    ("POST", "/v1/identify", SegmentSend),
    ("POST", "/v1/page", SegmentSend),
    ("POST", "/v1/track", SegmentSend),
    ("GET", "/api/v1/metrics", Read),
    ("POST", "/api/v1/metrics/query", Read),
    ("POST", "/api/v1/metrics/drilldown", Read),
    ("GET", "/api/v1/realtime", Read),
    ("POST", "/api/v1/analytics/rebuild", Manage),
    ("GET", "/api/v1/forecast", Read),
    ("GET", "/api/v1/alert-rules", Read),
    ("POST", "/api/v1/alert-rules", Manage),
    ("DELETE", "/api/v1/alert-rules/{id}", Manage),
    ("GET", "/api/v1/alerts", Read),
    ("POST", "/api/v1/alerts/evaluate", Manage),
    ("GET", "/api/v1/reports/dissatisfied", Read),
    ("GET", "/api/v1/providers/health", Read),
    ("POST", "/api/v1/audit/records", Write),
    ("GET", "/api/v1/audit/records/{id}", Read),
    ("GET", "/api/v1/audit/search", Read),
    ("GET", "/api/v1/audit/export", Read),
    ("GET", "/api/v1/audit/reports", Read),
    ("GET", "/api/v1/audit/reports/{name}", Read),
    ("GET", "/api/v1/audit/verify", Read),
    ("GET", "/api/v1/audit/settings", Manage),
    ("PUT", "/api/v1/audit/settings", Manage),
    ("GET", "/api/v1/audit/settings/entities/{entity}", Manage),
    ("PUT", "/api/v1/audit/settings/entities/{entity}", Manage),
    ("POST", "/api/v1/channel/init", ProviderSend),
    ("POST", "/api/v1/channel/events", ProviderSend),
    ("GET", "/api/v1/conversations", Read),
    ("POST", "/api/v1/conversations", ProviderSend),
    ("GET", "/api/v1/conversations/{id}", Read),
    ("GET", "/api/v1/sessions", Read),
    ("POST", "/api/v1/sessions", ProviderSend),
    ("GET", "/api/v1/sessions/{id}", Read),
    ("GET", "/api/v1/participants", Read),
    ("POST", "/api/v1/participants", ProviderSend),
    ("GET", "/api/v1/kpi-events", Read),
    ("POST", "/api/v1/kpi-events", ProviderSend),
    ("GET", "/api/v1/kpi-event-definitions", ProviderRead),
    ("POST", "/api/v1/kpi-event-definitions", Manage),
    ("GET", "/api/v1/kpi-event-definitions/{name}", ProviderRead),
    ("PATCH", "/api/v1/kpi-event-definitions/{name}", Manage),
    ("DELETE", "/api/v1/kpi-event-definitions/{name}", Manage),
    ("GET", "/api/v1/providers", Read),
    ("POST", "/api/v1/providers", Manage),
    ("GET", "/api/v1/providers/{id}", Read),
    ("PATCH", "/api/v1/providers/{id}", Manage),
    ("DELETE", "/api/v1/providers/{id}", Manage),
    ("GET", "/api/v1/queues", Read),
    ("PUT", "/api/v1/queues/{queue}", Manage),
    ("GET", "/api/v1/contacts", Read),
    ("POST", "/api/v1/contacts", Write),
    ("GET", "/api/v1/contacts/{id}", Read),
    ("GET", "/api/v1/contacts/{id}/export", Read),
    ("DELETE", "/api/v1/contacts/{id}", Manage),
    ("GET", "/api/v1/cases", Read),
    ("POST", "/api/v1/cases", Write),
    ("GET", "/api/v1/cases/{id}", Read),
    ("GET", "/api/v1/cases/{id}/journey", Read),
    ("GET", "/api/v1/interaction-types", Read),
    ("POST", "/api/v1/interaction-types", Manage),
    ("GET", "/api/v1/interaction-types/{name}", Read),
    ("PATCH", "/api/v1/interaction-types/{name}", Manage),
    ("DELETE", "/api/v1/interaction-types/{name}", Manage),
    ("POST", "/api/v1/interaction-types/{name}/restore", Manage),
    ("GET", "/api/v1/policies", Manage),
    ("POST", "/api/v1/policies", Manage),
    ("GET", "/api/v1/policies/{name}", Manage),
    ("DELETE", "/api/v1/policies/{name}", Manage),
    ("POST", "/api/v1/policies/{name}/rotate", Manage),
    ("GET", "/api/v1/portals", Manage),
    ("POST", "/api/v1/portals", Manage),
    ("GET", "/api/v1/portals/{id}", Manage),
    ("PUT", "/api/v1/portals/{id}", Manage),
    ("DELETE", "/api/v1/portals/{id}", Manage),
    ("POST", "/api/v1/portals/{id}/update-configuration", Manage),
    ("GET", "/api/v1/portals/{id}/insights", Read),
    ("GET", "/api/v1/users", Manage),
    ("POST", "/api/v1/users", Manage),
    ("GET", "/api/v1/users/{name}", Manage),
    ("PATCH", "/api/v1/users/{name}", Manage),
    ("DELETE", "/api/v1/users/{name}", Manage),
    ("POST", "/api/v1/users/{name}/password", Manage),
];

/// The credentials every operation is tried with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    OtherOrgManage,
    ReadOnly,
    WriteOnly,
    Manage,
    PortalScoped,
    ProviderScoped,
    PublicPortalKey,
    ExpiredSas,
    SasForAnotherPath,
}

const EVERYONE: [Who; 10] = [
    Who::OtherOrgManage,
    Who::Nobody,
    Who::ReadOnly,
    Who::WriteOnly,
    Who::PortalScoped,
    Who::ProviderScoped,
    Who::PublicPortalKey,
    Who::ExpiredSas,
    Who::SasForAnotherPath,
    Who::Manage,
];

/// What the answer must be: `None` for "passes authorisation" (2xx, or a
/// 4xx other than 401 and 403 for a request the matrix did not make valid).
fn expected(needs: Needs, who: Who) -> Option<StatusCode> {
    const PASS: Option<StatusCode> = None;
    const UNAUTHORISED: Option<StatusCode> = Some(StatusCode::UNAUTHORIZED);
    const FORBIDDEN: Option<StatusCode> = Some(StatusCode::FORBIDDEN);
    if needs == Open {
        return PASS;
    }
    let allowed = match who {
        Who::Nobody | Who::ExpiredSas => return UNAUTHORISED,
        Who::SasForAnotherPath => return FORBIDDEN,
        Who::Manage | Who::OtherOrgManage => true,
        Who::ReadOnly => matches!(needs, Read | ProviderRead),
        Who::WriteOnly => matches!(needs, Write | PortalSend | SegmentSend | ProviderSend),
        Who::PortalScoped => matches!(needs, PortalSend | SegmentSend),
        Who::ProviderScoped => matches!(needs, ProviderSend | ProviderRead),
        Who::PublicPortalKey => needs == PortalSend,
    };
    if allowed { PASS } else { FORBIDDEN }
}

/// What the default org holds that no other org may see.
const MARKER: &str = "zq-default-org-only";

/// Path parameters: real objects of the default org for reads, so that
/// another org asking for them shows whether it can see them; for changes,
/// names that exist nowhere, so that the matrix removes nothing it needs.
fn fill(method: &str, path: &str) -> String {
    let absent = method != "GET";
    let value = |name: &str| -> &'static str {
        if absent {
            return "matrix-absent";
        }
        match (path, name) {
            (p, "id") if p.starts_with("/api/v1/contacts") => "c-matrix",
            (p, "id") if p.starts_with("/api/v1/cases") => "CAS-MATRIX",
            (p, "id") if p.starts_with("/api/v1/audit/records") => "audit-matrix",
            (p, "id") if p.starts_with("/api/v1/portals") => "matrixportal",
            (p, "id") if p.starts_with("/api/v1/providers") => "matrixprovider",
            (p, "id") if p.starts_with("/api/v1/conversations") => "conv-matrix",
            (p, "id") if p.starts_with("/api/v1/sessions") => "sess-matrix",
            (p, "name") if p.starts_with("/api/v1/audit/reports") => "accessed-custom-entity",
            (p, "name") if p.starts_with("/api/v1/policies") => "matrix-manage",
            (p, "name") if p.starts_with("/api/v1/users") => "matrix-admin",
            (p, "name") if p.starts_with("/api/v1/interaction-types") => "portal_search",
            (p, "name") if p.starts_with("/api/v1/kpi-event-definitions") => "matrix_kpi",
            (_, "entity") => "account",
            (_, "queue") => "billing",
            (p, n) => panic!("no value for {{{n}}} in {p}: add one to the matrix"),
        }
    };
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(value(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    // Queries that make the reads answer with data.
    let query = match path {
        "/api/v1/audit/export" => "?format=jsonl",
        "/api/v1/audit/search" => "?limit=100",
        "/api/v1/contacts" => "?limit=100",
        "/api/v1/cases" => "?contact=c-matrix",
        _ => "",
    };
    out + query
}

struct Credentials {
    other_org: Policy,
    read: Policy,
    write: Policy,
    manage: Policy,
    portal: Policy,
    provider: Policy,
    public_key: String,
}

async fn policy(
    server: &TestServer,
    org: &str,
    name: &str,
    rights: &str,
    portal: Option<&str>,
    provider: Option<&str>,
) -> Policy {
    let org = server.org(org).await;
    policies::create(
        &server.stores,
        org,
        &Actor::cli(),
        policies::NewPolicy {
            name: PolicyName::parse(name).unwrap(),
            rights: Rights::parse_list(rights).unwrap(),
            portal: portal.map(|p| PortalId::parse(p).unwrap()),
            provider: provider.map(str::to_owned),
        },
    )
    .await
    .unwrap()
}

fn with_policy(request: reqwest::RequestBuilder, policy: &Policy) -> reqwest::RequestBuilder {
    request.basic_auth(policy.name.as_str(), Some(policy.primary_key.expose()))
}

impl Credentials {
    fn apply(
        &self,
        server: &TestServer,
        who: Who,
        method: &Method,
        url: &str,
    ) -> reqwest::RequestBuilder {
        let sas = |resource: String, expiry: i64| {
            make_sas_token(
                &resource,
                &self.manage.name,
                &self.manage.primary_key,
                expiry,
            )
        };
        let now = jiff::Timestamp::now().as_second();
        match who {
            Who::PublicPortalKey => {
                let separator = if url.contains('?') { '&' } else { '?' };
                server
                    .http
                    .request(
                        method.clone(),
                        format!("{url}{separator}key={}", self.public_key),
                    )
                    .header("Origin", "https://help.example.com")
            }
            _ => {
                let request = server.http.request(method.clone(), url);
                match who {
                    Who::Nobody => request,
                    Who::OtherOrgManage => with_policy(request, &self.other_org),
                    Who::ReadOnly => with_policy(request, &self.read),
                    Who::WriteOnly => with_policy(request, &self.write),
                    Who::Manage => with_policy(request, &self.manage),
                    Who::PortalScoped => with_policy(request, &self.portal),
                    Who::ProviderScoped => with_policy(request, &self.provider),
                    Who::ExpiredSas => {
                        request.header("Authorization", sas(server.url("/"), now - 60))
                    }
                    Who::SasForAnotherPath => request.header(
                        "Authorization",
                        sas(server.url("/api/v1/not-this-one"), now + 3600),
                    ),
                    Who::PublicPortalKey => unreachable!(),
                }
            }
        }
    }
}

/// The answer's body; of an event stream, its first event (it never ends).
async fn read_body(mut response: reqwest::Response) -> String {
    let streaming = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        return response.text().await.unwrap_or_default();
    }
    match tokio::time::timeout(Duration::from_secs(10), response.chunk()).await {
        Ok(Ok(Some(chunk))) => String::from_utf8_lossy(&chunk).into_owned(),
        _ => String::new(),
    }
}

/// The default org's data, planted through the API.
async fn plant(server: &TestServer, manage: &Policy) -> String {
    let post = |path: &'static str, body: Value| {
        let request = with_policy(server.http.post(server.url(path)), manage).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "{path}: {status} {text}");
            text
        }
    };
    let portal = post(
        "/api/v1/portals",
        json!({"id": "matrixportal", "name": MARKER,
               "allowed_origins": ["https://help.example.com"]}),
    )
    .await;
    let portal: Value = serde_json::from_str(&portal).unwrap();
    post("/api/v1/portals", json!({"id": "help", "name": "Help"})).await;
    post(
        "/api/v1/contacts",
        json!({"id": "c-matrix", "name": MARKER}),
    )
    .await;
    post(
        "/api/v1/cases",
        json!({"id": "CAS-MATRIX", "contact_id": "c-matrix", "title": MARKER,
               "created_at": "2026-03-01T12:00:00Z"}),
    )
    .await;
    post(
        "/api/v1/interactions",
        json!({"portal_interactionid": "i-matrix", "type": "portal_search",
               "portal_timestamp": "2026-03-01T10:00:00Z", "portal_portalid": "matrixportal",
               "portal_contactid": "c-matrix", "session_id": "s",
               "portal_searchstring": MARKER}),
    )
    .await;
    post(
        "/api/v1/audit/records",
        json!({"Id": "audit-matrix", "CreationTime": "2026-03-01T10:00:00Z",
               "Operation": "Update", "User": MARKER, "EntityName": "account",
               "Fields": {"note": MARKER}}),
    )
    .await;
    portal["public_key"].as_str().unwrap().to_owned()
}

/// The default org's lists, as its manage key sees them.
async fn snapshot(server: &TestServer, manage: &Policy) -> Vec<String> {
    let mut lists = Vec::new();
    for path in [
        "/api/v1/contacts?limit=1000",
        "/api/v1/policies",
        "/api/v1/portals",
        "/api/v1/users",
        "/api/v1/interaction-types",
        "/api/v1/providers",
        "/api/v1/kpi-event-definitions",
        "/api/v1/alert-rules",
        "/api/v1/audit/settings",
        "/api/v1/contacts/c-matrix/interactions",
    ] {
        let response = with_policy(server.http.get(server.url(path)), manage)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        lists.push(format!("{path}: {}", response.text().await.unwrap()));
    }
    lists
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_with_every_credential() {
    let server = TestServer::start().await;
    let manage = policy(&server, "default", "matrix-manage", "manage", None, None).await;
    let public_key = plant(&server, &manage).await;
    let credentials = Credentials {
        other_org: policy(&server, "other", "other-manage", "manage", None, None).await,
        read: policy(&server, "default", "matrix-read", "read", None, None).await,
        write: policy(&server, "default", "matrix-write", "write", None, None).await,
        portal: policy(
            &server,
            "default",
            "matrix-portal",
            "write,read",
            Some("help"),
            None,
        )
        .await,
        provider: policy(
            &server,
            "default",
            "matrix-provider",
            "write,read",
            None,
            Some("contoso"),
        )
        .await,
        manage,
        public_key,
    };

    // Pages are signed in with a session: page_roles.rs covers them.
    let (_, served) = server.documented_operations().await;
    let tabled: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let untabled: Vec<_> = served.difference(&tabled).collect();
    assert!(
        untabled.is_empty(),
        "operations without a row: {untabled:?}"
    );
    let gone: Vec<_> = tabled.difference(&served).collect();
    assert!(
        gone.is_empty(),
        "rows for operations no longer served: {gone:?}"
    );

    let before = snapshot(&server, &credentials.manage).await;
    let mut wrong = Vec::new();
    let mut cells = 0;
    let mut owner_saw = BTreeSet::new();
    // Another org's turn first, on everything, before anything changes.
    for who in EVERYONE {
        for (method, path, needs) in TABLE {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let url = server.url(&fill(method.as_str(), path));
            let mut request = credentials.apply(&server, who, &method, &url);
            if method != Method::GET && method != Method::DELETE {
                request = request.json(&json!({}));
            }
            let response = request
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = read_body(response).await;
            cells += 1;
            let want = expected(*needs, who);
            let fine = match want {
                Some(code) => status == code,
                None => status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            };
            if !fine || status.is_server_error() {
                wrong.push(format!(
                    "{method} {path} as {who:?}: {status}, expected {}: {}",
                    want.map_or("to pass authorisation".into(), |c| c.to_string()),
                    body.chars().take(160).collect::<String>()
                ));
            }
            if who == Who::Manage && body.contains(MARKER) {
                owner_saw.insert(*path);
            }
            if who == Who::OtherOrgManage && body.contains(MARKER) {
                wrong.push(format!(
                    "{method} {path}: another org read the default org's data"
                ));
            }
        }
        if who == Who::OtherOrgManage {
            assert_eq!(
                snapshot(&server, &credentials.manage).await,
                before,
                "another org changed the default org's data"
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells are wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(cells, TABLE.len() * EVERYONE.len());
    // The same requests show the default org its own data: another org's
    // probes asked for real objects, not for names that exist nowhere.
    for path in [
        "/api/v1/contacts/{id}",
        "/api/v1/contacts/{id}/export",
        "/api/v1/contacts/{id}/interactions",
        "/api/v1/cases/{id}",
        "/api/v1/audit/records/{id}",
        "/api/v1/audit/search",
        "/api/v1/audit/export",
        "/api/v1/portals/{id}",
    ] {
        assert!(
            owner_saw.contains(path),
            "the owner did not see its data at {path}"
        );
    }
    server.stop().await;
}
