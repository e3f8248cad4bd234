//! DPoP at the token endpoint and the pushed authorization request endpoint (RFC 9449 sections
//! 5, 8, 10.1 and 11): checking the proof a client sends in its `DPoP` header, its single use
//! across nodes, and the server nonces.
//!
//! A proof is checked by the JOSE profile (`portcullis_jose::profile::dpop_proof`) against the
//! endpoint's public URI (the issuer's, never the `Host` header), then its `jti` is
//! recorded in the store for the proof window (`DpopStore`: a replay on any node is refused).
//! Nonces are jose's one rule (`portcullis_jose::profile::dpop_nonce`, shared with the verify
//! library) under a key derived from the KEK (`Keyring::derive_primary_key("oauth/dpop-nonce")`),
//! so every node holding the KEK issues and accepts the same nonces; the current and the
//! previous step are accepted.
//!
//! This module must never bind a token to a key whose proof it did not verify, never accept a
//! proof twice within its window, and never tell a client more than `invalid_dpop_proof` or
//! `use_dpop_nonce` (the precise reason goes to the audit log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use portcullis_core::confirmation::Thumbprint;
use portcullis_core::time::Timestamp;
pub use portcullis_jose::profile::dpop_nonce::{Nonces, NONCE_STEP};
use portcullis_jose::profile::dpop_proof::{self, ProofError, Rules};
use portcullis_jose::Alg;

use super::error::{OAuthError, Refusal};
use super::OAuthService;
use crate::kek::Keyring;

/// The names of the algorithms DPoP proofs may use, as discovery lists them
/// (`dpop_signing_alg_values_supported`): the JOSE profile's default set.
pub const ALGORITHM_NAMES: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

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

/// The token service's nonces: every node holding the KEK agrees on them.
pub fn nonces_from_keyring(keyring: &Keyring) -> Nonces {
    Nonces::from_secret(keyring.derive_primary_key("oauth/dpop-nonce").expose())
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
    check_request(svc, presented, svc.oauth.token_endpoint()).await
}

/// Checks the proof sent with a pushed authorization request (RFC 9449 section 10.1), if any,
/// and records it: `Ok(Some(jkt))` binds the code the request leads to to that key.
pub async fn check_pushed_request(
    svc: &OAuthService,
    presented: &Presented,
) -> Result<Option<Thumbprint>, OAuthError> {
    check_request(svc, presented, svc.oauth.par_endpoint()).await
}

/// One proof check for a `POST` to `uri` (the endpoint's public URI, never the `Host` header).
async fn check_request(
    svc: &OAuthService,
    presented: &Presented,
    uri: &str,
) -> Result<Option<Thumbprint>, OAuthError> {
    let proof = match presented {
        Presented::None => return Ok(None),
        Presented::Invalid => return Err(invalid("dpop_header_invalid")),
        Presented::One(p) => p,
    };
    let state = &svc.oauth.dpop;
    let now = svc.clock.now();
    let rules = Rules {
        method: "POST",
        uri,
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

    /// Every node of one installation (one KEK) issues and accepts the same nonces; another
    /// installation's are refused. (The step rules are jose's, tested there.)
    #[test]
    fn nodes_holding_one_kek_accept_each_others_nonces() {
        let kek = crate::kek::Kek::from_bytes([7; 32]);
        let a = nonces_from_keyring(&Keyring::new(kek.clone()));
        let b = nonces_from_keyring(&Keyring::new(kek));
        let other = nonces_from_keyring(&Keyring::new(crate::kek::Kek::from_bytes([8; 32])));
        let t0 = Timestamp::from_secs(1_800_000_000);
        assert!(b.accepts(&a.current(t0), t0));
        assert!(!other.accepts(&a.current(t0), t0));
    }
}
