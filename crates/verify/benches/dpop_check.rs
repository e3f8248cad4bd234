//! The cost of checking a DPoP proof (RFC 9449) against a bare signature verify of the same
//! proof, for ES256 and EdDSA proof keys (DESIGN.md section 7: DPoP check <= 1.15x bare).
//!
//! `bare_verify_unparsed_key`: aws-lc-rs `UnparsedPublicKey::verify` over the proof's signing
//! input with the proof key's raw bytes (a proof brings its own key, so no verifier can have
//! parsed it before): the baseline of the target ratio.
//! `bare_verify_parsed_key`: the same with the key parsed once, the floor of any verifier.
//! `proof_check`: `portcullis_jose::profile::dpop_proof::verify` at a resource: split, strict
//! base64url, header with its `jwk` (public members only, pinned to `alg`), signature, RFC 7638
//! thumbprint, `htm`, `htu` normalised, `iat` window, `jti`, `ath`.
//! `proof_check_cached`: the same with the proof key already read (`KeyCache`: a client's second
//! and later proofs; what the verify library and the token service do).
//! `proof_and_replay`: the verify library's whole proof step, the in-memory replay record
//! included (a fresh proof per iteration, signed beforehand).
//!
//! Run: `cargo bench -p portcullis-verify --bench dpop_check`.

use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use portcullis_core::time::Timestamp;
use portcullis_jose::profile::dpop_proof::{self, ProofSigner};
use portcullis_jose::{Alg, SigningKeyPair};
use portcullis_verify::DpopRequest;

#[path = "support/dpop_fixture.rs"]
mod fixture;
use fixture::{proof, raw_public_key, rules, verifier, NOW, TOKEN, URI};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for (name, alg, bare) in [
        (
            "ES256",
            Alg::ES256,
            &ECDSA_P256_SHA256_FIXED as &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
        ),
        ("EdDSA", Alg::EdDSA, &ED25519),
    ] {
        let pair = SigningKeyPair::generate(alg).expect("key").1;
        let public = raw_public_key(&pair.public_jwk());
        let k = ProofSigner::new(pair).expect("signer");
        let p = proof(&k, "jti-0");
        let (input, sig) = p.rsplit_once('.').expect("proof");
        let sig = URL_SAFE_NO_PAD.decode(sig).expect("sig");
        let mut g = c.benchmark_group(format!("dpop_{name}"));
        g.bench_function("bare_verify_unparsed_key", |b| {
            b.iter(|| {
                UnparsedPublicKey::new(bare, public.as_slice())
                    .verify(input.as_bytes(), &sig)
                    .expect("valid")
            })
        });
        let parsed = ParsedPublicKey::new(bare, public.clone()).expect("key");
        g.bench_function("bare_verify_parsed_key", |b| {
            b.iter(|| parsed.verify_sig(input.as_bytes(), &sig).expect("valid"))
        });
        let rules = rules();
        g.bench_function("proof_check", |b| {
            b.iter(|| dpop_proof::verify(&p, &rules, Timestamp::from_secs(NOW)).expect("valid"))
        });
        let cache = dpop_proof::KeyCache::default();
        g.bench_function("proof_check_cached", |b| {
            b.iter(|| {
                dpop_proof::verify_cached(&p, &rules, Timestamp::from_secs(NOW), &cache)
                    .expect("valid")
            })
        });
        let v = verifier();
        let mut n = 0u64;
        g.bench_function("proof_and_replay", |b| {
            b.iter_batched(
                || {
                    n += 1;
                    proof(&k, &format!("jti-{n}"))
                },
                |p| {
                    let r = DpopRequest {
                        method: "GET",
                        uri: URI,
                        proof: Some(&p),
                    };
                    // The token is not an access token of any issuer: the proof step passes and
                    // the token step refuses it; only the proof step's cost differs from bare.
                    let _ = rt.block_on(v.verify_dpop_access_token(TOKEN, &r, "orders-api"));
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
