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
//! storage).
//!
//! This module must never use a key named by the assertion's own header (`jwk`, `jku`, `x5u`,
//! `x5c`), and never accept a symmetric algorithm.

use std::time::Duration;

use portcullis_core::oauth::{check_assertion, AssertionClaims};
use portcullis_core::time::Timestamp;

use super::access_token;
use crate::compact::{self, Unverified};
use crate::error::JoseError;
use crate::jwk::KeySet;

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

/// What the token service expects of one client's assertion.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'r> {
    pub client_id: &'r str,
    /// This server's identifiers the assertion may name (issuer, token endpoint).
    pub accepted_audiences: &'r [&'r str],
    pub leeway: Duration,
}

/// Verifies a parsed assertion with the client's registered `keys` at `now`. Returns the claims
/// (the caller records `jti` until `exp`).
pub fn verify(
    u: &Unverified<'_>,
    keys: &KeySet,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<AssertionClaims, JoseError> {
    let key = keys
        .find(u.header.kid.as_deref())
        .ok_or(JoseError::UnknownKid)?;
    u.verify_with(key)?;
    // Read once with duplicate detection, then typed.
    u.claims()?;
    let claims: AssertionClaims =
        serde_json::from_slice(&u.payload).map_err(|_| JoseError::MalformedClaims)?;
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
