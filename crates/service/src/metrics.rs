//! What the token service counts for `serve`'s metrics, and the fixed vocabularies of their
//! labels: tokens issued by grant, client-authentication failures by reason class, API key
//! verifications by outcome, and the position of the revocation log the API key cache applied.
//!
//! Every label value is an enum variant's name, so a series is an array slot: counting is one
//! relaxed atomic add, with no lock, lookup or allocation on the token endpoint. This module
//! must never take a label from a request (a client id, a key, a path): the precise reason of a
//! failure belongs in the audit log, not in a label.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use portcullis_core::metrics::{Kind, Text};
use portcullis_core::oauth::GrantType;

/// Why a client (or resource server) failed to authenticate, as a metrics class. The audit
/// log keeps the precise reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Refused by the failure throttle before any credential check.
    Throttled,
    /// No secret or assertion presented.
    NoCredentials,
    /// No such client (or resource server).
    UnknownClient,
    /// A secret that is malformed, wrong or expired.
    BadSecret,
    /// A `private_key_jwt` assertion that does not verify.
    BadAssertion,
    /// A client certificate that does not authenticate the client (RFC 8705: untrusted chain,
    /// another subject, a key not registered, no tenant CA).
    BadCertificate,
    /// A method the client is not registered for.
    MethodMismatch,
    /// The client or its tenant is disabled.
    Disabled,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 8] = [
        Self::Throttled,
        Self::NoCredentials,
        Self::UnknownClient,
        Self::BadSecret,
        Self::BadAssertion,
        Self::BadCertificate,
        Self::MethodMismatch,
        Self::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::NoCredentials => "no_credentials",
            Self::UnknownClient => "unknown_client",
            Self::BadSecret => "bad_secret",
            Self::BadAssertion => "bad_assertion",
            Self::BadCertificate => "bad_certificate",
            Self::MethodMismatch => "method_mismatch",
            Self::Disabled => "disabled",
        }
    }
}

/// The grants whose issuance is counted: those the token endpoint serves.
const GRANTS: [GrantType; GrantType::SERVED.len()] = GrantType::SERVED;

/// The counter of a grant; a grant that is not served shares the first counter (it issues
/// nothing: the token endpoint refuses it before issuance).
fn grant_index(g: GrantType) -> usize {
    GRANTS.iter().position(|s| *s == g).unwrap_or(0)
}

/// Counters of the OAuth endpoints, held in `OAuthState`.
#[derive(Debug, Default)]
pub struct OAuthMetrics {
    issued: [AtomicU64; GRANTS.len()],
    auth_failures: [AtomicU64; AuthFailure::ALL.len()],
}

impl OAuthMetrics {
    pub fn issued(&self, grant: GrantType) {
        self.issued[grant_index(grant)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn auth_failure(&self, class: AuthFailure) {
        self.auth_failures[class as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn write(&self, t: &mut Text) {
        let name = "portcullis_tokens_issued_total";
        t.header(name, "Access tokens issued, by grant.", Kind::Counter);
        for g in GRANTS {
            let n = self.issued[grant_index(g)].load(Ordering::Relaxed);
            t.sample(name, &[("grant", g.as_str())], n);
        }
        let name = "portcullis_client_auth_failures_total";
        t.header(
            name,
            "Failed client and resource-server authentications at the OAuth endpoints, by reason class.",
            Kind::Counter,
        );
        for c in AuthFailure::ALL {
            let n = self.auth_failures[c as usize].load(Ordering::Relaxed);
            t.sample(name, &[("reason", c.as_str())], n);
        }
    }
}

/// The outcome of one API key verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyVerification {
    Valid,
    /// Refused (unknown, revoked, expired, wrong environment, address, audience or scope).
    Rejected,
    /// A good key over its own rate limit.
    RateLimited,
    /// Storage failed; the request was denied.
    Error,
}

impl KeyVerification {
    pub const ALL: [KeyVerification; 4] =
        [Self::Valid, Self::Rejected, Self::RateLimited, Self::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Rejected => "rejected",
            Self::RateLimited => "rate_limited",
            Self::Error => "error",
        }
    }
}

/// Counters of the API key verifier, held by it.
#[derive(Debug, Default)]
pub struct ApiKeyMetrics {
    verifications: [AtomicU64; KeyVerification::ALL.len()],
    /// The revocation log position the key cache has applied (-1: not started).
    applied: AtomicI64Default,
}

#[derive(Debug)]
struct AtomicI64Default(AtomicI64);

impl Default for AtomicI64Default {
    fn default() -> Self {
        Self(AtomicI64::new(-1))
    }
}

impl ApiKeyMetrics {
    pub fn verification(&self, outcome: KeyVerification) {
        self.verifications[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self, outcome: KeyVerification) -> u64 {
        self.verifications[outcome as usize].load(Ordering::Relaxed)
    }

    pub fn set_applied(&self, position: i64) {
        self.applied.0.store(position, Ordering::Relaxed);
    }

    /// The revocation log position applied to the key cache; `None` before the first read.
    pub fn applied(&self) -> Option<i64> {
        Some(self.applied.0.load(Ordering::Relaxed)).filter(|p| *p >= 0)
    }

    pub fn write(&self, t: &mut Text) {
        let name = "portcullis_api_key_verifications_total";
        t.header(name, "API key verifications, by outcome.", Kind::Counter);
        for o in KeyVerification::ALL {
            t.sample(name, &[("outcome", o.as_str())], self.count(o));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_series_from_the_start() {
        let m = OAuthMetrics::default();
        m.auth_failure(AuthFailure::BadSecret);
        m.issued(GrantType::ClientCredentials);
        let mut t = Text::new();
        m.write(&mut t);
        let text = t.finish();
        assert!(text.contains("portcullis_tokens_issued_total{grant=\"client_credentials\"} 1\n"));
        assert!(text.contains("portcullis_client_auth_failures_total{reason=\"bad_secret\"} 1\n"));
        assert!(text.contains("portcullis_client_auth_failures_total{reason=\"disabled\"} 0\n"));
    }

    #[test]
    fn applied_position_is_unknown_until_set() {
        let m = ApiKeyMetrics::default();
        assert_eq!(m.applied(), None);
        m.set_applied(0);
        assert_eq!(m.applied(), Some(0));
    }
}
