//! Reading an OAuth request body: `application/x-www-form-urlencoded` only, bounded in size
//! (parsing and credential extraction are the service's `oauth::form`).
//!
//! This module must never accept another content type or a body over the limit.

use axum::body::Body;
use axum::http::header;
use axum::http::request::Parts;
use portcullis_service::oauth::error::{OAuthError, Refusal};
use portcullis_service::oauth::form::{parse, Params, MAX_FORM_BYTES};

/// Reads and parses a form body. `repeatable` names the parameters that may occur more than
/// once (RFC 8707 `resource`); any other repeated parameter is `invalid_request`.
pub async fn read(parts: &Parts, body: Body, repeatable: &[&str]) -> Result<Params, OAuthError> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(Refusal::NotForm.into());
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| OAuthError::refuse(Refusal::TooLarge))?;
    parse(&bytes, repeatable)
}
