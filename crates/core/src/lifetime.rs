//! A tenant's credential lifetime policy: how old a client secret may get, whether every client
//! secret must expire, and what happens to credentials created before the policy (nothing, a
//! finding in the hygiene report, or disabled). The API key half (maximum lifetime, required
//! expiry) is the tenant's API key [`ExpiryPolicy`], judged here with the same words so that one
//! report covers both.
//!
//! Every decision is a pure function of the policy, the credential's dates and `now`: the
//! service calls [`LifetimePolicy::client_secret_expiry`] before it creates or rotates a secret
//! and [`api_key_violation`] / [`LifetimePolicy::client_secret_violation`] over what is stored.
//! This module must never do I/O or read the clock, and an error it returns must name the
//! policy setting that refused, never a secret.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api_key::ExpiryPolicy;
use crate::time::Timestamp;

/// What the policy does to credentials that existed before it (or that were created under a
/// looser one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExistingMode {
    /// Only new credentials are checked.
    #[default]
    Ignore,
    /// Non-compliant credentials are listed (hygiene report, `enforce`), nothing changes.
    Report,
    /// Non-compliant API keys are disabled by `enforce` (audited); client secrets are reported.
    Disable,
}

impl ExistingMode {
    pub const ALL: [Self; 3] = [Self::Ignore, Self::Report, Self::Disable];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ignore => "ignore",
            Self::Report => "report",
            Self::Disable => "disable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// The client-secret half of a tenant's lifetime policy. The default asks for nothing, which
/// is what every tenant had before policies existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LifetimePolicy {
    /// Longest a client secret may live (from creation to expiry); `None`: no maximum.
    pub client_secret_max_age_secs: Option<u64>,
    /// Whether every client secret must have an expiry.
    pub client_secret_expiry_required: bool,
    pub existing: ExistingMode,
}

/// Why a credential is refused or reported. The messages name the setting, so an operator
/// knows which policy to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    #[error("the tenant's lifetime policy client_secret_expiry_required requires the secret to expire (set secret_expires_in_secs)")]
    SecretExpiryRequired,
    #[error("the tenant's lifetime policy client_secret_max_age allows at most {0} seconds")]
    SecretTooOld(u64),
    #[error("a secret lifetime must be at least one second")]
    TooShort,
    #[error("the lifetime policy is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// How a stored credential breaks the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// It never expires but the policy requires an expiry.
    NoExpiry,
    /// Its lifetime (creation to expiry) is longer than the maximum.
    LifetimeTooLong,
    /// It has no expiry and is already older than the maximum.
    OlderThanMaximum,
}

impl Violation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoExpiry => "no_expiry",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::OlderThanMaximum => "older_than_maximum",
        }
    }
}

fn millis(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Judges one credential's dates against a maximum lifetime and an expiry requirement.
fn judge(
    max_secs: Option<u64>,
    expiry_required: bool,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Option<Violation> {
    match (expires_at, max_secs) {
        (None, Some(max))
            if now.as_millis().saturating_sub(created_at.as_millis()) > millis(max) =>
        {
            Some(Violation::OlderThanMaximum)
        }
        (None, _) if expiry_required || max_secs.is_some() => Some(Violation::NoExpiry),
        (None, _) => None,
        (Some(exp), Some(max))
            if exp.as_millis().saturating_sub(created_at.as_millis()) > millis(max) =>
        {
            Some(Violation::LifetimeTooLong)
        }
        (Some(_), _) => None,
    }
}

/// How an API key with these dates breaks its tenant's API key policy, if it does: the API key
/// half of the lifetime policy (`max_ttl` is the maximum lifetime; `allow_never = false` is the
/// required expiry).
pub fn api_key_violation(
    policy: &ExpiryPolicy,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Option<Violation> {
    judge(
        policy.max_ttl_secs,
        !policy.allow_never,
        created_at,
        expires_at,
        now,
    )
}

impl LifetimePolicy {
    pub fn validate(self) -> Result<Self, LifetimeError> {
        if self.client_secret_max_age_secs == Some(0) {
            return Err(LifetimeError::Inconsistent(
                "client_secret_max_age must be at least one second",
            ));
        }
        Ok(self)
    }

    /// The expiry a new client secret created at `now` gets: the one asked for, or (none asked
    /// for) the policy's maximum age, or none when the policy asks for none.
    pub fn client_secret_expiry(
        &self,
        requested: Option<Duration>,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, LifetimeError> {
        let ttl = requested.or(self.client_secret_max_age_secs.map(Duration::from_secs));
        match ttl {
            None if self.client_secret_expiry_required => Err(LifetimeError::SecretExpiryRequired),
            None => Ok(None),
            Some(d) if d < Duration::from_secs(1) => Err(LifetimeError::TooShort),
            Some(d) => match self.client_secret_max_age_secs {
                Some(max) if d > Duration::from_secs(max) => Err(LifetimeError::SecretTooOld(max)),
                _ => Ok(Some(now.saturating_add(d))),
            },
        }
    }

    /// How a stored client secret breaks this policy, if it does.
    pub fn client_secret_violation(
        &self,
        created_at: Timestamp,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Option<Violation> {
        judge(
            self.client_secret_max_age_secs,
            self.client_secret_expiry_required,
            created_at,
            expires_at,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn t(days: i64) -> Timestamp {
        Timestamp::from_secs(1_000_000 + days * 86_400)
    }

    #[test]
    fn the_default_policy_asks_for_nothing() {
        let p = LifetimePolicy::default();
        assert_eq!(p.client_secret_expiry(None, t(0)), Ok(None));
        assert_eq!(p.client_secret_violation(t(0), None, t(5000)), None);
    }

    #[test]
    fn a_secret_defaults_to_the_maximum_age_and_may_not_exceed_it() {
        let p = LifetimePolicy {
            client_secret_max_age_secs: Some(90 * DAY),
            ..LifetimePolicy::default()
        };
        assert_eq!(p.client_secret_expiry(None, t(0)), Ok(Some(t(90))));
        assert_eq!(
            p.client_secret_expiry(Some(Duration::from_secs(30 * DAY)), t(0)),
            Ok(Some(t(30)))
        );
        let err = p
            .client_secret_expiry(Some(Duration::from_secs(91 * DAY)), t(0))
            .expect_err("refused");
        assert_eq!(err, LifetimeError::SecretTooOld(90 * DAY));
        assert!(err.to_string().contains("client_secret_max_age"));
        assert_eq!(
            p.client_secret_expiry(Some(Duration::ZERO), t(0)),
            Err(LifetimeError::TooShort)
        );
    }

    #[test]
    fn required_expiry_refuses_a_secret_without_one() {
        let p = LifetimePolicy {
            client_secret_expiry_required: true,
            ..LifetimePolicy::default()
        };
        let err = p.client_secret_expiry(None, t(0)).expect_err("refused");
        assert!(err.to_string().contains("client_secret_expiry_required"));
        assert_eq!(
            p.client_secret_expiry(Some(Duration::from_secs(DAY)), t(0)),
            Ok(Some(t(1)))
        );
    }

    #[test]
    fn stored_secrets_are_judged_by_their_dates() {
        let p = LifetimePolicy {
            client_secret_max_age_secs: Some(90 * DAY),
            ..LifetimePolicy::default()
        };
        // Compliant: expires within the maximum.
        assert_eq!(p.client_secret_violation(t(0), Some(t(90)), t(10)), None);
        assert_eq!(
            p.client_secret_violation(t(0), Some(t(91)), t(10)),
            Some(Violation::LifetimeTooLong)
        );
        assert_eq!(
            p.client_secret_violation(t(0), None, t(10)),
            Some(Violation::NoExpiry)
        );
        assert_eq!(
            p.client_secret_violation(t(0), None, t(91)),
            Some(Violation::OlderThanMaximum)
        );
    }

    #[test]
    fn api_keys_are_judged_by_the_api_key_policy() {
        let strict = ExpiryPolicy::default();
        assert_eq!(api_key_violation(&strict, t(0), Some(t(90)), t(1)), None);
        assert_eq!(
            api_key_violation(&strict, t(0), None, t(1)),
            Some(Violation::NoExpiry)
        );
        assert_eq!(
            api_key_violation(&strict, t(0), Some(t(400)), t(1)),
            Some(Violation::LifetimeTooLong)
        );
        let open = ExpiryPolicy {
            default_ttl_secs: None,
            max_ttl_secs: None,
            allow_never: true,
        };
        assert_eq!(api_key_violation(&open, t(0), None, t(5000)), None);
    }

    #[test]
    fn modes_round_trip_and_zero_is_refused() {
        for m in ExistingMode::ALL {
            assert_eq!(ExistingMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(ExistingMode::parse("delete"), None);
        assert!(LifetimePolicy {
            client_secret_max_age_secs: Some(0),
            ..LifetimePolicy::default()
        }
        .validate()
        .is_err());
    }
}
