//! Token exchange between services (RFC 8693 with one of our own access tokens as the
//! `subject_token`): a service that received a token for its own API exchanges it for a token
//! for another API, acting for the token's subject. This module decides whether it may and what
//! the new token carries: the subject stays the subject, the acting client is recorded in `act`
//! (RFC 8693 section 4.1, the current actor outermost, earlier actors nested inside it), and the
//! scopes are never more than the subject token had.
//!
//! The rules, in order: a token bound to a key (`cnf`) is not exchanged (the exchange would
//! strip the binding from whoever stole it); the actor must be a client of the subject token's
//! tenant; a `may_act` claim in the subject token (RFC 8693 section 4.4) must name the actor; the
//! chain of actors is at most [`MAX_ACTORS`] long, and a subject token that was itself exchanged
//! must name the tokens it came from (`exchanged_from`); the target must be one of the actor's
//! audiences; the scope is within the subject token's scopes, the target's scopes and the
//! actor's own (asked for or not: without `scope`, the intersection); the lifetime is the
//! actor's, capped by the installation's maximum and by what is left of the subject token.
//!
//! Must never: grant a scope the subject token did not carry, let a token outlive the one it was
//! exchanged from, or drop an earlier actor from the chain. No I/O: the caller verified the
//! subject token (signature, expiry, revocation) and authenticated the actor.

use std::time::Duration;

use crate::oauth::{
    AccessTokenClaims, ClientPolicy, GrantDecision, GrantError, ResourcePolicy, ScopeSet,
};
use crate::tenant::TenantId;
use crate::time::Timestamp;

/// The most actors one token's chain may name (the current one included). Each hop adds one;
/// a longer chain is refused rather than grown without bound.
pub const MAX_ACTORS: usize = 5;

pub use crate::oauth::{ActClaim, MayAct};

/// The verified subject token, as far as the decision reads it.
#[derive(Debug, Clone)]
pub struct SubjectToken<'a> {
    pub tenant: &'a TenantId,
    pub scopes: &'a ScopeSet,
    pub exp: i64,
    /// Bound to a key or certificate (`cnf`).
    pub bound: bool,
    pub act: Option<&'a ActClaim>,
    pub may_act: Option<&'a MayAct>,
    /// The `jti`s of the tokens it was itself exchanged from (oldest first).
    pub exchanged_from: &'a [String],
}

/// What may be issued: the usual grant decision and the new `act` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub decision: GrantDecision,
    pub act: ActClaim,
}

/// Why an exchange is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The subject token may not be exchanged by this actor: `invalid_grant`, with the audit
    /// reason.
    Grant(&'static str),
    /// The request asks for more than may be granted (`invalid_scope`, `invalid_target`).
    Request(GrantError),
}

/// The decision of the module docs. `actor` is the authenticated client, `resource` the target
/// API (the caller found it from the request's `resource` or `audience`, else the actor's
/// default audience).
pub fn decide(
    subject: &SubjectToken<'_>,
    actor: &ClientPolicy,
    resource: &ResourcePolicy,
    requested_scope: Option<&str>,
    max_lifetime: Duration,
    now: Timestamp,
) -> Result<Delegation, Refused> {
    if subject.bound {
        return Err(Refused::Grant("subject_token_bound"));
    }
    if subject.tenant != &actor.tenant {
        return Err(Refused::Grant("subject_token_other_tenant"));
    }
    if let Some(may) = subject.may_act {
        if !may.names(&actor.client_id) {
            return Err(Refused::Grant("may_act_names_another"));
        }
    }
    let act = ActClaim {
        sub: actor.client_id.clone(),
        act: subject.act.cloned().map(Box::new),
    };
    // The new token's lineage is the subject token's plus the subject token: one per hop, bound
    // like the actors (a token signed before lineages were recorded has none).
    if act.len() > MAX_ACTORS || subject.exchanged_from.len() >= MAX_ACTORS {
        return Err(Refused::Grant("act_chain_too_long"));
    }
    // A token exchanged before lineages were recorded names no ancestor: exchanging it again
    // would make a token its root's revocation cannot reach. Refused (it lives one token
    // lifetime after the upgrade at most).
    if subject.act.is_some() && subject.exchanged_from.is_empty() {
        return Err(Refused::Grant("subject_token_lineage_missing"));
    }
    let left = subject.exp.saturating_sub(now.as_secs());
    let Ok(left @ 1..) = u64::try_from(left) else {
        return Err(Refused::Grant("subject_token_expired"));
    };
    if !actor.audiences.contains(&resource.audience) {
        return Err(Refused::Request(GrantError::InvalidTarget));
    }
    let grantable = subject
        .scopes
        .intersection(&resource.scopes)
        .intersection(&actor.scopes);
    let scopes = match requested_scope {
        None => grantable,
        Some(s) => {
            let requested = ScopeSet::parse_delimited(s)
                .map_err(|_| Refused::Request(GrantError::InvalidScope))?;
            if requested.is_empty() || !requested.is_subset(&grantable) {
                return Err(Refused::Request(GrantError::InvalidScope));
            }
            requested
        }
    };
    let lifetime = actor
        .access_token_ttl
        .min(max_lifetime)
        .min(Duration::from_secs(left));
    Ok(Delegation {
        decision: GrantDecision {
            audience: resource.audience.clone(),
            scopes,
            lifetime,
        },
        act,
    })
}

impl AccessTokenClaims {
    /// Claims for a token exchanged from `subject` under `delegation` at `now`: the subject's
    /// `sub`, tenant, session and refresh family (so revoking the session or family reaches
    /// every token exchanged from it) and sign-in facts; the actor as `client_id` and in
    /// `act`; the subject token's lineage followed by its own `jti` in `exchanged_from` (so
    /// revoking any token of the chain by `jti` reaches this one); nothing of `cnf`, `may_act`
    /// or the workload claim.
    pub fn for_delegation(
        subject: &AccessTokenClaims,
        delegation: Delegation,
        jti: String,
        now: Timestamp,
    ) -> Self {
        let iat = now.as_secs();
        let d = delegation.decision;
        let lifetime = i64::try_from(d.lifetime.as_secs()).unwrap_or(i64::MAX);
        Self {
            iss: subject.iss.clone(),
            sub: subject.sub.clone(),
            aud: d.audience.as_str().to_owned(),
            exp: iat.saturating_add(lifetime),
            iat,
            nbf: iat,
            jti,
            client_id: delegation.act.sub.clone(),
            scope: (!d.scopes.is_empty()).then(|| d.scopes.to_delimited()),
            tenant: subject.tenant.clone(),
            auth_time: subject.auth_time,
            acr: subject.acr.clone(),
            amr: subject.amr.clone(),
            sid: subject.sid.clone(),
            family: subject.family.clone(),
            cnf: None,
            workload: None,
            act: Some(delegation.act),
            exchanged_from: subject
                .exchanged_from
                .iter()
                .chain([&subject.jti])
                .cloned()
                .collect(),
            may_act: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{Audience, GrantType};

    const NOW: i64 = 1_800_000_000;

    fn scopes(s: &[&str]) -> ScopeSet {
        ScopeSet::from_strs(s.iter().copied()).expect("scopes")
    }

    fn tenant(t: &str) -> TenantId {
        TenantId::parse(t).expect("tenant")
    }

    fn actor() -> ClientPolicy {
        ClientPolicy {
            client_id: "cl_orders".into(),
            tenant: tenant("acme"),
            grant_types: vec![GrantType::ClientCredentials],
            scopes: scopes(&["ledger:read", "ledger:write", "payments:read"]),
            audiences: vec![Audience::parse("ledger-api").expect("aud")],
            access_token_ttl: Duration::from_secs(600),
        }
    }

    fn ledger() -> ResourcePolicy {
        ResourcePolicy {
            audience: Audience::parse("ledger-api").expect("aud"),
            scopes: scopes(&["ledger:read", "ledger:write"]),
        }
    }

    struct Subject {
        tenant: TenantId,
        scopes: ScopeSet,
        exp: i64,
        bound: bool,
        act: Option<ActClaim>,
        exchanged_from: Vec<String>,
        may_act: Option<MayAct>,
    }

    impl Subject {
        fn new() -> Self {
            Self {
                tenant: tenant("acme"),
                scopes: scopes(&["ledger:read", "payments:read"]),
                exp: NOW + 300,
                bound: false,
                act: None,
                exchanged_from: Vec::new(),
                may_act: None,
            }
        }

        fn decide(&self, scope: Option<&str>) -> Result<Delegation, Refused> {
            let s = SubjectToken {
                tenant: &self.tenant,
                scopes: &self.scopes,
                exp: self.exp,
                bound: self.bound,
                act: self.act.as_ref(),
                may_act: self.may_act.as_ref(),
                exchanged_from: &self.exchanged_from,
            };
            decide(
                &s,
                &actor(),
                &ledger(),
                scope,
                Duration::from_secs(3600),
                Timestamp::from_secs(NOW),
            )
        }
    }

    #[test]
    fn the_subject_keeps_its_scopes_or_fewer_and_the_actor_is_recorded() {
        let d = Subject::new().decide(None).expect("exchanged");
        // ledger:write is the actor's and the API's, not the subject's: not granted.
        assert_eq!(d.decision.scopes, scopes(&["ledger:read"]));
        assert_eq!(d.decision.audience.as_str(), "ledger-api");
        assert_eq!(d.act.actors(), ["cl_orders"]);
        // The token never outlives the subject token.
        assert_eq!(d.decision.lifetime, Duration::from_secs(300));
        let d = Subject::new().decide(Some("ledger:read")).expect("same");
        assert_eq!(d.decision.scopes, scopes(&["ledger:read"]));
        for more in ["ledger:write", "ledger:read ledger:write", "", "bad\"scope"] {
            assert_eq!(
                Subject::new().decide(Some(more)),
                Err(Refused::Request(GrantError::InvalidScope)),
                "{more}"
            );
        }
    }

    #[test]
    fn each_hop_nests_the_earlier_actors() {
        let mut s = Subject::new();
        s.act = Some(ActClaim {
            sub: "cl_gateway".into(),
            act: Some(Box::new(ActClaim {
                sub: "cl_web".into(),
                act: None,
            })),
        });
        // Without the lineage its earlier exchanges wrote, it is not exchanged again.
        assert_eq!(
            s.decide(None),
            Err(Refused::Grant("subject_token_lineage_missing"))
        );
        s.exchanged_from = vec!["jti_root".into(), "jti_1".into()];
        let d = s.decide(None).expect("exchanged");
        assert_eq!(d.act.actors(), ["cl_orders", "cl_gateway", "cl_web"]);
        assert_eq!(d.act.len(), 3);
        let json = serde_json::to_value(&d.act).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"sub": "cl_orders", "act": {"sub": "cl_gateway",
                                "act": {"sub": "cl_web"}}})
        );
        // A chain at the limit cannot grow.
        let mut chain = None;
        for i in 0..MAX_ACTORS {
            chain = Some(ActClaim {
                sub: format!("cl_{i}"),
                act: chain.map(Box::new),
            });
        }
        s.act = chain;
        assert_eq!(s.decide(None), Err(Refused::Grant("act_chain_too_long")));
        // So does a lineage at the limit, whatever its `act` says.
        let mut s = Subject::new();
        s.exchanged_from = (0..MAX_ACTORS).map(|i| format!("jti_{i}")).collect();
        assert_eq!(s.decide(None), Err(Refused::Grant("act_chain_too_long")));
        s.exchanged_from.pop();
        assert!(s.decide(None).is_ok());
    }

    #[test]
    fn the_new_token_names_every_token_it_was_exchanged_from() {
        let subject_claims = |jti: &str, exchanged_from: Vec<String>| AccessTokenClaims {
            exchanged_from,
            ..AccessTokenClaims::for_client(
                "https://auth.example",
                &actor(),
                &GrantDecision {
                    audience: Audience::parse("ledger-api").expect("aud"),
                    scopes: scopes(&["ledger:read"]),
                    lifetime: Duration::from_secs(300),
                },
                jti.into(),
                Timestamp::from_secs(NOW),
            )
        };
        let d = Subject::new().decide(None).expect("exchanged");
        let first = AccessTokenClaims::for_delegation(
            &subject_claims("jti_root", Vec::new()),
            d.clone(),
            "jti_1".into(),
            Timestamp::from_secs(NOW),
        );
        assert_eq!(first.exchanged_from, ["jti_root"]);
        let second =
            AccessTokenClaims::for_delegation(&first, d, "jti_2".into(), Timestamp::from_secs(NOW));
        assert_eq!(second.exchanged_from, ["jti_root", "jti_1"]);
        let json = serde_json::to_value(&second).expect("json");
        assert_eq!(
            json[crate::oauth::EXCHANGED_FROM_CLAIM],
            serde_json::json!(["jti_root", "jti_1"])
        );
        // A token from no exchange carries no such claim.
        let plain = serde_json::to_value(subject_claims("j", Vec::new())).expect("json");
        assert!(plain.get(crate::oauth::EXCHANGED_FROM_CLAIM).is_none());
    }

    #[test]
    fn may_act_must_name_the_actor() {
        let mut s = Subject::new();
        for (may, ok) in [
            (Some("cl_orders"), true),
            (Some("cl_other"), false),
            (None, false),
        ] {
            s.may_act = Some(MayAct {
                sub: may.map(str::to_owned),
                client_id: None,
            });
            assert_eq!(s.decide(None).is_ok(), ok, "{may:?}");
            s.may_act = Some(MayAct {
                sub: None,
                client_id: may.map(str::to_owned),
            });
            assert_eq!(s.decide(None).is_ok(), ok, "{may:?}");
        }
        // Both given: both must be the actor.
        s.may_act = Some(MayAct {
            sub: Some("cl_orders".into()),
            client_id: Some("cl_other".into()),
        });
        assert_eq!(s.decide(None), Err(Refused::Grant("may_act_names_another")));
    }

    #[test]
    fn bound_foreign_or_spent_subject_tokens_and_other_audiences_are_refused() {
        let mut s = Subject::new();
        s.bound = true;
        assert_eq!(s.decide(None), Err(Refused::Grant("subject_token_bound")));
        let mut s = Subject::new();
        s.tenant = tenant("globex");
        assert_eq!(
            s.decide(None),
            Err(Refused::Grant("subject_token_other_tenant"))
        );
        let mut s = Subject::new();
        s.exp = NOW;
        assert_eq!(s.decide(None), Err(Refused::Grant("subject_token_expired")));
        let payments = ResourcePolicy {
            audience: Audience::parse("payments-api").expect("aud"),
            scopes: scopes(&["payments:read"]),
        };
        let s = Subject::new();
        let st = SubjectToken {
            tenant: &s.tenant,
            scopes: &s.scopes,
            exp: s.exp,
            bound: false,
            act: None,
            may_act: None,
            exchanged_from: &[],
        };
        assert_eq!(
            decide(
                &st,
                &actor(),
                &payments,
                None,
                Duration::from_secs(3600),
                Timestamp::from_secs(NOW)
            ),
            Err(Refused::Request(GrantError::InvalidTarget))
        );
    }
}
