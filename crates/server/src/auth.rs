//! Who is calling: access-policy credentials for the API.
//!
//! A request carries `Authorization: SharedAccessSignature ...` or
//! `Authorization: Basic ...`. The policy is looked up on every request, so a
//! policy created, rotated or deleted from the CLI takes effect at once.
//! Wrong, expired or revoked credentials get 401; a valid credential without
//! the right or scope gets 403. Keys are compared in constant time and never
//! logged.
//!
//! A policy limited to one portal or one provider may only send for it
//! ([`scope_allows`]): every other operation answers 403, whatever rights
//! the policy holds, because none of them is confined to one portal's or
//! one provider's data.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tracklog_domain::auth::{Credential, Right, Rights};
use tracklog_domain::ids::{OrgId, PolicyName, PortalId};
use tracklog_domain::time::UtcMillis;

use crate::error::ApiError;
use crate::metrics::StatusLabel;
use crate::state::AppState;

/// An authenticated caller of the API.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org: OrgId,
    pub policy: PolicyName,
    pub rights: Rights,
    /// A portal-scoped policy may only send for this portal.
    pub portal: Option<PortalId>,
    pub provider: Option<String>,
}

impl Principal {
    /// Fails with 403 unless the policy holds `right`.
    pub fn require(&self, right: Right) -> Result<(), ApiError> {
        if self.rights.allows(right) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "policy {} lacks the {} right",
                self.policy,
                right.as_str()
            )))
        }
    }
}

/// The rights a handler can demand of its caller before the body is read
/// ([`Authorized`], [`crate::api::extract::Caller`]).
pub mod need {
    use tracklog_domain::auth::Right;

    /// A right as a type.
    pub trait Need: Send + Sync + 'static {
        /// `None`: any authenticated caller.
        const RIGHT: Option<Right>;
    }
    /// Any authenticated caller: the handler checks what it needs.
    pub struct Any;
    pub struct Read;
    pub struct Write;
    pub struct Manage;
    impl Need for Any {
        const RIGHT: Option<Right> = None;
    }
    impl Need for Read {
        const RIGHT: Option<Right> = Some(Right::Read);
    }
    impl Need for Write {
        const RIGHT: Option<Right> = Some(Right::Write);
    }
    impl Need for Manage {
        const RIGHT: Option<Right> = Some(Right::Manage);
    }
}

/// A caller that holds the right `N` names, checked as the request's head
/// is read: a handler whose body is parsed after it answers 403 to a caller
/// without the right, never a 400 that would describe the body to them.
pub struct Authorized<N>(pub Principal, pub std::marker::PhantomData<N>);

impl<N: need::Need> FromRequestParts<AppState> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if let Some(right) = N::RIGHT
            && let Err(error) = principal.require(right)
        {
            state
                .metrics
                .auth_failures
                .get_or_create(&StatusLabel { status: 403 })
                .inc();
            return Err(error);
        }
        Ok(Self(principal, std::marker::PhantomData))
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Unauthorized(message.to_owned())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let result = authenticate(parts, state).await.and_then(|principal| {
            if scope_allows(&principal, &parts.method, parts.uri.path()) {
                Ok(principal)
            } else {
                let scope = match (&principal.portal, &principal.provider) {
                    (Some(portal), _) => format!("portal {portal}"),
                    (None, Some(provider)) => format!("provider {provider}"),
                    (None, None) => unreachable!("an unscoped policy is allowed everything"),
                };
                Err(ApiError::Forbidden(format!(
                    "policy {} is limited to {scope}; it may only send for it",
                    principal.policy
                )))
            }
        });
        if let Err(error) = &result {
            let status = error.status().as_u16();
            if status == 401 || status == 403 {
                state
                    .metrics
                    .auth_failures
                    .get_or_create(&StatusLabel { status })
                    .inc();
            }
        }
        result
    }
}

/// Whether a scoped policy may call `method path`: a portal's policy sends
/// interactions (natively or as Segment calls), a provider's sends channel
/// analytics and reads the KPI event definitions its SDK validates against.
/// Unscoped policies pass; their rights decide.
pub fn scope_allows(principal: &Principal, method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    const PORTAL: &[&str] = &[
        PUBLIC_KEY_PATH,
        "/v1/batch",
        "/v1/identify",
        "/v1/page",
        "/v1/track",
    ];
    const PROVIDER: &[&str] = &[
        "/api/v1/channel/init",
        "/api/v1/channel/events",
        "/api/v1/conversations",
        "/api/v1/sessions",
        "/api/v1/participants",
        "/api/v1/kpi-events",
    ];
    let path = path.trim_end_matches('/');
    if principal.portal.is_some() {
        *method == Method::POST && PORTAL.contains(&path)
    } else if principal.provider.is_some() {
        (*method == Method::POST && PROVIDER.contains(&path))
            || (*method == Method::GET
                && (path == "/api/v1/kpi-event-definitions"
                    || path.starts_with("/api/v1/kpi-event-definitions/")))
    } else {
        true
    }
}

/// The path a portal's public ingest key may send to, and nothing else.
pub const PUBLIC_KEY_PATH: &str = "/api/v1/interactions";

/// The policy name public-key callers are recorded under.
pub const PUBLIC_KEY_POLICY: &str = "portal-public-key";

/// The `key` query parameter, when it holds a public ingest key.
pub fn public_key_param(uri: &axum::http::Uri) -> Option<String> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "key")
        .map(|(_, value)| value.into_owned())
        .filter(|key| key.starts_with("tlpk_"))
}

/// A browser tracker's call: the portal's public key, from one of the
/// portal's allowed origins, to the ingestion endpoint only. It may write
/// for that portal and nothing else.
async fn authenticate_public(
    parts: &Parts,
    state: &AppState,
    key: &str,
) -> Result<Principal, ApiError> {
    let (org, portal) = state
        .stores
        .portals
        .portal_by_public_key(key)
        .await?
        .ok_or_else(|| unauthorized("the public key is not valid"))?;
    if parts.uri.path() != PUBLIC_KEY_PATH {
        return Err(ApiError::Forbidden(
            "a public ingest key may only send interactions".into(),
        ));
    }
    let origin = parts
        .headers
        .get(axum::http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .ok_or_else(|| ApiError::Forbidden("a public ingest key needs an Origin".into()))?;
    if !portal.allows_origin(origin) {
        return Err(ApiError::Forbidden(format!(
            "origin {origin} is not allowed for portal {}",
            portal.id
        )));
    }
    Ok(Principal {
        org,
        policy: PolicyName::parse(PUBLIC_KEY_POLICY).expect("a valid name"),
        rights: Rights::from_iter([Right::Write]),
        portal: Some(portal.id),
        provider: None,
    })
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    if parts.headers.get(AUTHORIZATION).is_none()
        && let Some(key) = public_key_param(&parts.uri)
    {
        return authenticate_public(parts, state, &key).await;
    }
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("an Authorization header is required"))?
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text"))?;
    let credential =
        Credential::parse(header).map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let invalid = || unauthorized("the credential is not valid");
    let name = PolicyName::parse(credential.policy_name()).map_err(|_| invalid())?;
    let policy = state.stores.meta.policy(&name).await?.ok_or_else(invalid)?;
    match &credential {
        Credential::Sas(token) => {
            // Check both keys without short-circuiting, so timing does not
            // reveal which one matched.
            let signed =
                token.signed_with(&policy.primary_key) | token.signed_with(&policy.secondary_key);
            if !signed {
                return Err(invalid());
            }
            if token.expired_at(UtcMillis::now().as_millis().div_euclid(1000)) {
                return Err(unauthorized("the SAS token has expired"));
            }
            if !token.covers_path(parts.uri.path()) {
                return Err(ApiError::Forbidden(
                    "the SAS token's resource does not cover this URL".into(),
                ));
            }
        }
        Credential::Basic { key, .. } => {
            let matches = policy.primary_key.matches(key) | policy.secondary_key.matches(key);
            if !matches {
                return Err(invalid());
            }
        }
    }
    Ok(Principal {
        org: policy.org,
        policy: policy.name,
        rights: policy.rights,
        portal: policy.portal,
        provider: policy.provider,
    })
}
