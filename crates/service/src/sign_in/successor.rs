//! The successor of a refresh token, derived instead of drawn at random, so the grace window can
//! hand two racing refreshes (two tabs, two nodes) the same successor although storage keeps only
//! digests.
//!
//! Successor = the refresh-token credential (`pcl_rt_<env>_...`, core::credential) whose base62
//! characters are drawn, by the same rejection sampling as a random credential, from the stream
//! HMAC-SHA256(K, msg || counter) for counter = 0, 1, ... where
//! msg = `portcullis refresh successor v1` || family id || 0x00 || generation (8 bytes, big
//! endian) || SHA-256 of the presented token, and K is derived from the KEK
//! (`Keyring::derive_keys("refresh-successor")`). Any node holding the KEK file recomputes it;
//! the plaintext is never stored.
//!
//! Threat model. Reading the database alone (a leaked backup) gives the current token's digest
//! but not K, so the successor cannot be computed: the same as a random successor. Whoever holds
//! the KEK *and* the database can compute successors, but already can unseal the signing keys and
//! mint any token, so nothing is lost. Whoever holds a presented token (a thief) gains nothing
//! over presenting it: a replay within the grace window yields the successor the legitimate
//! holder also received (which is the grace window's purpose and its cost, so the window is short
//! and capped by core), and outside it revokes the family. Each derived token is unique per
//! (family, generation, presented token), and a KEK rotation derives new successors from the new
//! primary key while older keys still recompute the ones derived before it
//! ([`SuccessorKeys::matching`] tries each against the stored digest).
//!
//! This module must never expose K or log a derived token.

use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::secret::{constant_time_eq, Secret};

use crate::kek::Keyring;

const LABEL: &str = "refresh-successor";
const DOMAIN: &[u8] = b"portcullis refresh successor v1";

/// The successor keys derived from each KEK: the primary's, then older KEKs'.
pub struct SuccessorKeys {
    primary: Secret<[u8; 32]>,
    older: Vec<Secret<[u8; 32]>>,
}

impl std::fmt::Debug for SuccessorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuccessorKeys")
            .field("older", &self.older.len())
            .finish_non_exhaustive()
    }
}

impl SuccessorKeys {
    pub fn from_keyring(keyring: &Keyring) -> Self {
        Self {
            primary: keyring.derive_primary_key(LABEL),
            older: keyring.derive_keys(LABEL).into_iter().skip(1).collect(),
        }
    }

    /// The successor new rotations issue (derived with the primary key).
    pub fn successor(
        &self,
        environment: &Environment,
        family_id: &str,
        generation: i64,
        presented_digest: &[u8],
    ) -> Credential {
        derive(
            &self.primary,
            environment,
            family_id,
            generation,
            presented_digest,
        )
    }

    /// The successor whose digest storage recorded, recomputed with whichever key derived it;
    /// `None` if no key does (the KEK it came from is gone).
    pub fn matching(
        &self,
        environment: &Environment,
        family_id: &str,
        generation: i64,
        presented_digest: &[u8],
        stored_digest: &[u8],
    ) -> Option<Credential> {
        std::iter::once(&self.primary)
            .chain(&self.older)
            .find_map(|k| {
                let c = derive(k, environment, family_id, generation, presented_digest);
                constant_time_eq(&c.digest(), stored_digest).then_some(c)
            })
    }
}

fn derive(
    key: &Secret<[u8; 32]>,
    environment: &Environment,
    family_id: &str,
    generation: i64,
    presented_digest: &[u8],
) -> Credential {
    let mut msg = Vec::with_capacity(DOMAIN.len() + family_id.len() + 9 + presented_digest.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(family_id.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&generation.to_be_bytes());
    msg.extend_from_slice(presented_digest);
    let mut stream = HmacStream {
        key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.expose()),
        msg,
        counter: 0,
        block: [0; 32],
        used: 32,
    };
    Credential::generate(
        CredentialKind::RefreshToken,
        environment.clone(),
        &mut stream,
    )
}

/// HMAC-SHA256 in counter mode as a byte stream (a PRF keyed by K: as unpredictable as a CSPRNG
/// to anyone without K).
struct HmacStream {
    key: aws_lc_rs::hmac::Key,
    msg: Vec<u8>,
    counter: u32,
    block: [u8; 32],
    used: usize,
}

impl HmacStream {
    fn next_byte(&mut self) -> u8 {
        if self.used == self.block.len() {
            let mut input = self.msg.clone();
            input.extend_from_slice(&self.counter.to_be_bytes());
            self.counter = self.counter.wrapping_add(1);
            self.block
                .copy_from_slice(aws_lc_rs::hmac::sign(&self.key, &input).as_ref());
            self.used = 0;
        }
        let b = self.block[self.used];
        self.used += 1;
        b
    }
}

impl rand::RngCore for HmacStream {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_be_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_be_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = self.next_byte();
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kek::Kek;

    #[test]
    fn successors_are_stable_per_input_and_differ_otherwise() {
        let ring = Keyring::new(Kek::from_bytes([3; 32]));
        let keys = SuccessorKeys::from_keyring(&ring);
        let env = Environment::live();
        let a = keys.successor(&env, "rtf_1", 1, &[7; 32]);
        assert_eq!(a.kind(), CredentialKind::RefreshToken);
        assert!(a.expose().starts_with("pcl_rt_live_"));
        assert!(
            Credential::parse(a.expose()).is_ok(),
            "checksummed like any credential"
        );
        assert_eq!(
            a.expose(),
            keys.successor(&env, "rtf_1", 1, &[7; 32]).expose()
        );
        for other in [
            keys.successor(&env, "rtf_2", 1, &[7; 32]),
            keys.successor(&env, "rtf_1", 2, &[7; 32]),
            keys.successor(&env, "rtf_1", 1, &[8; 32]),
            SuccessorKeys::from_keyring(&Keyring::new(Kek::from_bytes([4; 32])))
                .successor(&env, "rtf_1", 1, &[7; 32]),
        ] {
            assert_ne!(a.expose(), other.expose());
        }
        assert!(
            !format!("{keys:?}").contains('['),
            "no key material in Debug"
        );
    }

    #[test]
    fn a_successor_derived_before_a_kek_rotation_is_still_recomputed() {
        let mut ring = Keyring::new(Kek::from_bytes([3; 32]));
        let env = Environment::live();
        let before = SuccessorKeys::from_keyring(&ring).successor(&env, "rtf_1", 1, &[7; 32]);
        ring.push_primary(Kek::from_bytes([5; 32]));
        let keys = SuccessorKeys::from_keyring(&ring);
        let again = keys
            .matching(&env, "rtf_1", 1, &[7; 32], &before.digest())
            .expect("found with the older key");
        assert_eq!(again.expose(), before.expose());
        assert!(keys
            .matching(&env, "rtf_1", 1, &[7; 32], &[0; 32])
            .is_none());
    }
}
