//! Signing keys: generation, sealing under the KEK, loading, and the first-start guarantee of
//! exactly one active key.
//!
//! Private keys exist in plaintext only in memory (as PKCS#8 inside [`Secret`]); storage holds
//! AEAD envelopes. A key id (`kid`) is the RFC 7638 JWK thumbprint of the public key.
//!
//! Crash safety on first start: the KEK file is written atomically before any key exists, and a
//! key is one row inserted in one statement, with a unique index allowing one active key. A crash
//! at any point leaves either no key (generated again on restart) or one complete, openable key.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::secret::Secret;
use portcullis_core::signing::{KeyLane, KeyState, SigningAlgorithm};
use portcullis_core::time::Clock;
use portcullis_jose::SigningKeyPair;
use portcullis_store::{Store, StoredSigningKey};
use serde_json::Value;

use crate::kek::{KekError, Keyring};

pub mod jwt;

/// A signing key whose private half is loaded (pending or active).
pub struct SigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub state: KeyState,
    pub public_jwk: Value,
    private_pkcs8: Secret<Vec<u8>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The PKCS#8 DER private key, for the signer.
    pub fn private_pkcs8(&self) -> &[u8] {
        self.private_pkcs8.expose()
    }
}

/// The keys loaded at start.
#[derive(Debug)]
pub struct KeySet {
    pub keys: Vec<SigningKey>,
    /// The installation's algorithm (`[signing] algorithm`): its lane's active key signs.
    pub primary: SigningAlgorithm,
}

impl KeySet {
    /// The key that signs access tokens (and ID tokens by default): the active key of the
    /// primary algorithm's lane.
    pub fn active(&self) -> Option<&SigningKey> {
        self.active_in(KeyLane::of(self.primary))
    }

    /// The active key of `lane`.
    pub fn active_in(&self, lane: KeyLane) -> Option<&SigningKey> {
        self.keys
            .iter()
            .find(|k| k.state == KeyState::Active && lane.holds(k.algorithm))
    }

    /// The RS256 key that signs the ID tokens of clients registered for RS256, when the
    /// primary algorithm is another one.
    pub fn rs256_companion(&self) -> Option<&SigningKey> {
        if KeyLane::of(self.primary) == KeyLane::Rs256 {
            return None;
        }
        self.active_in(KeyLane::Rs256)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {kid} is sealed under KEK {kek_id}, which the configured KEK file does not hold (it holds: {held}); supply the KEK these keys were encrypted with")]
    MissingKek {
        kid: String,
        kek_id: String,
        held: String,
    },
    #[error("signing key {kid} could not be decrypted with KEK {kek_id}: the KEK file does not match the one these keys were encrypted with")]
    WrongKek { kid: String, kek_id: String },
    #[error("signing key {kid} is unusable: {why}")]
    Unusable { kid: String, why: String },
    #[error("key generation failed")]
    Generate,
    #[error(transparent)]
    Kek(#[from] KekError),
    #[error(transparent)]
    Store(#[from] portcullis_store::StoreError),
}

/// Associated data binding an envelope to its row.
pub fn envelope_aad(kid: &str, alg: SigningAlgorithm) -> Vec<u8> {
    format!("portcullis-signing-key:v1:{kid}:{alg}").into_bytes()
}

/// A fresh key pair: PKCS#8 private key and public JWK (with `kid`, `alg`, `use`).
pub fn generate(alg: SigningAlgorithm) -> Result<(Secret<Vec<u8>>, Value), KeyError> {
    let (pkcs8, pair) = SigningKeyPair::generate(alg.into()).map_err(|_| KeyError::Generate)?;
    let (jwk, _kid) = portcullis_jose::sign::public_jwk_for_jwks(&pair);
    Ok((pkcs8, jwk))
}

/// Checks that decrypted PKCS#8 is a usable key of the stated algorithm.
fn check_private_key(alg: SigningAlgorithm, pkcs8: &[u8]) -> Result<(), String> {
    SigningKeyPair::from_pkcs8(alg.into(), pkcs8)
        .map(|_| ())
        .map_err(|_| format!("not a valid {alg} private key"))
}

/// Opens every key that may still sign. Fails if any cannot be opened: starting with a key we
/// cannot use would mean silently generating new ones over data we were meant to protect.
pub async fn load(
    store: &dyn Store,
    keyring: &Keyring,
    primary: SigningAlgorithm,
) -> Result<KeySet, KeyError> {
    let mut keys = Vec::new();
    for row in store.list_signing_keys().await? {
        if !row.state.needs_private_key() {
            continue;
        }
        keys.push(open_row(&row, keyring)?);
    }
    Ok(KeySet { keys, primary })
}

pub fn open_row(row: &StoredSigningKey, keyring: &Keyring) -> Result<SigningKey, KeyError> {
    if !keyring.contains(&row.kek_id) {
        return Err(KeyError::MissingKek {
            kid: row.kid.clone(),
            kek_id: row.kek_id.clone(),
            held: keyring.ids().join(", "),
        });
    }
    let pkcs8 = keyring
        .open(
            &row.kek_id,
            &row.sealed_private_key,
            &envelope_aad(&row.kid, row.algorithm),
        )
        .map_err(|_| KeyError::WrongKek {
            kid: row.kid.clone(),
            kek_id: row.kek_id.clone(),
        })?;
    check_private_key(row.algorithm, pkcs8.expose()).map_err(|why| KeyError::Unusable {
        kid: row.kid.clone(),
        why,
    })?;
    let public_jwk = serde_json::from_str(&row.public_jwk).map_err(|e| KeyError::Unusable {
        kid: row.kid.clone(),
        why: format!("public JWK is not JSON: {e}"),
    })?;
    Ok(SigningKey {
        kid: row.kid.clone(),
        algorithm: row.algorithm,
        state: row.state,
        public_jwk,
        private_pkcs8: pkcs8,
    })
}

/// Loads the keys, generating the first active key of each lane in use (the primary
/// algorithm's and, when that is not RS256, the RS256 companion's) if there is none. Returns the
/// key set and the kids generated.
pub async fn load_or_create_active(
    store: &dyn Store,
    keyring: &Keyring,
    clock: &Arc<dyn Clock>,
    alg: SigningAlgorithm,
) -> Result<(KeySet, Vec<String>), KeyError> {
    let mut set = load(store, keyring, alg).await?;
    let mut created = Vec::new();
    for (lane, lane_alg) in KeyLane::in_use(alg) {
        if set.active_in(lane).is_some() {
            continue;
        }
        let (pkcs8, jwk) = generate(lane_alg)?;
        let kid = jwk["kid"].as_str().unwrap_or_default().to_owned();
        let (kek_id, sealed) = keyring.seal(pkcs8.expose(), &envelope_aad(&kid, lane_alg))?;
        let now = clock.now();
        let row = StoredSigningKey {
            kid: kid.clone(),
            algorithm: lane_alg,
            state: KeyState::Active,
            public_jwk: jwk.to_string(),
            kek_id,
            sealed_private_key: sealed,
            created_at: now,
            activates_at: now,
            retired_at: None,
            publish_until: None,
        };
        let inserted = store.insert_signing_key(&row).await?;
        crate::fault::crash_point("after-signing-key-stored");
        // If another node won the race, use its key.
        set = load(store, keyring, alg).await?;
        if inserted {
            created.push(kid);
        }
    }
    Ok((set, created))
}

/// What rotation needs besides the store: the keyring and the schedule.
#[derive(Debug)]
pub struct Rotation {
    pub keyring: Keyring,
    pub algorithm: SigningAlgorithm,
    pub prepublish: Duration,
    /// 0 = no scheduled rotation.
    pub interval: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kek::Kek;
    use portcullis_core::time::{ManualClock, Timestamp};
    use portcullis_store::{SigningKeyStore, SqliteStore};

    #[test]
    fn generated_keys_are_valid_and_kids_are_thumbprints() {
        for alg in [
            SigningAlgorithm::ES256,
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::RS256,
        ] {
            let (pkcs8, jwk) = generate(alg).expect("generate");
            check_private_key(alg, pkcs8.expose()).expect("usable");
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["use"], "sig");
            assert!(
                jwk.get("d").is_none(),
                "public JWK must not hold private parts"
            );
            let kid = jwk["kid"].as_str().expect("kid");
            assert_eq!(kid.len(), 43, "base64url SHA-256");
            assert_eq!(
                portcullis_jose::thumbprint(&jwk)
                    .map(|t| t.to_string())
                    .as_deref(),
                Ok(kid)
            );
            // The wrong algorithm's parser refuses the key.
            let other = if alg == SigningAlgorithm::ES256 {
                SigningAlgorithm::EdDSA
            } else {
                SigningAlgorithm::ES256
            };
            assert!(check_private_key(other, pkcs8.expose()).is_err());
        }
    }

    #[tokio::test]
    async fn first_start_creates_exactly_one_active_key_and_restart_reuses_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("store");
        let ring = Keyring::new(Kek::generate().expect("kek"));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
        let (set, created) = load_or_create_active(&store, &ring, &clock, SigningAlgorithm::ES256)
            .await
            .expect("first");
        // The ES256 key that signs, and its RS256 companion for ID tokens.
        assert_eq!(created.len(), 2, "{created:?}");
        let kid = created[0].clone();
        let active = set.active().expect("active");
        assert_eq!(active.kid, kid);
        assert_eq!(active.algorithm, SigningAlgorithm::ES256);
        let companion = set.rs256_companion().expect("companion");
        assert_eq!(companion.kid, created[1]);
        assert_eq!(companion.algorithm, SigningAlgorithm::RS256);
        let (again, created) =
            load_or_create_active(&store, &ring, &clock, SigningAlgorithm::EdDSA)
                .await
                .expect("second");
        assert!(created.is_empty());
        assert_eq!(again.active().expect("active").kid, kid);
        assert_eq!(store.list_signing_keys().await.expect("list").len(), 2);

        // With another KEK the keys cannot be opened, and nothing new is generated over them.
        let other = Keyring::new(Kek::generate().expect("kek"));
        let err = load_or_create_active(&store, &other, &clock, SigningAlgorithm::ES256)
            .await
            .expect_err("wrong KEK");
        assert!(matches!(err, KeyError::MissingKek { .. }), "{err}");
        assert_eq!(store.list_signing_keys().await.expect("list").len(), 2);
    }

    #[tokio::test]
    async fn an_rs256_installation_needs_no_companion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("store");
        let ring = Keyring::new(Kek::generate().expect("kek"));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_secs(1_000)));
        let (set, created) = load_or_create_active(&store, &ring, &clock, SigningAlgorithm::RS256)
            .await
            .expect("first");
        assert_eq!(created.len(), 1);
        assert_eq!(
            set.active().expect("active").algorithm,
            SigningAlgorithm::RS256
        );
        assert!(set.rs256_companion().is_none());
    }
}
