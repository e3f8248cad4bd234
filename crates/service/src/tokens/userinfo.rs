//! The OpenID Connect userinfo endpoint's operation (OIDC Core section 5.3): a Bearer user
//! access token this server issued, current (signature, lifetime, the one revocation rule: a
//! revoked session, family, token or key refuses it) and granted `openid`, answers with the
//! claims of its user that its scope releases (core's `userinfo_claims`). A token of a client
//! (client credentials), of a user no longer active or deleted, or not current is
//! `invalid_token`; one without `openid` is `insufficient_scope` (RFC 6750 section 3.1).
//!
//! This module must never answer for a token it did not verify, nor release a claim the token's
//! scope does not cover.

use portcullis_core::oauth::ScopeSet;
use portcullis_core::user::{UserId, UserStatus};
use portcullis_core::user_token::{userinfo_claims, UserClaims, OPENID};
use serde_json::{Map, Value};

use super::lookup::current_token;
use crate::oauth::error::OAuthError;
use crate::oauth::OAuthService;

/// Why userinfo refused (RFC 6750 section 3.1); the inner reason is logged only.
#[derive(Debug)]
pub enum UserinfoError {
    /// No Bearer token in the request.
    NoToken,
    /// A malformed request (two tokens, a token in the query).
    InvalidRequest(&'static str),
    InvalidToken(&'static str),
    InsufficientScope,
    Internal(OAuthError),
}

impl From<OAuthError> for UserinfoError {
    fn from(e: OAuthError) -> Self {
        Self::Internal(e)
    }
}

impl From<portcullis_store::StoreError> for UserinfoError {
    fn from(e: portcullis_store::StoreError) -> Self {
        Self::Internal(OAuthError::internal(e))
    }
}

/// The claims for the bearer of `token`.
pub async fn userinfo(
    svc: &OAuthService,
    token: &str,
) -> Result<Map<String, Value>, UserinfoError> {
    let now = svc.clock.now();
    let verified = current_token(svc, token, now)
        .await?
        .map_err(UserinfoError::InvalidToken)?;
    let claims = &verified.claims;
    let Ok(user_id) = UserId::parse(&claims.sub) else {
        return Err(UserinfoError::InvalidToken("not_a_user_token"));
    };
    let scopes = ScopeSet::parse_delimited(claims.scope.as_deref().unwrap_or(""))
        .map_err(|_| UserinfoError::InvalidToken("token_bad_scope"))?;
    if !scopes.iter().any(|s| s.as_str() == OPENID) {
        return Err(UserinfoError::InsufficientScope);
    }
    let user = match svc.store.get_user(&verified.tenant, &user_id).await? {
        Some(u) if u.status == UserStatus::Active => u,
        Some(_) => return Err(UserinfoError::InvalidToken("user_inactive")),
        None => return Err(UserinfoError::InvalidToken("user_unknown")),
    };
    Ok(userinfo_claims(
        &scopes,
        &UserClaims {
            sub: user.id.as_str(),
            username: user.username.as_str(),
            email: user.email.as_ref(),
            email_verified: user.email_verified,
            profile: &user.profile,
            updated_at: user.updated_at,
        },
    ))
}
