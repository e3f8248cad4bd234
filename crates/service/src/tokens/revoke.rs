//! Revocation (RFC 7009): a client revokes tokens issued to itself, by appending a token entry
//! to the revocation log. Unknown, invalid and expired tokens are nothing to do (the endpoint
//! answers 200 as the RFC requires); another client's token is refused. This module must never
//! revoke a token of another client or tenant.

use portcullis_core::audit::{Action, Outcome, Reason};
use portcullis_core::time::Timestamp;
use portcullis_store::{NewRevocation, RevocationKind};

use super::lookup::find_token;
use super::TokenQuery;
use crate::audit::RequestOrigin;
use crate::client_auth::authenticate;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::form::Presented;
use crate::oauth::OAuthService;

/// What a revocation request did.
#[derive(Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The token (its `jti`) is in the revocation log now.
    Revoked { jti: String },
    /// The token was not current (unknown, invalid, expired, already revoked): the reason is
    /// logged only.
    NothingToDo(&'static str),
}

/// `POST /oauth2/revoke`.
pub async fn revoke(
    svc: &OAuthService,
    query: TokenQuery,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<Revocation, OAuthError> {
    let authenticated = authenticate(svc, presented, origin).await?;
    let client = authenticated.client();
    let now = svc.clock.now();
    let v = match find_token(svc, &query, now).await? {
        Ok(v) => v,
        Err(reason) => {
            tracing::info!(
                reason,
                "revocation of a token that is not valid: nothing to do"
            );
            return Ok(Revocation::NothingToDo(reason));
        }
    };
    if v.claims.client_id != client.id || v.tenant != client.tenant {
        super::audit(
            svc,
            client,
            Action::OAuthTokenRevoke,
            Outcome::Denied,
            Some(Reason::new(Refusal::TokenOfAnotherClient.entry().reason)),
            Some(v.claims.jti),
            origin,
        );
        return Err(OAuthError::refuse(Refusal::TokenOfAnotherClient));
    }
    svc.store
        .append_revocation(
            &NewRevocation {
                tenant: client.tenant.clone(),
                kind: RevocationKind::Token,
                subject: v.claims.jti.clone(),
                revoked_before: None,
                expires_at: Some(Timestamp::from_secs(v.claims.exp)),
                reason: Some("revoked_by_client".into()),
            },
            now,
        )
        .await?;
    super::audit(
        svc,
        client,
        Action::OAuthTokenRevoke,
        Outcome::Success,
        None,
        Some(v.claims.jti.clone()),
        origin,
    );
    Ok(Revocation::Revoked { jti: v.claims.jti })
}
