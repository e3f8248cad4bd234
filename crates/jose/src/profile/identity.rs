//! The gateway's identity JWT (`X-Portcullis-Identity`): the facts of the identity headers,
//! signed by the gateway with an Ed25519 or P-256 key, so an upstream can check them itself
//! instead of trusting whoever can reach it.
//!
//! Header `{"alg", "kid", "typ": "portcullis-identity+jwt"}`, `kid` the RFC 7638 thumbprint of
//! the key. The `typ` is deliberately not `at+jwt`, so a verifier of access tokens refuses it
//! and it can never be replayed as one. Claims: `iss`, `aud` (the upstream), `iat`, `nbf`,
//! `exp` (at most [`MAX_LIFETIME`] later), `jti`, `sub`, `client_id`, `tenant`, `scope`,
//! `credential_kind`, `credential_id`, and `cnf.x5t#S256` when the connection presented a
//! verified client certificate.
//!
//! This module must never sign with a key other than Ed25519 or P-256, and never accept an
//! identity JWT as anything but the identity of one request to one upstream.

use std::time::Duration;

use portcullis_core::time::Timestamp;
use serde::Serialize;
use serde_json::{json, Value};

use super::{required, required_int, typ_is};
use crate::alg::Alg;
use crate::compact::{self, Unverified};
use crate::error::JoseError;
use crate::jwk::KeySet;
use crate::sign::{public_jwk_for_jwks, SignError, Signer, SigningKeyPair};

/// The JWT `typ` of identity tokens.
pub const TYP: &str = "portcullis-identity+jwt";
/// The longest lifetime allowed.
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// The algorithms an identity key may have.
pub const ALGORITHMS: [Alg; 2] = [Alg::EdDSA, Alg::ES256];

/// The certificate binding (RFC 8705 section 3.1).
#[derive(Debug, Serialize)]
pub struct Cnf<'a> {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: &'a str,
}

/// The claims of one identity JWT.
#[derive(Debug, Serialize)]
pub struct IdentityClaims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: &'a str,
    pub sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    pub scope: String,
    pub credential_kind: &'a str,
    pub credential_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Cnf<'a>>,
}

/// Parses a PKCS#8 DER identity key (Ed25519 or P-256).
pub fn key_from_pkcs8(der: &[u8]) -> Result<SigningKeyPair, SignError> {
    SigningKeyPair::from_pkcs8_of(&ALGORITHMS, der)
}

/// The identity signer of `key` (kid: its thumbprint) and the JWKS document publishing it.
pub fn signer(key: SigningKeyPair) -> Result<(Signer, String), SignError> {
    if !ALGORITHMS.contains(&key.alg()) {
        return Err(SignError::NotASigningAlgorithm(key.alg()));
    }
    let (jwk, kid) = public_jwk_for_jwks(&key);
    let jwks = json!({ "keys": [jwk] }).to_string();
    Ok((Signer::new(key, Some(TYP), Some(&kid)), jwks))
}

/// Splits and decodes a token and checks its `typ`.
pub fn parse(token: &str, max_len: usize) -> Result<Unverified<'_>, JoseError> {
    let u = compact::parse(token, max_len)?;
    match &u.header.typ {
        Some(t) if typ_is(t, TYP) => Ok(u),
        _ => Err(JoseError::WrongTyp),
    }
}

/// What an upstream expects.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'r> {
    /// The gateway's configured `identity_jwt.issuer`.
    pub issuer: &'r str,
    /// This upstream's name, as the gateway's route names it.
    pub audience: &'r str,
    pub leeway_s: i64,
}

/// The owned claims of a verified identity JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sub: String,
    pub jti: String,
    pub client_id: Option<String>,
    pub tenant: Option<String>,
    pub scopes: Vec<String>,
    pub credential_kind: String,
    pub credential_id: String,
    pub x5t_s256: Option<String>,
    pub exp: i64,
}

/// Every step at once with the gateway's published key set in hand.
pub fn verify(
    token: &str,
    max_len: usize,
    keys: &KeySet,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<Verified, JoseError> {
    let u = parse(token, max_len)?;
    if !ALGORITHMS.contains(&u.header.alg) {
        return Err(JoseError::AlgNotAllowed);
    }
    let c = u.claims()?;
    let malformed = |_| JoseError::MalformedClaims;
    if required(&c, "iss")? != rules.issuer {
        return Err(JoseError::IssuerMismatch);
    }
    if required(&c, "aud")? != rules.audience {
        return Err(JoseError::AudienceMismatch);
    }
    let now_s = now.as_secs();
    let exp = required_int(&c, "exp")?;
    if now_s >= exp.saturating_add(rules.leeway_s) {
        return Err(JoseError::Expired);
    }
    let iat = required_int(&c, "iat")?;
    if iat > now_s.saturating_add(rules.leeway_s) {
        return Err(JoseError::IssuedInFuture);
    }
    if c.int("nbf")
        .map_err(malformed)?
        .is_some_and(|nbf| nbf > now_s.saturating_add(rules.leeway_s))
    {
        return Err(JoseError::NotYetValid);
    }
    let max = i64::try_from(MAX_LIFETIME.as_secs()).unwrap_or(300);
    if exp.saturating_sub(iat) > max {
        return Err(JoseError::LifetimeTooLong);
    }
    let key = keys
        .find(u.header.kid.as_deref())
        .ok_or(JoseError::UnknownKid)?;
    u.verify_with(key)?;
    let cnf: Option<Value> = c
        .get("cnf")
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()
        .map_err(|_| JoseError::MalformedClaims)?;
    let opt = |name: &str| {
        c.str(name)
            .map(|v| v.map(|s| s.into_owned()))
            .map_err(malformed)
    };
    Ok(Verified {
        sub: required(&c, "sub")?.into_owned(),
        jti: required(&c, "jti")?.into_owned(),
        client_id: opt("client_id")?,
        tenant: opt("tenant")?,
        scopes: opt("scope")?
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        credential_kind: required(&c, "credential_kind")?.into_owned(),
        credential_id: required(&c, "credential_id")?.into_owned(),
        x5t_s256: cnf
            .as_ref()
            .and_then(|v| v.get("x5t#S256"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::parse_jwks;

    const NOW: u64 = 1_800_000_000;

    fn claims<'a>(aud: &'a str, lifetime: u64, cnf: Option<&'a str>) -> IdentityClaims<'a> {
        IdentityClaims {
            iss: "gw",
            aud,
            iat: NOW,
            nbf: NOW,
            exp: NOW + lifetime,
            jti: "j",
            sub: "user-1",
            client_id: Some("cl_app"),
            tenant: None,
            scope: "a b".into(),
            credential_kind: "access_token",
            credential_id: "jti-1",
            cnf: cnf.map(|x5t_s256| Cnf { x5t_s256 }),
        }
    }

    fn rules() -> Rules<'static> {
        Rules {
            issuer: "gw",
            audience: "app",
            leeway_s: 0,
        }
    }

    #[test]
    fn a_signed_identity_verifies_against_its_published_jwks() {
        for alg in ALGORITHMS {
            let (_, pair) = SigningKeyPair::generate(alg).expect("key");
            let (signer, jwks) = signer(pair).expect("signer");
            let keys = parse_jwks(jwks.as_bytes(), &ALGORITHMS).expect("jwks");
            let t = signer.sign(&claims("app", 30, Some("x5t"))).expect("sign");
            let v = verify(&t, 8192, &keys, &rules(), Timestamp::from_secs(NOW as i64))
                .expect("verifies");
            assert_eq!(v.sub, "user-1");
            assert_eq!(v.scopes, ["a", "b"]);
            assert_eq!(v.x5t_s256.as_deref(), Some("x5t"));
            assert_eq!(v.tenant, None);
            let doc: Value = serde_json::from_str(&jwks).expect("json");
            assert_eq!(doc["keys"][0]["kid"], signer.kid().unwrap_or_default());
            assert_eq!(doc["keys"][0]["use"], "sig");
        }
    }

    #[test]
    fn identity_rules_refuse() {
        let (_, pair) = SigningKeyPair::generate(Alg::EdDSA).expect("key");
        let (signer, jwks) = signer(pair).expect("signer");
        let keys = parse_jwks(jwks.as_bytes(), &ALGORITHMS).expect("jwks");
        let at = |c: &IdentityClaims<'_>, now: u64| {
            let t = signer.sign(c).expect("sign");
            verify(&t, 8192, &keys, &rules(), Timestamp::from_secs(now as i64)).err()
        };
        assert_eq!(
            at(&claims("other", 30, None), NOW),
            Some(JoseError::AudienceMismatch)
        );
        assert_eq!(
            at(&claims("app", 30, None), NOW + 30),
            Some(JoseError::Expired)
        );
        assert_eq!(
            at(&claims("app", 301, None), NOW),
            Some(JoseError::LifetimeTooLong)
        );
        assert_eq!(
            at(&claims("app", 30, None), NOW - 1),
            Some(JoseError::IssuedInFuture)
        );
        // An access token of the same key is not an identity.
        let (_, pair) = SigningKeyPair::generate(Alg::EdDSA).expect("key");
        let access = super::super::access_token::signer(pair, "k");
        let t = access.sign(&claims("app", 30, None)).expect("sign");
        assert_eq!(
            verify(&t, 8192, &keys, &rules(), Timestamp::from_secs(NOW as i64)).err(),
            Some(JoseError::WrongTyp)
        );
    }

    #[test]
    fn only_ed25519_and_p256_keys_sign_identities() {
        let (der, rsa) = SigningKeyPair::generate(Alg::RS256).expect("key");
        assert!(signer(rsa).is_err());
        assert!(key_from_pkcs8(der.expose()).is_err());
        let (der, _) = SigningKeyPair::generate(Alg::ES256).expect("key");
        assert_eq!(
            key_from_pkcs8(der.expose()).expect("p256").alg(),
            Alg::ES256
        );
    }
}
