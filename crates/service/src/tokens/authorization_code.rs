//! The authorization code grant (RFC 6749 section 4.1.3, PKCE RFC 7636 section 4.5): the
//! authenticated client (a public client by `client_id` alone) redeems a code with its
//! `redirect_uri` and `code_verifier` (`SignIn::redeem_code`: single use, bound to client,
//! redirect URI and challenge), gets an access token, an ID token with `openid` (carrying the
//! code's `nonce`) and a refresh token with `offline_access`, and what it got is recorded with
//! `SignIn::code_issued` so a replay of the code revokes it all (DESIGN invariant 6).
//!
//! This module must never issue for a code that did not redeem, nor for a session that ended or
//! a user no longer active, and never tell the client which binding failed (`invalid_grant`;
//! the reason goes to the audit log).

use portcullis_core::audit::{Action, Outcome};
use portcullis_core::oauth::GrantType;
use portcullis_core::refresh::FamilyId;
use portcullis_core::user_token::{decide_code_grant, SignInFacts};

use super::issue::{Binding, CodeGrant, Issued};
use super::user_tokens::{binds_refresh_tokens, mint, user_may_get_tokens, UserGrant};
use crate::audit::RequestOrigin;
use crate::client_auth::AuthenticatedClient;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::OAuthService;
use crate::sign_in::{NewFamily, RedemptionRequest};

pub(super) async fn issue(
    svc: &OAuthService,
    authenticated: &AuthenticatedClient,
    request: CodeGrant,
    binding: &Binding,
    origin: &RequestOrigin,
) -> Result<Issued, OAuthError> {
    let grant = UserGrant::start(svc, authenticated, GrantType::AuthorizationCode, origin)?;
    let (client, policy) = (grant.client, grant.policy);
    let refuse = |e: OAuthError| grant.refuse(e);
    let code = request
        .code
        .ok_or(Refusal::GrantRequest("code is required"))
        .map_err(|r| refuse(r.into()))?;
    let redirect_uri = request
        .redirect_uri
        .ok_or(Refusal::GrantRequest("redirect_uri is required"))
        .map_err(|r| refuse(r.into()))?;
    // Every code is bound to an S256 challenge: without a verifier it cannot redeem, and core's
    // check says so (`invalid_grant`, RFC 7636 section 4.6), leaving the code unused.
    let verifier = request
        .code_verifier
        .as_ref()
        .map(|v| v.expose().as_str())
        .unwrap_or("");
    let redeemed = svc
        .sign_in
        .redeem_code(
            RedemptionRequest {
                code: code.expose(),
                tenant: &client.tenant,
                client_id: &client.id,
                redirect_uri: &redirect_uri,
                code_verifier: verifier,
                dpop_jkt: binding.dpop_jkt.as_ref().map(|t| t.as_str()),
            },
            origin,
        )
        .await
        .map_err(OAuthError::from)
        .map_err(refuse)?;
    // The redirect URI completed a flow: for the hygiene report's "never matched".
    crate::lifecycle::record_match(
        &svc.store,
        &svc.oauth.match_marks,
        &client.tenant,
        crate::lifecycle::REDIRECT_URI,
        &format!("{} {}", client.id, redirect_uri.as_str()),
        svc.clock.now(),
    );
    let record = &redeemed.record;
    let outcome = async {
        let targets: Vec<&str> = request.targets.iter().map(String::as_str).collect();
        let decision = decide_code_grant(policy, &record.scope, &targets, svc.oauth.lifetimes)?;
        let now = svc.clock.now();
        // The session and its user's status in one read: the code's user is the session's.
        let Some((session, user_status)) = svc
            .store
            .get_session_with_user_status(&record.tenant, record.sid.as_str())
            .await?
        else {
            return Err(Refusal::InvalidGrant("session_ended").into());
        };
        if session.user_id != record.user_id {
            return Err(OAuthError::internal(format!(
                "code of user {} names session {} of another user",
                record.user_id, record.sid
            )));
        }
        user_may_get_tokens(user_status)?;
        if session.revoked_at.is_some() || session.absolute_expires_at <= now {
            return Err(Refusal::InvalidGrant("session_ended").into());
        }
        let family = if decision.refresh_token {
            Some(
                svc.sign_in
                    .start_family(NewFamily {
                        tenant: record.tenant.clone(),
                        // The code's client: the binding check made it the authenticated one.
                        client_id: record.client_id.clone(),
                        user_id: record.user_id.clone(),
                        sid: Some(record.sid.clone()),
                        scope: decision.scopes.to_vec(),
                        auth_time: record.auth_time,
                        acr: record.acr.clone(),
                        amr: record.amr.clone(),
                        dpop_jkt: binding
                            .dpop_jkt
                            .as_ref()
                            .filter(|_| binds_refresh_tokens(client))
                            .map(|t| t.as_str().to_owned()),
                        // RFC 8705 section 4: the family of a client whose tokens are bound to
                        // its certificate refreshes only over a connection with that one.
                        cert_x5t: binding.x5t_s256.as_ref().map(|t| t.as_str().to_owned()),
                    })
                    .await?,
            )
        } else {
            None
        };
        let family_id = family.as_ref().map(|f| f.family.id.clone());
        let facts = SignInFacts {
            tenant: &record.tenant,
            user_id: record.user_id.as_str(),
            sid: Some(record.sid.as_str()),
            auth_time: record.auth_time,
            acr: record.acr.as_deref(),
            amr: &record.amr,
            family: family_id.as_ref().map(FamilyId::as_str),
        };
        let minted = mint(
            svc,
            client,
            &decision,
            &facts,
            record.nonce.as_deref(),
            binding,
            now,
        )?;
        // A replay that arrived while these were minted revokes them here, and this fails.
        svc.sign_in
            .code_issued(
                &redeemed,
                vec![minted.jti.clone()],
                minted.expires_at,
                family_id,
            )
            .await?;
        Ok::<_, OAuthError>((decision, minted, family))
    }
    .await;
    let (decision, minted, family) = outcome.map_err(refuse)?;
    svc.oauth.metrics.issued(GrantType::AuthorizationCode);
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
        refresh_token: family
            .map(|f| portcullis_core::secret::Secret::new(f.token.expose().to_owned())),
        issued_token_type: None,
    })
}
