//! Checks one DPoP proof (RFC 9449) N times, for instruction counting with valgrind's callgrind:
//! the repeatable form of the `dpop_check` benchmark on a loaded machine (bench/README.md,
//! "Instruction profile"; `bench/dpop-instructions` runs every mode).
//!
//! ```text
//! cargo build --release -p portcullis-verify --example dpop_callgrind
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='dpop_callgrind::measured' \
//!     $CARGO_TARGET_DIR/release/examples/dpop_callgrind cached es256 1000
//! ```
//!
//! Modes: `bare` (aws-lc-rs verify of the proof's signing input with the raw key bytes from its
//! header, parsed on every call as a verifier must for a key it has not seen: the target's
//! baseline), `parsed` (the same with the key parsed once: the floor), `profile`
//! (`dpop_proof::verify`: every rule, the key read from the header each time), `cached`
//! (`dpop_proof::verify_cached` with the key already read: a client's second and later proofs),
//! `verifier` (the verify library's whole proof step, replay record included, through
//! `Verifier::verify_dpop_access_token`; a new proof every call, signed beforehand).
//! Algorithms: `es256`, `eddsa`. Only `measured` is counted: setup is excluded.

use std::hint::black_box;

use aws_lc_rs::signature::{
    ParsedPublicKey, UnparsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_FIXED, ED25519,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::time::Timestamp;
use portcullis_jose::profile::dpop_proof::{self, KeyCache, ProofSigner};
use portcullis_jose::{Alg, SigningKeyPair};
use portcullis_verify::{DpopRequest, Verifier};

#[path = "../benches/support/dpop_fixture.rs"]
mod fixture;
use fixture::{proof, raw_public_key, rules, verifier, NOW, TOKEN, URI};

enum Work {
    Bare {
        alg: &'static dyn VerificationAlgorithm,
        public: Vec<u8>,
    },
    Parsed(ParsedPublicKey),
    Profile,
    Cached(KeyCache),
    Verifier(Verifier),
}

/// The only function callgrind counts (`--toggle-collect`).
#[inline(never)]
fn measured(
    work: &Work,
    proofs: &[String],
    input: &str,
    sig: &[u8],
    rt: &tokio::runtime::Runtime,
) -> usize {
    let now = Timestamp::from_secs(NOW);
    let mut ok = 0;
    for p in proofs {
        let good = match work {
            Work::Bare { alg, public } => UnparsedPublicKey::new(*alg, public.as_slice())
                .verify(black_box(input).as_bytes(), sig)
                .is_ok(),
            Work::Parsed(key) => key.verify_sig(black_box(input).as_bytes(), sig).is_ok(),
            Work::Profile => dpop_proof::verify(black_box(p), &rules(), now).is_ok(),
            Work::Cached(cache) => {
                dpop_proof::verify_cached(black_box(p), &rules(), now, cache).is_ok()
            }
            Work::Verifier(v) => {
                let r = DpopRequest {
                    method: "GET",
                    uri: URI,
                    proof: Some(black_box(p)),
                };
                // Refused at the token step (no such issuer key): only the proof step differs
                // from bare, as in the criterion benchmark.
                let _ = rt.block_on(v.verify_dpop_access_token(TOKEN, &r, "orders-api"));
                true
            }
        };
        ok += usize::from(good);
    }
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, alg, n) = match args.as_slice() {
        [_, m, a, n] => (m.as_str(), a.as_str(), n.parse::<usize>().expect("count")),
        _ => {
            eprintln!("usage: dpop_callgrind bare|parsed|profile|cached|verifier es256|eddsa N");
            std::process::exit(2);
        }
    };
    let (alg, bare): (Alg, &'static dyn VerificationAlgorithm) = match alg {
        "es256" => (Alg::ES256, &ECDSA_P256_SHA256_FIXED),
        "eddsa" => (Alg::EdDSA, &ED25519),
        other => panic!("unknown algorithm {other}"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let pair = SigningKeyPair::generate(alg).expect("key").1;
    let public = raw_public_key(&pair.public_jwk());
    let k = ProofSigner::new(pair).expect("signer");
    let one = proof(&k, "jti-0");
    let (input, sig) = one.rsplit_once('.').expect("proof");
    let sig = URL_SAFE_NO_PAD.decode(sig).expect("sig");
    // One proof for every call, except where its jti is recorded (a replay would be refused).
    let proofs: Vec<String> = match mode {
        "verifier" => (0..n).map(|i| proof(&k, &format!("jti-{i}"))).collect(),
        _ => vec![one.clone(); n],
    };
    let work = match mode {
        "bare" => Work::Bare { alg: bare, public },
        "parsed" => Work::Parsed(ParsedPublicKey::new(bare, public).expect("key")),
        "profile" => Work::Profile,
        "cached" => {
            let cache = KeyCache::default();
            dpop_proof::verify_cached(&one, &rules(), Timestamp::from_secs(NOW), &cache)
                .expect("warm");
            Work::Cached(cache)
        }
        "verifier" => {
            let v = verifier();
            // Warm: the key cache and the replay map's first allocation.
            let warm = proof(&k, "warm");
            let r = DpopRequest {
                method: "GET",
                uri: URI,
                proof: Some(&warm),
            };
            let _ = rt.block_on(v.verify_dpop_access_token(TOKEN, &r, "orders-api"));
            Work::Verifier(v)
        }
        other => panic!("unknown mode {other}"),
    };
    let ok = measured(&work, &proofs, input, &sig, &rt);
    assert_eq!(ok, n, "every check passes");
}
