//! The browser tracker, `GET /sdk/tracker.js`: hand-written JavaScript kept in
//! `crates/server/sdk/tracker.js` and compiled into the binary.
//!
//! Its URL carries no version, so it is cached for a day (and may be served
//! stale for a week while the browser revalidates) rather than forever; the
//! ETag, a hash of the file, makes every revalidation a cheap 304. Portals
//! load it from their own origin, so it is marked as cross-origin readable.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The tracker's source.
pub const TRACKER_JS: &str = include_str!("../sdk/tracker.js");

const CACHE_CONTROL: &str = "public, max-age=86400, stale-while-revalidate=604800";

/// A strong ETag: the first 128 bits of the file's SHA-256.
static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| {
    let digest = Sha256::digest(TRACKER_JS.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
});

fn matches_etag(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag.as_bytes() == ETAG.as_bytes())
}

/// The browser tracker. It captures knowledge-article, blog-post and
/// forum-thread views and searches, and sends them to
/// `POST /api/v1/interactions?key=<public key>` (see README.md).
#[utoipa::path(get, path = "/sdk/tracker.js", tag = "sdk",
    responses(
        (status = 200, description = "The tracker", content_type = "text/javascript", body = String),
        (status = 304, description = "Not modified: the If-None-Match ETag is current"),
    ))]
pub async fn tracker_js(headers: HeaderMap) -> Response {
    let status = if matches_etag(&headers) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let common = [
        (header::ETAG, ETAG.clone()),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        ),
        (
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ),
    ];
    if status == StatusCode::NOT_MODIFIED {
        return (status, common).into_response();
    }
    (
        status,
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        TRACKER_JS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let mut headers = HeaderMap::new();
        assert!(!matches_etag(&headers));
        let listed = format!("\"other\", W/{}", ETAG.to_str().unwrap());
        headers.insert(header::IF_NONE_MATCH, listed.parse().unwrap());
        assert!(matches_etag(&headers));
        headers.insert(header::IF_NONE_MATCH, "\"stale\"".parse().unwrap());
        assert!(!matches_etag(&headers));
    }
}
