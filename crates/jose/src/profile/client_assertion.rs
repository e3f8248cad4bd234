//! Client assertions for `private_key_jwt` client authentication (RFC 7523 section 2.2, OIDC
//! Core section 9).
//!
//! Steps: [`parse`] (size limit, strict structure, an asymmetric algorithm, not an access
//! token's `typ`), then the caller finds the client's registered keys (inline, or fetched from
//! its `jwks_uri`: the token's `kid` tells which), then [`verify`]: the key the `kid` names (or
//! the only key), the algorithm pinned to that key, the signature, and the claim rules of
//! `portcullis_core::oauth::check_assertion` (`iss == sub == client_id`, one audience that is
//! this server, `exp` current and at most five minutes away, `jti` present). The rule itself
//! stays in core, so there is one. Recording the `jti` against replay is the caller's (it needs
//! storage). A caller that judges the claims before looking up the client's keys (the token
//! service does, so that its answer cannot depend on who exists) reads them once with
//! [`read_claims`] and checks only the signature afterwards with [`verify_signature`].
//!
//! A client's keys are read with [`ClientKeys::parse`]. An RSA key registered without `alg`
//! (third-party JWKS often omit it, and nothing in a client registration names the algorithm)
//! serves RS256 and PS256 alike, as it always has; it is held as two candidates, each pinned to
//! one of those algorithms, and the assertion's `alg` chooses which candidate it is checked
//! with ([`ClientKeys::for_alg`]). Every check is still made with a key pinned to exactly one
//! algorithm; only RS256 or PS256 can ever reach an RSA key, and a key that states its `alg` is
//! pinned to that alone.
//!
//! This module must never use a key named by the assertion's own header (`jwk`, `jku`, `x5u`,
//! `x5c`), and never accept a symmetric algorithm.

use std::time::Duration;

use portcullis_core::oauth::{check_assertion, AssertionClaims};
use portcullis_core::time::Timestamp;

use serde_json::Value;

use super::access_token;
use crate::alg::Alg;
use crate::compact::{self, Unverified};
use crate::error::JoseError;
use crate::jwk::{parse_jwks_all_usable_pinning_rsa, JwksError, KeySet};

/// Longest assertion looked at.
pub const MAX_LEN: usize = 8 * 1024;
/// Most keys a client may register.
pub const MAX_CLIENT_KEYS: usize = 10;

/// Splits and decodes an assertion. Only the asymmetric algorithms of [`crate::Alg::ALL`]
/// parse; `none` and `HS*` are refused here, before any key is touched.
pub fn parse(assertion: &str) -> Result<Unverified<'_>, JoseError> {
    let u = compact::parse(assertion, MAX_LEN)?;
    // An access token is never a client assertion, whoever signed it.
    if u.header.typ.as_deref().is_some_and(access_token::is_typ) {
        return Err(JoseError::WrongTyp);
    }
    Ok(u)
}

/// The keys a client registered (inline or behind its `jwks_uri`), parsed once.
#[derive(Debug, Clone)]
pub struct ClientKeys {
    /// Every key; an RSA key without `alg` is pinned to RS256 here.
    pkcs1: KeySet,
    /// The same keys with an RSA key without `alg` pinned to PS256; `None` when the document
    /// has no such key (then both would be the same set).
    pss: Option<KeySet>,
}

impl ClientKeys {
    /// Parses a client's JWKS: 1 to `max_keys` public asymmetric keys, each with a `kid` when
    /// there are several, every one usable (see [`crate::jwk::parse_jwks_all_usable`]; nothing is
    /// skipped).
    pub fn parse(doc: &Value, max_keys: usize) -> Result<Self, JwksError> {
        // Parsed once, an RSA key without `alg` pinned to RS256; the PS256 set reuses the keys.
        let pkcs1 = parse_jwks_all_usable_pinning_rsa(doc, &Alg::ALL, max_keys, Alg::RS256)?;
        let pss = pkcs1.with_rsa_without_alg_as(Alg::PS256);
        Ok(Self { pkcs1, pss })
    }

    /// The keys to check an assertion signed with `alg` against: each key pinned to one
    /// algorithm, an RSA key without `alg` to PS256 for a PS256 assertion and to RS256 for any
    /// other (so an EC, EdDSA or RS256 assertion naming it meets an RS256 key and only RS256
    /// verifies).
    pub fn for_alg(&self, alg: Alg) -> &KeySet {
        match (&self.pss, alg) {
            (Some(pss), Alg::PS256) => pss,
            _ => &self.pkcs1,
        }
    }

    /// Whether the client registered `presented` (RFC 8705 `self_signed_tls_client_auth`: the
    /// certificate's key must be one of the client's keys).
    pub fn holds(&self, presented: crate::jwk::PublicKeyBytes<'_>) -> bool {
        self.pkcs1.holds(presented)
    }

    /// Whether a key with this `kid` is registered (a fetched JWKS is refetched when not).
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.pkcs1.contains_kid(kid)
    }

    pub fn len(&self) -> usize {
        self.pkcs1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pkcs1.is_empty()
    }
}

/// What the token service expects of one client's assertion.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'r> {
    pub client_id: &'r str,
    /// This server's identifiers the assertion may name (issuer, token endpoint).
    pub accepted_audiences: &'r [&'r str],
    pub leeway: Duration,
}

/// Checks only the signature of a parsed assertion: the key its `kid` names among the client's
/// registered `keys` (or the only key), the algorithm pinned to that key, the signature over the
/// signing input. The claims are not read: a caller that already read and checked them (the
/// token service judges them before looking anything up) does not read them twice; [`verify`]
/// is both steps.
pub fn verify_signature(u: &Unverified<'_>, keys: &KeySet) -> Result<(), JoseError> {
    let key = keys
        .find(u.header.kid.as_deref())
        .ok_or(JoseError::UnknownKid)?;
    u.verify_with(key)
}

/// Reads an assertion's claims once: a JSON object without repeated members, then typed.
pub fn read_claims(u: &Unverified<'_>) -> Result<AssertionClaims, JoseError> {
    u.claims()?;
    serde_json::from_slice(&u.payload).map_err(|_| JoseError::MalformedClaims)
}

/// Verifies a parsed assertion with the client's registered `keys` at `now`: the signature
/// ([`verify_signature`]), then the claims ([`read_claims`], core's `check_assertion`). Returns
/// the claims (the caller records `jti` until `exp`).
pub fn verify(
    u: &Unverified<'_>,
    keys: &KeySet,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<AssertionClaims, JoseError> {
    verify_signature(u, keys)?;
    let claims = read_claims(u)?;
    check_assertion(
        &claims,
        rules.client_id,
        rules.accepted_audiences,
        now,
        rules.leeway,
    )
    .map_err(JoseError::Assertion)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::Alg;
    use crate::jwk::parse_jwks_all_usable;
    use crate::sign::{public_jwk_for_jwks, Signer, SigningKeyPair};
    use portcullis_core::oauth::AssertionError;
    use serde_json::{json, Value};

    const NOW: i64 = 1_800_000_000;
    const AUDS: &[&str] = &["https://auth.test", "https://auth.test/oauth2/token"];

    fn rules() -> Rules<'static> {
        Rules {
            client_id: "cl_1",
            accepted_audiences: AUDS,
            leeway: Duration::from_secs(30),
        }
    }

    fn claims() -> Value {
        json!({"iss": "cl_1", "sub": "cl_1", "aud": "https://auth.test/oauth2/token",
               "exp": NOW + 60, "iat": NOW, "jti": "j-1"})
    }

    fn client(alg: Alg) -> (Signer, KeySet) {
        let (_, pair) = SigningKeyPair::generate(alg).expect("key");
        let (jwk, kid) = public_jwk_for_jwks(&pair);
        let keys = parse_jwks_all_usable(&json!({"keys": [jwk]}), &Alg::ALL, MAX_CLIENT_KEYS)
            .expect("jwks");
        (Signer::new(pair, None, Some(&kid)), keys)
    }

    fn run(s: &Signer, keys: &KeySet, c: &Value) -> Result<AssertionClaims, JoseError> {
        let t = s.sign(c).expect("sign");
        verify(&parse(&t)?, keys, &rules(), Timestamp::from_secs(NOW))
    }

    #[test]
    fn a_good_assertion_verifies_for_every_signing_algorithm() {
        for alg in Alg::SIGNING {
            let (s, keys) = client(alg);
            let c = run(&s, &keys, &claims()).expect("verifies");
            assert_eq!(c.jti, "j-1");
        }
    }

    #[test]
    fn claim_rules_are_cores_and_keys_are_the_clients() {
        let (s, keys) = client(Alg::EdDSA);
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            c
        };
        let cases = vec![
            (
                with("iss", json!("cl_2")),
                JoseError::Assertion(AssertionError::IssuerMismatch),
            ),
            (
                with("sub", json!("cl_2")),
                JoseError::Assertion(AssertionError::IssuerMismatch),
            ),
            (
                with("aud", json!(["https://auth.test", "https://other"])),
                JoseError::Assertion(AssertionError::WrongAudience),
            ),
            (
                with("exp", json!(NOW - 31)),
                JoseError::Assertion(AssertionError::Expired),
            ),
            (
                with("exp", json!(NOW + 400)),
                JoseError::Assertion(AssertionError::TooLong),
            ),
            (
                with("jti", json!("")),
                JoseError::Assertion(AssertionError::BadJti),
            ),
            (with("jti", json!(7)), JoseError::MalformedClaims),
        ];
        for (c, want) in cases {
            assert_eq!(run(&s, &keys, &c).err(), Some(want), "{c}");
        }
        let (other, _) = client(Alg::EdDSA);
        assert_eq!(
            run(&other, &keys, &claims()).err(),
            Some(JoseError::UnknownKid)
        );
        // The same kid, another key: the signature fails.
        let (_, pair) = SigningKeyPair::generate(Alg::EdDSA).expect("key");
        let forged = Signer::new(pair, None, s.kid());
        assert_eq!(
            run(&forged, &keys, &claims()).err(),
            Some(JoseError::BadSignature)
        );
        // The same kid, another algorithm: refused before the signature.
        let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let confused = Signer::new(pair, None, s.kid());
        assert_eq!(
            run(&confused, &keys, &claims()).err(),
            Some(JoseError::AlgKeyMismatch)
        );
    }

    /// The signature-only step checks the key and the signature and nothing about the claims:
    /// an expired assertion's signature verifies, a forged one does not.
    #[test]
    fn the_signature_step_reads_no_claim() {
        let (s, keys) = client(Alg::ES256);
        let mut expired = claims();
        expired["exp"] = json!(NOW - 3600);
        let t = s.sign(&expired).expect("sign");
        let u = parse(&t).expect("parse");
        assert_eq!(verify_signature(&u, &keys), Ok(()));
        assert_eq!(read_claims(&u).map(|c| c.exp), Ok(NOW - 3600));
        assert_eq!(
            verify(&u, &keys, &rules(), Timestamp::from_secs(NOW)).err(),
            Some(JoseError::Assertion(AssertionError::Expired))
        );
        let (other, _) = client(Alg::ES256);
        let forged = Signer::new(
            SigningKeyPair::generate(Alg::ES256).expect("key").1,
            None,
            s.kid(),
        );
        let u2 = forged.sign(&claims()).expect("sign");
        assert_eq!(
            verify_signature(&parse(&u2).expect("parse"), &keys),
            Err(JoseError::BadSignature)
        );
        let u3 = other.sign(&claims()).expect("sign");
        assert_eq!(
            verify_signature(&parse(&u3).expect("parse"), &keys),
            Err(JoseError::UnknownKid)
        );
    }

    fn client_keys(keys: &[&Value]) -> ClientKeys {
        ClientKeys::parse(&json!({ "keys": keys }), MAX_CLIENT_KEYS).expect("jwks")
    }

    /// Signs `claims()` with the RSA key `pair_der` under `alg` (RS256 or PS256), by hand: the
    /// signer only signs RS256, and a registered key may be used with either.
    fn rsa_assertion(pair_der: &[u8], alg: &str, kid: &str) -> String {
        use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let key = RsaKeyPair::from_pkcs8(pair_der).expect("rsa");
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": kid}).to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = match alg {
            "PS256" => &RSA_PSS_SHA256,
            _ => &RSA_PKCS1_SHA256,
        };
        let mut sig = vec![0u8; key.public_modulus_len()];
        key.sign(
            padding,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn check(t: &str, keys: &ClientKeys) -> Result<AssertionClaims, JoseError> {
        let u = parse(t)?;
        verify(
            &u,
            keys.for_alg(u.header.alg),
            &rules(),
            Timestamp::from_secs(NOW),
        )
    }

    #[test]
    fn an_rsa_key_without_alg_verifies_rs256_and_ps256_and_nothing_else() {
        let (der, pair) = SigningKeyPair::generate(Alg::RS256).expect("key");
        let mut jwk = pair.public_jwk();
        jwk["kid"] = json!("rsa-1");
        let (_, ec) = SigningKeyPair::generate(Alg::ES256).expect("ec");
        let (ec_jwk, ec_kid) = public_jwk_for_jwks(&ec);
        let keys = client_keys(&[&jwk, &ec_jwk]);
        assert_eq!(keys.len(), 2);
        assert!(keys.contains_kid("rsa-1") && keys.contains_kid(&ec_kid));
        for alg in ["RS256", "PS256"] {
            let t = rsa_assertion(der.expose(), alg, "rsa-1");
            assert_eq!(check(&t, &keys).map(|c| c.jti), Ok("j-1".into()), "{alg}");
        }
        // An EC key's assertion naming the RSA kid meets a key pinned to RS256.
        let confused = Signer::new(ec, None, Some("rsa-1"));
        assert_eq!(
            check(&confused.sign(&claims()).expect("sign"), &keys).err(),
            Some(JoseError::AlgKeyMismatch)
        );
        // The EC key keeps working, and stays pinned to ES256.
        let (_, pair2) = SigningKeyPair::generate(Alg::ES256).expect("ec");
        assert_eq!(
            check(
                &Signer::new(pair2, None, Some(&ec_kid))
                    .sign(&claims())
                    .expect("sign"),
                &keys
            )
            .err(),
            Some(JoseError::BadSignature)
        );
        // A stated alg pins the RSA key to it alone.
        let mut stated = jwk.clone();
        stated["alg"] = json!("RS256");
        let pinned = client_keys(&[&stated]);
        assert_eq!(
            check(&rsa_assertion(der.expose(), "PS256", "rsa-1"), &pinned).err(),
            Some(JoseError::AlgKeyMismatch)
        );
        assert!(check(&rsa_assertion(der.expose(), "RS256", "rsa-1"), &pinned).is_ok());
        // Short RSA keys, symmetric keys and private keys are refused whatever the pinning.
        let short = json!({"kty": "RSA", "kid": "s", "e": "AQAB", "n": "AQAB"});
        assert!(matches!(
            ClientKeys::parse(&json!({"keys": [short]}), MAX_CLIENT_KEYS),
            Err(JwksError::UnusableKey { index: 0, .. })
        ));
        assert_eq!(
            ClientKeys::parse(&json!({"keys": {}}), MAX_CLIENT_KEYS).err(),
            Some(JwksError::NotAJwks)
        );
    }

    #[test]
    fn symmetric_none_and_access_tokens_are_refused_at_parse() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        for (header, want) in [
            (r#"{"alg":"HS256"}"#, JoseError::AlgNotAllowed),
            (r#"{"alg":"none"}"#, JoseError::AlgNone),
            (r#"{"alg":"ES256","typ":"at+jwt"}"#, JoseError::WrongTyp),
            (
                r#"{"alg":"ES256","crit":["x"]}"#,
                JoseError::UnsupportedCrit,
            ),
        ] {
            let t = format!("{}.{body}.c2ln", URL_SAFE_NO_PAD.encode(header));
            assert_eq!(parse(&t).err(), Some(want), "{header}");
        }
        assert_eq!(
            parse(&"a".repeat(MAX_LEN + 1)).err(),
            Some(JoseError::TooLarge)
        );
    }
}
