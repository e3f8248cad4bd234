//! tower/axum integration: a layer that verifies the request's credential against a
//! [`Policy`] and puts the [`Principal`] in the request's extensions, and an extractor that
//! hands it to handlers.
//!
//! Denials follow RFC 6750 section 3: `WWW-Authenticate: Bearer realm="..."`, with
//! `error="..."` only when a credential was sent, and a concise JSON body; a denial about a
//! DPoP proof or binding answers with a `WWW-Authenticate: DPoP` challenge (RFC 9449 section 7). The precise reason
//! goes to tracing with the request id; it must never go in the response.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::confirmation::{ClientCertificate, Possession};
use portcullis_core::tenant::TenantId;

use crate::denial::{Denial, Reason};
use crate::policy::{Policy, TenantBinding};
use crate::principal::Principal;
use crate::verifier::{Presented, RequestFacts, Verifier};

/// The header API keys may also be sent in (one spelling, in core).
pub use portcullis_core::api_key::API_KEY_HEADER;

/// Finds the one credential a request carries. Two credentials, or one in the URL query, are
/// an invalid request (RFC 6750 section 2: one method per request; never in the URL here).
/// A `DPoP` token found here is checked against an empty URI, so it is always refused: callers
/// that accept DPoP use [`presented_credential_at`] with the request's absolute URI.
pub fn presented_credential(parts: &Parts) -> Result<Presented<'_>, Reason> {
    presented_credential_at(parts, "")
}

/// The one `DPoP` header of a request; `None` when absent, or when there are several or it is
/// not text (then the proof is missing as far as RFC 9449 section 4.3 is concerned).
fn dpop_proof(parts: &Parts) -> Option<&str> {
    let mut all = parts.headers.get_all("dpop").iter();
    match (all.next(), all.next()) {
        (Some(v), None) => v.to_str().ok().filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// The absolute URI a client addressed (`htu` of its DPoP proof): `base_url` (the public origin
/// the operator configured) or the request's own scheme and authority, else `https://` and the
/// `Host` header; the path without query. `None` when nothing says where the request went.
pub fn request_uri(parts: &Parts, base_url: Option<&str>) -> Option<String> {
    let path = parts.uri.path();
    if let Some(base) = base_url {
        return Some(format!("{}{path}", base.trim_end_matches('/')));
    }
    if let (Some(scheme), Some(authority)) = (parts.uri.scheme_str(), parts.uri.authority()) {
        return Some(format!("{scheme}://{authority}{path}"));
    }
    let host = parts.headers.get(axum::http::header::HOST)?.to_str().ok()?;
    Some(format!("https://{host}{path}"))
}

/// Whether the request presents its token with the `DPoP` scheme: only then does
/// [`presented_credential_at`] need the request's absolute URI, so callers build it only then
/// (not on every bearer or API-key request).
pub fn presents_dpop(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(AUTHORIZATION)
        .iter()
        .any(|v| v.to_str().is_ok_and(is_dpop_scheme))
}

/// `DPoP <token>`, the scheme compared case-insensitively.
fn is_dpop_scheme(value: &str) -> bool {
    value
        .split_once(' ')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("dpop"))
}

/// [`presented_credential`], with `Authorization: DPoP <token>` (RFC 9449 section 7.1) taken
/// with the request's `DPoP` proof, method and `uri` (its absolute URI, see [`request_uri`]).
pub fn presented_credential_at<'a>(
    parts: &'a Parts,
    uri: &'a str,
) -> Result<Presented<'a>, Reason> {
    if parts.uri.query().is_some_and(query_carries_credential) {
        return Err(Reason::CredentialInQuery);
    }
    let mut auth = parts.headers.get_all(AUTHORIZATION).iter();
    let mut dpop = false;
    let bearer = match (auth.next(), auth.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return Err(Reason::AmbiguousCredential),
        (Some(v), None) => {
            let v = v.to_str().map_err(|_| Reason::Malformed)?;
            match v.split_once(' ') {
                Some((scheme, value)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Some(value.trim())
                }
                Some((scheme, value)) if scheme.eq_ignore_ascii_case("dpop") => {
                    dpop = true;
                    Some(value.trim())
                }
                // Another scheme is not a credential we take; answer as if none was sent.
                _ => None,
            }
        }
    };
    let mut keys = parts.headers.get_all(API_KEY_HEADER).iter();
    let header_key = match (keys.next(), keys.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return Err(Reason::AmbiguousCredential),
        (Some(v), None) => Some(v.to_str().map_err(|_| Reason::ApiKeyFormat)?.trim()),
    };
    match (bearer, header_key) {
        (Some(_), Some(_)) => Err(Reason::AmbiguousCredential),
        (Some(""), None) | (None, Some("")) => Err(Reason::Malformed),
        (Some(b), None) if dpop => Ok(Presented::DpopAccessToken {
            token: b,
            proof: dpop_proof(parts),
            method: parts.method.as_str(),
            uri,
        }),
        (Some(b), None) if b.starts_with("pcl_") => Ok(Presented::ApiKey(b)),
        (Some(b), None) => Ok(Presented::AccessToken(b)),
        (None, Some(k)) => Ok(Presented::ApiKey(k)),
        (None, None) => Err(Reason::MissingCredential),
    }
}

/// Whether a URL query looks like it carries a credential: an `access_token` or `api_key`
/// parameter (RFC 6750 section 2.3's URI method, which is never accepted here), or a Portcullis
/// credential prefix (`pcl_key_`, `pcl_adm_`, ...) raw or percent-encoded. Other text that
/// merely starts with `pcl_` is left alone.
pub fn query_carries_credential(query: &str) -> bool {
    let mut texts = vec![query.to_ascii_lowercase()];
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let k = k.to_ascii_lowercase();
        if k == "access_token" || k == "api_key" {
            return true;
        }
        texts.push(k);
        texts.push(v.to_ascii_lowercase());
    }
    let prefixes = ["pcl_key_", "pcl_adm_", "pcl_cs_", "pcl_rt_"];
    texts.iter().any(|t| prefixes.iter().any(|p| t.contains(p)))
}

/// The tenant of the resource, as the policy's binding finds it. An absent or invalid value
/// is `None`, which a bound policy refuses.
pub async fn resource_tenant(parts: &mut Parts, binding: &TenantBinding) -> Option<TenantId> {
    match binding {
        TenantBinding::Unbound => None,
        TenantBinding::Header(h) => parts
            .headers
            .get(h.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| TenantId::parse(v).ok()),
        TenantBinding::PathParam(name) => {
            let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
            let value = params.iter().find(|(k, _)| k == name).map(|(_, v)| v)?;
            TenantId::parse(value).ok()
        }
    }
}

/// The RFC 6750 answer for a denial (RFC 6585 429 with `Retry-After` for a rate limit).
pub fn denial_response(denial: Denial, realm: &str) -> Response {
    let class = denial.class();
    let status = StatusCode::from_u16(class.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let realm = realm.replace(['"', '\\'], "");
    let challenge = match class.error_code() {
        None => format!("Bearer realm=\"{realm}\""),
        Some(code) => format!("Bearer realm=\"{realm}\", error=\"{code}\""),
    };
    let body = serde_json::json!({ "error": class.error_code().unwrap_or("unauthorized") });
    let mut resp = (status, axum::Json(body)).into_response();
    if class.challenges() {
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
    }
    if let Reason::ApiKeyRateLimited { retry_after_secs } = denial.reason {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
    }
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

impl Verifier {
    /// The answer to `denial` from this verifier: [`denial_response`], with a
    /// `WWW-Authenticate: DPoP` challenge (and a fresh `DPoP-Nonce` when one is needed) for a
    /// denial about a DPoP proof or binding. (Here rather than in `verifier`, which knows
    /// nothing of HTTP answers.)
    pub fn denial_response(&self, denial: Denial) -> Response {
        dpop_denial_response(self, denial)
    }
}

/// [`denial_response`] for a denial about DPoP (RFC 9449 sections 7.1 and 9): the challenge is
/// `DPoP` with the error and the accepted `algs`, and `use_dpop_nonce` carries a fresh
/// `DPoP-Nonce`. A DPoP-bound token sent as `Bearer` gets both challenges.
pub fn dpop_denial_response(verifier: &Verifier, denial: Denial) -> Response {
    let class = denial.class();
    let dpop_reason = matches!(
        class,
        crate::denial::DenialClass::InvalidDpopProof | crate::denial::DenialClass::UseDpopNonce
    ) || matches!(
        denial.reason,
        Reason::Binding(
            portcullis_core::confirmation::BindingError::DpopBoundAsBearer
                | portcullis_core::confirmation::BindingError::DpopProofMissing
                | portcullis_core::confirmation::BindingError::DpopKeyMismatch
        )
    );
    let mut resp = denial_response(denial, verifier.realm());
    if !dpop_reason {
        return resp;
    }
    let code = class.error_code().unwrap_or("invalid_token");
    let challenge = format!("DPoP error=\"{code}\", algs=\"{}\"", verifier.dpop_algs());
    let h = resp.headers_mut();
    let as_bearer = denial.reason
        == Reason::Binding(portcullis_core::confirmation::BindingError::DpopBoundAsBearer);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        if as_bearer {
            h.append(WWW_AUTHENTICATE, v);
        } else {
            h.insert(WWW_AUTHENTICATE, v);
        }
    }
    if class == crate::denial::DenialClass::UseDpopNonce {
        if let Ok(v) = HeaderValue::from_str(&verifier.dpop_nonce()) {
            h.insert("dpop-nonce", v);
        }
    }
    resp
}

/// Verifies a request's credential under `policy`: the whole decision, for callers that are
/// not tower services (the gateway, custom middleware). A DPoP proof's `htu` is checked against
/// [`crate::DpopConfig::base_url`], else the `Host` header's `https` origin.
pub async fn authorize_request(
    verifier: &Verifier,
    policy: &Policy,
    parts: &mut Parts,
) -> Result<Arc<Principal>, Denial> {
    authorize_request_at(verifier, policy, parts, verifier.dpop_base_url()).await
}

/// [`authorize_request`] with the public origin (`https://api.example`) DPoP proofs must name.
pub async fn authorize_request_at(
    verifier: &Verifier,
    policy: &Policy,
    parts: &mut Parts,
    base_url: Option<&str>,
) -> Result<Arc<Principal>, Denial> {
    let tenant = resource_tenant(parts, &policy.tenant).await;
    let client_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let uri = if presents_dpop(&parts.headers) {
        request_uri(parts, base_url).unwrap_or_default()
    } else {
        String::new()
    };
    let presented = presented_credential_at(parts, &uri)?;
    // The listener (TLS handshake or trusted proxy header) put the certificate here; a request
    // cannot forge an extension.
    let certificate = parts
        .extensions
        .get::<ClientCertificate>()
        .map(ClientCertificate::thumbprint);
    let possession = Possession {
        client_certificate: certificate,
        ..Possession::BEARER
    };
    verifier
        .check_with(
            presented,
            policy,
            RequestFacts {
                resource_tenant: tenant.as_ref(),
                client_ip,
            },
            &possession,
        )
        .await
}

/// A tower layer enforcing a [`Policy`]. Use as an axum `route_layer` so path parameters are
/// known.
#[derive(Debug, Clone)]
pub struct RequireLayer {
    verifier: Verifier,
    policy: Arc<Policy>,
}

impl RequireLayer {
    pub fn new(verifier: Verifier, policy: Policy) -> Self {
        Self {
            verifier,
            policy: Arc::new(policy),
        }
    }
}

impl Verifier {
    /// A layer that lets through only requests whose credential satisfies `policy`.
    pub fn require(&self, policy: Policy) -> RequireLayer {
        RequireLayer::new(self.clone(), policy)
    }
}

impl<S> tower::Layer<S> for RequireLayer {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Require<S> {
        Require {
            inner,
            verifier: self.verifier.clone(),
            policy: self.policy.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Require<S> {
    inner: S,
    verifier: Verifier,
    policy: Arc<Policy>,
}

impl<S> tower::Service<axum::extract::Request> for Require<S>
where
    S: tower::Service<axum::extract::Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        // The clone that was polled ready is the one that gets called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            match authorize_request(&verifier, &policy, &mut parts).await {
                Ok(principal) => {
                    parts.extensions.insert(principal);
                    inner
                        .call(axum::extract::Request::from_parts(parts, body))
                        .await
                }
                Err(denial) => {
                    let request_id = parts
                        .headers
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info!(
                        request_id,
                        reason = denial.reason.as_str(),
                        path = parts.uri.path(),
                        "credential refused"
                    );
                    Ok(verifier.denial_response(denial))
                }
            }
        })
    }
}

/// The verified caller, for handlers behind a [`RequireLayer`]. Without the layer the request
/// is refused (fail closed), never let through anonymous.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        match parts.extensions.get::<Arc<Principal>>() {
            Some(p) => Ok((**p).clone()),
            None => {
                tracing::error!(
                    path = parts.uri.path(),
                    "Principal extracted on a route without a RequireLayer; refusing"
                );
                Err(denial_response(Reason::MissingCredential.into(), "api"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{presents_dpop, query_carries_credential};
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn credentials_in_queries_are_spotted_and_other_text_is_not() {
        for q in [
            "access_token=abc",
            "x=1&ACCESS_TOKEN=abc",
            "api_key=abc",
            "k=pcl_key_live_abc",
            "k=pcl%5Fkey%5Flive%5Fabc",
            "k=PCL_ADM_system_x",
            "pcl_cs_live_x",
        ] {
            assert!(query_carries_credential(q), "{q}");
        }
        for q in [
            "q=pcl_x",
            "search=pcl_",
            "page=2&sort=name",
            "token_type=bearer",
        ] {
            assert!(!query_carries_credential(q), "{q}");
        }
    }

    /// The URI is built only for DPoP requests: a DPoP request this misses would lose its
    /// `htu` and be refused, so every spelling the credential parser takes must count.
    #[test]
    fn dpop_requests_are_told_apart_without_parsing_the_credential() {
        let with = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("authorization", HeaderValue::from_static(v));
            }
            presents_dpop(&h)
        };
        for dpop in [
            &["DPoP t"][..],
            &["dpop t"],
            &["DPOP t"],
            &["Bearer a", "DPoP t"],
        ] {
            assert!(with(dpop), "{dpop:?}");
        }
        for other in [
            &[][..],
            &["Bearer t"],
            &["DPoPt"],
            &["Basic dpop"],
            &["DPoP"],
        ] {
            assert!(!with(other), "{other:?}");
        }
    }
}
