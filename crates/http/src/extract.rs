//! Request extractors that answer bad input in Portcullis's own error format instead of the
//! framework's, and that collect the request's origin: the one place `serve` reads a client's
//! address, for the audit log, the authentication throttle and API key IP allowlists alike.
//!
//! The address is the connecting peer unless the peer is one of `http.trusted_proxies`; then it
//! is what the configured forwarding header says, by the rule in
//! [`portcullis_core::forwarded`], and unknown (`None`) when that header names no usable
//! address: never the proxy's own. Unknown fails closed downstream (an API key with an IP
//! allowlist is refused; the throttle counts every unknown request as one shared source; the
//! audit log records no address). This module must never read a forwarding header any other way.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use portcullis_core::forwarded::{client_address, ForwardedHeader, TrustedProxies};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use portcullis_service::audit::RequestOrigin;

/// `Json<T>` whose rejections are `invalid_request` (or 413 for an oversized body).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::payload_too_large();
    }
    match r {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid_request("expected a JSON body with content-type application/json")
        }
        other => ApiError::invalid_request(other.body_text()),
    }
}

/// `Query<T>` whose rejections are `invalid_request`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r: QueryRejection| ApiError::invalid_request(r.body_text()))
    }
}

/// How this listener reads a client's address (`http.trusted_proxies`, `http.forwarded_header`).
/// The router puts it in every request's extensions (`http::router_for`); a request without it
/// is answered by the peer address alone.
#[derive(Debug, Clone, Default)]
pub struct ClientAddressRule {
    pub trusted_proxies: TrustedProxies,
    pub header: ForwardedHeader,
}

static PEER_ONLY: ClientAddressRule = ClientAddressRule {
    trusted_proxies: TrustedProxies::none(),
    header: ForwardedHeader::XForwardedFor,
};

/// The client's address: the peer, or behind a trusted proxy the address it forwarded. `None`
/// for requests that did not come from a socket (in-process callers) and for a trusted proxy's
/// request whose header names no address where the rule stops.
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    let rule = parts
        .extensions
        .get::<Arc<ClientAddressRule>>()
        .map_or(&PEER_ONLY, Arc::as_ref);
    let values = parts.headers.get_all(rule.header.name());
    client_address(
        peer,
        &rule.trusted_proxies,
        &rule.header,
        values.iter().map(HeaderValue::as_bytes),
    )
}

/// Request id, client address and user agent.
pub fn origin(parts: &Parts) -> RequestOrigin {
    let header_str = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    RequestOrigin {
        request_id: header_str("x-request-id"),
        client_ip: client_ip(parts),
        user_agent: header_str(header::USER_AGENT.as_str()),
    }
}
