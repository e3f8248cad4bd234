//! Signing and checking this server's access tokens (RFC 9068), on `portcullis-jose`.
//!
//! Signing: [`Signer`] holds the active key parsed once and its protected header
//! (`{"alg","kid","typ":"at+jwt"}`) encoded once, built when a key becomes active (at start and
//! on rotation), never per token. Checking (introspection, revocation): jose's access-token
//! profile over the published keys, parsed once per fill of the directory's signing-key cache
//! ([`PublishedKeys`]), with the algorithm pinned to the key named by `kid`, no key-carrying
//! header ever read, `typ: at+jwt`, our issuer, a current validity window and a lifetime within
//! the configured maximum. This module adds what only the issuer knows: the key must still be
//! published at `now`, and a token we issued carries one audience, `nbf` and a tenant.
//!
//! This module must never parse or verify a JWS itself (that is jose's), and never accept a
//! token signed by a key that is revoked or no longer published.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::oauth::{AccessTokenClaims, TENANT_CLAIM};
use portcullis_core::signing::{KeyState, SigningAlgorithm};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_core::user_token::IdTokenClaims;
use portcullis_jose::profile::{access_token, id_token, logout_token};
use portcullis_jose::{Alg, JoseError, KeySet as JoseKeySet, SigningKeyPair};
use portcullis_store::StoredSigningKey;

use crate::keys::SigningKey;

pub use portcullis_jose::SignError;

/// Clock skew tolerated when checking `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(30);
/// Longest token looked at.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The key that signs new access tokens and ID tokens, ready to use: jose signers with the
/// access-token header (`typ: at+jwt`) and the ID-token header (`typ: JWT`) of this key, built
/// once per key. Both are swapped together at rotation, so an ID token is by default signed by
/// the key that signs the access token beside it. When that key is not RS256, the RS256
/// companion key (`keys::KeySet::rs256_companion`) signs the ID tokens of clients registered
/// with `id_token_signed_response_alg = RS256`, and nothing else.
pub struct Signer {
    inner: portcullis_jose::Signer,
    /// The same key under the logout-token header (`typ: logout+jwt`).
    logout: portcullis_jose::Signer,
    id_token: portcullis_jose::Signer,
    /// The same key under the audit-checkpoint header (`typ: audit-checkpoint+jwt`).
    checkpoint: portcullis_jose::Signer,
    kid: String,
    alg: Alg,
    /// The RS256 companion's ID-token signer and its `kid`.
    rs256_id_token: Option<(portcullis_jose::Signer, String)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(key: &SigningKey) -> Result<Self, SignError> {
        let alg: Alg = key.algorithm.into();
        let pair = SigningKeyPair::from_pkcs8(alg, key.private_pkcs8())?;
        let id_pair = SigningKeyPair::from_pkcs8(alg, key.private_pkcs8())?;
        let logout_pair = SigningKeyPair::from_pkcs8(alg, key.private_pkcs8())?;
        let checkpoint_pair = SigningKeyPair::from_pkcs8(alg, key.private_pkcs8())?;
        Ok(Self {
            checkpoint: portcullis_jose::profile::audit_checkpoint::signer(
                checkpoint_pair,
                &key.kid,
            ),
            inner: access_token::signer(pair, &key.kid),
            id_token: id_token::signer(id_pair, &key.kid),
            logout: logout_token::signer(logout_pair, &key.kid),
            kid: key.kid.clone(),
            alg,
            rs256_id_token: None,
        })
    }

    /// Adds the RS256 companion key for ID tokens (ignored unless it is an RS256 key and this
    /// signer's own key is not).
    pub fn with_rs256_companion(mut self, key: &SigningKey) -> Result<Self, SignError> {
        if key.algorithm != SigningAlgorithm::RS256 || self.alg == Alg::RS256 {
            return Ok(self);
        }
        let pair = SigningKeyPair::from_pkcs8(Alg::RS256, key.private_pkcs8())?;
        self.rs256_id_token = Some((id_token::signer(pair, &key.kid), key.kid.clone()));
        Ok(self)
    }

    /// The signer for `keys`: the primary lane's active key, with the RS256 companion if there
    /// is one. `None` when no key is active.
    pub fn for_keys(keys: &crate::keys::KeySet) -> Result<Option<Self>, SignError> {
        let Some(active) = keys.active() else {
            return Ok(None);
        };
        let mut signer = Self::new(active)?;
        if let Some(companion) = keys.rs256_companion() {
            signer = signer.with_rs256_companion(companion)?;
        }
        Ok(Some(signer))
    }

    /// The algorithm this signer signs with (access tokens, and ID tokens by default).
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The `kid` of the RS256 companion, if one is loaded.
    pub fn rs256_companion_kid(&self) -> Option<&str> {
        self.rs256_id_token.as_ref().map(|(_, kid)| kid.as_str())
    }

    /// Every algorithm ID tokens can be signed with (discovery's
    /// `id_token_signing_alg_values_supported`): this signer's own, then RS256.
    pub fn id_token_algs(&self) -> Vec<&'static str> {
        let mut algs = vec![self.alg.as_str()];
        if self.rs256_id_token.is_some() {
            algs.push(Alg::RS256.as_str());
        }
        algs
    }

    /// Whether ID tokens can be signed with `alg` (what a client may register).
    pub fn signs_id_tokens_with(&self, alg: SigningAlgorithm) -> bool {
        let alg: Alg = alg.into();
        alg == self.alg || (alg == Alg::RS256 && self.rs256_id_token.is_some())
    }

    /// Signs an OpenID Connect ID token (header `typ: JWT`) with the client's registered
    /// algorithm (`None`: this signer's own). An algorithm no loaded key has is an error, never
    /// a silent fallback the relying party would refuse.
    pub fn sign_id_token(
        &self,
        claims: &IdTokenClaims,
        alg: Option<SigningAlgorithm>,
    ) -> Result<String, SignError> {
        match alg.map(Alg::from) {
            None => self.id_token.sign(claims),
            Some(a) if a == self.alg => self.id_token.sign(claims),
            Some(Alg::RS256) => match &self.rs256_id_token {
                Some((signer, _)) => signer.sign(claims),
                None => Err(SignError::NotASigningAlgorithm(Alg::RS256)),
            },
            Some(a) => Err(SignError::NotASigningAlgorithm(a)),
        }
    }

    /// The `kid` of the key this signer signs with.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, SignError> {
        self.inner.sign(claims)
    }

    /// An audit chain checkpoint (`crate::audit_chain`).
    pub fn sign_checkpoint(
        &self,
        claims: &portcullis_jose::profile::audit_checkpoint::Claims,
    ) -> Result<String, SignError> {
        self.checkpoint.sign(claims)
    }

    /// A back-channel logout token (`crate::logout`).
    pub fn sign_logout(&self, claims: &logout_token::Claims) -> Result<String, SignError> {
        self.logout.sign(claims)
    }
}

/// Whether a stored key belongs in JWKS at `now`: pending and active keys, and retired keys
/// until every token they signed has expired. Revoked keys never.
pub fn published(key: &StoredSigningKey, now: Timestamp) -> bool {
    match key.state {
        KeyState::Pending | KeyState::Active => true,
        KeyState::Retired => key.publish_until.is_none_or(|t| t > now),
        KeyState::Revoked => false,
    }
}

/// The signing keys published when read: their public keys parsed once for verification, and
/// when each one's publication ends (`kid -> publish_until`, `None` for a pending or active
/// key), built once per read so a token's check is one lookup, not a scan of every key row.
/// Only published keys are kept: retired keys pile up with every rotation, and a JWKS is read
/// to a bounded number of keys. A key unpublished when read never becomes published again; one
/// that stops being published while cached is refused per token.
#[derive(Debug, Default)]
pub struct PublishedKeys {
    publish_until: HashMap<String, Option<Timestamp>>,
    set: JoseKeySet,
}

impl PublishedKeys {
    /// The keys as stored, read at `now`.
    pub fn new(rows: Arc<[StoredSigningKey]>, now: Timestamp) -> Self {
        let published_rows = || rows.iter().filter(|k| published(k, now));
        let publish_until = published_rows()
            .map(|k| {
                let until = match k.state {
                    KeyState::Retired => k.publish_until,
                    _ => None,
                };
                (k.kid.clone(), until)
            })
            .collect();
        let jwks: Vec<serde_json::Value> = published_rows()
            .filter_map(|k| match serde_json::from_str(&k.public_jwk) {
                Ok(jwk) => Some(jwk),
                Err(e) => {
                    tracing::error!(kid = %k.kid, error = %e, "stored public JWK is not JSON; its tokens are refused");
                    None
                }
            })
            .collect();
        // No usable key (none stored yet): every token is refused as signed by an unknown key.
        let set =
            portcullis_jose::parse_jwk_set(&serde_json::json!({ "keys": jwks }), &Alg::SIGNING)
                .unwrap_or_default();
        Self { publish_until, set }
    }

    /// Whether the key `kid` is still published at `now` (and was when these keys were read).
    fn vouches(&self, kid: &str, now: Timestamp) -> bool {
        match self.publish_until.get(kid) {
            Some(until) => until.is_none_or(|t| t > now),
            None => false,
        }
    }
}

/// A token that passed every check, with the key that signed it and its tenant, parsed once
/// (by jose, from the tenant claim).
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub claims: AccessTokenClaims,
    pub kid: String,
    pub tenant: TenantId,
    /// The sign-in session a user token was issued under: what a session revocation names.
    pub sid: Option<String>,
    /// The refresh-token family a user token was minted from: what a family revocation names.
    pub family: Option<String>,
}

/// Why a token is not valid. Internal: callers answer every one the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Malformed,
    WrongType,
    UnknownKey,
    BadSignature,
    WrongIssuer,
    NotCurrent,
    /// `exp - iat` beyond the hard maximum: minted elsewhere (a stolen key), or before the
    /// maximum was lowered. Verifiers apply the same cap.
    LifetimeTooLong,
    BadTenant,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "token_malformed",
            Self::WrongType => "token_wrong_typ",
            Self::UnknownKey => "token_unknown_key",
            Self::BadSignature => "token_bad_signature",
            Self::WrongIssuer => "token_wrong_issuer",
            Self::NotCurrent => "token_not_current",
            Self::LifetimeTooLong => "token_lifetime_too_long",
            Self::BadTenant => "token_bad_tenant",
        }
    }
}

impl From<JoseError> for Invalid {
    fn from(e: JoseError) -> Self {
        match e {
            JoseError::WrongTyp => Self::WrongType,
            JoseError::UnknownKid => Self::UnknownKey,
            JoseError::AlgNotAllowed | JoseError::AlgKeyMismatch | JoseError::BadSignature => {
                Self::BadSignature
            }
            JoseError::IssuerMismatch => Self::WrongIssuer,
            JoseError::Expired | JoseError::NotYetValid | JoseError::IssuedInFuture => {
                Self::NotCurrent
            }
            JoseError::LifetimeTooLong => Self::LifetimeTooLong,
            JoseError::InvalidTenantClaim => Self::BadTenant,
            // Structure, header, missing or mistyped claims, and reasons of other profiles.
            _ => Self::Malformed,
        }
    }
}

/// Checks an access token against the published keys at `now` (the injected clock). Tokens
/// living longer than `max_lifetime` are refused.
pub fn verify(
    token: &str,
    keys: &PublishedKeys,
    issuer: &str,
    max_lifetime: Duration,
    now: Timestamp,
) -> Result<VerifiedToken, Invalid> {
    let rules = access_token::Rules {
        // The issuer answers for every audience; the caller checks a resource server's own.
        audience: None,
        leeway_s: i64::try_from(LEEWAY.as_secs()).unwrap_or(i64::MAX),
        max_lifetime_s: i64::try_from(max_lifetime.as_secs()).unwrap_or(i64::MAX),
        tenant_claim: TENANT_CLAIM,
        roles_claim: "roles",
    };
    let v = access_token::verify(
        token,
        MAX_TOKEN_LEN,
        issuer,
        &Alg::SIGNING,
        &keys.set,
        &rules,
        now,
    )?;
    // Only a key still published at `now` vouches for a token (a retired key leaves JWKS once
    // every token it signed has expired).
    let kid = v.kid.ok_or(Invalid::UnknownKey)?;
    if !keys.vouches(&kid, now) {
        return Err(Invalid::UnknownKey);
    }
    // What every token this server issues carries (RFC 9068 does not require them all).
    let (Ok([aud]), Some(nbf)) = (<[String; 1]>::try_from(v.aud), v.nbf) else {
        return Err(Invalid::Malformed);
    };
    let tenant = v.tenant.ok_or(Invalid::BadTenant)?;
    let scope = (!v.scopes.is_empty()).then(|| v.scopes.join(" "));
    let sid = v.sid;
    let family = v.family;
    Ok(VerifiedToken {
        claims: AccessTokenClaims {
            iss: v.iss,
            sub: v.sub,
            aud,
            exp: v.exp,
            iat: v.iat,
            nbf,
            jti: v.jti,
            client_id: v.client_id,
            scope,
            tenant: tenant.as_str().to_owned(),
            auth_time: None,
            acr: None,
            amr: Vec::new(),
            sid: sid.clone(),
            family: family.clone(),
            cnf: (!v.cnf.is_unbound()).then_some(v.cnf),
            workload: None,
            act: v.act,
            exchanged_from: v.exchanged_from,
            may_act: v.may_act,
        },
        kid,
        tenant,
        sid,
        family,
    })
}

/// Checks an `id_token_hint` (RP-initiated logout) against the published keys: one of our ID
/// tokens, signed by a key still published at `now`, with our issuer. Expiry is not checked
/// (jose's `id_token::verify_hint`).
pub fn verify_id_token_hint(
    token: &str,
    keys: &PublishedKeys,
    issuer: &str,
    now: Timestamp,
) -> Result<id_token::Hint, Invalid> {
    let kid = portcullis_jose::compact::parse(token, MAX_TOKEN_LEN)
        .map_err(Invalid::from)?
        .header
        .kid
        .clone()
        .ok_or(Invalid::UnknownKey)?;
    if !keys.vouches(&kid, now) {
        return Err(Invalid::UnknownKey);
    }
    Ok(id_token::verify_hint(
        token,
        MAX_TOKEN_LEN,
        &Alg::SIGNING,
        &keys.set,
        issuer,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::signing::SigningAlgorithm;

    fn row(
        kid: &str,
        alg: SigningAlgorithm,
        jwk: &serde_json::Value,
        now: Timestamp,
    ) -> StoredSigningKey {
        StoredSigningKey {
            kid: kid.to_owned(),
            algorithm: alg,
            state: KeyState::Active,
            public_jwk: jwk.to_string(),
            kek_id: String::new(),
            sealed_private_key: Vec::new(),
            created_at: now,
            activates_at: now,
            retired_at: None,
            publish_until: None,
        }
    }

    fn claims(now: Timestamp) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://auth.test".into(),
            sub: "cl_a".into(),
            aud: "payments-api".into(),
            exp: now.as_secs() + 600,
            iat: now.as_secs(),
            nbf: now.as_secs(),
            jti: "j".into(),
            client_id: "cl_a".into(),
            scope: Some("payments:read payments:write".into()),
            tenant: "acme".into(),
            auth_time: None,
            acr: None,
            amr: Vec::new(),
            sid: None,
            family: None,
            cnf: None,
            workload: None,
            act: None,
            exchanged_from: Vec::new(),
            may_act: None,
        }
    }

    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn access_tokens_carry_typ_kid_and_verify_for_every_algorithm() {
        for alg in [
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
            SigningAlgorithm::EdDSA,
        ] {
            let (pkcs8, jwk) = crate::keys::generate(alg).expect("key");
            let kid = jwk["kid"].as_str().expect("kid").to_owned();
            let key = SigningKey {
                kid: kid.clone(),
                algorithm: alg,
                state: KeyState::Active,
                public_jwk: jwk.clone(),
                private_pkcs8: pkcs8,
            };
            let signer = Signer::new(&key).expect("signer");
            assert_eq!(signer.kid(), kid);
            let now = Timestamp::from_secs(1_800_000_000);
            let claims = claims(now);
            let token = signer.sign(&claims).expect("sign");
            let u = portcullis_jose::compact::parse(&token, MAX_TOKEN_LEN).expect("parse");
            assert_eq!(
                (
                    u.header.alg.as_str(),
                    u.header.kid.as_deref(),
                    u.header.typ.as_deref()
                ),
                (alg.as_str(), Some(kid.as_str()), Some("at+jwt"))
            );
            let keys = PublishedKeys::new(vec![row(&kid, alg, &jwk, now)].into(), now);
            let verified = verify(&token, &keys, "https://auth.test", MAX, now).expect("verifies");
            assert_eq!(verified.kid, kid);
            assert_eq!(verified.tenant.as_str(), "acme");
            assert_eq!(verified.claims, claims, "{alg}");
        }
    }

    /// The tenant is read once, by the token check: a tenant claim that is not a tenant id
    /// refuses the token there, with its own reason.
    #[test]
    fn a_token_whose_tenant_is_not_a_tenant_id_is_refused_as_such() {
        let alg = SigningAlgorithm::ES256;
        let (pkcs8, jwk) = crate::keys::generate(alg).expect("key");
        let kid = jwk["kid"].as_str().expect("kid").to_owned();
        let key = SigningKey {
            kid: kid.clone(),
            algorithm: alg,
            state: KeyState::Active,
            public_jwk: jwk.clone(),
            private_pkcs8: pkcs8,
        };
        let signer = Signer::new(&key).expect("signer");
        let now = Timestamp::from_secs(1_800_000_000);
        let keys = PublishedKeys::new(vec![row(&kid, alg, &jwk, now)].into(), now);
        let mut bad = claims(now);
        bad.tenant = "Not A Tenant!".into();
        let token = signer.sign(&bad).expect("sign");
        let refused = verify(&token, &keys, "https://auth.test", MAX, now).err();
        assert_eq!(refused, Some(Invalid::BadTenant));
        assert_eq!(refused.map(Invalid::as_str), Some("token_bad_tenant"));
    }

    #[test]
    fn only_published_keys_vouch_and_the_lifetime_is_capped() {
        let alg = SigningAlgorithm::EdDSA;
        let (pkcs8, jwk) = crate::keys::generate(alg).expect("key");
        let kid = jwk["kid"].as_str().expect("kid").to_owned();
        let key = SigningKey {
            kid: kid.clone(),
            algorithm: alg,
            state: KeyState::Active,
            public_jwk: jwk.clone(),
            private_pkcs8: pkcs8,
        };
        let signer = Signer::new(&key).expect("signer");
        let now = Timestamp::from_secs(1_800_000_000);
        let token = signer.sign(&claims(now)).expect("sign");
        let check = |r: StoredSigningKey, max: Duration| {
            verify(
                &token,
                &PublishedKeys::new(vec![r].into(), now),
                "https://auth.test",
                max,
                now,
            )
            .map(|v| v.kid)
        };
        assert_eq!(check(row(&kid, alg, &jwk, now), MAX), Ok(kid.clone()));
        let mut retired = row(&kid, alg, &jwk, now);
        retired.state = KeyState::Retired;
        retired.publish_until = Some(now.saturating_add(Duration::from_secs(1)));
        assert_eq!(check(retired.clone(), MAX), Ok(kid.clone()));
        // Loaded while still published, then the publication ends: the cache fill does not
        // vouch for later tokens, each verification asks again.
        let later = now.saturating_add(Duration::from_secs(2));
        assert_eq!(
            verify(
                &token,
                &PublishedKeys::new(vec![retired.clone()].into(), now),
                "https://auth.test",
                MAX,
                later,
            )
            .map(|v| v.kid),
            Err(Invalid::UnknownKey)
        );
        retired.publish_until = Some(now);
        assert_eq!(check(retired, MAX), Err(Invalid::UnknownKey));
        let mut revoked = row(&kid, alg, &jwk, now);
        revoked.state = KeyState::Revoked;
        assert_eq!(check(revoked, MAX), Err(Invalid::UnknownKey));
        assert_eq!(
            check(row(&kid, alg, &jwk, now), Duration::from_secs(599)),
            Err(Invalid::LifetimeTooLong)
        );
        // Years of rotations: the retired keys, long unpublished, do not crowd out the one
        // that signs (a JWKS is read to a bounded number of keys).
        let mut history: Vec<StoredSigningKey> = (0..100)
            .map(|i| {
                let mut old = row(&format!("old-{i}"), alg, &jwk, now);
                old.state = KeyState::Retired;
                old.publish_until = Some(Timestamp::from_secs(1_000 + i));
                old
            })
            .collect();
        history.push(row(&kid, alg, &jwk, now));
        assert_eq!(
            verify(
                &token,
                &PublishedKeys::new(history.into(), now),
                "https://auth.test",
                MAX,
                now
            )
            .map(|v| v.kid),
            Ok(kid.clone())
        );
        assert_eq!(
            verify(
                &token,
                &PublishedKeys::default(),
                "https://auth.test",
                MAX,
                now
            )
            .err(),
            Some(Invalid::UnknownKey)
        );
        assert_eq!(
            verify(
                &token,
                &PublishedKeys::new(vec![row(&kid, alg, &jwk, now)].into(), now),
                "https://other",
                MAX,
                now
            )
            .err(),
            Some(Invalid::WrongIssuer)
        );
    }
}
