//! CORS for browser apps (single-page apps) at the token and userinfo endpoints: an `Origin` a
//! client registered in `allowed_web_origins` (exact match, character for character) is
//! answered with `Access-Control-Allow-Origin` naming it, never `*` and never with credentials
//! (these endpoints take no cookies). An actual request is judged against the client it names
//! (the token endpoint's `client_id`, the userinfo token's `client_id`); a preflight, which
//! names no client, against every active client's registration (the directory's short-lived
//! cache of all registered origins, dropped on any client write). Every answer of these
//! endpoints carries `Vary: Origin`, since it depends on it.
//!
//! This module must never allow an origin no client registered, nor send
//! `Access-Control-Allow-Credentials`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use portcullis_service::oauth::OAuthService;
use portcullis_store::ClientStatus;

/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

fn request_origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

fn vary(response: &mut Response) {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
}

/// Adds the CORS headers to an actual request's answer when `client_id` registered the
/// request's `Origin`.
pub async fn answer(
    svc: &OAuthService,
    headers: &HeaderMap,
    client_id: Option<&str>,
    response: &mut Response,
) {
    vary(response);
    let (Some(origin), Some(client_id)) = (request_origin(headers), client_id) else {
        return;
    };
    let now = svc.clock.now();
    let allowed = match svc
        .oauth
        .directory
        .client(svc.store.as_ref(), client_id, now)
        .await
    {
        Ok(Some(facts)) => {
            facts.client.status == ClientStatus::Active
                && facts.client.allowed_web_origins.iter().any(|o| o == origin)
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "could not read a client for CORS; no CORS headers");
            false
        }
    };
    if let (true, Ok(value)) = (allowed, HeaderValue::from_str(origin)) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("www-authenticate"),
        );
    }
}

async fn preflight(svc: &OAuthService, headers: &HeaderMap, methods: &'static str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    vary(&mut response);
    let Some(origin) = request_origin(headers) else {
        return response;
    };
    if !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return response;
    }
    let registered = match svc
        .oauth
        .directory
        .web_origin_registered(svc.store.as_ref(), origin, svc.clock.now())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not read registered web origins; preflight refused");
            false
        }
    };
    if let (true, Ok(value)) = (registered, HeaderValue::from_str(origin)) {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
        );
    }
    response
}

/// `OPTIONS /oauth2/token`.
pub async fn token_preflight(State(svc): State<OAuthService>, headers: HeaderMap) -> Response {
    preflight(&svc, &headers, "POST").await
}

/// `OPTIONS /oauth2/userinfo`.
pub async fn userinfo_preflight(State(svc): State<OAuthService>, headers: HeaderMap) -> Response {
    preflight(&svc, &headers, "GET, POST").await
}
