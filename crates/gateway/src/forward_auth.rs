//! Forward-auth endpoints, for an nginx, Traefik or Envoy that proxies the traffic itself and asks
//! the gateway only "may this request pass, and as whom?". Each mode reads the original
//! request's method, URI and host from where that proxy puts them, then decides exactly as the
//! reverse proxy does ([`crate::decision::decide`]: same normalisation, routes, policies and rate limits).
//!
//! | path | original method | original URI | host |
//! |---|---|---|---|
//! | `/_portcullis/auth/nginx` | `X-Original-Method` | `X-Original-URI` | `Host` |
//! | `/_portcullis/auth/traefik` | `X-Forwarded-Method` | `X-Forwarded-Uri` | `X-Forwarded-Host` |
//! | `/_portcullis/auth/envoy/<path>` | the request's | `/<path>?<query>` | `Host` |
//!
//! Allowed: 200 with all six identity headers (empty when the caller has no such fact, and
//! on public routes), so the proxy overwrites whatever the client sent. Refused: the RFC 6750
//! answer; for nginx, whose `auth_request` understands only 2xx/401/403, every refusal that is
//! not a 401 becomes 403. The host is checked like the reverse proxy's ([`crate::host`]): a
//! malformed one, or two, is refused. A forward-auth request missing the original method or URI
//! is refused (fail closed), and so is one carrying an underscore spelling of an identity
//! header (`X_Portcullis_Subject`), which the proxy would not overwrite and CGI, WSGI, PHP and
//! Rack upstreams read as the dashed one.
//!
//! The client's address is what `forward_auth.client_ip_header` says when the proxy asking is in
//! `trusted_proxies`, read by the one rule in [`portcullis_core::forwarded`]; otherwise, and when
//! that header names no usable address, it is unknown (the peer is the proxy, never the client).
//!
//! With `forward_auth.client_cert_header`, the client certificate the proxy verified is read
//! from that header (URL-encoded PEM, nginx `$ssl_client_escaped_cert`) under the same rule:
//! only from a trusted proxy. It serves certificate-bound tokens (`cnf.x5t#S256`) alone.
//!
//! The gateway trusts these headers to describe the client's request: the forward-auth path
//! must be reachable only by the proxy. This module must never answer 2xx for a request it could
//! not fully describe, nor read a client address any other way.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use portcullis_core::confirmation::ClientCertificate;
use portcullis_core::forwarded::client_address;

use crate::config::GatewayConfig;
use crate::decision::{decide, simple, Facts, Refusal};
use crate::headers::{identity_values, set_request_id, IDENTITY_HEADERS};
use crate::state::{Shared, Snapshot};

const PREFIX: &str = "/_portcullis/auth/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Nginx,
    Traefik,
    Envoy,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Traefik => "traefik",
            Self::Envoy => "envoy",
        }
    }

    /// The header naming the original request's host.
    fn host_header(self) -> &'static str {
        match self {
            Self::Traefik => "x-forwarded-host",
            Self::Nginx | Self::Envoy => "host",
        }
    }
}

/// The forward-auth mode a path asks for, if it is one of ours.
pub fn mode_of(path: &str) -> Option<Mode> {
    let rest = path.strip_prefix(PREFIX)?;
    match rest {
        "nginx" => Some(Mode::Nginx),
        "traefik" => Some(Mode::Traefik),
        _ if rest == "envoy" || rest.starts_with("envoy/") => Some(Mode::Envoy),
        _ => None,
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Method and URI of the original request, as `mode` describes them.
fn original(req: &Request<Incoming>, mode: Mode) -> Option<(http::Method, Uri)> {
    match mode {
        Mode::Nginx => Some((
            http::Method::from_bytes(header(req, "x-original-method")?.as_bytes()).ok()?,
            header(req, "x-original-uri")?.parse().ok()?,
        )),
        Mode::Traefik => Some((
            http::Method::from_bytes(header(req, "x-forwarded-method")?.as_bytes()).ok()?,
            header(req, "x-forwarded-uri")?.parse().ok()?,
        )),
        Mode::Envoy => {
            let pq = req.uri().path_and_query()?.as_str();
            let rest = pq.strip_prefix(PREFIX)?.strip_prefix("envoy")?;
            let uri = if rest.is_empty() || rest.starts_with('?') {
                format!("/{rest}")
            } else {
                rest.to_owned()
            };
            Some((req.method().clone(), uri.parse().ok()?))
        }
    }
}

/// The client's address from the configured header, when the proxy asking is a trusted one
/// (module docs); `None` when unknown.
fn client_ip(headers: &HeaderMap, config: &GatewayConfig, peer: SocketAddr) -> Option<IpAddr> {
    let header = config.forward_auth.client_ip_header.as_ref()?;
    let trusted = &config.trusted_proxies;
    if !trusted.contains(peer.ip()) {
        tracing::debug!(
            %peer,
            header = header.name(),
            "forward-auth request from a peer not in trusted_proxies; its header is ignored"
        );
        return None;
    }
    let values = headers.get_all(header.name());
    client_address(
        peer.ip(),
        trusted,
        header,
        values.iter().map(HeaderValue::as_bytes),
    )
}

/// The client certificate the trusted proxy forwarded in `forward_auth.client_cert_header`
/// (module docs). From any other peer the header is ignored, so a client that talks to the
/// gateway directly cannot claim a certificate; a header that is not one URL-encoded PEM
/// certificate counts as none (a bound token is then refused).
fn forwarded_certificate(
    headers: &HeaderMap,
    config: &GatewayConfig,
    peer: SocketAddr,
    request_id: &str,
) -> Option<ClientCertificate> {
    let name = config.forward_auth.client_cert_header.as_deref()?;
    let value = headers.get(name)?;
    if !config.trusted_proxies.contains(peer.ip()) {
        tracing::info!(
            request_id,
            %peer,
            header = name,
            "client certificate header from a peer not in trusted_proxies; ignored"
        );
        return None;
    }
    if value.is_empty() {
        return None;
    }
    match ClientCertificate::from_escaped_pem(value.as_bytes()) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::info!(request_id, header = name, error = %e, "client certificate header refused");
            None
        }
    }
}

/// The origin the client addressed, for DPoP's `htu`: the original host as the proxy describes
/// it, with `X-Forwarded-Proto` (`https` when absent), read only from a trusted proxy. From any
/// other peer `None`, and every DPoP proof is refused (fail closed).
fn dpop_origin(
    headers: &HeaderMap,
    host: Option<&crate::host::RequestHost>,
    config: &GatewayConfig,
    peer: SocketAddr,
) -> Option<String> {
    if !config.trusted_proxies.contains(peer.ip()) {
        return None;
    }
    let host = host?.value().to_str().ok()?;
    let mut protos = headers.get_all("x-forwarded-proto").iter();
    let scheme = match (protos.next(), protos.next()) {
        (None, _) => "https",
        (Some(v), None) => match v.to_str().ok()?.trim() {
            p if p.eq_ignore_ascii_case("https") => "https",
            p if p.eq_ignore_ascii_case("http") => "http",
            _ => return None,
        },
        (Some(_), Some(_)) => return None,
    };
    Some(format!("{scheme}://{host}"))
}

pub async fn handle(
    shared: &Arc<Shared>,
    snap: &Arc<Snapshot>,
    req: Request<Incoming>,
    peer: SocketAddr,
    mode: Mode,
    started: Instant,
) -> Response<Body> {
    let request_id = crate::headers::request_id(req.headers());
    let unmatched: Arc<str> = Arc::from("unmatched");
    let bad_request = || {
        shared
            .metrics
            .request(&unmatched, "bad_request", started.elapsed());
        let mut resp = match mode {
            Mode::Nginx => simple(StatusCode::FORBIDDEN, "invalid_request"),
            _ => simple(StatusCode::BAD_REQUEST, "invalid_request"),
        };
        set_request_id(&mut resp, &request_id);
        resp
    };
    // The proxy overwrites the dashed identity names only; an underscore spelling would reach
    // an upstream that reads it as one (CGI, WSGI, PHP, Rack).
    if crate::headers::has_identity_alias(req.headers()) {
        tracing::info!(
            request_id,
            mode = mode.as_str(),
            "underscore spelling of an identity header; refusing"
        );
        return bad_request();
    }
    let Some((method, uri)) = original(&req, mode) else {
        tracing::warn!(
            request_id,
            mode = mode.as_str(),
            "forward-auth request without the original method or URI; refusing (check the proxy's configuration)"
        );
        return bad_request();
    };
    let host = match crate::host::from_header(req.headers(), mode.host_header()) {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(request_id, mode = mode.as_str(), error = %e, "host refused");
            return bad_request();
        }
    };
    let ip = client_ip(req.headers(), &snap.config, peer);
    let forwarded_cert = forwarded_certificate(req.headers(), &snap.config, peer, &request_id);
    // The origin is only needed for a DPoP proof's `htu`.
    let origin = portcullis_verify::http::presents_dpop(req.headers())
        .then(|| dpop_origin(req.headers(), host.as_ref(), &snap.config, peer))
        .flatten();
    let (mut parts, _body) = req.into_parts();
    parts.method = method;
    parts.uri = uri;
    let path = crate::path::normalize(parts.uri.path(), snap.config.paths.rules());
    let facts = Facts {
        parts: &parts,
        host: host.as_ref().map(crate::host::RequestHost::name),
        client_ip: ip,
        client_cert: None,
        forwarded_cert: forwarded_cert.as_ref().map(ClientCertificate::thumbprint),
        request_id: &request_id,
        mode: mode.as_str(),
        origin: origin.as_deref(),
    };
    let mut resp = match decide(shared, snap, &path, &facts).await {
        Ok(allowed) => {
            let values = match &allowed.principal {
                Some(p) => identity_values(p),
                None => Some(Default::default()),
            };
            match values {
                Some(values) => {
                    let mut r = Response::new(Body::empty());
                    for (name, value) in IDENTITY_HEADERS.iter().zip(values) {
                        r.headers_mut()
                            .insert(name.clone(), value.unwrap_or(HeaderValue::from_static("")));
                    }
                    // Never set in forward-auth (the gateway sees the proxy's connection, and
                    // signs no identity here), but answered empty so a proxy that copies the
                    // answer's headers overwrites whatever the client sent under these names.
                    for name in [
                        crate::headers::CLIENT_CERT_HEADER,
                        crate::headers::IDENTITY_JWT_HEADER,
                    ] {
                        r.headers_mut().insert(name, HeaderValue::from_static(""));
                    }
                    r.headers_mut().insert(
                        http::header::CACHE_CONTROL,
                        HeaderValue::from_static("no-store"),
                    );
                    shared.metrics.request(
                        &allowed.matched.route.name,
                        "authorized",
                        started.elapsed(),
                    );
                    r
                }
                None => {
                    tracing::warn!(
                        request_id,
                        "identity not representable as headers; refusing"
                    );
                    let d =
                        portcullis_verify::Denial::from(portcullis_verify::Reason::MalformedClaims);
                    shared.metrics.request(
                        &allowed.matched.route.name,
                        "unauthorized",
                        started.elapsed(),
                    );
                    shared.verifier.denial_response(d)
                }
            }
        }
        Err((route, refusal)) => {
            shared.metrics.request(
                route.as_ref().unwrap_or(&unmatched),
                refusal.outcome(),
                started.elapsed(),
            );
            let mut r = refusal.response(&shared.verifier);
            if mode == Mode::Nginx && r.status() != StatusCode::UNAUTHORIZED {
                *r.status_mut() = StatusCode::FORBIDDEN;
            }
            if let Refusal::NotFound = refusal {
                tracing::info!(
                    request_id,
                    mode = mode.as_str(),
                    "no route for a forward-auth request"
                );
            }
            r
        }
    };
    set_request_id(&mut resp, &request_id);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_of("/_portcullis/auth/nginx"), Some(Mode::Nginx));
        assert_eq!(mode_of("/_portcullis/auth/traefik"), Some(Mode::Traefik));
        assert_eq!(mode_of("/_portcullis/auth/envoy/a/b"), Some(Mode::Envoy));
        assert_eq!(mode_of("/_portcullis/auth/envoy"), Some(Mode::Envoy));
        assert_eq!(mode_of("/_portcullis/auth/envoyx"), None);
        assert_eq!(mode_of("/_portcullis/auth/nginx/x"), None);
        assert_eq!(mode_of("/other"), None);
    }

    fn config(trusted: &str, header: &str) -> GatewayConfig {
        GatewayConfig::from_toml(&format!(
            "listen = \"127.0.0.1:0\"\ntrusted_proxies = [{trusted}]\n\
             [forward_auth]\nenabled = true\nclient_ip_header = \"{header}\"\n"
        ))
        .expect("config")
    }

    fn peer(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().expect("ip"), 40000)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn the_dpop_origin_comes_only_from_a_trusted_proxy() {
        let c = config("\"10.0.0.0/8\"", "X-Real-IP");
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("API.example:8443"),
        );
        let host = crate::host::from_header(&h, "x-forwarded-host")
            .expect("host")
            .expect("some");
        let origin = |h: &HeaderMap, p: &str| dpop_origin(h, Some(&host), &c, peer(p));
        assert_eq!(
            origin(&h, "10.0.0.2").as_deref(),
            Some("https://API.example:8443")
        );
        // An untrusted peer's description is never the htu.
        assert_eq!(origin(&h, "198.51.100.1"), None);
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert_eq!(
            origin(&h, "10.0.0.2").as_deref(),
            Some("http://API.example:8443")
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("gopher"));
        assert_eq!(origin(&h, "10.0.0.2"), None);
        h.append("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(origin(&h, "10.0.0.2"), None, "two protos");
        assert_eq!(dpop_origin(&h, None, &c, peer("10.0.0.2")), None);
    }

    /// The rule itself is core's (and tested there); this is the adapter: which header, which
    /// peer, every line of it.
    #[test]
    fn only_a_trusted_peer_is_listened_to() {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", HeaderValue::from_static("203.0.113.7"));
        let c = config("\"10.0.0.0/8\"", "X-Real-IP");
        assert_eq!(client_ip(&h, &c, peer("10.0.0.2")), ip("203.0.113.7"));
        assert_eq!(
            client_ip(&h, &c, peer("::ffff:10.0.0.2")),
            ip("203.0.113.7")
        );
        // The peer of a forward-auth request is the proxy asking, never the client.
        assert_eq!(client_ip(&h, &c, peer("198.51.100.1")), None);
        let no_header = GatewayConfig::from_toml(
            "listen = \"127.0.0.1:0\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        )
        .expect("config");
        assert_eq!(client_ip(&h, &no_header, peer("10.0.0.2")), None);
        // Another header than the configured one is not read.
        let c = config("\"10.0.0.0/8\"", "x-forwarded-for");
        assert_eq!(client_ip(&h, &c, peer("10.0.0.2")), None);
    }

    #[test]
    fn every_line_of_the_header_is_read_as_one_list() {
        let mut h = HeaderMap::new();
        h.append("forwarded", HeaderValue::from_static("for=192.0.2.1"));
        h.append(
            "forwarded",
            HeaderValue::from_static("for=\"203.0.113.7:80\""),
        );
        h.append("forwarded", HeaderValue::from_static("for=10.0.0.1"));
        let c = config("\"10.0.0.0/8\"", "forwarded");
        assert_eq!(client_ip(&h, &c, peer("10.0.0.2")), ip("203.0.113.7"));
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.1, \xff").expect("value"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        let c = config("\"10.0.0.0/8\"", "x-forwarded-for");
        assert_eq!(client_ip(&h, &c, peer("10.0.0.2")), ip("203.0.113.7"));
        h.append("x-forwarded-for", HeaderValue::from_static("unknown"));
        assert_eq!(client_ip(&h, &c, peer("10.0.0.2")), None);
    }
}
