//! Public keys from JWK and JWKS documents, each pinned to exactly one algorithm and parsed
//! once, and RFC 7638 thumbprints.
//!
//! A key's algorithm comes from its JWK `alg` member when present, otherwise from its type and
//! curve when that is unambiguous (EC P-256 is ES256, OKP Ed25519 is EdDSA). The key type and
//! curve must fit the algorithm. Keys that are symmetric, meant for encryption, of an algorithm
//! the caller does not allow, too weak, or not a valid point are skipped by [`parse_jwks`] (a
//! verifier following an issuer's JWKS) and refused by [`parse_jwks_all_usable`] (a client
//! registering its keys, where a key we would silently skip is a mistake to report).
//!
//! JWKs are read with jsonwebtoken's JWK types; the signature check itself calls aws-lc-rs
//! directly with the key parsed once at load time. Going through jsonwebtoken's verify re-parsed
//! the key and re-encoded the signature on every call, which the `jwt_validate` benchmark showed
//! costing more than the rules themselves; this path is held to the RFC 7520, RFC 8037 and
//! Wycheproof vectors in `tests/it/vectors.rs`.
//!
//! This module must never fetch a document, and never take a key from anywhere but the document
//! its caller hands it (never from a token header).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::{
    ParsedPublicKey, RsaParameters, RsaPublicKeyComponents, VerificationAlgorithm,
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use portcullis_core::confirmation::Thumbprint;
use serde_json::Value;

use crate::alg::Alg;

/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// Most keys read from one JWKS document.
const MAX_KEYS: usize = 64;

enum Material {
    /// EC and Ed25519 keys, parsed and validated once, with their raw encoding (the uncompressed
    /// EC point, the Ed25519 `x`): what an X.509 certificate's key is compared with.
    Parsed { key: ParsedPublicKey, raw: Vec<u8> },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        params: &'static RsaParameters,
    },
}

/// A public key pinned to one algorithm.
pub struct VerificationKey {
    pub kid: Option<String>,
    pub alg: Alg,
    material: Material,
    /// An RSA key without `alg`, pinned by the caller's choice (see
    /// [`KeySet::with_rsa_without_alg_as`]).
    rsa_pinned_here: bool,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// Verifies `signature` over `message` with this key's pinned algorithm.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Parsed { key, .. } => key.verify_sig(message, signature).is_ok(),
            Material::Rsa { n, e, params } => RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .is_ok(),
        }
    }
}

/// A public key as an X.509 certificate carries it (its SubjectPublicKeyInfo), for comparison
/// with registered JWKs (RFC 8705 `self_signed_tls_client_auth`).
#[derive(Debug, Clone, Copy)]
pub enum PublicKeyBytes<'a> {
    /// The uncompressed EC point or the raw Ed25519 key.
    Raw(&'a [u8]),
    /// An RSA modulus and exponent, big-endian (leading zeros ignored).
    Rsa { n: &'a [u8], e: &'a [u8] },
}

impl VerificationKey {
    /// Whether this is the key `presented` names: the same key bytes, never a key of another
    /// type that happens to share them.
    pub fn is_public_key(&self, presented: PublicKeyBytes<'_>) -> bool {
        let unsigned =
            |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|x| *x == 0).collect() };
        match (&self.material, presented) {
            (Material::Parsed { raw, .. }, PublicKeyBytes::Raw(p)) => raw.as_slice() == p,
            (Material::Rsa { n, e, .. }, PublicKeyBytes::Rsa { n: pn, e: pe }) => {
                *n == unsigned(pn) && *e == unsigned(pe)
            }
            _ => false,
        }
    }
}

/// The usable keys of one JWKS document.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerificationKey>>,
    without_kid: Vec<Arc<VerificationKey>>,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a key with this `kid` is held (a client's JWKS cache refetches when not).
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Whether any key of the set is `presented` ([`VerificationKey::is_public_key`]).
    pub fn holds(&self, presented: PublicKeyBytes<'_>) -> bool {
        self.by_kid
            .values()
            .chain(&self.without_kid)
            .any(|k| k.is_public_key(presented))
    }

    /// This set with every RSA key that had no `alg` pinned to `alg` (RS256 or PS256) instead;
    /// `None` when it holds no such key. The key material is reused, not parsed again.
    pub(crate) fn with_rsa_without_alg_as(&self, alg: Alg) -> Option<KeySet> {
        let repin = |key: &Arc<VerificationKey>| match &key.material {
            Material::Rsa { n, e, .. } if key.rsa_pinned_here => Arc::new(VerificationKey {
                kid: key.kid.clone(),
                alg,
                material: Material::Rsa {
                    n: n.clone(),
                    e: e.clone(),
                    params: rsa_params(alg),
                },
                rsa_pinned_here: true,
            }),
            _ => key.clone(),
        };
        let any = self
            .by_kid
            .values()
            .chain(&self.without_kid)
            .any(|k| k.rsa_pinned_here);
        any.then(|| KeySet {
            by_kid: self
                .by_kid
                .iter()
                .map(|(kid, key)| (kid.clone(), repin(key)))
                .collect(),
            without_kid: self.without_kid.iter().map(repin).collect(),
        })
    }

    /// This set without the keys named in `kids` (revoked signing keys).
    pub fn without(&self, kids: &std::collections::HashSet<String>) -> KeySet {
        KeySet {
            by_kid: self
                .by_kid
                .iter()
                .filter(|(kid, _)| !kids.contains(*kid))
                .map(|(kid, key)| (kid.clone(), key.clone()))
                .collect(),
            without_kid: self.without_kid.clone(),
        }
    }

    /// The key a token names. A token without `kid` is matched only when the set holds exactly
    /// one key (anything else would mean trying keys, which we never do).
    pub fn find(&self, kid: Option<&str>) -> Option<&Arc<VerificationKey>> {
        match kid {
            Some(k) => self.by_kid.get(k),
            None if self.len() == 1 => self.by_kid.values().next().or(self.without_kid.first()),
            None => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("JWKS is not a JSON object with a `keys` array")]
    NotAJwks,
    #[error("JWKS holds no usable signing key")]
    NoUsableKey,
    #[error("JWKS holds more keys than allowed")]
    TooManyKeys,
    #[error("JWKS holds private key material")]
    PrivateKey,
    #[error("every key needs a kid when there are several")]
    MissingKid,
    #[error("JWKS key {index} is unusable: {why}")]
    UnusableKey { index: usize, why: &'static str },
    #[error("JWK is not a public EC, RSA or OKP key with its required members")]
    NotAPublicKey,
}

/// Parses a JWKS document, keeping the keys usable with `allowed` algorithms.
pub fn parse_jwks(bytes: &[u8], allowed: &[Alg]) -> Result<KeySet, JwksError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| JwksError::NotAJwks)?;
    parse_jwk_set(&doc, allowed)
}

/// [`parse_jwks`] over a document already read as JSON (the token service's own published
/// keys, assembled from stored rows).
pub fn parse_jwk_set(doc: &Value, allowed: &[Alg]) -> Result<KeySet, JwksError> {
    read_set(doc, allowed, MAX_KEYS, Unusable::Skip, None)
}

/// Members that only a private or symmetric JWK carries (RFC 7518 section 6).
pub(crate) const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Parses a JWKS a client registers (inline or behind its `jwks_uri`): 1 to `max_keys` public
/// asymmetric keys, each with a `kid` when there is more than one, and every one usable with an
/// algorithm of `allowed`. Unlike [`parse_jwks`], nothing is skipped: a key that would never
/// verify anything is refused, so the client learns of its mistake at registration.
pub fn parse_jwks_all_usable(
    doc: &Value,
    allowed: &[Alg],
    max_keys: usize,
) -> Result<KeySet, JwksError> {
    read_set(doc, allowed, max_keys, Unusable::Refuse, None)
}

/// [`parse_jwks_all_usable`], with an RSA key that has no `alg` (and `allowed` both RSA
/// algorithms, so its type does not say which) pinned to `rsa_without_alg` instead of refused.
/// [`KeySet::with_rsa_without_alg_as`] gives the same set with such keys pinned to the other
/// algorithm, without parsing anything again.
pub(crate) fn parse_jwks_all_usable_pinning_rsa(
    doc: &Value,
    allowed: &[Alg],
    max_keys: usize,
    rsa_without_alg: Alg,
) -> Result<KeySet, JwksError> {
    read_set(
        doc,
        allowed,
        max_keys,
        Unusable::Refuse,
        Some(rsa_without_alg),
    )
}

/// What [`read_set`] does with a key it cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    /// Skip it (an issuer's JWKS may carry keys for others), and drop a repeated `kid`.
    Skip,
    /// Refuse the whole document, naming the key (a client's registration).
    Refuse,
}

/// The one JWKS reader behind [`parse_jwk_set`] and [`parse_jwks_all_usable`].
fn read_set(
    doc: &Value,
    allowed: &[Alg],
    max_keys: usize,
    unusable: Unusable,
    rsa_without_alg: Option<Alg>,
) -> Result<KeySet, JwksError> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Err(JwksError::NotAJwks);
    };
    let strict = unusable == Unusable::Refuse;
    if strict && keys.len() > max_keys {
        return Err(JwksError::TooManyKeys);
    }
    let mut set = KeySet::default();
    for (index, raw) in keys.iter().enumerate().take(max_keys) {
        if strict {
            if PRIVATE_MEMBERS.iter().any(|m| raw.get(m).is_some()) {
                return Err(JwksError::PrivateKey);
            }
            if keys.len() > 1 && raw.get("kid").and_then(Value::as_str).is_none() {
                return Err(JwksError::MissingKid);
            }
        }
        let key = match key_from_jwk(raw, allowed, rsa_without_alg) {
            Ok(k) => Arc::new(k),
            Err(why) if strict => return Err(JwksError::UnusableKey { index, why }),
            Err(why) => {
                tracing::debug!(why, "skipping a JWKS key");
                continue;
            }
        };
        match key.kid.clone() {
            Some(kid) => {
                if set.by_kid.insert(kid.clone(), key).is_some() {
                    if strict {
                        return Err(JwksError::UnusableKey {
                            index,
                            why: "kid repeated",
                        });
                    }
                    // A repeated kid is ambiguous: keep neither rather than guess.
                    tracing::warn!(kid, "JWKS repeats a kid; ignoring that kid");
                    set.by_kid.remove(&kid);
                }
            }
            None => set.without_kid.push(key),
        }
    }
    if set.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(set)
}

/// The RFC 7638 thumbprint of a public JWK: base64url SHA-256 of its required members (EC:
/// `crv kty x y`; OKP: `crv kty x`; RSA: `e kty n`) in lexicographic order, without whitespace.
/// Other members (`kid`, `alg`, `use`) never change it.
pub fn thumbprint(jwk: &Value) -> Result<Thumbprint, JwksError> {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .ok_or(JwksError::NotAPublicKey)
    };
    let required: &[&str] = match member("kty")? {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        _ => return Err(JwksError::NotAPublicKey),
    };
    // Written by hand so the order is the RFC's whatever the map type of serde_json; each value
    // is serialised as a JSON string (escapes included), as the RFC requires.
    let mut canonical = String::from("{");
    for (i, name) in required.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        let value = serde_json::to_string(member(name)?).map_err(|_| JwksError::NotAPublicKey)?;
        canonical.push('"');
        canonical.push_str(name);
        canonical.push_str("\":");
        canonical.push_str(&value);
    }
    canonical.push('}');
    Ok(Thumbprint::sha256_of(canonical.as_bytes()))
}

pub(crate) fn key_from_jwk(
    raw: &Value,
    allowed: &[Alg],
    rsa_without_alg: Option<Alg>,
) -> Result<VerificationKey, &'static str> {
    if raw.get("d").is_some() {
        return Err("private key material in a public JWKS");
    }
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|_| "unparseable JWK")?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return Err("key is not for signatures");
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("key_ops does not include verify");
        }
    }
    let (alg, rsa_pinned_here) = match jwk.common.key_algorithm {
        Some(a) => (declared_alg(a).ok_or("algorithm not supported")?, false),
        None => match (implied_alg(&jwk.algorithm, allowed), &jwk.algorithm) {
            (Some(a), _) => (a, false),
            (None, AlgorithmParameters::RSA(_)) if rsa_without_alg.is_some() => {
                (rsa_without_alg.ok_or("algorithm cannot be inferred")?, true)
            }
            (None, _) => return Err("algorithm cannot be inferred"),
        },
    };
    if !allowed.contains(&alg) {
        return Err("algorithm not allowed for this issuer");
    }
    let material = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Alg::ES256) if p.curve == EllipticCurve::P256 => {
            ec_point(&p.x, &p.y, 32, &ECDSA_P256_SHA256_FIXED)?
        }
        (AlgorithmParameters::EllipticCurve(p), Alg::ES384) if p.curve == EllipticCurve::P384 => {
            ec_point(&p.x, &p.y, 48, &ECDSA_P384_SHA384_FIXED)?
        }
        (AlgorithmParameters::OctetKeyPair(p), Alg::EdDSA) if p.curve == EllipticCurve::Ed25519 => {
            let x = URL_SAFE_NO_PAD.decode(&p.x).map_err(|_| "bad base64url")?;
            let key =
                ParsedPublicKey::new(&ED25519, x.clone()).map_err(|_| "invalid Ed25519 key")?;
            Material::Parsed { key, raw: x }
        }
        (AlgorithmParameters::RSA(p), Alg::RS256 | Alg::PS256) => {
            let unsigned = |v: &str| {
                URL_SAFE_NO_PAD
                    .decode(v)
                    .map(|b| b.into_iter().skip_while(|x| *x == 0).collect::<Vec<u8>>())
                    .map_err(|_| "bad base64url")
            };
            let n = unsigned(&p.n)?;
            let e = unsigned(&p.e)?;
            if n.len() < MIN_RSA_MODULUS_BYTES {
                return Err("RSA key shorter than 2048 bits");
            }
            Material::Rsa {
                n,
                e,
                params: rsa_params(alg),
            }
        }
        _ => return Err("key type or curve does not fit its algorithm"),
    };
    Ok(VerificationKey {
        kid: jwk.common.key_id,
        alg,
        material,
        rsa_pinned_here,
    })
}

/// The aws-lc-rs parameters of an RSA algorithm (RS256 or PS256).
fn rsa_params(alg: Alg) -> &'static RsaParameters {
    if alg == Alg::RS256 {
        &RSA_PKCS1_2048_8192_SHA256
    } else {
        &RSA_PSS_2048_8192_SHA256
    }
}

/// An uncompressed EC point from JWK coordinates of exactly `len` bytes each, validated.
fn ec_point(
    x: &str,
    y: &str,
    len: usize,
    alg: &'static dyn VerificationAlgorithm,
) -> Result<Material, &'static str> {
    let x = URL_SAFE_NO_PAD.decode(x).map_err(|_| "bad base64url")?;
    let y = URL_SAFE_NO_PAD.decode(y).map_err(|_| "bad base64url")?;
    if x.len() != len || y.len() != len {
        return Err("EC coordinates of the wrong length");
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let key = ParsedPublicKey::new(alg, point.clone()).map_err(|_| "EC point not on the curve")?;
    Ok(Material::Parsed { key, raw: point })
}

fn declared_alg(a: KeyAlgorithm) -> Option<Alg> {
    Some(match a {
        KeyAlgorithm::ES256 => Alg::ES256,
        KeyAlgorithm::ES384 => Alg::ES384,
        KeyAlgorithm::RS256 => Alg::RS256,
        KeyAlgorithm::PS256 => Alg::PS256,
        KeyAlgorithm::EdDSA => Alg::EdDSA,
        _ => return None,
    })
}

/// The algorithm a key without `alg` can only mean, if there is exactly one.
fn implied_alg(params: &AlgorithmParameters, allowed: &[Alg]) -> Option<Alg> {
    match params {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Some(Alg::ES256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => Some(Alg::ES384),
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Some(Alg::EdDSA)
        }
        // RSA keys serve RS256 and PS256 alike: only unambiguous if the issuer allows one.
        AlgorithmParameters::RSA(_) => {
            let rsa: Vec<Alg> = allowed
                .iter()
                .copied()
                .filter(|a| matches!(a, Alg::RS256 | Alg::PS256))
                .collect();
            (rsa.len() == 1).then(|| rsa[0])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P256: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec1"}"#;

    fn p384() -> String {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).expect("gen");
        let kp =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, doc.as_ref()).expect("kp");
        let p = kp.public_key().as_ref();
        format!(
            r#"{{"kty":"EC","crv":"P-384","x":"{}","y":"{}","kid":"ec384"}}"#,
            URL_SAFE_NO_PAD.encode(&p[1..49]),
            URL_SAFE_NO_PAD.encode(&p[49..97])
        )
    }
    const OKP: &str = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed1"}"#;
    const OCT: &str = r#"{"kty":"oct","k":"c2VjcmV0","kid":"hs1","alg":"HS256"}"#;

    fn jwks(keys: &[&str]) -> Vec<u8> {
        format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
    }

    /// RFC 8705 self-signed certificates: a certificate's RSA key (modulus and exponent as DER
    /// integers, with a leading zero byte when the top bit is set) is the registered JWK's key
    /// only when both numbers agree; another modulus, or the same bytes presented as another
    /// key type, never is.
    #[test]
    fn an_rsa_public_key_is_recognised_by_its_numbers_only() {
        let (_, pair) = crate::sign::SigningKeyPair::generate(Alg::RS256).expect("rsa");
        let (_, other) = crate::sign::SigningKeyPair::generate(Alg::RS256).expect("rsa");
        let numbers = |jwk: &Value, name: &str| {
            URL_SAFE_NO_PAD
                .decode(jwk[name].as_str().expect("member"))
                .expect("base64url")
        };
        let (jwk, _) = crate::sign::public_jwk_for_jwks(&pair);
        let (other_jwk, _) = crate::sign::public_jwk_for_jwks(&other);
        let set = parse_jwk_set(&serde_json::json!({"keys": [jwk]}), &Alg::ALL).expect("jwks");
        let (n, e) = (numbers(&jwk, "n"), numbers(&jwk, "e"));
        // As a certificate carries them: DER integers, a zero byte before a high bit.
        let der = |b: &[u8]| {
            let mut v = b.to_vec();
            if v.first().is_some_and(|x| x & 0x80 != 0) {
                v.insert(0, 0);
            }
            v
        };
        assert!(set.holds(PublicKeyBytes::Rsa { n: &n, e: &e }));
        assert!(set.holds(PublicKeyBytes::Rsa {
            n: &der(&n),
            e: &der(&e)
        }));
        let other_n = numbers(&other_jwk, "n");
        assert!(!set.holds(PublicKeyBytes::Rsa { n: &other_n, e: &e }));
        assert!(!set.holds(PublicKeyBytes::Rsa { n: &n, e: &[3] }));
        assert!(!set.holds(PublicKeyBytes::Raw(&n)));
        // And an EC key is never matched by RSA numbers, whatever the bytes.
        let ec = parse_jwks(&jwks(&[P256]), &Alg::ALL).expect("jwks");
        assert!(!ec.holds(PublicKeyBytes::Rsa { n: &n, e: &e }));
    }

    #[test]
    fn keys_are_pinned_to_the_algorithm_their_type_implies() {
        let set = parse_jwks(&jwks(&[P256, OKP, &p384()]), &Alg::ALL).expect("jwks");
        assert_eq!(set.find(Some("ec1")).map(|k| k.alg), Some(Alg::ES256));
        assert_eq!(set.find(Some("ed1")).map(|k| k.alg), Some(Alg::EdDSA));
        assert_eq!(set.find(Some("ec384")).map(|k| k.alg), Some(Alg::ES384));
        // More than one key: a token without kid matches none.
        assert!(set.find(None).is_none());
    }

    #[test]
    fn unusable_keys_are_skipped() {
        let wrong_alg = P256.replace(r#""kid":"ec1""#, r#""kid":"ec1","alg":"ES384""#);
        let enc_use = P256.replace(r#""kid":"ec1""#, r#""kid":"ec1","use":"enc""#);
        let no_verify = P256.replace(r#""kid":"ec1""#, r#""kid":"ec1","key_ops":["sign"]"#);
        let private = P256.replace(r#""kid":"ec1""#, r#""kid":"ec1","d":"AAAA""#);
        // (1, 1) is not on P-256.
        let off_curve = r#"{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"}"#;
        let short_rsa = r#"{"kty":"RSA","alg":"RS256","e":"AQAB","n":"AQAB"}"#;
        for bad in [
            OCT, &wrong_alg, &enc_use, &no_verify, &private, off_curve, short_rsa,
        ] {
            assert_eq!(
                parse_jwks(&jwks(&[bad]), &Alg::ALL).err(),
                Some(JwksError::NoUsableKey),
                "{bad}"
            );
        }
    }

    #[test]
    fn algorithms_the_issuer_does_not_allow_are_skipped() {
        assert_eq!(
            parse_jwks(&jwks(&[P256]), &[Alg::EdDSA]).err(),
            Some(JwksError::NoUsableKey)
        );
    }

    #[test]
    fn a_repeated_kid_is_dropped_rather_than_guessed() {
        let twin = OKP.replace("ed1", "ec1");
        let set = parse_jwks(&jwks(&[P256, &twin, OKP]), &Alg::ALL).expect("jwks");
        assert!(set.find(Some("ec1")).is_none());
        assert!(set.find(Some("ed1")).is_some());
    }

    #[test]
    fn a_single_key_matches_a_token_without_kid() {
        let set = parse_jwks(&jwks(&[P256]), &Alg::ALL).expect("jwks");
        assert!(set.find(None).is_some());
    }

    #[test]
    fn non_jwks_documents_are_refused() {
        for doc in [&b"[]"[..], b"{}", b"{\"keys\":{}}", b"nope"] {
            assert_eq!(parse_jwks(doc, &Alg::ALL).err(), Some(JwksError::NotAJwks));
        }
    }

    #[test]
    fn thumbprint_matches_rfc7638_example_whatever_the_extra_members() {
        // RFC 7638 section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let bare = serde_json::json!({"e": "AQAB", "kty": "RSA", "n": n});
        assert_eq!(
            thumbprint(&bare).map(|t| t.to_string()).as_deref(),
            Ok(want)
        );
        let dressed = serde_json::json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        assert_eq!(
            thumbprint(&dressed).map(|t| t.to_string()).as_deref(),
            Ok(want)
        );
        for bad in [
            serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}),
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA"}),
            serde_json::json!({"crv": "Ed25519", "x": "AA"}),
        ] {
            assert_eq!(thumbprint(&bad), Err(JwksError::NotAPublicKey), "{bad}");
        }
    }

    #[test]
    fn a_registered_jwks_must_be_usable_in_full() {
        let doc = |keys: &[&str]| -> Value { serde_json::from_slice(&jwks(keys)).expect("json") };
        let set = parse_jwks_all_usable(&doc(&[P256, OKP]), &Alg::ALL, 10).expect("usable");
        assert!(set.contains_kid("ec1") && set.contains_kid("ed1"));
        let no_kid =
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        assert!(parse_jwks_all_usable(&doc(&[no_kid]), &Alg::ALL, 10).is_ok());
        let private = P256.replace(r#""kid":"ec1""#, r#""kid":"ec1","d":"AAAA""#);
        let cases: Vec<(Value, JwksError)> = vec![
            (doc(&[]), JwksError::NoUsableKey),
            (doc(&[P256, OKP]), JwksError::TooManyKeys),
            (doc(&[&private]), JwksError::PrivateKey),
            (doc(&[OCT]), JwksError::PrivateKey),
            (doc(&[P256, no_kid]), JwksError::MissingKid),
            (serde_json::json!([]), JwksError::NotAJwks),
        ];
        for (d, want) in cases {
            let max = if want == JwksError::TooManyKeys {
                1
            } else {
                10
            };
            assert_eq!(
                parse_jwks_all_usable(&d, &Alg::ALL, max).err(),
                Some(want),
                "{d}"
            );
        }
        // A key that would be skipped by a verifier is an error here.
        assert!(matches!(
            parse_jwks_all_usable(&doc(&[P256]), &[Alg::EdDSA], 10),
            Err(JwksError::UnusableKey { index: 0, .. })
        ));
        let twin = OKP.replace("ed1", "ec1");
        assert!(matches!(
            parse_jwks_all_usable(&doc(&[P256, &twin]), &Alg::ALL, 10),
            Err(JwksError::UnusableKey { index: 1, .. })
        ));
    }
}
