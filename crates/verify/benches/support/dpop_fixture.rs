//! The one DPoP proof set-up shared by the `dpop_check` criterion bench and the
//! `dpop_callgrind` example (`bench/dpop-instructions`), so the wall-clock and the instruction
//! figures measure the same proof, rules and verifier. Included by `#[path]`; never a target.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_jose::profile::dpop_proof::{self, ath, ProofClaims, ProofSigner, Rules};
use portcullis_jose::{Alg, SigningKeyPair};
use portcullis_verify::fetch::{Fetch, FetchError, Fetched};
use portcullis_verify::{IssuerConfig, KeySource, RevocationSource, Verifier, VerifierConfig};
use serde_json::json;

pub const NOW: i64 = 1_795_478_400;
pub const URI: &str = "https://api.example.com/orders/7";
pub const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";

#[derive(Debug)]
struct NoFetch;

#[async_trait::async_trait]
impl Fetch for NoFetch {
    async fn get(&self, _: &str) -> Result<Fetched, FetchError> {
        Err(FetchError::Status(404))
    }
}

/// A proof of `GET URI` for [`TOKEN`] at [`NOW`].
pub fn proof(k: &ProofSigner, jti: &str) -> String {
    k.sign(&ProofClaims {
        jti,
        htm: "GET",
        htu: URI,
        iat: NOW,
        ath: Some(ath(TOKEN)),
        nonce: None,
    })
    .expect("proof")
}

/// The raw public key bytes aws-lc-rs takes (`04 || x || y` for EC, `x` for OKP).
pub fn raw_public_key(jwk: &serde_json::Value) -> Vec<u8> {
    let d = |m: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[m].as_str().expect("member"))
            .expect("b64")
    };
    match jwk["kty"].as_str() {
        Some("EC") => [vec![4], d("x"), d("y")].concat(),
        _ => d("x"),
    }
}

/// A resource's rules for the proofs [`proof`] makes.
pub fn rules() -> Rules<'static> {
    Rules {
        method: "GET",
        uri: URI,
        allowed: &dpop_proof::DEFAULT_ALGS,
        max_age: Duration::from_secs(300),
        leeway: Duration::from_secs(60),
        access_token: Some(TOKEN),
        require_nonce: false,
    }
}

/// A verifier whose issuer key signed nothing here: [`TOKEN`] is refused after the proof step,
/// so only the proof step's cost differs from a bare verify.
pub fn verifier() -> Verifier {
    let jwk = SigningKeyPair::generate(Alg::ES256)
        .expect("key")
        .1
        .public_jwk();
    let cfg = VerifierConfig::new(
        IssuerConfig::new(
            "https://auth.example.com",
            KeySource::Static(json!({ "keys": [jwk] }).to_string()),
        ),
        "orders-api",
        RevocationSource::Embedded {
            staleness_bound: Duration::from_secs(3600),
        },
    );
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(NOW)));
    Verifier::with_parts(cfg, clock, Arc::new(NoFetch)).expect("verifier")
}
