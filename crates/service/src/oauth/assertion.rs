//! `private_key_jwt` client authentication (RFC 7523 section 2.2, OpenID Connect Core 9).
//!
//! The assertion must be signed with an asymmetric algorithm by a key from the client's
//! registered JWKS, given inline or fetched from its registered `jwks_uri` (see
//! [`super::remote_jwks`]). Parsing, key choice and the signature are jose's client-assertion
//! profile: the algorithm is checked against an allow-list before any key is touched, so `none`
//! and HS256 keyed with the client's public key never verify; every key is pinned to one
//! algorithm (an RSA key registered without `alg` to RS256 or PS256, as the assertion states,
//! see [`ClientKeys`]); keys named in the assertion's own header (`jwk`, `jku`, `x5u`, `x5c`)
//! are ignored. Claims are checked by core; this module records the `jti` until the assertion
//! expires, so a replay is refused, and names the reason a client is refused for the audit log.
//!
//! Two steps, so that refusals may help without telling who exists: [`precheck`] judges what
//! depends on the assertion alone (size, structure, algorithm, claims as sent), before anything
//! stored is looked at, and its refusals may say what is wrong; [`verify`] then checks only the
//! signature with the client's keys (jose's signature-only step), on the same parsed assertion,
//! and records the `jti` of the claims `precheck` read; its refusals are decided against stored
//! state and get the one fixed answer. The claims are read once and checked once per request,
//! and the signature verified once.
//!
//! This module must never parse a JWS or a JWK itself, never let what it finds in stored state
//! change the answer a caller gets, and never answer a broken stored JWKS with a server error:
//! the client is refused (`invalid_client`), the reason audited.

use std::sync::Arc;

use portcullis_core::oauth::{check_assertion, AssertionClaims};
use portcullis_core::time::Timestamp;
use portcullis_jose::profile::client_assertion::{self, ClientKeys};
use portcullis_jose::{JoseError, JwksError, Unverified};

use super::directory::ClientFacts;
use super::error::{AssertionFault, OAuthError};
use super::OAuthState;
use crate::keys::jwt;

/// Longest assertion looked at (the refusal's description states it).
pub const MAX_ASSERTION_LEN: usize = client_assertion::MAX_LEN;
/// Most keys a client may register.
pub const MAX_CLIENT_KEYS: usize = client_assertion::MAX_CLIENT_KEYS;

/// An assertion that passed [`precheck`]: parsed once, its claims read and checked as sent, its
/// signature not yet verified.
#[derive(Debug)]
pub struct Prechecked<'a> {
    unverified: Unverified<'a>,
    claims: AssertionClaims,
}

impl Prechecked<'_> {
    /// The claims as sent (checked by core, not yet proven signed).
    pub fn claims(&self) -> &AssertionClaims {
        &self.claims
    }
}

/// Checks everything about an assertion that depends on the assertion alone, the presented
/// client id and public configuration: size, structure, the algorithm allow-list and core's
/// claim rules ([`check_assertion`]) on the claims as sent. Run before anything stored is looked
/// at, so its refusals may say what is wrong: the same assertion gets the same answer whether
/// or not the client exists. [`verify`] then proves these very bytes were signed.
pub fn precheck<'a>(
    oauth: &OAuthState,
    assertion: &'a str,
    client_id: &str,
    now: Timestamp,
) -> Result<Prechecked<'a>, AssertionFault> {
    let unverified = client_assertion::parse(assertion).map_err(|e| match e {
        JoseError::TooLarge => AssertionFault::TooLong,
        JoseError::AlgNone | JoseError::AlgNotAllowed => AssertionFault::AlgNotAllowed,
        _ => AssertionFault::Malformed,
    })?;
    // Duplicate members are refused before the claims are typed.
    unverified.claims().map_err(|_| AssertionFault::Malformed)?;
    let claims: AssertionClaims =
        serde_json::from_slice(&unverified.payload).map_err(|_| AssertionFault::MissingClaims)?;
    check_assertion(
        &claims,
        client_id,
        &oauth.assertion_audiences(),
        now,
        jwt::LEEWAY,
    )?;
    Ok(Prechecked { unverified, claims })
}

/// Verifies the signature of a prechecked client assertion with the client's registered keys
/// and records its `jti`. The outer error is an internal failure; the inner one a reason to
/// refuse the client, decided against stored state (so answered as
/// `Refusal::NotAuthenticated`).
pub async fn verify(
    oauth: &OAuthState,
    store: &dyn portcullis_store::Store,
    facts: &ClientFacts,
    checked: &Prechecked<'_>,
    now: Timestamp,
) -> Result<Result<(), &'static str>, OAuthError> {
    let client = &facts.client;
    let unverified = &checked.unverified;
    let keys: Arc<ClientKeys> = match (&client.jwks, &client.jwks_uri) {
        (Some(_), _) => match &facts.inline_jwks {
            Some(keys) => keys.clone(),
            None => return Ok(Err("client_jwks_invalid")),
        },
        (None, Some(uri)) => {
            match oauth
                .remote_jwks
                .keys(uri, unverified.header.kid.as_deref(), now)
                .await
            {
                Ok(set) => set,
                Err(reason) => return Ok(Err(reason)),
            }
        }
        (None, None) => return Ok(Err("client_has_no_keys")),
    };
    // The claims were read and checked by `precheck` (against this same client id: the
    // presented one is the client looked up); only the signature is left.
    if let Err(e) =
        client_assertion::verify_signature(unverified, keys.for_alg(unverified.header.alg))
    {
        return Ok(Err(reason(e)));
    }
    let claims = &checked.claims;
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

/// The audited reason for an assertion jose refused.
fn reason(e: JoseError) -> &'static str {
    match e {
        JoseError::TooLarge => "assertion_too_long",
        JoseError::AlgNone | JoseError::AlgNotAllowed => "assertion_alg_not_allowed",
        JoseError::UnknownKid => "assertion_unknown_key",
        JoseError::AlgKeyMismatch => "assertion_alg_does_not_match_key",
        JoseError::BadSignature => "assertion_bad_signature",
        JoseError::Assertion(_) => e.as_str(),
        // Structure, header, `typ`, missing or mistyped claims.
        _ => "assertion_malformed",
    }
}

/// Validates a JWKS a client registers: 1 to [`MAX_CLIENT_KEYS`] public asymmetric keys, each
/// with a `kid` when there is more than one, every one usable for signatures (jose's rule, the
/// one assertions are later checked with). Returns the JWKS as compact JSON for storage.
pub fn validate_client_jwks(jwks: &serde_json::Value) -> Result<String, String> {
    ClientKeys::parse(jwks, MAX_CLIENT_KEYS).map_err(|e| match e {
        JwksError::NotAJwks => "jwks must be an object with a keys array".to_owned(),
        JwksError::NoUsableKey | JwksError::TooManyKeys => {
            format!("jwks must hold 1 to {MAX_CLIENT_KEYS} keys")
        }
        JwksError::PrivateKey => "jwks must hold public keys only".to_owned(),
        JwksError::MissingKid => "every key needs a kid when there are several".to_owned(),
        JwksError::UnusableKey { index, why } => {
            format!("jwks keys must be usable EC, RSA or OKP public keys (key {index}: {why})")
        }
        JwksError::NotAPublicKey => {
            "jwks keys must be usable EC, RSA or OKP public keys".to_owned()
        }
    })?;
    serde_json::to_string(jwks).map_err(|_| "jwks is not serialisable".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    /// The claims are read and checked once, before any lookup, against the audiences the OAuth
    /// state built once: the issuer and the token endpoint, nothing else. The prechecked value
    /// carries those claims on, so verification reads nothing again.
    #[test]
    fn precheck_reads_the_claims_once_against_the_audiences_built_at_start() {
        use portcullis_jose::{Alg, Signer, SigningKeyPair};
        let oauth = OAuthState::new(
            "https://auth.test".into(),
            &crate::oauth::OAuthConfig::default(),
            &crate::keys::KeySet {
                keys: vec![],
                primary: portcullis_core::signing::SigningAlgorithm::ES256,
            },
        )
        .expect("oauth");
        assert_eq!(
            oauth.assertion_audiences(),
            ["https://auth.test", "https://auth.test/oauth2/token"]
        );
        let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let signer = Signer::new(pair, None, Some("k1"));
        let now = Timestamp::from_secs(1_800_000_000);
        let assertion = |aud: &str| {
            signer
                .sign(&json!({"iss": "cl_1", "sub": "cl_1", "aud": aud,
                    "exp": now.as_secs() + 60, "iat": now.as_secs(), "jti": "j-1"}))
                .expect("sign")
        };
        for aud in oauth.assertion_audiences() {
            let a = assertion(aud);
            let checked = precheck(&oauth, &a, "cl_1", now).expect("accepted");
            assert_eq!(checked.claims().jti, "j-1");
        }
        let other = assertion("https://auth.test/oauth2/introspect");
        assert_eq!(
            precheck(&oauth, &other, "cl_1", now).err(),
            Some(AssertionFault::Claims(
                portcullis_core::oauth::AssertionError::WrongAudience
            ))
        );
        let a = assertion("https://auth.test");
        assert_eq!(
            precheck(&oauth, &a, "cl_2", now).err(),
            Some(AssertionFault::Claims(
                portcullis_core::oauth::AssertionError::IssuerMismatch
            ))
        );
    }

    #[test]
    fn the_size_description_states_the_limit() {
        use crate::oauth::error::Refusal;
        let d = Refusal::Assertion(AssertionFault::TooLong)
            .entry()
            .description;
        assert!(d.contains(&format!(" {MAX_ASSERTION_LEN} bytes")), "{d}");
    }

    #[test]
    fn jose_refusals_map_to_the_audited_reasons() {
        use portcullis_core::oauth::AssertionError;
        for (e, want) in [
            (JoseError::TooLarge, "assertion_too_long"),
            (JoseError::AlgNone, "assertion_alg_not_allowed"),
            (JoseError::AlgNotAllowed, "assertion_alg_not_allowed"),
            (JoseError::UnknownKid, "assertion_unknown_key"),
            (
                JoseError::AlgKeyMismatch,
                "assertion_alg_does_not_match_key",
            ),
            (JoseError::BadSignature, "assertion_bad_signature"),
            (JoseError::Malformed, "assertion_malformed"),
            (JoseError::WrongTyp, "assertion_malformed"),
            (JoseError::MissingClaim("jti"), "assertion_malformed"),
            (
                JoseError::Assertion(AssertionError::Expired),
                "assertion_expired",
            ),
            (
                JoseError::Assertion(AssertionError::WrongAudience),
                "assertion_wrong_audience",
            ),
        ] {
            assert_eq!(reason(e), want, "{e:?}");
        }
    }
}
