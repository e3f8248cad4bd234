//! The server's store-backed API key verifier as a `portcullis_verify::ApiKeyBackend`, so a
//! verify library or gateway running inside the server process checks keys against storage
//! directly instead of over HTTP. It lives in the assembly because the verify library brings
//! axum, which the service crate must not depend on.
//!
//! This adapter must never decide about a key itself: it translates, the verifier decides.
//!
//! Scopes and the key's own rate limit are not checked here: the backend answers with the key's
//! granted scopes and limit, and the library applies the route's policy and counts the limit for
//! every request it admits (cached or not). Every refusal is audited by the verifier as usual.

use async_trait::async_trait;
use portcullis_core::api_key::{ScopeSet, ScopeToken};
use portcullis_verify::{ApiKeyBackend, ApiKeyFailure, ApiKeyIdentity, ApiKeyQuery};

use std::sync::Arc;

use portcullis_service::api_keys::{ApiKeyVerifier, VerifyError, VerifyRequest};
use portcullis_service::audit::RequestOrigin;

/// The store-backed verifier as an [`ApiKeyBackend`].
#[derive(Debug, Clone)]
pub struct StoreApiKeys(pub Arc<ApiKeyVerifier>);

#[async_trait]
impl ApiKeyBackend for StoreApiKeys {
    async fn verify(&self, q: &ApiKeyQuery<'_>) -> Result<ApiKeyIdentity, ApiKeyFailure> {
        let audience = match q.audience.map(ScopeToken::parse).transpose() {
            Ok(a) => a,
            // An audience that is not a valid scope token cannot be one a key was granted.
            Err(_) => return Err(ApiKeyFailure::Rejected),
        };
        let none = ScopeSet::default();
        let req = VerifyRequest {
            presented: q.key,
            tenant: q.tenant,
            environment: Some(q.environment),
            client_ip: q.client_ip,
            audience: audience.as_ref(),
            required_scopes: &none,
            enforce_rate_limit: false,
        };
        let origin = RequestOrigin {
            request_id: None,
            client_ip: q.client_ip,
            user_agent: None,
        };
        match self.0.verify(&req, &origin).await {
            Ok(p) => Ok(ApiKeyIdentity {
                key_id: p.key_id,
                tenant: p.tenant,
                environment: p.environment,
                owner: p.owner,
                scopes: p.scopes.iter().map(str::to_owned).collect(),
                expires_at: p.expires_at,
                rate_limit: p.rate_limit,
            }),
            Err(VerifyError::Rejected(_)) => Err(ApiKeyFailure::Rejected),
            Err(VerifyError::RateLimited { retry_after_secs }) => {
                Err(ApiKeyFailure::RateLimited { retry_after_secs })
            }
            Err(VerifyError::Internal(e)) => Err(ApiKeyFailure::Unavailable(e.to_string())),
        }
    }
}
