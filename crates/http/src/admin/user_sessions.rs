//! A user's sign-in sessions under `/tenants/{tenant}/users/{id}/sessions`: list the active
//! ones, end one (its tokens are refused everywhere through the revocation log, its refresh-token
//! families end with it).
//!
//! A session is addressed through its user: another user's sid under this user's path is `404`,
//! like another tenant's. This module must never show a session's cookie secret or digest.

use crate::state::UsersAdmin;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::user::UserId;
use portcullis_service::state::rfc3339;
use portcullis_store::SessionRecord;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::TenantAdmin;
use crate::error::ApiError;

/// An active session as admins see it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The `sid` carried in the user's tokens.
    sid: String,
    user_id: String,
    /// When the user authenticated.
    auth_time: String,
    /// How: `pwd`, ...
    amr: Vec<String>,
    acr: Option<String>,
    created_at: String,
    last_seen_at: String,
    /// The session ends then unless it is used before (moves forward with use).
    idle_expires_at: String,
    /// The session ends then however it is used.
    absolute_expires_at: String,
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> Self {
        Self {
            sid: s.id.to_string(),
            user_id: s.user_id.to_string(),
            auth_time: rfc3339(s.auth_time),
            amr: s.amr,
            acr: s.acr,
            created_at: rfc3339(s.created_at),
            last_seen_at: rfc3339(s.last_seen_at),
            idle_expires_at: rfc3339(s.idle_expires_at),
            absolute_expires_at: rfc3339(s.absolute_expires_at),
        }
    }
}

/// A user's active sessions, oldest first (a user has few: no paging).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    items: Vec<SessionView>,
}

/// The `{tenant}`, `{id}` and `{sid}` path segments.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// Tenant id.
    #[param(pattern = "^[a-z][a-z0-9-]{0,61}[a-z0-9]$")]
    #[allow(dead_code)]
    tenant: String,
    /// The user's id.
    #[allow(dead_code)]
    id: String,
    /// The session's `sid`.
    #[allow(dead_code)]
    sid: String,
}

/// The tenant's user `id` (its id string), or 404 (also for a malformed id).
async fn user_id(state: &UsersAdmin, admin: &TenantAdmin, id: &str) -> Result<String, ApiError> {
    let id = UserId::parse(id).map_err(|_| ApiError::not_found())?;
    state
        .store
        .get_user(&admin.tenant, &id)
        .await?
        .map(|u| u.id.as_str().to_owned())
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/users/{id}/sessions", tag = "users", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The user's active sessions, oldest first", body = SessionList),
              (status = 404, description = "No such user in this tenant", body = super::openapi::ErrorBody)))]
pub async fn list_sessions(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<SessionList>, ApiError> {
    let user = user_id(&state, &admin, &id).await?;
    let sessions = state
        .sign_in
        .list_sessions(&admin.tenant, &user)
        .await
        .map_err(sign_in_error)?;
    Ok(Json(SessionList {
        items: sessions.into_iter().map(SessionView::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/users/{id}/sessions/{sid}", tag = "users", params(SessionPath),
    responses((status = 204, description = "Ended: its tokens are refused through the revocation log, its refresh-token families revoked"),
              (status = 404, description = "No such active session of this user", body = super::openapi::ErrorBody)))]
pub async fn end_session(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id, sid)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = user_id(&state, &admin, &id).await?;
    let session = state
        .store
        .get_session_by_id(&admin.tenant, &sid)
        .await?
        .filter(|s| s.user_id.as_str() == user && s.revoked_at.is_none())
        .ok_or_else(ApiError::not_found)?;
    let ended = state
        .sign_in
        .revoke_session(
            &admin.tenant,
            session.id.as_str(),
            "admin",
            admin.principal.actor(),
            &admin.origin,
        )
        .await
        .map_err(sign_in_error)?;
    if !ended {
        return Err(ApiError::not_found());
    }
    // `SignIn::revoke_session` recorded `session.revoke` with the admin as the actor.
    Ok(StatusCode::NO_CONTENT)
}

fn sign_in_error(e: portcullis_service::sign_in::SignInError) -> ApiError {
    match e {
        portcullis_service::sign_in::SignInError::Store(s) => s.into(),
        portcullis_service::sign_in::SignInError::Invalid(_) => ApiError::not_found(),
    }
}
