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
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use portcullis_core::confirmation::ClientCertificate;
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
    /// `http.client_certificate_header`: where a trusted proxy puts the client certificate.
    pub certificate_header: Option<HeaderName>,
}

static PEER_ONLY: ClientAddressRule = ClientAddressRule {
    trusted_proxies: TrustedProxies::none(),
    header: ForwardedHeader::XForwardedFor,
    certificate_header: None,
};

/// Middleware: the client certificate a trusted TLS-terminating proxy forwarded becomes the
/// request's [`ClientCertificate`], by the same trust rule as the client address. The header
/// is removed from every request, so no handler can read it another way; from a peer that is
/// not a trusted proxy it is ignored (and logged), and a certificate the listener's own TLS
/// handshake saw always wins. A header that is not one URL-encoded PEM certificate counts as
/// no certificate: client authentication and bound tokens then fail closed.
pub async fn client_certificate_from_proxy(
    mut req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let rule = req.extensions().get::<Arc<ClientAddressRule>>().cloned();
    if let Some(name) = rule.as_ref().and_then(|r| r.certificate_header.as_ref()) {
        let value = req.headers_mut().remove(name);
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let trusted = peer.is_some_and(|ip| {
            rule.as_ref()
                .is_some_and(|r| r.trusted_proxies.contains(ip))
        });
        match value {
            Some(v) if !v.is_empty() && !trusted => {
                tracing::info!(peer = ?peer, header = %name, "client certificate header from a peer that is not a trusted proxy; ignored");
            }
            Some(v) if !v.is_empty() && req.extensions().get::<ClientCertificate>().is_none() => {
                match ClientCertificate::from_escaped_pem(v.as_bytes()) {
                    Ok(c) => {
                        req.extensions_mut().insert(c);
                    }
                    Err(e) => {
                        tracing::info!(header = %name, error = %e, "client certificate header refused");
                    }
                }
            }
            _ => {}
        }
    }
    next.run(req).await
}

/// The client certificate of the request: from the TLS handshake, or a trusted proxy.
pub fn client_certificate(parts: &Parts) -> Option<&ClientCertificate> {
    parts.extensions.get::<ClientCertificate>()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::{Extension, Router};
    use base64::Engine as _;
    use tower::ServiceExt as _;

    const HEADER: &str = "x-ssl-client-cert";

    fn escaped(der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// A router that answers with the thumbprint of the request's certificate and whether the
    /// certificate header still reached the handler.
    fn app() -> Router {
        let rule = Arc::new(ClientAddressRule {
            trusted_proxies: serde_json::from_value(serde_json::json!(["10.0.0.0/8"]))
                .expect("proxies"),
            header: ForwardedHeader::XForwardedFor,
            certificate_header: Some(HeaderName::from_static(HEADER)),
        });
        Router::new()
            .route(
                "/",
                get(|req: Request| async move {
                    let (parts, _) = req.into_parts();
                    format!(
                        "{}|{}",
                        client_certificate(&parts).map_or("none", |c| c.thumbprint().as_str()),
                        parts.headers.contains_key(HEADER)
                    )
                }),
            )
            .layer(axum::middleware::from_fn(client_certificate_from_proxy))
            .layer(Extension(rule))
    }

    async fn call(peer: &str, header: Option<&str>, tls: Option<ClientCertificate>) -> String {
        let mut req = Request::builder().uri("/");
        if let Some(h) = header {
            req = req.header(HEADER, h);
        }
        let mut req = req.body(axum::body::Body::empty()).expect("request");
        req.extensions_mut().insert(ConnectInfo(
            format!("{peer}:443").parse::<SocketAddr>().expect("peer"),
        ));
        if let Some(c) = tls {
            req.extensions_mut().insert(c);
        }
        let resp = app().oneshot(req).await.expect("infallible");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("body");
        String::from_utf8(body.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn a_certificate_header_counts_only_from_a_trusted_proxy_and_never_reaches_handlers() {
        let der = [0x30u8, 0x03, 0x02, 0x01, 0x01];
        let cert = ClientCertificate::from_der(der.to_vec());
        let want = format!("{}|false", cert.thumbprint());
        let header = escaped(&der);
        assert_eq!(call("10.1.2.3", Some(&header), None).await, want);
        // From anyone else, ignored (and removed all the same).
        assert_eq!(call("192.0.2.7", Some(&header), None).await, "none|false");
        // Not a certificate: none.
        assert_eq!(call("10.1.2.3", Some("garbage"), None).await, "none|false");
        // The listener's own handshake wins over a proxy header.
        let own = ClientCertificate::from_der(vec![0x30, 0x00]);
        assert_eq!(
            call("10.1.2.3", Some(&header), Some(own.clone())).await,
            format!("{}|false", own.thumbprint())
        );
        assert_eq!(call("192.0.2.7", None, None).await, "none|false");
    }
}
