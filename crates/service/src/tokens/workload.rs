//! The workload grants: RFC 8693 token exchange of an external identity token
//! (`subject_token_type` JWT or ID token) and the RFC 7523 section 2.1 JWT-bearer grant, both
//! served at a tenant's own token endpoint (`/oauth2/tenants/{tenant}/token`) and both judged
//! by the one evaluation of `crate::federation::exchange` (the tenant's trusted issuers and
//! trust rules). What is issued: an RFC 9068 access token whose subject is the admitting rule
//! (`workload:<rule>`) and whose `workload` claim records the external issuer, subject and
//! rule; no refresh token, ever.
//!
//! The tenant is the one the path names, never one read from the token: a token is judged by
//! exactly one tenant's rules, chosen by the caller, and a tenant that does not trust the
//! issuer refuses it. That keeps selection deterministic (no search over tenants) and stops a
//! token minted for one tenant's audience from being tried against every tenant.
//!
//! Must never: issue when the evaluation refuses, issue a refresh token, tell the caller why
//! a token was refused (one `invalid_grant`; the audit log has the check that failed), or burn
//! a token's `jti` for a request refused for its scope or audience.

use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::federation::rule::Use;
use portcullis_core::federation::RuleId;
use portcullis_core::oauth::{
    AccessTokenClaims, GrantError, GrantType, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN,
    TOKEN_TYPE_JWT,
};
use portcullis_core::secret::Secret;
use portcullis_core::tenant::{TenantId, TenantStatus};

use super::issue::{Issued, WorkloadGrant};
use crate::audit::{EventDraft, RequestOrigin};
use crate::federation::exchange::{self, Admitted, Refused};
use crate::keys::jwt::LEEWAY;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::OAuthService;

/// Issues a token for a workload grant at `tenant`'s token endpoint (`exchange`: RFC 8693,
/// else RFC 7523).
pub(super) async fn issue(
    svc: &OAuthService,
    tenant: &str,
    request: WorkloadGrant,
    exchange: bool,
    origin: &RequestOrigin,
) -> Result<Issued, OAuthError> {
    let grant = if exchange {
        GrantType::TokenExchange
    } else {
        GrantType::JwtBearer
    };
    let now = svc.clock.now();
    // The form is judged before any stored state: what was sent, and whether it is a kind of
    // token this endpoint takes.
    if exchange {
        let subject_type_ok = matches!(
            request.token_type.as_deref(),
            Some(TOKEN_TYPE_JWT | TOKEN_TYPE_ID_TOKEN)
        );
        let requested_ok = matches!(
            request.requested_token_type.as_deref(),
            None | Some(TOKEN_TYPE_ACCESS_TOKEN | TOKEN_TYPE_JWT)
        );
        if request.token_type.is_none() {
            return Err(GrantError::InvalidRequest("subject_token_type is required").into());
        }
        if !subject_type_ok || !requested_ok || request.actor_token {
            return Err(OAuthError::refuse(Refusal::UnsupportedTokenType));
        }
    }
    let token = request
        .token
        .as_ref()
        .ok_or(GrantError::InvalidRequest(if exchange {
            "subject_token is required"
        } else {
            "assertion is required"
        }))?;
    let not_admitted = |tenant: Option<&TenantId>, rule: Option<&str>, reason: String| {
        audit(
            svc,
            tenant,
            rule,
            Outcome::Denied,
            Reason::of(&reason),
            None,
            origin,
        );
        let mut e = OAuthError::refuse(Refusal::WorkloadNotAdmitted);
        e.reason = reason;
        e
    };
    let Some(tenant) = TenantId::parse(tenant).ok() else {
        return Err(not_admitted(None, None, "tenant_unknown".into()));
    };
    match svc
        .oauth
        .directory
        .tenant_status(svc.store.as_ref(), &tenant, now)
        .await?
    {
        Some(TenantStatus::Active) => {}
        Some(_) => return Err(not_admitted(Some(&tenant), None, "tenant_disabled".into())),
        None => return Err(not_admitted(None, None, "tenant_unknown".into())),
    }
    let rule =
        match request.rule.as_deref() {
            None => None,
            Some(r) => Some(RuleId::parse(r).ok_or_else(|| {
                not_admitted(Some(&tenant), None, "requested_rule_malformed".into())
            })?),
        };
    let targets: Vec<&str> = request.targets.iter().map(String::as_str).collect();
    let req = exchange::Request {
        tenant: &tenant,
        purpose: Use::Grant,
        assertion_audiences: &[],
        subject_token: token.expose(),
        rule: rule.as_ref(),
        scope: request.scope.as_deref(),
        targets: &targets,
        now,
        leeway: LEEWAY,
        tenant_cap: svc.oauth.lifetimes.max,
        keys: Some(&svc.oauth.issuer_keys),
        issuers: Some(&svc.oauth.trusted_issuers),
    };
    let refused = |e: Refused, rule: Option<&str>| match e {
        Refused::Grant(reason) => not_admitted(Some(&tenant), rule, reason),
        Refused::Request(e) => {
            let r = match e {
                GrantError::InvalidScope => Refusal::WorkloadScope,
                GrantError::InvalidTarget => Refusal::WorkloadTarget,
                other => Refusal::from(other),
            };
            let e = OAuthError::refuse(r);
            audit(
                svc,
                Some(&tenant),
                rule,
                Outcome::Denied,
                Reason::of(&e.reason),
                None,
                origin,
            );
            e
        }
        Refused::Store(e) => OAuthError::internal(e),
    };
    let mut admitted: Admitted = exchange::admit(svc.store.as_ref(), &req)
        .await
        .map_err(|e| refused(e, None))?;
    let rule_id = admitted.rule.id.as_str().to_owned();
    // The audience must be one of the tenant's APIs, and the scopes ones it defines.
    let resource = svc
        .oauth
        .directory
        .resource(
            svc.store.as_ref(),
            &tenant,
            admitted.decision.audience.as_str(),
            now,
        )
        .await?
        .ok_or_else(|| refused(Refused::Request(GrantError::InvalidTarget), Some(&rule_id)))?;
    let resource = resource
        .policy
        .as_ref()
        .ok_or_else(|| OAuthError::internal("stored resource server is invalid"))?;
    let audience = [admitted.decision.audience.as_str()];
    admitted.decision = portcullis_core::federation::rule::decide_grant(
        &admitted.rule,
        request.scope.as_deref(),
        &audience,
        Some(&resource.scopes),
        admitted.decision.lifetime,
    )
    .map_err(|e| refused(Refused::Request(e), Some(&rule_id)))?;
    exchange::consume(svc.store.as_ref(), &admitted, LEEWAY, now)
        .await
        .map_err(|e| refused(e, Some(&rule_id)))?;
    // For the hygiene report's "never matched".
    crate::lifecycle::record_match(
        &svc.store,
        &svc.oauth.match_marks,
        &tenant,
        crate::lifecycle::TRUST_RULE,
        admitted.rule.id.as_str(),
        now,
    );
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let claims = AccessTokenClaims::for_workload(
        &svc.oauth.issuer,
        &tenant,
        &admitted.rule.id,
        &admitted.workload,
        &admitted.decision,
        jti,
        now,
    );
    let signer = svc
        .oauth
        .signer()
        .ok_or_else(|| OAuthError::internal("no active signing key"))?;
    let token = signer.sign(&claims).map_err(OAuthError::internal)?;
    svc.oauth.metrics.issued(grant);
    // Who it was: the external issuer and subject, next to the rule (the actor).
    audit(
        svc,
        Some(&tenant),
        Some(&rule_id),
        Outcome::Success,
        Reason::with_detail(
            "external_identity",
            format!("{} {}", admitted.workload.issuer, admitted.workload.subject),
        ),
        Some(claims.jti.clone()),
        origin,
    );
    Ok(Issued {
        access_token: Secret::new(token),
        token_type: "Bearer",
        expires_in: admitted.decision.lifetime.as_secs(),
        scope: claims.scope,
        id_token: None,
        refresh_token: None,
        issued_token_type: exchange.then_some(TOKEN_TYPE_ACCESS_TOKEN),
    })
}

fn audit(
    svc: &OAuthService,
    tenant: Option<&TenantId>,
    rule: Option<&str>,
    outcome: Outcome,
    reason: Reason,
    target: Option<String>,
    origin: &RequestOrigin,
) {
    svc.audit.record(
        EventDraft {
            tenant: tenant.cloned().unwrap_or_else(TenantId::system),
            actor: Actor::workload(rule),
            credential_id: None,
            action: Action::OAuthTokenIssue,
            outcome,
            reason: Some(reason),
            target,
        },
        origin,
    );
}
