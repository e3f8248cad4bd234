//! The one mapping from an RFC 6749 [`OAuthError`] to an HTTP answer: a standard `error` code
//! and the description the service's table gives it, `Cache-Control: no-store`, a
//! `WWW-Authenticate: Basic` challenge on 401 where RFC 6749 asks for one, `Allow` on 405 and
//! `Retry-After` on 429, `DPoP-Nonce` with `use_dpop_nonce`. The internal reason is logged, never sent.
//!
//! This module must never change what an error says: the error value is decided by the service.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_service::oauth::error::OAuthError;
use serde_json::json;

/// The RFC 6749 `error` code of an answer, left in the response's extensions for the metrics
/// layer (`crate::metrics`). Always one of the service's standard codes (`&'static`).
#[derive(Debug, Clone, Copy)]
pub struct OAuthErrorCode(pub &'static str);

/// An [`OAuthError`] on its way out as an HTTP response.
#[derive(Debug)]
pub struct OAuthReply(pub OAuthError);

impl From<OAuthError> for OAuthReply {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OAuthReply {
    fn into_response(self) -> Response {
        let OAuthReply(e) = self;
        if e.status.is_server_error() {
            tracing::error!(status = %e.status, reason = %e.reason, "oauth request failed");
        } else {
            tracing::info!(status = %e.status, code = e.code, reason = %e.reason, "oauth request refused");
        }
        let body = match e.description {
            Some(d) => json!({"error": e.code, "error_description": d}),
            None => json!({"error": e.code}),
        };
        let mut response = (e.status, Json(body)).into_response();
        let h = response.headers_mut();
        no_store(h);
        if e.status == StatusCode::UNAUTHORIZED && e.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis\", charset=\"UTF-8\""),
            );
        }
        if e.status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        if let Some(nonce) = e.dpop_nonce.as_deref() {
            // A nonce is base64url, always a valid header value.
            if let Ok(v) = HeaderValue::from_str(nonce) {
                h.insert("dpop-nonce", v);
            }
        }
        if let Some(secs) = e.retry_after_secs {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(OAuthErrorCode(e.code));
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 section 5.1).
pub fn no_store(h: &mut axum::http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}
