//! Verifies one workload subject token (a Kubernetes pod token, ES256, keys uploaded with the
//! trusted issuer) N times, for instruction counting with valgrind's callgrind: the repeatable
//! form of the token-exchange target "the subject-token verification within 1.15x of a bare
//! signature verify" (bench/README.md, "Instruction profile"; `bench/exchange-instructions`
//! runs every mode).
//!
//! ```text
//! cargo build --release -p portcullis-service --example exchange_callgrind
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='exchange_callgrind::measured' \
//!     $CARGO_TARGET_DIR/release/examples/exchange_callgrind profile 200 /tmp/fixture.json
//! ```
//!
//! Modes: `bare` (aws-lc-rs ES256 verify of the token's signing input, key parsed once,
//! signature already decoded: the baseline), `profile` (portcullis-jose's external-token
//! profile with the issuer's keys parsed once: strict parse, key headers refused, algorithm
//! pinned, signature, `iss`/`aud`/`exp`/`nbf`/`iat`/lifetime, the claims object: the subject-token
//! verification itself, what every exchange does now), `reparse` (the same with the uploaded
//! JWKS read from its stored text first: what every exchange did before the issuer cache),
//! `admit` (the whole evaluation but the replay record, `federation::exchange::admit`, with the
//! issuer, its rules and keys already in the `TrustedIssuers` cache: profile, workload read,
//! rule selection, grant decision).
//!
//! The third argument is a fixture file: written by the first run (key and token), read by the
//! later ones, so every mode verifies the same signature with the same key. Only `measured` is
//! counted: setup is excluded.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_jose::profile::external;
use portcullis_jose::sign::{public_jwk_for_jwks, Signer, SigningKeyPair};
use portcullis_jose::{Alg, ClientKeys};
use portcullis_service::federation::exchange;
use portcullis_service::federation::facts::TrustedIssuers;
use portcullis_service::federation::keys;
use portcullis_store::{
    KeySourceRecord, NewTenant, SqliteStore, Store, TrustRuleRecord, TrustedIssuerRecord,
};
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://kube.bench";
const AUD: &str = "https://auth.bench";

enum Work {
    Bare(ParsedPublicKey),
    Profile(Arc<ClientKeys>),
    Reparse(KeySourceRecord),
    Admit {
        store: Arc<dyn Store>,
        cache: TrustedIssuers,
        rt: tokio::runtime::Runtime,
    },
}

fn rules<'r>(algorithms: &'r [Alg], audiences: &'r [&'r str]) -> external::Rules<'r> {
    external::Rules {
        issuer: ISS,
        algorithms,
        audiences,
        max_lifetime: Duration::from_secs(86_400),
        leeway: Duration::from_secs(60),
    }
}

fn profile(token: &str, keys: &ClientKeys, now: Timestamp) -> bool {
    let Ok(u) = external::parse(token) else {
        return false;
    };
    external::verify(
        &u,
        keys.for_alg(u.header.alg),
        &rules(&[Alg::ES256], &[AUD]),
        now,
    )
    .is_ok()
}

/// The only function callgrind counts (`--toggle-collect`).
#[inline(never)]
fn measured(work: &Work, token: &str, input: &str, sig: &[u8], n: usize) -> usize {
    let now = Timestamp::from_secs(NOW);
    let tenant = TenantId::parse("acme").expect("tenant");
    let mut ok = 0;
    for _ in 0..n {
        let good = match work {
            Work::Bare(key) => key.verify_sig(black_box(input).as_bytes(), sig).is_ok(),
            Work::Profile(keys) => profile(black_box(token), keys, now),
            Work::Reparse(source) => {
                keys::uploaded(source).is_ok_and(|keys| profile(black_box(token), &keys, now))
            }
            Work::Admit { store, cache, rt } => {
                let req = exchange::Request {
                    tenant: &tenant,
                    purpose: portcullis_core::federation::rule::Use::Grant,
                    assertion_audiences: &[],
                    subject_token: black_box(token),
                    rule: None,
                    scope: None,
                    targets: &[],
                    now,
                    leeway: Duration::from_secs(60),
                    tenant_cap: Duration::from_secs(3600),
                    keys: None,
                    issuers: Some(cache),
                };
                rt.block_on(exchange::admit(store.as_ref(), &req)).is_ok()
            }
        };
        ok += usize::from(good);
    }
    ok
}

/// The key (PKCS#8, base64url) and the token, made once and shared by every mode's run.
fn fixture(path: &str) -> (SigningKeyPair, String) {
    if let Ok(text) = std::fs::read_to_string(path) {
        let v: Value = serde_json::from_str(&text).expect("fixture");
        let der = URL_SAFE_NO_PAD
            .decode(v["pkcs8"].as_str().expect("pkcs8"))
            .expect("der");
        let pair = SigningKeyPair::from_pkcs8(Alg::ES256, &der).expect("key");
        return (pair, v["token"].as_str().expect("token").to_owned());
    }
    let (der, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
    let (_, kid) = public_jwk_for_jwks(&pair);
    let signer = Signer::new(
        SigningKeyPair::from_pkcs8(Alg::ES256, der.expose()).expect("key"),
        Some("JWT"),
        Some(&kid),
    );
    let token = signer
        .sign(
            &json!({"iss": ISS, "sub": "system:serviceaccount:payments:api", "aud": [AUD],
            "iat": NOW - 5, "nbf": NOW - 5, "exp": NOW + 600, "jti": "bench-1",
            "kubernetes.io": {"namespace": "payments",
                              "serviceaccount": {"name": "api", "uid": "u-1"}}}),
        )
        .expect("sign");
    let doc = json!({"pkcs8": URL_SAFE_NO_PAD.encode(der.expose()), "token": token});
    std::fs::write(path, doc.to_string()).expect("write fixture");
    (pair, token)
}

async fn trusting_store(dir: &std::path::Path, jwks: &str) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("db")).await.expect("db"));
    let now = Timestamp::from_secs(NOW);
    let acme = TenantId::parse("acme").expect("tenant");
    store
        .create_tenant(
            &NewTenant {
                id: acme.clone(),
                display_name: "acme".into(),
            },
            now,
        )
        .await
        .expect("tenant");
    store
        .create_trusted_issuer(&TrustedIssuerRecord {
            tenant: acme.clone(),
            issuer: ISS.into(),
            preset: "kubernetes".into(),
            key_source: KeySourceRecord::Jwks(jwks.to_owned()),
            algorithms: vec!["ES256".into()],
            max_token_age_s: 86_400,
            created_at: now,
            updated_at: now,
        })
        .await
        .expect("issuer");
    store
        .create_trust_rule(&TrustRuleRecord {
            tenant: acme,
            id: "payments-api".into(),
            issuer: ISS.into(),
            audience: AUD.into(),
            conditions: json!([{"claim": "namespace", "equals": "payments"},
                               {"claim": "service_account", "equals": "api"}])
            .to_string(),
            audiences: vec!["payments".into()],
            scopes: vec!["read".into()],
            max_lifetime_s: 900,
            max_token_age_s: None,
            bound_to_subject_lifetime: false,
            client_id: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .expect("rule");
    store
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, n, path) = match args.as_slice() {
        [_, m, n, p] => (m.as_str(), n.parse::<usize>().expect("count"), p.as_str()),
        _ => {
            eprintln!("usage: exchange_callgrind bare|profile|reparse|admit N FIXTURE");
            std::process::exit(2);
        }
    };
    let (pair, token) = fixture(path);
    let (jwk, _) = public_jwk_for_jwks(&pair);
    let jwks = json!({ "keys": [jwk.clone()] }).to_string();
    let (input, sig) = token.rsplit_once('.').expect("token");
    let sig = URL_SAFE_NO_PAD.decode(sig).expect("sig");
    let coord = |c: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[c].as_str().expect("coordinate"))
            .expect("b64")
    };
    let mut point = vec![4u8];
    point.extend(coord("x"));
    point.extend(coord("y"));
    let source = KeySourceRecord::Jwks(jwks.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let work = match mode {
        "bare" => Work::Bare(ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).expect("key")),
        "profile" => Work::Profile(keys::uploaded(&source).expect("keys")),
        "reparse" => Work::Reparse(source),
        "admit" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let store = rt.block_on(trusting_store(dir.path(), &jwks));
            // A long TTL: every measured call is a cache hit, as under load.
            let cache = TrustedIssuers::new(16, Duration::from_secs(3600));
            let work = Work::Admit { store, cache, rt };
            assert_eq!(measured(&work, &token, input, &sig, 1), 1, "warm-up admits");
            work
        }
        other => panic!("unknown mode {other}"),
    };
    let ok = measured(&work, &token, input, &sig, n);
    assert_eq!(ok, n, "every verification succeeds");
    println!("{mode}: {ok} of {n} verified");
}
