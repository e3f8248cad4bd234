//! The reverse proxy: forwards an allowed request to its route's upstream over a pooled
//! keep-alive client (hyper-util), streaming bodies both ways, and returns the upstream's answer.
//!
//! Headers to the upstream, in order (the rules live in `crate::headers`, shared with
//! forward-auth and the WebSocket tunnel):
//! - removed: hop-by-hop headers (and any the client's `Connection` names); every client-sent
//!   `X-Portcullis-*` header (names are case-insensitive, so any spelling); every name that
//!   reads as one the gateway sets or strips, or as another header of the request, once `_` is
//!   read as `-` (`X_Portcullis_Subject`: CGI, WSGI, PHP and Rack servers cannot tell the two
//!   apart); client-sent forwarding headers (`Forwarded`, `X-Real-IP`,
//!   `X-Forwarded-Host`/`-Port`/`-Prefix`, `X-Original-URL`, `X-Rewrite-URL`, the method
//!   overrides `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`, ...), which
//!   upstream frameworks believe and only the gateway may say; `Authorization` and `X-API-Key`
//!   unless the route sets `forward_authorization`;
//! - set: `Host` (the upstream's); `X-Forwarded-Host`, the host the route was chosen by
//!   ([`crate::host`]); `X-Forwarded-For`, the peer's address, appended to the client's chain
//!   only when the peer is in `trusted_proxies`; `X-Forwarded-Proto`; `X-Request-Id`; then the
//!   identity headers of the verified caller, the verified client certificate's fingerprint
//!   (`X-Portcullis-Client-Cert-Sha256`) and, when configured, the signed identity JWT
//!   (`X-Portcullis-Identity`).
//!
//! On a route with `websocket = true`, an authorized HTTP/1.1 WebSocket upgrade keeps
//! `Upgrade: websocket` and `Connection: upgrade`, and an upstream's 101 turns the exchange into
//! a tunnel (`crate::upgrade`); a 101 the client did not get to ask for is a 502.
//!
//! Upstream failures answer 502 (`bad_gateway`) or 504 (`gateway_timeout`) with nothing else;
//! the cause goes to tracing with the request id. A request body the client got wrong (a
//! malformed chunk) is the client's error: 400, never counted against the upstream.
//!
//! This module must never forward a request to an upstream other than its route's, with a path
//! other than the normalised one, or with a host other than the one its route was chosen by.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

pub use crate::headers::{
    strip_hop_by_hop, strip_request_headers, CLIENT_CERT_HEADER, IDENTITY_JWT_HEADER,
};
pub use crate::upstream::Upstream;

use crate::decision::{decide, simple, Facts, Refusal};
use crate::headers::{identity_values, set_request_id, IDENTITY_HEADERS, X_REQUEST_ID};
use crate::host::RequestHost;
use crate::server::Conn;
use crate::state::Shared;

const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// `X-Forwarded-For` for the upstream: the peer's address appended to the chain a trusted proxy
/// sent (trusted as [`portcullis_core::forwarded`] says), or the peer's address alone. A chain from anyone else is only
/// the client's word, and an upstream reading it from the left would believe it.
fn forwarded_for(h: &HeaderMap, conn: &Conn, trusted_peer: bool) -> HeaderValue {
    let mut chain = h.get_all(X_FORWARDED_FOR).iter().peekable();
    if !trusted_peer || chain.peek().is_none() {
        return conn.forwarded_for.clone();
    }
    chain
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<&str>>>()
        .and_then(|prev| {
            HeaderValue::try_from(format!("{}, {}", prev.join(", "), conn.peer.ip())).ok()
        })
        .unwrap_or_else(|| conn.forwarded_for.clone())
}

/// Handles one request on the main listener: forward-auth endpoints, else the proxy.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    conn: Arc<Conn>,
) -> Response<Body> {
    let started = Instant::now();
    let peer = conn.peer;
    let snap = shared.snapshot();
    if req.uri().path() == crate::identity::JWKS_PATH {
        return crate::endpoints::jwks_response(&snap);
    }
    if snap.config.forward_auth.enabled {
        if let Some(mode) = crate::forward_auth::mode_of(req.uri().path()) {
            // Boxed: the proxy path's future stays small (hyper moves it whole per request).
            return Box::pin(crate::forward_auth::handle(
                &shared, &snap, req, peer, mode, started,
            ))
            .await;
        }
    }
    let request_id = crate::headers::request_id(req.headers());
    let request_id_value = HeaderValue::from_str(&request_id).ok();
    let (mut parts, body) = req.into_parts();
    let unmatched: Arc<str> = Arc::from("unmatched");
    // Parsed once: routes are matched by this host, and the upstream is told exactly this one.
    let host = match crate::host::of_request(&parts.uri, &parts.headers) {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(request_id, error = %e, "host refused");
            let refusal = Refusal::BadHost(e);
            let mut resp = refusal.response(&shared.verifier);
            set_request_id(&mut resp, &request_id);
            shared
                .metrics
                .request(&unmatched, refusal.outcome(), started.elapsed());
            return resp;
        }
    };
    let path = crate::path::normalize(parts.uri.path(), snap.config.paths.rules());
    // The origin is only needed for a DPoP proof's `htu`: no string for other requests.
    let origin = host
        .as_ref()
        .filter(|_| portcullis_verify::http::presents_dpop(&parts.headers))
        .and_then(|h| h.value().to_str().ok())
        .map(|h| format!("{}://{h}", if conn.tls { "https" } else { "http" }));
    let facts = Facts {
        parts: &parts,
        host: host.as_ref().map(RequestHost::name),
        client_ip: Some(peer.ip()),
        client_cert: conn.client_certificate.as_ref().map(|c| c.thumbprint()),
        forwarded_cert: None,
        request_id: &request_id,
        mode: "proxy",
        origin: origin.as_deref(),
    };
    // The decision and the upstream exchange are boxed: hyper moves the request's future whole
    // (several times per request), and inline they made it 7 KB; boxed, about 1.5 KB.
    let allowed = match Box::pin(decide(&shared, &snap, &path, &facts)).await {
        Ok(a) => a,
        Err((route, refusal)) => {
            let mut resp = refusal.response(&shared.verifier);
            set_request_id(&mut resp, &request_id);
            shared.metrics.request(
                route.as_ref().unwrap_or(&unmatched),
                refusal.outcome(),
                started.elapsed(),
            );
            return resp;
        }
    };
    let route = allowed.matched.route;
    let route_name = route.name.clone();
    let finish = |resp: Response<Body>, outcome: &'static str| {
        shared
            .metrics
            .request(&route_name, outcome, started.elapsed());
        resp
    };
    // A route without an upstream exists only for forward-auth.
    let Some(upstream) = route
        .upstream
        .as_ref()
        .and_then(|u| snap.upstreams.get(u))
        .cloned()
    else {
        return finish(Refusal::NotFound.response(&shared.verifier), "not_found");
    };
    let normal = match &path {
        Ok(p) => p.to_path(),
        Err(_) => {
            return finish(
                simple(StatusCode::BAD_REQUEST, "invalid_request"),
                "bad_request",
            )
        }
    };
    let uri = match upstream.uri(&normal, parts.uri.query()) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(request_id, error = %e, "could not build the upstream URI");
            return finish(
                simple(StatusCode::BAD_REQUEST, "invalid_request"),
                "bad_request",
            );
        }
    };

    // Taken before the headers are stripped: the request has been authorized, and the route
    // opted in. An HTTP/2 upstream cannot be upgraded (refused at load for websocket routes).
    let client_upgrade = (route.websocket && !upstream.section.http2)
        .then(|| crate::upgrade::take(&mut parts))
        .flatten();
    let h = &mut parts.headers;
    strip_request_headers(h, route.forward_authorization);
    if client_upgrade.is_some() {
        crate::upgrade::ask_upstream(h);
    }
    h.remove(header::HOST);
    if let Some(host) = &host {
        h.insert(X_FORWARDED_HOST, host.value().clone());
    }
    if !upstream.section.http2 {
        h.insert(header::HOST, upstream.host.clone());
    }
    let trusted_peer = snap.config.trusted_proxies.contains(peer.ip());
    let xff = forwarded_for(h, &conn, trusted_peer);
    h.insert(X_FORWARDED_FOR, xff);
    h.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    if let Some(v) = conn
        .client_cert_sha256
        .as_deref()
        .and_then(|f| HeaderValue::from_str(f).ok())
    {
        h.insert(CLIENT_CERT_HEADER, v);
    }
    if let Some(v) = &request_id_value {
        h.insert(X_REQUEST_ID, v.clone());
    }
    if let Some(p) = &allowed.principal {
        match identity_values(p) {
            Some(values) => {
                for (name, value) in IDENTITY_HEADERS.iter().zip(values) {
                    if let Some(v) = value {
                        h.insert(name.clone(), v);
                    }
                }
            }
            None => {
                tracing::warn!(
                    request_id,
                    "identity not representable as headers; refusing"
                );
                let d = portcullis_verify::Denial::from(portcullis_verify::Reason::MalformedClaims);
                return finish(
                    portcullis_verify::denial_response(d, shared.verifier.realm()),
                    "unauthorized",
                );
            }
        }
        if let (Some(signer), true) = (&snap.identity, upstream.section.identity_jwt != Some(false))
        {
            let audience = upstream
                .section
                .identity_audience
                .as_deref()
                .unwrap_or(&upstream.name);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let jwt = signer
                .sign(p, audience, conn.client_cert_sha256.as_deref(), now)
                .ok()
                .and_then(|t| HeaderValue::from_str(&t).ok());
            match jwt {
                Some(v) => {
                    h.insert(IDENTITY_JWT_HEADER, v);
                }
                None => {
                    // Fail closed: the upstream expects a signed identity and cannot get one.
                    tracing::error!(request_id, "identity JWT could not be signed; refusing");
                    let mut resp = simple(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
                    set_request_id(&mut resp, &request_id);
                    return finish(resp, "server_error");
                }
            }
        }
    }
    parts.uri = uri;
    parts.version = if upstream.section.http2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    let out = Request::from_parts(parts, body);

    let sent = tokio::time::timeout(
        upstream.section.read_timeout,
        Box::pin(upstream.pool.send(out)),
    )
    .await;
    match sent {
        Ok(Ok(resp)) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let upgraded =
                client_upgrade.and_then(|c| crate::upgrade::tunnel(c, resp, request_id.clone()));
            let Some(mut resp) = upgraded else {
                // Fail closed: a switch the client did not ask for, or to another protocol.
                tracing::warn!(
                    request_id,
                    upstream = &*upstream.name,
                    "unexpected 101 from the upstream"
                );
                shared.metrics.upstream_error(&upstream.name, "request");
                let mut resp = simple(StatusCode::BAD_GATEWAY, "bad_gateway");
                set_request_id(&mut resp, &request_id);
                return finish(resp, "bad_gateway");
            };
            if let Some(v) = request_id_value {
                resp.headers_mut().insert(X_REQUEST_ID, v);
            }
            finish(resp, "upgraded")
        }
        Ok(Ok(resp)) => {
            let (mut rp, rb) = resp.into_parts();
            strip_hop_by_hop(&mut rp.headers);
            if let Some(v) = request_id_value {
                rp.headers.insert(X_REQUEST_ID, v);
            }
            finish(Response::from_parts(rp, Body::new(rb)), "proxied")
        }
        Ok(Err(e)) if e.is_client_body() => {
            tracing::info!(
                request_id,
                upstream = &*upstream.name,
                error = %e,
                "the client's request body failed"
            );
            let mut resp = simple(StatusCode::BAD_REQUEST, "invalid_request");
            set_request_id(&mut resp, &request_id);
            finish(resp, "bad_request")
        }
        Ok(Err(e)) => {
            let kind = e.kind();
            tracing::warn!(request_id, upstream = &*upstream.name, kind, error = %e, "upstream failed");
            shared.metrics.upstream_error(&upstream.name, kind);
            let mut resp = simple(StatusCode::BAD_GATEWAY, "bad_gateway");
            set_request_id(&mut resp, &request_id);
            finish(resp, "bad_gateway")
        }
        Err(_) => {
            tracing::warn!(request_id, upstream = &*upstream.name, "upstream timed out");
            shared.metrics.upstream_error(&upstream.name, "timeout");
            let mut resp = simple(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout");
            set_request_id(&mut resp, &request_id);
            finish(resp, "gateway_timeout")
        }
    }
}
