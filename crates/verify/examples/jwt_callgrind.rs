//! Validates one access token N times, for instruction counting with valgrind's callgrind. On a
//! loaded machine wall-clock benchmarks swing by 10-20% between runs; instruction counts do not,
//! so this is how a regression of the verify path is found and a fix is shown (bench/README.md,
//! "Instruction profile").
//!
//! ```text
//! cargo build --release -p portcullis-verify --example jwt_callgrind
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='jwt_callgrind::measured' \
//!     $CARGO_TARGET_DIR/release/examples/jwt_callgrind full es256 1000
//! ```
//!
//! Modes: `bare` (aws-lc-rs verify of the signing input, key parsed once, signature already
//! decoded: the benchmark's baseline), `full` (`Verifier::verify_access_token`, token cache
//! off), `miss` (a new token every call with the cache on: the digest and the insertion too),
//! `cached` (the same token again with the cache on), `profile` (portcullis-jose's
//! access-token profile alone: parse, claims, rules, signature, no verifier around it).
//! Certificate binding (RFC 8705 section 3): `bound` (a token with `cnf.x5t#S256`, checked
//! with the request's certificate thumbprint through `verify_access_token_with`, cache off:
//! compare with `full`), `padded` (an unbound token with a claim as long as that `cnf`, cache
//! off: what the longer token alone costs), `bound_cached` (`bound` with the cache on: compare
//! with `cached`). The certificate's thumbprint is computed once, as a TLS listener does per
//! connection.
//! Algorithms: `es256`, `eddsa`. Keys and signatures are fixed (RFC 6979 ECDSA, Ed25519), so
//! two runs count the same instructions. Only `measured` is counted: setup is excluded.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{
    Ed25519KeyPair, KeyPair, ParsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_FIXED,
    ED25519,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer as _;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_jose::profile::access_token;
use portcullis_jose::Alg;
use portcullis_verify::fetch::{Fetch, FetchError, Fetched};
use portcullis_verify::{
    IssuerConfig, KeySource, Possession, RevocationSource, Thumbprint, Verifier, VerifierConfig,
};
use serde_json::json;

const NOW: i64 = 1_795_478_400;
const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "payments-api";

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

/// The claims of the `jwt_validate` benchmark (what the token service issues), with `extra`.
fn claims_with(jti: &str, extra: serde_json::Value) -> String {
    let mut c = json!({
        "iss": ISSUER, "sub": "cl_billing", "aud": AUDIENCE,
        "exp": NOW + 600, "iat": NOW, "nbf": NOW, "jti": jti,
        "client_id": "cl_billing", "scope": "payments:read payments:write", "tenant": "acme",
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    c.to_string()
}

/// The client certificate's `x5t#S256` the `bound` modes present (the SHA-256 of a DER).
fn certificate_thumbprint() -> Thumbprint {
    Thumbprint::sha256_of(b"the client certificate's DER")
}

/// What a token of each mode carries besides the common claims.
fn extra_claims(mode: &str) -> serde_json::Value {
    let x5t = certificate_thumbprint();
    match mode {
        "bound" | "bound_cached" => json!({"cnf": {"x5t#S256": x5t.as_str()}}),
        // The same length as the `cnf` member: `"cnf":{"x5t#S256":"..."}`.
        "padded" => json!({"pad": {"abcdefgh": x5t.as_str()}}),
        _ => json!({}),
    }
}

const JTI: &str = "0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b";

struct Case {
    token: String,
    /// The same kind of token with another `jti` (the `miss` mode: every token new).
    sign: Box<dyn Fn(&str) -> String>,
    jwk: serde_json::Value,
    public: Vec<u8>,
    alg: Alg,
    bare: &'static dyn VerificationAlgorithm,
}

fn case(alg: &str, mode: &str) -> Result<Case, String> {
    let extra = extra_claims(mode);
    let input = move |a: &str, kid: &str, jti: &str| {
        format!(
            "{}.{}",
            b64(json!({"alg": a, "typ": "at+jwt", "kid": kid})
                .to_string()
                .as_bytes()),
            b64(claims_with(jti, extra.clone()).as_bytes())
        )
    };
    match alg {
        "es256" => {
            let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).map_err(|e| e.to_string())?;
            let public = sk
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec();
            let sign = move |jti: &str| {
                let signing_input = input("ES256", "es", jti);
                let sig: p256::ecdsa::Signature = sk.sign(signing_input.as_bytes());
                format!("{signing_input}.{}", b64(&sig.to_bytes()))
            };
            Ok(Case {
                token: sign(JTI),
                sign: Box::new(sign),
                jwk: json!({"kty":"EC","crv":"P-256","kid":"es","alg":"ES256",
                    "x": b64(&public[1..33]), "y": b64(&public[33..65])}),
                public,
                alg: Alg::ES256,
                bare: &ECDSA_P256_SHA256_FIXED,
            })
        }
        "eddsa" => {
            let kp = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).map_err(|e| e.to_string())?;
            let public = kp.public_key().as_ref().to_vec();
            let sign = move |jti: &str| {
                let signing_input = input("EdDSA", "ed", jti);
                format!(
                    "{signing_input}.{}",
                    b64(kp.sign(signing_input.as_bytes()).as_ref())
                )
            };
            Ok(Case {
                token: sign(JTI),
                sign: Box::new(sign),
                jwk: json!({"kty":"OKP","crv":"Ed25519","kid":"ed","alg":"EdDSA","x": b64(&public)}),
                public,
                alg: Alg::EdDSA,
                bare: &ED25519,
            })
        }
        other => Err(format!("unknown algorithm {other} (es256, eddsa)")),
    }
}

fn verifier(jwk: &serde_json::Value, cache: usize) -> Result<Verifier, String> {
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(
            ISSUER,
            KeySource::Static(json!({ "keys": [jwk] }).to_string()),
        ),
        AUDIENCE,
        RevocationSource::Embedded {
            staleness_bound: Duration::from_secs(3600),
        },
    );
    cfg.token_cache_capacity = cache;
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(NOW)));
    let v = Verifier::with_parts(cfg, clock, Arc::new(NoFetch)).map_err(|e| e.to_string())?;
    v.revocations().touch(0);
    Ok(v)
}

enum Work {
    Bare {
        key: ParsedPublicKey,
        input: String,
        sig: Vec<u8>,
    },
    Verifier(Verifier),
    /// `verify_access_token_with` and the certificate's thumbprint.
    Bound(Verifier, Thumbprint),
    Profile(portcullis_jose::jwk::KeySet),
}

/// The only function callgrind counts (`--toggle-collect`).
#[inline(never)]
fn measured(work: &Work, tokens: &[String], n: usize, rt: &tokio::runtime::Runtime) -> usize {
    let mut ok = 0;
    for i in 0..n {
        let token = tokens[i % tokens.len()].as_str();
        let good = match work {
            Work::Bare { key, input, sig } => key.verify_sig(input.as_bytes(), sig).is_ok(),
            Work::Verifier(v) => rt.block_on(v.verify_access_token(black_box(token))).is_ok(),
            Work::Bound(v, x5t) => {
                let possession = Possession {
                    client_certificate: Some(x5t),
                    ..Possession::BEARER
                };
                rt.block_on(v.verify_access_token_with(black_box(token), AUDIENCE, &possession))
                    .is_ok()
            }
            Work::Profile(keys) => access_token::verify(
                black_box(token),
                8192,
                ISSUER,
                &Alg::ALL,
                keys,
                &access_token::Rules {
                    audience: Some(AUDIENCE),
                    leeway_s: 30,
                    max_lifetime_s: 3600,
                    tenant_claim: "tenant",
                    roles_claim: "roles",
                },
                Timestamp::from_secs(NOW),
            )
            .is_ok(),
        };
        ok += usize::from(black_box(good));
    }
    ok
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("full", String::as_str);
    let alg = args.get(1).map_or("es256", String::as_str);
    let n: usize = args
        .get(2)
        .map_or(Ok(1000), |s| s.parse())
        .map_err(|e| format!("N: {e}"))?;
    let case = case(alg, mode)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let work = match mode {
        "bare" => {
            let (input, sig) = case.token.rsplit_once('.').ok_or("token")?;
            let key =
                ParsedPublicKey::new(case.bare, case.public.clone()).map_err(|e| e.to_string())?;
            Work::Bare {
                key,
                input: input.to_owned(),
                sig: URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?,
            }
        }
        "full" | "padded" => Work::Verifier(verifier(&case.jwk, 0)?),
        "bound" => Work::Bound(verifier(&case.jwk, 0)?, certificate_thumbprint()),
        "bound_cached" => {
            let v = verifier(&case.jwk, 1000)?;
            let x5t = certificate_thumbprint();
            let possession = Possession {
                client_certificate: Some(&x5t),
                ..Possession::BEARER
            };
            rt.block_on(v.verify_access_token_with(&case.token, AUDIENCE, &possession))
                .map_err(|e| format!("{e:?}"))?;
            Work::Bound(v, x5t)
        }
        "miss" => Work::Verifier(verifier(&case.jwk, 100_000)?),
        "cached" => {
            let v = verifier(&case.jwk, 1000)?;
            rt.block_on(v.verify_access_token(&case.token))
                .map_err(|e| format!("{e:?}"))?;
            Work::Verifier(v)
        }
        "profile" => Work::Profile(
            portcullis_jose::jwk::parse_jwks(
                json!({ "keys": [case.jwk] }).to_string().as_bytes(),
                &[case.alg],
            )
            .map_err(|e| e.to_string())?,
        ),
        other => {
            return Err(format!(
                "unknown mode {other} (bare, full, miss, cached, profile, bound, padded, \
                 bound_cached)"
            ))
        }
    };
    let tokens = if mode == "miss" {
        (0..n).map(|i| (case.sign)(&format!("jti-{i}"))).collect()
    } else {
        vec![case.token.clone()]
    };
    let ok = measured(&work, &tokens, n, &rt);
    if ok != n {
        return Err(format!("{} of {n} validations failed", n - ok));
    }
    println!("{mode} {alg}: {n} validations");
    Ok(())
}
