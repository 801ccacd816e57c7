//! CORS for browser trackers: a request to the ingestion endpoint that carries
//! a portal's public key is answered with CORS headers when its `Origin` is
//! one of that portal's allowed origins, and with none otherwise. Nothing
//! else in Tracklog is open to other origins.
//!
//! Hand-written rather than tower-http's `CorsLayer`, because the allowed
//! origins depend on the key in the request, which lives in the store.
//!
//! The channel analytics SDK posts to `/api/v1/channel/*` from agent
//! desktops with a SAS token in `Authorization`; the origins allowed to do
//! that are configured (`channel.sdk_allowed_origins`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::{PUBLIC_KEY_PATH, public_key_param};
use crate::state::AppState;

/// How long browsers may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

pub async fn public_ingest_cors(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let key = (request.uri().path() == PUBLIC_KEY_PATH)
        .then(|| public_key_param(request.uri()))
        .flatten();
    let (Some(origin), Some(key)) = (origin, key) else {
        return next.run(request).await;
    };
    let allowed = match origin.to_str() {
        Ok(text) => matches!(
            state.stores.portals.portal_by_public_key(&key).await,
            Ok(Some((_, portal))) if portal.allows_origin(text)
        ),
        Err(_) => false,
    };
    answer(
        request,
        next,
        origin,
        allowed,
        "content-type, content-encoding",
    )
    .await
}

/// Answers a preflight, or runs the request and adds the CORS headers when
/// `origin` is allowed. `Vary: Origin` either way, so caches keep answers
/// per origin.
async fn answer(
    request: Request,
    next: Next,
    origin: HeaderValue,
    allowed: bool,
    allow_headers: &'static str,
) -> Response {
    if request.method() == Method::OPTIONS {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = if allowed {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::FORBIDDEN
        };
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        if allowed {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(allow_headers),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE),
            );
        }
        return response;
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// The paths the channel analytics SDK calls.
const CHANNEL_SDK_PATHS: [&str; 2] = ["/api/v1/channel/init", "/api/v1/channel/events"];

pub async fn channel_sdk_cors(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let (Some(origin), true) = (origin, CHANNEL_SDK_PATHS.contains(&request.uri().path())) else {
        return next.run(request).await;
    };
    let allowed = origin.to_str().is_ok_and(|text| {
        state
            .config
            .channel
            .sdk_allowed_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(text))
    });
    answer(
        request,
        next,
        origin,
        allowed,
        "authorization, content-type, content-encoding",
    )
    .await
}
