//! The client credentials grant (RFC 6749 section 4.4, RFC 8707 `resource`): an authenticated
//! client gets an access token for one of its audiences, with the scopes core's
//! `decide_client_credentials` grants, signed by the active key.
//!
//! A `workload_identity_jwt` client (authenticated by an external workload token under a trust
//! rule bound to it) gets no more than both its registration and that rule allow: audiences
//! and scopes in both, a lifetime within the rule's issued lifetime (`core::federation`), and
//! the token records the external identity (`workload` claim) as a workload grant's does.
//!
//! This module must never issue without core's decision, nor for a resource server of another
//! tenant.

use portcullis_core::audit::{Action, Outcome, Reason};
use portcullis_core::federation::issued::external_identity;
use portcullis_core::oauth::{
    decide_client_credentials, select_audience, AccessTokenClaims, GrantType,
};
use portcullis_core::secret::Secret;

use super::issue::{Binding, ClientCredentials, Issued};
use crate::audit::RequestOrigin;
use crate::client_auth::AuthenticatedClient;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::OAuthService;

pub(super) async fn issue(
    svc: &OAuthService,
    authenticated: &AuthenticatedClient,
    request: ClientCredentials,
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
    let registered =
        authenticated.facts.policy.as_ref().ok_or_else(|| {
            OAuthError::internal(format!("stored client {} is invalid", client.id))
        })?;
    let now = svc.clock.now();
    let narrowed;
    let policy = match authenticated.workload.as_deref() {
        None => registered,
        Some(admitted) => {
            // What both the registration and the rule allow, for the rule's lifetime (core's
            // `issued_lifetime`, already in the admitted decision).
            let rule = &admitted.rule;
            narrowed =
                registered.within_rule(&rule.scopes, &rule.audiences, admitted.decision.lifetime);
            &narrowed
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
    let decision = decide_client_credentials(
        policy,
        resource,
        request.scope.as_deref(),
        svc.oauth.lifetimes,
    )
    .map_err(OAuthError::from)
    .map_err(refuse)?;
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let mut claims = AccessTokenClaims::for_client(&svc.oauth.issuer, policy, &decision, jti, now);
    claims.cnf = binding.cnf();
    if let Some(admitted) = authenticated.workload.as_deref() {
        claims.workload = Some(external_identity(&admitted.rule.id, &admitted.workload));
        // For the hygiene report's "never matched".
        crate::lifecycle::record_match(
            &svc.store,
            &svc.oauth.match_marks,
            &client.tenant,
            crate::lifecycle::TRUST_RULE,
            admitted.rule.id.as_str(),
            now,
        );
    }
    let signer = svc
        .oauth
        .signer()
        .ok_or_else(|| OAuthError::internal("no active signing key"))?;
    let token = signer.sign(&claims).map_err(OAuthError::internal)?;
    svc.oauth.metrics.issued(GrantType::ClientCredentials);
    // Who it was: for a workload client, the external issuer, subject and rule.
    let reason = authenticated.workload.as_deref().map(|a| {
        Reason::with_detail(
            "external_identity",
            format!(
                "{} {} rule {}",
                a.workload.issuer, a.workload.subject, a.rule.id
            ),
        )
    });
    super::audit(
        svc,
        client,
        Action::OAuthTokenIssue,
        Outcome::Success,
        reason,
        Some(claims.jti.clone()),
        origin,
    );
    Ok(Issued {
        access_token: Secret::new(token),
        token_type: binding.token_type(),
        expires_in: decision.lifetime.as_secs(),
        scope: claims.scope,
        id_token: None,
        refresh_token: None,
        issued_token_type: None,
    })
}
