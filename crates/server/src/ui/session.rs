//! Signed-in people: session cookies, CSRF tokens and the extractor that
//! guards every page.
//!
//! The cookie holds 32 random bytes; the store keeps only their SHA-256, so a
//! copy of the database does not let anyone sign in. Cookies are HttpOnly and
//! SameSite=Lax, and Secure unless the request reached a loopback host over
//! plain HTTP (configurable). Every form that changes state carries the
//! session's CSRF token; the sign-in form uses a double-submit cookie.

use axum::extract::FromRequestParts;
use axum::http::header::HOST;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracklog_domain::ids::{OrgId, UserName};
use tracklog_domain::time::UtcMillis;
use tracklog_domain::user::Role;

use crate::config::SecureCookies;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "tracklog_session";
pub const LOGIN_CSRF_COOKIE: &str = "tracklog_login_csrf";

/// A random token, URL-safe base64 of 32 bytes.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps of a session token.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two tokens.
pub fn tokens_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether cookies for this request must be Secure.
pub fn secure_cookies(state: &AppState, parts: &Parts) -> bool {
    match state.config.ui.secure_cookies {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => {
            let forwarded_https = parts
                .headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            let host = parts
                .headers
                .get(HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            forwarded_https || !is_loopback_host(host)
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A cookie with Tracklog's flags.
pub fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    secure: bool,
    max_age_seconds: i64,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(if name == LOGIN_CSRF_COOKIE {
            SameSite::Strict
        } else {
            SameSite::Lax
        })
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build()
}

/// The person behind a page request.
#[derive(Debug, Clone)]
pub struct WebUser {
    pub org: OrgId,
    pub name: UserName,
    pub role: Role,
    pub csrf_token: String,
    pub token_hash: String,
}

/// Sends the browser to the sign-in page, remembering where it was going.
pub struct SignInRequired(String);

impl IntoResponse for SignInRequired {
    fn into_response(self) -> Response {
        let next: String = url_escape(&self.0);
        Redirect::to(&format!("/login?next={next}")).into_response()
    }
}

/// What `next=` escapes: everything but a path's own characters.
const NEXT_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

fn url_escape(text: &str) -> String {
    utf8_percent_encode(text, NEXT_ESCAPE).to_string()
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = SignInRequired;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, SignInRequired> {
        let target = parts
            .uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let jar = CookieJar::from_headers(&parts.headers);
        let token = jar
            .get(SESSION_COOKIE)
            .map(|c| c.value().to_owned())
            .ok_or_else(|| SignInRequired(target.clone()))?;
        let hash = token_hash(&token);
        let session = state
            .stores
            .meta
            .web_session(&hash, UtcMillis::now())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| SignInRequired(target.clone()))?;
        let user = state
            .stores
            .meta
            .user(&session.user)
            .await
            .ok()
            .flatten()
            .filter(|user| !user.disabled && user.org == session.org)
            .ok_or_else(|| SignInRequired(target.clone()))?;
        Ok(WebUser {
            org: session.org,
            name: user.name,
            role: user.role,
            csrf_token: session.csrf_token,
            token_hash: hash,
        })
    }
}

/// A local path to return to after signing in; anything else becomes `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.contains(['\r', '\n']) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_this_site() {
        assert_eq!(safe_next(Some("/ui/audit?x=1")), "/ui/audit?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn next_is_escaped_for_the_query_string() {
        assert_eq!(
            url_escape("/ui/audit?x=1&y=ä"),
            "/ui/audit%3Fx%3D1%26y%3D%C3%A4"
        );
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1:8080"));
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("[::1]:8080"));
        assert!(!is_loopback_host("tracklog.example.com"));
        assert!(!is_loopback_host("10.0.0.5:8080"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token();
        assert_ne!(a, random_token());
        assert_eq!(token_hash(&a).len(), 64);
        assert!(tokens_match(&a, &a.clone()));
        assert!(!tokens_match(&a, "x"));
    }
}
