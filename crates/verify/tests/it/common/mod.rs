//! Test issuers that sign with crypto independent of Portcullis and of jsonwebtoken (p256,
//! ed25519-compact, rsa), so a token the verifier accepts was not made by the code under test.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer as _;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_verify::fetch::{Fetch, FetchError, Fetched};
use portcullis_verify::{IssuerConfig, KeySource, RevocationSource, Verifier, VerifierConfig};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://auth.test.example";
pub const AUDIENCE: &str = "payments-api";
/// 2026-11-24T00:00:00Z
pub const NOW_S: i64 = 1_795_478_400;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES256 issuer key, signing with the `p256` crate.
pub struct EcKey {
    pub kid: String,
    key: p256::ecdsa::SigningKey,
}

impl EcKey {
    pub fn new(kid: &str, seed: u8) -> Self {
        let mut bytes = [seed; 32];
        bytes[0] = 1;
        Self {
            kid: kid.into(),
            key: p256::ecdsa::SigningKey::from_bytes(&bytes.into()).expect("key"),
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
        })
    }

    pub fn sign(&self, input: &str) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        sig.to_bytes().to_vec()
    }

    /// The public key in SEC1 form: what an HS256 confusion attack would use as the secret.
    pub fn public_sec1(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }
}

/// An EdDSA issuer key, signing with `ed25519-compact`.
pub struct EdKey {
    pub kid: String,
    key: ed25519_compact::KeyPair,
}

impl EdKey {
    pub fn new(kid: &str, seed: u8) -> Self {
        Self {
            kid: kid.into(),
            key: ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([seed; 32])),
        }
    }

    pub fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": self.kid, "x": b64(*self.key.pk)})
    }

    pub fn sign(&self, input: &str) -> Vec<u8> {
        self.key.sk.sign(input.as_bytes(), None).to_vec()
    }
}

/// Builds a compact JWS from raw header and claims JSON text, signed by `sign`.
pub fn jws(header: &str, claims: &str, sign: impl Fn(&str) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = sign(&input);
    format!("{input}.{}", b64(sig))
}

/// Claims of a valid access token at [`NOW_S`].
pub fn claims() -> Value {
    json!({
        "iss": ISSUER, "sub": "cl_billing", "aud": AUDIENCE,
        "exp": NOW_S + 600, "iat": NOW_S, "nbf": NOW_S,
        "jti": "jti-1", "client_id": "cl_billing", "scope": "payments:read payments:write",
        "tenant": "acme",
    })
}

pub fn header(kid: &str, alg: &str) -> Value {
    json!({"alg": alg, "typ": "at+jwt", "kid": kid})
}

pub fn es256_token(key: &EcKey, header: &Value, claims: &Value) -> String {
    jws(&header.to_string(), &claims.to_string(), |i| key.sign(i))
}

pub fn jwks_of(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_secs(NOW_S)))
}

/// A key fetcher that serves canned documents and counts requests per URL.
#[derive(Debug, Default)]
pub struct FakeFetch {
    pub docs: Mutex<Vec<(String, String, Option<Duration>)>>,
    pub calls: AtomicUsize,
    pub urls: Mutex<Vec<String>>,
    pub failing: std::sync::atomic::AtomicBool,
    pub delay: Mutex<Option<Duration>>,
}

impl FakeFetch {
    pub fn serve(&self, url: &str, body: String, max_age: Option<Duration>) {
        let mut docs = self.docs.lock().expect("lock");
        docs.retain(|(u, _, _)| u != url);
        docs.push((url.into(), body, max_age));
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Fetch for FakeFetch {
    async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.urls.lock().expect("lock").push(url.into());
        let delay = *self.delay.lock().expect("lock");
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(FetchError::Transport("down".into()));
        }
        let docs = self.docs.lock().expect("lock");
        docs.iter()
            .find(|(u, _, _)| u == url)
            .map(|(_, b, m)| Fetched {
                body: b.clone().into_bytes(),
                max_age: *m,
            })
            .ok_or(FetchError::Status(404))
    }
}

/// A verifier trusting `jwks` statically, with revocations applied by the test.
pub fn static_verifier(jwks: String, clock: Arc<ManualClock>) -> Verifier {
    let cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(jwks)),
        AUDIENCE,
        RevocationSource::Embedded {
            staleness_bound: Duration::from_secs(30),
        },
    );
    let v = Verifier::with_parts(cfg, clock, Arc::new(FakeFetch::default())).expect("verifier");
    v.revocations().touch(0);
    v
}
