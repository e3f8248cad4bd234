//! Audit chain checkpoints (issue 19): the chain's hash at a position, signed by the
//! installation's signing key so that a rewritten audit log cannot re-sign its own checkpoints
//! without the private key.
//!
//! Shape: header `typ: audit-checkpoint+jwt` (required, so no access, ID or logout token is
//! ever taken for a checkpoint, nor the reverse); claims `iss` (the installation), `pos` (the
//! chain position), `hash` (the chain hash there, 64 lowercase hex digits) and `iat`.
//!
//! This module must never do I/O, and never read a key from the token.

use serde::Serialize;

use super::{required, required_int, typ_is};
use crate::alg::Alg;
use crate::compact;
use crate::error::JoseError;
use crate::jwk::KeySet;
use crate::sign::{Signer, SigningKeyPair};

/// The `typ` a checkpoint carries.
pub const TYP: &str = "audit-checkpoint+jwt";
/// Longest checkpoint looked at.
pub const MAX_LEN: usize = 4 * 1024;

/// A signer of checkpoints: header `{"alg", "kid", "typ": "audit-checkpoint+jwt"}`.
pub fn signer(key: SigningKeyPair, kid: &str) -> Signer {
    Signer::new(key, Some(TYP), Some(kid))
}

/// The claims of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub iss: String,
    pub pos: i64,
    pub hash: String,
    pub iat: i64,
}

/// A checkpoint whose signature holds, with what it vouches for and the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub pos: i64,
    pub hash: String,
    pub kid: Option<String>,
}

/// Parses `token`, checks its `typ`, issuer and algorithm, and its signature under the key of
/// `keys` its `kid` names.
pub fn verify(
    token: &str,
    issuer: &str,
    allowed: &[Alg],
    keys: &KeySet,
) -> Result<Verified, JoseError> {
    let u = compact::parse(token, MAX_LEN)?;
    match &u.header.typ {
        Some(t) if typ_is(t, TYP) => {}
        _ => return Err(JoseError::WrongTyp),
    }
    if !allowed.contains(&u.header.alg) {
        return Err(JoseError::AlgNotAllowed);
    }
    let c = u.claims()?;
    if required(&c, "iss")? != issuer {
        return Err(JoseError::IssuerMismatch);
    }
    let pos = required_int(&c, "pos")?;
    let hash = required(&c, "hash")?.into_owned();
    let kid = u.header.kid.clone();
    let key = keys.find(kid.as_deref()).ok_or(JoseError::UnknownKid)?;
    u.verify_with(key)?;
    Ok(Verified { pos, hash, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pair: &SigningKeyPair, kid: &str) -> KeySet {
        let mut jwk = pair.public_jwk();
        jwk["kid"] = serde_json::Value::String(kid.into());
        crate::parse_jwk_set(&serde_json::json!({ "keys": [jwk] }), &Alg::SIGNING).expect("set")
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_a_changed_one_does_not() {
        let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let set = keys(&pair, "k1");
        let s = signer(pair, "k1");
        let claims = Claims {
            iss: "https://auth.example".into(),
            pos: 42,
            hash: "ab".repeat(32),
            iat: 1_700_000_000,
        };
        let token = s.sign(&claims).expect("sign");
        let v = verify(&token, "https://auth.example", &Alg::SIGNING, &set).expect("verify");
        assert_eq!(
            (v.pos, v.hash.as_str(), v.kid.as_deref()),
            (42, claims.hash.as_str(), Some("k1"))
        );
        assert_eq!(
            verify(&token, "https://other.example", &Alg::SIGNING, &set),
            Err(JoseError::IssuerMismatch)
        );
        // Another key's signature.
        let (_, other) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let forged = signer(other, "k1").sign(&claims).expect("sign");
        assert!(verify(&forged, "https://auth.example", &Alg::SIGNING, &set).is_err());
        // An access-token header is not a checkpoint.
        let (_, pair2) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let at = Signer::new(pair2, Some("at+jwt"), Some("k1"))
            .sign(&claims)
            .expect("sign");
        assert_eq!(
            verify(&at, "https://auth.example", &Alg::SIGNING, &set),
            Err(JoseError::WrongTyp)
        );
    }
}
