//! Admin authentication and authorization, as extractors.
//!
//! A handler gets an [`AdminPrincipal`] only through [`GlobalAdmin`] or [`TenantAdmin`], each of
//! which has already asked core's `decide` whether the principal holds the route's
//! [`RoutePermission`] on the installation or on the `{tenant}` in the path. A handler therefore
//! cannot forget the check: without it there is no principal to act with. The extractors work
//! on any router state that yields an [`AdminAuth`] (what authentication reads), so the handler
//! beside them takes only its own subsystem's state. These extractors must
//! never decide anything themselves, and never let a request through a route that carries no
//! permission.
//!
//! Every failure is answered with the same `invalid_token` (401) or `insufficient_scope` (403);
//! the precise reason goes to the audit log. A request without a Bearer credential gets the
//! missing-credential answer the gateway gives (`ApiError::missing_credential`).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use portcullis_core::admin::{AdminDenied, AdminPrincipal, AdminTarget, Permission};
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::credential::{Credential, CredentialKind};
use portcullis_core::secret::constant_time_eq;
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Clock;
use portcullis_store::Store;

use super::RoutePermission;
use crate::error::ApiError;
use crate::extract::origin;
use crate::state::{AdminAuth, UsersAdmin};
use portcullis_service::api_keys::ApiKeyService;
use portcullis_service::audit::{AuditSink, EventDraft, RequestOrigin};
use portcullis_service::gateway_denials::DenialIngest;
use portcullis_service::revocations::FeedService;

/// What authenticating and authorizing an admin or service credential reads and writes:
/// storage, the clock and the audit sink. The admin API's [`AdminAuth`] has them, and so do the
/// states of the other surfaces that take these credentials (API key verification, the
/// revocation feed), which hold nothing else of the admin API, and [`UsersAdmin`], whose role
/// grants are refused (and audited) as [`deny`] refuses.
pub trait CredentialState {
    fn store(&self) -> &dyn Store;
    fn clock(&self) -> &dyn Clock;
    fn audit(&self) -> &AuditSink;
    /// The token service, on surfaces that also take a person's CLI sign-in (the admin API):
    /// `None` elsewhere (the feed and API key verification take admin credentials only).
    fn cli_sessions(&self) -> Option<portcullis_service::oauth::OAuthService> {
        None
    }
}

macro_rules! credential_state {
    ($($t:ty),*) => {$(
        impl CredentialState for $t {
            fn store(&self) -> &dyn Store {
                self.store.as_ref()
            }
            fn clock(&self) -> &dyn Clock {
                self.clock.as_ref()
            }
            fn audit(&self) -> &AuditSink {
                &self.audit
            }
        }
    )*};
}

credential_state!(ApiKeyService, FeedService, DenialIngest, UsersAdmin);

impl CredentialState for AdminAuth {
    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
    fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
    fn audit(&self) -> &AuditSink {
        &self.audit
    }
    fn cli_sessions(&self) -> Option<portcullis_service::oauth::OAuthService> {
        Some(AdminAuth::cli_sessions(self))
    }
}

/// How stale `last_used_at` may get before a request refreshes it.
const LAST_USED_GRANULARITY: Duration = Duration::from_secs(30);

/// An authenticated global administrator.
#[derive(Debug)]
pub struct GlobalAdmin {
    pub principal: AdminPrincipal,
    pub origin: RequestOrigin,
}

/// An administrator authorized for the `{tenant}` in the request path.
#[derive(Debug)]
pub struct TenantAdmin {
    pub principal: AdminPrincipal,
    pub tenant: TenantId,
    pub origin: RequestOrigin,
    /// Storage seen from `tenant`: single objects are read through it, never by a global
    /// lookup and a filter.
    pub scope: portcullis_store::TenantScope,
}

impl<S> FromRequestParts<S> for GlobalAdmin
where
    AdminAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = &AdminAuth::from_ref(state);
        let origin = origin(parts);
        let permission = route_permission(parts)?;
        let principal = authenticate(parts, state, &origin).await?;
        authorize(state, &principal, permission, AdminTarget::Global, &origin)?;
        Ok(Self { principal, origin })
    }
}

impl<S> FromRequestParts<S> for TenantAdmin
where
    AdminAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, router: &S) -> Result<Self, ApiError> {
        let state = &AdminAuth::from_ref(router);
        let origin = origin(parts);
        let permission = route_permission(parts)?;
        let principal = authenticate(parts, state, &origin).await?;
        let tenant = path_tenant(parts, router).await?;
        authorize(
            state,
            &principal,
            permission,
            AdminTarget::Tenant(&tenant),
            &origin,
        )?;
        Ok(Self {
            principal,
            scope: portcullis_store::TenantScope::new(state.store.clone(), tenant.clone()),
            tenant,
            origin,
        })
    }
}

/// The permission the admin router attached to the route. A route without one is a wiring
/// mistake; it is refused rather than served unchecked.
fn route_permission(parts: &Parts) -> Result<Permission, ApiError> {
    parts
        .extensions
        .get::<RoutePermission>()
        .map(|p| p.0)
        .ok_or_else(|| ApiError::internal("admin route without a permission"))
}

/// The `{tenant}` path parameter, parsed.
pub async fn path_tenant<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<TenantId, ApiError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::invalid_request("malformed path"))?;
    let raw = params
        .get("tenant")
        .ok_or_else(|| ApiError::internal("tenant route without a {tenant} parameter"))?;
    TenantId::parse(raw).map_err(|e| ApiError::invalid_request(e.to_string()))
}

/// Asks core whether `principal` may use `permission` on `target`; a refusal is audited and
/// answered 403 `insufficient_scope`.
pub(crate) fn authorize<S: CredentialState>(
    state: &S,
    principal: &AdminPrincipal,
    permission: Permission,
    target: AdminTarget<'_>,
    origin: &RequestOrigin,
) -> Result<(), ApiError> {
    principal
        .authorize(permission, target.clone())
        .map_err(|denied| deny(state, principal, denied, target, origin))
}

/// Records a refusal and turns it into the 403 every refusal gets.
pub(crate) fn deny<S: CredentialState>(
    state: &S,
    principal: &AdminPrincipal,
    denied: AdminDenied,
    target: AdminTarget<'_>,
    origin: &RequestOrigin,
) -> ApiError {
    state.audit().record(
        EventDraft {
            tenant: principal.tenant.clone(),
            actor: principal.actor(),
            credential_id: Some(principal.credential_id.clone()),
            action: Action::AdminAuthorize,
            outcome: Outcome::Denied,
            reason: Some(Reason::of(&denied)),
            target: match target {
                AdminTarget::Global => None,
                AdminTarget::Tenant(t) => Some(t.to_string()),
            },
        },
        origin,
    );
    ApiError::forbidden(denied.to_string())
}

pub(crate) async fn authenticate<S: CredentialState>(
    parts: &Parts,
    state: &S,
    origin: &RequestOrigin,
) -> Result<AdminPrincipal, ApiError> {
    let Some(header) = parts.headers.get(AUTHORIZATION) else {
        return Err(ApiError::missing_credential());
    };
    let fail = |reason: &str, tenant: Option<TenantId>, credential_id: Option<String>| {
        state.audit().record(
            EventDraft {
                tenant: tenant.unwrap_or_else(TenantId::system),
                actor: Actor::anonymous(),
                credential_id,
                action: Action::AdminAuthenticate,
                outcome: Outcome::Failure,
                reason: Some(Reason::of(&reason)),
                target: None,
            },
            origin,
        );
        ApiError::invalid_token(reason.to_owned())
    };
    // Another scheme is no credential this API takes: the answer is the missing-credential one,
    // as at the gateway; the audit log still says what was sent.
    let token = header
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| {
            fail("authorization_not_bearer", None, None);
            ApiError::missing_credential()
        })?;
    // A JWT is no admin credential; on the admin API it may be a person's CLI sign-in.
    if token.split('.').count() == 3 {
        if let Some(svc) = state.cli_sessions() {
            return cli_session(state, &svc, token, origin, &fail).await;
        }
    }
    let credential = Credential::parse(token).map_err(|e| fail(&e.to_string(), None, None))?;
    if credential.kind() != CredentialKind::AdminToken {
        return Err(fail("credential_wrong_kind", None, None));
    }
    let id = credential.id().to_owned();
    let presented = credential.digest();
    let Some(record) = state.store().get_admin_credential(&id).await? else {
        // Same work as a known id, so timing does not reveal which ids exist.
        let _ = constant_time_eq(&presented, &[0u8; 32]);
        return Err(fail("credential_unknown", None, Some(id)));
    };
    if !constant_time_eq(&record.secret_digest, &presented) {
        return Err(fail(
            "credential_digest_mismatch",
            Some(record.tenant),
            Some(id),
        ));
    }
    if record.revoked_at.is_some() {
        return Err(fail("credential_revoked", Some(record.tenant), Some(id)));
    }
    let tenant = state.store().get_tenant(&record.tenant).await?;
    if tenant.map(|t| t.status) != Some(TenantStatus::Active) {
        return Err(fail("tenant_disabled", Some(record.tenant), Some(id)));
    }
    let now = state.clock().now();
    let stale = record
        .last_used_at
        .is_none_or(|t| t < now.saturating_sub(LAST_USED_GRANULARITY));
    if stale {
        if let Err(e) = state.store().touch_admin_credential(&id, now).await {
            tracing::warn!(error = %e, "could not record admin credential use");
        }
    }
    Ok(AdminPrincipal {
        credential_id: id,
        tenant: record.tenant,
        role: record.role,
    })
}

/// A person's CLI sign-in (`portcullis login`) as an admin principal: the token must be the
/// built-in CLI client's, current, and its user must hold an admin role; an active user without
/// one is authenticated but may do nothing (403).
async fn cli_session<S: CredentialState>(
    state: &S,
    svc: &portcullis_service::oauth::OAuthService,
    token: &str,
    origin: &RequestOrigin,
    fail: &impl Fn(&str, Option<TenantId>, Option<String>) -> ApiError,
) -> Result<AdminPrincipal, ApiError> {
    use portcullis_service::tokens::cli_session::{self, CliSession};
    let judged = cli_session::authenticate(svc, token)
        .await
        .map_err(|e| ApiError::internal(e.reason))?;
    match judged {
        CliSession::Admin(principal) => Ok(principal),
        CliSession::Invalid(reason) => Err(fail(reason, None, None)),
        CliSession::NoRole { tenant, user_id } => {
            let id = cli_session::credential_id(&user_id);
            state.audit().record(
                EventDraft {
                    tenant: tenant.clone(),
                    actor: Actor::admin(&id),
                    credential_id: Some(id),
                    action: Action::AdminAuthorize,
                    outcome: Outcome::Denied,
                    reason: Some(Reason::new("user_has_no_admin_role")),
                    target: None,
                },
                origin,
            );
            Err(ApiError::forbidden("user_has_no_admin_role".to_owned()))
        }
    }
}
