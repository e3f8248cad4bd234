//! Signing: private keys parsed once (PKCS#8, on aws-lc-rs) and a [`Signer`] whose protected
//! header is encoded once, so a token costs one JSON serialisation and one signature.
//!
//! `jsonwebtoken` rebuilds (and re-checks) the key pair from PKCS#8 on every `encode`, which
//! measured at about 40% of the cost of an ES256 token and 14% of the whole client-credentials
//! request (BENCHMARKS.md): the measured reason DESIGN.md asks for before doing this layer
//! ourselves. The layer is held to RFC 7520 section 4.1 (RS256) and RFC 8037 appendix A.4
//! (EdDSA), which are deterministic, and for ES256 to an independent verifier under the RFC 7515
//! appendix A.3 key (tests below).
//!
//! Only the algorithms of [`Alg::SIGNING`] sign. This module must never parse a token, and never
//! let private key material reach a `Debug` string or a log (it prints `[redacted]`).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::secret::Secret;
use serde::Serialize;
use serde_json::{json, Value};

use crate::alg::Alg;

/// Why a key cannot sign, or a signature failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the private key does not parse as a {0} PKCS#8 key")]
    Key(Alg),
    #[error("the key is none of the algorithms accepted here ({0})")]
    NoAcceptedAlgorithm(String),
    #[error("Portcullis does not sign with {0}")]
    NotASigningAlgorithm(Alg),
    #[error("key generation failed")]
    Generate,
    #[error("the claims do not serialise: {0}")]
    Claims(#[from] serde_json::Error),
    #[error("the signature operation failed")]
    Signature,
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key parsed once, pinned to the one algorithm it signs with.
pub struct SigningKeyPair {
    alg: Alg,
    pair: Pair,
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("alg", &self.alg)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl SigningKeyPair {
    /// Parses a PKCS#8 DER private key of `alg` (ES256: P-256; EdDSA: Ed25519; RS256: RSA of at
    /// least 2048 bits). A key of another type is refused.
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<Self, SignError> {
        let pair = match alg {
            Alg::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .ok()
                .map(Pair::Ecdsa),
            Alg::RS256 => RsaKeyPair::from_pkcs8(der).ok().map(Pair::Rsa),
            Alg::EdDSA => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .ok()
                .map(Pair::Ed25519),
            other => return Err(SignError::NotASigningAlgorithm(other)),
        };
        pair.map(|pair| Self { alg, pair })
            .ok_or(SignError::Key(alg))
    }

    /// Parses a PKCS#8 DER private key of whichever of `candidates` it is (the first that fits).
    pub fn from_pkcs8_of(candidates: &[Alg], der: &[u8]) -> Result<Self, SignError> {
        candidates
            .iter()
            .find_map(|alg| Self::from_pkcs8(*alg, der).ok())
            .ok_or_else(|| {
                let names: Vec<&str> = candidates.iter().map(|a| a.as_str()).collect();
                SignError::NoAcceptedAlgorithm(names.join(", "))
            })
    }

    /// A fresh key pair of `alg`, with its PKCS#8 DER encoding (to seal for storage).
    pub fn generate(alg: Alg) -> Result<(Secret<Vec<u8>>, Self), SignError> {
        let der = match alg {
            Alg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map(|d| d.as_ref().to_vec()),
            Alg::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8())
                .map(|d| d.as_ref().to_vec()),
            Alg::RS256 => RsaKeyPair::generate(KeySize::Rsa2048).and_then(|k| {
                let der: aws_lc_rs::encoding::Pkcs8V1Der = k.as_der()?;
                Ok(der.as_ref().to_vec())
            }),
            other => return Err(SignError::NotASigningAlgorithm(other)),
        }
        .map_err(|_| SignError::Generate)?;
        let pair = Self::from_pkcs8(alg, &der)?;
        Ok((Secret::new(der), pair))
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The public key as a JWK holding only its required members (RFC 7638 order), without
    /// `kid`, `alg` or `use`: add those with [`public_jwk_for_jwks`].
    pub fn public_jwk(&self) -> Value {
        match &self.pair {
            Pair::Ecdsa(k) => {
                // Uncompressed SEC1 point: 0x04 || x(32) || y(32) (checked at parse time by
                // aws-lc-rs; the slices below cannot go out of range for a P-256 key).
                let p = k.public_key().as_ref();
                let (x, y) = p
                    .get(1..)
                    .unwrap_or_default()
                    .split_at(p.len().saturating_sub(1) / 2);
                json!({"crv": "P-256", "kty": "EC", "x": b64(x), "y": b64(y)})
            }
            Pair::Ed25519(k) => {
                json!({"crv": "Ed25519", "kty": "OKP", "x": b64(k.public_key().as_ref())})
            }
            Pair::Rsa(k) => {
                let public = k.public_key();
                json!({
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                })
            }
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            Pair::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Signature),
            Pair::Rsa(k) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut out,
                )
                .map_err(|_| SignError::Signature)?;
                Ok(out)
            }
            Pair::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// A public JWK as published in a JWKS: the required members plus `kid` (the RFC 7638
/// thumbprint), `alg` and `use: sig`. Returns the JWK and its kid.
pub fn public_jwk_for_jwks(key: &SigningKeyPair) -> (Value, String) {
    let mut jwk = key.public_jwk();
    // Only fails for a JWK without its required members, which public_jwk never builds.
    let kid = crate::jwk::thumbprint(&jwk)
        .map(|t| t.to_string())
        .unwrap_or_default();
    if let Value::Object(map) = &mut jwk {
        map.insert("kid".into(), Value::String(kid.clone()));
        map.insert("alg".into(), Value::String(key.alg().as_str().into()));
        map.insert("use".into(), Value::String("sig".into()));
    }
    (jwk, kid)
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A key ready to sign one kind of token: the protected header (`alg` of the key, then the
/// profile's `typ` and the key's `kid`) is encoded once.
pub struct Signer {
    key: SigningKeyPair,
    kid: Option<String>,
    /// The base64url protected header followed by `.`: the same for every token of this key.
    header_prefix: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.key.alg)
            .field("kid", &self.kid)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Signer {
    /// A signer with the header `{"alg", "kid", "typ"}` (members absent when `None`). The `alg`
    /// is always the key's: a signer cannot state another.
    pub fn new(key: SigningKeyPair, typ: Option<&str>, kid: Option<&str>) -> Self {
        let mut header = serde_json::Map::new();
        header.insert("alg".into(), Value::String(key.alg.as_str().into()));
        if let Some(kid) = kid {
            header.insert("kid".into(), Value::String(kid.into()));
        }
        if let Some(typ) = typ {
            header.insert("typ".into(), Value::String(typ.into()));
        }
        let header = Value::Object(header).to_string();
        Self::with_header_json(key, kid.map(str::to_owned), header.as_bytes())
    }

    /// A signer with an exact header (the published vectors fix its bytes).
    pub(crate) fn with_header_json(
        key: SigningKeyPair,
        kid: Option<String>,
        header_json: &[u8],
    ) -> Self {
        let mut header_prefix = URL_SAFE_NO_PAD.encode(header_json);
        header_prefix.push('.');
        Self {
            key,
            kid,
            header_prefix,
        }
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn alg(&self) -> Alg {
        self.key.alg
    }

    pub fn key(&self) -> &SigningKeyPair {
        &self.key
    }

    /// The compact JWS of `claims` serialised as JSON.
    pub fn sign<T: Serialize + ?Sized>(&self, claims: &T) -> Result<String, SignError> {
        self.compact(&serde_json::to_vec(claims)?)
    }

    /// JWS compact serialisation of `payload` under this signer's header.
    pub fn compact(&self, payload: &[u8]) -> Result<String, SignError> {
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

#[cfg(test)]
mod tests {
    //! The signing layer against published vectors. RSASSA-PKCS1-v1_5 and Ed25519 are
    //! deterministic, so RFC 7520 and RFC 8037 fix the exact output; ECDSA is randomised, so its
    //! output is checked by an independent verifier (jsonwebtoken) under the RFC 7515 key.

    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey};

    fn b64d(s: &str) -> Vec<u8> {
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
                n: b64d(n),
                e: b64d("AQAB"),
            },
            d: b64d(d),
            p: b64d(p),
            q: b64d(q),
            dP: b64d(dp),
            dQ: b64d(dq),
            qInv: b64d(qi),
        };
        let key = RsaKeyPair::from_components(&components).expect("RFC 7520 key");
        let signer = Signer::with_header_json(
            SigningKeyPair {
                alg: Alg::RS256,
                pair: Pair::Rsa(key),
            },
            Some("bilbo.baggins@hobbiton.example".into()),
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
        let seed = b64d("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
        let x = b64d("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        let key = Ed25519KeyPair::from_seed_and_public_key(&seed, &x).expect("RFC 8037 key");
        let signer = Signer::new(
            SigningKeyPair {
                alg: Alg::EdDSA,
                pair: Pair::Ed25519(key),
            },
            None,
            None,
        );
        let jws = signer.compact(b"Example of Ed25519 signing").expect("sign");
        assert_eq!(
            jws,
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7\
             -09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn es256_output_verifies_under_the_rfc7515_a3_key_with_an_independent_verifier() {
        let (x, y) = (
            "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        );
        let mut point = vec![4u8];
        point.extend(b64d(x));
        point.extend(b64d(y));
        let key = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &b64d("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"),
            &point,
        )
        .expect("RFC 7515 A.3 key");
        let pair = SigningKeyPair {
            alg: Alg::ES256,
            pair: Pair::Ecdsa(key),
        };
        assert_eq!(
            pair.public_jwk(),
            json!({"crv": "P-256", "kty": "EC", "x": x, "y": y})
        );
        let signer = Signer::new(pair, None, None);
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
        assert_eq!(b64d(parts[2]).len(), 64, "R || S, 32 bytes each");
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
    fn generated_keys_sign_what_their_published_jwk_verifies() {
        for alg in Alg::SIGNING {
            let (der, pair) = SigningKeyPair::generate(alg).expect("generate");
            let (jwk, kid) = public_jwk_for_jwks(&pair);
            assert_eq!(kid.len(), 43, "base64url SHA-256");
            assert_eq!(jwk["kid"], kid.as_str());
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["use"], "sig");
            assert!(
                jwk.get("d").is_none(),
                "public JWK must not hold private parts"
            );
            // The PKCS#8 parses back; the wrong algorithm's parser refuses it.
            assert_eq!(
                SigningKeyPair::from_pkcs8(alg, der.expose())
                    .expect("parse")
                    .alg(),
                alg
            );
            let other = if alg == Alg::ES256 {
                Alg::EdDSA
            } else {
                Alg::ES256
            };
            assert!(matches!(
                SigningKeyPair::from_pkcs8(other, der.expose()),
                Err(SignError::Key(a)) if a == other
            ));
            let signer = Signer::new(pair, Some("at+jwt"), Some(&kid));
            let token = signer.sign(&json!({"sub": "a"})).expect("sign");
            let keys =
                crate::jwk::parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes(), &Alg::ALL)
                    .expect("jwks");
            let u = crate::compact::parse(&token, 8192).expect("parse");
            assert_eq!(u.header.alg, alg);
            assert_eq!(u.header.kid.as_deref(), Some(kid.as_str()));
            assert_eq!(u.header.typ.as_deref(), Some("at+jwt"));
            let key = keys.find(Some(&kid)).expect("key");
            assert_eq!(u.verify_with(key), Ok(()), "{alg}");
        }
    }

    #[test]
    fn only_signing_algorithms_sign_and_candidates_are_tried_in_order() {
        assert!(matches!(
            SigningKeyPair::generate(Alg::PS256),
            Err(SignError::NotASigningAlgorithm(Alg::PS256))
        ));
        let (der, _) = SigningKeyPair::generate(Alg::ES256).expect("generate");
        let found = SigningKeyPair::from_pkcs8_of(&[Alg::EdDSA, Alg::ES256], der.expose())
            .expect("fits ES256");
        assert_eq!(found.alg(), Alg::ES256);
        let e = SigningKeyPair::from_pkcs8_of(&[Alg::EdDSA], der.expose()).expect_err("not EdDSA");
        assert!(e.to_string().contains("EdDSA"), "{e}");
        assert!(SigningKeyPair::from_pkcs8_of(&[Alg::EdDSA], b"junk").is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let (_, pair) = SigningKeyPair::generate(Alg::EdDSA).expect("generate");
        let d = format!("{pair:?}");
        assert!(
            d.contains("[redacted]") && !d.contains("Ed25519KeyPair"),
            "{d}"
        );
        let s = Signer::new(pair, None, Some("k"));
        let d = format!("{s:?}");
        assert!(
            d.contains("[redacted]") && !d.contains("Ed25519KeyPair"),
            "{d}"
        );
    }
}
