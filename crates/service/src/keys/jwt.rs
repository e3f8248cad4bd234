//! Signing and checking access tokens (RFC 9068).
//!
//! Signing is a thin JWS compact serialisation (RFC 7515 section 7.1) over aws-lc-rs: the key
//! pair is parsed once when a key becomes active and the protected header is encoded once, so a
//! token costs one JSON serialisation and one signature. `jsonwebtoken` rebuilds (and re-checks)
//! the key pair from PKCS#8 on every `encode`, which measured at about 40% of the cost of an
//! ES256 token and 14% of the whole client-credentials request (see BENCHMARKS.md); that is the
//! measured reason DESIGN.md asks for before doing this layer ourselves. The layer is checked
//! against the RFC 7520 section 4.1 (RS256) and RFC 8037 appendix A.4 (EdDSA) vectors, which are
//! deterministic, and for ES256 by verifying its output with `jsonwebtoken` under the RFC 7515
//! appendix A.3 key. It only signs: it never parses a token.
//!
//! Verification (introspection, revocation) stays with `jsonwebtoken`: it pins the algorithm to
//! the key named by `kid`, ignores every key-carrying header (`jwk`, `jku`, `x5u`, `x5c`), and
//! requires `typ: at+jwt`, our issuer and a current validity window.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
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

/// Why a key cannot sign, or a signature failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the private key does not parse as a {0} PKCS#8 key")]
    Key(SigningAlgorithm),
    #[error("the claims do not serialise: {0}")]
    Claims(#[from] serde_json::Error),
    #[error("the signature operation failed")]
    Signature,
}

/// A parsed private key, ready to sign.
enum KeyPair {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl KeyPair {
    fn from_pkcs8(alg: SigningAlgorithm, der: &[u8]) -> Result<Self, SignError> {
        use aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let parsed = match alg {
            // FIXED: JWS wants R || S (RFC 7518 section 3.4), not ASN.1 DER.
            SigningAlgorithm::ES256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .ok()
                    .map(Self::Ecdsa)
            }
            SigningAlgorithm::RS256 => RsaKeyPair::from_pkcs8(der).ok().map(Self::Rsa),
            SigningAlgorithm::EdDSA => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .ok()
                .map(Self::Ed25519),
        };
        parsed.ok_or(SignError::Key(alg))
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match self {
            Self::Ecdsa(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Signature),
            Self::Rsa(k) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut out,
                )
                .map_err(|_| SignError::Signature)?;
                Ok(out)
            }
            Self::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// The key that signs new tokens, ready to use.
pub struct Signer {
    pub kid: String,
    key: KeyPair,
    /// The base64url protected header followed by `.`: the same for every token of this key.
    header_prefix: String,
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
        let pair = KeyPair::from_pkcs8(key.algorithm, key.private_pkcs8())?;
        let header = serde_json::json!({
            "alg": key.algorithm.as_str(),
            "typ": ACCESS_TOKEN_TYP,
            "kid": key.kid,
        });
        Ok(Self::with_header(
            key.kid.clone(),
            pair,
            header.to_string().as_bytes(),
        ))
    }

    fn with_header(kid: String, key: KeyPair, header_json: &[u8]) -> Self {
        let mut header_prefix = URL_SAFE_NO_PAD.encode(header_json);
        header_prefix.push('.');
        Self {
            kid,
            key,
            header_prefix,
        }
    }

    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, SignError> {
        self.compact(&serde_json::to_vec(claims)?)
    }

    /// JWS compact serialisation of `payload` under this signer's header.
    fn compact(&self, payload: &[u8]) -> Result<String, SignError> {
        // Header, payload and an RS256 signature (the longest: 342 characters) in one allocation.
        let mut out = String::with_capacity(self.header_prefix.len() + payload.len() * 4 / 3 + 352);
        out.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        let signature = self.key.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        Ok(out)
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

#[cfg(test)]
mod tests {
    //! The signing layer against published vectors. RSASSA-PKCS1-v1_5 and Ed25519 are
    //! deterministic, so RFC 7520 and RFC 8037 fix the exact output; ECDSA is randomised, so its
    //! output is checked by an independent verifier under the RFC 7515 key.

    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).expect("base64url")
    }

    /// RFC 7520 section 4 payload.
    const FRODO: &str = "It\u{2019}s a dangerous business, Frodo, going out your door. You step \
        onto the road, and if you don't keep your feet, there\u{2019}s no knowing where you \
        might be swept off to.";

    #[test]
    fn rs256_matches_rfc7520_section_4_1() {
        // RFC 7520 section 3.4, the RSA private key.
        let n = "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0\
            VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-\
            oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb\
            9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";
        let d = "bWUC9B-EFRIo8kpGfh0ZuyGPvMNKvYWNtB_ikiH9k20eT-O1q_I78eiZkpXxXQ0UTEs2LsNRS-8uJbvQ-\
            A1irkwMSMkK1J3XTGgdrhCku9gRldY7sNA_AKZGh-Q661_42rINLRCe8W-nZ34ui_qOfkLnK9QWDDqpaIsA-bMw\
            WWSDFu2MUBYwkHTMEzLYGqOe04noqeq1hExBTHBOBdkMXiuFhUq1BU6l-DqEiWxqg82sXt2h-LMnT3046AOYJoR\
            ioz75tSUQfGCshWTBnP5uDjd18kKhyv07lhfSJdrPdM5Plyl21hsFf4L_mHCuoFau7gdsPfHPxxjVOcOpBrQzwQ";
        let p = "3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-SFfGQeutao2TDjDAWU4V\
            upk8rw9JR0AzZ0N2fvuIAmr_WCsmGpeNqQnev1T7IyEsnh8UMt-n5CafhkikzhEsrmndH6LxOrvRJlsPp6Zv8bUq0k";
        let q = "uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_cu0Dm1MZwWmtdqDyI95HrUe\
            q3MP15vMMON8lHTeZu2lmKvwqW7anV5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-hdqRxHlSqAZ192zB3pVFJ0s7pFc";
        let dp = "B8PVvXkvJrj2L-GYQ7v3y9r6Kw5g9SahXBwsWUzp19TVlgI-YV85q1NIb1rxQtD-IsXXR3-TanevuRPR\
            t5OBOdiMGQp8pbt26gljYfKU_E9xn-RULHz0-ed9E9gXLKD4VGngpz-PfQ_q29pk5xWHoJp009Qf1HvChixRX59ehik";
        let dq = "CLDmDGduhylc9o7r84rEUVn7pzQ6PF83Y-iBZx5NT-TpnOZKF1pErAMVeKzFEl41DlHHqqBLSM0W1sOF\
            bwTxYWZDm6sI6og5iTbwQGIC3gnJKbi_7k_vJgGHwHxgPaX2PnvP-zyEkDERuf-ry4c_Z11Cq9AqC2yeL6kdKT1cYF8";
        let qi = "3PiqvXQN0zwMeE-sBvZgi289XP9XCQF3VWqPzMKnIgQp7_Tugo6-NZBKCQsMf3HaEGBjTVJs_jcK8-TRX\
            vaKe-7ZMaQj8VfBdYkssbu0NKDDhjJ-GtiseaDVWt7dcH0cfwxgFUHpQh7FoCrjFJ6h6ZEpMF6xmujs4qMpPz8aaI4";
        let components = aws_lc_rs::rsa::KeyPairComponents {
            public_key: aws_lc_rs::rsa::PublicKeyComponents {
                n: b64(n),
                e: b64("AQAB"),
            },
            d: b64(d),
            p: b64(p),
            q: b64(q),
            dP: b64(dp),
            dQ: b64(dq),
            qInv: b64(qi),
        };
        let key = RsaKeyPair::from_components(&components).expect("RFC 7520 key");
        let signer = Signer::with_header(
            "bilbo.baggins@hobbiton.example".into(),
            KeyPair::Rsa(key),
            br#"{"alg":"RS256","kid":"bilbo.baggins@hobbiton.example"}"#,
        );
        let jws = signer.compact(FRODO.as_bytes()).expect("sign");
        // RFC 7520 section 4.1.3, figure 17 (line breaks removed).
        let expected = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.\
            SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAg\
            b250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dp\
            bmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.\
            MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83x\
            uglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt\
            5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podG\
            U0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";
        assert_eq!(jws, expected);
    }

    #[test]
    fn eddsa_matches_rfc8037_appendix_a4() {
        let seed = b64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
        let x = b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        let key = Ed25519KeyPair::from_seed_and_public_key(&seed, &x).expect("RFC 8037 key");
        let signer =
            Signer::with_header(String::new(), KeyPair::Ed25519(key), br#"{"alg":"EdDSA"}"#);
        let jws = signer.compact(b"Example of Ed25519 signing").expect("sign");
        assert_eq!(
            jws,
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7\
             -09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn es256_output_verifies_under_the_rfc7515_a3_key_with_an_independent_verifier() {
        use aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let (x, y) = (
            "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        );
        let mut point = vec![4u8];
        point.extend(b64(x));
        point.extend(b64(y));
        let key = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &b64("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"),
            &point,
        )
        .expect("RFC 7515 A.3 key");
        let signer = Signer::with_header(String::new(), KeyPair::Ecdsa(key), br#"{"alg":"ES256"}"#);
        // RFC 7515 appendix A.3's payload, CRLFs included.
        let payload =
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
        let jws = signer.compact(payload).expect("sign");
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[1],
            "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        );
        assert_eq!(b64(parts[2]).len(), 64, "R || S, 32 bytes each");
        let public = DecodingKey::from_ec_components(x, y).expect("public key");
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(jsonwebtoken::crypto::verify(
            parts[2],
            input.as_bytes(),
            &public,
            Algorithm::ES256
        )
        .expect("verify"));
        let mut tampered = input.clone();
        tampered.push('x');
        assert!(!jsonwebtoken::crypto::verify(
            parts[2],
            tampered.as_bytes(),
            &public,
            Algorithm::ES256
        )
        .expect("verify"));
    }

    #[test]
    fn access_tokens_carry_typ_kid_and_verify_for_every_algorithm() {
        for alg in [
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
            SigningAlgorithm::EdDSA,
        ] {
            let (pkcs8, jwk) = crate::keys::generate(alg).expect("key");
            let kid = jwk["kid"].as_str().expect("kid").to_owned();
            let pair = KeyPair::from_pkcs8(alg, pkcs8.expose()).expect("parse");
            let header =
                serde_json::json!({"alg": alg.as_str(), "typ": ACCESS_TOKEN_TYP, "kid": kid});
            let signer = Signer::with_header(kid.clone(), pair, header.to_string().as_bytes());
            let now = Timestamp::from_secs(1_800_000_000);
            let claims = AccessTokenClaims {
                iss: "https://auth.test".into(),
                sub: "cl_a".into(),
                aud: "payments-api".into(),
                exp: now.as_secs() + 600,
                iat: now.as_secs(),
                nbf: now.as_secs(),
                jti: "j".into(),
                client_id: "cl_a".into(),
                scope: Some("payments:read".into()),
                tenant: "acme".into(),
            };
            let token = signer.sign(&claims).expect("sign");
            let stored = StoredSigningKey {
                kid: kid.clone(),
                algorithm: alg,
                state: KeyState::Active,
                public_jwk: jwk.to_string(),
                kek_id: String::new(),
                sealed_private_key: Vec::new(),
                created_at: now,
                activates_at: now,
                retired_at: None,
                publish_until: None,
            };
            let verified = verify(&token, &[stored], "https://auth.test", now).expect("verifies");
            assert_eq!(verified.kid, kid);
            assert_eq!(verified.claims, claims, "{alg}");
        }
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused() {
        let (pkcs8, _) = crate::keys::generate(SigningAlgorithm::EdDSA).expect("key");
        assert!(KeyPair::from_pkcs8(SigningAlgorithm::ES256, pkcs8.expose()).is_err());
        assert!(KeyPair::from_pkcs8(SigningAlgorithm::RS256, pkcs8.expose()).is_err());
    }
}
