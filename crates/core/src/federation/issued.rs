//! What a token issued to a workload says: the workload identity in the tenant (the trust rule
//! that admitted it, as `sub` and `client_id`), and the external identity it proved (issuer,
//! subject, rule) in the `workload` claim, so the audit log, the API and a revocation can tell
//! who it was.
//!
//! Revocation: every token issued under a rule carries the rule's subject
//! ([`workload_subject`]), so "revoke the rule" is a subject mark of the one revocation rule
//! (`crate::revocation`); "revoke the issuer" is one such mark per rule of that issuer.
//!
//! Must never: put an external subject in `sub` (an external issuer could then name one of
//! this tenant's users), or issue a refresh token.

use super::claims::Workload;
use super::rule::RuleId;
pub use crate::oauth::ExternalIdentity;
use crate::oauth::{AccessTokenClaims, GrantDecision};
use crate::tenant::TenantId;
use crate::time::Timestamp;

/// Prefix of every workload's `sub` and `client_id`; no client or user id has it.
pub const WORKLOAD_SUBJECT_PREFIX: &str = "workload:";

/// The `sub` (and `client_id`) of every token issued under `rule`.
pub fn workload_subject(rule: &RuleId) -> String {
    format!("{WORKLOAD_SUBJECT_PREFIX}{}", rule.as_str())
}

/// The `workload` claim of a token issued on the strength of `workload` under `rule`: to the
/// workload itself (a grant), or to the client the rule authenticated (client credentials with
/// the external token as `client_assertion`, whose `sub` stays the client).
pub fn external_identity(rule: &RuleId, workload: &Workload) -> ExternalIdentity {
    ExternalIdentity {
        iss: workload.issuer.clone(),
        sub: workload.subject.clone(),
        rule: rule.as_str().to_owned(),
    }
}

impl AccessTokenClaims {
    /// Claims for a token issued to `workload` under `rule` at `now`.
    pub fn for_workload(
        issuer: &str,
        tenant: &TenantId,
        rule: &RuleId,
        workload: &Workload,
        decision: &GrantDecision,
        jti: String,
        now: Timestamp,
    ) -> Self {
        let iat = now.as_secs();
        let lifetime = i64::try_from(decision.lifetime.as_secs()).unwrap_or(i64::MAX);
        let subject = workload_subject(rule);
        Self {
            iss: issuer.to_owned(),
            sub: subject.clone(),
            aud: decision.audience.as_str().to_owned(),
            exp: iat.saturating_add(lifetime),
            iat,
            nbf: iat,
            jti,
            client_id: subject,
            scope: (!decision.scopes.is_empty()).then(|| decision.scopes.to_delimited()),
            tenant: tenant.as_str().to_owned(),
            auth_time: None,
            acr: None,
            amr: Vec::new(),
            sid: None,
            family: None,
            cnf: None,
            workload: Some(external_identity(rule, workload)),
            act: None,
            exchanged_from: Vec::new(),
            may_act: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::federation::Preset;
    use crate::oauth::{Audience, ScopeSet};

    #[test]
    fn a_workload_token_names_the_rule_as_subject_and_records_the_external_identity() {
        let claims = json!({"iss": "https://kube.internal", "sub": "system:serviceaccount:p:api",
            "aud": "a", "exp": 2_000, "iat": 1_000, "jti": "j",
            "kubernetes.io": {"namespace": "p", "serviceaccount": {"name": "api", "uid": "u"}}});
        let claims = claims.as_object().cloned().expect("object");
        let w = Workload::from_claims(Preset::Kubernetes, &claims).expect("workload");
        let rule = RuleId::parse("payments-api").expect("rule");
        let d = GrantDecision {
            audience: Audience::parse("payments").expect("aud"),
            scopes: ScopeSet::from_strs(["read"]).expect("scopes"),
            lifetime: Duration::from_secs(300),
        };
        let tenant = TenantId::parse("acme").expect("tenant");
        let c = AccessTokenClaims::for_workload(
            "https://auth.example",
            &tenant,
            &rule,
            &w,
            &d,
            "jti-1".into(),
            Timestamp::from_secs(1_500),
        );
        let v = serde_json::to_value(&c).expect("json");
        assert_eq!(v["sub"], "workload:payments-api");
        assert_eq!(v["client_id"], "workload:payments-api");
        assert_eq!(v["exp"], 1_800);
        assert_eq!(v["scope"], "read");
        assert_eq!(
            v["workload"],
            json!({"iss": "https://kube.internal", "sub": "system:serviceaccount:p:api",
                   "rule": "payments-api"})
        );
        // No refresh-token family, no user session.
        assert!(v.get("family_id").is_none() && v.get("sid").is_none());
    }
}
