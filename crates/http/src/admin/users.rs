//! Users of a tenant under `/tenants/{tenant}/users`: create (with a password, or invited by
//! mail), list (filters, cursor pages), show, update, disable, enable, delete, send an
//! invitation, and start a password reset by email address.
//!
//! One-time links go to the user's mailbox only: no answer here carries a token, and the audit
//! events name the user, never the link. The reset trigger answers `202` the same whether or not
//! the address has an account (the work happens in the background). The list pages like every
//! admin list (`crate::page`: `{items, next_cursor}`, a cursor bound to this tenant's users list,
//! a bad cursor or limit a `400`). This module must never return a password hash or a one-time
//! token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantStatus;
use portcullis_core::user::{
    search_key, Email, TokenPurpose, UserId, UserProfile, UserStatus, Username, EMAIL_MAX,
};
use portcullis_service::passwords::PasswordError;
use portcullis_service::users::UsersError;
use portcullis_store::{StoreError, UserFilter, UserRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::TenantAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::page::{ListQuery, Paged};
use crate::state::UsersAdmin;
use portcullis_service::audit::EventDraft;
use portcullis_service::state::rfc3339;

/// A user as the admin API shows it: never the password hash, only whether there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    id: String,
    tenant: String,
    /// Also the `preferred_username` claim.
    username: String,
    email: Option<String>,
    email_verified: bool,
    /// `invited`, `active` or `disabled`.
    #[schema(value_type = String)]
    status: &'static str,
    /// OpenID Connect profile claims: name, given_name, family_name, nickname, picture,
    /// website, locale, zoneinfo.
    #[schema(value_type = Object)]
    profile: UserProfile,
    has_password: bool,
    password_changed_at: Option<String>,
    created_at: String,
    updated_at: String,
    last_login_at: Option<String>,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id.to_string(),
            tenant: u.tenant.to_string(),
            username: u.username.as_str().to_owned(),
            email: u.email.map(|e| e.as_str().to_owned()),
            email_verified: u.email_verified,
            status: u.status.as_str(),
            profile: u.profile,
            has_password: u.password_hash.is_some(),
            password_changed_at: u.password_changed_at.map(rfc3339),
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
            last_login_at: u.last_login_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1 to 64 characters: letters, digits and `. _ - @ +`; unique in the tenant, ignoring case.
    #[schema(value_type = String)]
    username: Username,
    /// Unique in the tenant, ignoring case. Needed for an invitation.
    #[schema(value_type = Option<String>)]
    email: Option<Email>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    profile: UserProfile,
    /// An initial password (checked against the password rule); the user is then active.
    /// Without one the user is invited and sets it through the mailed link.
    #[schema(value_type = Option<String>)]
    password: Option<Secret<String>>,
    /// Mail an invitation when no password is given (default true; needs an email).
    #[serde(default = "yes")]
    send_invite: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    #[serde(flatten)]
    user: UserView,
    /// When the mailed invitation link stops working, if one was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    invite_expires_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[schema(value_type = Option<String>)]
    username: Option<Username>,
    /// A new address is unverified unless `email_verified` says otherwise.
    #[schema(value_type = Option<String>)]
    email: Option<Email>,
    email_verified: Option<bool>,
    /// Replaces the whole profile.
    #[schema(value_type = Option<Object>)]
    profile: Option<UserProfile>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `invited`, `active` or `disabled`.
    status: Option<String>,
    /// Usernames or emails starting with this, ignoring case.
    q: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkSent {
    /// When the mailed link stops working. The link itself is only in the mail.
    expires_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetAccepted {
    /// Always `accepted`: whether the address has an account is not told.
    status: &'static str,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request(e.to_string())
}

fn users_error(e: UsersError) -> ApiError {
    match e {
        UsersError::Password(refusal) => bad(format!("{}: {refusal}", refusal.code())),
        UsersError::Busy(PasswordError::Busy { retry_after }) => {
            ApiError::busy(retry_after.as_secs())
        }
        UsersError::Busy(PasswordError::Stopped) => ApiError::internal("password pool stopped"),
        UsersError::NoEmail => bad("the user has no email address"),
        UsersError::Store(e) => store_error(e),
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict => {
            ApiError::conflict("another user of this tenant has this username or email")
        }
        other => other.into(),
    }
}

fn record(state: &UsersAdmin, admin: &TenantAdmin, action: Action, target: &str) {
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action,
            outcome: Outcome::Success,
            reason: None,
            target: Some(target.to_owned()),
        },
        &admin.origin,
    );
}

async fn active_tenant(state: &UsersAdmin, admin: &TenantAdmin) -> Result<(), ApiError> {
    let tenant = state
        .store
        .get_tenant(&admin.tenant)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if tenant.status != TenantStatus::Active {
        return Err(ApiError::conflict("the tenant is disabled"));
    }
    Ok(())
}

/// The tenant's user `id`, or 404 (also for a malformed id and another tenant's user).
async fn load(admin: &TenantAdmin, id: &str) -> Result<UserRecord, ApiError> {
    let id = UserId::parse(id).map_err(|_| ApiError::not_found())?;
    admin.scope.user(&id).await?.ok_or_else(ApiError::not_found)
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/users", tag = "users", params(super::openapi::TenantPath), request_body = CreateUser,
    responses((status = 201, description = "The user; invited users get the link by mail, never in this answer", body = CreatedUser),
              (status = 400, description = "Invalid username, email, profile or password", body = super::openapi::ErrorBody),
              (status = 409, description = "The username or email is taken in this tenant", body = super::openapi::ErrorBody),
              (status = 503, description = "Password hashing is busy; see Retry-After", body = super::openapi::ErrorBody)))]
pub async fn create(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    active_tenant(&state, &admin).await?;
    let now = state.clock.now();
    let mut user = UserRecord {
        id: UserId::generate(now, &mut rand::rngs::OsRng),
        tenant: admin.tenant.clone(),
        username: body.username,
        email: body.email,
        email_verified: body.email_verified,
        status: UserStatus::Invited,
        profile: body.profile,
        password_hash: None,
        password_changed_at: None,
        created_at: now,
        updated_at: now,
        last_login_at: None,
    };
    let invite = body.password.is_none() && body.send_invite;
    if invite && user.email.is_none() {
        return Err(bad(
            "an invitation needs an email; give one, a password, or send_invite: false",
        ));
    }
    if let Some(password) = &body.password {
        let hash = state
            .users
            .new_password_hash(&user, password)
            .await
            .map_err(users_error)?;
        user.password_hash = Some(hash.as_str().to_owned());
        user.password_changed_at = Some(now);
        user.status = UserStatus::Active;
    }
    state.store.create_user(&user).await.map_err(store_error)?;
    record(&state, &admin, Action::UserCreate, user.id.as_str());
    let invite_expires_at = if invite {
        let expires = state
            .users
            .send_link(state.store.as_ref(), &user, TokenPurpose::Invite, now)
            .await
            .map_err(users_error)?;
        record(&state, &admin, Action::UserInvite, user.id.as_str());
        Some(rfc3339(expires))
    } else {
        None
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: user.into(),
            invite_expires_at,
        }),
    ))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/users", tag = "users", params(super::openapi::TenantPath, crate::page::PageParams, ListParams),
    responses((status = 200, description = "A page of the tenant's users, oldest first", body = Paged<UserView>),
              (status = 400, description = "Bad filter, limit, or a cursor not from this list", body = super::openapi::ErrorBody)))]
pub async fn list(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    query: ListQuery<ListParams>,
) -> Result<Json<Paged<UserView>>, ApiError> {
    let scope = format!("users:{}", admin.tenant);
    let page = query.paging.request(&scope)?;
    let params = query.filter;
    let status = params
        .status
        .as_deref()
        .map(UserStatus::parse)
        .transpose()
        .map_err(bad)?;
    let prefix = match params.q.as_deref() {
        Some(q) if q.chars().count() > EMAIL_MAX => {
            return Err(bad(format!("q is at most {EMAIL_MAX} characters")))
        }
        Some(q) if !q.trim().is_empty() => Some(search_key(q)),
        _ => None,
    };
    let users = state
        .store
        .list_users(&admin.tenant, &UserFilter { status, prefix }, &page)
        .await?;
    Ok(Json(Paged::new(users, &scope, UserView::from)))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/users/{id}", tag = "users", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The user", body = UserView)))]
pub async fn show(
    admin: TenantAdmin,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(load(&admin, &id).await?.into()))
}

#[utoipa::path(patch, path = "/admin/v1/tenants/{tenant}/users/{id}", tag = "users", params(super::openapi::TenantIdPath), request_body = UpdateUser,
    responses((status = 200, description = "The user, changed", body = UserView),
              (status = 409, description = "The username or email is taken in this tenant", body = super::openapi::ErrorBody)))]
pub async fn update(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let mut user = load(&admin, &id).await?;
    if let Some(username) = body.username {
        user.username = username;
    }
    if let Some(email) = body.email {
        let changed = user
            .email
            .as_ref()
            .is_none_or(|old| old.normalized() != email.normalized());
        if changed {
            user.email_verified = false;
        }
        user.email = Some(email);
    }
    if let Some(verified) = body.email_verified {
        user.email_verified = verified;
    }
    if let Some(profile) = body.profile {
        user.profile = profile;
    }
    let now = state.clock.now();
    if !state
        .store
        .update_user(&user, now)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::not_found());
    }
    record(&state, &admin, Action::UserUpdate, user.id.as_str());
    Ok(Json(load(&admin, &id).await?.into()))
}

async fn set_status(
    state: &UsersAdmin,
    admin: &TenantAdmin,
    id: &str,
    disable: bool,
) -> Result<Json<UserView>, ApiError> {
    let user = load(admin, id).await?;
    let now = state.clock.now();
    let status = match (disable, user.password_hash.is_some()) {
        (true, _) => UserStatus::Disabled,
        (false, true) => UserStatus::Active,
        // Enabled again before it ever set a password: still invited.
        (false, false) => UserStatus::Invited,
    };
    if !state
        .store
        .set_user_status(&admin.tenant, &user.id, status, now)
        .await?
    {
        return Err(ApiError::not_found());
    }
    if disable {
        state
            .users
            .end_sign_in_state(
                state.store.as_ref(),
                &admin.tenant,
                &user.id,
                "user_disabled",
                state.oauth.lifetimes.max,
                now,
            )
            .await
            .map_err(users_error)?;
    }
    let action = if disable {
        Action::UserDisable
    } else {
        Action::UserEnable
    };
    record(state, admin, action, user.id.as_str());
    Ok(Json(load(admin, id).await?.into()))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/users/{id}/disable", tag = "users", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The user, disabled: refused at sign-in", body = UserView)))]
pub async fn disable(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    set_status(&state, &admin, &id, true).await
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/users/{id}/enable", tag = "users", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The user, active again (invited if it never set a password)", body = UserView)))]
pub async fn enable(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    set_status(&state, &admin, &id, false).await
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/users/{id}", tag = "users", params(super::openapi::TenantIdPath),
    responses((status = 204, description = "Deleted, with its one-time links")))]
pub async fn delete(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let user = load(&admin, &id).await?;
    let now = state.clock.now();
    // Sessions and refresh families are not deleted with the row (no foreign key, by design):
    // they are ended through the service first, so a failure leaves the user in place.
    state
        .users
        .end_sign_in_state(
            state.store.as_ref(),
            &admin.tenant,
            &user.id,
            "user_deleted",
            state.oauth.lifetimes.max,
            now,
        )
        .await
        .map_err(users_error)?;
    if !state.store.delete_user(&admin.tenant, &user.id).await? {
        return Err(ApiError::not_found());
    }
    record(&state, &admin, Action::UserDelete, user.id.as_str());
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/users/{id}/invite", tag = "users", params(super::openapi::TenantIdPath),
    responses((status = 202, description = "A new invitation link was mailed (the previous one stops working)", body = LinkSent),
              (status = 409, description = "The user is not invited (it is active or disabled)", body = super::openapi::ErrorBody)))]
pub async fn invite(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<LinkSent>), ApiError> {
    let user = load(&admin, &id).await?;
    if user.status != UserStatus::Invited {
        return Err(ApiError::conflict(
            "only an invited user gets an invitation; an active user resets its password",
        ));
    }
    let expires = state
        .users
        .send_link(
            state.store.as_ref(),
            &user,
            TokenPurpose::Invite,
            state.clock.now(),
        )
        .await
        .map_err(users_error)?;
    record(&state, &admin, Action::UserInvite, user.id.as_str());
    Ok((
        StatusCode::ACCEPTED,
        Json(LinkSent {
            expires_at: rfc3339(expires),
        }),
    ))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/users/reset-password", tag = "users", params(super::openapi::TenantPath), request_body = ResetRequest,
    responses((status = 202, description = "Accepted, whether or not the address has an account; if it does, a reset link is mailed", body = ResetAccepted)))]
pub async fn reset_password(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<(StatusCode, Json<ResetAccepted>), ApiError> {
    // Only the shape is checked before answering: an address that cannot exist is a 400 for
    // everyone alike, and says nothing about accounts.
    let email = Email::parse(&body.email).map_err(bad)?;
    let task = state.users.request_password_reset(
        state.store.clone(),
        admin.tenant.clone(),
        email,
        state.clock.now(),
    );
    // The audit event names the user when there is one, after the answer has gone: the admin
    // API's audit log is for administrators, but the answer is the same either way.
    let audit = state.audit.clone();
    let (tenant, actor, credential_id, origin) = (
        admin.tenant.clone(),
        admin.principal.actor(),
        admin.principal.credential_id.clone(),
        admin.origin.clone(),
    );
    tokio::spawn(async move {
        let target = task.await.ok().flatten();
        audit.record(
            EventDraft {
                tenant,
                actor,
                credential_id: Some(credential_id),
                action: Action::UserPasswordResetRequest,
                outcome: Outcome::Success,
                reason: None,
                target: target.map(|id| id.to_string()),
            },
            &origin,
        );
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(ResetAccepted { status: "accepted" }),
    ))
}
