//! DPoP at the token endpoint (RFC 9449 sections 5, 8 and 11): checking the proof a client sends
//! in its `DPoP` header, its single use across nodes, and the server nonces.
//!
//! A proof is checked by the JOSE profile (`portcullis_jose::profile::dpop_proof`) against the
//! token endpoint's public URI (the issuer's, never the `Host` header), then its `jti` is
//! recorded in the store for the proof window (`DpopStore`: a replay on any node is refused).
//! Nonces are stateless: an HMAC of a time step under a key derived from the KEK
//! (`Keyring::derive_primary_key("oauth/dpop-nonce")`), so every node holding the KEK issues and
//! accepts the same nonces; the current and the previous step are accepted.
//!
//! This module must never bind a token to a key whose proof it did not verify, never accept a
//! proof twice within its window, and never tell a client more than `invalid_dpop_proof` or
//! `use_dpop_nonce` (the precise reason goes to the audit log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::confirmation::Thumbprint;
use portcullis_core::time::Timestamp;
use portcullis_jose::profile::dpop_proof::{self, ProofError, Rules};
use portcullis_jose::Alg;

use super::error::{OAuthError, Refusal};
use super::OAuthService;
use crate::kek::Keyring;

/// The names of the algorithms DPoP proofs may use, as discovery lists them
/// (`dpop_signing_alg_values_supported`): the JOSE profile's default set.
pub const ALGORITHM_NAMES: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// Length of a nonce time step; a nonce is accepted during its step and the next.
pub const NONCE_STEP: Duration = Duration::from_secs(120);
/// Proofs recorded between two prunes of expired proof ids.
const PRUNE_EVERY: u64 = 512;

/// The `DPoP` header(s) of a request, as sent.
#[derive(Debug, Clone, Default)]
pub enum Presented {
    /// No `DPoP` header.
    #[default]
    None,
    One(String),
    /// More than one `DPoP` header, or one that is not visible ASCII (refused).
    Invalid,
}

/// What the token endpoint requires of proofs (`[oauth]` `dpop_*` settings).
#[derive(Debug, Clone)]
pub struct DpopSettings {
    pub algorithms: Vec<Alg>,
    /// How old a proof's `iat` may be (and how long its `jti` is remembered).
    pub max_age: Duration,
    /// How far in the future a proof's `iat` may be.
    pub leeway: Duration,
    /// Whether every proof must carry a current server nonce.
    pub require_nonce: bool,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            algorithms: dpop_proof::DEFAULT_ALGS.to_vec(),
            max_age: Duration::from_secs(300),
            leeway: Duration::from_secs(60),
            require_nonce: false,
        }
    }
}

/// Server nonces derived from a secret and a time step.
pub struct Nonces {
    key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces([redacted])")
    }
}

impl Nonces {
    /// Nonces every node holding the KEK agrees on.
    pub fn from_keyring(keyring: &Keyring) -> Self {
        Self::from_secret(keyring.derive_primary_key("oauth/dpop-nonce").expose())
    }

    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        }
    }

    /// A key of this process only (tests, and a service without a KEK): nonces are then
    /// accepted by this node alone.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        // A failing system RNG leaves the key all zeroes only if fill fails; aws-lc aborts
        // rather than fail, so this cannot produce a guessable key in practice.
        let _ = aws_lc_rs::rand::fill(&mut secret);
        Self::from_secret(&secret)
    }

    fn step(now: Timestamp) -> i64 {
        now.as_secs()
            .div_euclid(i64::try_from(NONCE_STEP.as_secs()).unwrap_or(120))
    }

    fn at_step(&self, step: i64) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.key, format!("dpop-nonce\n{step}").as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// The nonce to hand out at `now`.
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

/// The token endpoint's DPoP state.
#[derive(Debug)]
pub struct DpopState {
    pub settings: DpopSettings,
    pub nonces: Nonces,
    recorded: AtomicU64,
    /// Proof keys read before (a client's next proof skips reading its JWK again).
    keys: dpop_proof::KeyCache,
}

impl DpopState {
    pub fn new(settings: DpopSettings, nonces: Nonces) -> Self {
        Self {
            settings,
            nonces,
            recorded: AtomicU64::new(0),
            keys: dpop_proof::KeyCache::default(),
        }
    }

    /// The algorithm names for `dpop_signing_alg_values_supported`.
    pub fn algorithm_names(&self) -> Vec<&'static str> {
        self.settings
            .algorithms
            .iter()
            .map(|a| a.as_str())
            .collect()
    }
}

/// An `invalid_dpop_proof` refusal with its audit reason.
fn invalid(reason: &'static str) -> OAuthError {
    OAuthError::refuse(Refusal::DpopProof(reason))
}

/// A `use_dpop_nonce` refusal carrying the current nonce (RFC 9449 section 8).
fn use_nonce(svc: &OAuthService, reason: &'static str, now: Timestamp) -> OAuthError {
    let mut e = OAuthError::refuse(Refusal::DpopNonce(reason));
    e.dpop_nonce = Some(svc.oauth.dpop.nonces.current(now));
    e
}

/// The refusal of a token request without a proof from a client that must send one
/// (`require_dpop`): `use_dpop_nonce` with a fresh nonce when nonces are required (the client's
/// next attempt can then succeed), else `invalid_dpop_proof`.
pub fn proof_required(svc: &OAuthService) -> OAuthError {
    if svc.oauth.dpop.settings.require_nonce {
        use_nonce(svc, "dpop_proof_required", svc.clock.now())
    } else {
        invalid("dpop_proof_required")
    }
}

/// Checks the proof of a token request, if any, and records it: `Ok(Some(jkt))` binds what is
/// issued to that key, `Ok(None)` means no proof was sent.
pub async fn check_token_request(
    svc: &OAuthService,
    presented: &Presented,
) -> Result<Option<Thumbprint>, OAuthError> {
    let proof = match presented {
        Presented::None => return Ok(None),
        Presented::Invalid => return Err(invalid("dpop_header_invalid")),
        Presented::One(p) => p,
    };
    let state = &svc.oauth.dpop;
    let now = svc.clock.now();
    let uri = svc.oauth.token_endpoint();
    let rules = Rules {
        method: "POST",
        uri: &uri,
        allowed: &state.settings.algorithms,
        max_age: state.settings.max_age,
        leeway: state.settings.leeway,
        access_token: None,
        require_nonce: state.settings.require_nonce,
    };
    let checked =
        dpop_proof::verify_cached(proof, &rules, now, &state.keys).map_err(|e| match e {
            ProofError::NonceMissing => use_nonce(svc, e.as_str(), now),
            other => invalid(other.as_str()),
        })?;
    if state.settings.require_nonce {
        let fresh = checked
            .nonce
            .as_deref()
            .is_some_and(|n| state.nonces.accepts(n, now));
        if !fresh {
            return Err(use_nonce(svc, "dpop_nonce_stale", now));
        }
    }
    let first = svc
        .store
        .record_dpop_jti(
            checked.jkt.as_str(),
            &checked.jti,
            checked.replay_until(&rules),
            now,
        )
        .await?;
    if !first {
        return Err(invalid("dpop_jti_replayed"));
    }
    if state.recorded.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
        if let Err(e) = svc.store.prune_dpop_jtis(now).await {
            tracing::warn!(error = %e, "pruning expired DPoP proof ids failed");
        }
    }
    Ok(Some(checked.jkt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_the_algorithms_proofs_are_checked_with() {
        let names: Vec<&str> = dpop_proof::DEFAULT_ALGS
            .iter()
            .map(|a| a.as_str())
            .collect();
        assert_eq!(names, ALGORITHM_NAMES);
        assert_eq!(DpopSettings::default().algorithms, dpop_proof::DEFAULT_ALGS);
    }

    #[test]
    fn a_nonce_is_accepted_for_its_step_and_the_next_by_any_holder_of_the_secret() {
        let a = Nonces::from_secret(b"kek-derived");
        let b = Nonces::from_secret(b"kek-derived");
        let other = Nonces::from_secret(b"another-kek");
        let t0 = Timestamp::from_secs(1_800_000_000);
        let n = a.current(t0);
        assert_eq!(n.len(), 43);
        assert!(b.accepts(&n, t0), "another node with the same KEK");
        assert!(b.accepts(&n, t0.saturating_add(NONCE_STEP)));
        assert!(!b.accepts(&n, t0.saturating_add(NONCE_STEP * 2)), "stale");
        assert!(!other.accepts(&n, t0), "another installation");
        assert!(!a.accepts("", t0));
        assert!(!a.accepts(&n[1..], t0));
        assert!(!a.accepts(&a.current(t0.saturating_add(NONCE_STEP * 3)), t0));
    }
}
