//! The headers the gateway manages, shared by the reverse proxy ([`crate::proxy`]), the
//! WebSocket tunnel ([`crate::upgrade`]) and the forward-auth endpoints ([`crate::forward_auth`]):
//! which client headers never reach an upstream (hop-by-hop, client-sent `X-Portcullis-*` in any
//! spelling, forwarding headers only the gateway may say, credentials), the identity headers
//! set for a verified caller, and the request id.
//!
//! Pure functions on header maps: this module imports nothing else of the crate, so every module
//! that handles a request can use it. It must never let a client-sent `X-Portcullis-*` header,
//! or an underscore spelling of a header the gateway sets or strips, survive
//! [`strip_request_headers`], and never build a truncated identity ([`identity_values`] is all
//! or nothing).

use axum::body::Body;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Response};
use portcullis_verify::Principal;

/// The verified client certificate's SHA-256 (base64url), set by the gateway only.
pub const CLIENT_CERT_HEADER: HeaderName =
    HeaderName::from_static("x-portcullis-client-cert-sha256");
/// The signed identity JWT, set by the gateway only.
pub const IDENTITY_JWT_HEADER: HeaderName = HeaderName::from_static("x-portcullis-identity");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
/// itself; `X-Forwarded-For` is not here, the gateway rewrites it (`proxy::forwarded_for`).
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
        "host" | "authorization" | "x-request-id" | "x-forwarded-for"
    ) || is_api_key_header(name)
}

/// The RFC 9449 proof header: it goes with the credential it proves (a proof for one request
/// is a replay anywhere else).
const DPOP: &str = "dpop";

/// Whether a (lowercase) header name is the API key's (`portcullis_core::api_key::API_KEY_HEADER`).
fn is_api_key_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(portcullis_core::api_key::API_KEY_HEADER)
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
/// `Authorization`, `X-API-Key` and `DPoP`. One pass over the names, and only what is present is
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
            || (credentials && (k == header::AUTHORIZATION || is_api_key_header(n) || n == DPOP))
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
/// present) and, unless `forward_credentials`, `Authorization`, `X-API-Key` and the `DPoP`
/// proof are removed.
pub fn strip_request_headers(h: &mut HeaderMap, forward_credentials: bool) {
    strip(h, true, !forward_credentials);
}

pub(crate) fn set_request_id(resp: &mut Response<Body>, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(X_REQUEST_ID, v);
    }
}

/// The request id shared by the response, tracing and audit: the client's `x-request-id` when it
/// is a short token, otherwise a fresh one.
pub fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The identity headers set for upstreams (proxy) or returned to the proxy (forward-auth).
pub const IDENTITY_HEADERS: [HeaderName; 6] = [
    HeaderName::from_static("x-portcullis-subject"),
    HeaderName::from_static("x-portcullis-client"),
    HeaderName::from_static("x-portcullis-tenant"),
    HeaderName::from_static("x-portcullis-scopes"),
    HeaderName::from_static("x-portcullis-credential-kind"),
    HeaderName::from_static("x-portcullis-credential-id"),
];

/// The identity header values for a principal, in [`IDENTITY_HEADERS`] order; `None` where the
/// principal has no such fact. `None` when a value cannot be a header value (refuse, never
/// forward a truncated identity).
pub fn identity_values(p: &Principal) -> Option<[Option<HeaderValue>; 6]> {
    let v = |s: &str| HeaderValue::from_str(s).map_err(|_| ());
    Some([
        Some(v(&p.subject).ok()?),
        p.client_id.as_deref().map(v).transpose().ok()?,
        p.tenant.as_ref().map(|t| v(t.as_str())).transpose().ok()?,
        Some(v(&p.scopes.join(" ")).ok()?),
        Some(HeaderValue::from_static(p.kind.as_str())),
        Some(v(&p.credential_id).ok()?),
    ])
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
        h.insert("dpop", HeaderValue::from_static("eyJ.proof.sig"));
        h.insert("connection", HeaderValue::from_static("X-Hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        let mut kept = h.clone();
        strip_request_headers(&mut h, false);
        assert_eq!(h.keys().collect::<Vec<_>>(), [header::ACCEPT]);
        strip_request_headers(&mut kept, true);
        assert_eq!(kept.len(), 4);
        assert!(
            kept.contains_key("dpop"),
            "forwarded with the credential it proves"
        );
        assert!(!kept.contains_key("x-hop") && !kept.contains_key("connection"));
    }
}
