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
use portcullis_core::user::{UserId, UserStatus};

use super::lookup::current_token;
use crate::oauth::error::OAuthError;
use crate::oauth::OAuthService;

/// The built-in public client of `portcullis login`, created at start-up in the system tenant.
pub const CLI_CLIENT_ID: &str = "portcullis-cli";

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
    if claims.client_id != CLI_CLIENT_ID {
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
