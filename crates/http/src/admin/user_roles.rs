//! Admin roles held by users, under `/tenants/{tenant}/users/{id}/admin-role`: grant (or
//! replace), show, remove. A user with a role acts at the admin API with exactly that role's
//! permissions through the CLI's device sign-in (`portcullis login`,
//! `portcullis_service::tokens::cli_session`). The roles are those of admin credentials
//! (`portcullis_core::admin::AdminRole`), and granting one follows the same rule as creating a
//! credential of that role (`AdminPrincipal::authorize_grant`): a tenant admin grants only roles
//! no stronger than its own, only in its tenant. This module must never decide that itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::admin::{AdminRole, AdminTarget, GrantRefused};
use portcullis_core::audit::{Action, Outcome, Reason};
use portcullis_core::user::UserId;
use portcullis_store::UserAdminRole;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{deny, TenantAdmin};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::UsersAdmin;
use portcullis_service::audit::EventDraft;
use portcullis_service::state::rfc3339;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRole {
    /// `global_admin` (system tenant only), `tenant_admin`, `auditor`, `api_key_manager` or
    /// `service`.
    role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserRoleView {
    user_id: String,
    tenant: String,
    #[schema(schema_with = super::openapi::admin_role)]
    role: AdminRole,
    granted_at: String,
    /// Who granted it (`admin:<credential id>`).
    granted_by: String,
}

impl From<UserAdminRole> for UserRoleView {
    fn from(r: UserAdminRole) -> Self {
        Self {
            user_id: r.user_id.to_string(),
            tenant: r.tenant.to_string(),
            role: r.role,
            granted_at: rfc3339(r.granted_at),
            granted_by: r.granted_by,
        }
    }
}

/// The tenant's user `id`, or 404.
async fn user(admin: &TenantAdmin, id: &str) -> Result<UserId, ApiError> {
    let id = UserId::parse(id).map_err(|_| ApiError::not_found())?;
    admin
        .scope
        .user(&id)
        .await?
        .map(|u| u.id)
        .ok_or_else(ApiError::not_found)
}

fn record(state: &UsersAdmin, admin: &TenantAdmin, action: Action, user: &str, role: AdminRole) {
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action,
            outcome: Outcome::Success,
            reason: Some(Reason::new(role.as_str())),
            target: Some(user.to_owned()),
        },
        &admin.origin,
    );
}

/// Removing a role (or granting over it) is as strong as granting it: a tenant admin cannot
/// demote a global admin. A role that cannot exist in the tenant (stored before imports checked roles, say) may
/// still be removed by whoever could grant it.
fn may_remove(state: &UsersAdmin, admin: &TenantAdmin, held: AdminRole) -> Result<(), ApiError> {
    match admin.principal.authorize_grant(held, &admin.tenant) {
        Err(GrantRefused::Denied(denied)) => Err(deny(
            state,
            &admin.principal,
            denied,
            AdminTarget::Tenant(&admin.tenant),
            &admin.origin,
        )),
        Ok(()) | Err(GrantRefused::RoleNotAvailableInTenant) => Ok(()),
    }
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/users/{id}/admin-role", tag = "users", params(super::openapi::TenantIdPath), request_body = GrantRole,
    responses((status = 200, description = "The user's admin role, granted or replaced", body = UserRoleView),
              (status = 400, description = "An unknown role, or one no user of this tenant can hold", body = super::openapi::ErrorBody),
              (status = 403, description = "The caller may not grant this role", body = super::openapi::ErrorBody),
              (status = 404, description = "No such user in this tenant", body = super::openapi::ErrorBody)))]
pub async fn grant_role(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<GrantRole>,
) -> Result<Json<UserRoleView>, ApiError> {
    let role = AdminRole::parse(&body.role).ok_or_else(|| {
        ApiError::invalid_request(
            "role must be global_admin, tenant_admin, auditor, api_key_manager or service",
        )
    })?;
    match admin.principal.authorize_grant(role, &admin.tenant) {
        Ok(()) => {}
        Err(GrantRefused::Denied(denied)) => {
            return Err(deny(
                &state,
                &admin.principal,
                denied,
                AdminTarget::Tenant(&admin.tenant),
                &admin.origin,
            ))
        }
        Err(GrantRefused::RoleNotAvailableInTenant) => {
            return Err(ApiError::invalid_request(format!(
                "no user of this tenant can be {}",
                role.as_str()
            )))
        }
    }
    let user = user(&admin, &id).await?;
    // Replacing a role removes the one held: that is as strong as granting it (a weaker admin
    // must not demote a stronger one by granting over it).
    if let Some(held) = state
        .store
        .get_user_admin_role(&admin.tenant, user.as_str())
        .await?
    {
        may_remove(&state, &admin, held.role)?;
    }
    let granted = UserAdminRole {
        tenant: admin.tenant.clone(),
        user_id: user.clone(),
        role,
        granted_at: state.clock.now(),
        granted_by: admin.principal.actor().to_string(),
    };
    state.store.put_user_admin_role(&granted).await?;
    record(&state, &admin, Action::UserRoleGrant, user.as_str(), role);
    Ok(Json(granted.into()))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/users/{id}/admin-role", tag = "users", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The user's admin role", body = UserRoleView),
              (status = 404, description = "No such user, or the user holds no admin role", body = super::openapi::ErrorBody)))]
pub async fn show_role(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<UserRoleView>, ApiError> {
    let user = user(&admin, &id).await?;
    let role = state
        .store
        .get_user_admin_role(&admin.tenant, user.as_str())
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(role.into()))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/users/{id}/admin-role", tag = "users", params(super::openapi::TenantIdPath),
    responses((status = 204, description = "The role is removed: the user's CLI sign-in may do nothing at the admin API from now on"),
              (status = 404, description = "No such user, or the user holds no admin role", body = super::openapi::ErrorBody)))]
pub async fn revoke_role(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = user(&admin, &id).await?;
    let Some(held) = state
        .store
        .get_user_admin_role(&admin.tenant, user.as_str())
        .await?
    else {
        return Err(ApiError::not_found());
    };
    may_remove(&state, &admin, held.role)?;
    if !state
        .store
        .delete_user_admin_role(&admin.tenant, user.as_str())
        .await?
    {
        return Err(ApiError::not_found());
    }
    record(
        &state,
        &admin,
        Action::UserRoleRevoke,
        user.as_str(),
        held.role,
    );
    Ok(StatusCode::NO_CONTENT)
}
