//! Revocation (RFC 7009): a client revokes tokens issued to itself, by appending a token entry
//! to the revocation log. Unknown, invalid and expired tokens are nothing to do (the endpoint
//! answers 200 as the RFC requires); another client's token is refused. This module must never
//! revoke a token of another client or tenant.
//!
//! A refresh token ends its whole family (RFC 7009 section 2.1: the grant it belongs to), with
//! the `family` revocation entry that makes every verifier refuse the family's access tokens;
//! whichever of the family's tokens is presented, rotated or not. Refresh tokens are never
//! revoked one at a time: the family is the unit every other rule uses.

use portcullis_core::audit::{Action, Outcome, Reason};
use portcullis_core::time::Timestamp;
use portcullis_store::{NewRevocation, RevocationKind};

use super::lookup::{find_token, Found};
use super::TokenQuery;
use crate::audit::RequestOrigin;
use crate::client_auth::authenticate_app;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::form::Presented;
use crate::oauth::OAuthService;
use crate::sign_in::InspectedRefresh;
use portcullis_store::OAuthClient;

/// What a revocation request did.
#[derive(Debug, PartialEq, Eq)]
pub enum Revocation {
    /// The token (its `jti`) is in the revocation log now.
    Revoked { jti: String },
    /// A refresh token's family is revoked, with its `family` entry in the revocation log.
    FamilyRevoked { family: String },
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
    // RFC 7009 section 2.1: a public client (the CLI after device sign-in, a native app)
    // identifies itself by its `client_id` alone and may revoke only its own tokens.
    let authenticated = authenticate_app(svc, presented, origin).await?;
    let client = authenticated.client();
    let now = svc.clock.now();
    let v = match find_token(svc, &query, now).await? {
        Ok(Found::Access(v)) => v,
        Ok(Found::Refresh(r)) => return revoke_family(svc, client, &r, origin).await,
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

/// Revokes the family of a refresh token `client` presented: refused
/// (`unauthorized_client`, as for access tokens) when the family is another client's.
async fn revoke_family(
    svc: &OAuthService,
    client: &OAuthClient,
    r: &InspectedRefresh,
    origin: &RequestOrigin,
) -> Result<Revocation, OAuthError> {
    let family = &r.family;
    if family.client_id.as_str() != client.id || family.tenant != client.tenant {
        super::audit(
            svc,
            client,
            Action::OAuthTokenRevoke,
            Outcome::Denied,
            Some(Reason::new(Refusal::TokenOfAnotherClient.entry().reason)),
            Some(family.id.to_string()),
            origin,
        );
        return Err(OAuthError::refuse(Refusal::TokenOfAnotherClient));
    }
    let revoked = svc
        .sign_in
        .revoke_family(
            &family.tenant,
            family.id.as_str(),
            "revoked_by_client",
            origin,
        )
        .await?;
    if !revoked {
        tracing::info!("revocation of a refresh token whose family has ended: nothing to do");
        return Ok(Revocation::NothingToDo("family_already_ended"));
    }
    super::audit(
        svc,
        client,
        Action::OAuthTokenRevoke,
        Outcome::Success,
        None,
        Some(family.id.to_string()),
        origin,
    );
    Ok(Revocation::FamilyRevoked {
        family: family.id.to_string(),
    })
}
