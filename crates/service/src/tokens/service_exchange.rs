//! Token exchange between services (RFC 8693 with `subject_token_type`
//! `urn:ietf:params:oauth:token-type:access_token`), at the installation's token endpoint: a
//! service holding one of our access tokens (for its own API) authenticates as its client and
//! exchanges the token for one for another API, acting for the token's subject. Core's
//! `delegation::decide` says what may be issued (never more scopes than the subject token had,
//! the target one of the actor's audiences, `may_act` honoured, the actor chain in `act`);
//! the subject token is checked as introspection checks it (our keys, expiry, the revocation
//! log, its audience not archived).
//!
//! The acting client is the one that authenticated; an `actor_token` is not taken (it would
//! name a second party without proving it). No refresh token is issued.
//!
//! Must never: issue for a subject token that is not current, issue without core's decision,
//! or tell the caller which check refused the subject token (one `invalid_grant`; the audit log
//! has the reason).

use portcullis_core::audit::{Action, Outcome, Reason};
use portcullis_core::delegation::{self, SubjectToken};
use portcullis_core::oauth::{
    select_audience, AccessTokenClaims, GrantError, GrantType, ScopeSet, TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_JWT,
};
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;

use super::issue::{Binding, Issued, ServiceExchange};
use super::lookup::current_token;
use crate::audit::RequestOrigin;
use crate::client_auth::AuthenticatedClient;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::OAuthService;

pub(super) async fn issue(
    svc: &OAuthService,
    authenticated: &AuthenticatedClient,
    request: ServiceExchange,
    binding: &Binding,
    origin: &RequestOrigin,
) -> Result<Issued, OAuthError> {
    let client = authenticated.client();
    let refuse = |e: OAuthError| {
        super::audit(
            svc,
            client,
            Action::OAuthTokenIssue,
            Outcome::Denied,
            Some(Reason::of(&e.reason)),
            None,
            origin,
        );
        e
    };
    if request.actor_token
        || !matches!(
            request.requested_token_type.as_deref(),
            None | Some(TOKEN_TYPE_ACCESS_TOKEN | TOKEN_TYPE_JWT)
        )
    {
        return Err(refuse(OAuthError::refuse(Refusal::UnsupportedTokenType)));
    }
    let token = request
        .subject_token
        .as_ref()
        .ok_or(GrantError::InvalidRequest("subject_token is required"))
        .map_err(|e| refuse(e.into()))?;
    let policy =
        authenticated.facts.policy.as_ref().ok_or_else(|| {
            OAuthError::internal(format!("stored client {} is invalid", client.id))
        })?;
    let now = svc.clock.now();
    let subject = match current_token(svc, token.expose(), now).await? {
        Ok(v) => v,
        // Introspection's reasons (`token_not_current`, `token_revoked`, ...): the audit event
        // is a token exchange, so they name the subject token.
        Err(reason) => {
            return Err(refuse(OAuthError::refuse(Refusal::SubjectTokenRefused(
                reason,
            ))))
        }
    };
    let targets: Vec<&str> = request.targets.iter().map(String::as_str).collect();
    let audience = select_audience(policy, &targets)
        .map_err(OAuthError::from)
        .map_err(refuse)?;
    let resource = svc
        .oauth
        .directory
        .resource(svc.store.as_ref(), &client.tenant, audience.as_str(), now)
        .await?
        .ok_or_else(|| refuse(OAuthError::refuse(Refusal::InvalidTarget)))?;
    let resource = resource
        .policy
        .as_ref()
        .ok_or_else(|| OAuthError::internal("stored resource server is invalid"))?;
    let claims = &subject.claims;
    let tenant = TenantId::parse(&claims.tenant)
        .map_err(|_| OAuthError::internal("verified token with an invalid tenant"))?;
    // Every scope of a token this server signed was a valid scope when it was signed; one that
    // no longer parses grants nothing.
    let scopes = ScopeSet::from_strs(
        claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty()),
    )
    .unwrap_or_default();
    let facts = SubjectToken {
        tenant: &tenant,
        scopes: &scopes,
        exp: claims.exp,
        bound: claims.cnf.is_some(),
        act: claims.act.as_ref(),
        may_act: claims.may_act.as_ref(),
        exchanged_from: &claims.exchanged_from,
    };
    let delegation = delegation::decide(
        &facts,
        policy,
        resource,
        request.scope.as_deref(),
        svc.oauth.lifetimes.max,
        now,
    )
    .map_err(|e| match e {
        delegation::Refused::Grant(reason) => {
            refuse(OAuthError::refuse(Refusal::SubjectTokenRefused(reason)))
        }
        delegation::Refused::Request(e) => refuse(e.into()),
    })?;
    let lifetime = delegation.decision.lifetime;
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let mut issued = AccessTokenClaims::for_delegation(claims, delegation, jti, now);
    issued.cnf = binding.cnf();
    let signer = svc
        .oauth
        .signer()
        .ok_or_else(|| OAuthError::internal("no active signing key"))?;
    let token = signer.sign(&issued).map_err(OAuthError::internal)?;
    svc.oauth.metrics.issued(GrantType::TokenExchange);
    // Who it acts for and through whom: the subject and every actor, current first.
    let chain = issued
        .act
        .as_ref()
        .map(|a| a.actors().join(" < "))
        .unwrap_or_default();
    super::audit(
        svc,
        client,
        Action::OAuthTokenIssue,
        Outcome::Success,
        Some(Reason::with_detail(
            "token_exchange",
            format!("for {} by {chain}", issued.sub),
        )),
        Some(issued.jti.clone()),
        origin,
    );
    Ok(Issued {
        access_token: Secret::new(token),
        token_type: binding.token_type(),
        expires_in: lifetime.as_secs(),
        scope: issued.scope,
        id_token: None,
        refresh_token: None,
        issued_token_type: Some(TOKEN_TYPE_ACCESS_TOKEN),
    })
}
