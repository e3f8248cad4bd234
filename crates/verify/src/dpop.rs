//! DPoP at the resource (RFC 9449 section 7): `Authorization: DPoP <token>` with a `DPoP` proof
//! whose `ath` is the token's hash and whose `htm`/`htu` are this request's; the proof's `jti`
//! used once within the window (remembered in memory by this verifier); optionally a server
//! nonce, made and checked by jose's one nonce rule (`portcullis_jose::profile::dpop_nonce`, the
//! token service's too) under [`DpopConfig::nonce_secret`], so every instance given the same
//! secret accepts the nonces any of them issued (without one, a random key of this verifier).
//! The proof key then goes to core's one binding rule
//! (`Confirmation::check`) through [`crate::Verifier::verify_dpop_access_token`].
//!
//! This module must never accept a proof twice within its window, never let a DPoP-bound
//! token through as `Bearer` (core's rule refuses it), and never put a reason in a response.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use portcullis_core::secret::Secret;
use portcullis_core::time::Timestamp;
use portcullis_jose::profile::dpop_nonce::Nonces;
use portcullis_jose::profile::dpop_proof;
use portcullis_jose::Alg;

/// How the verifier checks DPoP proofs.
#[derive(Debug, Clone)]
pub struct DpopConfig {
    /// Algorithms a proof may be signed with (`algs` of the `WWW-Authenticate: DPoP` challenge).
    pub algorithms: Vec<Alg>,
    /// How old a proof's `iat` may be (and how long its `jti` is remembered).
    pub max_age: Duration,
    /// How far in the future a proof's `iat` may be.
    pub leeway: Duration,
    /// Require a nonce issued by this verifier ([`crate::Verifier::dpop_nonce`]) in every proof.
    pub require_nonce: bool,
    /// The key nonces are derived from. Give every instance behind one name the same secret (at
    /// least 32 random bytes) and a nonce from one is accepted by all; `None`: a random key of
    /// this verifier (nonces good on this instance only).
    pub nonce_secret: Option<Secret<Vec<u8>>>,
    /// Most proof ids remembered; when full (after dropping expired ones) proofs are refused
    /// rather than remembered loosely.
    pub replay_capacity: usize,
    /// The public origin clients address this service at (`https://api.example`), which a
    /// proof's `htu` must name; `None`: `https://` and the request's `Host` header.
    pub base_url: Option<String>,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            algorithms: dpop_proof::DEFAULT_ALGS.to_vec(),
            max_age: Duration::from_secs(300),
            leeway: Duration::from_secs(60),
            require_nonce: false,
            nonce_secret: None,
            replay_capacity: 1_000_000,
            base_url: None,
        }
    }
}

/// What a request presents with an `Authorization: DPoP` token.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's absolute URI as the client addressed it (`htu`).
    pub uri: &'a str,
    /// The `DPoP` header; `None` when absent (or not exactly one).
    pub proof: Option<&'a str>,
}

/// The verifier's DPoP state: its settings, the proof ids seen, its nonce key.
pub(crate) struct DpopState {
    pub config: DpopConfig,
    /// `algs="..."` of the challenge, built once.
    pub algs: String,
    /// SHA-256 of `jkt || 0 || jti` -> when it may be forgotten (ms).
    seen: Mutex<HashMap<[u8; 32], i64>>,
    nonces: Nonces,
    /// Proof keys read before, so a client's next proof skips reading its JWK again.
    pub keys: dpop_proof::KeyCache,
}

impl std::fmt::Debug for DpopState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why the replay check refused a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    Seen,
    Full,
}

impl DpopState {
    pub fn new(config: DpopConfig) -> Self {
        let nonces = match &config.nonce_secret {
            Some(s) => Nonces::from_secret(s.expose()),
            None => Nonces::random(),
        };
        let algs = config
            .algorithms
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            config,
            algs,
            seen: Mutex::new(HashMap::new()),
            nonces,
            keys: dpop_proof::KeyCache::default(),
        }
    }

    pub fn nonce(&self, now: Timestamp) -> String {
        self.nonces.current(now)
    }

    pub fn nonce_ok(&self, nonce: &str, now: Timestamp) -> bool {
        self.nonces.accepts(nonce, now)
    }

    /// Records a proof id until `until`; refuses one already recorded and not expired.
    pub fn record(
        &self,
        jkt: &str,
        jti: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), Replay> {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        h.update(jkt.as_bytes());
        h.update(&[0]);
        h.update(jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(h.finish().as_ref());
        // A poisoned lock only means another thread panicked mid-insert; the map is still a
        // valid map, so keep using it rather than fail open or panic.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now_ms = now.as_millis();
        if let Some(exp) = seen.get(&key) {
            if *exp > now_ms {
                return Err(Replay::Seen);
            }
        }
        if seen.len() >= self.config.replay_capacity {
            seen.retain(|_, exp| *exp > now_ms);
            if seen.len() >= self.config.replay_capacity {
                return Err(Replay::Full);
            }
        }
        seen.insert(key, until.as_millis());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use portcullis_jose::profile::dpop_nonce::NONCE_STEP;

    use super::*;

    #[test]
    fn a_proof_id_is_used_once_per_key_until_its_window_ends() {
        let s = DpopState::new(DpopConfig {
            replay_capacity: 2,
            ..DpopConfig::default()
        });
        let t = |ms| Timestamp::from_millis(ms);
        assert_eq!(s.record("k1", "j", t(10_000), t(0)), Ok(()));
        assert_eq!(s.record("k1", "j", t(10_000), t(9_999)), Err(Replay::Seen));
        assert_eq!(s.record("k2", "j", t(10_000), t(1)), Ok(()));
        // Full: nothing expired yet, so refused rather than forgotten.
        assert_eq!(s.record("k3", "j", t(10_000), t(2)), Err(Replay::Full));
        // Expired ids make room, and an expired id may be used again.
        assert_eq!(s.record("k1", "j", t(30_000), t(10_000)), Ok(()));
    }

    #[test]
    fn nonces_of_this_verifier_are_accepted_for_two_steps() {
        let s = DpopState::new(DpopConfig::default());
        let other = DpopState::new(DpopConfig::default());
        let t0 = Timestamp::from_secs(1_800_000_000);
        let n = s.nonce(t0);
        assert!(s.nonce_ok(&n, t0));
        assert!(s.nonce_ok(&n, t0.saturating_add(NONCE_STEP)));
        assert!(!s.nonce_ok(&n, t0.saturating_add(NONCE_STEP * 2)));
        assert!(!other.nonce_ok(&n, t0));
        assert_eq!(s.algs, "ES256 ES384 RS256 PS256 EdDSA");
    }

    #[test]
    fn instances_sharing_a_nonce_secret_accept_each_others_nonces() {
        let with = |secret: &[u8]| {
            DpopState::new(DpopConfig {
                nonce_secret: Some(Secret::new(secret.to_vec())),
                ..DpopConfig::default()
            })
        };
        let a = with(&[7; 32]);
        let b = with(&[7; 32]);
        let c = with(&[8; 32]);
        let t0 = Timestamp::from_secs(1_800_000_000);
        let n = a.nonce(t0);
        assert_eq!(n, b.nonce(t0), "the same nonce on every instance");
        assert!(b.nonce_ok(&n, t0));
        assert!(b.nonce_ok(&n, t0.saturating_add(NONCE_STEP)));
        assert!(!b.nonce_ok(&n, t0.saturating_add(NONCE_STEP * 2)));
        assert!(!c.nonce_ok(&n, t0), "another secret");
        let shown = format!("{:?}", a.config);
        assert!(
            shown.contains("[redacted]") && !shown.contains("7, 7"),
            "{shown}"
        );
    }

    /// One nonce rule for the token service and the verifiers: a nonce the token service makes
    /// (its `oauth::dpop::Nonces` is jose's type, re-exported) under a secret is accepted by a
    /// verifier given that secret, and the other way round.
    #[test]
    fn a_nonce_of_the_token_service_is_accepted_by_a_verifier_with_its_secret_and_back() {
        let secret = [9u8; 32];
        let service = Nonces::from_secret(&secret);
        let verifier = DpopState::new(DpopConfig {
            nonce_secret: Some(Secret::new(secret.to_vec())),
            ..DpopConfig::default()
        });
        let t0 = Timestamp::from_secs(1_800_000_000);
        assert!(verifier.nonce_ok(&service.current(t0), t0));
        assert!(service.accepts(&verifier.nonce(t0), t0));
        assert!(verifier.nonce_ok(&service.current(t0), t0.saturating_add(NONCE_STEP)));
        assert!(!Nonces::from_secret(&[1; 32]).accepts(&verifier.nonce(t0), t0));
    }
}
