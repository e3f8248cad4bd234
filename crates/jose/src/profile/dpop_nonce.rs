//! DPoP server nonces (RFC 9449 sections 8 and 9): the one rule for making and accepting them,
//! used by the token service's token endpoint and by the verify library at a resource.
//!
//! A nonce is stateless: the base64url HMAC-SHA256 of a time step ([`NONCE_STEP`]) under a
//! secret key, so every holder of the same secret issues and accepts the same nonces (the token
//! service derives its secret from the KEK; verifiers behind one name share a configured one).
//! A nonce is accepted during its own step and the next, so it lives two to four minutes.
//!
//! This module must never read the clock (`now` is the caller's), never accept a nonce made under
//! another secret or older than the previous step, and never compare nonces in variable time.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::time::Timestamp;

/// Length of a nonce time step; a nonce is accepted during its step and the next.
pub const NONCE_STEP: Duration = Duration::from_secs(120);
const NONCE_STEP_SECS: i64 = NONCE_STEP.as_secs() as i64;

/// Server nonces derived from a secret and a time step. Debug prints no key.
pub struct Nonces {
    key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces([redacted])")
    }
}

impl Nonces {
    /// Nonces every holder of `secret` agrees on.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        }
    }

    /// A key of this process only: its nonces are accepted by this holder alone.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        // aws-lc aborts rather than return a failure from its RNG, so the key is never the
        // all-zero one in practice.
        let _ = aws_lc_rs::rand::fill(&mut secret);
        Self::from_secret(&secret)
    }

    fn step(now: Timestamp) -> i64 {
        now.as_secs().div_euclid(NONCE_STEP_SECS)
    }

    fn at_step(&self, step: i64) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.key, format!("dpop-nonce\n{step}").as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// The nonce to hand out at `now` (43 base64url characters).
    pub fn current(&self, now: Timestamp) -> String {
        self.at_step(Self::step(now))
    }

    /// Whether `nonce` is this step's or the previous one's (compared in constant time).
    pub fn accepts(&self, nonce: &str, now: Timestamp) -> bool {
        let step = Self::step(now);
        [step, step - 1].into_iter().any(|s| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                self.at_step(s).as_bytes(),
                nonce.as_bytes(),
            )
            .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_for_its_step_and_the_next_by_any_holder_of_the_secret() {
        let a = Nonces::from_secret(b"shared secret");
        let b = Nonces::from_secret(b"shared secret");
        let other = Nonces::from_secret(b"another secret");
        let t0 = Timestamp::from_secs(1_800_000_000);
        let n = a.current(t0);
        assert_eq!(n.len(), 43);
        assert_eq!(n, b.current(t0), "the same nonce for every holder");
        assert!(b.accepts(&n, t0), "another holder of the secret");
        assert!(b.accepts(&n, t0.saturating_add(NONCE_STEP)));
        assert!(!b.accepts(&n, t0.saturating_add(NONCE_STEP * 2)), "stale");
        assert!(!other.accepts(&n, t0), "another secret");
        assert!(!a.accepts("", t0));
        assert!(!a.accepts(&n[1..], t0));
        assert!(!a.accepts(&format!("{n}="), t0));
        assert!(!a.accepts(&a.current(t0.saturating_add(NONCE_STEP * 3)), t0));
        let random = Nonces::random();
        assert!(random.accepts(&random.current(t0), t0));
        assert!(!Nonces::random().accepts(&random.current(t0), t0));
        assert_eq!(format!("{a:?}"), "Nonces([redacted])");
    }
}
