//! `private_key_jwt` client authentication (RFC 7523 section 2.2, OpenID Connect Core 9).
//!
//! The assertion must be signed with an asymmetric algorithm by a key from the client's
//! registered JWKS, given inline or fetched from its registered `jwks_uri` (see
//! [`super::remote_jwks`]). The algorithm is checked against an allow-list before any key is touched, so
//! `none` and HS256 keyed with the client's public key never verify; keys named in the
//! assertion's own header (`jwk`, `jku`, `x5u`, `x5c`) are ignored. Size, header, algorithm and
//! claims (checked by core) are judged first from the assertion alone ([`precheck`]), so their
//! refusals may say what is wrong; then the signature is verified against the client's keys
//! ([`verify`]) and the `jti` is recorded until the assertion expires, so a replay is refused.
//! This module must never let what it finds in stored state change the answer a caller gets.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_core::oauth::{check_assertion, AssertionClaims};
use portcullis_core::time::Timestamp;

use super::directory::ClientFacts;
use super::error::{AssertionFault, OAuthError};
use super::{OAuthState, TOKEN_PATH};
use crate::keys::jwt;

/// Longest assertion looked at (the refusal's description states it).
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;
/// Most keys a client may register.
pub const MAX_CLIENT_KEYS: usize = 10;

fn allowed(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::RS256
            | Algorithm::PS256
            | Algorithm::EdDSA
    )
}

/// An assertion that passed [`precheck`]: its header and its (not yet verified) claims.
#[derive(Debug)]
pub struct Prechecked {
    header: jsonwebtoken::Header,
    claims: AssertionClaims,
}

/// Checks everything about an assertion that depends on the assertion alone, the presented
/// client id and public configuration: size, header, algorithm allow-list and claims (core's
/// [`check_assertion`], on the claims as sent). Run before anything stored is looked at, so its
/// refusals may say what is wrong (see `error.rs`): the same assertion gets the same answer
/// whether or not the client exists. [`verify`] then proves the claims were signed.
pub fn precheck(
    oauth: &OAuthState,
    assertion: &str,
    client_id: &str,
    now: Timestamp,
) -> Result<Prechecked, AssertionFault> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(AssertionFault::TooLong);
    }
    // `alg: none` and unknown algorithms fail to parse here.
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionFault::Malformed)?;
    if !allowed(header.alg) {
        return Err(AssertionFault::AlgNotAllowed);
    }
    let claims = unverified_claims(assertion)?;
    let issuer = &oauth.issuer;
    let token_endpoint = format!("{issuer}{TOKEN_PATH}");
    check_assertion(
        &claims,
        client_id,
        &[issuer.as_str(), token_endpoint.as_str()],
        now,
        jwt::LEEWAY,
    )?;
    Ok(Prechecked { header, claims })
}

/// The claims of a compact JWS, unverified.
fn unverified_claims(assertion: &str) -> Result<AssertionClaims, AssertionFault> {
    let mut parts = assertion.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AssertionFault::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AssertionFault::Malformed)?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| AssertionFault::Malformed)?;
    serde_json::from_value(value).map_err(|_| AssertionFault::MissingClaims)
}

/// Verifies a prechecked client assertion against the client's registered keys and records
/// its `jti`. The outer error is an internal failure; the inner one a reason to refuse the
/// client, decided against stored state (so answered as `Refusal::NotAuthenticated`).
pub async fn verify(
    oauth: &OAuthState,
    store: &dyn portcullis_store::Store,
    facts: &ClientFacts,
    assertion: &str,
    checked: &Prechecked,
    now: Timestamp,
) -> Result<Result<(), &'static str>, OAuthError> {
    let client = &facts.client;
    let header = &checked.header;
    let set: Arc<JwkSet> = match (&client.jwks, &client.jwks_uri) {
        (Some(_), _) => facts
            .inline_jwks
            .clone()
            .ok_or_else(|| OAuthError::internal("stored client JWKS is invalid"))?,
        (None, Some(uri)) => {
            match oauth
                .remote_jwks
                .keys(uri, header.kid.as_deref(), now)
                .await
            {
                Ok(set) => set,
                Err(reason) => return Ok(Err(reason)),
            }
        }
        (None, None) => return Ok(Err("client_has_no_keys")),
    };
    let key = match &header.kid {
        Some(kid) => set
            .keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid.as_str())),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    };
    let Some(key) = key else {
        return Ok(Err("assertion_unknown_key"));
    };
    if !key_fits(key, header.alg) {
        return Ok(Err("assertion_alg_does_not_match_key"));
    }
    let Ok(decoding) = DecodingKey::from_jwk(key) else {
        return Ok(Err("assertion_unusable_key"));
    };
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = ["exp", "iss", "sub", "aud"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let Ok(data) = jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding, &validation)
    else {
        return Ok(Err("assertion_bad_signature"));
    };
    // The signed claims are the bytes `precheck` read; a difference would mean two parsers
    // disagree, and then nothing checked may be trusted.
    if data.claims != checked.claims {
        return Ok(Err("assertion_claims_differ_from_precheck"));
    }
    let claims = data.claims;
    let fresh = store
        .record_assertion_jti(
            &client.id,
            &claims.jti,
            Timestamp::from_secs(claims.exp).saturating_add(jwt::LEEWAY),
            now,
        )
        .await?;
    if !fresh {
        return Ok(Err("assertion_replayed"));
    }
    Ok(Ok(()))
}

/// The key's type fits the algorithm, and its `alg`, if stated, is this one.
fn key_fits(key: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    if let Some(stated) = key.common.key_algorithm {
        if format!("{stated:?}") != format!("{alg:?}") {
            return false;
        }
    }
    matches!(
        (&key.algorithm, alg),
        (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
            | (P::RSA(_), Algorithm::RS256 | Algorithm::PS256)
            | (P::OctetKeyPair(_), Algorithm::EdDSA)
    )
}

/// Validates a JWKS a client registers: 1 to [`MAX_CLIENT_KEYS`] public asymmetric keys, each
/// with a `kid` when there is more than one. Returns the JWKS as compact JSON for storage.
pub fn validate_client_jwks(jwks: &serde_json::Value) -> Result<String, &'static str> {
    const PRIVATE: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    let keys = jwks
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("jwks must be an object with a keys array")?;
    if keys.is_empty() || keys.len() > MAX_CLIENT_KEYS {
        return Err("jwks must hold 1 to 10 keys");
    }
    for k in keys {
        if PRIVATE.iter().any(|m| k.get(m).is_some()) {
            return Err("jwks must hold public keys only");
        }
        if keys.len() > 1 && k.get("kid").and_then(|v| v.as_str()).is_none() {
            return Err("every key needs a kid when there are several");
        }
    }
    let set: JwkSet =
        serde_json::from_value(jwks.clone()).map_err(|_| "jwks is not a valid JWK set")?;
    for k in &set.keys {
        let asymmetric = matches!(
            k.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_)
                | jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
                | jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_)
        );
        if !asymmetric || DecodingKey::from_jwk(k).is_err() {
            return Err("jwks keys must be usable EC, RSA or OKP public keys");
        }
    }
    serde_json::to_string(jwks).map_err(|_| "jwks is not serialisable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_size_description_states_the_limit() {
        use crate::oauth::error::Refusal;
        let d = Refusal::Assertion(AssertionFault::TooLong)
            .entry()
            .description;
        assert!(d.contains(&format!(" {MAX_ASSERTION_LEN} bytes")), "{d}");
    }

    #[test]
    fn only_asymmetric_algorithms_are_allowed() {
        assert!(allowed(Algorithm::ES256));
        assert!(!allowed(Algorithm::HS256));
        assert!(!allowed(Algorithm::HS512));
    }

    #[test]
    fn registered_jwks_must_be_public_asymmetric_keys() {
        let ec = json!({"kty": "EC", "crv": "P-256", "kid": "a",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        assert!(validate_client_jwks(&json!({"keys": [ec]})).is_ok());
        let mut private = ec.clone();
        private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        assert!(validate_client_jwks(&json!({"keys": [private]})).is_err());
        assert!(validate_client_jwks(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).is_err());
        assert!(validate_client_jwks(&json!({"keys": []})).is_err());
        assert!(validate_client_jwks(&json!([ec])).is_err());
    }
}
