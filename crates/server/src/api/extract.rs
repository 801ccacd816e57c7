//! Extractors whose failures speak the API's error format instead of axum's
//! plain-text rejections.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Query parameters; a bad one is a 400 naming it where serde can.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // An empty value (`from=`, as a form with a blank field sends) is no
        // value: the parameter's default applies.
        let query = parts.uri.query().unwrap_or_default();
        let given = url::form_urlencoded::parse(query.as_bytes()).filter(|(_, v)| !v.is_empty());
        let kept = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(given)
            .finish();
        let uri: axum::http::Uri =
            format!("/?{kept}")
                .parse()
                .map_err(|_| ApiError::BadRequest {
                    code: "invalid_query",
                    message: "the query string cannot be read".into(),
                    field: None,
                })?;
        axum::extract::Query::<T>::try_from_uri(&uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest {
                code: "invalid_query",
                message: e.body_text(),
                field: None,
            })
    }
}

/// A JSON body for management endpoints.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        read_json(req, state, false).await.map(ApiJson)
    }
}

/// A JSON body that is one object or an array of them (the bulk upserts).
pub struct ApiJsonItems(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for ApiJsonItems {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        read_json(req, state, true).await.map(ApiJsonItems)
    }
}

async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
    array_allowed: bool,
) -> Result<T, ApiError> {
    let json = axum::Json::<serde_json::Value>::from_request(req, state)
        .await
        .map_err(rejection)?
        .0;
    // serde would read an array into a struct field by field, in order:
    // not what the API documents, so only the bulk bodies take one.
    if json.is_array() && !array_allowed {
        return Err(ApiError::BadRequest {
            code: "invalid_json",
            message: "the body must be a JSON object".into(),
            field: None,
        });
    }
    serde_json::from_value(json).map_err(|e| ApiError::BadRequest {
        code: "invalid_json",
        message: format!("Failed to deserialize the JSON body into the target type: {e}"),
        field: None,
    })
}

fn rejection(e: JsonRejection) -> ApiError {
    match e {
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest {
            code: "invalid_content_type",
            message: "send Content-Type: application/json".into(),
            field: Some("Content-Type".into()),
        },
        JsonRejection::BytesRejection(_) => ApiError::PayloadTooLarge {
            limit: "max_body_bytes",
            message: "the body could not be read within the size limit".into(),
        },
        other => ApiError::BadRequest {
            code: "invalid_json",
            message: other.body_text(),
            field: None,
        },
    }
}

/// An optional JSON body: none, whitespace or `null` is `T::default()`.
/// A body that cannot be read is a 400 naming `field`, the body's one field.
pub fn optional_body<T: DeserializeOwned + Default>(
    body: &[u8],
    field: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice::<Option<T>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::BadRequest {
            code: "invalid_json",
            message: e.to_string(),
            field: Some(field.into()),
        })
}

/// The peer's address when the server knows it (always, when served by
/// [`crate::run`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// An authenticated caller holding the right `N` names (checked before the
/// body is read, see [`crate::auth::Authorized`]) and the actor its
/// management actions are recorded under.
pub struct Caller<N = crate::auth::need::Any> {
    pub principal: crate::auth::Principal,
    pub actor: crate::services::Actor,
    right: std::marker::PhantomData<N>,
}

impl<N: crate::auth::need::Need> FromRequestParts<crate::state::AppState> for Caller<N> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, ApiError> {
        let crate::auth::Authorized(principal, _) =
            crate::auth::Authorized::<N>::from_request_parts(parts, state).await?;
        let ClientAddr(peer) = match ClientAddr::from_request_parts(parts, state).await {
            Ok(addr) => addr,
            Err(never) => match never {},
        };
        let actor = super::policies::api_actor(&principal, &parts.headers, peer);
        Ok(Self {
            principal,
            actor,
            right: std::marker::PhantomData,
        })
    }
}

/// A JSON body that may be one object or an array of them.
pub fn one_or_many(value: serde_json::Value) -> Vec<serde_json::Value> {
    match value {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    }
}
