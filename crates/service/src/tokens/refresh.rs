//! The refresh token grant (RFC 6749 section 6), rotating: the authenticated client (a public
//! client by `client_id` alone) presents a refresh token of its own; `SignIn::refresh` rotates
//! it (one successor; the same successor again within the grace window; a rotated token after
//! it revokes the whole family with a `family` revocation entry) and the answer carries the
//! successor, an access token minted from the family (with its `family_id`, so a family
//! revocation reaches verifiers) and, with `openid`, an ID token (OIDC Core section 12.2). An
//! optional `scope` may only narrow the family's.
//!
//! This module must never rotate for a request it then refuses (the scope and registration are
//! judged first, against the family the token names), and never issue for another client's token.

use portcullis_core::audit::{Action, Outcome};
use portcullis_core::oauth::GrantType;
use portcullis_core::secret::Secret;
use portcullis_core::session::SessionId;
use portcullis_core::user_token::{decide_refresh_grant, SignInFacts};

use super::issue::{Binding, Issued, RefreshGrant};
use super::user_tokens::{mint, user_may_get_tokens, UserGrant};
use crate::audit::RequestOrigin;
use crate::client_auth::AuthenticatedClient;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::OAuthService;

pub(super) async fn issue(
    svc: &OAuthService,
    authenticated: &AuthenticatedClient,
    request: RefreshGrant,
    binding: &Binding,
    origin: &RequestOrigin,
) -> Result<Issued, OAuthError> {
    let grant = UserGrant::start(svc, authenticated, GrantType::RefreshToken, origin)?;
    let (client, policy) = (grant.client, grant.policy);
    let refuse = |e: OAuthError| grant.refuse(e);
    let presented = request
        .refresh_token
        .ok_or(Refusal::GrantRequest("refresh_token is required"))
        .map_err(|r| refuse(r.into()))?;
    let targets: Vec<&str> = request.targets.iter().map(String::as_str).collect();
    let decide = |scope: &[String]| {
        decide_refresh_grant(
            policy,
            scope,
            request.scope.as_deref(),
            &targets,
            svc.oauth.lifetimes,
        )
    };
    // Judged before anything rotates; a token that names no family of this client is left to
    // `refresh`, which refuses it with its reason (and revokes a reused family).
    let read = svc.sign_in.read_refresh_token(presented.expose()).await?;
    if let Some((family, user_status)) = read.family_of(&client.tenant, &client.id) {
        decide(&family.scope).map_err(|e| refuse(e.into()))?;
        // A family bound to a DPoP key refreshes only with a proof of that key (RFC 9449
        // section 5), checked before anything rotates.
        if let Some(bound) = &family.dpop_jkt {
            match &binding.dpop_jkt {
                None => return Err(refuse(Refusal::InvalidGrant("dpop_proof_missing").into())),
                Some(k) if k.as_str() != bound => {
                    return Err(refuse(Refusal::InvalidGrant("dpop_key_mismatch").into()))
                }
                Some(_) => {}
            }
        }
        // A family bound to a client certificate (RFC 8705 section 4) refreshes only over a
        // connection with that certificate, checked before anything rotates.
        if let Some(bound) = &family.cert_x5t {
            match &binding.x5t_s256 {
                None => {
                    return Err(refuse(
                        Refusal::InvalidGrant("client_certificate_missing").into(),
                    ))
                }
                Some(t) if t.as_str() != bound => {
                    return Err(refuse(
                        Refusal::InvalidGrant("client_certificate_mismatch").into(),
                    ))
                }
                Some(_) => {}
            }
        }
        // The user's status came with the token (one read).
        user_may_get_tokens(user_status).map_err(refuse)?;
    }
    // Rotated from the same read the checks above judged (one lookup per grant).
    let refreshed = svc
        .sign_in
        .refresh_presented(read, &client.tenant, &client.id, origin)
        .await
        .map_err(OAuthError::from)
        .map_err(refuse)?;
    let family = &refreshed.family;
    let decision = decide(&family.scope).map_err(|e| refuse(e.into()))?;
    let now = svc.clock.now();
    let facts = SignInFacts {
        tenant: &family.tenant,
        user_id: family.user_id.as_str(),
        sid: family.sid.as_ref().map(SessionId::as_str),
        auth_time: family.auth_time,
        acr: family.acr.as_deref(),
        amr: &family.amr,
        family: Some(family.id.as_str()),
    };
    let minted = mint(svc, client, &decision, &facts, None, binding, now).map_err(refuse)?;
    svc.oauth.metrics.issued(GrantType::RefreshToken);
    super::audit(
        svc,
        client,
        Action::OAuthTokenIssue,
        Outcome::Success,
        None,
        Some(minted.jti.clone()),
        origin,
    );
    Ok(Issued {
        access_token: minted.access_token,
        token_type: binding.token_type(),
        expires_in: decision.lifetime.as_secs(),
        scope: minted.scope,
        id_token: minted.id_token,
        refresh_token: Some(Secret::new(refreshed.token.expose().to_owned())),
        issued_token_type: None,
    })
}
