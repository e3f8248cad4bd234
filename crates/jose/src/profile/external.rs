//! External identity tokens: JWTs issued by another party (a CI platform, a Kubernetes cluster,
//! a SPIFFE workload API) that a tenant trusts, presented for RFC 8693 token exchange or as an
//! RFC 7523 JWT-bearer grant.
//!
//! Steps: [`parse`] (size limit, strict structure, an asymmetric algorithm, no key or key
//! location in the header, not one of our access tokens), then the caller finds the issuer's
//! keys (from its configured source; the token's `kid` tells whether to refetch), then
//! [`verify`]: the algorithm is one the issuer is allowed, the key the `kid` names is pinned to
//! it, the signature holds, and the registered claims hold: `iss` is the issuer, `aud` is
//! present and names one of the accepted audiences, `exp` is present and current, `nbf` and
//! `iat` are not in the future, and the token's lifetime (`exp - iat`, or what is left of it
//! without `iat`) is within the cap. The claims come back as a JSON object for the rule engine
//! (`portcullis_core::federation`), which decides what the token is worth.
//!
//! This module must never use a key named by the token's header, never accept `none` or a
//! symmetric algorithm (an issuer's public key must never serve as an HMAC secret), and never
//! decide trust beyond the registered claims.

use std::time::Duration;

use portcullis_core::time::Timestamp;
use serde_json::{Map, Value};

use super::{access_token, required, required_int};
use crate::alg::Alg;
use crate::compact::{self, RawObject, Unverified};
use crate::error::JoseError;
use crate::jwk::KeySet;

/// Longest external token looked at (Kubernetes tokens with many claims stay well under).
pub const MAX_LEN: usize = 16 * 1024;

/// Header members that carry a key or say where to get one.
const KEY_HEADERS: [&str; 4] = ["jwk", "jku", "x5u", "x5c"];

/// Splits and decodes an external token. Refused here, before any key is looked for: `none`,
/// `HS*`, a `crit`, a key-carrying header, or an access token's `typ`.
pub fn parse(token: &str) -> Result<Unverified<'_>, JoseError> {
    let u = compact::parse(token, MAX_LEN)?;
    // The compact parser never reads these; on a token from elsewhere their presence alone is
    // a reason to refuse (RFC 8725 section 3.10: whoever sent it hoped a verifier would).
    let header_part = u
        .signing_input
        .split('.')
        .next()
        .ok_or(JoseError::Malformed)?;
    let header_bytes = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        header_part,
    )
    .map_err(|_| JoseError::BadBase64)?;
    let header = RawObject::parse(&header_bytes, JoseError::MalformedHeader)?;
    if KEY_HEADERS.iter().any(|h| header.contains(h)) {
        return Err(JoseError::KeyInHeader);
    }
    if u.header.typ.as_deref().is_some_and(access_token::is_typ) {
        return Err(JoseError::WrongTyp);
    }
    Ok(u)
}

/// What one trusted issuer's tokens must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'r> {
    pub issuer: &'r str,
    /// The algorithms this issuer is allowed (a subset of the asymmetric ones).
    pub algorithms: &'r [Alg],
    /// Audiences a token may carry to be looked at further (every rule's audience on this
    /// issuer); the rule engine checks the selected rule's own.
    pub audiences: &'r [&'r str],
    /// Longest lifetime accepted.
    pub max_lifetime: Duration,
    pub leeway: Duration,
}

/// Checks only the signature: the algorithm is allowed for the issuer, the key the `kid` names
/// (or the only key) is pinned to it, the signature holds.
pub fn verify_signature(
    u: &Unverified<'_>,
    keys: &KeySet,
    algorithms: &[Alg],
) -> Result<(), JoseError> {
    if !algorithms.contains(&u.header.alg) {
        return Err(JoseError::AlgNotAllowed);
    }
    let key = keys
        .find(u.header.kid.as_deref())
        .ok_or(JoseError::UnknownKid)?;
    u.verify_with(key)
}

/// Checks the registered claims of a token whose signature holds; returns the claims object.
pub fn check_claims(
    u: &Unverified<'_>,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<Map<String, Value>, JoseError> {
    let c = u.claims()?;
    if required(&c, "iss")? != rules.issuer {
        return Err(JoseError::IssuerMismatch);
    }
    let aud = match c.str("aud") {
        Ok(Some(a)) => vec![a.into_owned()],
        Ok(None) => return Err(JoseError::MissingClaim("aud")),
        Err(_) => c
            .string_array("aud")
            .map_err(|_| JoseError::MalformedClaims)?
            .ok_or(JoseError::MissingClaim("aud"))?,
    };
    if !aud.iter().any(|a| rules.audiences.contains(&a.as_str())) {
        return Err(JoseError::AudienceMismatch);
    }
    let now_s = now.as_secs();
    let leeway = i64::try_from(rules.leeway.as_secs()).unwrap_or(0);
    let exp = required_int(&c, "exp")?;
    if exp <= now_s.saturating_sub(leeway) {
        return Err(JoseError::Expired);
    }
    let int = |name: &'static str| c.int(name).map_err(|_| JoseError::MalformedClaims);
    if int("nbf")?.is_some_and(|nbf| nbf > now_s.saturating_add(leeway)) {
        return Err(JoseError::NotYetValid);
    }
    let iat = int("iat")?;
    if iat.is_some_and(|iat| iat > now_s.saturating_add(leeway)) {
        return Err(JoseError::IssuedInFuture);
    }
    let max = i64::try_from(rules.max_lifetime.as_secs()).unwrap_or(i64::MAX);
    if exp.saturating_sub(iat.unwrap_or(now_s)) > max {
        return Err(JoseError::LifetimeTooLong);
    }
    serde_json::from_slice(&u.payload).map_err(|_| JoseError::MalformedClaims)
}

/// [`verify_signature`], then [`check_claims`].
pub fn verify(
    u: &Unverified<'_>,
    keys: &KeySet,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<Map<String, Value>, JoseError> {
    verify_signature(u, keys, rules.algorithms)?;
    check_claims(u, rules, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::parse_jwks_all_usable;
    use crate::sign::{public_jwk_for_jwks, Signer, SigningKeyPair};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const ISS: &str = "https://token.actions.githubusercontent.com";

    fn rules() -> Rules<'static> {
        Rules {
            issuer: ISS,
            algorithms: &[Alg::RS256, Alg::ES256],
            audiences: &["https://portcullis.example"],
            max_lifetime: Duration::from_secs(3600),
            leeway: Duration::from_secs(30),
        }
    }

    fn claims() -> Value {
        json!({"iss": ISS, "sub": "repo:acme/deploy:ref:refs/heads/main",
               "aud": "https://portcullis.example", "exp": NOW + 300, "iat": NOW - 10,
               "nbf": NOW - 10, "jti": "j-1", "repository_id": "2002"})
    }

    struct Issuer {
        signer: Signer,
        keys: KeySet,
        der: Vec<u8>,
        alg: Alg,
        /// Another key of the same algorithm, not in the issuer's JWKS.
        other: SigningKeyPair,
    }

    fn issuer(alg: Alg) -> Issuer {
        let (der, pair) = SigningKeyPair::generate(alg).expect("key");
        let (jwk, kid) = public_jwk_for_jwks(&pair);
        let keys = parse_jwks_all_usable(&json!({"keys": [jwk]}), &Alg::ALL, 10).expect("jwks");
        let (_, other) = SigningKeyPair::generate(alg).expect("key");
        Issuer {
            signer: Signer::new(pair, Some("JWT"), Some(&kid)),
            keys,
            der: der.expose().clone(),
            alg,
            other,
        }
    }

    fn run(token: &str, keys: &KeySet) -> Result<Map<String, Value>, JoseError> {
        verify(&parse(token)?, keys, &rules(), Timestamp::from_secs(NOW))
    }

    /// A token with a hand-made header, signed with the issuer's own key (what an attacker
    /// who controls the header but not the key cannot do; here it isolates the header rule).
    fn with_header(i: &Issuer, header: Value, claims: &Value) -> String {
        let key = SigningKeyPair::from_pkcs8_of(&[i.alg], &i.der).expect("key");
        Signer::with_header_json(key, None, header.to_string().as_bytes())
            .sign(claims)
            .expect("sign")
    }

    #[test]
    fn a_good_token_verifies_and_yields_its_claims() {
        for alg in [Alg::RS256, Alg::ES256] {
            let i = issuer(alg);
            let c = run(&i.signer.sign(&claims()).expect("sign"), &i.keys).expect("verifies");
            assert_eq!(c["repository_id"], "2002");
        }
        // `aud` as an array naming us among others.
        let i = issuer(Alg::ES256);
        let mut c = claims();
        c["aud"] = json!(["https://other", "https://portcullis.example"]);
        assert!(run(&i.signer.sign(&c).expect("sign"), &i.keys).is_ok());
    }

    #[test]
    fn registered_claims_are_enforced() {
        let i = issuer(Alg::ES256);
        let (s, keys) = (&i.signer, &i.keys);
        let with = |k: &str, v: Option<Value>| {
            let mut c = claims();
            match v {
                Some(v) => c[k] = v,
                None => {
                    c.as_object_mut().expect("object").remove(k);
                }
            }
            run(&s.sign(&c).expect("sign"), keys)
        };
        assert_eq!(
            with("iss", Some(json!("https://gitlab.com"))),
            Err(JoseError::IssuerMismatch)
        );
        assert_eq!(
            with("aud", Some(json!("https://other"))),
            Err(JoseError::AudienceMismatch)
        );
        assert_eq!(with("aud", None), Err(JoseError::MissingClaim("aud")));
        assert_eq!(with("aud", Some(json!(7))), Err(JoseError::MalformedClaims));
        assert_eq!(with("exp", None), Err(JoseError::MissingClaim("exp")));
        assert_eq!(with("exp", Some(json!(NOW - 31))), Err(JoseError::Expired));
        assert!(with("exp", Some(json!(NOW - 29))).is_ok());
        assert_eq!(
            with("nbf", Some(json!(NOW + 60))),
            Err(JoseError::NotYetValid)
        );
        assert_eq!(
            with("iat", Some(json!(NOW + 60))),
            Err(JoseError::IssuedInFuture)
        );
        assert_eq!(
            with("exp", Some(json!(NOW - 10 + 3601))),
            Err(JoseError::LifetimeTooLong)
        );
        // Without iat, the remaining life is capped.
        let mut c = claims();
        c.as_object_mut().expect("object").remove("iat");
        c["exp"] = json!(NOW + 365 * 86400);
        assert_eq!(
            run(&s.sign(&c).expect("sign"), keys),
            Err(JoseError::LifetimeTooLong)
        );
    }

    #[test]
    fn algorithms_and_keys_are_the_issuers() {
        let i = issuer(Alg::RS256);
        let (s, keys) = (&i.signer, &i.keys);
        let t = s.sign(&claims()).expect("sign");
        // An algorithm the issuer is not allowed, even with its own key.
        let mut r = rules();
        r.algorithms = &[Alg::ES256];
        assert_eq!(
            verify(
                &parse(&t).expect("parse"),
                keys,
                &r,
                Timestamp::from_secs(NOW)
            ),
            Err(JoseError::AlgNotAllowed)
        );
        // A key not in the issuer's JWKS (same kid, another key).
        let (jwk, _) = public_jwk_for_jwks(&i.other);
        let mut jwk = jwk;
        jwk["kid"] = json!(s.kid().expect("kid"));
        let wrong = parse_jwks_all_usable(&json!({"keys": [jwk]}), &Alg::ALL, 10).expect("jwks");
        assert_eq!(run(&t, &wrong), Err(JoseError::BadSignature));
        // An unknown kid.
        let stranger = issuer(Alg::RS256);
        assert_eq!(
            run(&stranger.signer.sign(&claims()).expect("sign"), keys),
            Err(JoseError::UnknownKid)
        );
    }

    #[test]
    fn none_hmac_and_key_carrying_headers_are_refused_before_any_key() {
        let i = issuer(Alg::ES256);
        let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
        let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert_eq!(parse(&none).map(|_| ()), Err(JoseError::AlgNone));
        // HS256 "signed" with the issuer's public key: never an accepted algorithm.
        let hs = format!(
            "{}.{payload}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode([7u8; 32])
        );
        assert_eq!(parse(&hs).map(|_| ()), Err(JoseError::AlgNotAllowed));
        let kid = i.signer.kid().expect("kid").to_owned();
        for extra in ["jwk", "jku", "x5u", "x5c"] {
            let header = json!({"alg": "ES256", "kid": kid, extra: "https://evil.example/k"});
            let t = with_header(&i, header, &claims());
            assert_eq!(
                parse(&t).map(|_| ()),
                Err(JoseError::KeyInHeader),
                "{extra}"
            );
        }
        // The same token without the extra header verifies (the test's signing is sound).
        let t = with_header(&i, json!({"alg": "ES256", "kid": kid}), &claims());
        assert!(run(&t, &i.keys).is_ok());
        // One of our access tokens is not an external identity.
        let t = with_header(
            &i,
            json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}),
            &claims(),
        );
        assert_eq!(parse(&t).map(|_| ()), Err(JoseError::WrongTyp));
    }
}
