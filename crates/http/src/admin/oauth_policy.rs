//! A tenant's OAuth policy (`GET`/`PUT /admin/v1/tenants/{tenant}/oauth-policy`): rules for every
//! client of the tenant, on top of each client's own settings. Today one rule:
//! `require_pushed_authorization_requests` (RFC 9126 section 6), every authorization request of
//! every client of the tenant must come through the PAR endpoint. A client's own
//! `require_pushed_authorization_requests` still applies when the tenant's is off.

use axum::extract::State;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_store::OAuthPolicyRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::TenantAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::OAuthAdmin;
use portcullis_service::audit::EventDraft;
use portcullis_service::state::rfc3339;

/// The policy to set; replaces the stored one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthPolicyBody {
    /// Every authorization request of every client of the tenant must be pushed first
    /// (RFC 9126); a direct request goes back to the client with `invalid_request`.
    require_pushed_authorization_requests: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthPolicyView {
    require_pushed_authorization_requests: bool,
    /// When it was last set (`null`: never).
    updated_at: Option<String>,
}

impl From<Option<OAuthPolicyRecord>> for OAuthPolicyView {
    fn from(p: Option<OAuthPolicyRecord>) -> Self {
        Self {
            require_pushed_authorization_requests: p.is_some_and(|p| p.require_pushed_requests),
            updated_at: p.map(|p| rfc3339(p.updated_at)),
        }
    }
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/oauth-policy", tag = "tenants", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant's OAuth policy", body = OAuthPolicyView)))]
pub async fn show_oauth_policy(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
) -> Result<Json<OAuthPolicyView>, ApiError> {
    Ok(Json(
        state.store.get_oauth_policy(&admin.tenant).await?.into(),
    ))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/oauth-policy", tag = "tenants", params(super::openapi::TenantPath), request_body = OAuthPolicyBody,
    responses((status = 200, description = "The policy, replaced", body = OAuthPolicyView)))]
pub async fn put_oauth_policy(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    ApiJson(body): ApiJson<OAuthPolicyBody>,
) -> Result<Json<OAuthPolicyView>, ApiError> {
    let now = state.clock.now();
    state
        .store
        .put_oauth_policy(
            &admin.tenant,
            body.require_pushed_authorization_requests,
            now,
        )
        .await?;
    // Before answering, so the next authorization request on this node sees the new policy.
    state.oauth.directory.tenant_changed(&admin.tenant);
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action: Action::TenantOAuthPolicyUpdate,
            outcome: Outcome::Success,
            reason: None,
            target: Some(admin.tenant.to_string()),
        },
        &admin.origin,
    );
    Ok(Json(
        Some(OAuthPolicyRecord {
            require_pushed_requests: body.require_pushed_authorization_requests,
            updated_at: now,
        })
        .into(),
    ))
}
