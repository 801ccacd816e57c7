//! The browser scripts: the portal tracker, `GET /sdk/tracker.js`, and the
//! channel analytics SDK, `GET /sdk/channel-analytics.js`. Both are
//! hand-written JavaScript kept in `crates/server/sdk/` and compiled into the
//! binary.
//!
//! Their URLs carry no version, so it is cached for a day (and may be served
//! stale for a week while the browser revalidates) rather than forever; the
//! ETag, a hash of the file, makes every revalidation a cheap 304. Portals
//! load it from their own origin, so it is marked as cross-origin readable.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The tracker's source.
pub const TRACKER_JS: &str = include_str!("../sdk/tracker.js");
/// The channel analytics SDK's source.
pub const CHANNEL_ANALYTICS_JS: &str = include_str!("../sdk/channel-analytics.js");

const CACHE_CONTROL: &str = "public, max-age=86400, stale-while-revalidate=604800";

/// A strong ETag: the first 128 bits of the file's SHA-256.
fn etag_of(source: &str) -> HeaderValue {
    let digest = Sha256::digest(source.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
}

static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| etag_of(TRACKER_JS));
static CHANNEL_ETAG: LazyLock<HeaderValue> = LazyLock::new(|| etag_of(CHANNEL_ANALYTICS_JS));

fn matches_etag(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes())
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
    serve(&headers, TRACKER_JS, &ETAG)
}

/// The channel analytics SDK: `TracklogChannel.initLogAnalytics(data,
/// correlationId)` and `TracklogChannel.logAnalyticsEvent(data, eventName,
/// correlationId)`, each a promise of the server's outcome.
#[utoipa::path(get, path = "/sdk/channel-analytics.js", tag = "sdk",
    responses(
        (status = 200, description = "The SDK", content_type = "text/javascript", body = String),
        (status = 304, description = "Not modified: the If-None-Match ETag is current"),
    ))]
pub async fn channel_analytics_js(headers: HeaderMap) -> Response {
    serve(&headers, CHANNEL_ANALYTICS_JS, &CHANNEL_ETAG)
}

fn serve(headers: &HeaderMap, source: &'static str, etag: &HeaderValue) -> Response {
    let status = if matches_etag(headers, etag) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let common = [
        (header::ETAG, etag.clone()),
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
        source,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let mut headers = HeaderMap::new();
        assert!(!matches_etag(&headers, &ETAG));
        let listed = format!("\"other\", W/{}", ETAG.to_str().unwrap());
        headers.insert(header::IF_NONE_MATCH, listed.parse().unwrap());
        assert!(matches_etag(&headers, &ETAG));
        assert!(!matches_etag(&headers, &CHANNEL_ETAG));
        headers.insert(header::IF_NONE_MATCH, "\"stale\"".parse().unwrap());
        assert!(!matches_etag(&headers, &ETAG));
    }
}
