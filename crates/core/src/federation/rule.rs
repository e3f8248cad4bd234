//! Trust rules: what an external workload must look like to be given a token, and what it is
//! given. Checked when saved, evaluated per request, selected deterministically.
//!
//! Selection: when the request names a rule, only that rule is evaluated. Otherwise every rule
//! on the token's issuer is evaluated and the most specific match wins, where specificity
//! compares the number of `equals`, then `one_of`, then `prefix`/`glob`, then `exists`
//! conditions; two matching rules equally specific are a configuration error, refused rather
//! than resolved by storage order.
//!
//! Must never: let a rule on an issuer shared by every customer be saved without pinning an
//! immutable owner or project id, issue beyond the rule's audiences, scopes or lifetime, or put
//! the reason a token failed anywhere but the audit log.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::claims::Workload;
use super::condition::{ClaimCondition, Outcome, Test};
use super::preset::{shared_issuer, TrustedIssuer};
use crate::oauth::{Audience, GrantDecision, GrantError, ScopeSet};
use crate::time::Timestamp;

/// Most conditions one rule may hold.
pub const MAX_CONDITIONS: usize = 32;
/// Longest lifetime a rule may grant; the tenant's cap applies on top.
pub const MAX_RULE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest subject-token age a rule may allow.
pub const MAX_ALLOWED_TOKEN_AGE: Duration = Duration::from_secs(366 * 86400);

/// A rule's name within its tenant: 1 to 64 of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RuleId(String);

impl RuleId {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("a rule id is 1 to 64 of a-z 0-9 - _"))
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A trust rule of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRule {
    pub id: RuleId,
    /// The issuer whose tokens this rule reads (exactly as the tokens' `iss`).
    pub issuer: String,
    /// The audience the external token must carry (what the job asked its platform for).
    pub audience: String,
    /// Every condition must hold.
    pub conditions: Vec<ClaimCondition>,
    /// Audiences the issued token may be for; the first is the default.
    pub audiences: Vec<Audience>,
    /// Scopes the issued token may carry.
    pub scopes: ScopeSet,
    /// Longest lifetime of the issued token.
    pub max_lifetime: Duration,
    /// Allows subject tokens older than the issuer's bound (for example long-lived Kubernetes
    /// tokens); `None` keeps the issuer's.
    pub max_token_age: Option<Duration>,
    /// The issued token never outlives the subject token.
    pub bound_to_subject_lifetime: bool,
    /// The one client this rule authenticates (RFC 7523 section 2.2: the external token as its
    /// `client_assertion`), or `None` for a rule of the workload grants. A rule is for one use
    /// or the other, never both ([`Use`]).
    pub client_id: Option<String>,
}

/// What a trust rule is evaluated for: a workload grant (token exchange, JWT-bearer), or the
/// authentication of one client by an external `client_assertion`. The one place that says
/// which rules take part in which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use<'a> {
    /// RFC 8693 token exchange and the RFC 7523 section 2.1 grant: only rules bound to no
    /// client, so binding a rule to a client never opens a grant as well.
    Grant,
    /// RFC 7523 section 2.2 for the client with this id: only rules bound to it, so a token
    /// admitted for one client never authenticates another.
    ClientAuthentication(&'a str),
}

impl TrustRule {
    /// Whether this rule takes part in `purpose`.
    pub fn serves(&self, purpose: Use<'_>) -> bool {
        match (purpose, self.client_id.as_deref()) {
            (Use::Grant, None) => true,
            (Use::ClientAuthentication(id), Some(bound)) => id == bound,
            _ => false,
        }
    }

    /// Checks a rule bound to a client against the audiences a client assertion may name
    /// here (this server's issuer and token endpoint, RFC 7523 section 3): the external token
    /// must carry one of them, and the rule's `audience` is what it is matched on, so a bound
    /// rule's `audience` must be one of them (a job asks its platform for a token whose `aud`
    /// is this server). Unbound rules are not concerned.
    pub fn check_client_binding(&self, assertion_audiences: &[&str]) -> Result<(), RuleError> {
        match &self.client_id {
            None => Ok(()),
            Some(id) if id.is_empty() || id.len() > crate::client::MAX_CLIENT_ID_LEN => {
                Err(RuleError::BadClientId)
            }
            Some(_) if !assertion_audiences.contains(&self.audience.as_str()) => {
                Err(RuleError::ClientRuleAudience {
                    expected: assertion_audiences
                        .iter()
                        .map(|a| (*a).to_owned())
                        .collect(),
                })
            }
            Some(_) => Ok(()),
        }
    }
}

/// Why a rule is refused at save. Operator-facing text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("the rule's issuer is not this trusted issuer")]
    IssuerMismatch,
    #[error("the subject-token audience is 1 to 256 printable characters")]
    BadAudience,
    #[error("a rule holds 1 to 32 conditions")]
    BadConditions,
    #[error("a rule grants at least one audience")]
    NoAudiences,
    #[error("a rule's lifetime is 1 second to 24 hours")]
    BadLifetime,
    #[error("a rule's maximum subject-token age is 1 second to 366 days")]
    BadTokenAge,
    #[error(
        "{issuer} is shared by every customer of the platform: a rule on it must pin one of {} with equals or one_of",
        .needs.join(", ")
    )]
    SharedIssuerUnpinned {
        issuer: String,
        needs: &'static [&'static str],
    },
    #[error("a client id is 1 to 80 characters")]
    BadClientId,
    #[error(
        "a rule bound to a client authenticates it with a client assertion, whose audience is this server: the rule's audience must be one of {}",
        .expected.join(", ")
    )]
    ClientRuleAudience { expected: Vec<String> },
}

impl TrustRule {
    /// Checks a rule against the issuer it is saved under.
    pub fn check(&self, issuer: &TrustedIssuer) -> Result<(), RuleError> {
        if self.issuer != issuer.issuer {
            return Err(RuleError::IssuerMismatch);
        }
        let aud_ok = (1..=256).contains(&self.audience.len())
            && self.audience.bytes().all(|b| b.is_ascii_graphic());
        if !aud_ok {
            return Err(RuleError::BadAudience);
        }
        if self.conditions.is_empty() || self.conditions.len() > MAX_CONDITIONS {
            return Err(RuleError::BadConditions);
        }
        if self.audiences.is_empty() {
            return Err(RuleError::NoAudiences);
        }
        if self.max_lifetime < Duration::from_secs(1) || self.max_lifetime > MAX_RULE_LIFETIME {
            return Err(RuleError::BadLifetime);
        }
        if self
            .max_token_age
            .is_some_and(|a| a < Duration::from_secs(1) || a > MAX_ALLOWED_TOKEN_AGE)
        {
            return Err(RuleError::BadTokenAge);
        }
        if let Some(needs) = shared_issuer(&self.issuer) {
            let pinned = self
                .conditions
                .iter()
                .any(|c| c.test().is_exact() && needs.contains(&c.claim()));
            if !pinned {
                return Err(RuleError::SharedIssuerUnpinned {
                    issuer: self.issuer.clone(),
                    needs,
                });
            }
        }
        Ok(())
    }

    /// How specific the rule is: counts of `equals`, `one_of`, `prefix`/`glob`, `exists`,
    /// compared in that order.
    pub fn specificity(&self) -> [usize; 4] {
        let mut s = [0; 4];
        for c in &self.conditions {
            let i = match c.test() {
                Test::Equals(_) => 0,
                Test::OneOf(_) => 1,
                Test::Prefix(_) | Test::Glob(_) => 2,
                Test::Exists => 3,
            };
            s[i] += 1;
        }
        s
    }

    /// Whether `workload` satisfies this rule, read under `issuer` at `now`.
    pub fn evaluate(
        &self,
        issuer: &TrustedIssuer,
        workload: &Workload,
        now: Timestamp,
    ) -> Result<(), RuleMiss> {
        let miss = |reason| RuleMiss {
            rule: self.id.clone(),
            reason,
        };
        if workload.issuer != self.issuer || issuer.issuer != self.issuer {
            return Err(miss(MissReason::WrongIssuer));
        }
        if !workload.audiences.contains(&self.audience) {
            return Err(miss(MissReason::WrongAudience));
        }
        let max_age = self.max_token_age.unwrap_or(issuer.max_token_age);
        let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        // The token's whole lifetime is bounded (a token can never be older than it is long
        // while it is valid); without `iat`, its remaining life is.
        let life = workload
            .expires_at
            .saturating_sub(workload.issued_at.unwrap_or(now.as_secs()));
        if life > max_age {
            return Err(miss(MissReason::TokenTooLong {
                lifetime_s: life,
                max_s: max_age,
            }));
        }
        for (index, c) in self.conditions.iter().enumerate() {
            match c.evaluate(workload) {
                Outcome::Holds => {}
                Outcome::Missing => {
                    return Err(miss(MissReason::ClaimMissing {
                        index,
                        claim: c.claim().to_owned(),
                    }))
                }
                Outcome::NotMatched => {
                    return Err(miss(MissReason::ConditionFailed {
                        index,
                        claim: c.claim().to_owned(),
                        op: c.test().op(),
                    }))
                }
            }
        }
        Ok(())
    }
}

/// Why one rule did not match. For the audit log and the explain output only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMiss {
    pub rule: RuleId,
    pub reason: MissReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissReason {
    WrongIssuer,
    WrongAudience,
    TokenTooLong {
        lifetime_s: i64,
        max_s: i64,
    },
    ClaimMissing {
        index: usize,
        claim: String,
    },
    ConditionFailed {
        index: usize,
        claim: String,
        op: &'static str,
    },
}

impl fmt::Display for RuleMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}: ", self.rule)?;
        match &self.reason {
            MissReason::WrongIssuer => f.write_str("issuer differs"),
            MissReason::WrongAudience => f.write_str("subject token lacks the rule's audience"),
            MissReason::TokenTooLong { lifetime_s, max_s } => write!(
                f,
                "subject token lifetime {lifetime_s}s over the allowed {max_s}s"
            ),
            MissReason::ClaimMissing { index, claim } => {
                write!(f, "condition {index} ({claim}): claim missing")
            }
            MissReason::ConditionFailed { index, claim, op } => {
                write!(f, "condition {index} ({claim} {op}): not matched")
            }
        }
    }
}

/// Why no rule was selected. The caller sees `invalid_grant` whatever this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// The tenant has no rule on the token's issuer.
    NoRules,
    /// The request named a rule this tenant does not have on this issuer.
    NamedRuleUnknown,
    /// No rule matched; each miss says why.
    NoMatch(Vec<RuleMiss>),
    /// Two rules match and are equally specific: a configuration error.
    Ambiguous(RuleId, RuleId),
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRules => f.write_str("no trust rule on this issuer"),
            Self::NamedRuleUnknown => f.write_str("the named trust rule does not exist"),
            Self::NoMatch(misses) => {
                f.write_str("no trust rule matched")?;
                for m in misses {
                    write!(f, "; {m}")?;
                }
                Ok(())
            }
            Self::Ambiguous(a, b) => write!(
                f,
                "rules {a} and {b} both match and are equally specific (configuration error)"
            ),
        }
    }
}

/// Picks the one rule that admits `workload` for `purpose`: the named one, or the most
/// specific match. Rules that do not serve `purpose` ([`TrustRule::serves`]) are not looked at,
/// as if they did not exist.
pub fn select_rule<'r>(
    rules: &'r [TrustRule],
    issuer: &TrustedIssuer,
    workload: &Workload,
    named: Option<&RuleId>,
    purpose: Use<'_>,
    now: Timestamp,
) -> Result<&'r TrustRule, SelectError> {
    let on_issuer = rules
        .iter()
        .filter(|r| r.issuer == workload.issuer && r.serves(purpose));
    if let Some(name) = named {
        let rule = on_issuer
            .into_iter()
            .find(|r| &r.id == name)
            .ok_or(SelectError::NamedRuleUnknown)?;
        return rule
            .evaluate(issuer, workload, now)
            .map(|()| rule)
            .map_err(|m| SelectError::NoMatch(vec![m]));
    }
    let mut misses = Vec::new();
    let mut best: Option<&TrustRule> = None;
    let mut tie: Option<&TrustRule> = None;
    let mut any = false;
    for rule in on_issuer {
        any = true;
        if let Err(m) = rule.evaluate(issuer, workload, now) {
            misses.push(m);
            continue;
        }
        match best {
            None => best = Some(rule),
            Some(b) => match rule.specificity().cmp(&b.specificity()) {
                std::cmp::Ordering::Greater => {
                    best = Some(rule);
                    tie = None;
                }
                std::cmp::Ordering::Equal => tie = Some(rule),
                std::cmp::Ordering::Less => {}
            },
        }
    }
    match (best, tie) {
        (Some(b), Some(t)) => {
            let (x, y) = if b.id <= t.id { (b, t) } else { (t, b) };
            Err(SelectError::Ambiguous(x.id.clone(), y.id.clone()))
        }
        (Some(b), None) => Ok(b),
        (None, _) if !any => Err(SelectError::NoRules),
        (None, _) => Err(SelectError::NoMatch(misses)),
    }
}

/// The lifetime of the token issued under `rule`: the smallest of the rule's, the tenant's cap
/// and, when the rule binds it, the subject token's remaining life.
pub fn issued_lifetime(
    rule: &TrustRule,
    tenant_cap: Duration,
    workload: &Workload,
    now: Timestamp,
) -> Duration {
    let mut life = rule.max_lifetime.min(tenant_cap);
    if rule.bound_to_subject_lifetime {
        let remaining = workload.expires_at.saturating_sub(now.as_secs()).max(0);
        life = life.min(Duration::from_secs(u64::try_from(remaining).unwrap_or(0)));
    }
    life
}

/// The audience and scopes issued under `rule`: the requested audience (all `resource` /
/// `audience` values must agree) must be one the rule grants, else the rule's first; the
/// requested scopes must be within the rule's and, when given, the resource's; without a
/// `scope`, everything the rule grants that the resource defines.
pub fn decide_grant(
    rule: &TrustRule,
    requested_scope: Option<&str>,
    targets: &[&str],
    resource_scopes: Option<&ScopeSet>,
    lifetime: Duration,
) -> Result<GrantDecision, GrantError> {
    let mut chosen: Option<&str> = None;
    for t in targets {
        match chosen {
            Some(c) if c != *t => return Err(GrantError::InvalidTarget),
            _ => chosen = Some(t),
        }
    }
    let audience = match chosen {
        None => rule.audiences.first(),
        Some(t) => rule.audiences.iter().find(|a| a.as_str() == t),
    }
    .cloned()
    .ok_or(GrantError::InvalidTarget)?;
    let grantable = match resource_scopes {
        Some(r) => rule.scopes.intersection(r),
        None => rule.scopes.clone(),
    };
    let scopes = match requested_scope {
        None => grantable,
        Some(s) => {
            let requested = ScopeSet::parse_delimited(s).map_err(|_| GrantError::InvalidScope)?;
            if requested.is_empty() || !requested.is_subset(&grantable) {
                return Err(GrantError::InvalidScope);
            }
            requested
        }
    };
    if lifetime.is_zero() {
        return Err(GrantError::InvalidRequest("the subject token has expired"));
    }
    Ok(GrantDecision {
        audience,
        scopes,
        lifetime,
    })
}

#[cfg(test)]
#[path = "rule_tests.rs"]
mod tests;
