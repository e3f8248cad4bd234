//! [`ApiKeyAuth`]: the axum extractor a route uses to require an API key from its caller.
//!
//! The key is read from `X-API-Key` or `Authorization: Bearer`, never from the URL: a request
//! whose query string carries a key is refused (and audited) even if the key is valid, because
//! URLs are kept by proxies, browsers and access logs. A `{tenant}` path parameter, when the
//! route has one, binds the key to that tenant. The client address, checked against a key's IP
//! allowlist, is the one `extract::origin` resolved: the peer, or behind a trusted proxy the
//! address it forwarded. Its 401s carry an `ApiKey` challenge beside the `Bearer` one, as the
//! gateway's routes that take API keys do.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use portcullis_core::api_key::{ApiKeyPrincipal, Rejection, ScopeSet};
use portcullis_core::tenant::TenantId;

use super::endpoints::key_in_query;
use crate::error::ApiError;
use crate::extract::origin;
use portcullis_service::api_keys::verifier::VerifyRequest;
use portcullis_service::api_keys::ApiKeyService;
use portcullis_service::audit::RequestOrigin;

/// A caller authenticated by an API key of the route's tenant (if the route names one).
#[derive(Debug)]
pub struct ApiKeyAuth {
    pub principal: ApiKeyPrincipal,
    pub origin: RequestOrigin,
}

fn presented(parts: &Parts) -> Option<&str> {
    if let Some(v) = parts.headers.get(portcullis_core::api_key::API_KEY_HEADER) {
        return v.to_str().ok().map(str::trim);
    }
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

impl FromRequestParts<ApiKeyService> for ApiKeyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiKeyService,
    ) -> Result<Self, ApiError> {
        let origin = origin(parts);
        let tenant = match Path::<HashMap<String, String>>::from_request_parts(parts, state).await {
            Ok(Path(params)) => params
                .get("tenant")
                .map(|t| TenantId::parse(t))
                .transpose()
                .map_err(|e| ApiError::invalid_request(e.to_string()))?,
            Err(_) => None,
        };
        let verifier = &state.keys.verifier;
        if key_in_query(parts.uri.query()) {
            let r = Rejection::InQueryString;
            verifier.audit_refusal(r, tenant.as_ref(), &origin);
            return Err(ApiError::invalid_token(r.reason()).accepting_api_keys());
        }
        let Some(key) = presented(parts) else {
            return Err(ApiError::missing_credential().accepting_api_keys());
        };
        let client_ip = origin.client_ip;
        let none = ScopeSet::default();
        let request = VerifyRequest {
            presented: key,
            tenant: tenant.as_ref(),
            environment: None,
            client_ip,
            audience: None,
            required_scopes: &none,
            enforce_rate_limit: true,
        };
        let principal = verifier
            .verify(&request, &origin)
            .await
            .map_err(|e| ApiError::from(e).accepting_api_keys())?;
        Ok(Self { principal, origin })
    }
}
