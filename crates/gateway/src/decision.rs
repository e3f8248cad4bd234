//! The decision every request gets, whether proxied or described by a forward-auth request:
//! route by host, normalised path and method, client certificate, credential against the
//! route's policy, then the per-route rate limit ([`decide`]); what was refused and how a client
//! is told ([`Refusal`], [`simple`]).
//!
//! This module must never let through a request whose route it could not determine or whose
//! credential failed (fail closed), never tell a client why it was refused beyond the RFC 6750
//! code, and never count or audit a denial differently by mode.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use portcullis_verify::{Denial, Possession, Principal, RequestFacts, Thumbprint, Verifier};

use crate::audit;
use crate::config::ClientCertMode;
use crate::host::HostError;
use crate::path::{NormalPath, PathError};
use crate::routes::{Access, Matched};
use crate::state::{Shared, Snapshot};

/// A concise JSON error answer: `{"error": code}`, never more.
pub fn simple(status: StatusCode, code: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{{\"error\":\"{code}\"}}")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// Why a request was not let through.
#[derive(Debug)]
pub enum Refusal {
    BadPath(PathError),
    /// The request's host is malformed or ambiguous ([`crate::host`]).
    BadHost(HostError),
    NotFound,
    /// The credential was refused; `api_keys` says whether the route takes API keys, which its
    /// challenge then says too ([`api_key_challenge`]).
    Denied {
        denial: Denial,
        api_keys: bool,
    },
    /// The route requires a verified client certificate and the connection presented none.
    ClientCertRequired,
    RateLimited {
        retry_after: u64,
    },
}

impl Refusal {
    /// The label used for metrics `outcome`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::BadPath(_) | Self::BadHost(_) => "bad_request",
            Self::NotFound => "not_found",
            Self::ClientCertRequired => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::Denied { denial: d, .. } => match d.class().status() {
                400 => "bad_request",
                403 => "forbidden",
                429 => "rate_limited",
                _ => "unauthorized",
            },
        }
    }

    /// The answer a client gets (RFC 6750 for credential problems).
    pub fn response(&self, verifier: &Verifier) -> Response<Body> {
        match self {
            Self::BadPath(_) | Self::BadHost(_) => {
                simple(StatusCode::BAD_REQUEST, "invalid_request")
            }
            Self::NotFound => simple(StatusCode::NOT_FOUND, "not_found"),
            // 403, not 401: no bearer credential would help, only a new connection with a
            // certificate. RFC 6749's `access_denied`, without a WWW-Authenticate challenge.
            Self::ClientCertRequired => simple(StatusCode::FORBIDDEN, "access_denied"),
            Self::RateLimited { retry_after } => {
                let mut r = simple(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(*retry_after));
                r
            }
            Self::Denied { denial, api_keys } => {
                let mut r = verifier.denial_response(*denial);
                if *api_keys {
                    api_key_challenge(r.headers_mut());
                }
                r
            }
        }
    }
}

/// Adds, after the `Bearer` challenge, the `ApiKey` challenge with the same parameters
/// (`portcullis_core::api_key::api_key_challenge`, the token service's text too).
pub fn api_key_challenge(headers: &mut http::HeaderMap) {
    let Some(params) = headers
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return;
    };
    let value = portcullis_core::api_key::api_key_challenge(params);
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.append(http::header::WWW_AUTHENTICATE, v);
    }
}

/// A request let through: its route and, for protected routes, who is calling.
#[derive(Debug)]
pub struct Allowed<'a> {
    pub matched: Matched<'a>,
    pub principal: Option<Arc<Principal>>,
}

/// The request facts a decision needs, from the proxied request or a forward-auth description.
#[derive(Debug)]
pub struct Facts<'a> {
    /// Method, URI (its query is checked for credentials) and headers of the original request.
    pub parts: &'a Parts,
    /// The host name routes are matched by: the one the upstream is told ([`crate::host`]).
    pub host: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    /// The thumbprint of the client certificate verified on this connection; always `None`
    /// in forward-auth mode (the connection is the proxy's, not the client's).
    pub client_cert: Option<&'a Thumbprint>,
    /// In forward-auth mode, the certificate a trusted proxy forwarded in
    /// `forward_auth.client_cert_header`: good for a certificate-bound token's binding (the
    /// proxy's TLS handshake proved possession), never for `client_cert = "required"`, which
    /// means verified against this gateway's `tls.client_ca_file`.
    pub forwarded_cert: Option<&'a Thumbprint>,
    pub request_id: &'a str,
    /// `proxy`, `nginx`, `traefik` or `envoy`, for the audit event.
    pub mode: &'static str,
    /// `scheme://host[:port]` the client addressed, what a DPoP proof's `htu` must name with the
    /// request's path: the listener's scheme and the `Host` in proxy mode; in forward-auth mode
    /// the proxy's description, only from a trusted proxy. `None`: every DPoP proof is refused.
    pub origin: Option<&'a str>,
}

/// Counts one denial (metrics by `(class, reason)`) and audits it, within the sampler's rate.
fn record_denial(
    shared: &Shared,
    snap: &Snapshot,
    f: &Facts<'_>,
    route: &str,
    (class, reason): (&'static str, &'static str),
    status: u16,
) {
    shared.metrics.auth_failure(class, reason);
    audit::denial(
        &snap.sampler,
        &shared.metrics,
        shared.denial_hook(),
        shared.second(),
        &audit::Denied {
            request_id: f.request_id,
            route,
            method: f.parts.method.as_str(),
            class,
            reason,
            status,
            client_ip: f.client_ip,
            mode: f.mode,
        },
    );
}

/// Decides one request: route, credential, policy, rate limit. Denials are counted and audited
/// here, so every mode reports them the same way.
pub async fn decide<'a>(
    shared: &Shared,
    snap: &'a Snapshot,
    path: &'a Result<NormalPath, PathError>,
    f: &Facts<'_>,
) -> Result<Allowed<'a>, (Option<Arc<str>>, Refusal)> {
    let path = match path {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(request_id = f.request_id, error = %e, "path refused");
            return Err((None, Refusal::BadPath(*e)));
        }
    };
    let Some(matched) = snap.routes.find(f.host, path, &f.parts.method) else {
        return Err((None, Refusal::NotFound));
    };
    let route = matched.route;
    if route.client_cert == ClientCertMode::Required && f.client_cert.is_none() {
        record_denial(
            shared,
            snap,
            f,
            &route.name,
            ("access_denied", "client_cert_missing"),
            403,
        );
        return Err((Some(route.name.clone()), Refusal::ClientCertRequired));
    }
    let principal = match &route.access {
        Access::Public => None,
        Access::Protected(policy) => {
            let tenant = matched.resource_tenant(&f.parts.headers);
            // Only a DPoP request needs its absolute URI (the proof's `htu`).
            let htu = match f.origin {
                Some(o) if portcullis_verify::http::presents_dpop(&f.parts.headers) => {
                    format!("{o}{}", f.parts.uri.path())
                }
                _ => String::new(),
            };
            let result = match portcullis_verify::http::presented_credential_at(f.parts, &htu) {
                Err(reason) => Err(Denial::from(reason)),
                Ok(presented) => {
                    // A certificate-bound token passes only with its certificate.
                    let possession = Possession {
                        client_certificate: f.client_cert.or(f.forwarded_cert),
                        ..Possession::BEARER
                    };
                    shared
                        .verifier
                        .check_with(
                            presented,
                            policy,
                            RequestFacts {
                                resource_tenant: tenant.as_ref(),
                                client_ip: f.client_ip,
                            },
                            &possession,
                        )
                        .await
                }
            };
            match result {
                Ok(p) => Some(p),
                Err(denial) => {
                    let class = denial.class();
                    record_denial(
                        shared,
                        snap,
                        f,
                        &route.name,
                        (class.name(), denial.reason.as_str()),
                        class.status(),
                    );
                    let api_keys = policy.accept_api_keys;
                    return Err((
                        Some(route.name.clone()),
                        Refusal::Denied { denial, api_keys },
                    ));
                }
            }
        }
    };
    if let Some(limit) = &route.rate_limit {
        // Tokens count per issuer and subject, not per token: a client could otherwise mint a
        // fresh token to start a fresh bucket. An API key counts per key.
        let caller = match (&principal, f.client_ip) {
            (Some(p), _) if p.kind == portcullis_verify::CredentialKind::AccessToken => format!(
                "token:{}:{}",
                p.issuer.as_deref().unwrap_or_default(),
                p.subject
            ),
            (Some(p), _) => format!("{}:{}", p.kind.as_str(), p.credential_id),
            (None, Some(ip)) => format!("ip:{ip}"),
            (None, None) => "unknown".to_owned(),
        };
        if let Err(retry_after) = limit.check(&caller, Instant::now()) {
            tracing::info!(
                request_id = f.request_id,
                route = &*route.name,
                "rate limited"
            );
            return Err((
                Some(route.name.clone()),
                Refusal::RateLimited { retry_after },
            ));
        }
    }
    Ok(Allowed { matched, principal })
}
