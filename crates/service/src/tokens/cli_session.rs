//! The admin API's second way in: an access token the built-in CLI client got by device sign-in
//! (`portcullis login`), standing for the person who signed in, with the admin role granted to
//! that user (`user_admin_roles`). The token must be current by the one lookup rule (signature,
//! revocation log, audience: `lookup`), issued to the CLI client, for this server itself, not
//! bound to a key; the user must be active. The role is read from the store on every request,
//! so removing it takes effect at once.
//!
//! This module must never accept a user token issued to any other client (a third-party app a
//! person signed in to must not act as them at the admin API), nor decide what a role may do
//! (core's `admin::decide` does).

use portcullis_core::admin::AdminPrincipal;
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::client::cli_client_id;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_core::user::{UserId, UserStatus};
use portcullis_store::{ArchivedFilter, PageRequest, Store, StoreError, MAX_PAGE_LIMIT};

use super::lookup::current_token;
use crate::audit::{AuditSink, EventDraft, RequestOrigin};
use crate::oauth::error::OAuthError;
use crate::oauth::OAuthService;

/// The system tenant's built-in client of `portcullis login` (every tenant has its own:
/// `portcullis_core::client::cli_client_id`).
pub use portcullis_core::client::CLI_CLIENT_ID;

/// What a presented CLI token is.
#[derive(Debug)]
pub enum CliSession {
    /// A current CLI token of a user holding an admin role: the principal to authorize.
    Admin(AdminPrincipal),
    /// A current CLI token of an active user without an admin role (403, not 401).
    NoRole {
        tenant: portcullis_core::tenant::TenantId,
        user_id: String,
    },
    /// Not a usable CLI token; the reason is for the audit log.
    Invalid(&'static str),
}

/// The audit actor's credential id of a user acting through the CLI.
pub fn credential_id(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// Judges `token` as a CLI session token.
pub async fn authenticate(svc: &OAuthService, token: &str) -> Result<CliSession, OAuthError> {
    let now = svc.clock.now();
    let verified = match current_token(svc, token, now).await? {
        Ok(v) => v,
        Err(reason) => return Ok(CliSession::Invalid(reason)),
    };
    let claims = &verified.claims;
    // The token's tenant's own CLI client: a user signs in to the tenant of the client.
    if claims.client_id != cli_client_id(&verified.tenant) {
        return Ok(CliSession::Invalid("token_not_from_cli_client"));
    }
    if claims.aud != svc.oauth.issuer {
        return Ok(CliSession::Invalid("token_audience_not_this_server"));
    }
    if claims.cnf.is_some() {
        // A bound token proves nothing without its key's proof, which this API does not take.
        return Ok(CliSession::Invalid("token_bound_to_a_key"));
    }
    let Ok(user) = UserId::parse(&claims.sub) else {
        return Ok(CliSession::Invalid("token_subject_not_a_user"));
    };
    match svc.store.get_user(&verified.tenant, &user).await? {
        Some(u) if u.status == UserStatus::Active => {}
        _ => return Ok(CliSession::Invalid("user_not_active")),
    }
    let role = svc
        .store
        .get_user_admin_role(&verified.tenant, &claims.sub)
        .await?;
    Ok(match role {
        Some(r) if r.role.exists_in(&verified.tenant) => CliSession::Admin(AdminPrincipal {
            credential_id: credential_id(&claims.sub),
            tenant: verified.tenant.clone(),
            role: r.role,
        }),
        _ => CliSession::NoRole {
            tenant: verified.tenant.clone(),
            user_id: claims.sub.clone(),
        },
    })
}

/// Creates `tenant`'s built-in CLI client ([`cli_client_id`]) if it does not exist yet; an
/// existing one (even one an operator disabled or archived) is left as it is. Idempotent, and
/// safe when several nodes do it at once: the loser of the insert sees a conflict and moves on.
/// `true` if this call created it. With `audit`, the creation is audited (`oauth_client.create`
/// by the system, in the tenant): when a tenant is created. At start-up it is logged instead.
pub async fn ensure_client(
    store: &dyn Store,
    clock: &dyn Clock,
    audit: Option<&AuditSink>,
    tenant: &TenantId,
) -> Result<bool, StoreError> {
    use portcullis_core::client::{ApplicationType, ClientType};
    use portcullis_core::oauth::{AuthMethod, GrantType};
    let id = cli_client_id(tenant);
    if store.get_client(&id).await?.is_some() {
        return Ok(false);
    }
    let now = clock.now();
    let client = portcullis_store::OAuthClient {
        id,
        tenant: tenant.clone(),
        name: "Portcullis CLI".into(),
        environment: "live".into(),
        auth_method: AuthMethod::None.as_str().to_owned(),
        grant_types: vec![
            GrantType::DeviceCode.as_str().to_owned(),
            GrantType::RefreshToken.as_str().to_owned(),
        ],
        scopes: vec!["offline_access".into()],
        audiences: Vec::new(),
        access_token_ttl_secs: 300,
        can_introspect: false,
        jwks: None,
        jwks_uri: None,
        status: portcullis_store::ClientStatus::Active,
        created_at: now,
        updated_at: now,
        last_used_at: None,
        client_type: ClientType::Public,
        application_type: ApplicationType::Native,
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        allowed_web_origins: Vec::new(),
        first_party: true,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        require_pushed_requests: false,
        id_token_signed_response_alg: None,
        require_dpop: false,
        tls_subject: None,
        certificate_bound_tokens: false,
    };
    let id = client.id.clone();
    match store.create_client(&client, None).await {
        Ok(()) => {
            let Some(audit) = audit else {
                return Ok(true);
            };
            audit.record(
                EventDraft {
                    tenant: tenant.clone(),
                    actor: Actor::system(),
                    credential_id: None,
                    action: Action::OAuthClientCreate,
                    outcome: Outcome::Success,
                    reason: Some(Reason::new("built_in_cli_client")),
                    target: Some(id),
                },
                &RequestOrigin::default(),
            );
            Ok(true)
        }
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e),
    }
}

/// [`ensure_client`] for every tenant, archived ones aside (at start-up: tenants created before
/// per-tenant CLI clients, or imported). How many were created. A tenant whose client cannot
/// be written is logged and skipped (the next start-up tries again), so one bad row never
/// keeps the server from starting; only failing to list the tenants is an error.
pub async fn ensure_clients(store: &dyn Store, clock: &dyn Clock) -> Result<usize, StoreError> {
    let mut created = 0;
    let mut page = PageRequest::first(MAX_PAGE_LIMIT);
    loop {
        let p = store.list_tenants(&page, ArchivedFilter::Exclude).await?;
        for t in &p.items {
            match ensure_client(store, clock, None, &t.item.id).await {
                Ok(true) => created += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    tenant = %t.item.id,
                    error = %e,
                    "could not create the tenant's CLI client; the next start-up tries again"
                ),
            }
        }
        match p.next {
            Some(next) => page.after = Some(next),
            None => return Ok(created),
        }
    }
}
