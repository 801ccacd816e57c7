//! The HTTP boundary's one error type. Every variant maps to exactly one status
//! code; the body is always `{"error": {"code", "message", "field"?}}`.
//!
//! Server errors are logged at error level with their cause; client errors at
//! debug level. The body never carries internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracklog_domain::ingest::BodyError;
use tracklog_store::StoreError;

/// Seconds a client is asked to wait after a 503 or 429.
pub const RETRY_AFTER_SECONDS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; `field` names the culprit when there is one.
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    /// 401: no credential, or a wrong, expired or revoked one.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid credential without the right or scope needed.
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409
    #[error("{0}")]
    Conflict(String),
    /// 413: a size limit, named in the message.
    #[error("{message}")]
    PayloadTooLarge {
        limit: &'static str,
        message: String,
    },
    /// 422: well-formed but semantically wrong.
    #[error("{message}")]
    Unprocessable {
        message: String,
        field: Option<String>,
    },
    /// 429, with Retry-After.
    #[error("{0}")]
    TooManyRequests(String),
    /// 503, with Retry-After: overloaded or the store is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 500
    #[error("{0}")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// A 400 about one field.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "invalid_parameter",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unprocessable { .. } => "unprocessable",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { field, .. } | ApiError::Unprocessable { field, .. } => {
                field.as_deref()
            }
            ApiError::PayloadTooLarge { limit, .. } => Some(limit),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request refused");
        }
        // Internals stay in the log; the client gets a generic message.
        let message = match &self {
            ApiError::Internal(_) => "internal error; see the server log".to_owned(),
            other => other.to_string(),
        };
        let body = Body {
            error: ErrorBody {
                code: self.code(),
                message: &message,
                field: self.field(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("SharedAccessSignature, Basic realm=\"tracklog\""),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Overloaded => {
                ApiError::Unavailable("the server is overloaded; retry later".into())
            }
            StoreError::Unavailable(message) => {
                tracing::warn!(%message, "store unavailable");
                ApiError::Unavailable("the store is unavailable; retry later".into())
            }
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} was not found")),
            StoreError::BadCursor => ApiError::bad_field("cursor", "the cursor is not valid"),
            StoreError::BadQuery(message) => ApiError::bad_field("q", message),
            StoreError::Internal(message) => ApiError::Internal(message),
        }
    }
}

impl From<tracklog_store::BadCursor> for ApiError {
    fn from(error: tracklog_store::BadCursor) -> Self {
        StoreError::from(error).into()
    }
}

impl From<crate::services::users::UserError> for ApiError {
    fn from(error: crate::services::users::UserError) -> Self {
        use crate::services::users::UserError;
        match error {
            UserError::WeakPassword => ApiError::Unprocessable {
                message: error.to_string(),
                field: Some("password".into()),
            },
            UserError::NotFound(_) => ApiError::NotFound(error.to_string()),
            UserError::Invalid(message) => ApiError::Unprocessable {
                message,
                field: None,
            },
            UserError::LastAdmin(_) => ApiError::Conflict(error.to_string()),
            UserError::Hash(message) => ApiError::Internal(message),
            UserError::Store(store) => store.into(),
        }
    }
}

impl From<crate::services::ServiceError> for ApiError {
    fn from(error: crate::services::ServiceError) -> Self {
        use crate::services::ServiceError;
        match error {
            ServiceError::Invalid(invalid) => ApiError::Unprocessable {
                message: format!("{}: {}", invalid.field, invalid.message),
                field: Some(invalid.field),
            },
            ServiceError::NotFound(message) => ApiError::NotFound(message),
            ServiceError::Store(store) => store.into(),
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooManyItems { .. } => ApiError::PayloadTooLarge {
                limit: "max_batch_items",
                message: error.to_string(),
            },
            BodyError::InvalidJson(_) => ApiError::BadRequest {
                code: "invalid_json",
                message: error.to_string(),
                field: None,
            },
            BodyError::WrongShape | BodyError::Empty => ApiError::BadRequest {
                code: "invalid_body",
                message: error.to_string(),
                field: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_has_a_status() {
        let cases = [
            (StoreError::Overloaded, 503),
            (StoreError::Unavailable("x".into()), 503),
            (StoreError::Conflict("x".into()), 409),
            (StoreError::NotFound("x".into()), 404),
            (StoreError::BadCursor, 400),
            (StoreError::BadQuery("x".into()), 400),
            (StoreError::Internal("x".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(error).status().as_u16(), status);
        }
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let response = ApiError::Unavailable("busy".into()).into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
