//! DPoP proofs (RFC 9449 section 4): the JWT a client signs with its own key for each request,
//! carrying that public key in its header, so a token bound to the key (`cnf.jkt`) can be used
//! only by whoever holds it.
//!
//! Rules, in the order they are checked: the proof is at most [`MAX_LEN`] bytes of strict
//! compact JWS; `typ` is exactly `dpop+jwt`; `alg` is one of the caller's allowed asymmetric
//! algorithms (never `none`, never `HS*`: the parser knows neither); the header `jwk` is a public
//! key (a private or symmetric member refuses the proof) of a type that fits `alg`; the
//! signature verifies with that key; `htm` equals the request's method; `htu` equals the
//! request's URI once both are normalised (scheme and host lower-cased, default port dropped,
//! query and fragment ignored); `iat` is within the window (not older than `max_age`, not further
//! in the future than `leeway`); `jti` is present (recording it against replay is the caller's:
//! it needs storage); `ath`, when the caller presents an access token (at a resource), is the
//! base64url SHA-256 of that token; `nonce`, when the caller requires one, is present (whether
//! it is a current nonce is the caller's: the token service derives nonces from a secret).
//!
//! The key's RFC 7638 thumbprint is returned as a [`Thumbprint`], which is what
//! `portcullis_core::confirmation::Confirmation::check` compares with `cnf.jkt`.
//!
//! This is the one place a key is ever read from a token header, and only because RFC 9449
//! makes the proof's own key the thing proved: the key proves possession, never identity or
//! authority. This module must never accept a proof whose key is private, symmetric, or of
//! another algorithm than the header's `alg`, and never do I/O or read the clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::confirmation::Thumbprint;
use portcullis_core::time::Timestamp;
use serde_json::Value;

use super::{required, required_int};
use crate::alg::Alg;
use crate::compact::{self, RawObject};
use crate::error::JoseError;
use crate::jwk::{key_from_jwk, thumbprint, VerificationKey, PRIVATE_MEMBERS};
use crate::sign::{Signer, SigningKeyPair};

/// The `typ` of a DPoP proof (RFC 9449 section 4.2).
pub const TYP: &str = "dpop+jwt";
/// Longest proof looked at (an RSA-4096 key in the header fits comfortably).
pub const MAX_LEN: usize = 8 * 1024;
/// Longest `jti` accepted (it is stored for the replay window).
pub const MAX_JTI_LEN: usize = 128;
/// Longest `nonce` accepted.
pub const MAX_NONCE_LEN: usize = 256;
/// The algorithms accepted by default: every asymmetric one this crate verifies.
pub const DEFAULT_ALGS: [Alg; 5] = Alg::ALL;

/// Why a proof was refused. Internal: the outside answer is `invalid_dpop_proof` (or
/// `use_dpop_nonce` for [`ProofError::NonceMissing`]); this goes to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Structure, base64url, JSON, `alg: none`, an unknown `alg`, `crit`, a bad signature.
    #[error("{0}")]
    Jose(JoseError),
    #[error("dpop_typ_wrong")]
    WrongTyp,
    /// `alg` is one this crate knows but the caller does not allow.
    #[error("dpop_alg_not_allowed")]
    AlgNotAllowed,
    #[error("dpop_jwk_missing")]
    JwkMissing,
    /// The header `jwk` carries private or symmetric key material.
    #[error("dpop_jwk_private")]
    JwkPrivate,
    /// The header `jwk` is not a usable public key for `alg`.
    #[error("dpop_jwk_unusable")]
    JwkUnusable,
    #[error("dpop_htm_mismatch")]
    MethodMismatch,
    #[error("dpop_htu_mismatch")]
    UriMismatch,
    /// `iat` is older than the window.
    #[error("dpop_iat_stale")]
    Stale,
    /// `iat` is further in the future than the leeway.
    #[error("dpop_iat_future")]
    Future,
    #[error("dpop_jti_invalid")]
    BadJti,
    #[error("dpop_ath_missing")]
    AthMissing,
    #[error("dpop_ath_mismatch")]
    AthMismatch,
    /// A nonce is required and the proof has none (answered `use_dpop_nonce`).
    #[error("dpop_nonce_missing")]
    NonceMissing,
}

impl ProofError {
    /// The reason as a stable snake_case code (for logs and audit).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jose(e) => e.as_str(),
            Self::WrongTyp => "dpop_typ_wrong",
            Self::AlgNotAllowed => "dpop_alg_not_allowed",
            Self::JwkMissing => "dpop_jwk_missing",
            Self::JwkPrivate => "dpop_jwk_private",
            Self::JwkUnusable => "dpop_jwk_unusable",
            Self::MethodMismatch => "dpop_htm_mismatch",
            Self::UriMismatch => "dpop_htu_mismatch",
            Self::Stale => "dpop_iat_stale",
            Self::Future => "dpop_iat_future",
            Self::BadJti => "dpop_jti_invalid",
            Self::AthMissing => "dpop_ath_missing",
            Self::AthMismatch => "dpop_ath_mismatch",
            Self::NonceMissing => "dpop_nonce_missing",
        }
    }
}

impl From<JoseError> for ProofError {
    fn from(e: JoseError) -> Self {
        Self::Jose(e)
    }
}

/// What the request the proof came with looks like, and what the caller requires of it.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'r> {
    /// The request's method (`POST` at the token endpoint).
    pub method: &'r str,
    /// The request's absolute URI (its query and fragment are ignored).
    pub uri: &'r str,
    pub allowed: &'r [Alg],
    /// How old `iat` may be.
    pub max_age: Duration,
    /// How far in the future `iat` may be (clock skew).
    pub leeway: Duration,
    /// At a resource: the access token presented with the proof (`ath` is then required).
    pub access_token: Option<&'r str>,
    /// Whether the proof must carry a `nonce`.
    pub require_nonce: bool,
}

/// A proof that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof key: what `cnf.jkt` names.
    pub jkt: Thumbprint,
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
}

impl Proof {
    /// When the proof's `jti` may be forgotten: once `iat` has left the window.
    pub fn replay_until(&self, rules: &Rules<'_>) -> Timestamp {
        Timestamp::from_secs(self.iat)
            .saturating_add(rules.max_age)
            .saturating_add(rules.leeway)
    }
}

/// The `ath` value for an access token: base64url SHA-256 of its ASCII bytes.
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        access_token.as_bytes(),
    ))
}

/// A URI normalised for `htu` comparison (RFC 9449 section 4.3 point 9, RFC 3986 section 6.2.2
/// and 6.2.3): scheme and host lower-cased, the scheme's default port dropped, an empty path
/// made `/`, query and fragment removed. `None` for anything but an absolute `http(s)` URI
/// without user information.
pub fn normalise_htu(uri: &str) -> Option<String> {
    let uri = uri.split(['#', '?']).next().unwrap_or("");
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    // An IPv6 literal keeps its colons inside the brackets.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    if host.is_empty() {
        return None;
    }
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    match port {
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => return None,
        Some(p) if !p.is_empty() && p.trim_start_matches('0') != default_port => {
            out.push(':');
            out.push_str(p);
        }
        _ => {}
    }
    out.push_str(path);
    Some(out)
}

/// Most proof keys a [`KeyCache`] holds; when full it starts again empty (a flood of made-up
/// keys can only cost the time to parse them, as without a cache).
pub const KEY_CACHE_CAPACITY: usize = 4096;

/// Proof keys already read from a proof header, by algorithm and the exact text of the header's
/// `jwk`: a client's next proof reuses the parsed key and its thumbprint instead of parsing the
/// JWK, checking its members and hashing its canonical form again. Sound because everything
/// cached is a function of that text and algorithm alone (what was refused is never cached);
/// the signature and every claim are still checked on every proof.
pub struct KeyCache {
    /// By the `jwk` text; the entry holds the algorithm it was read for (another algorithm with
    /// the same text is a miss, and replaces it).
    keys: std::sync::Mutex<HashMap<Box<str>, CachedKey>>,
    capacity: usize,
}

/// A proof key as read for one algorithm, with its thumbprint.
type CachedKey = Arc<(VerificationKey, Thumbprint)>;

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::with_capacity(KEY_CACHE_CAPACITY)
    }
}

impl KeyCache {
    /// A cache of at most `capacity` keys (`0`: nothing is cached).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            keys: std::sync::Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn get(&self, alg: Alg, jwk: &str) -> Option<CachedKey> {
        if self.capacity == 0 {
            return None;
        }
        // A poisoned lock only means another thread panicked between two map operations; the
        // map itself is intact.
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(jwk).filter(|e| e.0.alg == alg).cloned()
    }

    fn insert(&self, jwk: &str, entry: CachedKey) {
        if self.capacity == 0 {
            return;
        }
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= self.capacity {
            keys.clear();
        }
        keys.insert(jwk.into(), entry);
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks a proof against `rules` at `now` (every rule of the module docs but `jti` replay and
/// the value of `nonce`, which are the caller's).
pub fn verify(proof: &str, rules: &Rules<'_>, now: Timestamp) -> Result<Proof, ProofError> {
    verify_cached(proof, rules, now, &KeyCache::with_capacity(0))
}

/// [`verify`], reusing proof keys parsed before from `cache`.
pub fn verify_cached(
    proof: &str,
    rules: &Rules<'_>,
    now: Timestamp,
    cache: &KeyCache,
) -> Result<Proof, ProofError> {
    let u = compact::parse(proof, MAX_LEN)?;
    if u.header.typ.as_deref() != Some(TYP) {
        return Err(ProofError::WrongTyp);
    }
    if !rules.allowed.contains(&u.header.alg) {
        return Err(ProofError::AlgNotAllowed);
    }
    // The parser keeps no key-carrying member; this profile is the one that must read `jwk`,
    // from the header it already decoded and checked (no repeated members).
    let header_b64 = u.signing_input.split('.').next().unwrap_or("");
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JoseError::BadBase64)?;
    let header = RawObject::parse(&header_bytes, JoseError::MalformedHeader)?;
    let Some(raw_jwk) = header.get("jwk") else {
        return Err(ProofError::JwkMissing);
    };
    let entry = match cache.get(u.header.alg, raw_jwk.get()) {
        Some(hit) => hit,
        None => {
            let entry = Arc::new(read_jwk(raw_jwk.get(), u.header.alg)?);
            cache.insert(raw_jwk.get(), entry.clone());
            entry
        }
    };
    let (key, jkt) = &*entry;
    u.verify_with(key)?;
    let jkt = jkt.clone();

    let c = u.claims()?;
    let htm = required(&c, "htm")?;
    if htm != rules.method {
        return Err(ProofError::MethodMismatch);
    }
    let htu = required(&c, "htu")?;
    match (normalise_htu(&htu), normalise_htu(rules.uri)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(ProofError::UriMismatch),
    }
    let iat = required_int(&c, "iat")?;
    let now_s = now.as_secs();
    if iat > now_s.saturating_add(secs(rules.leeway)) {
        return Err(ProofError::Future);
    }
    if iat < now_s.saturating_sub(secs(rules.max_age)) {
        return Err(ProofError::Stale);
    }
    let jti = required(&c, "jti").map_err(|_| ProofError::BadJti)?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(ProofError::BadJti);
    }
    if let Some(token) = rules.access_token {
        let got = c
            .str("ath")
            .map_err(|_| JoseError::MalformedClaims)?
            .ok_or(ProofError::AthMissing)?;
        if got != ath(token) {
            return Err(ProofError::AthMismatch);
        }
    }
    let nonce = c
        .str("nonce")
        .map_err(|_| JoseError::MalformedClaims)?
        .map(|n| n.into_owned());
    match &nonce {
        None if rules.require_nonce => return Err(ProofError::NonceMissing),
        Some(n) if n.is_empty() || n.len() > MAX_NONCE_LEN => {
            return Err(JoseError::MalformedClaims.into())
        }
        _ => {}
    }
    Ok(Proof {
        jkt,
        jti: jti.into_owned(),
        iat,
        nonce,
    })
}

/// The proof key of a header's `jwk` (as sent) for `alg`, and its thumbprint: a public key of
/// a type that fits `alg`, without any private or symmetric member.
fn read_jwk(raw: &str, alg: Alg) -> Result<(VerificationKey, Thumbprint), ProofError> {
    let jwk: Value = serde_json::from_str(raw).map_err(|_| ProofError::JwkUnusable)?;
    let Some(members) = jwk.as_object() else {
        return Err(ProofError::JwkUnusable);
    };
    if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
        return Err(ProofError::JwkPrivate);
    }
    let rsa = matches!(alg, Alg::RS256 | Alg::PS256).then_some(alg);
    let key = key_from_jwk(&jwk, &[alg], rsa).map_err(|_| ProofError::JwkUnusable)?;
    let jkt = thumbprint(&jwk).map_err(|_| ProofError::JwkUnusable)?;
    Ok((key, jkt))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A client's DPoP key: signs proofs whose header carries its public JWK. For clients written
/// in Rust (the CLI, tests, benchmarks); the server never signs proofs.
pub struct ProofSigner {
    signer: Signer,
    jkt: Thumbprint,
}

impl std::fmt::Debug for ProofSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofSigner")
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

/// The claims of a proof a [`ProofSigner`] makes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProofClaims<'a> {
    pub jti: &'a str,
    pub htm: &'a str,
    pub htu: &'a str,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
}

impl ProofSigner {
    /// Fails only for a key type without an RFC 7638 thumbprint (never one this crate makes).
    pub fn new(key: SigningKeyPair) -> Result<Self, crate::jwk::JwksError> {
        let jwk = key.public_jwk();
        let jkt = thumbprint(&jwk)?;
        let header = serde_json::json!({"typ": TYP, "alg": key.alg().as_str(), "jwk": jwk});
        Ok(Self {
            signer: Signer::with_header_json(key, None, header.to_string().as_bytes()),
            jkt,
        })
    }

    /// The thumbprint of this key (what a token bound to it carries in `cnf.jkt`).
    pub fn jkt(&self) -> &Thumbprint {
        &self.jkt
    }

    pub fn sign(&self, claims: &ProofClaims<'_>) -> Result<String, crate::SignError> {
        self.signer.sign(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const URI: &str = "https://auth.test/oauth2/token";

    fn rules() -> Rules<'static> {
        Rules {
            method: "POST",
            uri: URI,
            allowed: &DEFAULT_ALGS,
            max_age: Duration::from_secs(300),
            leeway: Duration::from_secs(60),
            access_token: None,
            require_nonce: false,
        }
    }

    fn key(alg: Alg) -> ProofSigner {
        ProofSigner::new(SigningKeyPair::generate(alg).expect("key").1).expect("signer")
    }

    fn claims() -> serde_json::Value {
        json!({"jti": "j-1", "htm": "POST", "htu": URI, "iat": NOW})
    }

    fn run(token: &str, r: &Rules<'_>) -> Result<Proof, ProofError> {
        verify(token, r, Timestamp::from_secs(NOW))
    }

    fn pair(alg: Alg) -> (SigningKeyPair, Vec<u8>) {
        let (der, k) = SigningKeyPair::generate(alg).expect("key");
        (k, der.expose().clone())
    }

    fn sign_raw(der: &[u8], alg: Alg, header: &serde_json::Value, c: &serde_json::Value) -> String {
        let k = SigningKeyPair::from_pkcs8(alg, der).expect("key");
        Signer::with_header_json(k, None, header.to_string().as_bytes())
            .sign(c)
            .expect("sign")
    }

    #[test]
    fn a_good_proof_verifies_for_every_signing_algorithm_and_names_its_key() {
        for alg in Alg::SIGNING {
            let k = key(alg);
            let t = k.sign(&proof_claims()).expect("sign");
            let p = run(&t, &rules()).expect("verifies");
            assert_eq!(&p.jkt, k.jkt(), "{alg}");
            assert_eq!(p.jti, "j-1");
            assert_eq!(p.iat, NOW);
            assert_eq!(p.nonce, None);
            assert_eq!(
                p.replay_until(&rules()),
                Timestamp::from_secs(NOW + 360),
                "kept for the whole window"
            );
        }
    }

    fn proof_claims() -> ProofClaims<'static> {
        ProofClaims {
            jti: "j-1",
            htm: "POST",
            htu: URI,
            iat: NOW,
            ath: None,
            nonce: None,
        }
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 7638 section 3.1: the example RSA key's thumbprint.
        let jwk = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        let t = thumbprint(&jwk).expect("thumbprint");
        assert_eq!(t.as_str(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn header_rules_typ_alg_and_a_public_jwk_only() {
        let (k, der) = pair(Alg::ES256);
        let jwk = k.public_jwk();
        let good_header = json!({"typ": TYP, "alg": "ES256", "jwk": jwk});
        assert!(run(
            &sign_raw(&der, Alg::ES256, &good_header, &claims()),
            &rules()
        )
        .is_ok());

        let with = |h: serde_json::Value| sign_raw(&der, Alg::ES256, &h, &claims());
        // Wrong or missing typ.
        for typ in [json!("JWT"), json!("at+jwt"), json!("application/dpop+jwt")] {
            let t = with(json!({"typ": typ, "alg": "ES256", "jwk": jwk}));
            assert_eq!(run(&t, &rules()), Err(ProofError::WrongTyp), "{typ}");
        }
        let t = with(json!({"alg": "ES256", "jwk": jwk}));
        assert_eq!(run(&t, &rules()), Err(ProofError::WrongTyp));
        // No jwk, or a jwk that is not an object.
        let t = with(json!({"typ": TYP, "alg": "ES256"}));
        assert_eq!(run(&t, &rules()), Err(ProofError::JwkMissing));
        let t = with(json!({"typ": TYP, "alg": "ES256", "jwk": "x"}));
        assert_eq!(run(&t, &rules()), Err(ProofError::JwkUnusable));
        // A private member in the jwk, whatever its value.
        let mut private = jwk.clone();
        private["d"] = json!("AAAA");
        let t = with(json!({"typ": TYP, "alg": "ES256", "jwk": private}));
        assert_eq!(run(&t, &rules()), Err(ProofError::JwkPrivate));
        let t = with(json!({"typ": TYP, "alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}));
        assert_eq!(run(&t, &rules()), Err(ProofError::JwkPrivate));
        // A key of another type than alg.
        let ed = SigningKeyPair::generate(Alg::EdDSA)
            .expect("key")
            .1
            .public_jwk();
        let t = with(json!({"typ": TYP, "alg": "ES256", "jwk": ed}));
        assert_eq!(run(&t, &rules()), Err(ProofError::JwkUnusable));
        // An algorithm the caller does not allow.
        let only_ed = Rules {
            allowed: &[Alg::EdDSA],
            ..rules()
        };
        assert_eq!(
            run(&with(good_header.clone()), &only_ed),
            Err(ProofError::AlgNotAllowed)
        );
        // Signed by another key than the header's.
        let other = SigningKeyPair::generate(Alg::ES256)
            .expect("key")
            .1
            .public_jwk();
        let t = with(json!({"typ": TYP, "alg": "ES256", "jwk": other}));
        assert_eq!(
            run(&t, &rules()),
            Err(ProofError::Jose(JoseError::BadSignature))
        );
    }

    #[test]
    fn alg_none_and_hmac_proofs_are_refused_before_any_key() {
        let (k, _) = pair(Alg::ES256);
        let jwk = k.public_jwk();
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        for (alg, want) in [
            ("none", JoseError::AlgNone),
            ("HS256", JoseError::AlgNotAllowed),
        ] {
            let h = URL_SAFE_NO_PAD.encode(json!({"typ": TYP, "alg": alg, "jwk": jwk}).to_string());
            let t = format!("{h}.{body}.c2ln");
            assert_eq!(run(&t, &rules()), Err(ProofError::Jose(want)), "{alg}");
        }
        let h = URL_SAFE_NO_PAD.encode(json!({"typ": TYP, "alg": "none", "jwk": jwk}).to_string());
        assert_eq!(
            run(&format!("{h}.{body}."), &rules()),
            Err(ProofError::Jose(JoseError::AlgNone))
        );
    }

    #[test]
    fn the_key_cache_reuses_a_read_key_but_every_proof_is_still_checked() {
        let cache = KeyCache::default();
        let check = |t: &str| verify_cached(t, &rules(), Timestamp::from_secs(NOW), &cache);
        let k = key(Alg::ES256);
        let first = check(&k.sign(&proof_claims()).expect("sign")).expect("first");
        assert_eq!(cache.len(), 1);
        let again = check(
            &k.sign(&ProofClaims {
                jti: "j-2",
                ..proof_claims()
            })
            .expect("sign"),
        )
        .expect("a cached key");
        assert_eq!((cache.len(), &again.jkt), (1, &first.jkt));
        // A cached key does not make a bad proof good: a broken signature, another request.
        let good = k.sign(&proof_claims()).expect("sign");
        let (rest, sig) = good.rsplit_once('.').expect("jws");
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let broken = format!("{rest}.{flipped}{}", &sig[1..]);
        assert!(check(&broken).is_err());
        let other_request = k
            .sign(&ProofClaims {
                htm: "GET",
                ..proof_claims()
            })
            .expect("sign");
        assert_eq!(
            check(&other_request).map(|_| ()),
            Err(ProofError::MethodMismatch)
        );
        // The same key text under another algorithm is not the cached key.
        let (_, der) = pair(Alg::ES256);
        let p256_jwk: serde_json::Value = {
            let t = k.sign(&proof_claims()).expect("sign");
            let h = URL_SAFE_NO_PAD
                .decode(t.split('.').next().expect("header"))
                .expect("b64");
            serde_json::from_slice::<serde_json::Value>(&h).expect("json")["jwk"].clone()
        };
        let as_es384 = sign_raw(
            &der,
            Alg::ES256,
            &json!({"typ": TYP, "alg": "ES384", "jwk": p256_jwk}),
            &claims(),
        );
        assert!(check(&as_es384).is_err(), "an ES256 key is no ES384 key");
        // Refused keys are never cached.
        let mut private = p256_jwk.clone();
        private["d"] = json!("AAAA");
        let refused = sign_raw(
            &der,
            Alg::ES256,
            &json!({"typ": TYP, "alg": "ES256", "jwk": private}),
            &claims(),
        );
        assert_eq!(check(&refused).map(|_| ()), Err(ProofError::JwkPrivate));
        assert_eq!(cache.len(), 1);
        // Nothing is cached with capacity 0; a full cache starts again.
        let none = KeyCache::with_capacity(0);
        verify_cached(&good, &rules(), Timestamp::from_secs(NOW), &none).expect("uncached");
        assert!(none.is_empty());
        let one = KeyCache::with_capacity(1);
        for alg in [Alg::ES256, Alg::EdDSA] {
            let t = key(alg).sign(&proof_claims()).expect("sign");
            verify_cached(&t, &rules(), Timestamp::from_secs(NOW), &one).expect("verifies");
            assert_eq!(one.len(), 1);
        }
    }

    #[test]
    fn htm_and_htu_must_be_this_request() {
        let k = key(Alg::EdDSA);
        let sign = |htm: &str, htu: &str| {
            k.sign(&ProofClaims {
                htm,
                htu,
                ..proof_claims()
            })
            .expect("sign")
        };
        for (htm, htu, want) in [
            ("GET", URI, Err(ProofError::MethodMismatch)),
            ("post", URI, Err(ProofError::MethodMismatch)),
            (
                "POST",
                "https://auth.test/oauth2/introspect",
                Err(ProofError::UriMismatch),
            ),
            (
                "POST",
                "https://other.test/oauth2/token",
                Err(ProofError::UriMismatch),
            ),
            (
                "POST",
                "http://auth.test/oauth2/token",
                Err(ProofError::UriMismatch),
            ),
            (
                "POST",
                "https://auth.test:8443/oauth2/token",
                Err(ProofError::UriMismatch),
            ),
            ("POST", "not a uri", Err(ProofError::UriMismatch)),
        ] {
            assert_eq!(
                run(&sign(htm, htu), &rules()).map(|_| ()),
                want,
                "{htm} {htu}"
            );
        }
        // Query, fragment, host case and the default port do not matter.
        for htu in [
            "https://auth.test/oauth2/token?x=1",
            "https://auth.test/oauth2/token#f",
            "HTTPS://Auth.TEST/oauth2/token",
            "https://auth.test:443/oauth2/token",
        ] {
            assert!(run(&sign("POST", htu), &rules()).is_ok(), "{htu}");
        }
    }

    #[test]
    fn uris_normalise_as_rfc_3986_says_and_odd_ones_do_not() {
        assert_eq!(
            normalise_htu("HTTP://A.example:80").as_deref(),
            Some("http://a.example/")
        );
        assert_eq!(
            normalise_htu("https://[::1]:8443/p?q").as_deref(),
            Some("https://[::1]:8443/p")
        );
        assert_eq!(
            normalise_htu("https://[::1]/p").as_deref(),
            Some("https://[::1]/p")
        );
        // The path keeps its case.
        assert_eq!(normalise_htu("https://a/P").as_deref(), Some("https://a/P"));
        for bad in [
            "",
            "/oauth2/token",
            "ftp://a/x",
            "https://",
            "https://user@a/x",
            "https://a:x/",
            "https://:443/",
        ] {
            assert_eq!(normalise_htu(bad), None, "{bad}");
        }
    }

    #[test]
    fn iat_must_be_within_the_window() {
        let k = key(Alg::ES256);
        let at = |iat: i64| {
            k.sign(&ProofClaims {
                iat,
                ..proof_claims()
            })
            .expect("sign")
        };
        assert!(run(&at(NOW - 300), &rules()).is_ok());
        assert!(run(&at(NOW + 60), &rules()).is_ok());
        assert_eq!(run(&at(NOW - 301), &rules()), Err(ProofError::Stale));
        assert_eq!(run(&at(NOW - 86_400), &rules()), Err(ProofError::Stale));
        assert_eq!(run(&at(NOW + 61), &rules()), Err(ProofError::Future));
        assert_eq!(run(&at(i64::MAX), &rules()), Err(ProofError::Future));
    }

    #[test]
    fn jti_htm_htu_iat_are_required() {
        let (k, der) = pair(Alg::ES256);
        let h = json!({"typ": TYP, "alg": "ES256", "jwk": k.public_jwk()});
        for name in ["htm", "htu", "iat"] {
            let mut c = claims();
            c.as_object_mut().map(|o| o.remove(name));
            assert_eq!(
                run(&sign_raw(&der, Alg::ES256, &h, &c), &rules()),
                Err(ProofError::Jose(JoseError::MissingClaim(name))),
                "{name}"
            );
        }
        for jti in [
            None,
            Some(json!("")),
            Some(json!(7)),
            Some(json!("x".repeat(129))),
        ] {
            let mut c = claims();
            match &jti {
                None => {
                    c.as_object_mut().map(|o| o.remove("jti"));
                }
                Some(v) => c["jti"] = v.clone(),
            }
            assert_eq!(
                run(&sign_raw(&der, Alg::ES256, &h, &c), &rules()),
                Err(ProofError::BadJti),
                "{jti:?}"
            );
        }
    }

    #[test]
    fn ath_binds_the_proof_to_the_access_token_at_a_resource() {
        let k = key(Alg::ES256);
        let at_resource = Rules {
            method: "GET",
            uri: "https://api.test/orders",
            access_token: Some("token-a"),
            ..rules()
        };
        let sign = |ath: Option<String>| {
            k.sign(&ProofClaims {
                htm: "GET",
                htu: "https://api.test/orders",
                ath,
                ..proof_claims()
            })
            .expect("sign")
        };
        assert!(run(&sign(Some(ath("token-a"))), &at_resource).is_ok());
        assert_eq!(
            run(&sign(Some(ath("token-b"))), &at_resource),
            Err(ProofError::AthMismatch)
        );
        assert_eq!(run(&sign(None), &at_resource), Err(ProofError::AthMissing));
        // RFC 9449 section 4.2's example: ath of a known token.
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn a_required_nonce_must_be_present() {
        let k = key(Alg::ES256);
        let need = Rules {
            require_nonce: true,
            ..rules()
        };
        let sign = |nonce: Option<&'static str>| {
            k.sign(&ProofClaims {
                nonce,
                ..proof_claims()
            })
            .expect("sign")
        };
        assert_eq!(run(&sign(None), &need), Err(ProofError::NonceMissing));
        let p = run(&sign(Some("n-1")), &need).expect("verifies");
        assert_eq!(p.nonce.as_deref(), Some("n-1"));
        assert_eq!(
            run(&sign(Some("")), &need),
            Err(ProofError::Jose(JoseError::MalformedClaims))
        );
    }
}
