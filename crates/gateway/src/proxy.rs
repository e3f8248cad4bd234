//! The reverse proxy: forwards an allowed request to its route's upstream over a pooled
//! keep-alive client (hyper-util), streaming bodies both ways, and returns the upstream's answer.
//!
//! Headers to the upstream, in order:
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
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use crate::config::{ConfigError, UpstreamSection};
use crate::host::RequestHost;
use crate::pool::Pool;
use crate::{decide, identity_values, simple, Conn, Facts, Refusal, Shared, IDENTITY_HEADERS};

/// The verified client certificate's SHA-256 (base64url), set by the gateway only.
pub const CLIENT_CERT_HEADER: HeaderName =
    HeaderName::from_static("x-portcullis-client-cert-sha256");
/// The signed identity JWT, set by the gateway only.
pub const IDENTITY_JWT_HEADER: HeaderName = HeaderName::from_static("x-portcullis-identity");
const X_API_KEY: HeaderName = HeaderName::from_static(portcullis_verify::http::API_KEY_HEADER);
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One upstream: where it is and the pool of connections to it.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub section: UpstreamSection,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The `Host` header every HTTP/1.1 request to this upstream carries.
    host: HeaderValue,
    /// Prepended to every forwarded path; empty or `/base` (no trailing slash).
    base_path: String,
    pool: Arc<Pool>,
}

impl Upstream {
    /// `shards`: how many idle-connection lists to keep (one per worker thread, plus one for
    /// any other thread), see [`Pool`].
    pub fn new(name: &str, section: UpstreamSection, shards: usize) -> Result<Self, ConfigError> {
        let bad = |m: &str| ConfigError(format!("upstream {name}: {m}"));
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(bad("name may only hold letters, digits, '-', '_', '.'"));
        }
        let uri: Uri = section.url.parse().map_err(|_| bad("url is not a URL"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(bad("url needs a scheme and a host"));
        };
        if scheme != http::uri::Scheme::HTTP {
            return Err(bad(
                "only http:// upstreams are supported (TLS to upstreams is not implemented)",
            ));
        }
        if authority.as_str().contains('@') {
            return Err(bad("url may not hold a user name or password"));
        }
        if uri.query().is_some() {
            return Err(bad("url may not have a query"));
        }
        if section.connect_timeout.is_zero() || section.read_timeout.is_zero() {
            return Err(bad("timeouts must be > 0"));
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?;
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let pool = Pool::new(
            address,
            section.connect_timeout,
            section.read_timeout,
            section.http2,
            shards,
        );
        Ok(Self {
            name: name.into(),
            scheme,
            authority,
            host,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            pool: Arc::new(pool),
            section,
        })
    }

    /// The URI to send: origin-form (`/path?query`) over HTTP/1.1, absolute over HTTP/2 (whose
    /// `:scheme` and `:authority` come from it).
    fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let mut pq = String::with_capacity(
            self.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let b = Uri::builder();
        let b = if self.section.http2 {
            b.scheme(self.scheme.clone())
                .authority(self.authority.clone())
        } else {
            b
        };
        b.path_and_query(pq).build()
    }

    /// Idle HTTP/1.1 connections to this upstream right now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1, with the legacy `keep-alive` and
/// `proxy-connection`): they describe one connection and never travel through a proxy.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    )
}

/// The prefix of every header the gateway sets for upstreams about the caller.
const IDENTITY_PREFIX: &str = "x-portcullis-";

/// Headers that tell a server behind a proxy about the original request (its client address,
/// host, port, scheme, path or method): only the gateway may say these, so a client's copies
/// never reach the upstream. The gateway then sets `X-Forwarded-Host` and `X-Forwarded-Proto`
/// itself; `X-Forwarded-For` is not here, the gateway rewrites it ([`forwarded_for`]).
fn is_forwarding(name: &str) -> bool {
    matches!(
        name,
        "forwarded"
            | "x-forwarded-host"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
            | "x-forwarded-proto"
            | "x-forwarded-scheme"
            | "x-forwarded-ssl"
            | "x-forwarded-server"
            | "x-forwarded-uri"
            | "x-forwarded-method"
            | "front-end-https"
            | "x-real-ip"
            | "x-client-ip"
            | "client-ip"
            | "true-client-ip"
            | "x-original-url"
            | "x-original-uri"
            | "x-original-method"
            | "x-rewrite-url"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
    )
}

/// Headers the gateway sets or strips for upstreams (besides hop-by-hop, identity and
/// forwarding ones).
fn is_managed(name: &str) -> bool {
    matches!(
        name,
        "host" | "authorization" | "x-api-key" | "x-request-id" | "x-forwarded-for"
    )
}

/// `name` read the way CGI, WSGI, PHP and Rack servers read it: they turn `-` and `_` alike
/// into `_` in their `HTTP_*` variables, so `X_Portcullis_Subject` is `X-Portcullis-Subject`
/// to them. `None` for a name without `_` (the common case: one scan, no allocation).
fn dashed(name: &str) -> Option<String> {
    name.contains('_').then(|| name.replace('_', "-"))
}

/// Whether a client header is an underscore spelling of one the gateway sets or strips, or of
/// another header in the same request (which the upstream could not tell apart from it).
fn is_underscore_alias(name: &str, h: &HeaderMap) -> bool {
    dashed(name).is_some_and(|d| {
        is_hop_by_hop(&d)
            || d.starts_with(IDENTITY_PREFIX)
            || is_forwarding(&d)
            || is_managed(&d)
            || h.contains_key(d.as_str())
    })
}

/// Whether a request carries an underscore spelling of an identity header (forward-auth refuses
/// these: the proxy in front overwrites only the dashed names).
pub(crate) fn has_identity_alias(h: &HeaderMap) -> bool {
    h.keys()
        .any(|k| dashed(k.as_str()).is_some_and(|d| d.starts_with(IDENTITY_PREFIX)))
}

/// Removes hop-by-hop headers, including those a `Connection` header names. With `request`
/// also every `x-portcullis-*` header (names are lowercase in `http`, so any spelling the client
/// used), the forwarding headers ([`is_forwarding`]) and every underscore spelling of a header
/// the gateway sets or strips ([`is_underscore_alias`]); with `credentials` also
/// `Authorization` and `X-API-Key`. One pass over the names, and only what is present is
/// removed: this runs twice on every proxied request.
fn strip(h: &mut HeaderMap, request: bool, credentials: bool) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    let mut connection = false;
    for k in h.keys() {
        connection |= k == header::CONNECTION;
        let n = k.as_str();
        if is_hop_by_hop(n)
            || (request
                && (n.starts_with(IDENTITY_PREFIX)
                    || is_forwarding(n)
                    || is_underscore_alias(n, h)))
            || (credentials && (k == header::AUTHORIZATION || k == X_API_KEY))
        {
            doomed.push(k.clone());
        }
    }
    if connection {
        doomed.extend(
            h.get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok()),
        );
    }
    for n in doomed {
        h.remove(n);
    }
}

/// Removes hop-by-hop headers, including those a `Connection` header names (upstream answers).
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    strip(h, false, false);
}

/// Prepares a client's headers for the upstream: hop-by-hop headers, every client-sent
/// `x-portcullis-*` header, the forwarding headers only the gateway may set (`Forwarded`,
/// `X-Real-IP`, `X-Forwarded-Host`, `X-Original-URL`, `X-HTTP-Method-Override`, ...),
/// underscore spellings of the headers the gateway sets or strips (and of any other header
/// present) and, unless `forward_credentials`, `Authorization` and `X-API-Key` are removed.
pub fn strip_request_headers(h: &mut HeaderMap, forward_credentials: bool) {
    strip(h, true, !forward_credentials);
}

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
        return crate::jwks_response(&snap);
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
    let request_id = crate::request_id(req.headers());
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
    let facts = Facts {
        parts: &parts,
        host: host.as_ref().map(RequestHost::name),
        client_ip: Some(peer.ip()),
        client_cert: conn.client_cert_sha256.as_deref(),
        request_id: &request_id,
        mode: "proxy",
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

pub(crate) fn set_request_id(resp: &mut Response<Body>, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn identity_headers_go_in_any_spelling() {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(b"X-Portcullis-Subject").expect("name"),
            HeaderValue::from_static("root"),
        );
        h.insert(
            HeaderName::from_bytes(b"x-PORTCULLIS-tenant").expect("name"),
            HeaderValue::from_static("acme"),
        );
        h.insert("x-portcullisx", HeaderValue::from_static("kept"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        strip_request_headers(&mut h, true);
        assert_eq!(h.len(), 2);
        assert!(h.contains_key("x-portcullisx") && h.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn underscore_spellings_of_managed_headers_go() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("x_portcullis_subject", "root"),
            ("X_PORTCULLIS_IDENTITY", "forged"),
            ("x-portcullis_tenant", "globex"),
            ("x_request_id", "evil"),
            ("x_forwarded_for", "10.9.9.9"),
            ("x_forwarded_host", "admin.example"),
            ("x_api_key", "pcl_whatever"),
            ("transfer_encoding", "chunked"),
            ("x-tenant", "acme"),
            ("x_tenant", "globex"),
            ("x_kept", "1"),
            ("accept", "*/*"),
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_static(value),
            );
        }
        strip_request_headers(&mut h, true);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-tenant", "x_kept"]);
        assert!(has_identity_alias(&HeaderMap::from_iter([(
            HeaderName::from_static("x_portcullis_subject"),
            HeaderValue::from_static("root"),
        )])));
        assert!(!has_identity_alias(&HeaderMap::from_iter([(
            HeaderName::from_static("x-portcullis-subject"),
            HeaderValue::from_static("root"),
        )])));
    }

    #[test]
    fn credentials_go_unless_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert("x-api-key", HeaderValue::from_static("pcl_key"));
        h.insert("connection", HeaderValue::from_static("X-Hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let mut kept = h.clone();
        strip_request_headers(&mut h, false);
        assert_eq!(h.keys().collect::<Vec<_>>(), [header::ACCEPT]);
        strip_request_headers(&mut kept, true);
        assert_eq!(kept.len(), 3);
        assert!(!kept.contains_key("x-hop") && !kept.contains_key("connection"));
    }

    #[test]
    fn upstream_urls_are_checked() {
        let s = |url: &str| UpstreamSection {
            url: url.into(),
            connect_timeout: std::time::Duration::from_secs(1),
            read_timeout: std::time::Duration::from_secs(1),
            http2: false,
            identity_jwt: None,
            identity_audience: None,
        };
        assert!(Upstream::new("a", s("https://x.example"), 1).is_err());
        assert!(Upstream::new("a", s("/relative"), 1).is_err());
        assert!(Upstream::new("a b", s("http://x.example"), 1).is_err());
        assert!(Upstream::new("a", s("http://x.example/?q=1"), 1).is_err());
        assert!(Upstream::new("a", s("http://user:pw@x.example"), 1).is_err());
    }

    #[test]
    fn base_paths_are_prepended() {
        let s = |http2| UpstreamSection {
            url: "http://127.0.0.1:9/api/".into(),
            connect_timeout: std::time::Duration::from_secs(1),
            read_timeout: std::time::Duration::from_secs(1),
            http2,
            identity_jwt: None,
            identity_audience: None,
        };
        // HTTP/1.1 gets origin-form plus a Host header; HTTP/2 an absolute URI.
        let h1 = Upstream::new("a", s(false), 1).expect("upstream");
        assert_eq!(h1.uri("/x/y", Some("a=1")).expect("uri"), "/api/x/y?a=1");
        assert_eq!(h1.host, "127.0.0.1:9");
        let h2 = Upstream::new("a", s(true), 1).expect("upstream");
        assert_eq!(
            h2.uri("/x/y", None).expect("uri").to_string(),
            "http://127.0.0.1:9/api/x/y"
        );
    }
}
