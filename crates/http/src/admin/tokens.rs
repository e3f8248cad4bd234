//! Admin and service credentials: create (shown once), list (never secrets), revoke.
//!
//! A new credential has the `role` asked for, or by default the tenant's administrator role
//! (global admin under the system tenant, tenant admin elsewhere). Whether the caller may create
//! it is core's decision (`AdminPrincipal::authorize_grant`), applied by the service's
//! `admin_credentials::create`, which also mints and stores it: a tenant admin creates
//! credentials of its own tenant no stronger than its own, only a global admin creates
//! system-tenant ones, and no other role creates any. This module reads the request and renders
//! the outcome; it must never return a secret anywhere but in the one creation response.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::admin::{AdminRole, AdminTarget};
use portcullis_core::audit::{Action, Outcome};
use portcullis_store::AdminCredentialRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{deny, TenantAdmin};
use super::tenants::validate_display_name;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::page::{ListQuery, NoFilter, Paged};
use crate::state::AdminAuth;
use portcullis_service::admin_credentials::{self, CreateRefused, CreateRequest, Created};
use portcullis_service::audit::EventDraft;
use portcullis_service::state::rfc3339;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateAdminToken)]
pub struct CreateToken {
    name: String,
    /// `global_admin`, `tenant_admin`, `auditor`, `api_key_manager` or `service`.
    role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AdminTokenView)]
pub struct TokenView {
    id: String,
    tenant: String,
    #[schema(schema_with = super::openapi::admin_role)]
    role: AdminRole,
    name: String,
    display_prefix: String,
    created_at: String,
    created_by: Option<String>,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

impl From<AdminCredentialRecord> for TokenView {
    fn from(r: AdminCredentialRecord) -> Self {
        Self {
            id: r.id,
            tenant: r.tenant.to_string(),
            role: r.role,
            name: r.name,
            display_prefix: r.display_prefix,
            created_at: rfc3339(r.created_at),
            created_by: r.created_by,
            revoked_at: r.revoked_at.map(rfc3339),
            last_used_at: r.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedAdminToken)]
pub struct CreatedToken {
    #[serde(flatten)]
    view: TokenView,
    /// The secret, shown this once.
    token: String,
}

/// Minting is the service's; re-exported for the harnesses that store credentials directly.
pub use portcullis_service::admin_credentials::{mint, mint_with_role};

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/admin-tokens", tag = "admin-tokens", params(super::openapi::TenantPath), request_body = CreateToken,
    responses((status = 201, description = "The token; the secret is shown this once", body = CreatedToken)))]
pub async fn create(
    admin: TenantAdmin,
    State(state): State<AdminAuth>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let name = validate_display_name(&body.name)?;
    let role = match body.role.as_deref() {
        None => None,
        Some(raw) => Some(AdminRole::parse(raw).ok_or_else(|| {
            ApiError::invalid_request(
                "role must be global_admin, tenant_admin, auditor, api_key_manager or service",
            )
        })?),
    };
    let created = admin_credentials::create(
        state.store.as_ref(),
        state.clock.as_ref(),
        &state.audit,
        &admin.principal,
        &admin.tenant,
        CreateRequest { name, role },
        &admin.origin,
    )
    .await?;
    let Created { record, credential } = match created {
        Ok(created) => created,
        Err(CreateRefused::Denied(denied)) => {
            return Err(deny(
                &state,
                &admin.principal,
                denied,
                AdminTarget::Tenant(&admin.tenant),
                &admin.origin,
            ))
        }
        Err(CreateRefused::RoleNotAvailableInTenant(role)) => {
            return Err(ApiError::invalid_request(format!(
                "no credential of this tenant can be {}",
                role.as_str()
            )))
        }
        Err(CreateRefused::TenantNotFound) => return Err(ApiError::not_found()),
        Err(CreateRefused::TenantDisabled) => {
            return Err(ApiError::conflict("the tenant is disabled"))
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            view: record.into(),
            token: credential.expose().to_owned(),
        }),
    ))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/admin-tokens", tag = "admin-tokens", params(super::openapi::TenantPath, crate::page::PageParams),
    responses((status = 200, description = "A page of the tenant's admin and service tokens, oldest first", body = Paged<TokenView>)))]
pub async fn list(
    admin: TenantAdmin,
    State(state): State<AdminAuth>,
    query: ListQuery<NoFilter>,
) -> Result<Json<Paged<TokenView>>, ApiError> {
    let scope = format!("admin-tokens:{}", admin.tenant);
    let page = query.paging.request(&scope)?;
    let records = state
        .store
        .list_admin_credentials(&admin.tenant, &page)
        .await?;
    Ok(Json(Paged::new(records, &scope, Into::into)))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/admin-tokens/{id}", tag = "admin-tokens", params(super::openapi::TenantIdPath),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke(
    admin: TenantAdmin,
    State(state): State<AdminAuth>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found());
    }
    let revoked = state
        .store
        .revoke_admin_credential(&admin.tenant, &id, state.clock.now())
        .await?;
    if !revoked {
        return Err(ApiError::not_found());
    }
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action: Action::AdminTokenRevoke,
            outcome: Outcome::Success,
            reason: None,
            target: Some(id),
        },
        &admin.origin,
    );
    Ok(StatusCode::NO_CONTENT)
}
