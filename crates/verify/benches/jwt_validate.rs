//! Full access-token validation against the bare signature check of the same crypto backend
//! (aws-lc-rs), for ES256 and EdDSA, and a cached repeated token.
//!
//! `bare_verify_unparsed_key`: aws-lc-rs `UnparsedPublicKey::verify` over the token's signing
//! input, signature already decoded (what a hand-rolled check typically does).
//! `bare_verify_parsed_key`: the same with the key parsed once (`ParsedPublicKey`): the least
//! any correct verifier must do, and the baseline the target ratio is measured against.
//! `full`: `Verifier::verify_access_token` with the token cache off: split, strict base64url,
//! header and claims parsing with duplicate detection, every rule, key lookup, signature,
//! revocation check (no token digest: with the cache off none is computed; a cache miss adds
//! one, see `examples/jwt_callgrind.rs`, mode `miss`).
//! `cached`: the same token again with the cache on: digest, lookup, revocation check.
//!
//! `cert_binding` (RFC 8705 section 3): an ES256 token bound to a client certificate
//! (`cnf.x5t#S256`), checked with the request's certificate thumbprint through
//! `verify_access_token_with`, against the same token without `cnf` checked as a bearer token,
//! uncached and cached. The target is under 2% overhead (`bound / unbound < 1.02`).
//!
//! Run: `cargo bench -p portcullis-verify --bench jwt_validate`.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, UnparsedPublicKey,
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_verify::fetch::{Fetch, FetchError, Fetched};
use portcullis_verify::{
    IssuerConfig, KeySource, Possession, RevocationSource, Thumbprint, Verifier, VerifierConfig,
};
use serde_json::json;

const NOW: i64 = 1_795_478_400;

#[derive(Debug)]
struct NoFetch;

#[async_trait::async_trait]
impl Fetch for NoFetch {
    async fn get(&self, _: &str) -> Result<Fetched, FetchError> {
        Err(FetchError::Status(404))
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn claims() -> String {
    claims_with(json!({}))
}

fn claims_with(extra: serde_json::Value) -> String {
    let mut c = json!({
        "iss": "https://auth.example.com", "sub": "cl_billing", "aud": "payments-api",
        "exp": NOW + 600, "iat": NOW, "nbf": NOW, "jti": "0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
        "client_id": "cl_billing", "scope": "payments:read payments:write", "tenant": "acme",
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    c.to_string()
}

struct Case {
    name: &'static str,
    token: String,
    jwk: serde_json::Value,
    public: Vec<u8>,
    bare_alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
}

fn cases() -> Vec<Case> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let es_doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("es");
    let es =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, es_doc.as_ref()).expect("es");
    let es_pub = es.public_key().as_ref().to_vec();
    let es_input = format!(
        "{}.{}",
        b64(json!({"alg":"ES256","typ":"at+jwt","kid":"es"})
            .to_string()
            .as_bytes()),
        b64(claims().as_bytes())
    );
    let es_sig = es.sign(&rng, es_input.as_bytes()).expect("sign");
    let ed_doc = Ed25519KeyPair::generate_pkcs8(&rng).expect("ed");
    let ed = Ed25519KeyPair::from_pkcs8(ed_doc.as_ref()).expect("ed");
    let ed_pub = ed.public_key().as_ref().to_vec();
    let ed_input = format!(
        "{}.{}",
        b64(json!({"alg":"EdDSA","typ":"at+jwt","kid":"ed"})
            .to_string()
            .as_bytes()),
        b64(claims().as_bytes())
    );
    let ed_sig = ed.sign(ed_input.as_bytes());
    vec![
        Case {
            name: "ES256",
            token: format!("{es_input}.{}", b64(es_sig.as_ref())),
            jwk: json!({"kty":"EC","crv":"P-256","kid":"es","alg":"ES256","x":b64(&es_pub[1..33]),"y":b64(&es_pub[33..65])}),
            public: es_pub,
            bare_alg: &ECDSA_P256_SHA256_FIXED,
        },
        Case {
            name: "EdDSA",
            token: format!("{ed_input}.{}", b64(ed_sig.as_ref())),
            jwk: json!({"kty":"OKP","crv":"Ed25519","kid":"ed","alg":"EdDSA","x":b64(&ed_pub)}),
            public: ed_pub,
            bare_alg: &ED25519,
        },
    ]
}

fn verifier(jwk: &serde_json::Value, cache: usize) -> Verifier {
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(
            "https://auth.example.com",
            KeySource::Static(json!({ "keys": [jwk] }).to_string()),
        ),
        "payments-api",
        RevocationSource::Embedded {
            staleness_bound: Duration::from_secs(3600),
        },
    );
    cfg.token_cache_capacity = cache;
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(NOW)));
    let v = Verifier::with_parts(cfg, clock, Arc::new(NoFetch)).expect("verifier");
    v.revocations().touch(0);
    v
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for case in cases() {
        let (input, sig) = case.token.rsplit_once('.').expect("token");
        let sig = URL_SAFE_NO_PAD.decode(sig).expect("sig");
        let key = UnparsedPublicKey::new(case.bare_alg, case.public.clone());
        let mut g = c.benchmark_group(format!("jwt_{}", case.name));
        g.bench_function("bare_verify_unparsed_key", |b| {
            b.iter(|| key.verify(input.as_bytes(), &sig).expect("valid"))
        });
        let parsed = ParsedPublicKey::new(case.bare_alg, case.public.clone()).expect("key");
        g.bench_function("bare_verify_parsed_key", |b| {
            b.iter(|| parsed.verify_sig(input.as_bytes(), &sig).expect("valid"))
        });
        let full = verifier(&case.jwk, 0);
        g.bench_function("full_validation", |b| {
            b.iter(|| {
                rt.block_on(full.verify_access_token(&case.token))
                    .expect("valid")
            })
        });
        let cached = verifier(&case.jwk, 1000);
        rt.block_on(cached.verify_access_token(&case.token))
            .expect("valid");
        g.bench_function("cached_repeat", |b| {
            b.iter(|| {
                rt.block_on(cached.verify_access_token(&case.token))
                    .expect("valid")
            })
        });
        g.finish();
    }
}

/// ES256 tokens with and without `cnf.x5t#S256`, signed by one key, and that key's JWK.
fn bound_and_unbound(x5t: &Thumbprint) -> (String, String, serde_json::Value) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("es");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).expect("es");
    let public = key.public_key().as_ref().to_vec();
    let header = b64(json!({"alg":"ES256","typ":"at+jwt","kid":"es"})
        .to_string()
        .as_bytes());
    let sign = |claims: String| {
        let input = format!("{header}.{}", b64(claims.as_bytes()));
        let sig = key.sign(&rng, input.as_bytes()).expect("sign");
        format!("{input}.{}", b64(sig.as_ref()))
    };
    let bound = sign(claims_with(json!({"cnf": {"x5t#S256": x5t.as_str()}})));
    let unbound = sign(claims());
    let jwk = json!({"kty":"EC","crv":"P-256","kid":"es","alg":"ES256",
        "x":b64(&public[1..33]),"y":b64(&public[33..])});
    (bound, unbound, jwk)
}

fn bench_binding(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let x5t = Thumbprint::sha256_of(b"the client certificate's DER");
    let (bound, unbound, jwk) = bound_and_unbound(&x5t);
    let with_cert = Possession {
        client_certificate: Some(&x5t),
        ..Possession::BEARER
    };
    let mut g = c.benchmark_group("cert_binding");
    for (cache, name) in [(0, "full"), (1000, "cached")] {
        let v = verifier(&jwk, cache);
        rt.block_on(v.verify_access_token_with(&bound, "payments-api", &with_cert))
            .expect("bound token with its certificate");
        rt.block_on(v.verify_access_token(&unbound))
            .expect("unbound token");
        g.bench_function(format!("{name}_unbound"), |b| {
            b.iter(|| rt.block_on(v.verify_access_token(&unbound)).expect("valid"))
        });
        g.bench_function(format!("{name}_bound_with_certificate"), |b| {
            b.iter(|| {
                rt.block_on(v.verify_access_token_with(&bound, "payments-api", &with_cert))
                    .expect("valid")
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench, bench_binding
}
criterion_main!(benches);
