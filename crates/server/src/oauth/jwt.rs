//! Signing and checking access tokens (RFC 9068) with `jsonwebtoken` on the aws-lc-rs backend.
//!
//! The signer is built once from the active key; building a key pair per request would cost more
//! than the signature. Verification (introspection, revocation) pins the algorithm to the key
//! named by `kid`, ignores every key-carrying header (`jwk`, `jku`, `x5u`, `x5c`), and requires
//! `typ: at+jwt`, our issuer and a current validity window.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use portcullis_core::oauth::{AccessTokenClaims, ACCESS_TOKEN_TYP};
use portcullis_core::signing::{KeyState, SigningAlgorithm};
use portcullis_core::time::Timestamp;
use portcullis_store::StoredSigningKey;

use crate::keys::SigningKey;

/// Clock skew tolerated when checking `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(30);
/// Longest token looked at.
const MAX_TOKEN_LEN: usize = 8 * 1024;

pub fn jose_algorithm(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

/// The key that signs new tokens, ready to use.
pub struct Signer {
    pub kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(key: &SigningKey) -> Result<Self, jsonwebtoken::errors::Error> {
        let der = key.private_pkcs8();
        let encoding = match key.algorithm {
            SigningAlgorithm::ES256 => EncodingKey::from_ec_der(der),
            SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(der),
            // jsonwebtoken's DER constructor wants PKCS#1; its PEM parser unwraps PKCS#8.
            SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(pkcs8_pem(der).as_bytes())?,
        };
        Ok(Self {
            kid: key.kid.clone(),
            algorithm: jose_algorithm(key.algorithm),
            key: encoding,
        })
    }

    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
    }
}

fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
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

/// A token that passed every check, with the key that signed it.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub claims: AccessTokenClaims,
    pub kid: String,
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
        }
    }
}

/// Checks an access token against the published keys. Expiry is checked against `now` (the
/// injected clock), not the library's view of the system clock.
pub fn verify(
    token: &str,
    keys: &[StoredSigningKey],
    issuer: &str,
    now: Timestamp,
) -> Result<VerifiedToken, Invalid> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Invalid::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid::Malformed)?;
    if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return Err(Invalid::WrongType);
    }
    let kid = header.kid.ok_or(Invalid::UnknownKey)?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid && published(k, now))
        .ok_or(Invalid::UnknownKey)?;
    let algorithm = jose_algorithm(key.algorithm);
    if header.alg != algorithm {
        return Err(Invalid::BadSignature);
    }
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_str(&key.public_jwk).map_err(|_| Invalid::UnknownKey)?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| Invalid::UnknownKey)?;
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = ["exp", "iat", "nbf", "iss", "aud", "sub"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let data = jsonwebtoken::decode::<AccessTokenClaims>(token, &decoding, &validation)
        .map_err(|_| Invalid::BadSignature)?;
    let claims = data.claims;
    if claims.iss != issuer {
        return Err(Invalid::WrongIssuer);
    }
    if !claims.is_current(now, LEEWAY) {
        return Err(Invalid::NotCurrent);
    }
    Ok(VerifiedToken { claims, kid })
}
