//! `POST /v1/api-keys/verify` and `POST /v1/api-keys/leaks`.
//!
//! Verify answers a verifier or gateway holding a credential with the `verify_api_keys`
//! permission (a `service` credential, or an administrator); it must never answer for a tenant
//! the caller does not reach, nor accept a key from the URL. A refused key is 200
//! `{"valid": false}`, the same for every reason; 401/403 are only ever about the caller's own
//! credential.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::admin::{AdminPrincipal, AdminTarget, Permission};
use portcullis_core::api_key::{Rejection, ScopeSet, ScopeToken};
use portcullis_core::credential::Environment;
use portcullis_core::tenant::TenantId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin::auth::{authenticate, authorize};
use crate::error::ApiError;
use crate::extract::{origin, ApiJson};
use portcullis_service::api_keys::leaks::{self, LeakReportRefused, MAX_LEAK_TOKENS};
use portcullis_service::api_keys::verifier::{VerifyError, VerifyRequest};
use portcullis_service::api_keys::ApiKeyService;
use portcullis_service::audit::RequestOrigin;

/// Whether a URL query string carries something that looks like a Portcullis API key, raw or
/// percent-encoded.
pub fn key_in_query(query: Option<&str>) -> bool {
    let Some(q) = query else { return false };
    let raw_hit = q.to_ascii_lowercase().contains("pcl_key_") || q.contains("pcl%5Fkey%5F");
    let decoded_hit = serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .map(|pairs| {
            pairs
                .iter()
                .any(|(k, v)| k.contains("pcl_key_") || v.contains("pcl_key_"))
        })
        .unwrap_or(false);
    raw_hit || decoded_hit
}

/// Whether a query string sent to the verify endpoint carries a key: a key-shaped value, or a
/// `key`/`api_key` parameter whatever its value (the endpoint takes no query parameter).
fn verify_query_carries_key(query: Option<&str>) -> bool {
    key_in_query(query)
        || query.is_some_and(|q| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .map(|pairs| {
                    pairs.iter().any(|(k, _)| {
                        k.eq_ignore_ascii_case("key") || k.eq_ignore_ascii_case("api_key")
                    })
                })
                // Not even a query string: nothing to verify would come from it anyway, but
                // refuse rather than guess.
                .unwrap_or(true)
        })
}

/// What a caller that put a key in the URL is told.
pub const KEY_IN_URL: &str =
    "send the API key in the JSON body, never in the URL: URLs are kept in proxy and access logs";

/// The caller of the verify endpoint: an authenticated credential (a verifier's `service`
/// credential, or an administrator); whether it may verify keys of the tenant asked about is
/// core's decision, made in [`verify`]. A key in the query string is refused before anything
/// else with `400 invalid_request` saying where the key belongs: the mistake is the request's,
/// not the caller credential's, and the key is never verified (nor is the caller
/// authenticated), so the answer says nothing about either.
#[derive(Debug)]
pub struct VerifyCaller {
    principal: AdminPrincipal,
    origin: RequestOrigin,
}

impl FromRequestParts<ApiKeyService> for VerifyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiKeyService,
    ) -> Result<Self, ApiError> {
        let origin = origin(parts);
        if verify_query_carries_key(parts.uri.query()) {
            let r = Rejection::InQueryString;
            state.keys.verifier.audit_refusal(r, None, &origin);
            let mut e = ApiError::invalid_request(KEY_IN_URL);
            e.reason = Some(r.reason().to_owned());
            return Err(e);
        }
        let principal = authenticate(parts, state, &origin).await?;
        Ok(Self { principal, origin })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The API key as presented to the calling service.
    key: String,
    /// The tenant whose resource is reached. Omitted: the caller's own tenant, or any tenant for a
    /// system-tenant credential.
    tenant: Option<String>,
    /// The environment the calling service serves (default: `api_keys.environment`).
    environment: Option<String>,
    /// Scopes the request needs; all must be granted to the key.
    #[serde(default)]
    scopes: Vec<String>,
    /// The end client's address, checked against the key's IP allowlist.
    client_ip: Option<String>,
    /// The resource being reached, checked against the key's allowed audiences.
    audience: Option<String>,
}

pub async fn verify(
    caller: VerifyCaller,
    State(state): State<ApiKeyService>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Response, ApiError> {
    let requested = body
        .tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let tenant = match requested {
        Some(t) => Some(t),
        None => match caller.principal.home() {
            AdminTarget::Global => None,
            AdminTarget::Tenant(t) => Some(t.clone()),
        },
    };
    let target = match &tenant {
        Some(t) => AdminTarget::Tenant(t),
        None => AdminTarget::Global,
    };
    authorize(
        &state,
        &caller.principal,
        Permission::VerifyApiKeys,
        target,
        &caller.origin,
    )?;
    let environment = body
        .environment
        .as_deref()
        .map(Environment::parse)
        .transpose()
        .map_err(|_| ApiError::invalid_request("environment must be a lowercase slug"))?;
    let scopes =
        ScopeSet::parse_list(&body.scopes).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let audience = body
        .audience
        .as_deref()
        .map(ScopeToken::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let client_ip = body
        .client_ip
        .as_deref()
        .map(str::parse::<IpAddr>)
        .transpose()
        .map_err(|_| ApiError::invalid_request("client_ip must be an IP address"))?;
    // The end client's address as the audit log's client IP; the caller's is the service's.
    let mut origin = caller.origin.clone();
    if let Some(ip) = client_ip {
        origin.client_ip = Some(ip);
    }
    let request = VerifyRequest {
        presented: &body.key,
        tenant: tenant.as_ref(),
        environment: environment.as_ref(),
        client_ip,
        audience: audience.as_ref(),
        required_scopes: &scopes,
        enforce_rate_limit: true,
    };
    // A refused key is an answer about the key, not an error of this request: 200 with only
    // `{"valid": false}`, the same bytes for every reason (the reason is audited by the
    // verifier). 401/403 stay reserved for the caller's own credential, so a verifier can tell
    // "this key is bad" from "my credential was refused". Over the key's rate limit (429) and
    // storage failures (5xx) keep their error answers.
    let p = match state.keys.verifier.verify(&request, &origin).await {
        Ok(p) => p,
        Err(VerifyError::Rejected(_)) => return Ok(no_store(json!({"valid": false}))),
        Err(e) => return Err(e.into()),
    };
    Ok(no_store(json!({
            "valid": true,
            "active": true,
            "key_id": p.key_id,
            "tenant": p.tenant,
            "environment": p.environment,
            "name": p.name,
            "owner": p.owner,
            "scopes": p.scopes,
            "audiences": p.audiences,
            "rate_limit": p.rate_limit,
            "expires_at": p.expires_at.map(portcullis_service::state::rfc3339),
    })))
}

/// A verify answer: never stored by a cache between the verifier and this server.
fn no_store(body: Value) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}

/// What the presented key is and may do (`GET /v1/tenants/{tenant}/api-keys/self`).
pub async fn whoami(auth: super::extract::ApiKeyAuth) -> Json<Value> {
    let p = auth.principal;
    Json(json!({
        "key_id": p.key_id,
        "tenant": p.tenant,
        "environment": p.environment,
        "name": p.name,
        "owner": p.owner,
        "scopes": p.scopes,
        "expires_at": p.expires_at.map(portcullis_service::state::rfc3339),
    }))
}

/// `POST /v1/api-keys/leaks`: the service checks the reporter's signature and revokes every
/// reported key (`portcullis_service::api_keys::leaks`); the answer is the same whatever
/// matched.
pub async fn leaks(
    State(state): State<ApiKeyService>,
    headers: HeaderMap,
    parts_origin: LeakOrigin,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let received = match leaks::report(&state, &headers, &body, &parts_origin.0).await? {
        Ok(received) => received,
        Err(LeakReportRefused::BadSignature) => {
            return Err(ApiError::invalid_token("leak_report_bad_signature"))
        }
        Err(LeakReportRefused::NotAnArray) => {
            return Err(ApiError::invalid_request(
                "expected a JSON array of reported tokens",
            ))
        }
        Err(LeakReportRefused::TooMany) => {
            return Err(ApiError::invalid_request(format!(
                "at most {MAX_LEAK_TOKENS} tokens per report"
            )))
        }
    };
    Ok((StatusCode::OK, Json(json!({ "received": received }))))
}

/// The request origin for the leak endpoint (no authentication beyond the signature).
#[derive(Debug)]
pub struct LeakOrigin(RequestOrigin);

impl<S: Send + Sync> FromRequestParts<S> for LeakOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self(origin(parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_query_strings_are_spotted_raw_and_encoded() {
        let key = "pcl_key_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(key_in_query(Some(&format!("api_key={key}"))));
        assert!(key_in_query(Some(&format!(
            "x=1&k={}",
            key.replace('_', "%5F")
        ))));
        assert!(key_in_query(Some(&format!(
            "k={}",
            key.replace('_', "%5f")
        ))));
        assert!(key_in_query(Some(key)));
        assert!(!key_in_query(Some("limit=10&owner=acme")));
        assert!(!key_in_query(None));
    }
}
