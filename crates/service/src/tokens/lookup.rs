//! Finding a presented token among those this server issued, and whether it is current:
//! signature and claims against our published keys, then core's one revocation rule over the
//! revocation log entries that name it, then whether its audience is still one of its tenant's
//! resource servers (not archived). It must never decide revocation itself (core's
//! `RevocationSet` does), nor call a token current without both checks.

use portcullis_core::oauth::{token_search_order, TokenType};
use portcullis_core::revocation::{RevocationSet, TokenIdentity};
use portcullis_core::time::Timestamp;

use super::TokenQuery;
use crate::keys::jwt::{self, VerifiedToken};
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::OAuthService;
use crate::sign_in::InspectedRefresh;

/// The token types introspection and revocation look for.
const ISSUED_TOKEN_TYPES: &[TokenType] = &[TokenType::AccessToken, TokenType::RefreshToken];

/// A presented token this server issued.
#[derive(Debug)]
pub(super) enum Found {
    /// A current access token.
    Access(Box<VerifiedToken>),
    /// A known refresh token, current or not: [`InspectedRefresh::active`] says which
    /// (revocation ends a live family whichever of its tokens is presented).
    Refresh(Box<InspectedRefresh>),
}

/// Verifies a token and checks the revocation log. The inner error is why it is not current.
pub(super) async fn current_token(
    svc: &OAuthService,
    token: &str,
    now: Timestamp,
) -> Result<Result<VerifiedToken, &'static str>, OAuthError> {
    let directory = &svc.oauth.directory;
    let keys = directory.signing_keys(svc.store.as_ref(), now).await?;
    let verify = |keys: &jwt::PublishedKeys| {
        jwt::verify(token, keys, &svc.oauth.issuer, svc.oauth.lifetimes.max, now)
    };
    let verified = match verify(&keys) {
        // A key made active on another node within the cache's lifetime (an emergency
        // replacement after a revoke is active at once): read the keys again before refusing.
        Err(jwt::Invalid::UnknownKey) => {
            directory.signing_keys_changed();
            let keys = directory.signing_keys(svc.store.as_ref(), now).await?;
            verify(&keys)
        }
        other => other,
    };
    let verified = match verified {
        Ok(v) => v,
        Err(e) => return Ok(Err(e.as_str())),
    };
    let claims = &verified.claims;
    let identity = TokenIdentity {
        tenant: &verified.tenant,
        jti: &claims.jti,
        client_id: Some(&claims.client_id),
        subject: &claims.sub,
        kid: &verified.kid,
        family: verified.family.as_deref(),
        sid: verified.sid.as_deref(),
        exchanged_from: &claims.exchanged_from,
        issued_at: Timestamp::from_secs(claims.iat),
    };
    // The one revocation rule (core), over the entries that name this token.
    let candidates: Vec<_> = identity.candidates().collect();
    let entries = svc.store.revocations_naming(&candidates).await?;
    let records: Vec<_> = entries.into_iter().map(|e| e.into_record()).collect();
    if let Some(by) = RevocationSet::from_records(&records).token_revoked(&identity) {
        return Ok(Err(by.reason()));
    }
    // A token for an audience the tenant no longer has (its resource server was archived) is not
    // current here, whatever a verifier that still accepts the audience does until it expires.
    // A user token of an app with no resource server names this server itself (userinfo).
    if claims.aud != svc.oauth.issuer
        && directory
            .resource(svc.store.as_ref(), &verified.tenant, &claims.aud, now)
            .await?
            .is_none()
    {
        return Ok(Err("audience_archived"));
    }
    Ok(Ok(verified))
}

/// Finds the presented token, looking first where `token_type_hint` points and then in every
/// other type this server issues (RFC 7009 section 2.1, RFC 7662 section 2.1). An unknown hint
/// is ignored (RFC 7009 section 2.2). A missing token is `invalid_request`; the inner error is
/// why nothing was found.
pub(super) async fn find_token(
    svc: &OAuthService,
    query: &TokenQuery,
    now: Timestamp,
) -> Result<Result<Found, &'static str>, OAuthError> {
    let token = query.token.as_ref().ok_or(Refusal::NoToken)?;
    let hint = query.hint.as_deref();
    let mut why = "token_unknown";
    for kind in token_search_order(hint, ISSUED_TOKEN_TYPES) {
        let found = match kind {
            TokenType::AccessToken => match current_token(svc, token.expose(), now).await? {
                Ok(found) => Found::Access(Box::new(found)),
                Err(reason) => {
                    why = reason;
                    continue;
                }
            },
            // Refresh tokens are recognisable by their prefix and checksum: a JWT costs no
            // lookup here, and an unknown refresh token keeps the access token's reason.
            TokenType::RefreshToken => {
                match svc.sign_in.inspect_refresh_token(token.expose()).await {
                    Ok(Some(found)) => Found::Refresh(Box::new(found)),
                    Ok(None) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if hint.is_some_and(|h| h != kind.as_str()) {
            tracing::debug!(hint, found = kind.as_str(), "token_type_hint did not match");
        }
        return Ok(Ok(found));
    }
    Ok(Err(why))
}
