//! Reading ingestion bodies: size limits, gzip, and content types.
//!
//! The raw body is capped at `max_body_bytes` while it streams in; a gzip body
//! is inflated with the same cap on its output, so a small compressed bomb
//! cannot grow past the limit.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use tracklog_domain::ingest::Limits;

use crate::error::ApiError;

fn too_large(limits: &Limits, what: &str) -> ApiError {
    ApiError::PayloadTooLarge {
        limit: "max_body_bytes",
        message: format!(
            "the {what} is larger than the limit max_body_bytes = {}",
            limits.max_body_bytes
        ),
    }
}

/// Reads the whole body within the limits, inflating gzip.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes) {
        return Err(too_large(limits, "body"));
    }
    let raw = axum::body::to_bytes(body, limits.max_body_bytes)
        .await
        .map_err(|_| too_large(limits, "body"))?;
    let encoding = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(raw),
        "gzip" | "x-gzip" => inflate(&raw, limits),
        other => Err(ApiError::BadRequest {
            code: "unsupported_encoding",
            message: format!("Content-Encoding {other:?} is not supported; use gzip or none"),
            field: Some("Content-Encoding".into()),
        }),
    }
}

fn inflate(raw: &[u8], limits: &Limits) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limits.max_body_bytes));
    let cap = limits.max_body_bytes as u64 + 1;
    flate2::read::MultiGzDecoder::new(raw)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest {
            code: "invalid_gzip",
            message: format!("the gzip body could not be read: {e}"),
            field: Some("Content-Encoding".into()),
        })?;
    if out.len() > limits.max_body_bytes {
        return Err(too_large(limits, "decompressed body"));
    }
    Ok(Bytes::from(out))
}

/// Whether the body is NDJSON by its content type.
pub fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.starts_with("application/x-ndjson")
                || v.starts_with("application/ndjson")
                || v.starts_with("application/jsonlines")
                || v.starts_with("application/x-jsonlines")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn inflates_within_the_limit() {
        let limits = Limits {
            max_body_bytes: 1000,
            ..Limits::default()
        };
        assert_eq!(&inflate(&gzip(b"[{}]"), &limits).unwrap()[..], b"[{}]");
    }

    #[test]
    fn refuses_a_bomb() {
        let limits = Limits {
            max_body_bytes: 5000,
            ..Limits::default()
        };
        let bomb = gzip(&vec![b' '; 1_000_000]);
        assert!(bomb.len() < 5000);
        let error = inflate(&bomb, &limits).unwrap_err();
        assert_eq!(error.status(), 413);
        assert!(error.to_string().contains("max_body_bytes"));
    }

    #[test]
    fn refuses_garbage_gzip() {
        assert_eq!(
            inflate(b"not gzip", &Limits::default())
                .unwrap_err()
                .status(),
            400
        );
    }
}
