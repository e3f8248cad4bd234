//! `GET` and `POST /oauth2/userinfo` (OpenID Connect Core section 5.3) as HTTP: the Bearer
//! token is read from the `Authorization` header (RFC 6750 section 2.1; the only place: a token
//! in a URL ends up in logs), the service's `tokens::userinfo` answers, and refusals are RFC
//! 6750 section 3: `401` with `WWW-Authenticate: Bearer` (and `error="invalid_token"` when a
//! token was sent), `403 insufficient_scope` naming `openid`, `400 invalid_request`.
//!
//! This module must never decide anything about the token: it only reads and renders.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use portcullis_service::oauth::OAuthService;
use portcullis_service::tokens::userinfo::{userinfo as answer, UserinfoError};

use super::cors;
use super::reply::{no_store, OAuthReply};

const REALM: &str = "Bearer realm=\"portcullis\"";

/// The Bearer token of the `Authorization` header.
fn bearer(headers: &HeaderMap) -> Result<&str, UserinfoError> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Err(UserinfoError::NoToken);
    };
    if all.next().is_some() {
        return Err(UserinfoError::InvalidRequest("two_authorization_headers"));
    }
    let value = value
        .to_str()
        .map_err(|_| UserinfoError::InvalidRequest("authorization_not_ascii"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        // Another scheme: as if no Bearer token was sent (RFC 6750 section 3.1).
        _ => Err(UserinfoError::NoToken),
    }
}

/// `GET` or `POST /oauth2/userinfo`.
pub async fn userinfo(State(svc): State<OAuthService>, headers: HeaderMap) -> Response {
    let headers = &headers;
    let result = match bearer(headers) {
        Ok(token) => answer(&svc, token).await.map(|c| (c, token)),
        Err(e) => Err(e),
    };
    let (mut response, client_id) = match result {
        Ok((claims, token)) => {
            let mut r = (StatusCode::OK, Json(claims)).into_response();
            no_store(r.headers_mut());
            (r, unverified_client_id(token))
        }
        Err(e) => (refusal(e), None),
    };
    cors::answer(&svc, headers, client_id.as_deref(), &mut response).await;
    response
}

/// The `client_id` of a token that just verified (the CORS check's client).
fn unverified_client_id(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("client_id")?.as_str().map(str::to_owned)
}

fn refusal(e: UserinfoError) -> Response {
    let (status, challenge, reason) = match e {
        UserinfoError::NoToken => (StatusCode::UNAUTHORIZED, REALM.to_owned(), "no_token"),
        UserinfoError::InvalidRequest(reason) => (
            StatusCode::BAD_REQUEST,
            format!("{REALM}, error=\"invalid_request\""),
            reason,
        ),
        UserinfoError::InvalidToken(reason) => (
            StatusCode::UNAUTHORIZED,
            format!("{REALM}, error=\"invalid_token\""),
            reason,
        ),
        UserinfoError::InsufficientScope => (
            StatusCode::FORBIDDEN,
            format!("{REALM}, error=\"insufficient_scope\", scope=\"openid\""),
            "no_openid_scope",
        ),
        UserinfoError::Internal(e) => return OAuthReply(e).into_response(),
    };
    tracing::info!(reason, status = %status, "userinfo refused");
    let body = match status {
        StatusCode::UNAUTHORIZED if reason == "no_token" => json!({}),
        StatusCode::UNAUTHORIZED => json!({"error": "invalid_token"}),
        StatusCode::FORBIDDEN => json!({"error": "insufficient_scope"}),
        _ => json!({"error": "invalid_request"}),
    };
    let mut response = (status, Json(body)).into_response();
    let h = response.headers_mut();
    no_store(h);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    response
}
