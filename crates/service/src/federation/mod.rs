//! Workload identity federation as the token service applies it: reading stored trusted
//! issuers and trust rules into core's types, and checking the key material an operator
//! uploads. The rules themselves are core's (`portcullis_core::federation`); the JOSE checks
//! are jose's external-token profile.
//!
//! Must never: accept a stored rule that core would refuse (a rule read back is checked again,
//! so a row written by an older binary cannot widen what is trusted), or hold private keys
//! (an uploaded JWKS is public keys only, refused otherwise).

use std::time::Duration;

use portcullis_core::federation::{ClaimCondition, Preset, RuleId, TrustRule, TrustedIssuer};
use portcullis_core::oauth::{Audience, ScopeSet};
use portcullis_jose::{parse_jwks_all_usable, Alg};
use portcullis_store::{TrustRuleRecord, TrustedIssuerRecord};

pub mod exchange;
pub mod facts;
pub mod keys;
use serde_json::Value;

/// Most keys an uploaded JWKS or SPIFFE bundle may hold.
pub const MAX_UPLOADED_KEYS: usize = 20;

/// Checks an uploaded JWKS or SPIFFE trust bundle (`spiffe`: its `jwt-svid` keys are the ones
/// used): 1 to [`MAX_UPLOADED_KEYS`] public asymmetric keys, every one usable, and no private
/// member anywhere. Operator-facing text on failure.
pub fn check_uploaded_keys(doc: &Value, spiffe: bool) -> Result<(), String> {
    if doc
        .get("keys")
        .and_then(Value::as_array)
        .is_some_and(|keys| keys.iter().any(|k| k.get("d").is_some()))
    {
        return Err("an uploaded JWKS holds public keys only (a key has \"d\")".into());
    }
    let jwt_keys;
    let doc = if spiffe {
        jwt_keys = keys::spiffe_jwt_keys(doc);
        &jwt_keys
    } else {
        doc
    };
    parse_jwks_all_usable(doc, &Alg::ALL, MAX_UPLOADED_KEYS)
        .map(|_| ())
        .map_err(|e| format!("the uploaded key set is not usable: {e}"))
}

/// A stored issuer in core's terms; `None` if the row does not read (a corrupt or newer row
/// trusts nothing).
pub fn issuer_from_record(r: &TrustedIssuerRecord) -> Option<TrustedIssuer> {
    let issuer = TrustedIssuer {
        issuer: r.issuer.clone(),
        preset: Preset::parse(&r.preset)?,
        algorithms: r.algorithms.clone(),
        max_token_age: Duration::from_secs(u64::try_from(r.max_token_age_s).ok()?),
    };
    Some(issuer)
}

/// A stored rule in core's terms, checked again against its issuer; `None` if it does not
/// read or no longer passes.
pub fn rule_from_record(r: &TrustRuleRecord, issuer: &TrustedIssuer) -> Option<TrustRule> {
    let rule = TrustRule {
        id: RuleId::parse(&r.id)?,
        issuer: r.issuer.clone(),
        audience: r.audience.clone(),
        conditions: serde_json::from_str::<Vec<ClaimCondition>>(&r.conditions).ok()?,
        audiences: r
            .audiences
            .iter()
            .map(|a| Audience::parse(a).ok())
            .collect::<Option<Vec<_>>>()?,
        scopes: ScopeSet::from_strs(r.scopes.iter().map(String::as_str)).ok()?,
        max_lifetime: Duration::from_secs(u64::try_from(r.max_lifetime_s).ok()?),
        max_token_age: match r.max_token_age_s {
            None => None,
            Some(s) => Some(Duration::from_secs(u64::try_from(s).ok()?)),
        },
        bound_to_subject_lifetime: r.bound_to_subject_lifetime,
        client_id: r.client_id.clone(),
    };
    rule.check(issuer).ok()?;
    Some(rule)
}
